"""The speed-motivated layers compute what jt.nn computes: channels-last convolution and
pixel shuffle, and PWC-Net's output-aligned convolution, forward and gradients; and the
model gives the same numbers whichever layout its trunk runs in."""
import numpy as np
import pytest

from jittor_self_blind_vsr.model import channels_last
from jittor_self_blind_vsr.model.flow_pwc import OutputAlignedConv2d
from jittor_self_blind_vsr.runtime import import_jittor

jt = import_jittor()

# (in, out, kernel, stride, padding, dilation, batch, height, width)
GEOMETRIES = [(3, 8, 3, 1, 1, 1, 1, 9, 11), (5, 7, 3, 2, 1, 1, 2, 10, 7),
              (6, 4, 3, 1, 2, 2, 1, 8, 9), (4, 6, 1, 1, 0, 1, 2, 5, 6)]


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def nchw_reference(x, conv, grad_y):
    """jt.nn.conv2d on NCHW: output, input gradient and weight gradient for dL/dy = grad_y, all NHWC."""
    x_nchw = jt.array(x.transpose(0, 3, 1, 2))
    y = jt.nn.conv2d(x_nchw, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
    gx, gw = jt.grad((y * jt.array(grad_y.transpose(0, 3, 1, 2))).sum(), [x_nchw, conv.weight])
    return y.numpy().transpose(0, 2, 3, 1), gx.numpy().transpose(0, 2, 3, 1), gw.numpy()


needs_onednn = pytest.mark.skipif(not channels_last._use_onednn(), reason='oneDNN is not in use in this Jittor build')


@needs_onednn
@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_channels_last_conv_equals_jittor_conv(geometry, monkeypatch):
    c_in, c_out, k, s, p, d, n, h, w = geometry
    monkeypatch.setattr(channels_last, 'enabled', lambda: True)
    conv = channels_last.Conv2d(c_in, c_out, k, stride=s, padding=p, dilation=d)
    x = random((n, h, w, c_in), 1)
    x_var = jt.array(x)
    y = conv(x_var)
    grad_y = random(tuple(y.shape), 2)
    gx, gw = jt.grad((y * jt.array(grad_y)).sum(), [x_var, conv.weight])
    ref_y, ref_gx, ref_gw = nchw_reference(x, conv, grad_y)
    assert y.shape == ref_y.shape
    # The same oneDNN kernel, whichever layout it is handed: the forward is bit-identical.
    np.testing.assert_array_equal(y.numpy(), ref_y)
    np.testing.assert_allclose(gx.numpy(), ref_gx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), ref_gw, rtol=1e-5, atol=1e-5)


def test_channels_last_conv_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match='groups=1'):
        channels_last.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match='equal height/width'):
        channels_last.Conv2d(4, 4, 3, stride=(1, 2))


@pytest.mark.parametrize('nhwc', [True, False], ids=['nhwc', 'nchw'])
def test_pixel_shuffle_equals_jittor_pixel_shuffle(nhwc, monkeypatch):
    monkeypatch.setattr(channels_last, 'enabled', lambda: nhwc)
    x = random((2, 4 * 6, 3, 5), 3)
    ref = jt.nn.PixelShuffle(2)(jt.array(x)).numpy()
    if nhwc:
        ours = channels_last.PixelShuffle(2)(jt.array(x.transpose(0, 2, 3, 1))).numpy().transpose(0, 3, 1, 2)
    else:
        ours = channels_last.PixelShuffle(2)(jt.array(x)).numpy()
    assert ours.shape == (2, 6, 6, 10)
    np.testing.assert_array_equal(ours, ref)


def test_layout_helpers_round_trip():
    x = random((2, 3, 4, 5), 4)
    np.testing.assert_array_equal(channels_last.to_nhwc(jt.array(x)).numpy(), x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(channels_last.to_nchw(channels_last.to_nhwc(jt.array(x))).numpy(), x)


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


@needs_onednn
def test_model_output_is_the_same_in_either_layout(monkeypatch):
    """The trunk in NHWC (as with brgconv) gives the model's NCHW output up to float32
    rounding: oneDNN may pick another kernel for another layout (in_conv's 3 input channels)."""
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    net = PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1)
    net.eval()
    x = jt.array(np.random.default_rng(7).random((1, 5, 3, 24, 40), dtype=np.float32))
    with jt.no_grad():
        monkeypatch.setattr(channels_last, 'enabled', lambda: False)
        reference = net({'x': x, 'mode': 'infer'})[0]['recons'].numpy()
        monkeypatch.setattr(channels_last, 'enabled', lambda: True)
        got = net({'x': x, 'mode': 'infer'})[0]['recons'].numpy()
    assert np.abs(reference).mean() > 0.1
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)


@needs_onednn
def test_training_gradients_are_the_same_in_either_layout(monkeypatch):
    """The NHWC trunk's backward (oneDNN backward-data and backward-weights through
    _OneDNNConvNHWC) gives the NCHW trunk's parameter gradients in 'train' mode."""
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    jt.set_global_seed(3)
    net = PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1)
    net.train()
    x = jt.array(np.random.default_rng(8).random((1, 5, 3, 24, 40), dtype=np.float32))
    params = [p for name, p in net.named_parameters() if name.startswith(('recons_net', 'upsample', 'out_conv'))]

    def gradients(nhwc):
        monkeypatch.setattr(channels_last, 'enabled', lambda: nhwc)
        out, _ = net({'x': x, 'mode': 'train'})
        loss = jt.abs(out['recons_down'] - out['input']).mean() + jt.abs(out['input_cycle'] - out['input']).mean()
        return [g.numpy() for g in jt.grad(loss, params)]

    reference, got = gradients(False), gradients(True)
    assert len(params) == 12 and all(np.abs(g).max() > 0 for g in reference)
    for want, have in zip(reference, got):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
