"""--lr_grid on centre-aligned footage: LR frames made by area downscaling (cv2.INTER_AREA, as
cameras and ffmpeg sample), restored with --lr_grid corner and centre, against plain bicubic.

    python benchmarks/centre_grid.py --clips DIR --output DIR [--model_path embedded]

DIR holds HR/<clip>/ (sample_clips). Scores: uint8 RGB PSNR/SSIM, 4-pixel border cropped, against
the HR frames, every frame (border frames included), mean over the clips' frames.
"""
import argparse
import os
import sys

import cv2
import numpy as np

from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.utils.image_io import list_images, list_subfolders, read_image, write_image
from jittor_self_blind_vsr.utils.metrics import calc_psnr, calc_ssim

SCALE = 4


def area_down(image):
    height, width = image.shape[:2]
    return cv2.resize(image, (width // SCALE, height // SCALE), interpolation=cv2.INTER_AREA)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clips', required=True)
    parser.add_argument('--output', required=True, help='a new folder')
    parser.add_argument('--model_path', default='embedded')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    hr_root, lr_root = os.path.join(args.clips, 'HR'), os.path.join(args.output, 'LR_area_x4')
    for hr_dir in list_subfolders(hr_root):
        os.makedirs(os.path.join(lr_root, os.path.basename(hr_dir)))
        for path in list_images(hr_dir):
            write_image(os.path.join(lr_root, os.path.basename(hr_dir), os.path.basename(path)),
                        area_down(read_image(path)))
    scores = {}
    for grid in ('corner', 'centre'):
        status = inference.main(['--input_path', lr_root, '--gt_path', hr_root, '--model_path', args.model_path,
                                 '--result_path', os.path.join(args.output, grid), '--dataset_name', 'clips',
                                 '--blur_type', 'area', '--border', 'True', '--device', args.device,
                                 '--lr_grid', grid, '--infer_flag', f'centre_grid {grid}'])
        if status:
            return status
    for hr_dir in list_subfolders(hr_root):
        name = os.path.basename(hr_dir)
        for path in list_images(hr_dir):
            gt, frame = read_image(path), os.path.basename(path)
            lr = read_image(os.path.join(lr_root, name, frame))
            outputs = {'bicubic (cv2.resize)': cv2.resize(lr, gt.shape[1::-1], interpolation=cv2.INTER_CUBIC)}
            for grid in ('corner', 'centre'):
                outputs[f'model, --lr_grid {grid}'] = read_image(
                    os.path.join(args.output, grid, 'clips', 'area', name, os.path.splitext(frame)[0] + '.png'))
            for key, image in outputs.items():
                scores.setdefault(key, {}).setdefault(name, []).append((calc_psnr(image, gt), calc_ssim(image, gt)))
    for key, clips in scores.items():
        per_clip = '  '.join(f'{name} {np.mean(v, axis=0)[0]:.2f}' for name, v in clips.items())
        mean = np.mean([s for v in clips.values() for s in v], axis=0)
        print(f'{key:24s} {mean[0]:6.2f} dB {mean[1]:.4f}   {per_clip}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
