"""What the fsync in utils/atomic.py costs per written frame.

    python benchmarks/atomic_write.py [--folder DIR] [--writes 30]

Encodes one smooth 720x1280 RGB frame as PNG, then writes it `--writes` times with
utils.atomic.write_bytes_atomic (temporary file, fsync, rename) and as many times with
the same steps but no fsync, alternating the two in rounds of 10 so both see the same
disk load. Prints the median and max milliseconds per write of each and the encoding time.
"""
import argparse
import os
import statistics
import tempfile
import time

import cv2
import numpy as np

from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic


def frame(height=720, width=1280):
    noise = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255).astype(np.uint8)


def write_without_fsync(path, data):
    temporary = f'{path}.nosync.tmp'
    with open(temporary, 'wb') as handle:
        handle.write(data)
    os.replace(temporary, path)


def timed(write, path, data, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        write(path, data)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--folder', default='.', help='where to write (the disk to measure); default: here')
    parser.add_argument('--writes', type=int, default=30, help='writes of each kind')
    args = parser.parse_args(argv)
    image = frame()
    start = time.perf_counter()
    data = cv2.imencode('.png', image)[1].tobytes()
    encode = time.perf_counter() - start
    results = {'fsync': [], 'no fsync': []}
    with tempfile.TemporaryDirectory(dir=args.folder, prefix='.sbvsr-bench-') as folder:
        path = os.path.join(folder, 'frame.png')
        for _ in range(max(1, args.writes // 10)):
            results['fsync'] += timed(write_bytes_atomic, path, data, 10)
            results['no fsync'] += timed(write_without_fsync, path, data, 10)
    print(f'720x1280 PNG of {len(data) / 1e6:.2f} MB, encoded in {encode * 1e3:.0f} ms')
    for kind, times in results.items():
        print(f'{kind}: median {statistics.median(times) * 1e3:.2f} ms, max {max(times) * 1e3:.2f} ms '
              f'per write over {len(times)} writes')


if __name__ == '__main__':
    main()
