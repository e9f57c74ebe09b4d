"""Border seams and the 4-pixel grid: a model's restored frames against aligned bicubic on the same frames.

    python benchmarks/artifacts.py --clips DIR --results DIR

DIR holds HR/<clip>/ and LR_blurdown_x4/<clip>/ (sample_clips); RESULTS holds the restored
frames as benchmarks/clip_scores.py writes them (RESULTS/clips/Gaussian/<clip>/). For each,
on uint8 RGB frames:
- border ratio: mean absolute error of the 8 outermost columns (4 on each side) over that of
  the interior columns (8 pixels in from each side), every frame of every clip;
- grid: mean |horizontal neighbour difference| at columns x = 0, 1, 2, 3 mod 4, and likewise
  for rows; its spread (max - min over mean) is 0 for an image without a 4-pixel pattern;
- colour: mean signed error per channel (R, G, B).
"""
import argparse
import os
import sys

import numpy as np

from jittor_self_blind_vsr import demo
from jittor_self_blind_vsr.utils.image_io import list_images, list_subfolders, read_image

EDGE = 4


def border_ratio(errors):
    """errors: (N, H, W) absolute errors -> border columns' mean over the interior's."""
    columns = errors.mean(axis=(0, 1))
    return np.concatenate([columns[:EDGE], columns[-EDGE:]]).mean() / columns[2 * EDGE:-2 * EDGE].mean()


def grid_spread(images):
    """(N, H, W, 3) images -> (spread along x, spread along y) of the mean neighbour difference by position mod 4."""
    spreads = []
    for axis in (2, 1):
        diff = np.abs(np.diff(images.astype(np.float64), axis=axis)).mean(axis=(0, 3, 1 if axis == 2 else 2))
        phases = np.array([diff[k::4].mean() for k in range(4)])
        spreads.append((phases.max() - phases.min()) / phases.mean())
    return tuple(spreads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clips', required=True)
    parser.add_argument('--results', required=True)
    args = parser.parse_args(argv)
    frames = {'bicubic': [], 'ours': []}
    truth = []
    for lr_dir in list_subfolders(os.path.join(args.clips, 'LR_blurdown_x4')):
        name = os.path.basename(lr_dir)
        sr_dir = os.path.join(args.results, 'clips', 'Gaussian', name)
        for lr, sr, hr in zip(list_images(lr_dir), list_images(sr_dir), list_images(os.path.join(args.clips, 'HR', name))):
            gt = read_image(hr)
            frames['bicubic'].append(demo.bicubic(read_image(lr)))
            frames['ours'].append(read_image(sr))
            truth.append(gt)
    # clips differ in size: each statistic is computed per frame size group, weighted by frames
    print(f'{"":8s} {"border ratio":>12s} {"grid x":>7s} {"grid y":>7s} {"colour R/G/B":>20s}')
    for name, images in frames.items():
        ratios, grids, colours, weights = [], [], [], []
        for shape in sorted({f.shape for f in truth}):
            group = [i for i, f in enumerate(truth) if f.shape == shape]
            out = np.stack([images[i] for i in group]).astype(np.float64)
            gt = np.stack([truth[i] for i in group]).astype(np.float64)
            ratios.append(border_ratio(np.abs(out - gt).mean(axis=3)))
            grids.append(grid_spread(out))
            colours.append((out - gt).mean(axis=(0, 1, 2)))
            weights.append(len(group))
        w = np.array(weights, np.float64) / sum(weights)
        grid = np.average(np.array(grids), axis=0, weights=w)
        colour = np.average(np.array(colours), axis=0, weights=w)
        print(f'{name:8s} {np.average(ratios, weights=w):12.3f} {grid[0]:7.3f} {grid[1]:7.3f} '
              f'{colour[0]:+6.2f} {colour[1]:+6.2f} {colour[2]:+6.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
