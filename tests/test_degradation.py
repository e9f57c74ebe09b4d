"""Blur kernels and blur-down against independent computations."""
import math

import numpy as np
import pytest
from scipy import ndimage

from jittor_self_blind_vsr.utils import degradation as deg


def asymmetric_kernel(size, seed=0):
    kernel = np.random.RandomState(seed).rand(size, size)
    return kernel / kernel.sum()


def test_delta_image_gives_the_flipped_kernel():
    # correlation (conv2d without flip) of a unit impulse draws the kernel rotated by 180 degrees
    kernel = asymmetric_kernel(7)
    img = np.zeros((21, 23, 3))
    img[10, 11] = 1.0
    out = deg.blur_down(img, kernel, 1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[7:14, 8:15, 1], kernel[::-1, ::-1], atol=1e-7)
    assert out.sum() == pytest.approx(3.0, abs=1e-5)  # nothing but the kernel anywhere else


@pytest.mark.parametrize('shape,ksize,scale', [((37, 50, 3), 13, 4), ((32, 32, 3), 9, 4), ((19, 24, 15), 5, 2)])
def test_blur_down_equals_scipy_correlate_then_decimation(shape, ksize, scale):
    rng = np.random.RandomState(1)
    img = rng.rand(*shape) * 255
    kernel = asymmetric_kernel(ksize, seed=2)
    reference = np.stack([ndimage.correlate(img[..., c], kernel, mode='nearest')
                          for c in range(shape[2])], axis=-1)[::scale, ::scale]
    out = deg.blur_down(img, kernel, scale)
    assert out.shape == (math.ceil(shape[0] / scale), math.ceil(shape[1] / scale), shape[2])
    np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-4)


def test_blur_down_equals_the_originals_torch_computation():
    # the original: replicate pad k//2, conv2d (padding (k-1)//2) per channel, crop k//2, [::4, ::4]
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    img = (np.random.RandomState(3).rand(30, 41, 3) * 255).astype(np.uint8)
    kernel = asymmetric_kernel(13, seed=4)
    pad = 6
    x = F.pad(torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1))[None], (pad,) * 4, mode='replicate')
    weight = torch.zeros(3, 3, 13, 13)
    for c in range(3):
        weight[c, c] = torch.from_numpy(kernel.astype(np.float32))
    y = F.conv2d(x, weight, padding=pad)[:, :, pad:-pad, pad:-pad][:, :, ::4, ::4]
    reference = y[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(deg.blur_down(img, kernel, 4), reference, atol=2e-4)
    rounded = reference.clip(0, 255).round()
    assert np.abs(deg.blur_down_uint8(img, kernel, 4).astype(float) - rounded).max() <= 1  # float32 ties only


def test_blur_down_uint8_clamps_and_rounds():
    img = np.full((8, 8, 3), 200.0)
    kernel = np.zeros((3, 3))
    kernel[1, 1] = 1.4  # not normalised: 280 must clamp to 255
    assert (deg.blur_down_uint8(img, kernel, 2) == 255).all()
    kernel[1, 1] = 0.50251  # 100.502 -> 101
    out = deg.blur_down_uint8(img, kernel, 2)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3) and (out == 101).all()
    kernel[1, 1] = 0.5  # 201 * 0.5 = 100.5: up, as the original's torch.round (NumPy's round gives 100)
    assert (deg.blur_down_uint8(np.full((8, 8, 3), 201.0), kernel, 2) == 101).all()


def test_blur_down_refuses_even_or_non_square_kernels():
    with pytest.raises(ValueError, match='square with an odd size'):
        deg.blur_down(np.zeros((8, 8, 3)), np.ones((4, 4)) / 16, 4)
    with pytest.raises(ValueError, match='square with an odd size'):
        deg.blur_down(np.zeros((8, 8, 3)), np.ones((3, 5)) / 15, 4)


def test_gaussian_kernel_matches_matlab_fspecial():
    # MATLAB: fspecial('gaussian', 3, 0.5)
    expected = np.array([[0.0113, 0.0838, 0.0113], [0.0838, 0.6193, 0.0838], [0.0113, 0.0838, 0.0113]])
    np.testing.assert_allclose(deg.gaussian_kernel(0.5, 3), expected, atol=5e-5)


@pytest.mark.parametrize('sigma,size', [(0.4, 5), (0.7, 7), (1.0, 7), (1.2, 9), (1.7, 13), (2.0, 13)])
def test_gaussian_kernel_sizes_as_the_original(sigma, size):
    assert deg.gaussian_kernel_size(sigma) == size
    assert deg.gaussian_kernel(sigma).shape == (size, size)


@pytest.mark.parametrize('sigma', deg.TRAIN_SIGMAS)
def test_gaussian_kernel_properties(sigma):
    kernel = deg.gaussian_kernel(sigma)
    size = kernel.shape[0]
    assert size == int(math.ceil(3 * sigma)) * 2 + 1
    assert (kernel >= 0).all() and kernel.sum() == pytest.approx(1.0, abs=1e-12)
    centre = (size - 1) / 2
    np.testing.assert_allclose(ndimage.center_of_mass(kernel), (centre, centre), atol=1e-12)
    # separable exp(-r^2 / 2 sigma^2): ratio of neighbours along an axis
    assert kernel[int(centre), int(centre) + 1] / kernel[int(centre), int(centre)] == pytest.approx(
        math.exp(-1 / (2 * sigma * sigma)), rel=1e-12)


def test_training_sigmas_are_0_4_to_2_0_step_0_1():
    np.testing.assert_allclose(deg.TRAIN_SIGMAS, np.round(np.arange(0.4, 2.05, 0.1), 1))
    assert len(deg.TRAIN_SIGMAS) == 17


def test_random_gaussian_kernel_draws_a_training_sigma():
    class Pick:
        def choice(self, values):
            assert tuple(values) == deg.TRAIN_SIGMAS
            return 1.5
    np.testing.assert_array_equal(deg.random_gaussian_kernel(Pick()), deg.gaussian_kernel(1.5))


@pytest.mark.parametrize('seed', range(8))
def test_realistic_kernel_properties(seed):
    kernel = deg.random_realistic_kernel(np.random.RandomState(seed))
    assert kernel.shape == (13, 13)
    assert (kernel >= 0).all() and kernel.sum() == pytest.approx(1.0, abs=1e-12)
    # re-centred to 31/2 on the 31x31 grid, which bicubic resizing maps to 16*13/31 - 0.5
    np.testing.assert_allclose(ndimage.center_of_mass(kernel), (16 * 13 / 31 - 0.5,) * 2, atol=0.1)


@pytest.mark.parametrize('seed', range(4))
def test_realistic_kernel_covariance_is_the_drawn_one(seed):
    # without noise and without resizing, the kernel is the Gaussian of covariance
    # R diag(l1, l2) R^T in (x = column, y = row) coordinates, l1, l2 ~ U(2.4, 20), theta ~ U(0, pi)
    kernel = deg.random_realistic_kernel(np.random.RandomState(seed), noise_level=0, out_size=31)
    draws = np.random.RandomState(seed)
    l1, l2 = 2.4 + draws.rand() * 17.6, 2.4 + draws.rand() * 17.6
    theta = draws.rand() * np.pi
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    expected = rot @ np.diag([l1, l2]) @ rot.T
    ys, xs = np.mgrid[0:31, 0:31]
    mx, my = (kernel * xs).sum(), (kernel * ys).sum()
    dx, dy = xs - mx, ys - my
    measured = np.array([[(kernel * dx * dx).sum(), (kernel * dx * dy).sum()],
                         [(kernel * dx * dy).sum(), (kernel * dy * dy).sum()]])
    np.testing.assert_allclose(measured, expected, atol=0.03 * max(l1, l2))  # 31x31 truncation
    np.testing.assert_allclose((mx, my), (15.5, 15.5), atol=0.01)


def test_realistic_kernel_is_reproducible_and_follows_numpys_global_stream():
    first = deg.random_realistic_kernel(np.random.RandomState(7))
    np.testing.assert_array_equal(first, deg.random_realistic_kernel(np.random.RandomState(7)))
    np.random.seed(7)  # the original draws from np.random after np.random.seed
    np.testing.assert_array_equal(first, deg.random_realistic_kernel(np.random))
    assert np.abs(first - deg.random_realistic_kernel(np.random.RandomState(8))).max() > 1e-3
