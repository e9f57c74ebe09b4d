import numpy as np

from jittor_self_blind_vsr.data.videodata_online import VIDEODATA_ONLINE
from jittor_self_blind_vsr.utils.degradation import random_realistic_kernel


class VIDEODATA_ONLINE_REALISTIC(VIDEODATA_ONLINE):
    """Online degradation with random anisotropic, noisy 13x13 kernels."""

    def get_blur_kernel(self):
        return random_realistic_kernel(np.random, scale=self.args.scale)
