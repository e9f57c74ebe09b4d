"""Where the tiles of a frame lie, how they are blended, and the tile size a memory budget allows.

No Jittor here: the options are checked and the tile size chosen before the runtime starts.
docs/inference.md ("Large frames: tiling") says what each tile sees and how the memory model
below was measured.
"""
import math

import numpy as np

# Peak resident memory of an untiled inference on the CPU with the published model size
# (n_feat=128, extra_RBS=3, recons_RBS=20), fitted as a line over the LR pixels of the frame
# by benchmarks/tiling.py at LR 64x64, 96x128, 128x192 and 160x256.
BASE_BYTES = 0.229 * 2 ** 30
BYTES_PER_PIXEL = 27.65 * 2 ** 10
# What a tiled run holds besides the tile in work, per LR pixel: every tile keeps each window
# frame's trunk features and the frame itself; every frame of the window keeps its PWC-Net
# pyramid (7.55 channels-worth at full resolution) and the flows (2 channels each) exist on the
# whole frame; PWC-Net's decoder works on the whole frame (its dense concatenations, about 2,300
# channels at 1/16 of the pixels); the HR output exists as six float32 copies' worth (the blend's
# accumulator, its Jittor copy, the fetched result, and the scaling and float64 rounding of the
# results). Checked against a run at LR 720x1280: 5.99 GiB measured, 6.30 GiB estimated.
PYRAMID_CHANNELS = 16 / 4 + 32 / 16 + 64 / 64 + 96 / 256 + 128 / 1024 + 196 / 4096
DECODER_CHANNELS = 2300 / 16
OUTPUT_COPIES = 6
# --precision fast adds the Winograd kernel's transform buffers, sized by the convolution's
# whole image (the HR out_conv's: 36 KiB per LR pixel), and the cached transformed weights
# (the trunk's and PWC-Net's): 0.68, 2.15 and 4.36 GiB peak at LR 64x64, 128x192, 180x320
# (benchmarks/forward.py --precision fast --repeat 1, published size, 2026-12-01). The line
# below, 0.19 GiB and 46 KiB per LR pixel above the exact one, lies at most 0.11 GiB above
# them (it was fitted to 0.69, 2.17 and 4.44 GiB, measured before the trunk's last
# convolution took less memory).
FAST_BASE_BYTES = 0.19 * 2 ** 30
FAST_BYTES_PER_PIXEL = 46 * 2 ** 10
GIB = 2 ** 30
# The smallest tiling allowed: with the embedded model an overlap of 8 LR pixels stayed 57 dB or more
# from the untiled output, 4 gave 43-50 dB, none 24-37 dB (docs/inference.md, "Large frames: tiling").
MIN_OVERLAP = 8
MIN_TILE = 2 * MIN_OVERLAP + 1


def tile_starts(length, tile, overlap):
    """Starts of the tiles of `tile` pixels covering [0, length), neighbours sharing at least `overlap`;
    the last tile ends at the frame's edge, so every tile has the same size (one compiled shape)."""
    if tile >= length:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def tile_length(length, tile, overlap):
    """The tile length along an axis of `length` pixels: the fewest tiles of at most `tile` that cover
    it with `overlap`, made as short as covering allows, so little is computed twice."""
    if not tile or tile >= length:
        return length
    count = math.ceil((length - overlap) / (tile - overlap))
    return math.ceil((length - overlap) / count) + overlap


def tile_shape(size, tile, overlap):
    """(h, w) of the tiles of frames of `size` (h, w) for --tile `tile`; the frame's own size when 0."""
    return tile_length(size[0], tile, overlap), tile_length(size[1], tile, overlap)


def ramp(start, size, length, overlap, scale):
    """HR weights along one axis of a tile. At each edge that lies inside the frame (a neighbour
    covers it too) the weight is 0 over the outer quarter of the overlap, rises linearly over its
    middle half and is 1 beyond: output near a tile's edge, where the network saw the tile's
    border instead of the frame, is not used, and neighbours cross-fade in between."""
    distance = (np.arange(size * scale, dtype=np.float64) + 0.5) / scale  # LR pixels from the tile's start
    weight = np.ones(size * scale)
    if overlap:
        def rise(d):
            return np.clip((d - overlap / 4) / (overlap / 2), 0, 1)
        if start > 0:
            weight = np.minimum(weight, rise(distance))
        if start + size < length:
            weight = np.minimum(weight, rise(size - distance))
    return weight


def estimated_peak(size, tile, overlap, n_seq, n_feat, scale, precision='exact'):
    """Bytes of peak memory of restoring frames of `size` (LR h, w) with this tiling (0: off)."""
    tile_h, tile_w = tile_shape(size, tile, overlap)
    in_work = tile_h * tile_w
    base, per_pixel = BASE_BYTES, BYTES_PER_PIXEL
    if precision == 'fast':
        base, per_pixel = base + FAST_BASE_BYTES, per_pixel + FAST_BYTES_PER_PIXEL
    if not tile:
        return base + per_pixel * in_work
    covered = len(tile_starts(size[0], tile_h, overlap)) * tile_h * len(tile_starts(size[1], tile_w, overlap)) * tile_w
    frame = size[0] * size[1]
    tiles = 4 * n_seq * (n_feat + 3) * (covered - in_work)
    flow = 4 * (n_seq * PYRAMID_CHANNELS + 2 * (n_seq - 1) + DECODER_CHANNELS) * frame
    output = OUTPUT_COPIES * 4 * 3 * scale * scale * frame
    return base + per_pixel * in_work + tiles + flow + output


def _tiles(size, overlap):
    """Every --tile worth trying on frames of `size`, largest first."""
    return range(max(size) - 1, max(2 * overlap, MIN_TILE - 1), -1)


def choose_tile(budget_gib, size, overlap, n_seq, n_feat, scale, precision='exact'):
    """The largest tile (0: none needed) whose estimated peak fits `budget_gib`; None if none does."""
    budget = budget_gib * GIB
    if estimated_peak(size, 0, overlap, n_seq, n_feat, scale, precision) <= budget:
        return 0
    return next((tile for tile in _tiles(size, overlap)
                 if estimated_peak(size, tile, overlap, n_seq, n_feat, scale, precision) <= budget), None)


def smallest_budget_gib(size, overlap, n_seq, n_feat, scale, precision='exact'):
    """GiB of the tiling (or none) of frames of `size` with `overlap` that needs the least memory."""
    tiles = (0, *_tiles(size, overlap))
    return min(estimated_peak(size, tile, overlap, n_seq, n_feat, scale, precision) for tile in tiles) / GIB
