"""Blur kernels and the blur-down degradation (blur, then keep every `scale`-th pixel).

One implementation for the dataset generation script, the online training datasets
and the demo. It computes what the original computes with a PyTorch conv2d: replicate
padding, per-channel correlation (no kernel flip), decimation starting at pixel 0.
"""
import math
import random

import cv2
import numpy as np
from scipy import ndimage

from jittor_self_blind_vsr.utils.image_io import round_half_away_from_zero

# The original training sets draw sigma uniformly from this list (random.choice).
TRAIN_SIGMAS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0)
# The Gaussian test sets (REDS4_BlurDown_Gaussian) use this single sigma.
TEST_SIGMA = 1.2


def gaussian_kernel_size(sigma):
    """The original's kernel size for `sigma`: ceil(3*sigma)*2 + 1."""
    return int(math.ceil(sigma * 3) * 2 + 1)


def gaussian_kernel(sigma, size=None):
    """Isotropic Gaussian, size x size (default `gaussian_kernel_size(sigma)`), as MATLAB's
    fspecial('gaussian'): values below eps*max are zeroed, then the kernel sums to 1."""
    if sigma <= 0:
        raise ValueError(f'sigma must be positive, got {sigma}')
    size = gaussian_kernel_size(sigma) if size is None else int(size)
    half = (size - 1) / 2.0
    axis = np.arange(size, dtype=np.float64) - half
    kernel = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2.0 * sigma * sigma))
    kernel[kernel < np.finfo(np.float64).eps * kernel.max()] = 0
    return kernel / kernel.sum()


def random_gaussian_kernel(rng=random):
    """Gaussian kernel with sigma drawn by `rng.choice` from TRAIN_SIGMAS (the training sets)."""
    return gaussian_kernel(rng.choice(TRAIN_SIGMAS))


def _recentre(kernel):
    """Shift (cubic spline, zeros outside) so the centre of mass lands on shape/2.

    shape/2 is half a pixel past the central pixel of an odd kernel: the original
    aims there, and so do we, since the published models were trained on it.
    """
    wanted = np.array(kernel.shape, dtype=np.float64) / 2
    return ndimage.shift(kernel, wanted - np.array(ndimage.center_of_mass(kernel)))


def random_realistic_kernel(rng=np.random, scale=4, kernel_size=31, noise_level=0.25, out_size=13):
    """Random anisotropic Gaussian with multiplicative noise, as the original's realistic sets.

    `rng` is np.random or a np.random.RandomState: with the same seed it draws the same
    numbers in the same order as the original (two eigenvalues, an angle, then the noise).
    The kernel_size kernel is re-centred by its centre of mass, resized to out_size
    (bicubic), clipped at 0 and normalised to sum 1.
    """
    min_var, max_var = 0.6 * scale, 5.0 * scale
    lambda_1 = min_var + rng.rand() * (max_var - min_var)
    lambda_2 = min_var + rng.rand() * (max_var - min_var)
    theta = rng.rand() * np.pi
    noise = -noise_level + rng.rand(kernel_size, kernel_size) * noise_level * 2

    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv_cov = np.linalg.inv(rotation @ np.diag([lambda_1, lambda_2]) @ rotation.T)
    # the mean sits half a (scale - 1) pixel right/below the centre, as in the original
    mu = kernel_size // 2 + 0.5 * (scale - kernel_size % 2)
    ys, xs = np.mgrid[0:kernel_size, 0:kernel_size].astype(np.float64)
    offsets = np.stack([xs - mu, ys - mu], axis=-1)  # (x, y) order, as the original's meshgrid
    mahalanobis = np.einsum('...i,ij,...j->...', offsets, inv_cov, offsets)
    raw = np.exp(-0.5 * mahalanobis) * (1 + noise)

    centred = np.maximum(_recentre(raw), 0)
    kernel = centred / centred.sum()
    kernel = cv2.resize(kernel, dsize=(out_size, out_size), interpolation=cv2.INTER_CUBIC)
    kernel = np.maximum(kernel, 0)
    return kernel / kernel.sum()


def _check_kernel(kernel):
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f'blur kernels must be square with an odd size, got shape {kernel.shape}')
    return kernel


def _blur_down64(img, kernel, scale):
    kernel = _check_kernel(kernel)
    img = np.asarray(img, dtype=np.float64)
    if img.ndim < 2:
        raise ValueError(f'blur_down expects an HxW or HxWx... image, got shape {img.shape}')
    height, width = img.shape[:2]
    pad = kernel.shape[0] // 2
    padded = np.pad(img, ((pad, pad), (pad, pad)) + ((0, 0),) * (img.ndim - 2), mode='edge')
    out = np.zeros((-(-height // scale), -(-width // scale)) + img.shape[2:], dtype=np.float64)
    term = np.empty_like(out)
    # Only the kept pixels are computed: one strided slice per kernel tap, so the work
    # is ksize^2 vector operations on the output, not a full-resolution convolution.
    for dy, dx in zip(*np.nonzero(kernel)):
        np.multiply(padded[dy:dy + height:scale, dx:dx + width:scale], kernel[dy, dx], out=term)
        out += term
    return out


def blur_down(img, kernel, scale):
    """Correlate every channel of `img` (HxW, HxWxC or HxWx...) with `kernel` (replicate borders)
    and keep pixels (0, 0), (0, scale), ...: float32, ceil(H/scale) x ceil(W/scale).

    Accumulated in float64; the values are not clamped or rounded (the training sets
    feed them to the network as they are).
    """
    return _blur_down64(img, kernel, scale).astype(np.float32)


def blur_down_uint8(img, kernel, scale):
    """blur_down, clamped to [0, 255] and rounded (halves away from zero) to uint8, as the original's
    torch.round wrote the test sets."""
    return round_half_away_from_zero(np.clip(_blur_down64(img, kernel, scale), 0, 255)).astype(np.uint8)

