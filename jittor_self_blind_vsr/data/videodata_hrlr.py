"""Pre-degraded test sets: HR frames, their blurred x4-decimated LR frames and, when the
generation script wrote them, the true kernels."""
import os

import numpy as np

from jittor_self_blind_vsr.data.videodata import (
    VIDEODATA, DatasetError, crop_to_multiple, frame_name, pad_kernels, random_augment,
    to_tensor_layout, unknown_kernels)
from jittor_self_blind_vsr.utils.image_io import image_size

HR_FOLDER = 'HR'
LR_FOLDER = 'LR_blurdown_x{scale}'  # LR_blurdown_x4 for the published x4 sets
KERNEL_FOLDER = 'kernel'


class VIDEODATA_HRLR(VIDEODATA):
    """Samples (inputs, gts, kernels, names): float32 (T, 3, h, w) LR and (T, 3, h*scale, w*scale) HR
    in [0, rgb_range], float32 (T, 1, 20, 20) kernels padded with -1 (13x13 zeros where
    `kernel/<video>/<frame>.mat` is absent, as the original), and T '<video>.<frame>' names."""

    def _set_filesystem(self, dir_data):
        self.apath = dir_data
        self.dir_gt = os.path.join(self.apath, HR_FOLDER)
        self.dir_input = os.path.join(self.apath, LR_FOLDER.format(scale=self.args.scale))
        self.dir_kernel = os.path.join(self.apath, KERNEL_FOLDER)

    def _streams(self):
        return {'gt': self.dir_gt, 'input': self.dir_input}

    def _kernels(self, gt_paths):
        paths = [os.path.join(self.dir_kernel, os.path.basename(os.path.dirname(p)),
                              os.path.splitext(os.path.basename(p))[0] + '.mat') for p in gt_paths]
        if not all(os.path.isfile(p) for p in paths):
            return unknown_kernels(len(paths))
        return pad_kernels([self.load_kernel(p) for p in paths])

    def _check_hr_size(self, video, hr_size, lr_size):
        """`lr_size` after the size_must_mode crop; the HR frames must cover `scale` times it."""
        scale = self.args.scale
        if hr_size[0] < lr_size[0] * scale or hr_size[1] < lr_size[1] * scale:
            raise DatasetError(f'the HR frames of video {video} ({hr_size[0]}x{hr_size[1]}) are not '
                               f'{scale} times its LR frames ({lr_size[0]}x{lr_size[1]})')

    def _check_frames(self):
        super()._check_frames()
        mode = self.args.size_must_mode
        for (video, hr_paths), (_, lr_paths) in zip(self.frames['gt'], self.frames['input']):
            height, width = image_size(lr_paths[0])
            self._check_hr_size(video, image_size(hr_paths[0]), (height - height % mode, width - width % mode))

    def _crop_pair(self, inputs, gts, video):
        scale = self.args.scale
        inputs = crop_to_multiple(inputs, self.args.size_must_mode)
        height, width = inputs.shape[1:3]
        self._check_hr_size(video, gts.shape[1:3], (height, width))
        return inputs, gts[:, :height * scale, :width * scale]

    def __getitem__(self, idx):
        clips, paths = self._window(idx)
        inputs, gts = clips['input'], clips['gt']
        video = os.path.basename(os.path.dirname(paths[0]))
        if self.train:
            inputs, gts = self._random_patch(inputs, self.args.patch_size, others=(gts,), scale=self.args.scale)
        inputs, gts = self._crop_pair(inputs, gts, video)
        if self.train and not self.args.no_augment:
            inputs, gts = random_augment(inputs, gts)
        if self.HR_in:
            inputs = self._bicubic_inputs(inputs.astype(np.float64))
        return (to_tensor_layout(inputs, self.args.rgb_range), to_tensor_layout(gts, self.args.rgb_range),
                self._kernels(paths), [frame_name(p) for p in paths])
