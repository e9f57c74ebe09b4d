"""MATLAB-style imresize: hand-checkable cases (constants, ramps, MATLAB's border mirroring)."""
import numpy as np
import pytest

from jittor_self_blind_vsr.utils.matlab_imresize import imresize, resize_matrix


@pytest.mark.parametrize('scale', [4, 0.25, 2.5])
@pytest.mark.parametrize('method', ['bicubic', 'bilinear'])
def test_rows_of_the_resize_matrix_sum_to_one(scale, method):
    matrix = resize_matrix(16, int(np.ceil(16 * scale)), scale, method)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize('scale', [4, 0.5])
def test_linear_ramp_maps_to_the_ramp_at_matlab_sample_positions(scale):
    # MATLAB samples output pixel j (0-based) at input coordinate (j + 0.5) / scale - 0.5;
    # bicubic (a = -0.5) and its antialiased version reproduce linear functions away from the borders
    n = 40
    ramp = np.tile(np.arange(n, dtype=np.float64)[None, :], (3, 1))
    out = imresize(ramp, scalar_scale=scale)
    assert out.shape == (int(np.ceil(3 * scale)), int(np.ceil(n * scale)))
    positions = (np.arange(out.shape[1]) + 0.5) / scale - 0.5
    interior = (positions > 4 / min(scale, 1)) & (positions < n - 1 - 4 / min(scale, 1))
    np.testing.assert_allclose(out[1, interior], positions[interior], atol=1e-9)


def test_border_is_mirrored_as_matlab():
    # first output of a x2 upscale samples at -0.25: taps at -2..1 mirror to 1, 0, 0, 1
    signal = np.array([[10.0, 20.0, 30.0, 40.0]])
    out = imresize(signal, output_shape=(1, 8))
    x = np.array([-1.75, -0.75, 0.25, 1.25])
    ax = np.abs(x)
    weights = np.where(ax <= 1, 1.5 * ax ** 3 - 2.5 * ax ** 2 + 1, -0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2)
    expected = weights @ np.array([20.0, 10.0, 10.0, 20.0]) / weights.sum()
    assert out[0, 0] == pytest.approx(expected, abs=1e-12)


def test_constant_image_stays_constant_and_uint8_stays_uint8():
    img = np.full((6, 7, 3), 77, dtype=np.uint8)
    out = imresize(img, scalar_scale=4)
    assert out.dtype == np.uint8 and out.shape == (24, 28, 3) and (out == 77).all()
    assert imresize(img.astype(np.float32), scalar_scale=0.5).dtype == np.float64


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='scalar_scale or output_shape'):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError, match='method must be one of'):
        imresize(np.zeros((4, 4)), scalar_scale=2, method='lanczos')
