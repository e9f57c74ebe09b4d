"""What every video dataset shares: scanning folders of frames, n_sequence-frame
windows, the repeat factor, in-memory loading (`--process`), patches, augmentation
and the tensors handed to the trainer.

Random draws use Python's `random` and NumPy's global generator in the original's
order, because Jittor re-seeds both in every loader worker (a private generator
would be copied into each worker and repeat the same patches).
"""
import os
import random

import cv2
import jittor as jt
import numpy as np
from scipy import io as scio

from jittor_self_blind_vsr.utils.cli import UserError
from jittor_self_blind_vsr.utils.image_io import image_size, list_images, list_subfolders, read_image
from jittor_self_blind_vsr.utils.matlab_imresize import imresize

Dataset = jt.dataset.Dataset

KERNEL_PAD_SIZE = 20  # kernels travel padded to 20x20 with -1, as the original batches them
KERNEL_PAD_VALUE = -1.0
UNKNOWN_KERNEL_SIZE = 13  # the original's placeholder when the true kernel is unknown: zeros
SMOOTH_EDGE_THRESHOLD = 7  # mean Sobel magnitude under which a patch is "smooth"
SMOOTH_MAX_TRIES = 5


class DatasetError(UserError, ValueError):
    """A dataset folder is missing or malformed; the message is one sentence for the user."""


def scan_videos(root, max_frames=None, what='video'):
    """[(video name, [frame paths])] for the sub-folders of `root`, natural-sorted.

    Keeps the first `max_frames` frames of each video when given.
    """
    if not os.path.isdir(root):
        raise DatasetError(f'{what} folder not found: {root}')
    videos = []
    for folder in list_subfolders(root):
        frames = list_images(folder)
        if not frames:
            raise DatasetError(f'video folder {folder} contains no PNG/JPEG/BMP frames')
        videos.append((os.path.basename(folder), frames[:max_frames]))
    if not videos:
        raise DatasetError(f'{what} folder {root} contains no video sub-folders')
    return videos


def mean_edge(img):
    """Mean Sobel magnitude of an HxWx3 image, computed exactly as the original (int16, saturated)."""
    grad_x = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 1, 0))
    grad_y = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 0, 1))
    return np.mean(cv2.addWeighted(grad_x, 0.5, grad_y, 0.5, 0))


def random_patch_origin(height, width, size):
    """Top-left corner (y, x) of a random size x size patch; x is drawn first, as the original."""
    x = random.randrange(0, width - size + 1)
    y = random.randrange(0, height - size + 1)
    return y, x


def random_augment(*clips):
    """Flip left-right, flip up-down and rotate by 90 degrees, each with probability 1/2 and
    the same for every clip; clips are (T, H, W, C)."""
    hflip, vflip, rot90 = random.random() < 0.5, random.random() < 0.5, random.random() < 0.5

    def apply(clip):
        if hflip:
            clip = clip[:, :, ::-1]
        if vflip:
            clip = clip[:, ::-1]
        if rot90:
            clip = np.rot90(clip, axes=(1, 2))
        return clip

    return [apply(clip) for clip in clips]


def crop_to_multiple(clip, multiple):
    """Crop the bottom/right of a (T, H, W, C) clip so H and W are multiples of `multiple`."""
    height, width = clip.shape[1:3]
    return clip[:, :height - height % multiple, :width - width % multiple]


def to_tensor_layout(clip, rgb_range):
    """(T, H, W, C) in [0, 255] -> float32 (T, C, H, W) in [0, rgb_range]."""
    chw = np.ascontiguousarray(np.transpose(clip, (0, 3, 1, 2)), dtype=np.float32)
    return chw * np.float32(rgb_range / 255)


def pad_kernels(kernels):
    """Stack per-frame kernels into float32 (T, 1, 20, 20), padded with -1."""
    padded = np.full((len(kernels), 1, KERNEL_PAD_SIZE, KERNEL_PAD_SIZE), KERNEL_PAD_VALUE, dtype=np.float32)
    for i, kernel in enumerate(kernels):
        size = kernel.shape[0]
        if size > KERNEL_PAD_SIZE:
            raise DatasetError(f'blur kernels larger than {KERNEL_PAD_SIZE}x{KERNEL_PAD_SIZE} are not supported, '
                               f'got {kernel.shape}')
        padded[i, 0, :size, :size] = kernel
    return padded


def unknown_kernels(n):
    return pad_kernels([np.zeros((UNKNOWN_KERNEL_SIZE, UNKNOWN_KERNEL_SIZE))] * n)


def frame_name(path):
    """'<video>.<frame stem>', the name the original reports for a frame."""
    return os.path.basename(os.path.dirname(path)) + '.' + os.path.splitext(os.path.basename(path))[0]


class VIDEODATA(Dataset):
    """Windows of `n_sequence` consecutive frames over one or more aligned frame streams.

    Subclasses set the folders in `_set_filesystem`, name their streams in `_streams`
    ({stream: folder of video folders}) and build the sample in `__getitem__`. Loader
    settings (batch_size, shuffle, num_workers) are set with Jittor's `set_attrs`;
    `total_len` is the number of samples, `len()` the number of batches.
    """
    has_hr = True
    patch_stream = 'input'  # the stream training patches are cut from

    def __init__(self, args, name='', train=True):
        super().__init__()
        self.args = args
        self.name = name
        self.train = train
        self.n_seq = args.n_sequence
        self.n_frames_per_video = args.n_frames_per_video
        self.HR_in = args.HR_in
        if args.n_colors != 3:
            raise DatasetError(f'the datasets read RGB frames, so n_colors must be 3, not {args.n_colors}')
        self._set_filesystem(args.dir_data if train else args.dir_data_test)
        self.frames = self._scan()
        self._check_frames()
        first = next(iter(self.frames.values()))
        self.n_frames_video = [len(paths) for _, paths in first]
        self.num_video = len(self.n_frames_video)
        self.num_frame = sum(self.n_frames_video) - (self.n_seq - 1) * self.num_video
        self.repeat = 1
        if train:
            self.repeat = max(args.test_every // max(self.num_frame // args.batch_size, 1), 1)
        self.cache = self._load_all() if args.process else None
        self.set_attrs(total_len=self.num_frame * self.repeat)

    def _set_filesystem(self, dir_data):
        raise NotImplementedError

    def _streams(self):
        raise NotImplementedError

    def _scan(self):
        """{stream: [(video, [frame paths])]}, checked for aligned videos and frame counts."""
        limit = self.n_frames_per_video if self.train else None
        frames = {stream: scan_videos(root, limit, what=f'{stream} frames')
                  for stream, root in self._streams().items()}
        reference_stream, reference = next(iter(frames.items()))
        for stream, videos in frames.items():
            names = [name for name, _ in videos]
            if names != [name for name, _ in reference]:
                raise DatasetError(f'the video folders of {stream} ({", ".join(names)}) do not match '
                                   f'those of {reference_stream}')
            for (video, paths), (_, ref_paths) in zip(videos, reference):
                if len(paths) != len(ref_paths):
                    raise DatasetError(f'video {video} has {len(paths)} {stream} frames but '
                                       f'{len(ref_paths)} {reference_stream} frames')
        for video, paths in reference:
            if len(paths) < self.n_seq:
                raise DatasetError(f'video {video} has {len(paths)} frames, fewer than n_sequence={self.n_seq}')
        return frames

    def patch_extent(self):
        """Side of the square training patch cut from `patch_stream`."""
        return self.args.patch_size

    def _check_frames(self):
        """Sizes checked on the first frame's header of every video: before training starts, not in
        a loader worker when the first sample (or, for a test set, the first evaluation) needs them."""
        if not self.train:
            return
        size = self.patch_extent()
        for video, paths in self.frames[self.patch_stream]:
            height, width = image_size(paths[0])
            if height < size or width < size:
                raise DatasetError(f'video {video}: frames of {height}x{width} pixels are smaller than the '
                                   f'{size}x{size} training patch (lower --patch_size)')

    def _load_all(self):
        """Every frame of every stream as uint8 (n, H, W, 3) arrays (uint8 keeps RAM 8x below the
        original's float64; the values are the same)."""
        return {stream: [self._read_clip(video, paths) for video, paths in videos]
                for stream, videos in self.frames.items()}

    @staticmethod
    def _read_clip(video, paths):
        images = [read_image(path) for path in paths]
        if any(image.shape != images[0].shape for image in images):
            raise DatasetError(f'the frames of video {video} do not all have the same size')
        return np.stack(images)

    def _locate(self, idx):
        """(video index, first frame index) of sample `idx`."""
        idx = idx % self.num_frame if self.train else idx
        for video_idx, n_frames in enumerate(self.n_frames_video):
            n_windows = n_frames - self.n_seq + 1
            if idx < n_windows:
                return video_idx, idx
            idx -= n_windows
        raise IndexError(f'sample {idx} is out of range')

    def _window(self, idx):
        """({stream: uint8 (n_seq, H, W, 3)}, frame paths of the first stream) of sample `idx`."""
        video_idx, start = self._locate(idx)
        stop = start + self.n_seq
        clips = {}
        for stream, videos in self.frames.items():
            video, paths = videos[video_idx]
            if self.cache is not None:
                clips[stream] = self.cache[stream][video_idx][start:stop]
            else:
                clips[stream] = self._read_clip(video, paths[start:stop])
        return clips, next(iter(self.frames.values()))[video_idx][1][start:stop]

    def _random_patch(self, clip, size, others=(), scale=1):
        """A size x size patch of `clip` (T, H, W, C), with the same region (scaled by `scale`)
        cut from every clip in `others`; smooth patches of the centre frame are redrawn
        up to SMOOTH_MAX_TRIES times in all. Returns [clip patch, *other patches];
        the smoothness is judged on the last of them (the HR clip when there is one)."""
        height, width = clip.shape[1:3]
        if height < size or width < size:
            raise DatasetError(f'frames of {height}x{width} pixels are smaller than the {size}x{size} '
                               f'training patch (lower --patch_size)')
        for _ in range(SMOOTH_MAX_TRIES):
            y, x = random_patch_origin(height, width, size)
            patches = [clip[:, y:y + size, x:x + size]]
            patches += [o[:, y * scale:(y + size) * scale, x * scale:(x + size) * scale] for o in others]
            if mean_edge(patches[-1][self.n_seq // 2]) >= SMOOTH_EDGE_THRESHOLD:
                break
        return patches

    def _bicubic_inputs(self, inputs):
        """The network's input when HR_in: every LR frame bicubic-upsampled (MATLAB imresize)."""
        return np.stack([imresize(frame, scalar_scale=self.args.scale) for frame in inputs])

    @staticmethod
    def load_kernel(path):
        """The 'kernel' array of a .mat file written by the dataset generation script."""
        try:
            kernel = scio.loadmat(path)['kernel']
        except (OSError, ValueError, KeyError) as err:
            raise DatasetError(f'cannot read a "kernel" array from {path} ({err})') from err
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
            raise DatasetError(f'the kernel in {path} is not a square 2-D array (shape {kernel.shape})')
        return kernel

    def __getitem__(self, idx):
        raise NotImplementedError
