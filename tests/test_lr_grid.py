"""--lr_grid: the output moved onto a centre-sampled input's grid (hand-computed cubic weights)."""
import numpy as np
import pytest

from jittor_self_blind_vsr.infer.restorer import GridShiftRestorer, clip_restorer
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils.resample import grid_offset, shift

jt = import_jittor()

# cv2's cubic kernel (a = -0.75) at distances 0.5 and 1.5: a half-pixel shift's four taps
NEAR, FAR = 0.59375, -0.09375


def test_offsets_of_the_grids():
    assert grid_offset('corner', 4) == 0
    assert grid_offset('centre', 4) == 1.5
    assert grid_offset('centre', 2) == 0.5


def test_shift_by_one_and_a_half_pixels_spreads_an_impulse_with_the_cubic_weights():
    image = np.zeros((1, 24, 1), np.float32)
    image[0, 10] = 1
    out = shift(image, 1.5).reshape(24)
    # out(x) = image(x - 1.5): pixel 10 reaches x = 11 and 12 at distance 0.5, x = 10 and 13 at 1.5
    assert out[[10, 11, 12, 13]] == pytest.approx([FAR, NEAR, NEAR, FAR], abs=1e-6)
    assert np.abs(np.delete(out, [10, 11, 12, 13])).max() < 1e-6


def test_shift_moves_a_ramp_and_repeats_the_border():
    ramp = np.tile(np.arange(32, dtype=np.float32), (8, 1))[:, :, None]
    out = shift(ramp, 1.5)[:, :, 0]
    # symmetric half-pixel weights reproduce a straight line exactly
    assert out[:, 4:28] == pytest.approx(np.tile(np.arange(4, 28) - 1.5, (8, 1)), abs=1e-4)
    assert out[:, 0] == pytest.approx(np.zeros(8), abs=1e-6)  # sampled left of the image: the first pixel


class FixedRestorer:
    def __init__(self, out):
        self.out, self.kept = out, None

    def restore(self, indices, frames):
        return jt.array(self.out)

    def forget_all_but(self, keep):
        self.kept = keep


def test_grid_shift_restorer_moves_every_channel_and_passes_the_rest_on():
    out = np.zeros((1, 3, 16, 20), np.float32)
    out[0, :, 8, 6] = [1, 2, 3]
    inner = FixedRestorer(out)
    shifted = GridShiftRestorer(inner, 1.5).restore([0], {}).numpy()
    assert shifted.shape == out.shape
    for channel, value in enumerate([1, 2, 3]):
        assert shifted[0, channel, 9:11, 7:9] == pytest.approx(value * NEAR * NEAR * np.ones((2, 2)), abs=1e-5)
    GridShiftRestorer(inner, 1.5).forget_all_but({3})
    assert inner.kept == {3}


def test_only_the_centre_grid_wraps_the_restorer():
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    net = PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1, flow='dis')
    assert not isinstance(clip_restorer(net, (16, 16), 0, 4, 'corner'), GridShiftRestorer)
    restorer = clip_restorer(net, (16, 16), 0, 4, 'centre')
    assert isinstance(restorer, GridShiftRestorer) and restorer.offset == 1.5
