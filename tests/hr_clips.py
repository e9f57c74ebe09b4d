"""Tiny HR video folders for the data tests: crops of scikit-image's astronaut that pan a
few pixels per frame, so neighbouring frames differ as in a real clip."""
import os

import numpy as np
from skimage import data as skdata

from jittor_self_blind_vsr.utils.image_io import write_image


def make_hr_clips(root, n_videos=2, n_frames=6, size=(64, 64), ext='.png'):
    """Write root/<video>/<frame><ext>; returns {video: [HxWx3 uint8 frames]}."""
    source = skdata.astronaut()
    height, width = size
    clips = {}
    for v in range(n_videos):
        video = f'{v:03d}'
        os.makedirs(os.path.join(root, video), exist_ok=True)
        frames = []
        for f in range(n_frames):
            top, left = 120 + 3 * f, 160 + 2 * f + 50 * v
            frame = np.ascontiguousarray(source[top:top + height, left:left + width])
            write_image(os.path.join(root, video, f'{f:08d}{ext}'), frame)
            frames.append(frame)
        clips[video] = frames
    return clips
