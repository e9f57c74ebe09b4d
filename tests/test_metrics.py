"""PSNR/SSIM equal the original inference.py's formulas (OpenCV filter2D, valid region)."""
import math

import cv2
import numpy as np
import pytest

from jittor_self_blind_vsr.utils.metrics import calc_psnr, calc_psnr_float, calc_ssim, crop


def reference_psnr(a, b, border):
    a = a[border:-border, border:-border].astype(np.float64)
    b = b[border:-border, border:-border].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float('inf') if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def reference_ssim_map_mean(a, b):
    """Wang et al. as the original writes it: cv2 Gaussian 11x11 sigma 1.5, crop 5 per side."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T

    def blur(img):
        return cv2.filter2D(img, -1, window)[5:-5, 5:-5]

    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean()


def reference_ssim(a, b, border):
    # The original filters the 3-channel image at once (filter2D works per channel) and
    # averages the map over everything, which equals the mean of per-channel SSIMs.
    return reference_ssim_map_mean(a[border:-border, border:-border], b[border:-border, border:-border])


def noisy_pair(rng, h, w):
    base = rng.integers(0, 256, size=(h, w, 3)).astype(np.float64)
    smooth = cv2.GaussianBlur(base, (0, 0), 2.0)
    gt = np.clip(smooth, 0, 255).round().astype(np.uint8)
    out = np.clip(smooth + rng.normal(0, 6, size=smooth.shape), 0, 255).round().astype(np.uint8)
    return out, gt


@pytest.mark.parametrize('h,w,seed', [(40, 56, 0), (64, 64, 1), (27, 93, 2), (128, 96, 3)])
def test_matches_original_formulas(h, w, seed):
    out, gt = noisy_pair(np.random.default_rng(seed), h, w)
    assert abs(calc_psnr(out, gt) - reference_psnr(gt, out, 4)) < 1e-9
    assert abs(calc_ssim(out, gt) - reference_ssim(gt, out, 4)) < 1e-6
    assert abs(calc_ssim(out, gt, crop_border=7) - reference_ssim(gt, out, 7)) < 1e-6


def test_per_channel_average():
    out, gt = noisy_pair(np.random.default_rng(5), 48, 48)
    out[..., 1] = gt[..., 1]  # one channel perfect: SSIM 1 there
    per_channel = [reference_ssim_map_mean(out[4:-4, 4:-4, c], gt[4:-4, 4:-4, c]) for c in range(3)]
    assert per_channel[1] == pytest.approx(1.0, abs=1e-12)
    assert abs(calc_ssim(out, gt) - np.mean(per_channel)) < 1e-6


def test_hand_computed_values():
    gt = np.full((30, 30, 3), 100, np.uint8)
    out = gt + np.uint8(1)
    assert calc_psnr(out, gt) == pytest.approx(20 * math.log10(255.0), abs=1e-12)  # MSE = 1
    c1 = (0.01 * 255) ** 2
    # flat images: no variance, SSIM reduces to the luminance term
    assert calc_ssim(out, gt) == pytest.approx((2 * 101 * 100 + c1) / (101 ** 2 + 100 ** 2 + c1), abs=1e-12)
    assert calc_psnr(gt, gt) == float('inf')
    assert calc_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)


def test_border_is_ignored():
    out, gt = noisy_pair(np.random.default_rng(7), 40, 40)
    spoiled = out.copy()
    spoiled[:4] = 0
    spoiled[:, -4:] = 255
    assert calc_psnr(spoiled, gt) == calc_psnr(out, gt)
    assert calc_ssim(spoiled, gt) == calc_ssim(out, gt)
    assert calc_psnr(spoiled, gt, crop_border=3) < calc_psnr(out, gt, crop_border=3)


def test_crop_zero_keeps_everything():
    img = np.zeros((5, 6, 3))
    assert crop(img, 0).shape == (5, 6, 3)
    assert crop(img, 2).shape == (1, 2, 3)


def test_shape_errors():
    with pytest.raises(ValueError, match='same shape'):
        calc_psnr(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match='11x11'):
        calc_ssim(np.zeros((18, 30, 3), np.uint8), np.zeros((18, 30, 3), np.uint8))


def original_trainer_psnr(img1, img2, rgb_range=1., shave=4):
    """The original's utils/data_utils.calc_psnr on torch tensors, transcribed for numpy."""
    img1 = img1[:, :, shave:-shave, shave:-shave]
    img2 = img2[:, :, shave:-shave, shave:-shave]
    mse = np.mean((img1 / rgb_range - img2 / rgb_range) ** 2)
    if mse == 0:
        return 100
    return 20 * math.log10(1 / math.sqrt(mse))


@pytest.mark.parametrize('rgb_range', [1, 255])
def test_trainer_psnr_is_the_original_trainers(rgb_range):
    rng = np.random.default_rng(3)
    a = (rng.random((1, 3, 20, 24)) * rgb_range).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.02 * rgb_range, a.shape), 0, rgb_range).astype(np.float32)
    assert calc_psnr_float(a, b, rgb_range) == original_trainer_psnr(a, b, rgb_range)
    assert 25 < calc_psnr_float(a, b, rgb_range) < 40
    assert calc_psnr_float(a, a.copy(), rgb_range) == 100
    b[:, :, :4] = 0  # the shaved border does not count
    b[:, :, :, -4:] = 0
    assert calc_psnr_float(a, b, rgb_range) == original_trainer_psnr(a, b, rgb_range)
    with pytest.raises(ValueError, match='one shape'):
        calc_psnr_float(a, b[:, :, 1:])
