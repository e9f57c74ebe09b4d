"""The speed-motivated layers compute what jt.nn computes: the inference convolution and
pixel shuffle on oneDNN's layouts, the channels-last training convolution (forward and
gradients), the trunk's warp, addition and concatenation in every layout, PWC-Net's
output-aligned convolution; and the model gives the same numbers and gradients whichever
layout its trunk runs in, also from features computed under the other gradient state."""
import platform

import numpy as np
import pytest

from jittor_self_blind_vsr.model import onednn_ops, trunk_layout
from jittor_self_blind_vsr.model.flow_pwc import OutputAlignedConv2d, warp
from jittor_self_blind_vsr.model.onednn_ops import BLOCKED, LAYOUTS, NCHW, NHWC
from jittor_self_blind_vsr.model.trunk_layout import TrunkTensor, concat
from jittor_self_blind_vsr.runtime import import_jittor

jt = import_jittor()
WARP_BLOCKED = onednn_ops.warp_blocked

# (in, out, kernel, stride, padding, dilation, batch, height, width)
GEOMETRIES = [(3, 8, 3, 1, 1, 1, 1, 9, 11), (5, 7, 3, 2, 1, 1, 2, 10, 7),
              (6, 4, 3, 1, 2, 2, 1, 8, 9), (4, 6, 1, 1, 0, 1, 2, 5, 6)]
# The same, with channel counts nChw16c can hold where the layout needs them.
BLOCKED_GEOMETRIES = [(3, 32, 3, 1, 1, 1, 1, 9, 11), (32, 16, 3, 2, 1, 1, 2, 10, 7),
                      (16, 48, 3, 1, 2, 2, 1, 8, 9), (32, 3, 1, 1, 0, 1, 2, 5, 6)]


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def nchw_reference(x, conv, grad_y):
    """jt.nn.conv2d on NCHW: output, input gradient and weight gradient for dL/dy = grad_y, all NHWC."""
    x_nchw = jt.array(x.transpose(0, 3, 1, 2))
    y = jt.nn.conv2d(x_nchw, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
    gx, gw = jt.grad((y * jt.array(grad_y.transpose(0, 3, 1, 2))).sum(), [x_nchw, conv.weight])
    return y.numpy().transpose(0, 2, 3, 1), gx.numpy().transpose(0, 2, 3, 1), gw.numpy()


needs_onednn = pytest.mark.skipif(not onednn_ops.jittor_uses_onednn(), reason='oneDNN is not in use in this Jittor build')
needs_onednn_ops = pytest.mark.skipif(not onednn_ops.available(),
                                      reason='oneDNN or its headers are not in use in this Jittor build')


@needs_onednn_ops
@pytest.mark.parametrize('relu', [False, True], ids=['linear', 'relu'])
@pytest.mark.parametrize('src,dst', [(NCHW, NCHW), (NHWC, NHWC), (NCHW, BLOCKED), (BLOCKED, BLOCKED),
                                     (BLOCKED, NCHW)])
def test_inference_conv_equals_jittor_conv(src, dst, relu):
    geometries = BLOCKED_GEOMETRIES if BLOCKED in (src, dst) else GEOMETRIES
    for c_in, c_out, k, s, p, d, n, h, w in geometries:
        if (src == BLOCKED and c_in % 16) or (dst == BLOCKED and c_out % 16):
            continue
        x, weight, bias = (jt.array(random(shape, seed)) for seed, shape in
                           enumerate([(n, c_in, h, w), (c_out, c_in, k, k), (c_out,)]))
        ref = jt.nn.conv2d(x, weight, bias, s, p, d)
        ref = (jt.nn.relu(ref) if relu else ref).numpy()
        with jt.no_grad():
            y = onednn_ops.conv2d(onednn_ops.to_layout(x, src), weight, bias, s, p, d, relu, src, dst)
        assert tuple(y.shape) == onednn_ops.shape_of(*ref.shape, dst)
        # The same kernel; the bias is added inside the accumulator instead of after it.
        np.testing.assert_allclose(onednn_ops.from_layout(y, dst).numpy(), ref, rtol=1e-5, atol=1e-5)
        if relu:
            assert (ref == 0).mean() > 0.2


@needs_onednn_ops
def test_inference_conv_refuses_mismatched_channels():
    with pytest.raises(ValueError, match='input has 5 channels, the weight expects 4'):
        onednn_ops.conv2d(jt.zeros((1, 5, 4, 4)), jt.zeros((2, 4, 3, 3)), None)
    with pytest.raises(ValueError, match='layouts must be among'):
        onednn_ops.conv2d(jt.zeros((1, 4, 4, 4)), jt.zeros((2, 4, 3, 3)), None, src_layout='nhcw')


@pytest.mark.parametrize('r,c', [(2, 128), (2, 64), (4, 256), (1, 32), (3, 144)])
def test_blocked_pixel_shuffle_equals_jittor_pixel_shuffle(r, c):
    x = jt.array(random((2, c, 3, 5), 3))
    ref = jt.nn.PixelShuffle(r)(x).numpy()
    got = onednn_ops.pixel_shuffle_blocked(onednn_ops.to_layout(x, BLOCKED), r)
    assert tuple(got.shape) == (2, c // (r * r) // 16, 3 * r, 5 * r, 16)
    np.testing.assert_array_equal(onednn_ops.from_layout(got, BLOCKED).numpy(), ref)


def test_blocked_pixel_shuffle_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match='48 channels cannot be shuffled by 3'):
        onednn_ops.pixel_shuffle_blocked(jt.zeros((1, 3, 2, 2, 16)), 3)
    with pytest.raises(ValueError, match='nChw16c needs a multiple of 16 channels, not 8'):
        onednn_ops.pixel_shuffle_blocked(jt.zeros((1, 2, 2, 2, 16)), 2)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_layout_helpers_round_trip(layout):
    x = random((2, 32, 4, 5), 4)
    stored = onednn_ops.to_layout(jt.array(x), layout)
    assert tuple(stored.shape) == onednn_ops.shape_of(2, 32, 4, 5, layout)
    assert onednn_ops.nchw_dims(stored, layout) == (2, 32, 4, 5)
    np.testing.assert_array_equal(onednn_ops.from_layout(stored, layout).numpy(), x)
    if layout == BLOCKED:  # channel c at [n, c // 16, h, w, c % 16]
        assert stored.numpy()[1, 1, 2, 3, 5] == x[1, 21, 2, 3]


@needs_onednn
@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_channels_last_training_conv_equals_jittor_conv(geometry, monkeypatch):
    c_in, c_out, k, s, p, d, n, h, w = geometry
    monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: True)
    conv = trunk_layout.Conv2d(c_in, c_out, k, stride=s, padding=p, dilation=d)
    x = random((n, h, w, c_in), 1)
    x_var = jt.array(x)
    out = conv(TrunkTensor(x_var, NHWC))
    assert out.layout == NHWC
    y = out.var
    grad_y = random(tuple(y.shape), 2)
    gx, gw = jt.grad((y * jt.array(grad_y)).sum(), [x_var, conv.weight])
    ref_y, ref_gx, ref_gw = nchw_reference(x, conv, grad_y)
    assert y.shape == ref_y.shape
    # The same oneDNN kernel, whichever layout it is handed: the forward is bit-identical.
    np.testing.assert_array_equal(y.numpy(), ref_y)
    np.testing.assert_allclose(gx.numpy(), ref_gx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), ref_gw, rtol=1e-5, atol=1e-5)


def test_trunk_conv_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match='groups=1'):
        trunk_layout.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match='equal height/width'):
        trunk_layout.Conv2d(4, 4, 3, stride=(1, 2))


def test_layout_follows_kernel_gradients_and_width(monkeypatch):
    monkeypatch.setattr(onednn_ops, 'available', lambda: True)
    monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: False)
    assert trunk_layout.layout(32) == NCHW
    with jt.no_grad():
        assert (trunk_layout.layout(32), trunk_layout.layout(24)) == (BLOCKED, NCHW)
    monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: True)
    assert trunk_layout.layout(32) == NHWC
    with jt.no_grad():
        assert trunk_layout.layout(32) == NHWC


@pytest.mark.parametrize('layout', LAYOUTS)
def test_pixel_shuffle_equals_jittor_pixel_shuffle(layout, monkeypatch):
    monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: layout == NHWC)
    monkeypatch.setattr(trunk_layout, 'inference_ops_in_use', lambda: layout == BLOCKED)
    x = random((2, 4 * 16, 3, 5), 3)
    ref = jt.nn.PixelShuffle(2)(jt.array(x)).numpy()
    ours = trunk_layout.PixelShuffle(2)(TrunkTensor(jt.array(x), NCHW).to(layout))
    assert ours.layout == layout
    np.testing.assert_array_equal(ours.nchw().numpy(), ref)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_trunk_tensor_converts_adds_and_concatenates_in_any_layout(layout):
    a, b = random((2, 32, 4, 5), 4), random((2, 16, 4, 5), 5)
    stored = TrunkTensor(jt.array(a), NCHW).to(layout)
    assert stored.layout == layout and stored.channels == 32
    assert tuple(stored.var.shape) == onednn_ops.shape_of(2, 32, 4, 5, layout)
    np.testing.assert_array_equal(stored.nchw().numpy(), a)
    other = TrunkTensor(jt.array(a[:, ::-1].copy()), NCHW).to(BLOCKED)
    total = stored + other
    assert total.layout == layout
    np.testing.assert_array_equal(total.nchw().numpy(), a + a[:, ::-1])
    same = concat([stored, TrunkTensor(jt.array(b), NCHW).to(layout)])
    assert same.layout == layout
    np.testing.assert_array_equal(same.nchw().numpy(), np.concatenate([a, b], 1))
    mixed = concat([stored, TrunkTensor(jt.array(b), NCHW).to(NHWC if layout == NCHW else NCHW)])
    assert mixed.layout == NCHW
    np.testing.assert_array_equal(mixed.nchw().numpy(), np.concatenate([a, b], 1))


@pytest.mark.parametrize('align_corners', [True, False])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_trunk_warp_is_flow_pwc_warp_in_every_layout(layout, align_corners):
    """The channels-last warps (NHWC: brgconv's trunk; nChw16c: the direct kernel's at
    inference) are flow_pwc.warp's computation, bit for bit."""
    feat = jt.array(random((2, 32, 9, 12), 6))
    flow = jt.array(3 * random((2, 2, 9, 12), 7))
    ref, mask = warp(feat, flow, align_corners)
    got = TrunkTensor(feat, NCHW).to(layout).warp(flow, align_corners)
    assert got.layout == layout
    # Evaluated before the mask: once warp's mask has been computed, Jittor partitions the
    # rest of ref's graph differently and ref moves by up to 2.4e-7 (problem_log.md).
    np.testing.assert_array_equal(got.nchw().numpy(), ref.numpy())
    assert 0 < mask.numpy().mean() < 1


@needs_onednn_ops
@pytest.mark.parametrize('align_corners', [True, False])
def test_fast_trunk_warp_is_flow_pwc_warp_up_to_rounding(align_corners, monkeypatch):
    """--precision fast warps nChw16c features in one pass (onednn_ops.warp_blocked): the
    same samples as flow_pwc.warp, taps outside the image and mask included, to float32
    rounding of the tap weights."""
    monkeypatch.setattr(onednn_ops, 'winograd_in_use', lambda: True)
    calls = []
    monkeypatch.setattr(onednn_ops, 'warp_blocked', lambda *args: calls.append(1) or WARP_BLOCKED(*args))
    feat = jt.array(random((2, 32, 9, 12), 6))
    flow = jt.array(3 * random((2, 2, 9, 12), 7))
    ref, mask = warp(feat, flow, align_corners)
    with jt.no_grad():
        got = TrunkTensor(feat, NCHW).to(BLOCKED).warp(flow, align_corners)
        assert got.layout == BLOCKED
        got = got.nchw().numpy()
    assert calls == [1]
    ref, mask = ref.numpy(), mask.numpy()
    assert 0 < mask.mean() < 1 and np.abs(ref).max() > 1
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6)
    assert not np.any(got[mask == 0])


FEW_OUTPUTS = onednn_ops.conv3x3_few_outputs


@needs_onednn_ops
@pytest.mark.parametrize('n,c_in,c_out,h,w', [(2, 32, 3, 9, 12), (1, 16, 1, 5, 7), (1, 48, 2, 8, 3)])
def test_fast_last_conv_sums_the_taps_of_a_1x1_conv(n, c_in, c_out, h, w, monkeypatch):
    """--precision fast computes the trunk's last convolution (nChw16c in, at most 3 channels
    out) as a 1x1 convolution to per-tap partial sums and one shifted sum: jt.nn.conv2d's
    output, borders included, to float32 rounding; not where the input is NCHW or ReLU follows."""
    monkeypatch.setattr(onednn_ops, 'winograd_in_use', lambda: True)
    calls = []
    monkeypatch.setattr(onednn_ops, 'conv3x3_few_outputs', lambda *args: calls.append(1) or FEW_OUTPUTS(*args))
    conv = trunk_layout.Conv2d(c_in, c_out, 3, 1, 1, nchw_out=True)
    conv.weight.update(jt.array(random((c_out, c_in, 3, 3), 8)))
    conv.bias.update(jt.array(random((c_out,), 9)))
    jt.sync([conv.weight, conv.bias])  # a one-value constant left unexecuted miscompiles in Jittor 1.3.11
    feat = jt.array(random((n, c_in, h, w), 10))
    ref = jt.nn.conv2d(feat, conv.weight, conv.bias, 1, 1).numpy()
    with jt.no_grad():
        got = conv(TrunkTensor(feat, NCHW).to(BLOCKED)).numpy()
        assert calls == [1]
        conv(TrunkTensor(feat, NCHW))
        conv(TrunkTensor(feat, NCHW).to(BLOCKED), relu=True)
    assert calls == [1]
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * np.abs(ref).max())


@pytest.mark.parametrize('c_in,c_out,stride', [(128, 196, 2), (196, 196, 1), (3, 20, 1)])
def test_output_aligned_conv_equals_jittor_conv(c_in, c_out, stride, monkeypatch):
    from jittor_self_blind_vsr.model import flow_pwc
    monkeypatch.setattr(flow_pwc, 'brgconv_in_use', lambda: True)  # the padded path
    conv = OutputAlignedConv2d(c_in, c_out, 3, stride=stride, padding=1)
    x = jt.array(random((2, c_in, 6, 7), 5))
    y = conv(x)
    ref = jt.nn.conv2d(x, conv.weight, conv.bias, stride, 1)
    np.testing.assert_array_equal(y.numpy(), ref.numpy())
    grad_y = jt.array(random(tuple(y.shape), 6))
    grads = jt.grad((y * grad_y).sum(), [x, conv.weight, conv.bias])
    ref_grads = jt.grad((ref * grad_y).sum(), [x, conv.weight, conv.bias])
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def small_net(n_feat=16):
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    jt.set_global_seed(3)
    return PWC_Recons(n_feat=n_feat, extra_RBS=1, recons_RBS=1)


@needs_onednn_ops
@pytest.mark.parametrize('n_feat', [16, 8])
def test_model_output_is_the_same_in_every_layout(n_feat, monkeypatch):
    """Inference in nChw16c (direct kernel; n_feat 8 stays NCHW) and NHWC (brgconv) on
    onednn_ops gives the NCHW trunk's output on jt.nn up to float32 rounding."""
    net = small_net(n_feat)
    net.eval()
    x = jt.array(np.random.default_rng(7).random((1, 5, 3, 24, 40), dtype=np.float32))

    def recons(inference_ops, brgconv):
        monkeypatch.setattr(trunk_layout, 'inference_ops_in_use', lambda: inference_ops)
        monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: brgconv)
        with jt.no_grad():
            features = net.frame_features(x[:, 0])
            layout = features.feat.layout
            return layout, net({'x': x, 'mode': 'infer'})[0]['recons'].numpy()

    _, reference = recons(False, False)
    assert np.abs(reference).mean() > 0.1
    expected_layouts = {(True, False): BLOCKED if n_feat % 16 == 0 else NCHW, (True, True): NHWC,
                        (False, True): NHWC}
    for (inference_ops, brgconv), expected in expected_layouts.items():
        layout, got = recons(inference_ops, brgconv)
        assert layout == expected
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif((platform.system(), platform.machine()) != ('Linux', 'x86_64'),
                    reason='the PyPI oneDNN (headers included) is a dependency on x86-64 Linux only')
def test_inference_runs_on_onednn_ops_here():
    """On x86-64 Linux CPUs the model's inference takes the fast path, not a fallback."""
    if jt.flags.use_cuda:
        pytest.skip('CUDA in use: the trunk runs on cuDNN')
    assert onednn_ops.available()
    net = small_net()
    net.eval()
    with jt.no_grad():
        feat = net.frame_features(jt.array(random((1, 3, 16, 16), 0))).feat
    assert feat.layout == (NHWC if onednn_ops.brgconv_in_use() else BLOCKED)


@needs_onednn_ops
def test_features_from_another_gradient_state_serve_the_reconstruction(monkeypatch):
    """Features cached under one jt.no_grad() state (another trunk layout with the direct
    kernel) give the reconstruction of the other state up to float32 rounding."""
    monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: False)
    net = small_net()
    net.eval()
    frames = [jt.array(random((1, 3, 16, 24), i)) for i in range(5)]
    with_grad = [net.frame_features(f) for f in frames]
    with jt.no_grad():
        without_grad = [net.frame_features(f) for f in frames]
        reference = net.recons_from_features(frames, without_grad).numpy()
        mixed = net.recons_from_features(frames, with_grad[:2] + without_grad[2:]).numpy()
    assert {f.feat.layout for f in with_grad} != {f.feat.layout for f in without_grad}
    np.testing.assert_allclose(mixed, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.recons_from_features(frames, without_grad).numpy(), reference,
                               rtol=1e-5, atol=1e-6)


@needs_onednn
def test_training_gradients_are_the_same_in_either_layout(monkeypatch):
    """The NHWC trunk's backward (oneDNN backward-data and backward-weights through
    _OneDNNConvNHWC) gives the NCHW trunk's parameter gradients in 'train' mode."""
    net = small_net()
    net.train()
    x = jt.array(np.random.default_rng(8).random((1, 5, 3, 24, 40), dtype=np.float32))
    params = [p for name, p in net.named_parameters() if name.startswith(('recons_net', 'upsample', 'out_conv'))]

    def gradients(nhwc):
        monkeypatch.setattr(onednn_ops, 'brgconv_in_use', lambda: nhwc)
        out, _ = net({'x': x, 'mode': 'train'})
        loss = jt.abs(out['recons_down'] - out['input']).mean() + jt.abs(out['input_cycle'] - out['input']).mean()
        return [g.numpy() for g in jt.grad(loss, params)]

    reference, got = gradients(False), gradients(True)
    assert len(params) == 12 and all(np.abs(g).max() > 0 for g in reference)
    for want, have in zip(reference, got):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
