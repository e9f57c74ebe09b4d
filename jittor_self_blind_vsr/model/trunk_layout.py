"""The reconstruction trunk's features and the layers that compute on them.

This module is the one place that knows how the trunk stores its features. Outside it
the trunk takes NCHW Vars (the frames, into its first convolution) and gives NCHW Vars
(its last convolution, `nchw_out`); in between, its layers pass `TrunkTensor`s, which the
model adds (ResBlock), concatenates (`concat`) and warps (`TrunkTensor.warp`) without
knowing their layout; `TrunkTensor.nchw()` gives the plain (N, C, H, W) Var.

Why layouts: on CPU the trunk's features are kept in the layout oneDNN's convolution
kernel works on, so that it reads and writes them without reordering on every call
(Jittor's oneDNN op, given NCHW, reorders input and output around each convolution; at
the trunk's sizes that costs as much as a third of the convolution itself). Each layer
writes its output in `layout(width)`, chosen when it runs:

| oneDNN kernel (runtime.ONEDNN_MAX_CPU_ISA) | inference (jt.no_grad)         | with gradients             |
|--------------------------------------------|--------------------------------|----------------------------|
| direct (default)                           | nChw16c, onednn_ops.conv2d     | NCHW, jt.nn.conv2d         |
| brgconv (DNNL_MAX_CPU_ISA=ALL)             | NHWC, onednn_ops.conv2d        | NHWC, _OneDNNConvNHWC      |
| Winograd (--precision fast)                | nChw16c, onednn_ops.conv2d     | NHWC, _OneDNNConvNHWC      |

onednn_ops.conv2d also fuses bias and ReLU and has no gradient, hence the split. nChw16c
needs a multiple of 16 channels; other widths stay NCHW (still on onednn_ops.conv2d).
Without oneDNN (CUDA, a CPU build without it) the trunk is NCHW on jt.nn.conv2d. A layer
reads its input in whatever layout it was written (features computed under the other
gradient state are converted), and every layout gives the same numbers up to float32
rounding.

Conv2d and PixelShuffle keep jt.nn's parameters and state-dict keys (PyTorch's).
"""
from collections import namedtuple

import jittor as jt

from jittor_self_blind_vsr.model import onednn_ops
from jittor_self_blind_vsr.model.flow_pwc import warp, warp_grid_and_mask
from jittor_self_blind_vsr.model.onednn_ops import BLOCKED, NCHW, NHWC

nn = jt.nn

_NHWC_FORMATS = dict(xformat='acdb', wformat='oihw', yformat='acdb')


def inference_ops_in_use():
    """True when the trunk's convolutions run on onednn_ops (no gradient recorded)."""
    return bool(jt.flags.no_grad) and onednn_ops.available()


def layout(channels):
    """The layout a trunk layer writes features of `channels` channels in, now."""
    blocked = inference_ops_in_use() and channels % onednn_ops.BLOCK == 0
    if blocked and onednn_ops.winograd_in_use():
        return BLOCKED  # the Winograd kernel's own layout, though the cap allows brgconv
    if onednn_ops.brgconv_in_use():
        return NHWC
    return BLOCKED if blocked else NCHW


# A namedtuple so that code collecting the Vars of nested tuples (to sync cached
# features, say) finds `var`.
class TrunkTensor(namedtuple('TrunkTensor', ['var', 'layout'])):
    """Trunk features: an (N, C, H, W) tensor stored in `layout` (onednn_ops: NCHW, NHWC,
    or nChw16c, a Var of shape (N, C/16, H, W, 16)). `a + b` adds element-wise."""

    @property
    def channels(self):
        return onednn_ops.nchw_dims(self.var, self.layout)[1]

    def to(self, target):
        """The same features stored in `target`."""
        if target == self.layout:
            return self
        return TrunkTensor(onednn_ops.to_layout(self.nchw(), target), target)

    def nchw(self):
        """The features as a plain (N, C, H, W) Var."""
        return onednn_ops.from_layout(self.var, self.layout)

    def __add__(self, other):
        return TrunkTensor(self.var + _as_trunk(other).to(self.layout).var, self.layout)

    def warp(self, flow, align_corners=True):
        """flow_pwc.warp's masked output (border padding) for these features and flow
        (B, 2, H, W), in their layout."""
        if self.layout == NCHW:
            return TrunkTensor(warp(self.var, flow, align_corners)[0], NCHW)
        grid, mask = warp_grid_and_mask(flow, align_corners)
        b, _, h, w = mask.shape
        if self.layout == BLOCKED and onednn_ops.winograd_in_use() and inference_ops_in_use():
            # --precision fast: one pass over the features instead of Jittor's four gathers (8x faster)
            _, _, in_h, in_w, _ = self.var.shape
            ix = nn.grid_sampler_compute_source_index(grid[:, :, :, 0], in_w, 'border', align_corners)
            iy = nn.grid_sampler_compute_source_index(grid[:, :, :, 1], in_h, 'border', align_corners)
            return TrunkTensor(onednn_ops.warp_blocked(self.var, ix, iy, mask.reshape(b, h, w)), BLOCKED)
        # NHWC is nChw16c with one group of all channels.
        x = self.var if self.layout == BLOCKED else self.var.unsqueeze(1)
        warped = _sample_bilinear_channels_last(x, grid, 'border', align_corners) * mask.reshape(b, 1, h, w, 1)
        return TrunkTensor(warped if self.layout == BLOCKED else warped.squeeze(1), self.layout)


def _as_trunk(x):
    """x as a TrunkTensor; a plain Var is NCHW (the trunk's input)."""
    return x if isinstance(x, TrunkTensor) else TrunkTensor(x, NCHW)


def concat(parts):
    """torch.cat(parts, dim=1) of TrunkTensors: in their layout when they share one."""
    target = parts[0].layout if len({p.layout for p in parts}) == 1 else NCHW
    axis = 3 if target == NHWC else 1
    return TrunkTensor(jt.concat([p.to(target).var for p in parts], axis), target)


def _sample_bilinear_channels_last(x, grid, padding_mode, align_corners):
    """grid_sample (bilinear) of x (N, G, H, W, C), every group of channels sampled at the
    same grid (N, H', W', 2): Jittor's grid_sampler_2d arithmetic indexed channels-last,
    so the result equals flow_pwc.sample_bilinear on the NCHW input bit for bit."""
    n, groups, in_h, in_w, c = x.shape
    shape = [n, groups, grid.shape[1], grid.shape[2], c]
    ix = nn.grid_sampler_compute_source_index(grid[:, :, :, 0], in_w, padding_mode, align_corners)
    iy = nn.grid_sampler_compute_source_index(grid[:, :, :, 1], in_h, padding_mode, align_corners)
    ix, iy = ix.reindex(shape, ['i0', 'i2', 'i3']), iy.reindex(shape, ['i0', 'i2', 'i3'])
    nid, gid, cid = jt.index(shape, dim=0), jt.index(shape, dim=1), jt.index(shape, dim=4)
    fx, fy = ix.floor_int(), iy.floor_int()
    cx, cy = fx + 1, fy + 1
    dx, dy = ix - fx, iy - fy
    dnx, dny = cx - ix, cy - iy
    top_left = x.reindex([nid, gid, fy, fx, cid], overflow_value=0.0)
    bottom_left = x.reindex([nid, gid, cy, fx, cid], overflow_value=0.0)
    top_right = x.reindex([nid, gid, fy, cx, cid], overflow_value=0.0)
    bottom_right = x.reindex([nid, gid, cy, cx, cid], overflow_value=0.0)
    return (top_left * dnx * dny + bottom_left * dnx * dy + top_right * dx * dny
            + bottom_right * dx * dy)


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
    """jt.nn.Conv2d (same parameters and state-dict keys) on the trunk's features; groups
    1, square geometry. Takes a TrunkTensor or an NCHW Var (the trunk's first
    convolution) and gives a TrunkTensor, or an NCHW Var with `nchw_out` (the trunk's
    last). execute(x, relu=True) applies ReLU after (fused into the kernel on onednn_ops)."""

    def __init__(self, *args, nchw_out=False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1 or len(set(self.stride)) != 1 or len(set(self.padding)) != 1 \
                or len(set(self.dilation)) != 1:
            raise ValueError('trunk_layout.Conv2d supports groups=1 and equal height/width '
                             'stride, padding and dilation only')
        self.nchw_out = nchw_out

    def execute(self, x, relu=False):
        x = _as_trunk(x)
        out = NCHW if self.nchw_out else layout(self.out_channels)
        geometry = (self.stride[0], self.padding[0], self.dilation[0])
        if inference_ops_in_use() and out == NCHW and x.layout == BLOCKED and not relu \
                and onednn_ops.winograd_in_use() and onednn_ops.few_outputs_fit(
                    self.in_channels, self.out_channels, *self.kernel_size, *geometry):
            y = TrunkTensor(onednn_ops.conv3x3_few_outputs(x.var, self.weight, self.bias), NCHW)
        elif inference_ops_in_use():
            y = TrunkTensor(onednn_ops.conv2d(x.var, self.weight, self.bias, *geometry, relu, x.layout, out), out)
        else:
            if onednn_ops.brgconv_in_use():
                y = TrunkTensor(conv2d_nhwc(x.to(NHWC).var, self.weight, self.bias, *geometry), NHWC)
            else:
                y = TrunkTensor(super().execute(x.to(NCHW).var), NCHW)
            y = TrunkTensor(nn.relu(y.var), y.layout) if relu else y
        return y.nchw() if self.nchw_out else y.to(out)


class PixelShuffle(nn.Module):
    """torch.nn.PixelShuffle on trunk features: input channel c*r*r + i*r + j goes to
    output channel c at (h*r + i, w*r + j). NCHW and NHWC are written as reshape and
    transpose: Jittor's own (a reindex with per-element index arithmetic) takes 1.7x as
    long (163 ms against 96 ms at 512x360x640)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def execute(self, x):
        r = self.upscale_factor
        target = layout(x.channels // (r * r))
        x = x.to(target).var
        if target == BLOCKED:
            return TrunkTensor(onednn_ops.pixel_shuffle_blocked(x, r), BLOCKED)
        if target == NCHW:
            n, c, h, w = x.shape
            return TrunkTensor(x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(
                n, c // (r * r), h * r, w * r), NCHW)
        n, h, w, c = x.shape
        out_c = c // (r * r)
        return TrunkTensor(x.reshape(n, h, w, out_c, r, r).transpose(0, 1, 4, 2, 5, 3).reshape(
            n, h * r, w * r, out_c), NHWC)
