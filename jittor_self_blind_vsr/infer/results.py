"""The results of one inference run: restored frames (and videos), inference_log.txt in the
original's format, metrics.json and metrics.csv.

They are built in a hidden staging folder next to OUT/<dataset_name>/<blur_type>/ and
swapped in for an earlier result only when the run is complete; anything at that path
that is not an earlier result of sbvsr-infer is refused before any work starts. Each
finished frame is a line of the staging folder's manifest, not an object in memory: the
summaries are read back from it at the end, and with --resume the staging folder has a
fixed name, outlives an interrupted run, and the frames its manifest vouches for are kept: nothing
in it is trusted that this tool does not check (a link, a file it does not write, a record that is
not one of its own, a frame whose PNG file or input frames changed).
"""
import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from tqdm import tqdm

from jittor_self_blind_vsr.infer import InferenceError, video
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.atomic import atomic_file, write_bytes_atomic
from jittor_self_blind_vsr.utils.image_io import is_inside, read_image, to_uint8_image, write_image
from jittor_self_blind_vsr.utils.metrics import CROP_BORDER, calc_psnr, calc_ssim

LOG_NAME = 'inference_log.txt'
METRICS_JSON = 'metrics.json'
METRICS_CSV = 'metrics.csv'
RESULT_FILES = (LOG_NAME, METRICS_JSON, METRICS_CSV)
# The staging folder's bookkeeping, removed when the result is swapped in (and allowed in a
# result, where a process killed between the swap and their removal leaves them).
MANIFEST = '.frames.jsonl'  # one JSON line per finished frame, in order: clip, frame, PNG SHA-256, record
RESUME_RECORD = '.resume.json'  # what a run resuming this staging folder must share with it
BOOKKEEPING = (MANIFEST, RESUME_RECORD)
# Options that do not change a frame, so a resumed run may give them differently (a video is written
# again from the PNG files in every run).
NOT_IN_IDENTITY = ('infer_flag', 'quick_test', 'resume', 'model_path', 'result_path', 'dataset_name', 'blur_type',
                   'video_codec', 'video_crf', 'verbose', 'default_model_line')
# The temporary files utils/atomic.py and the video writer leave when a process is killed outright.
DEBRIS = re.compile(r'^\..+\.[0-9a-f]{8}\.tmp$|^\..+\.partial\.\w+$')
LOG_FIRST_LINE = 'Inference - '
SHA256 = re.compile(r'[0-9a-f]{64}')
ENTRY_KEYS = {'clip', 'frame', 'sha256', 'inputs', 'wall', 'record'}
# A bound on any one time in the manifest, far beyond a real frame's, that keeps sums of them finite.
MAX_SECONDS = 1e9
VIDEO_FORMATS = ('avi', 'mp4')
# Seconds per frame as the original's log names them: pre + forward + post = total.
TIME_KEYS = ('pre_time', 'forward_time', 'post_time', 'total_time')
# The parts of post_time: scoring against GT, writing the frame (PNG, video).
POST_PARTS = ('eval_time', 'write_time')
RECORD_KEYS = {'frame', *TIME_KEYS, *POST_PARTS}
SCORED_KEYS = RECORD_KEYS | {'psnr', 'ssim'}


def results_folder(args):
    return os.path.join(args.result_path, args.dataset_name, args.blur_type)


def resumable_folder(args):
    """The staging folder of a --resume run: fixed, so that the next run finds it."""
    return os.path.join(args.result_path, args.dataset_name, f'.{args.blur_type}.resumable')


def resumable_count(args):
    """How many finished frames an interrupted --resume run of `args` keeps in its staging folder."""
    if not getattr(args, 'resume', False):
        return 0
    try:
        return sum(1 for _ in read_manifest(os.path.join(resumable_folder(args), MANIFEST), args.gt_path is not None))
    except OSError:
        return 0


def kept_for_resume(args):
    """'N finished frames are kept in FOLDER for --resume', or None when there are none."""
    count = resumable_count(args)
    return f'{count} finished frames are kept in {resumable_folder(args)} for --resume' if count else None


def left_behind(args):
    """What a run of `args` that stopped before moving its results into place left, in words: the results
    folder untouched, and the restored frames --resume continues from, if any."""
    final = results_folder(args)
    state = 'it is unchanged' if os.path.lexists(final) else 'it was not created'
    count = resumable_count(args)
    if not count:
        return f'nothing was moved into {final} ({state}) and no restored frames were kept'
    frames = '1 restored frame is' if count == 1 else f'{count} restored frames are'
    return (f'nothing was moved into {final} ({state}); {frames} kept in {resumable_folder(args)}, and --resume '
            f'continues from there')


def ffmpeg_program():
    """imageio-ffmpeg's static ffmpeg, else one on the PATH, else None."""
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which('ffmpeg')


def video_program(args):
    """The ffmpeg that writes --save_video's videos, or None when there is none (OpenCV writes them then,
    and the log says so); refused before any work: --video_codec or --video_crf without ffmpeg, and an
    ffmpeg without the encoder asked for."""
    ffmpeg = ffmpeg_program()
    if ffmpeg is None:
        if args.video_codec is not None or args.video_crf is not None:
            raise InferenceError('--video_codec and --video_crf need ffmpeg (pip install imageio-ffmpeg, or an '
                                 'ffmpeg on the PATH); without them OpenCV writes the videos')
        return None
    video.check_encoder(ffmpeg, video.video_codec(args))
    return ffmpeg


def sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def run_identity(args, device, clips):
    """What a run resuming another must share with it for its frames to be the same ones: the options
    (input and GT paths made absolute), the model file's content, the device and the clips."""
    options = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_IN_IDENTITY}
    for key in ('input_path', 'gt_path'):
        options[key] = None if options[key] is None else os.path.abspath(options[key])
    return dict(options=options, model_sha256=sha256_of_file(args.model_path), device=device,
                clips=[[c.name, c.lr.count, list(c.lr.size), c.lr.fps] for c in clips])


def identity_difference(old, new):
    """How the identity `new` differs from `old`, in words."""
    if old.get('model_sha256') != new['model_sha256']:
        return 'another model (the model files differ)'
    if old.get('device') != new['device']:
        return f'another device ({old.get("device")} there, {new["device"]} here)'
    if old.get('clips') != new['clips']:
        return 'other input clips (names, frame counts, sizes or frame rates differ)'
    for key in sorted(set(old.get('options', {})) | set(new['options'])):
        there, here = old.get('options', {}).get(key, '(none)'), new['options'].get(key, '(none)')
        if there != here:
            return f'other options (--{key} {there} there, {here} here)'
    return None


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
        elif (entry.name not in RESULT_FILES + BOOKKEEPING
              and os.path.splitext(entry.name)[1][1:] not in VIDEO_FORMATS):
            return f'it holds {entry.name}'
    return None


def make_staging_folder(prefix, parent):
    """A new folder in `parent` with the permissions os.makedirs would give it: mkdtemp's are
    0700, and the staging folder becomes the results folder the user shares and reads."""
    folder = tempfile.mkdtemp(prefix=prefix, dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    return folder


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


def frame_line(clip, record):
    times = ', '.join(f'{k}:{record[k]:.3}s' for k in TIME_KEYS)
    if 'psnr' in record:
        return f'> {clip}-{record["frame"]} PSNR={record["psnr"]:.5}, SSIM={record["ssim"]:.4} {times}'
    return f'> {clip}-{record["frame"]} {times}'


class Averages:
    """Running sums of per-frame records: a clip's or a run's averages without holding the records."""

    def __init__(self, scored):
        self.keys = (('psnr', 'ssim') if scored else ()) + TIME_KEYS + POST_PARTS
        self.sums = dict.fromkeys(self.keys, 0.0)
        self.n_frames, self.wall_time = 0, 0.0

    def add(self, record, wall):
        for key in self.keys:
            self.sums[key] += record[key]
        self.n_frames += 1
        self.wall_time += wall

    def mean(self, key):
        return self.sums[key] / self.n_frames

    def summary(self):
        out = {'n_frames': self.n_frames}
        if 'psnr' in self.keys:
            out['avg_psnr'] = _finite(self.mean('psnr'))
            out['avg_ssim'] = self.mean('ssim')
        for key in TIME_KEYS + POST_PARTS:
            out[f'avg_{key}'] = self.mean(key)
        out['wall_time'] = self.wall_time
        return out


def _seconds(value):
    # compared without float(): an integer of 400 digits would overflow it
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_SECONDS


def _digest(value):
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


def valid_entry(entry, scored):
    """Whether a parsed manifest line is a record this tool writes, field by field: a line edited
    by hand (a string for a time, a missing key, NaN, 1e308) is as good as cut short."""
    if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
        return False
    record = entry['record']
    if not (isinstance(entry['clip'], str) and isinstance(entry['frame'], str) and _seconds(entry['wall'])
            and (entry['sha256'] is None or _digest(entry['sha256'])) and _digest(entry['inputs'])
            and isinstance(record, dict) and set(record) == (SCORED_KEYS if scored else RECORD_KEYS)
            and record['frame'] == entry['frame'] and all(_seconds(record[k]) for k in TIME_KEYS + POST_PARTS)):
        return False
    if not scored:
        return True
    psnr, ssim = record['psnr'], record['ssim']
    # PSNR of uint8 frames is at least 0; null stands for infinity (identical frames), which JSON cannot hold
    return ((psnr is None or (isinstance(psnr, float) and math.isfinite(psnr) and psnr >= 0))
            and isinstance(ssim, float) and math.isfinite(ssim) and -1 <= ssim <= 1)


def read_manifest(path, scored):
    """(raw line, entry) of every complete line of a manifest, up to the first one that is cut short (a
    killed process) or not a valid record; an infinite PSNR comes back as inf."""
    with open(path, 'rb', opener=_no_follow) as f:
        for raw in f:
            try:
                entry = json.loads(raw) if raw.endswith(b'\n') else None
            except (ValueError, RecursionError):  # RecursionError: a line of 100,000 nested brackets
                entry = None
            if not valid_entry(entry, scored):
                return
            if scored and entry['record']['psnr'] is None:
                entry['record']['psnr'] = math.inf
            yield raw, entry


def _no_follow(path, flags):
    """open()'s opener that refuses a link and anything but a regular file: nothing is read or written
    through a link in a staging folder, and a FIFO there does not block the run."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, 'not a regular file', path)
    return fd


def _complete_lines(path):
    with open(path, 'rb', opener=_no_follow) as f:
        return sum(1 for line in f if line.endswith(b'\n'))


def _stray(entry, is_own, resuming, inside=''):
    """`entry` of a staging folder in words when this tool does not write it there, else None; a folder
    at the top is left to the caller (clip folders)."""
    path = os.path.join(inside, entry.name)
    if entry.is_symlink():
        return f'the link {path}'
    if entry.is_dir(follow_symlinks=False):
        return path if inside else None
    if not entry.is_file(follow_symlinks=False):
        return f'the special file {path}'
    if is_own(entry) or (resuming and DEBRIS.match(entry.name)):
        return None
    return path


def _create_new(path):
    """Create the empty file `path`, which must not exist (not even as a link): the name is the run's own
    before a program that opens by name (OpenCV, ffmpeg) writes it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))
    except FileExistsError:
        raise InferenceError(f'{path} appeared in the staging folder during the run; sbvsr-infer did not write '
                             f'it and does not write through it') from None


class InferenceRun:
    """The results of one invocation, built in a hidden staging folder next to the final one.

    Only a complete run is moved to OUT/<dataset_name>/<blur_type>/ (replacing an older
    result there); an aborted run removes its staging folder and leaves no metrics.json, except
    with --resume: then the staging folder keeps the frames finished so far for the next run
    with the same options. Every finished frame is appended to the manifest (after its PNG
    file is complete): per-frame records are never held in memory, whatever the clip's length.
    """

    def __init__(self, args, config, device, clips):
        self.args, self.config, self.device, self.clips = args, config, device, clips
        self.fps = {c.name: args.fps or c.lr.fps or 25.0 for c in clips}
        parent = os.path.join(args.result_path, args.dataset_name)
        self.final = os.path.join(parent, args.blur_type)
        self.scored = args.gt_path is not None
        self.ffmpeg = video_program(args) if args.save_video else None
        self.kept = {}  # clip -> frames an interrupted run finished, kept by this one
        self.redo = None  # why the frames after the kept ones are restored again
        self.total = None  # the Averages of every frame, once the summaries are written
        self.staging = None
        try:
            if args.resume:
                self._take_over(resumable_folder(args), run_identity(args, device, clips))
            else:
                self.staging = make_staging_folder(f'.{args.blur_type}.partial-', parent)
        except OSError as error:
            self._remove_staging()
            raise InferenceError(f'cannot create the results folder {parent}: {error.strerror or error}') from None
        except BaseException:
            self._remove_staging()
            raise
        self.warmups = []
        self.video_writers = {}
        self.last_time = None  # when the previous frame was done (its wall time ends there)
        try:
            self.log_file = open(os.path.join(self.staging, LOG_NAME), 'w', encoding='utf-8', opener=_no_follow)
            self.manifest = open(os.path.join(self.staging, MANIFEST), 'ab', opener=_no_follow)
            self.replay = read_manifest(os.path.join(self.staging, MANIFEST), self.scored)
        except BaseException:
            self.abort()
            raise

    def _take_over(self, folder, identity):
        """Start the resumable staging folder, or check the one an interrupted run left and keep the
        frames of its manifest, from the first on, whose PNG files still have their recorded SHA-256;
        the manifest is cut after them (what follows is redone)."""
        record = os.path.join(folder, RESUME_RECORD)
        if not os.path.lexists(folder):
            os.mkdir(folder)
            self.staging = folder
            write_bytes_atomic(record, json.dumps(identity, indent=1).encode('utf-8'))
            return
        try:
            with open(record, encoding='utf-8') as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if os.path.islink(folder) or not isinstance(old, dict):
            raise InferenceError(f'{folder} exists and is not an interrupted run of sbvsr-infer --resume, so it is '
                                 f'not used; move it away or give another --result_path')
        difference = identity_difference(old, identity)
        if difference is not None:
            raise InferenceError(f'{folder} holds an interrupted run with {difference}: give the options it was '
                                 f'started with, or remove that folder to start afresh')
        stray = self.stray_entry(folder, resuming=True)
        if stray is not None:
            raise InferenceError(f'{folder} holds {stray}, which sbvsr-infer did not write there, so it is not '
                                 f'used; move that away, or remove the folder to start afresh')
        self._remove_debris(folder)  # self.staging is set last: a failure until then must not remove the folder
        expected = self.expected_frames()
        count, manifest = 0, os.path.join(folder, MANIFEST)
        if not os.path.lexists(manifest):  # killed before it was opened
            write_bytes_atomic(manifest, b'')
        entries = read_manifest(manifest, self.scored)
        for clip, name, inputs in expected:
            raw_entry = next(entries, None)
            if raw_entry is None:
                if count < _complete_lines(manifest):
                    self.redo = f'the record of {clip}-{name} in the manifest is not valid'
                break
            entry = raw_entry[1]
            if (entry['clip'], entry['frame']) != (clip, name):
                self.redo = f'the manifest names {entry["clip"]}-{entry["frame"]} where {clip}-{name} was expected'
                break
            if not self._verified(folder, entry):
                self.redo = f'the PNG file of {clip}-{name} is missing or changed'
                break
            if entry['inputs'] != inputs():
                self.redo = f'the input frames of {clip}-{name} changed'
                break
            self.kept[clip] = self.kept.get(clip, 0) + 1
            count += 1
        expected.close()
        entries.close()
        with atomic_file(manifest) as f:
            for _, (raw, _) in zip(range(count), read_manifest(manifest, self.scored)):
                f.write(raw)
        self.staging = folder

    def expected_frames(self):
        """(clip, frame name, a function returning the fingerprint of its input frames) of every output
        frame in order: the input is read only as far as the fingerprints are asked for."""
        from jittor_self_blind_vsr.infer.sources import window_fingerprints
        for clip in self.clips:
            prints = window_fingerprints(clip, self.args.n_seq, self.args.border)
            try:
                for name in self.output_names(clip):
                    yield clip.name, name, lambda: next(prints)
            finally:
                prints.close()

    def stray_entry(self, folder, resuming):
        """What in a staging folder this tool does not write there, in words ('the link clip',
        'notes.txt'), or None. Its own temporary files a killed process left count as its own
        while `resuming` (they are removed then) and as strays otherwise."""
        names = {clip.name: set(self.output_names(clip)) for clip in self.clips}
        own_files = set(RESULT_FILES + BOOKKEEPING) | {f'{clip}.{ext}' for clip in names for ext in VIDEO_FORMATS}
        for entry in os.scandir(folder):
            what = _stray(entry, lambda e: e.name in own_files, resuming)
            if what is None and entry.is_dir(follow_symlinks=False):
                if entry.name not in names:
                    return entry.name
                frames = names[entry.name]
                what = next((w for w in (_stray(e, lambda f: f.name.endswith('.png') and f.name[:-4] in frames,
                                                resuming, inside=entry.name) for e in os.scandir(entry.path))
                             if w is not None), None)
            if what is not None:
                return what
        return None

    def output_names(self, clip):
        """The names of the frames restored of `clip`, in order."""
        from jittor_self_blind_vsr.infer.sources import window_at, window_count
        a, n = self.args, clip.lr.count
        return (clip.lr.frame_name(window_at(k, n, a.n_seq, a.border)[a.n_seq // 2])
                for k in range(window_count(n, a.n_seq, a.border)))

    @staticmethod
    def _verified(folder, entry):
        path = os.path.join(folder, entry['clip'], f'{entry["frame"]}.png')
        try:
            return sha256_of_file(path) == entry.get('sha256')
        except OSError:
            return False

    @staticmethod
    def _remove_debris(folder):
        """The temporary files (of PNGs, of videos) a process killed outright leaves."""
        for place in [folder] + [e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]:
            for entry in os.scandir(place):
                if entry.is_file(follow_symlinks=False) and DEBRIS.match(entry.name):
                    os.unlink(entry.path)

    # -- logging
    def log(self, line, to_file_only=False):
        if not to_file_only:
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
        if a.save_video and self.ffmpeg is None:
            fourcc = video.OPENCV_FOURCC[a.video_format]
            self.log(f'# --save_video: no ffmpeg was found, so OpenCV writes the videos ({fourcc}, blockier than '
                     f'H.264); pip install imageio-ffmpeg gives H.264')
        if self.kept:
            self.log(f'# Resumed: {sum(self.kept.values())} frames an interrupted run finished are kept (their PNG '
                     f'files have the SHA-256 recorded when they were written, their input frames the recorded '
                     f'fingerprints)')
        if self.redo:
            self.log(f'# Resume: restoring again from there on, since {self.redo}')

    def log_warm_up(self, size, seconds, earlier=False):
        """`earlier`: the warm-up was done for an earlier video of a batch (the model is compiled once)."""
        self.warmups.append(dict(lr_size=list(size), seconds=seconds, **({'earlier_video': True} if earlier else {})))
        self.log(f'# Warm-up (Jittor compilation, not timed below) LR {size[0]}x{size[1]}: {seconds:.3f}s'
                 + (', done for an earlier video of this batch' if earlier else ''))

    # -- per frame
    def start_clip(self, clip):
        """Returns how many of the clip's first frames an interrupted run finished (kept, not redone)."""
        self.last_time = time.perf_counter()
        return self.kept.get(clip, 0)

    def add_frame(self, clip, frame):
        """Score and save one restored frame (a restorer.RestoredFrame), record it in the manifest
        and log its line; a frame without output was kept from an interrupted run: its line comes
        from the manifest and its PNG goes into the video.

        post_time is what the original's is: the output fetched and rounded to uint8,
        scored and written."""
        if frame.output is None:
            self._replay(clip, frame.name)
            return
        start = time.perf_counter()
        image = to_uint8_image(frame.output.numpy()[0])
        fetched = time.perf_counter()
        record = dict(frame=frame.name)
        if frame.gt is not None:
            record['psnr'] = calc_psnr(image, frame.gt, CROP_BORDER)
            record['ssim'] = calc_ssim(image, frame.gt, CROP_BORDER)
        scored = time.perf_counter()
        digest = None
        if self.args.save_image:
            folder = self._clip_folder(clip)
            digest = hashlib.sha256(write_image(os.path.join(folder, f'{frame.name}.png'), image)).hexdigest()
        if self.args.save_video:
            self.video_writer(clip, image).write(image)
        end = time.perf_counter()
        post = end - start
        record.update(pre_time=frame.pre_time, forward_time=frame.forward_time, post_time=post,
                      total_time=frame.pre_time + frame.forward_time + post,
                      eval_time=scored - fetched, write_time=end - scored)
        wall = end - self.last_time
        self.last_time = end
        stored = dict(record)
        if 'psnr' in stored and not math.isfinite(stored['psnr']):
            stored['psnr'] = None  # identical frames; JSON has no infinity
        line = json.dumps(dict(clip=clip, frame=frame.name, sha256=digest, inputs=frame.inputs, wall=wall,
                               record=stored), allow_nan=False)
        self.manifest.write(line.encode('utf-8') + b'\n')
        self.manifest.flush()
        os.fsync(self.manifest.fileno())
        self.log(frame_line(clip, record))

    def _clip_folder(self, clip):
        """The clip's folder in the staging folder, made when missing; never a link to elsewhere."""
        folder = os.path.join(self.staging, clip)
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                raise InferenceError(f'{folder} was replaced by a link or file during the run; sbvsr-infer does '
                                     f'not write through it') from None
        return folder

    def _replay(self, clip, name):
        _, entry = next(self.replay)
        self.log(frame_line(clip, entry['record']), to_file_only=True)
        if self.args.save_video:
            image = read_image(os.path.join(self.staging, clip, f'{name}.png'))
            self.video_writer(clip, image).write(image)
        self.last_time = time.perf_counter()

    def video_writer(self, clip, image):
        if clip not in self.video_writers:
            a = self.args
            tmp = os.path.join(self.staging, f'.{clip}.partial.{a.video_format}')
            _create_new(tmp)
            try:
                if self.ffmpeg is None:
                    writer = video.OpenCVWriter(tmp, image.shape[:2], self.fps[clip], a.video_format)
                else:
                    writer = video.FFmpegWriter(self.ffmpeg, tmp, f'{clip}.{a.video_format}', image.shape[:2],
                                                self.fps[clip], video.video_codec(a), a.video_crf)
            except BaseException:
                os.unlink(tmp)
                raise
            self.video_writers[clip] = (writer, tmp)
        return self.video_writers[clip][0]

    def end_clip(self, clip):
        """Close the clip's video file, with the input video's sound when there is some."""
        if clip in self.video_writers:
            writer, tmp = self.video_writers.pop(clip)
            source = next(c.lr for c in self.clips if c.name == clip)
            try:
                writer.finish()
                if source.video is not None:
                    tmp = self._with_sound(clip, tmp, source)
                os.replace(tmp, os.path.join(self.staging, f'{clip}.{self.args.video_format}'))
            except BaseException:
                self._remove_debris(self.staging)  # also in a --resume run's folder, which stays
                raise

    def _with_sound(self, clip, video, source):
        """`video` with the sound of the input video `source` (if it has any) from its first restored
        frame on, muxed by ffmpeg into a new temporary file (returned); `video` as it is when that
        cannot be done, said in the log."""
        if self.fps[clip] != (source.fps or 25.0):
            self.log(f'# {clip}: the input\'s sound is not copied: --fps changes the video\'s duration')
            return video
        ffmpeg = self.ffmpeg
        if ffmpeg is None:
            self.log(f'# {clip}: the input\'s sound, if any, is not copied: that needs ffmpeg '
                     f'(pip install imageio-ffmpeg, or an ffmpeg on the PATH)')
            return video
        first = 0 if self.args.border else self.args.n_seq // 2  # the input frame the video starts with
        ext = self.args.video_format
        out = os.path.join(self.staging, f'.{clip}.sound.partial.{ext}')
        _create_new(out)
        command = [ffmpeg, '-nostdin', '-v', 'error', '-y', '-i', video, '-ss', f'{first / self.fps[clip]:.6f}',
                   '-i', source.video, '-map', '0:v', '-map', '1:a?', '-c:v', 'copy',
                   '-c:a', 'aac' if ext == 'mp4' else 'pcm_s16le', '-shortest',
                   *(['-movflags', '+faststart'] if ext == 'mp4' else []), out]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
            reason = (done.stderr.strip().splitlines() or ['no message'])[-1]
            self.log(f'# {clip}: the input\'s sound is not copied: ffmpeg failed ({reason})')
            return video
        os.unlink(video)
        return out

    # -- summary, read back from the manifest
    def averages(self):
        """({clip: Averages}, Averages of the run)."""
        clips, total = {}, Averages(self.scored)
        for _, entry in read_manifest(os.path.join(self.staging, MANIFEST), self.scored):
            clips.setdefault(entry['clip'], Averages(self.scored)).add(entry['record'], entry['wall'])
            total.add(entry['record'], entry['wall'])
        from jittor_self_blind_vsr.infer.sources import window_count
        expected = sum(window_count(c.lr.count, self.args.n_seq, self.args.border) for c in self.clips)
        if total.n_frames != expected:
            raise InferenceError(f'the manifest {os.path.join(self.staging, MANIFEST)} holds {total.n_frames} valid '
                                 f'records for {expected} restored frames (another program wrote it during the '
                                 f'run), so no metrics were written')
        return clips, total

    def summary_lines(self, clips, total):
        lines = []
        if self.args.gt_path is not None:
            for clip, averages in clips.items():
                lines.append('# Video:{} AVG-PSNR={:.5}, AVG-SSIM={:.4}'.format(
                    clip, averages.mean('psnr'), averages.mean('ssim')))
            lines.append('# Total AVG-PSNR={:.5}, AVG-SSIM={:.4}'.format(total.mean('psnr'), total.mean('ssim')))
        lines.append('# Time AVG pre_time:{:.3}s, forward_time:{:.3}s, post_time:{:.3}s, total_time:{:.3}s'
                     .format(*(total.mean(k) for k in TIME_KEYS)))
        wall = total.wall_time / total.n_frames
        lines.append(f'# Wall time per frame (logging included, warm-up not): {wall:.3}s')
        return lines

    def metrics_head(self):
        a = self.args
        settings = dict(input_path=a.input_path, gt_path=a.gt_path, result_path=self.final, border=a.border,
                        save_image=a.save_image, save_video=a.save_video, n_seq=a.n_seq, scale=a.scale,
                        size_must_mode=a.size_must_mode, precision=a.precision, align_corners=a.align_corners,
                        crop_border=CROP_BORDER,
                        dataset_name=a.dataset_name, blur_type=a.blur_type, infer_flag=a.infer_flag,
                        model_config=self.config)
        return dict(model_path=os.path.abspath(a.model_path), device=self.device, settings=settings,
                    warmup=self.warmups)

    def write_metrics(self, clips, total):
        """metrics.json and metrics.csv, one frame after the other from the manifest."""
        columns = ['video', 'frame', 'psnr', 'ssim', *TIME_KEYS, *POST_PARTS]
        with atomic_file(os.path.join(self.staging, METRICS_JSON)) as js, \
                atomic_file(os.path.join(self.staging, METRICS_CSV)) as cs:
            text = io.TextIOWrapper(cs, encoding='utf-8', newline='')
            table = csv.DictWriter(text, fieldnames=columns, extrasaction='ignore', lineterminator='\n')
            table.writeheader()
            head = json.dumps(self.metrics_head(), indent=1, allow_nan=False)
            js.write((head[:-2] + ',\n "videos": {').encode('utf-8'))
            clip = None
            for _, entry in read_manifest(os.path.join(self.staging, MANIFEST), self.scored):
                record = {k: _finite(v) if isinstance(v, float) else v for k, v in entry['record'].items()}
                if entry['clip'] != clip:
                    opening = json.dumps(clips[entry['clip']].summary(), allow_nan=False)[:-1]
                    js.write(f'{"]}," if clip is not None else ""}\n  {json.dumps(entry["clip"])}: {opening}, '
                             f'"frames": [\n   '.encode('utf-8'))
                    clip = entry['clip']
                else:
                    js.write(b',\n   ')
                js.write(json.dumps(record, allow_nan=False).encode('utf-8'))
                table.writerow({'video': clip, **entry['record']})
            js.write(f']}}\n }},\n "total": {json.dumps(total.summary(), allow_nan=False)}\n}}\n'.encode('utf-8'))
            text.flush()
            text.detach()

    def write_summaries(self):
        clips, total = self.averages()
        self.total = total
        for line in self.summary_lines(clips, total):
            self.log(line)
        self.log_file.close()
        self.write_metrics(clips, total)

    # -- end of the run
    def commit(self):
        """Swap the finished staging folder in for OUT/<dataset>/<blur_type>, which may only be an
        earlier result (checked again: it may have appeared during the run), and drop the bookkeeping."""
        check_destination(self.args)
        stray = self.stray_entry(self.staging, resuming=False)
        if stray is not None:
            raise InferenceError(f'{self.staging} holds {stray}, which sbvsr-infer did not write there (another '
                                 f'program put it there during the run), so it is not moved to {self.final}')
        self.manifest.close()
        self.replay.close()
        old = None
        with interrupt.deferred():
            if os.path.lexists(self.final):
                old = tempfile.mkdtemp(prefix=f'.{self.args.blur_type}.old-', dir=os.path.dirname(self.final))
                os.replace(self.final, os.path.join(old, 'previous'))
            os.replace(self.staging, self.final)
        for name in BOOKKEEPING:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.final, name))
        if old is not None:
            failures = []
            shutil.rmtree(old, onerror=lambda _, path, info: failures.append((path, info[1])))
            if failures and os.path.lexists(old):
                path, error = failures[0]
                print(f'sbvsr-infer: warning: the earlier result it replaced could not be removed entirely '
                      f'({getattr(error, "strerror", None) or error}: {path}); what is left of it is in {old}',
                      file=sys.stderr, flush=True)

    def abort(self):
        """Close everything; remove the staging folder, unless it keeps finished frames for --resume
        (then only the unfinished videos go)."""
        for writer, tmp in self.video_writers.values():
            writer.kill()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        for handle in (getattr(self, name, None) for name in ('log_file', 'manifest')):
            try:
                if handle is not None:
                    handle.close()
            except OSError:  # a full disk fails the last flush too; the file is deleted below anyway
                pass
        if getattr(self, 'replay', None) is not None:
            self.replay.close()
        if not (self.args.resume and kept_for_resume(self.args)):
            self._remove_staging()

    def _remove_staging(self):
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
