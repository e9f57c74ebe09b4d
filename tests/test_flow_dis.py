"""Flow_DIS (the classical flow of --flow dis) against known motion, and the model built with it."""
import cv2
import numpy as np
import pytest
import skimage.data

from jittor_self_blind_vsr.model.flow_dis import Flow_DIS, dis_flow, grey_uint8
from jittor_self_blind_vsr.model.flow_pwc import warp
from jittor_self_blind_vsr.model.specification import config_from_state_dict
from jittor_self_blind_vsr.runtime import import_jittor

jt = import_jittor()


def shifted_pair(shift, size=96):
    """Two (1, 3, size, size) frames of a photograph, the second moved by `shift` (x, y) pixels."""
    image = skimage.data.astronaut()[100:100 + size + 40, 150:150 + size + 40].astype(np.float32) / 255
    move = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    second = cv2.warpAffine(image, move, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    crop = (slice(20, 20 + size), slice(20, 20 + size))
    return [np.ascontiguousarray(f[crop].transpose(2, 0, 1)[None]) for f in (image, second)]


def end_point_error(flow, truth, margin=8):
    inner = flow[:, :, margin:-margin, margin:-margin]
    return float(np.sqrt(((inner - np.reshape(truth, (1, 2, 1, 1))) ** 2).sum(axis=1)).mean())


def test_dis_flow_finds_a_known_subpixel_shift():
    # second(x) = first(x - shift), so first(x) = second(x + shift): the flow is +shift
    first, second = shifted_pair((1.3, -0.7))
    flow = Flow_DIS().estimate_flow(jt.array(first), jt.array(second)).numpy()
    assert flow.shape == (1, 2, 96, 96)
    # DIS's medium preset: 0.15 px on this pair, 0.06-0.15 on other shifts up to 6 px (Farneback 0.08-0.73)
    error = end_point_error(flow, (1.3, -0.7))
    assert error < 0.2
    assert error < 0.15 * end_point_error(np.zeros_like(flow), (1.3, -0.7))


def test_dis_flow_aligns_the_second_frame_onto_the_first():
    first, second = shifted_pair((2.4, 1.1))
    flow = Flow_DIS().estimate_flow(jt.array(first), jt.array(second))
    aligned = warp(jt.array(second), flow)[0].numpy()
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(aligned - first)[inner].mean() < 0.25 * np.abs(second - first)[inner].mean()


@pytest.mark.parametrize('size', [(6, 6), (4, 20), (11, 11)])
def test_frames_too_small_for_dis_get_a_flow_of_their_size(size):
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, size, dtype=np.uint8)
    flow = dis_flow(first, first)
    assert flow.shape == size + (2,)
    assert np.abs(flow).max() < 0.5  # the same frame: no motion


def test_grey_is_the_rounded_channel_mean():
    frames = np.array([[[[0.0, 1.0]], [[0.5, 1.0]], [[1.0, 1.0]]]], np.float32)  # (1, 3, 1, 2)
    assert grey_uint8(frames).tolist() == [[[128, 255]]]


def test_a_dis_model_has_no_flow_weights_and_is_recognised_by_its_keys():
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    net = PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1, flow='dis')
    state = net.numpy_state_dict()
    assert not [key for key in state if key.startswith('flow_net.')]
    assert config_from_state_dict(state)['flow'] == 'dis'
    frames = np.random.default_rng(1).random((1, 5, 3, 20, 24), dtype=np.float32)
    out, _ = net({'x': jt.array(frames), 'mode': 'infer'})
    assert out['recons'].shape == (1, 3, 80, 96)


def test_an_unknown_flow_is_refused():
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    with pytest.raises(ValueError, match='flow must be one of'):
        PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1, flow='farneback')
