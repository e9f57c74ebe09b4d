"""PSNR and SSIM exactly as the original `inference.py` evaluates a restored frame, and
the PSNR its trainer logs (`calc_psnr_float`).

The original compares uint8 RGB frames after cropping `crop_border` pixels from every
side; PSNR uses the float64 MSE over all pixels and channels, SSIM is the MATLAB-style
one of Wang et al. (11x11 Gaussian window, sigma 1.5, population covariances, only the
window positions that lie fully inside the image, C1=(0.01*255)^2, C2=(0.03*255)^2),
averaged over the colour channels.

scikit-image's `structural_similarity` computes that same quantity with the options
below: its Gaussian filter truncated at 3.5 sigma is the same normalised 11-tap window,
and it discards the 5 pixels per side that the original's `[5:-5, 5:-5]` discards, so
the filter's border mode never reaches the mean. tests/test_metrics.py proves the
equality against a direct implementation of the original's OpenCV formulas.
"""
import math

import numpy as np
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0
SSIM_WINDOW = 11
# Pixels the original's get_PSNR_SSIM crops from every side before scoring.
CROP_BORDER = 4
_SSIM_OPTIONS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                     data_range=DATA_RANGE, K1=0.01, K2=0.03)


def crop(img, crop_border):
    """Drop `crop_border` pixels from each side; 0 keeps the whole image.

    (The original slices `[b:-b]`, which for b=0 would give an empty image.)
    """
    if crop_border < 0:
        raise ValueError(f'crop_border must be >= 0, not {crop_border}')
    if crop_border == 0:
        return img
    return img[crop_border:-crop_border, crop_border:-crop_border, ...]


def _checked_pair(img1, img2, crop_border):
    img1, img2 = np.asarray(img1), np.asarray(img2)
    if img1.shape != img2.shape:
        raise ValueError(f'images must have the same shape, got {img1.shape} and {img2.shape}')
    if img1.ndim not in (2, 3):
        raise ValueError(f'images must be HxW or HxWxC, got shape {img1.shape}')
    return crop(img1, crop_border), crop(img2, crop_border)


def calc_psnr(img1, img2, crop_border=CROP_BORDER):
    """PSNR in dB of two [0, 255] images; inf when they are identical."""
    img1, img2 = _checked_pair(img1, img2, crop_border)
    diff = img1.astype(np.float64) - img2.astype(np.float64)
    mse = np.mean(diff ** 2)
    if mse == 0:
        return float('inf')
    return 20 * math.log10(DATA_RANGE / math.sqrt(mse))


def calc_psnr_float(img1, img2, rgb_range=1, shave=4):
    """PSNR as the original trainer logs it (`utils/data_utils.calc_psnr`): two (N, C, H, W)
    float arrays in [0, rgb_range], `shave` pixels cropped per side, the MSE in the arrays'
    own precision (float32 for model outputs), and 100 for identical images."""
    img1, img2 = np.asarray(img1), np.asarray(img2)
    if img1.shape != img2.shape or img1.ndim != 4:
        raise ValueError(f'images must be two (N, C, H, W) arrays of one shape, got {img1.shape} and {img2.shape}')
    cropped = (slice(None), slice(None), slice(shave, -shave), slice(shave, -shave))
    mse = np.mean((img1[cropped] / rgb_range - img2[cropped] / rgb_range) ** 2)
    if mse == 0:
        return 100
    return 20 * math.log10(1 / math.sqrt(mse))


def calc_ssim(img1, img2, crop_border=CROP_BORDER):
    """MATLAB-style SSIM of two [0, 255] images, averaged over channels."""
    img1, img2 = _checked_pair(img1, img2, crop_border)
    if min(img1.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after the border crop, '
                         f'got {img1.shape[0]}x{img1.shape[1]}')
    if img1.ndim == 3 and img1.shape[2] == 1:
        img1, img2 = img1[..., 0], img2[..., 0]
    channel_axis = -1 if img1.ndim == 3 else None
    # float64 inputs: scikit-image would otherwise pick the working precision from the dtype
    return float(structural_similarity(img1.astype(np.float64), img2.astype(np.float64),
                                       channel_axis=channel_axis, **_SSIM_OPTIONS))
