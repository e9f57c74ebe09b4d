"""The Jittor PWC_Recons computes what the published PyTorch code computes.

Every array of tests/fixtures/parity/{small,full}_config.npz is reproduced with the
seeded weights of the fixture README, within its tolerances, for both grid_sample
semantics (aligned = align_corners True, modern = False).
"""
import numpy as np
import pytest

from jittor_self_blind_vsr.loss import kernel_loss
from jittor_self_blind_vsr.model import StateDictMismatch, onednn_ops
from jittor_self_blind_vsr.model.kernel import AdaptiveAvgPool2d
from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
from jittor_self_blind_vsr.runtime import import_jittor
from conftest import parity_file
from parity_weights import read_keys, seeded_state

jt = import_jittor()

CONFIGS = {
    'small': (dict(n_feat=32, extra_RBS=1, recons_RBS=2), 0),
    'full': (dict(n_feat=128, extra_RBS=3, recons_RBS=20), 1),
}
SEMANTICS = {'aligned': True, 'modern': False}
IMAGE_KEYS = ('recons', 'recons_down', 'input_cycle', 'input_down')


def assert_close(name, got, ref, max_abs, mean_abs=None):
    err = np.abs(np.asarray(got, dtype=np.float64) - ref)
    assert got.shape == ref.shape, f'{name}: shape {got.shape} != {ref.shape}'
    assert err.max() <= max_abs, f'{name}: max abs error {err.max():.3g} > {max_abs}'
    if mean_abs is not None:
        assert err.mean() <= mean_abs, f'{name}: mean abs error {err.mean():.3g} > {mean_abs}'


def assert_image(name, got, ref):
    """README: 1e-3 max abs and 1e-4 mean abs. The full configuration holds the mean bound
    only with oneDNN's direct kernel (runtime.ONEDNN_MAX_CPU_ISA): brgconv gives 1.17e-4."""
    assert_close(name, got, ref, 1e-3, 1e-4)


def build(config, semantics):
    kwargs, seed = CONFIGS[config]
    net = PWC_Recons(align_corners=SEMANTICS[semantics], **kwargs)
    net.load_numpy_state_dict(seeded_state(parity_file(f'{config}_config_keys.tsv'), seed))
    return net


@pytest.fixture(scope='module')
def fixture_arrays():
    return {c: dict(np.load(parity_file(f'{c}_config.npz'))) for c in CONFIGS}


@pytest.fixture(scope='module')
def nets():
    cache = {}

    def get(config, semantics):
        if (config, semantics) not in cache:
            cache[(config, semantics)] = build(config, semantics)
        return cache[(config, semantics)]
    return get


@pytest.mark.parametrize('config', list(CONFIGS))
def test_state_dict_keys_and_shapes_are_the_originals(config, nets):
    expected = read_keys(parity_file(f'{config}_config_keys.tsv'))
    got = [(k, tuple(v.shape)) for k, v in nets(config, 'aligned').numpy_state_dict().items()]
    assert got == expected


@pytest.mark.parametrize('semantics', list(SEMANTICS))
@pytest.mark.parametrize('config', list(CONFIGS))
def test_infer_matches_original(config, semantics, nets, fixture_arrays):
    ref = fixture_arrays[config]
    with jt.no_grad():
        out, extra = nets(config, semantics)({'x': jt.array(ref['x']), 'mode': 'infer'})
    assert extra is None and set(out) == {'recons', 'est_kernel'}
    assert_image('recons', out['recons'].numpy(), ref[f'{semantics}/infer/recons'])
    assert_close('est_kernel', out['est_kernel'].numpy(), ref[f'{semantics}/infer/est_kernel'], 1e-6)


@pytest.mark.parametrize('semantics', list(SEMANTICS))
def test_val_matches_original(semantics, nets, fixture_arrays):
    ref = fixture_arrays['small']
    x = jt.array(ref['x'])
    with jt.no_grad():
        out, _ = nets('small', semantics)({'x': x, 'mode': 'val'})
    assert set(out) == {'input', 'input_down', 'input_cycle', 'recons', 'recons_down', 'est_kernel'}
    np.testing.assert_array_equal(out['input'].numpy(), ref['x'][:, 2])
    for key in IMAGE_KEYS:
        assert_image(key, out[key].numpy(), ref[f'{semantics}/val/{key}'])


@pytest.mark.parametrize('semantics', list(SEMANTICS))
def test_flow_and_warp_match_original(semantics, nets, fixture_arrays):
    ref = fixture_arrays['small']
    net = nets('small', semantics)
    x = jt.array(ref['x'])
    with jt.no_grad():
        flow = net.flow_net(x[:, 2], x[:, 0])
        trunk_feat0 = net.frame_features(x[:, 0]).feat
        feat, mask = net.flow_net.warp(trunk_feat0.nchw(), flow)
        feat_nhwc = trunk_feat0.to(onednn_ops.NHWC).warp(flow, net.align_corners)
        feat_blocked = trunk_feat0.to(onednn_ops.BLOCKED).warp(flow, net.align_corners)
    assert_close('flow', flow.numpy(), ref[f'{semantics}/flow/center_to_0'], 1e-4)
    assert_close('warp feat0', feat.numpy(), ref[f'{semantics}/warp/feat0'], 1e-4)
    np.testing.assert_array_equal(mask.numpy(), ref[f'{semantics}/warp/mask'])
    # The channels-last warps (NHWC: brgconv's trunk; nChw16c: the direct kernel's at
    # inference) are the same computation on the other layouts.
    np.testing.assert_array_equal(feat_nhwc.nchw().numpy(), feat.numpy())
    np.testing.assert_array_equal(feat_blocked.nchw().numpy(), feat.numpy())


def training_losses(out, ksize=13, scale=4):
    """The published objective, as trainer_flow_video.py adds it up."""
    def l1(a, b):
        return jt.abs(a - b).mean()
    kernel = out['est_kernel']
    losses = {
        'recons_l1': l1(out['recons_down'], out['input']),
        'cycle_l1': l1(out['input_cycle'], out['input']),
        'k_boundaries': kernel_loss.BoundariesLoss(k_size=ksize)(kernel),
        'k_sparse': kernel_loss.SparsityLoss()(kernel),
        'k_center': kernel_loss.CentralizedLoss(k_size=ksize, scale_factor=1. / scale)(kernel),
    }
    losses['total'] = (losses['recons_l1'] + losses['cycle_l1'] + 0.5 * losses['k_boundaries']
                       + 0.04 * losses['k_sparse'] + 1 * losses['k_center'])
    return losses


def test_train_losses_and_gradients_match_original(nets, fixture_arrays):
    ref = fixture_arrays['small']
    net = nets('small', 'aligned')
    # Jittor's Module.eval() stops the parameters' gradients (train() restores them).
    net.train()
    out, extra = net({'x': jt.array(ref['x']), 'mode': 'train'})
    assert extra is None and set(out) == {'input', 'recons_down', 'input_cycle', 'est_kernel'}
    losses = training_losses(out)
    for name, value in losses.items():
        expected = float(ref[f'train/loss/{name}'])
        assert abs(value.item() - expected) <= 1e-4 * abs(expected), name
    params = net.state_dict()
    keys = [k[len('train/grad/'):] for k in ref if k.startswith('train/grad/')]
    assert len(keys) >= 10
    grads = jt.grad(losses['total'], [params[k] for k in keys])
    for key, grad in zip(keys, grads):
        expected = ref[f'train/grad/{key}']
        # A reference that is all zero (a dead ReLU branch) must stay exactly zero.
        assert_close(key, grad.numpy(), expected, 1e-3 * float(np.abs(expected).max()))


def test_recons_from_features_is_recons_forward(nets, fixture_arrays):
    net = nets('small', 'aligned')
    frames = [jt.array(f) for f in fixture_arrays['small']['x'].transpose(1, 0, 2, 3, 4)]
    with jt.no_grad():
        whole = net.recons_forward(frames).numpy()
        features = [net.frame_features(f) for f in frames]
        split = net.recons_from_features(frames, features).numpy()
    np.testing.assert_array_equal(split, whole)


def test_load_refuses_a_state_that_does_not_fit(nets):
    net = nets('small', 'aligned')
    state = net.numpy_state_dict()
    before = state['in_conv.0.weight'].copy()
    bad = {k: v + 1 for k, v in state.items()}
    del bad['out_conv.1.bias']
    bad['not.a.key'] = np.zeros(3, np.float32)
    bad['kernel_net.fc_net.1.bias'] = np.zeros(5, np.float32)
    with pytest.raises(StateDictMismatch) as info:
        net.load_numpy_state_dict(bad)
    assert str(info.value) == ("the state dict does not fit the model: its keys not.a.key are not in the model; "
                               "kernel_net.fc_net.1.bias has shape 5 in the state dict but 169 in the model; "
                               "it lacks 1 of the model's tensors, first out_conv.1.bias")
    np.testing.assert_array_equal(net.numpy_state_dict()['in_conv.0.weight'], before)


def test_unknown_mode_is_refused(nets):
    with pytest.raises(ValueError, match='mode=test'):
        nets('small', 'aligned')({'x': jt.zeros((1, 5, 3, 8, 8)), 'mode': 'test'})


@pytest.mark.parametrize('size', [(20, 28), (13, 13), (5, 30)])
def test_adaptive_pool_uses_pytorch_bins(size):
    h, w = size
    x = np.random.default_rng(3).standard_normal((2, 3, h, w)).astype(np.float32)
    expected = np.empty((2, 3, 13, 13))
    for i in range(13):
        for j in range(13):
            rows = slice(i * h // 13, -(-(i + 1) * h // 13))
            cols = slice(j * w // 13, -(-(j + 1) * w // 13))
            expected[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    assert_close('pool', AdaptiveAvgPool2d(13)(jt.array(x)).numpy(), expected, 1e-5)


def test_kernel_losses_of_a_centred_delta():
    kernel = np.zeros((1, 1, 13, 13), np.float32)
    kernel[0, 0, 6, 6] = 1.0
    k = jt.array(kernel)
    assert kernel_loss.CentralizedLoss(13)(k).item() == 0.0
    assert kernel_loss.BoundariesLoss(13)(k).item() == 0.0
    assert kernel_loss.SparsityLoss()(k).item() == pytest.approx(1 / 169)
    kernel[0, 0, 6, 6], kernel[0, 0, 0, 0] = 0.5, 0.5
    # centre of mass (3, 3): squared distance 9 on each axis, averaged over the two axes
    assert kernel_loss.CentralizedLoss(13)(jt.array(kernel)).item() == pytest.approx(9.0)
    penalty = kernel_loss.create_penalty_mask(13, 30)[0, 0]
    assert kernel_loss.BoundariesLoss(13)(jt.array(kernel)).item() == pytest.approx(0.5 * penalty / 169, rel=1e-6)
