"""The results of one inference run: restored frames (and videos), inference_log.txt in the
original's format, metrics.json and metrics.csv.

They are built in a hidden staging folder next to OUT/<dataset_name>/<blur_type>/ and
swapped in for an earlier result only when the run is complete; anything at that path
that is not an earlier result of sbvsr-infer is refused before any work starts.
"""
import csv
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time

import cv2
from tqdm import tqdm

from jittor_self_blind_vsr.infer import InferenceError
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.image_io import is_inside, to_uint8_image, write_image
from jittor_self_blind_vsr.utils.metrics import CROP_BORDER, calc_psnr, calc_ssim

LOG_NAME = 'inference_log.txt'
METRICS_JSON = 'metrics.json'
METRICS_CSV = 'metrics.csv'
RESULT_FILES = (LOG_NAME, METRICS_JSON, METRICS_CSV)
LOG_FIRST_LINE = 'Inference - '
VIDEO_CODECS = {'mp4': 'mp4v', 'avi': 'MJPG'}
# Seconds per frame as the original's log names them: pre + forward + post = total.
TIME_KEYS = ('pre_time', 'forward_time', 'post_time', 'total_time')
# The parts of post_time: scoring against GT, writing the frame (PNG, video).
POST_PARTS = ('eval_time', 'write_time')


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


def _finite(value):
    return value if value is None or math.isfinite(value) else None


def _mean(values):
    return sum(values) / len(values) if values else None


def frame_line(clip, record):
    times = ', '.join(f'{k}:{record[k]:.3}s' for k in TIME_KEYS)
    if 'psnr' in record:
        return f'> {clip}-{record["frame"]} PSNR={record["psnr"]:.5}, SSIM={record["ssim"]:.4} {times}'
    return f'> {clip}-{record["frame"]} {times}'


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
        self.records = {}  # clip -> list of per-frame dicts
        self.warmups = []
        self.video_writers = {}
        self.wall = {}

    # -- logging
    def log(self, line):
        tqdm.write(line, file=sys.stdout)
        self.log_file.write(line + '\n')
        self.log_file.flush()

    def log_header(self):
        a = self.args
        self.log(f'Inference - {a.infer_flag}')
        for key, value in (('input_path', a.input_path), ('gt_path', a.gt_path), ('model_path', a.model_path),
                           ('result_path', self.final), ('border', a.border), ('save_image', a.save_image),
                           ('n_seq', a.n_seq), ('scale', a.scale), ('size_must_mode', a.size_must_mode),
                           ('device', self.device), ('precision', a.precision), ('align_corners', a.align_corners),
                           ('dataset_name', a.dataset_name), ('blur_type', a.blur_type)):
            self.log(f'{key}: {value}')
        self.log(f'Loading model from {a.model_path}')

    def log_warm_up(self, size, seconds):
        self.warmups.append(dict(lr_size=list(size), seconds=seconds))
        self.log(f'# Warm-up (Jittor compilation, not timed below) LR {size[0]}x{size[1]}: {seconds:.3f}s')

    # -- per frame
    def add_frame(self, clip, frame):
        """Score and save one restored frame (a restorer.RestoredFrame) and log its line.

        post_time is what the original's is: the output fetched and rounded to uint8,
        scored and written."""
        start = time.perf_counter()
        image = to_uint8_image(frame.output.numpy()[0])
        fetched = time.perf_counter()
        record = dict(frame=frame.name)
        if frame.gt is not None:
            record['psnr'] = calc_psnr(image, frame.gt, CROP_BORDER)
            record['ssim'] = calc_ssim(image, frame.gt, CROP_BORDER)
        scored = time.perf_counter()
        if self.args.save_image:
            folder = os.path.join(self.staging, clip)
            os.makedirs(folder, exist_ok=True)
            write_image(os.path.join(folder, f'{frame.name}.png'), image)
        if self.args.save_video:
            self.video_writer(clip, image).write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        end = time.perf_counter()
        post = end - start
        record.update(pre_time=frame.pre_time, forward_time=frame.forward_time, post_time=post,
                      total_time=frame.pre_time + frame.forward_time + post,
                      eval_time=scored - fetched, write_time=end - scored)
        self.records.setdefault(clip, []).append(record)
        self.log(frame_line(clip, record))

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

    def end_clip(self, clip, wall_time):
        """Close the clip's video file and note the clip's wall-clock seconds."""
        if clip in self.video_writers:
            writer, tmp = self.video_writers.pop(clip)
            writer.release()
            os.replace(tmp, os.path.join(self.staging, f'{clip}.{self.args.video_format}'))
        self.wall[clip] = wall_time

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
        lines.append(f'# Wall time per frame (logging included, warm-up not): {wall:.3}s')
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
                        size_must_mode=a.size_must_mode, precision=a.precision, align_corners=a.align_corners,
                        crop_border=CROP_BORDER,
                        dataset_name=a.dataset_name, blur_type=a.blur_type, infer_flag=a.infer_flag,
                        model_config=self.config)
        return dict(model_path=os.path.abspath(a.model_path), device=self.device, settings=settings,
                    warmup=self.warmups, videos=videos, total=total)

    def _averages(self, records):
        out = {'n_frames': len(records)}
        if self.args.gt_path is not None:
            out['avg_psnr'] = _finite(_mean([r['psnr'] for r in records]))
            out['avg_ssim'] = _mean([r['ssim'] for r in records])
        for key in TIME_KEYS + POST_PARTS:
            out[f'avg_{key}'] = _mean([r[key] for r in records])
        return out

    def metrics_csv(self):
        text = io.StringIO()
        columns = ['video', 'frame', 'psnr', 'ssim', *TIME_KEYS, *POST_PARTS]
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
