"""Training sets degraded online: every sample is an HR patch clip blurred with a freshly
drawn kernel and decimated, so the network never sees the same degradation twice."""
import os

import numpy as np

from jittor_self_blind_vsr.data.videodata import (
    VIDEODATA, DatasetError, crop_to_multiple, frame_name, pad_kernels, random_augment, to_tensor_layout)
from jittor_self_blind_vsr.utils.degradation import blur_down


class VIDEODATA_ONLINE(VIDEODATA):
    """Samples (inputs, gts, kernels, names) like VIDEODATA_HRLR's, from HR frames only: a
    (patch_size*scale)^2 HR clip patch (smooth patches redrawn, flipped/rotated), one kernel
    from `get_blur_kernel()` for the whole clip, LR = blur_down(HR) unrounded.
    Training only, as the original."""
    patch_stream = 'gt'

    def __init__(self, args, name='', train=True):
        if not train:
            raise DatasetError(f'{name} degrades frames at random for training; '
                               'evaluate on a generated set (REDS_HRLR) instead')
        super().__init__(args, name=name, train=train)

    def patch_extent(self):
        return self.args.patch_size * self.args.scale

    def _set_filesystem(self, dir_data):
        self.apath = dir_data
        self.dir_gt = os.path.join(self.apath, 'GT')

    def _streams(self):
        return {'gt': self.dir_gt}

    def get_blur_kernel(self):
        raise NotImplementedError

    def __getitem__(self, idx):
        clips, paths = self._window(idx)
        scale = self.args.scale
        gts = self._random_patch(clips['gt'], self.args.patch_size * scale)[0]
        gts = crop_to_multiple(gts, self.args.size_must_mode * scale)
        if not self.args.no_augment:
            gts = random_augment(gts)[0]
        kernel = self.get_blur_kernel()
        # frames side by side on the channel axis: one call blurs the whole clip
        inputs = np.moveaxis(blur_down(np.moveaxis(gts, 0, 2), kernel, scale), 2, 0)
        if self.HR_in:
            inputs = self._bicubic_inputs(inputs.astype(np.float64))
        return (to_tensor_layout(inputs, self.args.rgb_range), to_tensor_layout(gts, self.args.rgb_range),
                pad_kernels([kernel] * self.n_seq), [frame_name(p) for p in paths])
