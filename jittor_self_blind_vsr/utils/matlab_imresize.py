"""MATLAB's imresize (bicubic or bilinear, antialiased when shrinking), vectorised.

Used where the original feeds the network bicubic-upsampled frames (`--HR_in`).
Each axis is resized by one matrix product; MATLAB's symmetric border handling is
folded into the matrix.
"""
import math

import numpy as np


def _cubic(x):
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def _triangle(x):
    return np.maximum(1 - np.abs(x), 0)


_KERNELS = {'bicubic': (_cubic, 4.0), 'bilinear': (_triangle, 2.0)}


def resize_matrix(in_length, out_length, scale, method='bicubic'):
    """(out_length, in_length) matrix M with resized = M @ signal, as MATLAB computes it."""
    kernel, width = _KERNELS[method]
    if scale < 1:  # shrinking: stretch the kernel to antialias, as MATLAB does
        weight_fn = lambda x: scale * kernel(scale * x)  # noqa: E731
        width = width / scale
    else:
        weight_fn = kernel
    out_pos = np.arange(1, out_length + 1, dtype=np.float64)
    centre = out_pos / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate
    left = np.floor(centre - width / 2)
    taps = int(math.ceil(width)) + 2
    index = left[:, None] + np.arange(taps)[None, :] - 1  # 0-based
    weights = weight_fn(centre[:, None] - index - 1)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    index = mirror[np.mod(index.astype(np.int64), mirror.size)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), index.ravel()), weights.ravel())
    return matrix


def _resize_axis(img, axis, matrix):
    out = np.moveaxis(np.tensordot(matrix, img.astype(np.float64), axes=([1], [axis])), 0, axis)
    if img.dtype == np.uint8:  # MATLAB rounds uint8 images after every pass
        return np.around(np.clip(out, 0, 255)).astype(np.uint8)
    return out


def imresize(img, scalar_scale=None, output_shape=None, method='bicubic'):
    """Resize an HxW or HxWxC image by `scalar_scale` or to `output_shape` (h, w).

    uint8 in, uint8 out (clipped, rounded); any other dtype gives float64.
    """
    if method not in _KERNELS:
        raise ValueError(f'method must be one of {", ".join(_KERNELS)}, not {method!r}')
    img = np.asarray(img)
    if scalar_scale is not None:
        scales = [float(scalar_scale)] * 2
        out_shape = [int(math.ceil(s * n)) for s, n in zip(scales, img.shape[:2])]
    elif output_shape is not None:
        out_shape = [int(n) for n in output_shape]
        scales = [o / n for o, n in zip(out_shape, img.shape[:2])]
    else:
        raise ValueError('imresize needs scalar_scale or output_shape')
    out = img
    # the axis with the smaller scale first, as MATLAB (it matters for uint8 rounding)
    for axis in np.argsort(scales, kind='stable'):
        matrix = resize_matrix(img.shape[axis], out_shape[axis], scales[axis], method)
        out = _resize_axis(out, int(axis), matrix)
    return out
