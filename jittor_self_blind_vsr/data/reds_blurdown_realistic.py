import os

from jittor_self_blind_vsr.data.videodata_online_realistic import VIDEODATA_ONLINE_REALISTIC


class REDS_BLURDOWN_REALISTIC(VIDEODATA_ONLINE_REALISTIC):
    """REDS training frames (<dir_data>/HR/<video>/<frame>), realistic kernels."""

    def __init__(self, args, name='REDS_BLURDOWN_REALISTIC', train=True):
        super().__init__(args, name=name, train=train)

    def _set_filesystem(self, dir_data):
        self.apath = dir_data
        self.dir_gt = os.path.join(self.apath, 'HR')
