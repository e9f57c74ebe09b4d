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
and its centre window), experiment/demo (a training run, when there is one),
results/demo/Gaussian (inference), side_by_side/ (the comparison images), demo_scores.json,
and the record `.sbvsr-demo` of every file the demo wrote there (DemoOutput). A rerun
replaces only the files in that record; nothing else in the output folder is touched.
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import stat
import sys
import time

import cv2
import numpy as np
from tqdm import tqdm

from jittor_self_blind_vsr import sample_clips, weights
from jittor_self_blind_vsr.infer.results import sha256_of_file
from jittor_self_blind_vsr.model.specification import config_from_state_dict
from jittor_self_blind_vsr.option import int_range, positive_float, positive_int, seed_int
from jittor_self_blind_vsr.runtime import DEVICES, import_jittor, show_jittor_log
from jittor_self_blind_vsr.script_gene_dataset_blurdown import generate
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.cli import VERBOSE_HELP, UserError, run_command
from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.checkpoint import check_float_arrays, load_state_dict_file
from jittor_self_blind_vsr.utils.image_io import list_images, read_image, write_image
from jittor_self_blind_vsr.utils.metrics import calc_psnr, calc_ssim

SCALE = 4
N_SEQUENCE = 5  # frames the model fuses
MIN_SIZE = 64  # smallest --size (a 16x16 LR frame); smaller clips are untested
# The camera path is built before it is checked against the photograph, which it leaves far
# sooner (a pan of 1.7 px per frame); the bound keeps an absurd --frames from exhausting memory.
MAX_FRAMES = 10000
CLIP_NAME = 'astronaut'
TEMPLATE = 'Self_Blind_VSR_CPU'
EXPERIMENT = 'demo'
DATASET_NAME, BLUR_TYPE = 'demo', 'Gaussian'  # inference's results folder: results/demo/Gaussian
RECORD = '.sbvsr-demo'  # the demo's record of the files it wrote in its output folder
# Folders the demo and the tools it runs read back whole (list_images, the dataset script,
# the trainer, inference's own result check): anything in them that the demo did not write
# would be read as a frame or refused midway, so such a folder must hold only recorded entries.
TREES = ('data/clip', 'data/eval', f'results/{DATASET_NAME}/{BLUR_TYPE}')
EXPERIMENT_TREE = f'experiment/{EXPERIMENT}'
PARENTS = ('data', 'results', f'results/{DATASET_NAME}', 'side_by_side')  # shared with the user's files
SIDE_BY_SIDE = 'side_by_side'
SCORES = 'demo_scores.json'
RECORD_LIMIT = 1 << 24  # bytes; the record of a training run is a few kilobytes
OLD_MARKER = b'written by sbvsr-demo'  # the marker of versions that kept no record
CROP_BORDER = 4
# The photograph is halved first (INTER_AREA) so an HR frame holds photo-like detail
# per pixel rather than the smooth upsampled look of the full-size image.
SOURCE_SHRINK = 2
LABELS = ('LR bicubic', 'ours', 'GT')
LABEL_HEIGHT = 16
GAP = 4


class DemoError(UserError):
    """The demo cannot run as asked; the message is one sentence for the user."""


def frame_file(index):
    return f'{index:08d}.png'


def check_step(status, what):
    """Raise for a failed (or interrupted: exit status 128 + signal) step run through another command's main()."""
    if status > 128:
        raise interrupt.Interrupted(status - 128)
    if status != 0:
        raise DemoError(f'{what} failed (its message is above)')


def folder_name(text):
    if not text:
        raise argparse.ArgumentTypeError("must name a folder, not ''")
    return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='sbvsr-demo',
        description='Build a clip from a bundled photograph, degrade it, super-resolve it with the model '
                    'shipped in the package (or one trained here on the LR clip alone) and compare with '
                    'bicubic upsampling.')
    parser.add_argument('--output', type=folder_name, default='demo_output', help='output folder (default ./demo_output)')
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
    parser.add_argument('--frames', type=int_range(N_SEQUENCE, MAX_FRAMES), default=10,
                        help=f'frames in the clip, at least the {N_SEQUENCE} the model fuses (default 10)')
    parser.add_argument('--size', type=int_range(MIN_SIZE, multiple_of=SCALE), default=128,
                        help=f'HR frame size in pixels, a multiple of {SCALE} (default 128)')
    parser.add_argument('--lr', type=positive_float, default=5e-4, help='learning rate of training (default 5e-4)')
    parser.add_argument('--seed', type=seed_int, default=1, help='random seed of training (default 1)')
    parser.add_argument('--verbose', action='store_true', help=VERBOSE_HELP)
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
        write_image(os.path.join(hr_dir, CLIP_NAME, frame_file(index)), frame)
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

# The embedded model's recipe (docs/demo.md): DIS flow, and the kernel prior for every batch (a
# model this small trained from scratch otherwise collapses its kernel to one pixel).
KERNEL_PRIOR_THROUGHOUT = 2 ** 62


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
            '--flow', 'dis', '--kernel_prior_batches', str(KERNEL_PRIOR_THROUGHOUT)]


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
                             '--result_path', results_root, '--dataset_name', DATASET_NAME, '--blur_type', BLUR_TYPE,
                             '--border', 'True', '--device', args.device, '--infer_flag', 'sbvsr-demo'])
    check_step(status, 'super-resolution')
    return os.path.join(results_root, DATASET_NAME, BLUR_TYPE)


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
    (psnr, ssim), (base_psnr, base_ssim) = scores['ours'], scores['bicubic']
    print(f'margin   PSNR {psnr - base_psnr:+6.2f} dB  SSIM {ssim - base_ssim:+.4f}  (ours - bicubic)')
    print(f'Side-by-side images (LR bicubic | ours | GT): {side_dir}')


def own_video_commands(model_path):
    """The commands that super-resolve a user's own video (or folder of frames) the way the demo did."""
    model = 'embedded' if model_path == weights.EMBEDDED else model_path
    return [f'sbvsr-infer --input_path my_video.mp4 --model_path {model} --border True --save_video True '
            '--result_path my_results',
            f'sbvsr-infer --input_path my_frames/ --model_path {model} --border True --result_path my_results',
            'add --max_memory GIB (or --tile N) for large frames; docs/inference.md has the rest']


# ---------------------------------------------------------------- the whole run

def _is_under(relative, folder):
    return relative == folder or relative.startswith(folder + '/')


def _recordable(relative, folder=False):
    """Whether `relative` may stand in the record: a normalised relative path the demo writes."""
    if '\0' in relative or relative.startswith('/') or posixpath.normpath(relative) != relative or \
            '..' in relative.split('/'):
        return False
    in_tree = any(_is_under(relative, tree) for tree in TREES + (EXPERIMENT_TREE,))
    if folder:
        return in_tree
    parts = relative.split('/')
    return in_tree or relative == SCORES or (parts[0] == SIDE_BY_SIDE and len(parts) == 2)


class DemoOutput:
    """The output folder, of which the demo owns exactly what its record (RECORD) lists.

    The record names every file the demo wrote there, with its SHA-256, and every folder it
    made in the folders it reads back whole (TREES, and EXPERIMENT_TREE when it trains).
    `claim` locks the folder and, before anything is removed or written, refuses a path the
    demo would write that is a link, and a recorded folder holding anything the record does
    not list or a recorded file that changed since. `clear` then removes exactly the recorded
    files (an earlier training run's only when this run trains), and `save` records what the
    run wrote, also after an error or an interrupt. The user's files elsewhere are never touched.
    """

    def __init__(self, root, train, frames):
        self.root = root
        self.trains = train
        self.trees = TREES + ((EXPERIMENT_TREE,) if train else ())
        self.parents = PARENTS + (('experiment',) if train else ())
        self.singles = [SCORES] + [f'{SIDE_BY_SIDE}/{frame_file(i)}' for i in range(frames)]
        self.files, self.folders = {}, set()
        self.lock = None
        self.created = False
        self.cleared = False

    def path(self, relative):
        return os.path.join(self.root, *relative.split('/'))

    def folder(self, name):
        return os.path.join(self.root, name)

    def replaced(self, relative):
        """Whether this run replaces the recorded `relative`: everything but an earlier training run it does not redo."""
        return self.trains or not _is_under(relative, EXPERIMENT_TREE)

    def claim(self):
        """Create (when absent), lock and check the folder; raises DemoError before anything in it is changed."""
        if os.path.lexists(self.root) and not os.path.isdir(self.root):
            raise DemoError(f'--output {self.root} exists and is not a folder')
        self.created = not os.path.lexists(self.root)
        os.makedirs(self.root, exist_ok=True)
        descriptor = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise DemoError(f'another sbvsr-demo is writing {self.root}; wait until it ends or give another '
                            f'--output') from None
        self.lock = descriptor
        if not os.path.lexists(self.path(RECORD)):
            if os.listdir(self.root):
                raise DemoError(f'--output {self.root} is not empty and was not written by sbvsr-demo; '
                                'give a new or empty folder')
            return
        self._read_record()
        for relative in self.parents + self.trees:  # parents first: the message names the outermost link
            path = self.path(relative)
            if os.path.islink(path):
                raise self._link(path)
            if os.path.lexists(path) and not os.path.isdir(path):
                raise DemoError(f'{path} is not a folder, and sbvsr-demo writes a folder there; move it out of '
                                f'{self.root} or give another --output')
        for tree in self.trees:
            self._check_tree(tree)
        for relative in sorted(set(self.singles) | {f for f in self.files if self.replaced(f)}):
            self._check_file(relative)

    def _link(self, path):
        return DemoError(f'{path} is a link, and sbvsr-demo writes nothing through links; remove the link or '
                         f'give another --output')

    def _not_ours(self, path, why):
        return DemoError(f'{path} {why}, so sbvsr-demo neither removes nor writes over it; move it out of '
                         f'{self.root} or give another --output')

    def _read_record(self):
        path = self.path(RECORD)
        if os.path.islink(path):
            raise self._link(path)
        data, record = b'', None
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                data = f.read(RECORD_LIMIT + 1)
            with contextlib.suppress(ValueError):  # UnicodeDecodeError included
                record = json.loads(data.decode('utf-8'))
        files = record.get('files') if isinstance(record, dict) and record.get('tool') == 'sbvsr-demo' else None
        folders = record.get('folders') if files is not None else None
        valid = (len(data) <= RECORD_LIMIT and isinstance(files, dict) and isinstance(folders, list)
                 and all(_recordable(k) and isinstance(v, str) and len(v) == 64 for k, v in files.items())
                 and all(isinstance(f, str) and _recordable(f, folder=True) for f in folders))
        if not valid:
            if data.startswith(OLD_MARKER):
                raise DemoError(f'{self.root} was written by an earlier sbvsr-demo, which kept no record of its '
                                'files and so cannot tell them from yours; give a new or empty --output')
            raise DemoError(f'{path} is not a record sbvsr-demo wrote (it is damaged or was edited), so nothing '
                            f'in {self.root} is removed; give a new or empty --output')
        self.files, self.folders = dict(files), set(folders)

    def _check_tree(self, relative):
        path = self.path(relative)
        if not os.path.lexists(path):
            return
        if relative not in self.folders:
            raise self._not_ours(path, 'is not in the record of what sbvsr-demo wrote')
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            child = f'{relative}/{entry.name}'
            if entry.is_dir(follow_symlinks=False):
                self._check_tree(child)
            else:
                self._check_file(child)

    def _check_file(self, relative):
        path = self.path(relative)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise self._link(path)
        if relative not in self.files or not stat.S_ISREG(mode):
            raise self._not_ours(path, 'is not in the record of what sbvsr-demo wrote')
        if sha256_of_file(path) != self.files[relative]:
            raise self._not_ours(path, 'changed since sbvsr-demo wrote it')

    def clear(self):
        """Remove the recorded files this run replaces, and the recorded folders that leaves empty."""
        self.cleared = True
        for relative in sorted(self.files):
            if self.replaced(relative):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path(relative))
        for relative in sorted(self.folders, key=lambda r: r.count('/'), reverse=True):
            if self.replaced(relative):
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(self.path(relative))
        self.save()

    def save(self):
        """Record the recorded files still present and everything now in this run's files and folders."""
        with interrupt.deferred():  # a record cut short would disown the files this run wrote
            files = {k: v for k, v in self.files.items() if os.path.isfile(self.path(k))}
            folders = {f for f in self.folders if os.path.isdir(self.path(f))}
            for tree in self.trees:
                for top, dirs, names in os.walk(self.path(tree)):
                    relative = posixpath.join(tree, *os.path.relpath(top, self.path(tree)).split(os.sep)) \
                        if top != self.path(tree) else tree
                    folders.add(relative)
                    for name in names:
                        if os.path.isfile(os.path.join(top, name)) and not os.path.islink(os.path.join(top, name)):
                            files[f'{relative}/{name}'] = sha256_of_file(os.path.join(top, name))
            for relative in self.singles:
                if os.path.isfile(self.path(relative)) and not os.path.islink(self.path(relative)):
                    files[relative] = sha256_of_file(self.path(relative))
            self.files, self.folders = files, folders
            record = dict(tool='sbvsr-demo', note='the files sbvsr-demo wrote here; a rerun replaces only these',
                          files=dict(sorted(files.items())), folders=sorted(folders))
            write_bytes_atomic(self.path(RECORD), (json.dumps(record, indent=1) + '\n').encode('utf-8'))

    def release(self):
        if self.lock is None:
            return
        if self.created and not os.listdir(self.root):
            os.rmdir(self.root)
        os.close(self.lock)
        self.lock = None


def check_model(path):
    """Refuse, before the output folder is changed, a model file that inference would refuse only after the
    data were written: not a file, not readable weights, or not a x4 model of N_SEQUENCE RGB frames."""
    if not os.path.isfile(weights.resolve(path)):
        raise DemoError(f'--model_path {path} is not a file')
    state = load_state_dict_file(path)
    check_float_arrays(path, state, 'model weights')
    config = config_from_state_dict(state, path)
    if (config['scale'], config['n_sequence'], config['n_colors']) != (SCALE, N_SEQUENCE, 3):
        raise DemoError(f'--model_path {path} is a x{config["scale"]} model of {config["n_sequence"]} frames of '
                        f'{config["n_colors"]} channels; the demo needs x{SCALE}, {N_SEQUENCE} frames of RGB')


def run(args, output):
    start = time.perf_counter()
    if not args.train:
        check_model(args.model_path)
    frames = make_clip(args)
    # before the output is made: until install() runs again, Ctrl-C meets Jittor's quick exit
    import_jittor(args.device)
    interrupt.install()
    try:
        output.claim()
        try:
            output.clear()
            scores = demonstrate(args, output, frames)
        finally:
            if output.cleared:
                output.save()
    finally:
        output.release()
    print(f'Total time {time.perf_counter() - start:.0f} s')
    return scores


def make_clip(args):
    """Step 1, before the output folder is touched: a path that leaves the photograph is refused."""
    print(f'[1/5] Clip: {args.frames} frames of {args.size}x{args.size}, camera panning and zooming over '
          f'scikit-image\'s astronaut')
    try:
        return sample_clips.build_clip(source_image(), sample_clips.camera_path(args.frames), args.size)
    except ValueError as error:
        raise DemoError(f'--frames {args.frames} at --size {args.size} do not fit the photograph ({error}); '
                        'give fewer frames or a smaller size') from None


def demonstrate(args, output, frames):
    """Steps 2-5 in the claimed and cleared `output`; returns the scores."""
    folders = {name: output.folder(name) for name in ('data', 'experiment', 'results', SIDE_BY_SIDE)}
    print(f'[2/5] Degradation: Gaussian blur sigma 1.2, x{SCALE} down (dataset script)')
    paths, eval_set = make_datasets(frames, folders['data'])
    if args.train:
        print(f'[3/5] Self-supervised training from random weights on the LR clip alone ({TEMPLATE} template)')
        train(args, paths, eval_set, folders['experiment'])
        model_path = os.path.join(folders['experiment'], EXPERIMENT, 'model', 'model_latest.pkl')
    else:
        model_path = args.model_path
        if model_path == weights.EMBEDDED:
            print('[3/5] Model: the embedded model shipped in the package (trained without ground truth, on other '
                  'photographs and a video)')
        else:
            print(f'[3/5] Model: {model_path}')
    print('[4/5] Super-resolution (inference)')
    sr_dir = os.path.join(super_resolve(args, paths, model_path, folders['results']), CLIP_NAME)
    print('[5/5] Comparison with bicubic upsampling (aligned with the decimation grid)')
    scores = compare(paths, sr_dir, folders['side_by_side'])
    report(scores, len(frames), folders['side_by_side'])
    print('\nYour own video or frames, the same way:')
    for command in own_video_commands(model_path if not args.train else os.path.abspath(model_path)):
        print(f'  {command}')
    summary = {name: {'psnr': psnr, 'ssim': ssim} for name, (psnr, ssim) in scores.items()}
    write_bytes_atomic(output.path(SCORES), json.dumps(summary, indent=1).encode())
    return scores


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        show_jittor_log()
    output = DemoOutput(args.output, args.train, args.frames)

    def kept():
        if output.cleared:
            return f'{args.output} keeps the steps that finished (a rerun replaces them)'
        return f'nothing in {args.output} was removed or written'
    return run_command('sbvsr-demo', lambda: run(args, output), write_target=args.output, kept=kept)


if __name__ == '__main__':
    sys.exit(main())
