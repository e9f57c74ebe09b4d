"""Reading, writing and listing video frames.

Every image in the project goes through here, so colour order (RGB in memory),
supported formats and error wording are decided once.
"""
import os
import re
import warnings

import cv2
import numpy as np
from PIL import Image

from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.cli import UserError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')


class ImageReadError(UserError, ValueError):
    """An image file is missing, not an image, or cannot be decoded."""


def natural_key(name):
    """Sort key that orders 'frame2' before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder):
    """Paths of the image files directly inside `folder`, natural-sorted (hidden files skipped)."""
    names = [n for n in os.listdir(folder)
             if is_image_file(n) and not n.startswith('.') and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def list_subfolders(folder):
    """Paths of the non-hidden sub-folders of `folder`, natural-sorted."""
    names = [n for n in os.listdir(folder)
             if not n.startswith('.') and os.path.isdir(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def read_image(path):
    """Decode `path` into an HxWx3 uint8 RGB array.

    Grey images are expanded to three channels, alpha is dropped and 16-bit images are
    scaled to 8 bits (OpenCV's IMREAD_COLOR). Raises ImageReadError when the file is
    missing or cannot be decoded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(f'image file not found: {path}')
    # imdecode on the raw bytes instead of imread: imread fails silently on some paths
    # (non-ASCII on other platforms) and cannot tell "missing" from "corrupt".
    image_size(path)  # the header first: OpenCV would allocate whatever size it claims
    data = np.fromfile(path, dtype=np.uint8)
    # EXIF orientation is ignored so the array matches the stored pixel grid (and PIL's size)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(data, flags) if data.size else None
    if bgr is None:
        raise ImageReadError(f'cannot read image (not a valid PNG/JPEG/BMP file?): {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def round_half_away_from_zero(values):
    """Nearest integers (same dtype), halves away from zero: C's round(), which PyTorch 0.4.1's
    torch.round uses and the original's uint8 images went through (NumPy's round takes halves
    to even, as torch.round does since). Exact: x - floor(|x|) has no rounding error."""
    magnitude = np.abs(values)
    whole = np.floor(magnitude)
    return np.copysign(whole + (magnitude - whole >= 0.5), values)


def to_uint8_image(chw):
    """A (C, H, W) network output in [0, 1] as an HxWxC uint8 image, as the original's tensor2numpy
    and postprocess: times 255 in float32, clamped, rounded halves away from zero."""
    image = round_half_away_from_zero(np.clip(np.asarray(chw, np.float32) * np.float32(255), 0, 255))
    return image.transpose(1, 2, 0).astype(np.uint8)


def image_size(path, verify=False):
    """(height, width) from the file's header, without decoding the pixels; ImageReadError when
    unreadable or when the header claims more pixels than PIL's decompression-bomb limit
    (Image.MAX_IMAGE_PIXELS). `verify` also checks the whole file where the format allows."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between the limit and twice it: refuse both alike
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if verify:
                    image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f'cannot read image {path}: its header claims more than {Image.MAX_IMAGE_PIXELS:,} '
                             f'pixels, too many for a video frame (a decompression bomb?)') from None
    except (OSError, ValueError, SyntaxError):
        raise ImageReadError(f'cannot read image (not a valid PNG/JPEG/BMP file?): {path}') from None
    return height, width


def _encode(path, rgb):
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f'write_image expects an HxW or HxWx3 uint8 array, got {image.dtype} {image.shape}')
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f'cannot write {path}: the extension must be one of {", ".join(IMAGE_EXTENSIONS)}')
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(ext, image)
    if not ok:
        raise ValueError(f'OpenCV could not encode {path}')
    return encoded.tobytes()


def write_image(path, rgb):
    """Save an HxWx3 RGB (or HxW grey) uint8 array; the format follows the extension. Returns the
    file's bytes (for a checksum of what was written)."""
    data = _encode(os.fspath(path), rgb)
    write_bytes_atomic(path, data)
    return data


def is_inside(path, folder):
    """True when `path` is `folder` or lies inside it, links resolved (neither needs to exist)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder
