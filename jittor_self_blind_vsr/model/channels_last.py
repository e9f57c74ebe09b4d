"""The reconstruction trunk's memory layout: channels-last (NHWC) when oneDNN convolves
with brgconv, NCHW otherwise.

oneDNN's brgconv kernel works on NHWC. Given NCHW, as jt.nn.conv2d gives it, Jittor's
mkl_conv reorders the input to NHWC and the output back on every call, and those
reorders cost as much as the convolution itself at the trunk's sizes (LR 180x320: 45 ms
around a 58 ms convolution; 4x that: 1.4 s around 1.0 s). With brgconv the trunk's
features therefore stay NHWC and oneDNN reads and writes them in place. The default
direct kernel (runtime.ONEDNN_MAX_CPU_ISA) works on 16-channel blocks, which it reorders
to faster from NCHW, so then the trunk stays NCHW. Both layouts give the same numbers
up to float32 rounding.

Conv2d and PixelShuffle follow the layout; their weights keep PyTorch's (out, in, kh, kw)
layout and names, so state dicts are those of jt.nn. Without oneDNN (CUDA, a CPU build
without it) the trunk is NCHW and runs on jt.nn.conv2d.
"""
from jittor_self_blind_vsr.runtime import import_jittor, onednn_uses_brgconv

jt = import_jittor()
nn = jt.nn

_NHWC = dict(xformat='acdb', wformat='oihw', yformat='acdb')


def to_nhwc(x):
    return x.transpose(0, 2, 3, 1)


def to_nchw(x):
    return x.transpose(0, 3, 1, 2)


def _use_onednn():
    return not jt.flags.use_cuda and jt.compile_extern.use_mkl


def brgconv_in_use():
    """True when oneDNN convolves (CPU, Jittor built with it) and may pick brgconv."""
    return _use_onednn() and onednn_uses_brgconv()


def enabled():
    """True when the trunk runs NHWC: whenever brgconv is in use."""
    return brgconv_in_use()


def to_trunk(x):
    """NCHW -> the trunk's layout."""
    return to_nhwc(x) if enabled() else x


def from_trunk(x):
    """The trunk's layout -> NCHW."""
    return to_nchw(x) if enabled() else x


def channel_axis():
    return 3 if enabled() else 1


class _OneDNNConvNHWC(jt.Function):
    """oneDNN forward, backward-data and backward-weights convolutions on NHWC tensors."""

    def __init__(self, stride, padding, dilation):
        self.geometry = (stride, stride, padding, padding, dilation, dilation)

    def execute(self, x, weight):
        self.x, self.weight = x, weight
        return jt.mkl_ops.mkl_conv(x, weight, *self.geometry, 1, **_NHWC)

    def grad(self, grad_y):
        _, h, w, _ = self.x.shape
        kh, kw = self.weight.shape[2:]
        grad_x = jt.mkl_ops.mkl_conv_backward_x(self.weight, grad_y, h, w, *self.geometry, 1, **_NHWC)
        grad_w = jt.mkl_ops.mkl_conv_backward_w(self.x, grad_y, kh, kw, *self.geometry, 1, **_NHWC)
        return grad_x, grad_w


def conv2d_nhwc(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """torch.nn.functional.conv2d on oneDNN for x (N, H, W, C) and weight (out, in, kh, kw): (N, H', W', out)."""
    y = _OneDNNConvNHWC(stride, padding, dilation)(x, weight)
    return y if bias is None else y + bias


class Conv2d(nn.Conv2d):
    """jt.nn.Conv2d (same parameters and state-dict keys) in the trunk's layout; groups 1, square geometry."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1 or len(set(self.stride)) != 1 or len(set(self.padding)) != 1 \
                or len(set(self.dilation)) != 1:
            raise ValueError('channels_last.Conv2d supports groups=1 and equal height/width '
                             'stride, padding and dilation only')

    def execute(self, x):
        if not enabled():
            return super().execute(x)
        return conv2d_nhwc(x, self.weight, self.bias, self.stride[0], self.padding[0], self.dilation[0])


class PixelShuffle(nn.Module):
    """torch.nn.PixelShuffle in the trunk's layout: input channel c*r*r + i*r + j goes to
    (h*r + i, w*r + j, c). Written as reshape and transpose: Jittor's own (a reindex with
    per-element index arithmetic) takes 1.7x as long (163 ms against 96 ms at 512x360x640)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def execute(self, x):
        r = self.upscale_factor
        if not enabled():
            n, c, h, w = x.shape
            return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(
                n, c // (r * r), h * r, w * r)
        n, h, w, c = x.shape
        out_c = c // (r * r)
        return x.reshape(n, h, w, out_c, r, r).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, out_c)
