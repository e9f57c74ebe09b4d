"""Generate a blur-down test set from HR video frames, as the original script.

    python script_gene_dataset_blurdown.py --HR_root DIR --save_root DIR --type Gaussian|Realistic

Input: HR_root/<video>/<frame>.png|jpg|jpeg|bmp. Output, per video and frame:
save_root/HR/<video>/<frame>.png (the HR frame), save_root/LR_blurdown_x4/<video>/<frame>.png
(blurred with the video's kernel, every 4th pixel kept, rounded to uint8) and
save_root/kernel/<video>/<frame>.mat (the kernel, key 'kernel'). One kernel per video:
Gaussian sigma 1.2 (9x9), or a random 13x13 realistic kernel drawn from --seed.
When HR_root is save_root/HR (the original's own usage) the HR frames are left in place.
The files are written into a hidden staging folder in save_root and moved into place only
when all are written, so an error, a full disk or Ctrl-C leaves save_root as it was.
"""
import argparse
import io
import os
import shutil
import sys
import tempfile

import numpy as np
from scipy import io as scio
from tqdm import tqdm

from jittor_self_blind_vsr.option import positive_int, seed_int
from jittor_self_blind_vsr.utils import degradation, interrupt
from jittor_self_blind_vsr.utils.cli import UserError, run_command
from jittor_self_blind_vsr.utils.image_io import (
    image_size, list_images, list_subfolders, read_image, write_bytes_atomic, write_image)

KERNEL_TYPES = ('Gaussian', 'Realistic')
STAGING_PREFIX = '.sbvsr-gene-dataset.partial-'


class GenerationError(UserError):
    """Bad input for the generation script; the message is one sentence for the user."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Blur and decimate HR video frames into a test set (HR/, LR_blurdown_x<scale>/, kernel/).')
    parser.add_argument('--HR_root', required=True, help='folder of video folders of HR frames')
    parser.add_argument('--save_root', required=True, help='output folder')
    parser.add_argument('--type', choices=KERNEL_TYPES, default='Gaussian', help='blur kernel family')
    parser.add_argument('--scale', type=positive_int, default=4, help='decimation factor (default 4)')
    parser.add_argument('--seed', type=seed_int, default=0, help='seed of the realistic kernels (default 0)')
    parser.add_argument('--crop', action='store_true',
                        help='crop frames whose size is not a multiple of --scale at the bottom/right '
                             '(without it such frames are refused)')
    return parser.parse_args(argv)


def plan_videos(hr_root, scale, crop):
    """[(video, [frame paths], (height, width), (height, width) to keep)], every frame checked
    before anything is written."""
    if not os.path.isdir(hr_root):
        raise GenerationError(f'HR_root {hr_root} does not exist or is not a folder')
    folders = list_subfolders(hr_root)
    if not folders:
        raise GenerationError(f'HR_root {hr_root} contains no video folders (expected HR_root/<video>/<frames>)')
    videos = []
    for folder in folders:
        frames = list_images(folder)
        if not frames:
            raise GenerationError(f'video folder {folder} contains no PNG/JPEG/BMP frames')
        stems = [os.path.splitext(os.path.basename(f))[0] for f in frames]
        if len(set(stems)) != len(stems):
            raise GenerationError(f'video folder {folder} holds two frames with the same name and '
                                  'different extensions, which would write the same output file')
        sizes = {image_size(f, verify=True) for f in frames}
        if len(sizes) != 1:
            raise GenerationError(f'the frames of video folder {folder} do not all have the same size')
        height, width = sizes.pop()
        if (height % scale or width % scale) and not crop:
            raise GenerationError(f'the frames of {folder} are {width}x{height}, not a multiple of the scale '
                                  f'{scale}; pass --crop to crop them at the bottom/right')
        keep = (height - height % scale, width - width % scale)
        if 0 in keep:
            raise GenerationError(f'the frames of {folder} ({width}x{height}) are smaller than the scale {scale}')
        videos.append((os.path.basename(folder), frames, (height, width), keep))
    return videos


def make_kernel(kind, rng, scale):
    if kind == 'Gaussian':
        return degradation.gaussian_kernel(degradation.TEST_SIGMA)
    return degradation.random_realistic_kernel(rng, scale=scale)


def save_kernel(path, kernel):
    buffer = io.BytesIO()
    scio.savemat(buffer, {'kernel': kernel})
    write_bytes_atomic(path, buffer.getvalue())


def output_dirs(save_root, scale):
    return {'hr': os.path.join(save_root, 'HR'),
            'lr': os.path.join(save_root, f'LR_blurdown_x{scale}'),
            'kernel': os.path.join(save_root, 'kernel')}


def _missing_folders(path):
    """`path` and its parents that do not exist yet, innermost first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def commit(staging, save_root):
    """Move every staged file to its place under save_root (replacing a file of the same name)."""
    with interrupt.deferred():
        for folder, _, files in os.walk(staging):
            target = os.path.join(save_root, os.path.relpath(folder, staging))
            os.makedirs(target, exist_ok=True)
            for name in files:
                os.replace(os.path.join(folder, name), os.path.join(target, name))


def generate(hr_root, save_root, kind='Gaussian', scale=4, seed=0, crop=False, progress=True):
    """Write the test set; returns the number of frames written. On any error or interrupt,
    save_root is left as it was."""
    videos = plan_videos(hr_root, scale, crop)
    hr_dir = output_dirs(save_root, scale)['hr']
    in_place = os.path.isdir(hr_dir) and os.path.samefile(hr_root, hr_dir)
    cropped = [(video, size, keep) for video, _, size, keep in videos if size != keep]
    if in_place and cropped:
        raise GenerationError(f'HR_root is {hr_dir}, whose frames would have to be cropped in place; '
                              'give another --save_root')
    for video, (height, width), (keep_h, keep_w) in cropped:
        print(f'note: cropping the frames of {video} from {width}x{height} to {keep_w}x{keep_h}', file=sys.stderr)
    created = _missing_folders(save_root)
    staging = None
    try:
        os.makedirs(save_root, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=save_root)
        total = _generate(videos, output_dirs(staging, scale), in_place, kind, scale, seed, progress)
        commit(staging, save_root)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in created:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        raise
    # the frames are in place: a signal now must not leave the emptied staging folder half removed
    with interrupt.deferred():
        shutil.rmtree(staging, ignore_errors=True)
    return total


def _generate(videos, dirs, in_place, kind, scale, seed, progress):
    """Write the set into the folders `dirs` (hr, lr, kernel); HR only when not in place."""
    for key, folder in dirs.items():
        for video, *_ in videos:
            if key == 'hr' and in_place:
                continue
            os.makedirs(os.path.join(folder, video), exist_ok=True)
    rng = np.random.RandomState(seed)
    total = sum(len(frames) for _, frames, _, _ in videos)
    with tqdm(total=total, unit='frame', disable=not progress) as bar:
        for video, frames, size, (keep_h, keep_w) in videos:
            kernel = make_kernel(kind, rng, scale)
            bar.set_description(video)
            for path in frames:
                stem = os.path.splitext(os.path.basename(path))[0]
                hr = read_image(path)
                if hr.shape[:2] != size:
                    raise GenerationError(f'{path} decodes to {hr.shape[1]}x{hr.shape[0]} pixels, '
                                          f'not the {size[1]}x{size[0]} its header states')
                hr = hr[:keep_h, :keep_w]
                if not in_place:
                    write_image(os.path.join(dirs['hr'], video, stem + '.png'), hr)
                write_image(os.path.join(dirs['lr'], video, stem + '.png'),
                            degradation.blur_down_uint8(hr, kernel, scale))
                save_kernel(os.path.join(dirs['kernel'], video, stem + '.mat'), kernel)
                bar.update(1)
    return total


def main(argv=None):
    args = parse_args(argv)
    return run_command('sbvsr-gene-dataset',
                       lambda: generate(args.HR_root, args.save_root, args.type, args.scale, args.seed, args.crop),
                       kept=lambda: f'no file was written; {args.save_root} is unchanged',
                       write_target=args.save_root)


if __name__ == '__main__':
    sys.exit(main())
