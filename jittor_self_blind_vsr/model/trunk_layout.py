"""The reconstruction trunk's memory layout, and its layers that follow it.

On CPU the trunk's features are kept in the layout oneDNN's convolution kernel works on,
so that it reads and writes them without reordering on every call (Jittor's oneDNN op,
given NCHW, reorders input and output around each convolution; at the trunk's sizes
that costs as much as a third of the convolution itself):

| oneDNN kernel (runtime.ONEDNN_MAX_CPU_ISA) | inference (jt.no_grad)         | with gradients             |
|--------------------------------------------|--------------------------------|----------------------------|
| direct (default)                           | nChw16c, onednn_ops.conv2d     | NCHW, jt.nn.conv2d         |
| brgconv (DNNL_MAX_CPU_ISA=ALL)             | NHWC, onednn_ops.conv2d        | NHWC, _OneDNNConvNHWC      |

onednn_ops.conv2d also fuses bias and ReLU and has no gradient, hence the split. nChw16c
needs a multiple of 16 channels; other widths stay NCHW (still on onednn_ops.conv2d).
Without oneDNN (CUDA, a CPU build without it) the trunk is NCHW on jt.nn.conv2d. All
layouts give the same numbers up to float32 rounding.

Conv2d and PixelShuffle keep jt.nn's parameters and state-dict keys (PyTorch's).
"""
import jittor as jt

from jittor_self_blind_vsr.model import onednn_ops
from jittor_self_blind_vsr.model.onednn_ops import BLOCKED, NCHW, NHWC
from jittor_self_blind_vsr.runtime import onednn_uses_brgconv

nn = jt.nn

_NHWC_FORMATS = dict(xformat='acdb', wformat='oihw', yformat='acdb')


def brgconv_in_use():
    """True when oneDNN convolves (CPU, Jittor built with it) and may pick brgconv."""
    return onednn_ops.jittor_uses_onednn() and onednn_uses_brgconv()


def inference_ops_in_use():
    """True when the trunk's convolutions run on onednn_ops (no gradient recorded)."""
    return bool(jt.flags.no_grad) and onednn_ops.available()


def layout(channels):
    """The trunk's layout for features of `channels` channels, now."""
    if brgconv_in_use():
        return NHWC
    if inference_ops_in_use() and channels % onednn_ops.BLOCK == 0:
        return BLOCKED
    return NCHW


def layout_of(x):
    """The trunk layout a feature Var is in (nChw16c Vars have 5 dimensions)."""
    if x.ndim == 5:
        return BLOCKED
    return NHWC if brgconv_in_use() else NCHW


def channel_axis(x):
    """The axis along which trunk features like x concatenate channels."""
    return 3 if layout_of(x) == NHWC else 1


class _OneDNNConvNHWC(jt.Function):
    """oneDNN forward, backward-data and backward-weights convolutions on NHWC tensors."""

    def __init__(self, stride, padding, dilation):
        self.geometry = (stride, stride, padding, padding, dilation, dilation)

    def execute(self, x, weight):
        self.x, self.weight = x, weight
        return jt.mkl_ops.mkl_conv(x, weight, *self.geometry, 1, **_NHWC_FORMATS)

    def grad(self, grad_y):
        _, h, w, _ = self.x.shape
        kh, kw = self.weight.shape[2:]
        grad_x = jt.mkl_ops.mkl_conv_backward_x(self.weight, grad_y, h, w, *self.geometry, 1, **_NHWC_FORMATS)
        grad_w = jt.mkl_ops.mkl_conv_backward_w(self.x, grad_y, kh, kw, *self.geometry, 1, **_NHWC_FORMATS)
        return grad_x, grad_w


def conv2d_nhwc(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """torch.nn.functional.conv2d on oneDNN for x (N, H, W, C) and weight (out, in, kh, kw): (N, H', W', out)."""
    y = _OneDNNConvNHWC(stride, padding, dilation)(x, weight)
    return y if bias is None else y + bias


class Conv2d(nn.Conv2d):
    """jt.nn.Conv2d (same parameters and state-dict keys) in the trunk's layout; groups 1,
    square geometry. `nchw_in` / `nchw_out`: the trunk's first / last convolution, which
    reads / writes NCHW whatever the layout. execute(x, relu=True) applies ReLU after
    (fused into the kernel on onednn_ops)."""

    def __init__(self, *args, nchw_in=False, nchw_out=False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1 or len(set(self.stride)) != 1 or len(set(self.padding)) != 1 \
                or len(set(self.dilation)) != 1:
            raise ValueError('trunk_layout.Conv2d supports groups=1 and equal height/width '
                             'stride, padding and dilation only')
        self.nchw_in, self.nchw_out = nchw_in, nchw_out

    def execute(self, x, relu=False):
        trunk = layout(self.out_channels if self.nchw_in else self.in_channels)
        src, dst = (NCHW if self.nchw_in else trunk), (NCHW if self.nchw_out else trunk)
        geometry = (self.stride[0], self.padding[0], self.dilation[0])
        if inference_ops_in_use():
            return onednn_ops.conv2d(x, self.weight, self.bias, *geometry, relu, src, dst)
        if trunk == NHWC:
            x = onednn_ops.to_layout(x, NHWC) if self.nchw_in else x
            y = conv2d_nhwc(x, self.weight, self.bias, *geometry)
            y = onednn_ops.from_layout(y, NHWC) if self.nchw_out else y
        else:
            y = super().execute(x)
        return nn.relu(y) if relu else y


class PixelShuffle(nn.Module):
    """torch.nn.PixelShuffle in the trunk's layout: input channel c*r*r + i*r + j goes to
    output channel c at (h*r + i, w*r + j). NCHW and NHWC are written as reshape and
    transpose: Jittor's own (a reindex with per-element index arithmetic) takes 1.7x as
    long (163 ms against 96 ms at 512x360x640)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def execute(self, x):
        r = self.upscale_factor
        trunk = layout_of(x)
        if trunk == BLOCKED:
            return onednn_ops.pixel_shuffle_blocked(x, r)
        if trunk == NCHW:
            n, c, h, w = x.shape
            return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(
                n, c // (r * r), h * r, w * r)
        n, h, w, c = x.shape
        out_c = c // (r * r)
        return x.reshape(n, h, w, out_c, r, r).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, out_c)
