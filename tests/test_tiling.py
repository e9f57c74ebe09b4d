"""Tiled inference: the tiles cover the frame and their blend weights sum to one, one tile is the
untiled output bit for bit, several tiles stay close to it on real frames, the memory budget
picks a tile that fits it, and bad tiling options are one sentence before any work."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from conftest import REPO, parity_file
from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer import sources, tiling
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
from jittor_self_blind_vsr.utils.image_io import read_image, write_image
from parity_weights import seeded_state
from test_option_ranges import exit_status

N_FRAMES = 6


def lr_frames(height, width):
    """{index: (1,3,h,w) float32}: the astronaut panning 3 px down and 2 px right per HR frame,
    area-downsampled by 4."""
    source = skdata.astronaut()
    frames = {}
    for i in range(N_FRAMES):
        hr = source[60 + 3 * i:60 + 3 * i + 4 * height, 100 + 2 * i:100 + 2 * i + 4 * width]
        lr = cv2.resize(hr, (width, height), interpolation=cv2.INTER_AREA)
        frames[i] = (lr.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255))[None]
    return frames


@pytest.fixture(scope='module')
def net():
    jt = import_jittor('auto')
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    model = PWC_Recons(n_feat=32, extra_RBS=1, recons_RBS=2)
    model.load_numpy_state_dict(seeded_state(parity_file('small_config_keys.tsv'), 0))
    model.eval()
    return jt, model


def restore_all(jt, restorer, frames):
    outputs = []
    with jt.no_grad():
        for window in sources.window_indices(N_FRAMES, 5, border=True):
            outputs.append(restorer.restore(window, frames).numpy())
            restorer.forget_all_but(set(window[1:]))
    return np.concatenate(outputs)


@pytest.mark.parametrize('length,tile,overlap,count', [(64, 32, 8, 3), (70, 32, 8, 3), (33, 32, 15, 2), (64, 40, 16, 2),
                                                       (40, 16, 0, 3), (20, 32, 4, 1), (1280, 400, 16, 4)])
def test_tiles_cover_the_frame_and_their_weights_cross_fade(length, tile, overlap, count):
    size = tiling.tile_length(length, tile, overlap)
    starts = tiling.tile_starts(length, size, overlap)
    assert len(starts) == count and size <= tile
    assert starts[0] == 0 and starts[-1] + size == length
    strides = [b - a for a, b in zip(starts, starts[1:])]
    assert all(stride <= size - overlap for stride in strides)  # neighbours share >= overlap
    assert count * size - length < count * (overlap + 1)  # shortened: little is computed twice
    total = np.zeros(length * 4)
    for start in starts:
        total[start * 4:(start + size) * 4] += tiling.ramp(start, size, length, overlap, 4)
    assert total.min() > 0
    if overlap and all(stride == size - overlap for stride in strides):
        np.testing.assert_allclose(total, 1.0, rtol=1e-12)  # the ramps cross-fade exactly


def test_one_tile_covering_the_frame_is_the_untiled_output(net):
    jt, model = net
    from jittor_self_blind_vsr.infer.restorer import TiledRestorer, WindowRestorer
    frames = lr_frames(24, 32)
    untiled = restore_all(jt, WindowRestorer(model), frames)
    tiled = TiledRestorer(model, (24, 32), 32, 8)
    assert len(tiled.tiles) == 1
    np.testing.assert_array_equal(restore_all(jt, tiled, frames), untiled)


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2))


def test_several_tiles_stay_close_to_the_untiled_output(net):
    jt, model = net
    from jittor_self_blind_vsr.infer.restorer import TiledRestorer, WindowRestorer
    frames = lr_frames(48, 64)
    untiled = restore_all(jt, WindowRestorer(model), frames)
    blended = TiledRestorer(model, (48, 64), 40, 16)
    assert len(blended.tiles) == 4
    assert psnr(restore_all(jt, blended, frames), untiled) > 48  # 50.6 dB when written
    # the same tiles without overlap (hard seams at the tiles' edges) are far off: the overlap matters
    seams = TiledRestorer(model, (48, 64), 40, 0)
    assert len(seams.tiles) == 4
    assert psnr(restore_all(jt, seams, frames), untiled) < 25  # 13.8 dB


def test_the_budget_picks_the_largest_tile_that_fits():
    size, args = (720, 1280), dict(overlap=16, n_seq=5, n_feat=128, scale=4)
    untiled = tiling.estimated_peak(size, 0, **args) / tiling.GIB
    assert tiling.choose_tile(untiled * 1.01, size, **args) == 0
    budget = untiled / 4
    tile = tiling.choose_tile(budget, size, **args)
    assert 32 < tile < 720
    assert tiling.estimated_peak(size, tile, **args) <= budget * tiling.GIB
    assert tiling.estimated_peak(size, tile + 1, **args) > budget * tiling.GIB
    smallest = tiling.smallest_budget_gib(size, **{k: args[k] for k in ('overlap', 'n_seq', 'n_feat', 'scale')})
    assert tiling.choose_tile(smallest * 0.99, size, **args) is None


@pytest.mark.parametrize('argv,message', [
    (['--tile', '32', '--tile_overlap', '16'], '--tile_overlap 16 must be smaller than half of --tile 32'),
    (['--tile', '32', '--max_memory', '4'], 'give --tile or --max_memory, not both'),
    (['--tile', '-1'], "argument --tile: must be an integer >= 0, not '-1'"),
    (['--tile_overlap', '-2'], "argument --tile_overlap: must be an integer >= 0, not '-2'"),
    (['--max_memory', '0'], "argument --max_memory: must be a finite number > 0, not '0'"),
])
def test_bad_tiling_options_are_one_sentence(argv, message, capsys):
    code, line = exit_status(inference.main, argv, capsys)
    assert code == 2 and line.endswith(message)


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """A folder with LR/clip/<frame>.png (the astronaut at LR 48x64) and small.pkl."""
    root = tmp_path_factory.mktemp('tiling')
    (root / 'LR' / 'clip').mkdir(parents=True)
    for i, frame in lr_frames(48, 64).items():
        write_image(root / 'LR' / 'clip' / f'{i:08d}.png', np.round(frame[0].transpose(1, 2, 0) * 255).astype(np.uint8))
    save_state_dict_file(seeded_state(parity_file('small_config_keys.tsv'), 0), root / 'small.pkl')
    return root


def cli(clip, out, *extra):
    return ['--model_path', str(clip / 'small.pkl'), '--input_path', str(clip / 'LR'), '--result_path', str(out),
            '--dataset_name', 'clip', '--blur_type', 'x', '--border', *extra]


def test_the_cli_restores_by_tiles(clip, tmp_path):
    assert inference.main(cli(clip, tmp_path / 'whole')) == 0
    assert inference.main(cli(clip, tmp_path / 'tiled', '--tile', '40', '--tile_overlap', '16')) == 0
    whole, tiled = tmp_path / 'whole' / 'clip' / 'x', tmp_path / 'tiled' / 'clip' / 'x'
    log = next(tiled.glob('inference_log*.txt')).read_text()
    # 2x2 tiles of 32x40 (rows 0-31 and 16-47, columns 0-39 and 24-63); the memory model's peak, by hand:
    # 0.229 GiB + 27.65 KiB x 1280 (tile) + 4 x 5 x 35 x 3840 (the other tiles' features) + 4 x 189.49 x 3072
    # (pyramids, flows, decoder) + 6 x 4 x 3 x 16 x 3072 (HR output) bytes = 0.2707 GiB
    assert ('# Tiles of LR 48x64: 4 per frame of 32x40 LR pixels (--tile 40), overlap 16 LR pixels; estimated peak '
            'memory 0.27 GiB (CPU)') in log.splitlines()
    names = sorted(p.relative_to(whole) for p in whole.rglob('*.png'))
    assert len(names) == N_FRAMES and names == sorted(p.relative_to(tiled) for p in tiled.rglob('*.png'))
    for name in names:
        assert psnr(read_image(tiled / name) / 255.0, read_image(whole / name) / 255.0) > 45


@pytest.mark.parametrize('argv, line', [
    (['--max_memory', '0.28'], '# Tiles of LR 48x64: 4 per frame of 32x40 LR pixels (--tile 47 chosen), overlap 16 LR '
                               'pixels; memory budget 0.28 GiB (--max_memory), estimated peak memory 0.27 GiB (CPU)'),
    (['--max_memory', '0.27', '--tile_overlap', '8'],
     # 2 rows of 28 (0-27, 20-47) by 2 columns of 36 (0-35, 28-63)
     '# Tiles of LR 48x64: 4 per frame of 28x36 LR pixels (--tile 47 chosen), overlap 8 LR pixels; memory budget '
     '0.27 GiB (--max_memory), estimated peak memory 0.26 GiB (CPU)'),
    # untiled: 0.229 GiB + 27.65 KiB x 3072 = 0.310 GiB
    (['--max_memory', '0.5'], '# Tiles of LR 48x64: none, whole frames; memory budget 0.5 GiB (--max_memory), '
                              'estimated peak memory 0.31 GiB (CPU)'),
    (['--tile', '64'], '# Tiles of LR 48x64: none, whole frames; estimated peak memory 0.31 GiB (CPU)'),
    ([], None),
])
def test_the_tiling_line_names_tiles_overlap_and_memory(argv, line):
    args = inference.parse_args(argv)
    config = {'n_feat': 32}
    tile = inference.tile_sizes(args, [(48, 64)], config)[48, 64]
    assert inference.tiling_line(args, (48, 64), tile, config) == line


def test_a_budget_too_small_for_the_frame_is_one_sentence_before_any_work(clip, tmp_path, capsys):
    code, line = exit_status(inference.main, cli(clip, tmp_path / 'out', '--max_memory', '0.01'), capsys)
    assert code == 1
    assert 'sbvsr-infer: --max_memory 0.01 GiB is too small for LR frames of 48x64: they need about' in line
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_peak_memory_stays_within_the_budget(tmp_path):
    """The published model size on LR 128x192 frames, which untiled peak at about 0.87 GiB:
    --max_memory 0.6 chooses tiles and the process stays within 0.6 GiB."""
    source = cv2.resize(skdata.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    (tmp_path / 'LR' / 'clip').mkdir(parents=True)
    for i in range(N_FRAMES):
        write_image(tmp_path / 'LR' / 'clip' / f'{i:08d}.png', source[100 + i:228 + i, 50 + 2 * i:242 + 2 * i].copy())
    save_state_dict_file(seeded_state(parity_file('full_config_keys.tsv'), 1), tmp_path / 'full.pkl')
    budget = 0.6
    assert tiling.estimated_peak((128, 192), 0, 16, 5, 128, 4) > budget * tiling.GIB
    # VmHWM, not ru_maxrss: a child forked from this process starts with this process's ru_maxrss
    measure = ('import sys; from jittor_self_blind_vsr import inference; '
               'code = inference.main(sys.argv[1:]); '
               'hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")); '
               'print("PEAK", int(hwm.split()[1]) * 1024); sys.exit(code)')
    argv = ['--model_path', str(tmp_path / 'full.pkl'), '--input_path', str(tmp_path / 'LR'),
            '--result_path', str(tmp_path / 'out'), '--dataset_name', 'clip', '--device', 'cpu',
            '--max_memory', str(budget)]
    child = subprocess.run([sys.executable, '-c', measure, *argv], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert child.returncode == 0, child.stderr[-2000:]
    peak = int(child.stdout.split('PEAK')[-1])
    log = next((tmp_path / 'out' / 'clip' / 'unknown').glob('inference_log*.txt')).read_text()
    assert '# Tiles of LR 128x192:' in log
    assert peak <= budget * tiling.GIB, f'peak {peak / tiling.GIB:.2f} GiB'
