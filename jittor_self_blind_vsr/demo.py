"""See the method work with no data and no network: `sbvsr-demo [--output DIR]`.

1. A short HR clip with real camera motion (a subpixel pan with a slow zoom) is cut from
   scikit-image's `astronaut` photograph (sample_clips).
2. The dataset script degrades it (Gaussian blur sigma 1.2, every 4th pixel kept).
3. The model: the one shipped in the package (trained self-supervised on LR clips of other
   photographs), another model file (`--model_path`), or, with `--minutes` / `--epochs`,
   one trained here on the LR clip alone from random weights (CPU template).
4. The model super-resolves the clip through the inference code path.
5. PSNR/SSIM against the ground truth are printed next to bicubic upsampling aligned with
   the decimation grid, side-by-side images (bicubic | ours | GT) are written, and the
   commands that do the same for the user's own video are printed.

Output folder layout: data/clip and data/eval (HR, LR_blurdown_x4, kernel: the whole clip
and its centre window), experiment/ (a training run, when there is one), results/
(inference), side_by_side/ (the comparison images), demo_scores.json. Those are replaced on
every run; nothing else in the output folder is touched, and a non-empty folder the demo
did not write (it leaves a `.sbvsr-demo` marker) is refused.
"""
import argparse
import json
import os
import shutil
import sys
import time

import cv2
import numpy as np
from tqdm import tqdm

from jittor_self_blind_vsr import sample_clips, weights
from jittor_self_blind_vsr.option import int_range, positive_float, positive_int, seed_int
from jittor_self_blind_vsr.runtime import DEVICES, import_jittor
from jittor_self_blind_vsr.script_gene_dataset_blurdown import generate
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.cli import UserError, run_command
from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.image_io import list_images, read_image, write_image
from jittor_self_blind_vsr.utils.metrics import calc_psnr, calc_ssim

SCALE = 4
N_SEQUENCE = 5  # frames the model fuses
MIN_SIZE = 64  # smallest --size (a 16x16 LR frame); smaller clips are untested
CLIP_NAME = 'astronaut'
TEMPLATE = 'Self_Blind_VSR_CPU'
EXPERIMENT = 'demo'
OWN_FOLDERS = ('data', 'experiment', 'results', 'side_by_side')
MARKER = '.sbvsr-demo'  # marks an output folder as the demo's, so a rerun may empty it
CROP_BORDER = 4
# The photograph is halved first (INTER_AREA) so an HR frame holds photo-like detail
# per pixel rather than the smooth upsampled look of the full-size image.
SOURCE_SHRINK = 2
LABELS = ('LR bicubic', 'ours', 'GT')
LABEL_HEIGHT = 16
GAP = 4


class DemoError(UserError):
    """The demo cannot run as asked; the message is one sentence for the user."""


def check_step(status, what):
    """Raise for a failed (or interrupted: exit status 128 + signal) step run through another command's main()."""
    if status > 128:
        raise interrupt.Interrupted(status - 128)
    if status != 0:
        raise DemoError(f'{what} failed (its message is above)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='sbvsr-demo',
        description='Build a clip from a bundled photograph, degrade it, super-resolve it with the model '
                    'shipped in the package (or one trained here on the LR clip alone) and compare with '
                    'bicubic upsampling.')
    parser.add_argument('--output', default='demo_output', help='output folder (default ./demo_output)')
    parser.add_argument('--device', choices=DEVICES, default='auto', help='auto uses CUDA only when a GPU answers')
    model = parser.add_mutually_exclusive_group()
    model.add_argument('--model_path', default=None,
                       help='model file to super-resolve with (default: embedded, the model shipped in the package)')
    model.add_argument('--minutes', type=positive_float, default=None,
                       help='instead, train from random weights on the LR clip for this many minutes, compilation '
                            'included; training stops after the last epoch that fits')
    model.add_argument('--epochs', type=positive_int, default=None,
                       help='instead, train from random weights on the LR clip for exactly this many epochs')
    parser.add_argument('--iters_per_epoch', type=positive_int, default=10,
                        help='training batches per epoch, the granularity of --minutes (default 10)')
    parser.add_argument('--frames', type=int_range(N_SEQUENCE), default=10,
                        help=f'frames in the clip, at least the {N_SEQUENCE} the model fuses (default 10)')
    parser.add_argument('--size', type=int_range(MIN_SIZE, multiple_of=SCALE), default=128,
                        help=f'HR frame size in pixels, a multiple of {SCALE} (default 128)')
    parser.add_argument('--lr', type=positive_float, default=5e-4, help='learning rate of training (default 5e-4)')
    parser.add_argument('--seed', type=seed_int, default=1, help='random seed of training (default 1)')
    args = parser.parse_args(argv)
    args.train = args.minutes is not None or args.epochs is not None
    # set here, not as argparse's default: argparse would not see an explicit `--model_path embedded`
    # as given (it compares with the default by identity), and so not refuse it with --epochs
    args.model_path = args.model_path or weights.EMBEDDED
    return args


# ---------------------------------------------------------------- 1. the clip

def source_image():
    """scikit-image's astronaut photograph (RGB uint8), halved."""
    return sample_clips.shrink(sample_clips.photo(CLIP_NAME), SOURCE_SHRINK)


# ---------------------------------------------------------------- 2. degradation

def make_dataset(frames, data_root):
    """Write the HR frames into data_root/HR/<clip>/ and degrade them with the dataset script in place."""
    hr_dir = os.path.join(data_root, 'HR')
    os.makedirs(os.path.join(hr_dir, CLIP_NAME), exist_ok=True)
    for index, frame in enumerate(frames):
        write_image(os.path.join(hr_dir, CLIP_NAME, f'{index:08d}.png'), frame)
    generate(hr_dir, data_root, kind='Gaussian', scale=SCALE)
    return {'root': data_root, 'hr': os.path.join(hr_dir, CLIP_NAME),
            'lr_root': os.path.join(data_root, f'LR_blurdown_x{SCALE}'),
            'lr': os.path.join(data_root, f'LR_blurdown_x{SCALE}', CLIP_NAME)}


def make_datasets(frames, data_root):
    """The whole clip (data_root/clip) and its centre window alone (data_root/eval): the trainer
    scores every epoch on the latter, so its per-epoch evaluation costs one window, not the clip."""
    first = (len(frames) - N_SEQUENCE) // 2
    return (make_dataset(frames, os.path.join(data_root, 'clip')),
            make_dataset(frames[first:first + N_SEQUENCE], os.path.join(data_root, 'eval')))


# ---------------------------------------------------------------- 3. training

def train_argv(args, clip, eval_set, experiment_dir):
    """sbvsr-train options: the CPU template on the LR clip alone, scored on the centre window."""
    from jittor_self_blind_vsr.option import parse_args as train_options
    patch = min(train_options(['--template', TEMPLATE]).patch_size, args.size // SCALE)
    return ['--template', TEMPLATE, '--device', args.device, '--seed', str(args.seed),
            '--data_train', 'VIDEO_LR', '--dir_data', clip['lr_root'],
            '--data_test', 'REDS_HRLR', '--dir_data_test', eval_set['root'],
            '--n_frames_per_video', str(args.frames), '--patch_size', str(patch),
            '--test_every', str(args.iters_per_epoch), '--print_every', '10',
            '--lr', str(args.lr), '--experiment_dir', experiment_dir, '--save', EXPERIMENT,
            '--random_flow_init']


def run_training(argv):
    from jittor_self_blind_vsr import main as train_main
    check_step(train_main.main(argv), 'training')


def train(args, clip, eval_set, experiment_dir):
    """Train for --epochs, or epoch by epoch (resuming) while the next epoch fits in --minutes."""
    argv = train_argv(args, clip, eval_set, experiment_dir)
    if args.epochs is not None:
        run_training(argv + ['--epochs', str(args.epochs)])
        return args.epochs
    budget = args.minutes * 60
    start = time.perf_counter()
    epoch, last = 0, 0.0
    while epoch == 0 or time.perf_counter() - start + last <= budget:
        began = time.perf_counter()
        run_training(argv + ['--epochs', str(epoch + 1)] + (['--resume'] if epoch else []))
        last = time.perf_counter() - began
        epoch += 1
    print(f'Trained {epoch} epochs in {time.perf_counter() - start:.0f} s '
          f'(budget {budget:.0f} s, last epoch {last:.0f} s)')
    return epoch


# ---------------------------------------------------------------- 4. super-resolution

def super_resolve(args, paths, model_path, results_root):
    """Restore every frame of the clip (border frames included) with inference's code path."""
    from jittor_self_blind_vsr import inference
    status = inference.main(['--input_path', paths['lr'], '--gt_path', paths['hr'], '--model_path', model_path,
                             '--result_path', results_root, '--dataset_name', 'demo', '--blur_type', 'Gaussian',
                             '--border', 'True', '--device', args.device, '--infer_flag', 'sbvsr-demo'])
    check_step(status, 'super-resolution')
    return os.path.join(results_root, 'demo', 'Gaussian')


# ---------------------------------------------------------------- 5. comparison

def bicubic(lr, scale=SCALE):
    """Bicubic upsampling on the decimation's grid: LR pixel (i, j) lands on HR pixel (scale*i, scale*j).

    The dataset script keeps HR pixels (0, 0), (0, scale), ...; cv2.resize (like MATLAB's
    imresize) would put LR pixel i at HR position scale*i + (scale-1)/2, 1.5 pixels off at x4.
    HR pixel x is sampled at LR coordinate x / scale instead, with the same cubic kernel
    (a = -0.75) and the border pixels repeated, as cv2.resize does.
    """
    height, width = lr.shape[:2]
    xs = np.arange(width * scale, dtype=np.float32) / scale
    ys = np.arange(height * scale, dtype=np.float32) / scale
    map_x, map_y = np.meshgrid(xs, ys)
    return cv2.remap(lr, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def labelled_row(images):
    """The images side by side with a GAP between them, under a strip naming each."""
    height, width = images[0].shape[:2]
    row = np.full((LABEL_HEIGHT + height, len(images) * (width + GAP) - GAP, 3), 255, np.uint8)
    for i, (image, label) in enumerate(zip(images, LABELS)):
        x = i * (width + GAP)
        row[LABEL_HEIGHT:, x:x + width] = image
        cv2.putText(row, label, (x + 2, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return row


def compare(paths, sr_dir, side_dir):
    """{'bicubic': (psnr, ssim), 'ours': (psnr, ssim)} averaged over the frames; writes the comparison images."""
    scores = {'bicubic': [], 'ours': []}
    os.makedirs(side_dir, exist_ok=True)
    triples = list(zip(list_images(paths['lr']), list_images(sr_dir), list_images(paths['hr'])))
    for lr_path, sr_path, hr_path in tqdm(triples, desc='Compare', unit='frame', disable=None):
        gt, sr = read_image(hr_path), read_image(sr_path)
        up = bicubic(read_image(lr_path))
        for name, image in (('bicubic', up), ('ours', sr)):
            scores[name].append((calc_psnr(image, gt, CROP_BORDER), calc_ssim(image, gt, CROP_BORDER)))
        write_image(os.path.join(side_dir, os.path.basename(hr_path)), labelled_row([up, sr, gt]))
    return {name: tuple(np.mean(values, axis=0)) for name, values in scores.items()}


def report(scores, n_frames, side_dir):
    print(f'\nPSNR/SSIM against the ground truth, {n_frames} frames, {CROP_BORDER}-pixel border cropped:')
    for name, (psnr, ssim) in scores.items():
        print(f'{name:8s} PSNR {psnr:6.2f} dB  SSIM {ssim:.4f}')
    print(f'Side-by-side images (LR bicubic | ours | GT): {side_dir}')


def own_video_commands(model_path):
    """The commands that super-resolve a user's own video (or folder of frames) the way the demo did."""
    model = 'embedded' if model_path == weights.EMBEDDED else model_path
    return [f'sbvsr-infer --input_path my_video.mp4 --model_path {model} --border True --save_video True '
            '--result_path my_results',
            f'sbvsr-infer --input_path my_frames/ --model_path {model} --border True --result_path my_results',
            'add --max_memory GIB (or --tile N) for large frames; docs/inference.md has the rest']


# ---------------------------------------------------------------- the whole run

def prepare_output(output):
    """Empty the demo's own sub-folders of `output`; a non-empty folder the demo did not make is refused."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise DemoError(f'--output {output} exists and is not a folder')
    marker = os.path.join(output, MARKER)
    if os.path.isdir(output) and os.listdir(output) and not os.path.isfile(marker):
        raise DemoError(f'--output {output} is not empty and was not written by sbvsr-demo; '
                        'give a new or empty folder')
    for name in OWN_FOLDERS:
        shutil.rmtree(os.path.join(output, name), ignore_errors=True)
    os.makedirs(output, exist_ok=True)
    write_bytes_atomic(marker, b'written by sbvsr-demo, which may replace this folder\'s contents\n')
    return {name: os.path.join(output, name) for name in OWN_FOLDERS}


def run(args):
    start = time.perf_counter()
    if not args.train and not os.path.isfile(weights.resolve(args.model_path)):
        raise DemoError(f'--model_path {args.model_path} is not a file')
    import_jittor(args.device)
    interrupt.install()
    folders = prepare_output(args.output)
    print(f'[1/5] Clip: {args.frames} frames of {args.size}x{args.size}, camera panning and zooming over '
          f'scikit-image\'s astronaut')
    frames = sample_clips.build_clip(source_image(), sample_clips.camera_path(args.frames), args.size)
    print(f'[2/5] Degradation: Gaussian blur sigma 1.2, x{SCALE} down (dataset script)')
    paths, eval_set = make_datasets(frames, folders['data'])
    if args.train:
        print(f'[3/5] Self-supervised training from random weights on the LR clip alone ({TEMPLATE} template)')
        train(args, paths, eval_set, folders['experiment'])
        model_path = os.path.join(folders['experiment'], EXPERIMENT, 'model', 'model_latest.pkl')
    else:
        model_path = args.model_path
        print(f'[3/5] Model: {"the embedded model shipped in the package" if model_path == weights.EMBEDDED else model_path} '
              '(trained without ground truth, on other photographs)' if model_path == weights.EMBEDDED else '')
    print('[4/5] Super-resolution (inference)')
    sr_dir = os.path.join(super_resolve(args, paths, model_path, folders['results']), CLIP_NAME)
    print('[5/5] Comparison with bicubic upsampling (aligned with the decimation grid)')
    scores = compare(paths, sr_dir, folders['side_by_side'])
    report(scores, len(frames), folders['side_by_side'])
    print('\nYour own video or frames, the same way:')
    for command in own_video_commands(model_path if not args.train else os.path.abspath(model_path)):
        print(f'  {command}')
    summary = {name: {'psnr': psnr, 'ssim': ssim} for name, (psnr, ssim) in scores.items()}
    write_bytes_atomic(os.path.join(args.output, 'demo_scores.json'), json.dumps(summary, indent=1).encode())
    print(f'Total time {time.perf_counter() - start:.0f} s')
    return scores


def main(argv=None):
    args = parse_args(argv)
    return run_command('sbvsr-demo', lambda: run(args), write_target=args.output,
                       kept=lambda: f'{args.output} keeps the steps that finished (a rerun replaces them)')


if __name__ == '__main__':
    sys.exit(main())
