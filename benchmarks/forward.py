"""Time PWC_Recons 'infer' of the published configuration on 5-frame LR clips.

    python benchmarks/forward.py [--device cpu] [--sizes 64x64 180x320] [--repeat 3]

Weights are random (seeded; the cost does not depend on their values). Each size is
warmed up once (Jittor compiles every new op shape), then timed `--repeat` times.
Prints the mean wall seconds per forward, the CPU seconds this process used per forward
(all threads; on a shared machine wall time depends on the load, also printed), and the
process's peak RSS so far.

oneDNN convolves with its direct kernel by default (runtime.ONEDNN_MAX_CPU_ISA);
`DNNL_MAX_CPU_ISA=ALL` in the environment times its faster brgconv kernel (docs/model.md).
"""
import argparse
import os
import resource
import sys
import time

import numpy as np

from jittor_self_blind_vsr.model.specification import PUBLISHED_CONFIG
from jittor_self_blind_vsr.runtime import PRECISIONS, import_jittor


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 64x64, not {text!r}')
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'size must be positive, not {text!r}')
    return h, w


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def build(jt, seed):
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    net = PWC_Recons(**PUBLISHED_CONFIG)
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in net.numpy_state_dict().items():
        fan_in = max(1, value.size // value.shape[0]) if value.ndim >= 2 else 10000
        state[key] = (rng.standard_normal(value.shape) / np.sqrt(fan_in)).astype(np.float32)
    net.load_numpy_state_dict(state)
    net.eval()
    return net


def time_infer(jt, net, size, repeat, seed):
    h, w = size
    shape = (1, PUBLISHED_CONFIG['n_sequence'], PUBLISHED_CONFIG['n_colors'], h, w)
    x = jt.array(np.random.default_rng(seed).random(shape, dtype=np.float32))
    times, cpu_times = [], []
    with jt.no_grad():
        for i in range(repeat + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            out, _ = net({'x': x, 'mode': 'infer'})
            out['recons'].sync()
            out['est_kernel'].sync()
            jt.sync_all()
            if i > 0:  # the first run compiles
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            del out
            jt.gc()
    return times, cpu_times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=('cpu', 'cuda', 'auto'), default='cpu')
    parser.add_argument('--sizes', type=parse_size, nargs='+', default=[(64, 64), (180, 320)])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--precision', choices=PRECISIONS, default='exact')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error('--repeat must be at least 1')
    try:
        jt = import_jittor(args.device, args.precision)
    except RuntimeError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    net = build(jt, args.seed)
    print(f'device {args.device}, precision {args.precision}, published config {PUBLISHED_CONFIG}')
    for size in args.sizes:
        times, cpu_times = time_infer(jt, net, size, args.repeat, args.seed)
        frames, scale = PUBLISHED_CONFIG['n_sequence'], PUBLISHED_CONFIG['scale']
        print(f'LR {size[0]}x{size[1]} ({frames} frames) -> {size[0] * scale}x{size[1] * scale}: '
              f'mean {np.mean(times):.3f} s per forward over {len(times)} runs '
              f'(min {min(times):.3f}, max {max(times):.3f}), {np.mean(cpu_times):.3f} CPU s per forward; '
              f'peak RSS so far {peak_rss_gb():.2f} GB; load average {os.getloadavg()[0]:.1f} '
              f'on {os.cpu_count()} CPUs', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
