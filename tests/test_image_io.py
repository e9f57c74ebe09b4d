"""image_io: RGB order, format coverage, clear read errors, atomic writes, natural sort."""
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from jittor_self_blind_vsr.utils import image_io
from jittor_self_blind_vsr.utils.image_io import ImageReadError, list_images, read_image, write_image


def test_png_round_trip_keeps_rgb_order(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red
    write_image(tmp_path / 'red.png', rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'red.png')), rgb)  # PIL reads RGB
    np.testing.assert_array_equal(read_image(tmp_path / 'red.png'), rgb)


@pytest.mark.parametrize('mode,ext', [('L', '.png'), ('RGBA', '.png'), ('RGB', '.jpg'), ('RGB', '.bmp')])
def test_other_modes_and_formats_become_hxwx3_uint8(tmp_path, mode, ext):
    pixels = np.random.RandomState(0).randint(0, 256, (6, 7, len(mode)), dtype=np.uint8).squeeze()
    Image.fromarray(pixels, mode).save(tmp_path / f'img{ext}')
    out = read_image(tmp_path / f'img{ext}')
    assert out.shape == (6, 7, 3) and out.dtype == np.uint8
    if mode == 'L':
        np.testing.assert_array_equal(out, np.repeat(pixels[..., None], 3, axis=2))
    elif mode == 'RGBA':
        np.testing.assert_array_equal(out, pixels[..., :3])


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    cv2.imwrite(str(tmp_path / 'deep.png'), np.full((3, 3, 3), 65535, dtype=np.uint16))
    assert (read_image(tmp_path / 'deep.png') == 255).all()


def test_unreadable_files_raise_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match='image file not found'):
        read_image(tmp_path / 'missing.png')
    (tmp_path / 'text.png').write_text('hello')
    with pytest.raises(ImageReadError, match=r'cannot read image \(not a valid PNG/JPEG/BMP file\?\)'):
        read_image(tmp_path / 'text.png')
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(ImageReadError, match='cannot read image'):
        read_image(tmp_path / 'empty.jpg')


# float32 values whose x*255 is a tie (98.5, 149.5, 74.5) in float32 (the original's tensors) but not in float64
ROUNDING_TIES = np.array([0.38627452, 0.5862745, 0.29215688, 1.2, -0.1], dtype=np.float32)


def test_to_uint8_image_rounds_as_the_originals_float32_tensors():
    torch = pytest.importorskip('torch')
    chw = np.tile(ROUNDING_TIES, (3, 2, 1))
    scaled = torch.from_numpy(chw).mul(255.).clamp(0, 255).numpy()
    # PyTorch 0.4.1's round takes the ties up (today's torch.round would give 98, 150, 74)
    expected = np.floor(scaled.astype(np.float64) + 0.5).transpose(1, 2, 0).astype(np.uint8)
    assert expected[0, :3, 0].tolist() == [99, 150, 75]  # float64 arithmetic would give 99, 149, 75
    out = image_io.to_uint8_image(chw)
    assert out.dtype == np.uint8 and out.shape == (2, 5, 3)
    np.testing.assert_array_equal(out, expected)


def test_to_uint8_image_rounds_halves_up_as_pytorch_041():
    # float32 (k + 0.5) / 255 times 255 is exactly k + 0.5 in float32 for every k here
    halves = (np.arange(255, dtype=np.float32) + np.float32(0.5)) / np.float32(255)
    assert ((halves * np.float32(255)) % 1 == 0.5).all()
    out = image_io.to_uint8_image(np.tile(halves, (3, 1, 1)))
    np.testing.assert_array_equal(out[0, :, 0], np.arange(1, 256))  # NumPy's round would give 0, 2, 2, 4, ...


def test_round_half_away_from_zero():
    values = np.array([-2.5, -1.5, -0.5, -0.49999997, 0.49999997, 0.5, 1.5, 2.5, 254.5, 3.2], np.float32)
    out = image_io.round_half_away_from_zero(values)
    assert out.dtype == np.float32
    assert out.tolist() == [-3, -2, -1, 0, 0, 1, 2, 3, 255, 3]
    assert image_io.round_half_away_from_zero(np.float64(100.5)) == 101


def test_image_size_reads_the_header(tmp_path):
    write_image(tmp_path / 'a.png', np.zeros((5, 9, 3), dtype=np.uint8))
    assert image_io.image_size(tmp_path / 'a.png') == (5, 9)
    (tmp_path / 'text.png').write_text('hello')
    with pytest.raises(ImageReadError, match=r'cannot read image \(not a valid PNG/JPEG/BMP file\?\): .*text.png'):
        image_io.image_size(tmp_path / 'text.png')


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / 'frame.png'
    write_image(target, np.zeros((2, 2, 3), dtype=np.uint8))
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(image_io.os, 'replace', broken_replace)
    with pytest.raises(OSError):
        write_image(target, np.full((2, 2, 3), 255, dtype=np.uint8))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ['frame.png']


def test_write_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match='uint8 array'):
        write_image(tmp_path / 'a.png', np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match='extension must be one of'):
        write_image(tmp_path / 'a.tif', np.zeros((2, 2, 3), dtype=np.uint8))


def test_list_images_natural_sorts_and_filters(tmp_path):
    for name in ['frame10.png', 'frame2.PNG', 'frame1.jpg', 'notes.txt', '.hidden.png', 'b.jpeg', 'c.bmp']:
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'dir.png').mkdir()
    names = [os.path.basename(p) for p in list_images(tmp_path)]
    assert names == ['b.jpeg', 'c.bmp', 'frame1.jpg', 'frame2.PNG', 'frame10.png']


def _chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def write_bomb_png(path, width=30000, height=30000):
    """A PNG of a hundred bytes whose header claims width x height RGB pixels (one row of data)."""
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header)
                     + _chunk(b'IDAT', zlib.compress(b'\x00' * (1 + 3 * 16))) + _chunk(b'IEND', b''))
    return path


def test_decompression_bomb_is_one_sentence(tmp_path):
    """PIL raises DecompressionBombError (not an OSError) past twice its limit and only warns below."""
    for side in (30000, 10000):  # 900 and 100 million pixels
        bomb = write_bomb_png(tmp_path / f'bomb{side}.png', side, side)
        assert bomb.stat().st_size < 200
        message = (f'cannot read image {bomb}: its header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels, '
                   'too many for a video frame (a decompression bomb?)')
        for read in (image_io.image_size, read_image):
            with pytest.raises(ImageReadError) as raised:
                read(bomb)
            assert str(raised.value) == message
    assert image_io.image_size(write_bomb_png(tmp_path / 'fine.png', 4000, 3000)) == (3000, 4000)
