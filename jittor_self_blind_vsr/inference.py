"""Super-resolve video clips with a trained Self-Blind-VSR model, score and save the results.

Run from inside jittor_self_blind_vsr/ (`python inference.py --quick_test Gaussian_REDS4`) or
as `sbvsr-infer`. docs/inference.md describes the options, the input forms, the results
layout and the guarantee that a failed run leaves no half-written results behind.
"""
import argparse
import csv
import io
import json
import math
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from tqdm import tqdm

from jittor_self_blind_vsr.convert_pytorch_to_jittor import infer_config
from jittor_self_blind_vsr.model import load_checked
from jittor_self_blind_vsr.option import int_range, positive_float, positive_int, power_of_two, str2bool
from jittor_self_blind_vsr.runtime import DEVICES, current_device, import_jittor
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.checkpoint import CheckpointError, load_state_dict_file
from jittor_self_blind_vsr.utils.cli import UserError
from jittor_self_blind_vsr.utils.image_io import (ImageReadError, image_size, is_inside, list_images,
                                                  list_subfolders, read_image, to_uint8_image, write_bytes_atomic,
                                                  write_image)
from jittor_self_blind_vsr.utils.metrics import calc_psnr, calc_ssim

CROP_BORDER = 4
LOG_NAME = 'inference_log.txt'
METRICS_JSON = 'metrics.json'
METRICS_CSV = 'metrics.csv'
RESULT_FILES = (LOG_NAME, METRICS_JSON, METRICS_CSV)
LOG_FIRST_LINE = 'Inference - '
VIDEO_CODECS = {'mp4': 'mp4v', 'avi': 'MJPG'}
TIME_KEYS = ('pre_time', 'forward_time', 'post_time', 'total_time')

# The original's --quick_test presets, pointing at the converted (.pkl) published models.
_PRESET_MODELS = {'Gaussian': '../pretrain_models/self_blind_vsr_gaussian.pkl',
                  'Realistic': '../pretrain_models/self_blind_vsr_realistic.pkl'}
PRESETS = {
    f'{blur}_{name}': dict(scale=4, dataset_name=name, blur_type=blur, infer_flag=f'{blur}_{name}',
                           input_path=f'../dataset/{name}_BlurDown_{blur}/LR_blurdown_x4',
                           gt_path=f'../dataset/{name}_BlurDown_{blur}/HR',
                           model_path=_PRESET_MODELS[blur])
    for blur, name in (('Gaussian', 'REDS4'), ('Gaussian', 'Vid4'), ('Gaussian', 'SPMCS'), ('Realistic', 'REDS4'))
}


class InferenceError(UserError):
    """Bad input or an unusable model: reported as one sentence, exit status 1."""


# ---------------------------------------------------------------- options

def _flag(parser, name, default, text):
    """A boolean option usable as `--name`, `--name True` or `--name False`."""
    parser.add_argument(name, type=str2bool, nargs='?', const=True, default=default, help=text)


def build_parser():
    parser = argparse.ArgumentParser(prog='sbvsr-infer', description='Self-Blind-VSR inference (Jittor)')
    _flag(parser, '--save_image', True, 'save the restored frames as PNG (default True)')
    _flag(parser, '--border', False, 'also restore the first and last n_seq//2 frames of each video')
    _flag(parser, '--save_video', False, 'also write each restored clip as a video file')
    _flag(parser, '--align_corners', True, 'grid_sample semantics: True = PyTorch 0.4.1, which the '
                                           'published weights were trained with')
    parser.add_argument('--video_format', choices=sorted(VIDEO_CODECS), default='mp4', help='container for --save_video')
    parser.add_argument('--fps', type=positive_float, default=None,
                        help='frame rate of --save_video (default: the input video\'s, else 25)')
    parser.add_argument('--input_path', default='../dataset/input',
                        help='folder of video folders, one folder of frames, or a video file')
    parser.add_argument('--gt_path', default=None, help='ground truth in the same form (optional)')
    parser.add_argument('--model_path', default='../pretrain_models/self_blind_vsr_gaussian.pkl',
                        help='.pkl (converted) or .pt (published PyTorch) model file')
    parser.add_argument('--result_path', default='../infer_results', help='results root OUT')
    parser.add_argument('--dataset_name', default=None, help='results go to OUT/<dataset_name>/<blur_type>/ '
                                                             '(default: the input\'s name)')
    parser.add_argument('--blur_type', default='unknown', help='second level of the results folder')
    parser.add_argument('--infer_flag', default='.', help='label of this run in the log (default: the time)')
    parser.add_argument('--quick_test', default='.', choices=['.'] + sorted(PRESETS), help='the original\'s presets')
    parser.add_argument('--n_seq', type=int_range(1, odd=True), default=5,
                        help='frames per window (the model\'s n_sequence)')
    parser.add_argument('--scale', type=power_of_two, default=4, help='upsampling factor')
    parser.add_argument('--size_must_mode', type=positive_int, default=1, help='crop LR frames to a multiple of this')
    parser.add_argument('--device', choices=DEVICES, default='auto', help='auto: CUDA when a GPU is usable')
    return parser


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    if args.quick_test != '.':
        for key, value in PRESETS[args.quick_test].items():
            setattr(args, key, value)
    if args.dataset_name is None:
        args.dataset_name = os.path.splitext(os.path.basename(os.path.abspath(args.input_path)))[0]
    if args.infer_flag == '.':
        args.infer_flag = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())
    return args


def check_args(args):
    """What the parser cannot check (the numeric options' ranges are their `type=`)."""
    for name in (args.dataset_name, args.blur_type):
        if not name or name in ('.', '..') or os.sep in name:
            raise InferenceError(f'--dataset_name and --blur_type must be plain folder names, not {name!r}')


# ---------------------------------------------------------------- inputs

@dataclass
class FrameSource:
    """The frames of one clip: image files, or a video file OpenCV decodes."""
    label: str
    count: int
    size: tuple  # (height, width)
    paths: Optional[list] = None
    video: Optional[str] = None
    fps: Optional[float] = None

    def frame_name(self, index):
        if self.paths is not None:
            return os.path.splitext(os.path.basename(self.paths[index]))[0]
        return f'{index:08d}'

    def frames(self):
        """RGB uint8 frames in order."""
        if self.paths is not None:
            for path in self.paths:
                yield read_image(path)
            return
        capture = cv2.VideoCapture(self.video)
        try:
            for index in range(self.count):
                ok, bgr = capture.read()
                if not ok:
                    raise ImageReadError(f'cannot decode frame {index} of the video {self.video}')
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


def probe_image_folder(folder):
    paths = list_images(folder)
    if not paths:
        raise InferenceError(f'no .png/.jpg/.bmp frames in {folder}')
    sizes = [image_size(p) for p in paths]
    for path, size in zip(paths, sizes):
        if size != sizes[0]:
            raise InferenceError(f'frames of one clip must have one size, but {path} is {size[1]}x{size[0]} '
                                 f'and {paths[0]} is {sizes[0][1]}x{sizes[0][0]}')
    return FrameSource(label=folder, count=len(paths), size=sizes[0], paths=paths)


def probe_video(path):
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise InferenceError(f'{path} is neither a folder nor a video file OpenCV can read')
        count, size = 0, None
        while capture.grab():  # frame counts in container headers are estimates
            if size is None:
                ok, frame = capture.retrieve()
                size = frame.shape[:2] if ok else None
            count += 1
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if count == 0 or size is None:
        raise InferenceError(f'{path} is neither a folder nor a video file OpenCV can read')
    return FrameSource(label=path, count=count, size=tuple(size), video=path, fps=fps if fps > 0 else None)


def find_clips(path, role):
    """({clip name: FrameSource}, is_collection) for a video file, a frame folder or a folder of them.

    A folder holding image files is one clip; any other folder holds one clip per sub-folder.
    """
    if not os.path.exists(path):
        raise InferenceError(f'the {role} path {path} does not exist')
    if os.path.isfile(path):
        return {os.path.splitext(os.path.basename(path))[0]: probe_video(path)}, False
    if list_images(path):
        return {os.path.basename(os.path.abspath(path)): probe_image_folder(path)}, False
    folders = list_subfolders(path)
    if not folders:
        raise InferenceError(f'the {role} path {path} holds neither frames nor video folders')
    return {os.path.basename(f): probe_image_folder(f) for f in folders}, True


@dataclass
class Clip:
    name: str
    lr: FrameSource
    gt: Optional[FrameSource]


def pair_clips(lr_clips, lr_collection, gt_clips, gt_collection, scale):
    if gt_clips is None:
        return [Clip(name, source, None) for name, source in lr_clips.items()]
    if lr_collection != gt_collection:
        raise InferenceError('the input and GT paths must have the same form (both one clip, or both folders of '
                             'video folders)')
    if lr_collection and list(lr_clips) != list(gt_clips):
        only_lr = sorted(set(lr_clips) - set(gt_clips))
        only_gt = sorted(set(gt_clips) - set(lr_clips))
        raise InferenceError(f'the input and GT folders hold different videos (only in input: {only_lr or "-"}; '
                             f'only in GT: {only_gt or "-"})')
    clips = []
    for (name, lr), gt in zip(lr_clips.items(), gt_clips.values()):
        if lr.count != gt.count:
            raise InferenceError(f'video {name} has {lr.count} input frames but {gt.count} GT frames')
        want = (lr.size[0] * scale, lr.size[1] * scale)
        if gt.size != want:
            raise InferenceError(f'GT frames of video {name} are {gt.size[1]}x{gt.size[0]}, but {scale} times the '
                                 f'input size {lr.size[1]}x{lr.size[0]} is {want[1]}x{want[0]}')
        clips.append(Clip(name, lr, gt))
    return clips


def window_indices(n_frames, n_seq, border):
    """Frame indices of each window, as the original's gene_seq groups file names.

    With border the list is extended by its first and last n_seq//2 entries (not by
    repeating the edge frame), so every frame is the centre of one window.
    """
    half = n_seq // 2
    order = list(range(n_frames))
    if border:
        order = order[:half] + order + order[max(n_frames - half, 0):]
    return [order[i:i + n_seq] for i in range(len(order) - 2 * half)]


def cropped_size(size, mode):
    return size[0] - size[0] % mode, size[1] - size[1] % mode


def collect_clips(args):
    """Everything about the inputs that can be checked before any result is written."""
    lr_clips, lr_collection = find_clips(args.input_path, 'input')
    gt_clips, gt_collection = (None, None) if args.gt_path is None else find_clips(args.gt_path, 'GT')
    clips = pair_clips(lr_clips, lr_collection, gt_clips, gt_collection, args.scale)
    for clip in clips:
        height, width = cropped_size(clip.lr.size, args.size_must_mode)
        if min(height, width) == 0:
            raise InferenceError(f'frames of video {clip.name} are smaller than --size_must_mode')
        if not window_indices(clip.lr.count, args.n_seq, args.border):
            extra = '' if args.border else ' (or --border)'
            raise InferenceError(f'video {clip.name} has {clip.lr.count} frames, too few for a {args.n_seq}-frame '
                                 f'window{extra}')
        if clip.gt is not None and min(height, width) * args.scale - 2 * CROP_BORDER < 11:
            raise InferenceError(f'frames of video {clip.name} are too small to score: SSIM needs 11x11 pixels '
                                 f'after cropping {CROP_BORDER} from each side')
    return clips


# ---------------------------------------------------------------- the results folder

def results_folder(args):
    return os.path.join(args.result_path, args.dataset_name, args.blur_type)


def _log_is_ours(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read(len(LOG_FIRST_LINE)) == LOG_FIRST_LINE
    except OSError:
        return False


def not_a_result(folder):
    """Why `folder` is not a complete earlier result of this tool, or None when it is one.

    A result holds what a finished run writes and nothing else: inference_log.txt (whose
    first line is 'Inference - ...'), metrics.json, metrics.csv, one folder of PNG frames per
    clip and, with --save_video, one video file per clip.
    """
    if os.path.islink(folder) or not os.path.isdir(folder):
        return 'it is not a folder'
    for name in (LOG_NAME, METRICS_JSON):
        if not os.path.isfile(os.path.join(folder, name)):
            return f'it has no {name}'
    if not _log_is_ours(os.path.join(folder, LOG_NAME)):
        return f'its {LOG_NAME} was not written by sbvsr-infer'
    for entry in os.scandir(folder):
        if entry.is_symlink():
            return f'it holds the link {entry.name}'
        if entry.is_dir():
            stray = next((e.name for e in os.scandir(entry.path)
                          if e.is_symlink() or not e.is_file() or not e.name.endswith('.png')), None)
            if stray is not None:
                return f'it holds {os.path.join(entry.name, stray)}'
        elif entry.name not in RESULT_FILES and os.path.splitext(entry.name)[1][1:] not in VIDEO_CODECS:
            return f'it holds {entry.name}'
    return None


def check_destination(args):
    """Refuse a results folder that would replace something this tool did not write, or mix
    results into the inputs; runs before any work starts."""
    final = results_folder(args)
    for role, path in (('input', args.input_path), ('GT', args.gt_path)):
        if path is not None and (is_inside(path, final) or is_inside(final, path)):
            raise InferenceError(f'the results folder {final} and the {role} path {path} lie inside one another; '
                                 f'give another --result_path')
    if os.path.lexists(final):
        reason = not_a_result(final)
        if reason is not None:
            raise InferenceError(f'{final} exists and is not an earlier result of sbvsr-infer ({reason}), so it '
                                 f'is not replaced; give another --result_path, --dataset_name or --blur_type')


# ---------------------------------------------------------------- model

def load_model(args):
    """Read and check the model file, then build the network on the chosen device."""
    try:
        state = load_state_dict_file(args.model_path)
        if 'in_conv.0.weight' not in state:
            raise InferenceError(f'{args.model_path} holds no Self-Blind-VSR model (it has no in_conv.0.weight)')
        config = infer_config(state, args.model_path)
    except CheckpointError as error:
        raise InferenceError(str(error)) from None
    if config['scale'] != args.scale:
        raise InferenceError(f'the model upsamples by {config["scale"]}, but --scale is {args.scale}')
    if config['n_sequence'] != args.n_seq or config['n_colors'] != 3:
        raise InferenceError(f'the model takes {config["n_sequence"]} frames of {config["n_colors"]} channels, '
                             f'but --n_seq is {args.n_seq} on RGB frames')
    try:
        jt = import_jittor(args.device)
    except RuntimeError as error:
        raise InferenceError(str(error)) from None
    interrupt.install()
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    try:
        net = PWC_Recons(**config, device=current_device(), align_corners=args.align_corners)
    except Exception as error:  # the shapes of a damaged or foreign file can imply any configuration
        raise InferenceError(f'{args.model_path} does not fit the model: its shapes imply a configuration '
                             f'the model cannot be built with ({error})') from None
    load_checked(net, state, args.model_path)
    net.eval()
    return jt, net, config


class WindowRestorer:
    """Restores consecutive windows, computing each frame's features only once.

    `net.frame_features` (in_conv + extra_feat, PWC-Net's feature pyramid) of a frame is
    kept while a later window still contains that frame, so a clip costs one feature pass
    per frame instead of n_seq.
    """

    def __init__(self, jt, net):
        self.jt, self.net = jt, net
        self.cache = {}

    def _vars(self, obj):
        if isinstance(obj, self.jt.Var):
            return [obj]
        if isinstance(obj, (tuple, list)):
            return [v for item in obj for v in self._vars(item)]
        return []

    def restore(self, indices, frames):
        """`frames`: {index: (1,3,H,W) float32 array} holding at least the uncached indices."""
        for index in indices:
            if index not in self.cache:
                var = self.jt.array(frames[index])
                features = self.net.frame_features(var)
                # Materialised now, every window runs the same graph (and so the same
                # compiled kernels) whichever of its frames are new.
                self.jt.sync(self._vars(features))
                self.cache[index] = (var, features)
        window = [self.cache[i] for i in indices]
        recons = self.net.recons_from_features([v for v, _ in window], [f for _, f in window])
        recons.sync()
        return recons

    def forget_all_but(self, keep):
        for index in [i for i in self.cache if i not in keep]:
            del self.cache[index]


def warm_up(jt, net, height, width, n_seq):
    """Compile every kernel of one restoration at this frame size; returns the seconds taken."""
    start = time.perf_counter()
    zeros = {i: np.zeros((1, 3, height, width), np.float32) for i in range(n_seq)}
    WindowRestorer(jt, net).restore(list(range(n_seq)), zeros).numpy()
    return time.perf_counter() - start


# ---------------------------------------------------------------- background threads

class _Stopped(Exception):
    pass


class FrameReader(threading.Thread):
    """Reads, crops and normalises a clip's frames ahead of the model, in order.

    Items: (index, (1,3,h,w) float32 input in [0,1], uint8 GT frame or None).
    """

    def __init__(self, clip, size, scale, gt_needed, depth):
        super().__init__(daemon=True)
        self.clip, self.size, self.scale, self.gt_needed = clip, size, scale, gt_needed
        self.items = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def run(self):
        try:
            gt_frames = self.clip.gt.frames() if self.clip.gt is not None else None
            h, w = self.size
            for index, frame in enumerate(self.clip.lr.frames()):
                gt = next(gt_frames) if gt_frames is not None else None
                if gt is not None and index in self.gt_needed:
                    gt = np.ascontiguousarray(gt[:h * self.scale, :w * self.scale])
                else:
                    gt = None
                # the original: float64 -> float32 tensor, then *(1/255) in float32
                lr = frame[:h, :w].astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255)
                self._put((index, np.ascontiguousarray(lr), gt))
        except _Stopped:
            return
        except BaseException as error:  # handed to the main thread, which re-raises it
            self._put(error, force=True)

    def _put(self, item, force=False):
        while True:
            if self.stop.is_set() and not force:
                raise _Stopped
            try:
                self.items.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.stop.is_set():
                    return

    def next_item(self):
        item = self.items.get()
        if isinstance(item, BaseException):
            raise item
        return item


@dataclass
class FrameJob:
    clip: str
    frame: str
    output: np.ndarray  # (3,H,W) float32 as the network returned it
    gt: Optional[np.ndarray]
    times: dict


class ResultSink(threading.Thread):
    """Scores, saves and logs restored frames in order, off the model's thread."""

    def __init__(self, run, depth=4):
        super().__init__(daemon=True)
        self.run_state = run
        self.jobs = queue.Queue(maxsize=depth)
        self.error = None
        self.cancelled = threading.Event()

    def submit(self, job):
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self):
        self.submit(None)
        self.join()
        if self.error is not None:
            raise self.error

    def cancel(self):
        """Stop after the current job (the run is being aborted)."""
        self.cancelled.set()
        if self.is_alive():
            self.join()

    def run(self):
        while not self.cancelled.is_set():
            try:
                job = self.jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            if job is None:
                return
            if self.error is not None:
                continue
            try:
                self.run_state.handle(job)
            except BaseException as error:  # re-raised in the main thread by submit/finish
                self.error = error


# ---------------------------------------------------------------- one run

def _finite(value):
    return value if value is None or math.isfinite(value) else None


def _mean(values):
    return sum(values) / len(values) if values else None


def _fmt(value, spec):
    return format(value, spec) if value is not None else 'n/a'


class InferenceRun:
    """The results of one invocation, built in a hidden staging folder next to the final one.

    Only a complete run is moved to OUT/<dataset_name>/<blur_type>/ (replacing an older
    result there); an aborted run removes its staging folder and leaves no metrics.json.
    """

    def __init__(self, args, config, device, fps):
        self.args, self.config, self.device, self.fps = args, config, device, fps
        parent = os.path.join(args.result_path, args.dataset_name)
        self.final = os.path.join(parent, args.blur_type)
        self.created = [d for d in (args.result_path, parent) if not os.path.isdir(d)]
        try:
            os.makedirs(parent, exist_ok=True)
            self.staging = tempfile.mkdtemp(prefix=f'.{args.blur_type}.partial-', dir=parent)
        except OSError as error:
            raise InferenceError(f'cannot create the results folder {parent}: {error.strerror or error}') from None
        try:
            self.log_file = open(os.path.join(self.staging, LOG_NAME), 'w', encoding='utf-8')
        except BaseException:
            self._remove_staging()
            raise
        self.lock = threading.Lock()
        self.records = {}  # clip -> list of per-frame dicts
        self.warmups = []
        self.video_writers = {}
        self.wall = {}

    # -- logging
    def log(self, line):
        with self.lock:
            tqdm.write(line, file=sys.stdout)
            self.log_file.write(line + '\n')
            self.log_file.flush()

    def log_header(self):
        a = self.args
        self.log(f'Inference - {a.infer_flag}')
        for key, value in (('input_path', a.input_path), ('gt_path', a.gt_path), ('model_path', a.model_path),
                           ('result_path', self.final), ('border', a.border), ('save_image', a.save_image),
                           ('n_seq', a.n_seq), ('scale', a.scale), ('size_must_mode', a.size_must_mode),
                           ('device', self.device), ('align_corners', a.align_corners),
                           ('dataset_name', a.dataset_name), ('blur_type', a.blur_type)):
            self.log(f'{key}: {value}')
        self.log(f'Loading model from {a.model_path}')

    # -- per frame (result thread)
    def handle(self, job):
        if job.output is None:  # end-of-clip marker
            self.close_video(job.clip)
            return
        start = time.perf_counter()
        image = to_uint8_image(job.output)
        record = dict(frame=job.frame, **{k: job.times[k] for k in TIME_KEYS})
        if job.gt is not None:
            record['psnr'] = calc_psnr(image, job.gt, CROP_BORDER)
            record['ssim'] = calc_ssim(image, job.gt, CROP_BORDER)
        scored = time.perf_counter()
        if self.args.save_image:
            folder = os.path.join(self.staging, job.clip)
            os.makedirs(folder, exist_ok=True)
            write_image(os.path.join(folder, f'{job.frame}.png'), image)
        if self.args.save_video:
            self.video_writer(job.clip, image).write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        record['eval_time'] = scored - start
        record['write_time'] = time.perf_counter() - scored
        self.records.setdefault(job.clip, []).append(record)
        self.log(frame_line(job.clip, record))

    def video_writer(self, clip, image):
        if clip not in self.video_writers:
            ext = self.args.video_format
            tmp = os.path.join(self.staging, f'.{clip}.partial.{ext}')
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*VIDEO_CODECS[ext]), self.fps[clip],
                                     (image.shape[1], image.shape[0]))
            if not writer.isOpened():
                raise InferenceError(f'OpenCV cannot write {ext} video files on this machine')
            self.video_writers[clip] = (writer, tmp)
        return self.video_writers[clip][0]

    def close_video(self, clip):
        if clip in self.video_writers:
            writer, tmp = self.video_writers.pop(clip)
            writer.release()
            os.replace(tmp, os.path.join(self.staging, f'{clip}.{self.args.video_format}'))

    # -- summary
    def summary_lines(self):
        lines = []
        frames = [r for records in self.records.values() for r in records]
        if self.args.gt_path is not None:
            for clip, records in self.records.items():
                lines.append('# Video:{} AVG-PSNR={:.5}, AVG-SSIM={:.4}'.format(
                    clip, _mean([r['psnr'] for r in records]), _mean([r['ssim'] for r in records])))
            lines.append('# Total AVG-PSNR={:.5}, AVG-SSIM={:.4}'.format(
                _mean([r['psnr'] for r in frames]), _mean([r['ssim'] for r in frames])))
        times = {k: _mean([r[k] for r in frames]) for k in TIME_KEYS}
        lines.append('# Time AVG pre_time:{:.3}s, forward_time:{:.3}s, post_time:{:.3}s, total_time:{:.3}s'
                     .format(*(times[k] for k in TIME_KEYS)))
        wall = sum(self.wall.values()) / len(frames)
        lines.append(f'# Wall time per frame (reading and writing included): {wall:.3}s')
        return lines

    def metrics(self):
        videos = {}
        for clip, records in self.records.items():
            videos[clip] = self._averages(records)
            videos[clip]['wall_time'] = self.wall[clip]
            videos[clip]['frames'] = [{k: _finite(v) if isinstance(v, float) else v for k, v in r.items()}
                                      for r in records]
        total = self._averages([r for records in self.records.values() for r in records])
        total['wall_time'] = sum(self.wall.values())
        a = self.args
        settings = dict(input_path=a.input_path, gt_path=a.gt_path, result_path=self.final, border=a.border,
                        save_image=a.save_image, save_video=a.save_video, n_seq=a.n_seq, scale=a.scale,
                        size_must_mode=a.size_must_mode, align_corners=a.align_corners, crop_border=CROP_BORDER,
                        dataset_name=a.dataset_name, blur_type=a.blur_type, infer_flag=a.infer_flag,
                        model_config=self.config)
        return dict(model_path=os.path.abspath(a.model_path), device=self.device, settings=settings,
                    warmup=self.warmups, videos=videos, total=total)

    def _averages(self, records):
        out = {'n_frames': len(records)}
        if self.args.gt_path is not None:
            out['avg_psnr'] = _finite(_mean([r['psnr'] for r in records]))
            out['avg_ssim'] = _mean([r['ssim'] for r in records])
        for key in TIME_KEYS + ('eval_time', 'write_time'):
            out[f'avg_{key}'] = _mean([r[key] for r in records])
        return out

    def metrics_csv(self):
        text = io.StringIO()
        columns = ['video', 'frame', 'psnr', 'ssim', *TIME_KEYS, 'eval_time', 'write_time']
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction='ignore', lineterminator='\n')
        writer.writeheader()
        for clip, records in self.records.items():
            for record in records:
                writer.writerow({'video': clip, **record})
        return text.getvalue().encode('utf-8')

    def write_summaries(self):
        for line in self.summary_lines():
            self.log(line)
        self.log_file.close()
        write_bytes_atomic(os.path.join(self.staging, METRICS_CSV), self.metrics_csv())
        data = json.dumps(self.metrics(), indent=1, allow_nan=False)
        write_bytes_atomic(os.path.join(self.staging, METRICS_JSON), data.encode('utf-8'))

    # -- end of the run
    def commit(self):
        """Swap the finished staging folder in for OUT/<dataset>/<blur_type>, which may only be an
        earlier result (checked again: it may have appeared during the run)."""
        check_destination(self.args)
        old = None
        with interrupt.deferred():
            if os.path.lexists(self.final):
                old = tempfile.mkdtemp(prefix=f'.{self.args.blur_type}.old-', dir=os.path.dirname(self.final))
                os.replace(self.final, os.path.join(old, 'previous'))
            os.replace(self.staging, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self):
        for writer, _ in self.video_writers.values():
            writer.release()
        try:
            self.log_file.close()
        except OSError:  # a full disk fails the last flush too; the file is deleted below anyway
            pass
        self._remove_staging()

    def _remove_staging(self):
        shutil.rmtree(self.staging, ignore_errors=True)
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:
                pass


def frame_line(clip, record):
    times = ', '.join(f'{k}:{record[k]:.3}s' for k in TIME_KEYS)
    if 'psnr' in record:
        return f'> {clip}-{record["frame"]} PSNR={record["psnr"]:.5}, SSIM={record["ssim"]:.4} {times}'
    return f'> {clip}-{record["frame"]} {times}'


def restore_clip(run, sink, restorer, clip, args):
    """Restore every window of a clip; frames go to the sink as soon as the model is done."""
    size = cropped_size(clip.lr.size, args.size_must_mode)
    windows = window_indices(clip.lr.count, args.n_seq, args.border)
    centre = args.n_seq // 2
    last_use = {}
    for k, window in enumerate(windows):
        for index in window:
            last_use[index] = k
    reader = FrameReader(clip, size, args.scale, {w[centre] for w in windows}, depth=args.n_seq + 2)
    reader.start()
    frames, gts, next_index = {}, {}, 0
    start_clip = time.perf_counter()
    try:
        for k, window in enumerate(tqdm(windows, desc=clip.name, unit='frame', leave=False, file=sys.stderr,
                                                disable=None)):
            start = time.perf_counter()
            while next_index <= max(window):
                index, lr, gt = reader.next_item()
                frames[index], gts[index] = lr, gt
                next_index += 1
            pre = time.perf_counter()
            recons = restorer.restore(window, frames)
            forward = time.perf_counter()
            output = recons.numpy()[0]
            index = window[centre]
            keep = {i for i, last in last_use.items() if last > k}
            restorer.forget_all_but(keep)
            for stale in [i for i in frames if i not in keep]:
                del frames[stale]
            times = dict(pre_time=pre - start, forward_time=forward - pre)
            job = FrameJob(clip.name, clip.lr.frame_name(index), output, gts.pop(index, None), times)
            times['post_time'] = time.perf_counter() - forward
            times['total_time'] = time.perf_counter() - start
            sink.submit(job)
        sink.submit(FrameJob(clip.name, '', None, None, {}))
    finally:
        reader.stop.set()
        reader.join()
        restorer.forget_all_but(set())
    run.wall[clip.name] = time.perf_counter() - start_clip


def infer(args):
    check_args(args)
    check_destination(args)
    clips = collect_clips(args)
    jt, net, config = load_model(args)
    run = InferenceRun(args, config, current_device(), {c.name: args.fps or c.lr.fps or 25.0 for c in clips})
    sink = ResultSink(run)
    try:
        run.log_header()
        with jt.no_grad():
            for size in dict.fromkeys(cropped_size(c.lr.size, args.size_must_mode) for c in clips):
                seconds = warm_up(jt, net, *size, args.n_seq)
                run.warmups.append(dict(lr_size=list(size), seconds=seconds))
                run.log(f'# Warm-up (Jittor compilation, not timed below) LR {size[0]}x{size[1]}: {seconds:.3f}s')
            sink.start()
            restorer = WindowRestorer(jt, net)
            for clip in clips:
                restore_clip(run, sink, restorer, clip, args)
            sink.finish()
        run.write_summaries()
        run.commit()
    except BaseException:
        sink.cancel()
        run.abort()
        raise
    return run.final


def main(argv=None):
    args = parse_args(argv)
    try:
        with interrupt.handled():
            final = infer(args)
    except (InferenceError, ImageReadError, CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    except OSError as error:
        where = error.filename or f'cannot write the results in {results_folder(args)}'
        print(f'error: {where}: {error.strerror or error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        final = results_folder(args)
        kept = f'{final} is unchanged' if os.path.lexists(final) else f'{final} was not created'
        print(f'interrupted ({interrupt.signal_name(error)}): no results were written; {kept}', file=sys.stderr)
        return interrupt.exit_code(error)
    print(f'results: {final}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
