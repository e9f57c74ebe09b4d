"""PSNR/SSIM of a model and of aligned bicubic upsampling on a set of clips with ground truth.

    python benchmarks/clip_scores.py --clips DIR [--model_path embedded] --output DIR

DIR holds HR/<clip>/ and LR_blurdown_x4/<clip>/ (what sample_clips and sbvsr-gene-dataset
write). Every frame is restored through sbvsr-infer's code path (border frames included),
then scored as sbvsr-demo scores its clip: uint8 RGB, 4-pixel border cropped, against the
ground truth, next to bicubic upsampling aligned with the decimation grid (demo.bicubic).
Prints one line per clip and the mean over all frames; writes OUTPUT/scores.json.
"""
import argparse
import json
import os
import sys

import numpy as np

from jittor_self_blind_vsr import demo, inference
from jittor_self_blind_vsr.utils.image_io import list_subfolders


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clips', required=True, help='folder with HR/ and LR_blurdown_x4/')
    parser.add_argument('--model_path', default='embedded', help='model file (default: the shipped model)')
    parser.add_argument('--output', required=True, help='a new folder for the restored frames and scores')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    lr_root, hr_root = os.path.join(args.clips, 'LR_blurdown_x4'), os.path.join(args.clips, 'HR')
    status = inference.main(['--input_path', lr_root, '--gt_path', hr_root, '--model_path', args.model_path,
                             '--result_path', args.output, '--dataset_name', 'clips', '--blur_type', 'Gaussian',
                             '--border', 'True', '--device', args.device, '--infer_flag', 'clip_scores'])
    if status:
        return status
    per_clip = {}
    for lr_dir in list_subfolders(lr_root):
        name = os.path.basename(lr_dir)
        paths = {'lr': lr_dir, 'hr': os.path.join(hr_root, name)}
        sr_dir = os.path.join(args.output, 'clips', 'Gaussian', name)
        scores = demo.compare(paths, sr_dir, os.path.join(args.output, 'side_by_side', name))
        per_clip[name] = {key: {'psnr': psnr, 'ssim': ssim} for key, (psnr, ssim) in scores.items()}
        print(f'{name:20s} bicubic {scores["bicubic"][0]:6.2f} dB {scores["bicubic"][1]:.4f}   '
              f'ours {scores["ours"][0]:6.2f} dB {scores["ours"][1]:.4f}')
    # every clip has the same number of frames in the sets sample_clips makes: the mean of clip means
    mean = {key: {m: float(np.mean([c[key][m] for c in per_clip.values()])) for m in ('psnr', 'ssim')}
            for key in ('bicubic', 'ours')}
    print(f'{"mean":20s} bicubic {mean["bicubic"]["psnr"]:6.2f} dB {mean["bicubic"]["ssim"]:.4f}   '
          f'ours {mean["ours"]["psnr"]:6.2f} dB {mean["ours"]["ssim"]:.4f}')
    with open(os.path.join(args.output, 'scores.json'), 'w') as f:
        json.dump({'model_path': args.model_path, 'clips': per_clip, 'mean': mean}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
