"""A user's own low-resolution footage, no HR at all: the real-world case of self-supervised
blind VSR. The training loss only needs the LR clip, so this set yields LR windows and
LR patches directly."""
import numpy as np

from jittor_self_blind_vsr.data.videodata import (
    VIDEODATA, crop_to_multiple, frame_name, random_augment, to_tensor_layout, unknown_kernels)


class VIDEO_LR(VIDEODATA):
    """Frames in <dir>/<video>/<frame>. Samples (inputs, gts, kernels, names): float32
    (T, 3, h, w) LR in [0, rgb_range] (a patch_size^2 patch when training: smooth patches
    redrawn on the LR centre frame, flips/rotation), an empty float32 (T, 3, 0, 0) in
    place of HR (`has_hr` is False), unknown kernels (13x13 zeros padded to 20x20 with -1),
    and T '<video>.<frame>' names."""
    has_hr = False

    def __init__(self, args, name='VIDEO_LR', train=True):
        super().__init__(args, name=name, train=train)

    def _set_filesystem(self, dir_data):
        self.apath = dir_data
        self.dir_input = dir_data

    def _streams(self):
        return {'input': self.dir_input}

    def __getitem__(self, idx):
        clips, paths = self._window(idx)
        inputs = clips['input']
        if self.train:
            inputs = self._random_patch(inputs, self.args.patch_size)[0]
        inputs = crop_to_multiple(inputs, self.args.size_must_mode)
        if self.train and not self.args.no_augment:
            inputs = random_augment(inputs)[0]
        if self.HR_in:
            inputs = self._bicubic_inputs(inputs.astype(np.float64))
        no_hr = np.zeros((self.n_seq, 3, 0, 0), dtype=np.float32)
        return (to_tensor_layout(inputs, self.args.rgb_range), no_hr, unknown_kernels(self.n_seq),
                [frame_name(p) for p in paths])
