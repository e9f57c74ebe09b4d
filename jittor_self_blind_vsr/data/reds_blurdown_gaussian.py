import os

from jittor_self_blind_vsr.data.videodata_online_gaussian import VIDEODATA_ONLINE_GAUSSIAN


class REDS_BLURDOWN_GAUSSIAN(VIDEODATA_ONLINE_GAUSSIAN):
    """REDS training frames (<dir_data>/HR/<video>/<frame>), Gaussian kernels."""

    def __init__(self, args, name='REDS_BLURDOWN_GAUSSIAN', train=True):
        super().__init__(args, name=name, train=train)

    def _set_filesystem(self, dir_data):
        self.apath = dir_data
        self.dir_gt = os.path.join(self.apath, 'HR')
