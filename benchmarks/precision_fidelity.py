"""How far --precision fast's frames lie from exact's, as a user sees them.

    python benchmarks/precision_fidelity.py --model_path model.pkl --input_path LR --gt_path HR \
        --output OUT [--json fidelity.json] [-- more sbvsr-infer options]

Runs sbvsr-infer twice on the same clips and weights, `--precision exact` into OUT/exact
and `--precision fast` into OUT/fast (OUT must not exist yet), then reports the PSNR of
every fast uint8 frame against the exact one (all pixels; 'identical' when no pixel
differs), the share of pixel values that differ, and each run's PSNR and SSIM against the
ground truth from its metrics.json, with the change fast - exact.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from jittor_self_blind_vsr.utils.image_io import read_image

PRECISIONS = ('exact', 'fast')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model_path', required=True)
    parser.add_argument('--input_path', required=True)
    parser.add_argument('--gt_path', required=True)
    parser.add_argument('--output', type=Path, required=True, help='a new folder for both runs')
    parser.add_argument('--json', help='also write the figures to this file')
    parser.add_argument('infer_options', nargs='*', help='passed to sbvsr-infer (after --)')
    args = parser.parse_args(argv)
    if args.output.exists():
        parser.error(f'{args.output} exists already: give a new folder')
    return args


def restore(args, precision):
    """Run sbvsr-infer at `precision`; return its results folder (the one holding metrics.json)."""
    root = args.output / precision
    command = [sys.executable, '-m', 'jittor_self_blind_vsr.inference', '--input_path', args.input_path,
               '--gt_path', args.gt_path, '--model_path', args.model_path, '--result_path', str(root),
               '--device', 'cpu', '--precision', precision, *args.infer_options]
    subprocess.run(command, check=True)
    found = sorted(root.rglob('metrics.json'))
    if len(found) != 1:
        raise SystemExit(f'expected one metrics.json under {root}, found {len(found)}')
    return found[0].parent


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def compare_frames(exact_dir, fast_dir):
    """Per clip: (min PSNR, mean MSE-based PSNR over the clip, share of differing values)."""
    clips = {}
    for exact_png in sorted(exact_dir.rglob('*.png')):
        relative = exact_png.relative_to(exact_dir)
        a, b = read_image(str(exact_png)), read_image(str(fast_dir / relative))
        clips.setdefault(relative.parent.as_posix(), []).append((a, b))
    out = {}
    for clip, pairs in clips.items():
        exact = np.stack([a for a, _ in pairs])
        fast = np.stack([b for _, b in pairs])
        out[clip] = dict(frames=len(pairs), psnr_clip=psnr(exact, fast),
                         psnr_min_frame=min(psnr(a, b) for a, b in pairs),
                         values_differing=float(np.mean(exact != fast)),
                         max_abs_difference=int(np.abs(exact.astype(int) - fast.astype(int)).max()))
    return out


def main(argv=None):
    args = parse_args(argv)
    dirs = {p: restore(args, p) for p in PRECISIONS}
    metrics = {p: json.loads((dirs[p] / 'metrics.json').read_text()) for p in PRECISIONS}
    frames = compare_frames(dirs['exact'], dirs['fast'])
    report = {'frames_fast_vs_exact': frames, 'gt': {}}
    print('fast against exact (uint8 frames):')
    for clip, row in frames.items():
        print(f'  {clip}: {row["frames"]} frames, PSNR {row["psnr_clip"]:.2f} dB over the clip, lowest frame '
              f'{row["psnr_min_frame"]:.2f} dB, {100 * row["values_differing"]:.4f} % of values differ '
              f'(at most by {row["max_abs_difference"]})')
    print('against the ground truth (metrics.json):')
    for clip in metrics['exact']['videos']:
        row = {p: {k: metrics[p]['videos'][clip][k] for k in ('avg_psnr', 'avg_ssim')} for p in PRECISIONS}
        report['gt'][clip] = row
        print(f'  {clip}: PSNR exact {row["exact"]["avg_psnr"]:.4f} fast {row["fast"]["avg_psnr"]:.4f} '
              f'(change {row["fast"]["avg_psnr"] - row["exact"]["avg_psnr"]:+.4f} dB); SSIM exact '
              f'{row["exact"]["avg_ssim"]:.5f} fast {row["fast"]["avg_ssim"]:.5f} '
              f'(change {row["fast"]["avg_ssim"] - row["exact"]["avg_ssim"]:+.5f})')
    totals = {p: metrics[p]['total'] for p in PRECISIONS}
    report['gt']['total'] = {p: {k: totals[p][k] for k in ('avg_psnr', 'avg_ssim')} for p in PRECISIONS}
    t = report['gt']['total']
    print(f'  all: PSNR change {t["fast"]["avg_psnr"] - t["exact"]["avg_psnr"]:+.4f} dB, SSIM change '
          f'{t["fast"]["avg_ssim"] - t["exact"]["avg_ssim"]:+.5f}')
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
