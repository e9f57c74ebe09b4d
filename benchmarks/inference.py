"""Inference speed on a generated clip.

Reports, per restored frame:
  * pre, forward, post and total time as inference.py measures them (post: the output fetched,
    scored and written as PNG, as the original's post_time), the post share of the total and
    the wall time per frame;
  * the clip restored with per-frame feature reuse against every window run on its own,
    both as `recons_forward` (the same arithmetic without reuse) and as the original's
    `net({'x', 'mode': 'infer'})` (which also estimates the blur kernel).

    python benchmarks/inference.py                      # published model size, LR 64x64, 9 frames
    python benchmarks/inference.py --height 180 --width 320 --frames 7 --json out.json
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

from jittor_self_blind_vsr.model.specification import PUBLISHED_CONFIG
from jittor_self_blind_vsr.runtime import DEVICES, PRECISIONS, import_jittor

CONFIGS = {  # PWC_Recons sizes: the published model and the parity fixtures' small one
    'full': PUBLISHED_CONFIG,
    'small': dict(n_feat=32, extra_RBS=1, recons_RBS=2),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', choices=sorted(CONFIGS), default='full')
    parser.add_argument('--frames', type=int, default=9, help='frames in the clip')
    parser.add_argument('--height', type=int, default=64, help='LR frame height')
    parser.add_argument('--width', type=int, default=64, help='LR frame width')
    parser.add_argument('--repeats', type=int, default=2, help='timed passes over the clip')
    parser.add_argument('--device', choices=DEVICES, default='cpu')
    parser.add_argument('--precision', choices=PRECISIONS, default='exact')
    parser.add_argument('--json', default=None, help='also write the numbers to this file')
    return parser.parse_args(argv)


def make_clip(folder, frames, height, width, seed=0):
    """A smooth random scene panning a few pixels per frame; HR and area-downsampled LR PNGs."""
    from jittor_self_blind_vsr.utils.image_io import write_image
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(rng.random((height * 4 + 4 * frames, width * 4 + 4 * frames, 3), dtype=np.float32),
                              (0, 0), 4)
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255
    for sub in ('HR/clip', 'LR/clip'):
        os.makedirs(os.path.join(folder, sub))
    for i in range(frames):
        hr = canvas[3 * i:3 * i + height * 4, 4 * i:4 * i + width * 4].round().astype(np.uint8)
        write_image(os.path.join(folder, 'HR/clip', f'{i:08d}.png'), hr)
        write_image(os.path.join(folder, 'LR/clip', f'{i:08d}.png'),
                    cv2.resize(hr, (width, height), interpolation=cv2.INTER_AREA))


def build_model(jt, config, path):
    """A model of the chosen size with Jittor's initial weights, saved where the CLI can load it."""
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
    jt.set_global_seed(0)
    net = PWC_Recons(**config)
    net.eval()
    save_state_dict_file(net.numpy_state_dict(), path)
    return net


def run_cli(folder, device, precision):
    from jittor_self_blind_vsr import inference
    out = os.path.join(folder, 'out')
    argv = ['--model_path', os.path.join(folder, 'model.pkl'), '--input_path', os.path.join(folder, 'LR'),
            '--gt_path', os.path.join(folder, 'HR'), '--result_path', out, '--dataset_name', 'bench',
            '--blur_type', 'generated', '--border', '--save_image', 'True', '--device', device,
            '--precision', precision]
    if inference.main(argv) != 0:
        raise SystemExit('inference.py failed on the generated clip')
    with open(os.path.join(out, 'bench', 'generated', 'metrics.json')) as handle:
        return json.load(handle)


def load_frames(folder, frames):
    from jittor_self_blind_vsr.utils.image_io import read_image
    return {i: read_image(os.path.join(folder, 'LR/clip', f'{i:08d}.png')).astype(np.float32)
            .transpose(2, 0, 1)[None] * np.float32(1 / 255) for i in range(frames)}


def compare_reuse(jt, net, frames, n_frames, repeats):
    """Median seconds per frame (wall and process CPU) of three ways to restore the clip.

    The methods alternate window by window, so a change of load on a shared machine hits
    all of them alike; process CPU time (all threads) is insensitive to other processes.
    """
    from jittor_self_blind_vsr.infer.restorer import WindowRestorer
    from jittor_self_blind_vsr.infer.sources import window_indices
    windows = window_indices(n_frames, net.n_sequence, border=True)

    def alone_recons(window):
        return net.recons_forward([jt.array(frames[i]) for i in window])

    def alone_infer(window):
        x = jt.array(np.concatenate([frames[i] for i in window])[None])
        return net({'x': x, 'mode': 'infer'})[0]['recons']

    def one_pass():
        restorer = WindowRestorer(net)
        methods = {'reuse': lambda w: restorer.restore(w, frames), 'windows_recons_forward': alone_recons,
                   'windows_infer_mode': alone_infer}
        wall, cpu = dict.fromkeys(methods, 0.0), dict.fromkeys(methods, 0.0)
        for window in windows:
            for name, method in methods.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                method(window).numpy()  # results fetched, as the CLI does
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
        return ({k: v / len(windows) for k, v in wall.items()}, {k: v / len(windows) for k, v in cpu.items()})

    with jt.no_grad():
        one_pass()  # warm-up: every method compiles its own graph
        passes = [one_pass() for _ in range(repeats)]
    return {kind: {name: statistics.median(p[index][name] for p in passes) for name in passes[0][index]}
            for index, kind in enumerate(('wall', 'cpu'))}


def main(argv=None):
    args = parse_args(argv)
    jt = import_jittor(args.device, args.precision)
    config = CONFIGS[args.config]
    with tempfile.TemporaryDirectory(prefix='sbvsr-bench-') as folder:
        make_clip(folder, args.frames, args.height, args.width)
        net = build_model(jt, config, os.path.join(folder, 'model.pkl'))
        metrics = run_cli(folder, args.device, args.precision)
        reuse = compare_reuse(jt, net, load_frames(folder, args.frames), args.frames, args.repeats)
    total = metrics['total']
    post_share = total['avg_post_time'] / total['avg_total_time']
    saving = {kind: {'vs_recons_forward': 1 - t['reuse'] / t['windows_recons_forward'],
                     'vs_infer_mode': 1 - t['reuse'] / t['windows_infer_mode']} for kind, t in reuse.items()}
    result = dict(
        device=metrics['device'], precision=args.precision, config=args.config, lr_size=[args.height, args.width],
        frames=args.frames,
        cli=dict(forward_per_frame=total['avg_forward_time'], total_per_frame=total['avg_total_time'],
                 pre_per_frame=total['avg_pre_time'], post_per_frame=total['avg_post_time'],
                 wall_per_frame=total['wall_time'] / total['n_frames'],
                 eval_per_frame=total['avg_eval_time'], write_per_frame=total['avg_write_time'],
                 post_share=post_share,
                 warmup_seconds=metrics['warmup'][0]['seconds']),
        per_frame=reuse, saving=saving, post_below_10_percent=post_share < 0.10,
        reuse_at_least_15_percent_faster={kind: s['vs_recons_forward'] >= 0.15 for kind, s in saving.items()})
    cli = result['cli']
    print(f'\n{args.config} model, LR {args.height}x{args.width}, {args.frames} frames, {result["device"]}, '
          f'{args.precision}')
    print(f'inference.py per frame: forward {cli["forward_per_frame"]:.4f}s, total {cli["total_per_frame"]:.4f}s '
          f'(pre {cli["pre_per_frame"]:.4f}s, post {cli["post_per_frame"]:.4f}s = {100 * post_share:.2f}% of total), '
          f'wall {cli["wall_per_frame"]:.4f}s; warm-up {cli["warmup_seconds"]:.1f}s')
    print(f'of post per frame: scoring {cli["eval_per_frame"]:.4f}s, PNG writing {cli["write_per_frame"]:.4f}s')
    for kind in ('wall', 'cpu'):
        t, save = reuse[kind], saving[kind]
        print(f'clip per frame ({kind} time): feature reuse {t["reuse"]:.4f}s, windows alone: recons_forward '
              f'{t["windows_recons_forward"]:.4f}s, infer mode {t["windows_infer_mode"]:.4f}s; reuse saves '
              f'{100 * save["vs_recons_forward"]:.1f}% / {100 * save["vs_infer_mode"]:.1f}%')
    print(f'post-processing below 10%: {result["post_below_10_percent"]}; reuse at least 15% faster than '
          f'windows alone (recons_forward): {result["reuse_at_least_15_percent_faster"]}')
    if args.json:
        from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
        write_bytes_atomic(args.json, json.dumps(result, indent=1).encode('utf-8'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
