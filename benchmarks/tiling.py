"""Tiled inference: peak memory against frame size, and tiled against untiled output and time.

    python benchmarks/tiling.py memory --sizes 64x64 96x128 128x192          # untiled, fits a line
    python benchmarks/tiling.py memory --sizes 128x192 256x384 --tile 64 --overlap 16
    python benchmarks/tiling.py compare --lr_folder DIR --tile 64 --overlap 16

`memory` runs each size in a fresh process (published model size, Jittor's initial weights,
random frames: memory does not depend on the content): two consecutive 5-frame windows restored
as inference.py does, then the process's peak resident set (ru_maxrss). Untiled, it also fits
peak = a + b * LR pixels by least squares, the line infer/tiling.py estimates with.
`compare` restores every window of the clip of LR PNGs in `--lr_folder` untiled and tiled,
alternating the two window by window so that load on a shared machine hits both alike, and
prints the PSNR (peak 1, on the float outputs) of tiled against untiled and the time of each.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from jittor_self_blind_vsr.model.specification import PUBLISHED_CONFIG
from jittor_self_blind_vsr.runtime import import_jittor


def size(text):
    height, width = text.split('x')
    return int(height), int(width)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('what', choices=('memory', 'compare', 'peak'))
    parser.add_argument('--sizes', type=size, nargs='+', default=[(64, 64), (96, 128), (128, 192)])
    parser.add_argument('--tile', type=int, default=0)
    parser.add_argument('--overlap', type=int, default=16)
    parser.add_argument('--lr_folder', default=None, help='compare: one folder of LR PNG frames')
    return parser.parse_args(argv)


def build_model(jt):
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    jt.set_global_seed(0)
    net = PWC_Recons(**PUBLISHED_CONFIG)
    net.eval()
    return net


def make_restorer(net, frame_size, tile, overlap):
    from jittor_self_blind_vsr.infer.restorer import TiledRestorer, WindowRestorer
    return TiledRestorer(net, frame_size, tile, overlap) if tile else WindowRestorer(net)


def peak(height, width, tile, overlap):
    """Peak RSS (bytes) of two windows restored in this process, and the RSS before them."""
    jt = import_jittor('cpu')
    net = build_model(jt)
    rng = np.random.default_rng(0)
    frames = {i: rng.random((1, 3, height, width), dtype=np.float32) for i in range(6)}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    restorer = make_restorer(net, (height, width), tile, overlap)
    with jt.no_grad():
        for window in ([0, 1, 2, 3, 4], [1, 2, 3, 4, 5]):
            restorer.restore(window, frames).numpy()
            restorer.forget_all_but(set(window[1:]))
    return dict(before=before, peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def memory(args):
    rows = []
    for height, width in args.sizes:
        child = subprocess.run([sys.executable, __file__, 'peak', '--sizes', f'{height}x{width}', '--tile',
                                str(args.tile), '--overlap', str(args.overlap)],
                               capture_output=True, text=True)
        if child.returncode:
            raise SystemExit(f'the measurement at LR {height}x{width} failed:\n{child.stderr}')
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row.update(height=height, width=width, pixels=height * width)
        rows.append(row)
        print(f'LR {height}x{width} tile {args.tile} overlap {args.overlap}: RSS before {row["before"] / 2**30:.2f} '
              f'GiB, peak {row["peak"] / 2**30:.2f} GiB', flush=True)
    if not args.tile and len(rows) > 1:
        slope, intercept = np.polyfit([r['pixels'] for r in rows], [r['peak'] for r in rows], 1)
        print(f'fit: peak = {intercept / 2**30:.3f} GiB + {slope / 1024:.2f} KiB per LR pixel')


def read_clip(folder):
    from jittor_self_blind_vsr.utils.image_io import read_image
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    return {i: read_image(os.path.join(folder, n)).astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255)
            for i, n in enumerate(names)}


def compare(args):
    from jittor_self_blind_vsr.infer.sources import window_indices
    jt = import_jittor('cpu')
    net = build_model(jt)
    frames = read_clip(args.lr_folder)
    frame_size = frames[0].shape[2:]
    windows = window_indices(len(frames), net.n_sequence, border=False)
    restorers = {'untiled': make_restorer(net, frame_size, 0, 0),
                 'tiled': make_restorer(net, frame_size, args.tile, args.overlap)}
    seconds, cpu = dict.fromkeys(restorers, 0.0), dict.fromkeys(restorers, 0.0)
    psnrs = []
    with jt.no_grad():
        for name, restorer in restorers.items():  # warm-up: compile each shape
            restorer.restore(windows[0], frames).numpy()
            restorer.forget_all_but(set())
        for window in windows:
            outputs = {}
            for name, restorer in restorers.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[name] = restorer.restore(window, frames).numpy()
                seconds[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
                restorer.forget_all_but(set(window[1:]))
            mse = float(np.mean((outputs['tiled'].astype(np.float64) - outputs['untiled']) ** 2))
            psnrs.append(10 * np.log10(1 / mse) if mse else float('inf'))
    from jittor_self_blind_vsr.infer.tiling import tile_shape
    tiled = restorers['tiled']
    shape = tile_shape(frame_size, args.tile, args.overlap)
    covered = len(getattr(tiled, 'tiles', [None])) * shape[0] * shape[1] / (frame_size[0] * frame_size[1])
    print(f'LR {frame_size[0]}x{frame_size[1]}, {len(windows)} windows, tile {args.tile} overlap {args.overlap} '
          f'({len(getattr(tiled, "tiles", [None]))} tiles of {shape[0]}x{shape[1]}, {covered:.3f}x the frame\'s '
          f'pixels): PSNR tiled vs untiled min {min(psnrs):.2f} dB, mean {np.mean(psnrs):.2f} dB')
    for kind, times in (('wall', seconds), ('CPU', cpu)):
        print(f'{kind} seconds per frame: untiled {times["untiled"] / len(windows):.2f}, tiled '
              f'{times["tiled"] / len(windows):.2f} (overhead {100 * (times["tiled"] / times["untiled"] - 1):.1f} %)')


def main(argv=None):
    args = parse_args(argv)
    if args.what == 'peak':
        print(json.dumps(peak(*args.sizes[0], args.tile, args.overlap)))
    elif args.what == 'memory':
        memory(args)
    else:
        compare(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
