"""Subpixel shifts of images on their own pixel grid (cubic, border pixels repeated, as cv2.resize)."""
import cv2
import numpy as np

# Where LR pixel i sits on the HR grid. corner: HR pixel scale*i, as the dataset script and
# the published models decimate; centre: HR scale*i + (scale-1)/2, as cameras, ffmpeg scaling
# and area or bicubic downscaling sample.
LR_GRIDS = ('corner', 'centre')


def grid_offset(lr_grid, scale):
    """HR pixels by which the LR grid `lr_grid` sits past the corner grid the models assume."""
    return (scale - 1) / 2.0 if lr_grid == 'centre' else 0.0


def shift(image, offset):
    """`image` (H, W, C) float32 moved by `offset` pixels right and down: out(x) = image(x - offset)."""
    height, width = image.shape[:2]
    map_x = np.tile(np.arange(width, dtype=np.float32) - np.float32(offset), (height, 1))
    map_y = np.tile((np.arange(height, dtype=np.float32) - np.float32(offset))[:, None], (1, width))
    out = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)  # cv2 drops a single channel's axis
