import random

from jittor_self_blind_vsr.data.videodata_online import VIDEODATA_ONLINE
from jittor_self_blind_vsr.utils.degradation import random_gaussian_kernel


class VIDEODATA_ONLINE_GAUSSIAN(VIDEODATA_ONLINE):
    """Online degradation with isotropic Gaussian kernels, sigma drawn from 0.4, 0.5, ..., 2.0."""

    def get_blur_kernel(self):
        return random_gaussian_kernel(random)
