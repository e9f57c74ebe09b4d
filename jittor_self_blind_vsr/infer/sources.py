"""The clips to restore: found in a video file, a folder of frames or a folder of such
folders, paired with their ground truth, checked, and read frame by frame; and the video
files of a batch (a folder of video files, or a glob pattern)."""
import glob
import hashlib
import math
import os
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from jittor_self_blind_vsr.infer import InferenceError
from jittor_self_blind_vsr.utils.image_io import (ImageReadError, image_size, is_image_file, list_images,
                                                  list_subfolders, natural_key, read_image)
from jittor_self_blind_vsr.utils.metrics import CROP_BORDER, SSIM_WINDOW

# What a folder of videos counts as video files, by their names (other files there are ignored).
VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.wmv', '.flv', '.mpg', '.mpeg', '.ts', '.mts',
                    '.m2ts', '.3gp', '.ogv', '.y4m')


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

    def reader(self):
        """A FrameReader of this clip's frames."""
        return FrameReader(self)


class FrameReader:
    """Reads chosen frames of a FrameSource, in increasing index order: image files are read
    directly, a video is decoded up to the frame (the frames before it only grabbed, not
    converted), so a run that resumes deep in a long clip does not convert what it skips."""

    def __init__(self, source):
        self.source = source
        self.capture = cv2.VideoCapture(source.video) if source.video is not None else None
        self.position = 0  # of the video: the index of the next frame it decodes

    def read(self, index):
        """The RGB uint8 frame `index`; with a video, `index` may not lie before a frame already read."""
        if self.capture is None:
            return read_image(self.source.paths[index])
        if index < self.position:
            raise ValueError(f'frame {index} of {self.source.video} was asked for after frame {self.position - 1}')
        while self.position <= index:
            ok = self.capture.grab()
            self.position += 1
            if not ok:
                break
        ok, bgr = self.capture.retrieve() if ok else (False, None)
        if not ok:
            raise ImageReadError(f'cannot decode frame {index} of the video {self.source.video}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self):
        if self.capture is not None:
            self.capture.release()


def quiet_ffmpeg():
    """Keep FFmpeg inside OpenCV from printing its own lines for a damaged file ('moov atom not
    found'): the sentence of probe_video says what is wrong. OpenCV reads the variable when it
    first opens a video, so the commands call this before; the user's own setting wins."""
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')


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
    """The FrameSource of a video file, every frame decoded once: a frame that cannot be decoded, or
    fewer frames than the container lists, is refused. OpenCV skips a damaged frame without
    saying which one it was (its positions and timestamps count the frames it returned), so
    the frames after it could not keep the names of their source frames."""
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise InferenceError(f'{path} is neither a folder nor a video file OpenCV can read')
        listed = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        count, size = 0, None
        while capture.grab():
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                raise InferenceError(f'frame {count} of the video {path} cannot be decoded (a damaged file?); '
                                     f'repair or re-encode the video')
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise InferenceError(f'frames of one clip must have one size, but frame {count} of the video {path} '
                                     f'is {frame.shape[1]}x{frame.shape[0]} and frame 0 is {size[1]}x{size[0]}')
            count += 1
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if count == 0 or size is None:
        raise InferenceError(f'{path} is neither a folder nor a video file OpenCV can read')
    if 0 < listed < 2 ** 31 and count < round(listed):
        missing = round(listed) - count
        raise InferenceError(f'the video {path} decodes {count} frames but its container lists {round(listed)}: '
                             f'{missing} {"frame is" if missing == 1 else "frames are"} damaged or missing, and '
                             f'OpenCV does not tell which, so the restored frames could not be named after their '
                             f'source frames; repair or re-encode the video')
    return FrameSource(label=path, count=count, size=tuple(size), video=path,
                       fps=fps if math.isfinite(fps) and fps > 0 else None)


def find_clips(path, role):
    """({clip name: FrameSource}, is_collection) for a video file, a frame folder or a folder of them.

    A folder holding image files is one clip; any other folder holds one clip per sub-folder.
    """
    if not os.path.exists(path):
        raise InferenceError(f'the {role} path {path} does not exist')
    if os.path.isfile(path):
        return {os.path.splitext(os.path.basename(path))[0]: probe_video(path)}, False
    if not os.path.isdir(path):
        raise InferenceError(f'the {role} path {path} is neither a folder nor a file (a FIFO or device?)')
    if list_images(path):
        return {os.path.basename(os.path.abspath(path)): probe_image_folder(path)}, False
    folders, videos = list_subfolders(path), list_videos(path)
    if folders and videos:
        raise InferenceError(f'the {role} path {path} holds both video folders and video files '
                             f'({os.path.basename(videos[0])}); move one kind elsewhere')
    if videos:
        raise InferenceError(f'the {role} path {path} is a folder of video files: only sbvsr-infer\'s '
                             f'--input_path takes it (as a batch); give one video here')
    if not folders:
        raise InferenceError(f'the {role} path {path} holds neither frames, video folders nor video files')
    return {os.path.basename(f): probe_image_folder(f) for f in folders}, True


def list_videos(folder):
    """Paths of the video files (by VIDEO_EXTENSIONS) directly inside `folder`, natural-sorted (hidden ones skipped)."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(VIDEO_EXTENSIONS) and not n.startswith('.')
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def batch_videos(path):
    """The video files of an input that is a batch, in natural order: a folder holding video files and
    neither frames nor sub-folders, or a glob pattern (one that is not itself an existing path, which
    wins); None for any other input."""
    if os.path.lexists(path):
        if not os.path.isdir(path) or list_images(path) or list_subfolders(path):
            return None
        return list_videos(path) or None
    if not glob.has_magic(path):
        return None
    matches = sorted(glob.glob(path), key=natural_key)
    if not matches:
        raise InferenceError(f'the input pattern {path} matches no file')
    for match in matches:
        if not os.path.isfile(match):
            raise InferenceError(f'the input pattern {path} matches {match}, which is not a file: a pattern must '
                                 f'match video files only')
        if is_image_file(match):  # a frame of a clip, which OpenCV would open as a video of one frame
            raise InferenceError(f'the input pattern {path} matches the image {match}: give the folder of the '
                                 f'frames instead')
    return matches


def input_name(path):
    """The name of an input: a video file's stem, a folder's name, and for a glob pattern the name of the
    deepest folder in it without wildcards ('clips' for 'clips/*.mp4')."""
    if glob.has_magic(path) and not os.path.lexists(path):
        while glob.has_magic(path):
            path = os.path.dirname(path)
        path = path or os.curdir
    return os.path.splitext(os.path.basename(os.path.abspath(path)))[0]


def video_stem(path):
    return os.path.splitext(os.path.basename(path))[0]


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


def window_count(n_frames, n_seq, border):
    """How many windows `window_at` numbers (0 when the clip is too short for one)."""
    extra = 2 * min(n_seq // 2, n_frames) if border else 0
    return max(n_frames + extra - 2 * (n_seq // 2), 0)


def window_at(k, n_frames, n_seq, border):
    """Frame indices of window `k`, as the original's gene_seq groups file names.

    With border the frame list is extended by its first and last n_seq//2 entries (not by
    repeating the edge frame), so every frame is the centre of one window. Computed, not
    listed, so that a clip of any length costs no memory here.
    """
    half = n_seq // 2
    head = min(half, n_frames) if border else 0  # entries put before the frames

    def frame(position):  # the frame at `position` of the (extended) list
        if position < head:
            return position
        if position < head + n_frames:
            return position - head
        return max(n_frames - half, 0) + position - head - n_frames
    return [frame(p) for p in range(k, k + n_seq)]


def window_indices(n_frames, n_seq, border):
    """Every window_at of a clip, as a list."""
    return [window_at(k, n_frames, n_seq, border) for k in range(window_count(n_frames, n_seq, border))]


def frame_digest(image):
    """SHA-256 of a decoded frame (shape and pixels): what --resume compares, whatever the file."""
    digest = hashlib.sha256(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.digest()


def window_fingerprint(lr_digests, gt_digest):
    """The fingerprint of an output frame's inputs: its window's frames, in order, and its GT frame."""
    digest = hashlib.sha256(b''.join(lr_digests))
    digest.update(gt_digest or b'no GT')
    return digest.hexdigest()


def window_fingerprints(clip, n_seq, border):
    """window_fingerprint of each window of `clip` in order, each input frame read once: a generator,
    which reads no further than it is asked."""
    count, centre = window_count(clip.lr.count, n_seq, border), n_seq // 2
    lr = clip.lr.reader()
    gt = clip.gt.reader() if clip.gt is not None else None
    digests = {}
    try:
        for k in range(count):
            window = window_at(k, clip.lr.count, n_seq, border)
            for new in sorted(set(window) - digests.keys()):
                digests[new] = frame_digest(lr.read(new))
            target = None if gt is None else frame_digest(gt.read(window[centre]))
            yield window_fingerprint([digests[i] for i in window], target)
            keep = {i for later in range(k + 1, min(k + 2 * n_seq, count))
                    for i in window_at(later, clip.lr.count, n_seq, border)}  # as restorer.restore_clip
            for stale in [i for i in digests if i not in keep]:
                del digests[stale]
    finally:
        lr.close()
        if gt is not None:
            gt.close()


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
        if not window_count(clip.lr.count, args.n_seq, args.border):
            extra = '' if args.border or not window_count(clip.lr.count, args.n_seq, True) else ' (or --border)'
            raise InferenceError(f'video {clip.name} has {clip.lr.count} frames, too few for a {args.n_seq}-frame '
                                 f'window{extra}')
        if clip.gt is not None and min(height, width) * args.scale - 2 * CROP_BORDER < SSIM_WINDOW:
            raise InferenceError(f'frames of video {clip.name} are too small to score: SSIM needs '
                                 f'{SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping {CROP_BORDER} from each side')
    return clips


def model_input(frame, size):
    """The (1,3,h,w) float32 network input in [0,1] of an RGB uint8 frame cropped to `size` (h, w)."""
    h, w = size
    # the original: float64 -> float32 tensor, then *(1/255) in float32
    lr = frame[:h, :w].astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255)
    return np.ascontiguousarray(lr)
