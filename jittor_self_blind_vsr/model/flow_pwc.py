"""PWC-Net optical flow (Flow_PWC, Network) and the feature warp of Self-Blind-VSR.

`align_corners` selects the grid_sample semantics of both warps: True is what the
published weights were trained with (PyTorch 0.4.1), False is what the original code
computes on PyTorch >= 1.3 (see docs/model.md).
"""
import math
from collections import namedtuple

import jittor as jt
import numpy as np

from jittor_self_blind_vsr.model.correlation import correlation
from jittor_self_blind_vsr.model.onednn_ops import FastConv2d, brgconv_in_use, winograd_in_use

nn = jt.nn

# Flow scale of each decoder level when warping the second pyramid (levels 5..2).
_BACKWARD_SCALES = {5: 0.625, 4: 1.25, 3: 2.5, 2: 5.0}
# Channels entering a decoder: cost volume, first features, upsampled flow and feature.
_DECODER_INPUT = {6: 81, 5: 81 + 128 + 2 + 2, 4: 81 + 96 + 2 + 2, 3: 81 + 64 + 2 + 2, 2: 81 + 32 + 2 + 2}
_DENSE_WIDTHS = (128, 128, 96, 64, 32)

FlowFeatures = namedtuple('FlowFeatures', ['pyramid', 'size'])
FlowFeatures.__doc__ = 'PWC-Net feature pyramid of one frame resized to a multiple of 64, and its original (H, W).'


def sample_bilinear(x, grid, padding_mode, align_corners):
    """torch.nn.functional.grid_sample(x, grid, 'bilinear', padding_mode, align_corners)."""
    return nn.grid_sample(x, grid, mode='bilinear', padding_mode=padding_mode, align_corners=align_corners)


def resize_bilinear(x, height, width):
    """F.interpolate(x, (height, width), mode='bilinear', align_corners=False)."""
    if tuple(x.shape[2:]) == (height, width):
        return x
    return nn.interpolate(x, size=(height, width), mode='bilinear', align_corners=False)


def _linspace(n):
    return jt.array(np.linspace(-1.0, 1.0, n).astype(np.float32))


def Backward(tensorInput, tensorFlow, align_corners=True):
    """Warp `tensorInput` by `tensorFlow` (pixels) with zero padding, zeroing pixels that
    sample partly outside the image (sampled ones <= 0.999), as PWC-Net does."""
    b, _, h, w = tensorFlow.shape
    gx = _linspace(w).reshape(1, 1, w) + tensorFlow[:, 0] / ((tensorInput.shape[3] - 1.0) / 2.0)
    gy = _linspace(h).reshape(1, h, 1) + tensorFlow[:, 1] / ((tensorInput.shape[2] - 1.0) / 2.0)
    grid = jt.stack([gx, gy], dim=3)
    output = sample_bilinear(tensorInput, grid, 'zeros', align_corners)
    ones = jt.ones((b, 1, tensorInput.shape[2], tensorInput.shape[3]), dtype=tensorInput.dtype)
    mask = (sample_bilinear(ones, grid, 'zeros', align_corners) > 0.999).float32()
    return output * mask


def warp_grid_and_mask(flo, align_corners):
    """grid_sample grid of warp() for flow flo (B, 2, H, W), and its (B, 1, H, W) mask: 0
    where sampling ones with zero padding gives < 0.999."""
    b, _, h, w = flo.shape
    xx = jt.arange(w, dtype='float32').reshape(1, 1, w)
    yy = jt.arange(h, dtype='float32').reshape(1, h, 1)
    gx = 2.0 * (xx + flo[:, 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * (yy + flo[:, 1]) / max(h - 1, 1) - 1.0
    grid = jt.stack([gx, gy], dim=3)
    ones = jt.ones((b, 1, h, w), dtype=flo.dtype)
    mask = (sample_bilinear(ones, grid, 'zeros', align_corners) >= 0.999).float32()
    return grid, mask


def warp(x, flo, align_corners=True):
    """Warp x (B,C,H,W) back by flow flo (B,2,H,W): (warped * mask, mask), border padding;
    mask is 0 where sampling ones with zero padding gives < 0.999."""
    b, c, h, w = x.shape
    grid, mask = warp_grid_and_mask(flo, align_corners)
    output = sample_bilinear(x, grid, 'border', align_corners)
    mask = mask.broadcast((b, c, h, w))
    return output * mask, mask


class ConvTranspose2d(nn.ConvTranspose2d):
    """torch.nn.ConvTranspose2d (weight (in, out, kh, kw); groups 1, dilation 1, no output
    padding) as one matrix product and a scatter-add. Jittor's own goes to oneDNN's
    backward-data convolution, which costs ~50 ms per call whatever the size (about a
    third of a CPU forward); this takes well under 10 ms for PWC-Net's shapes."""

    def execute(self, x):
        n, c, h, w = x.shape
        o, k, s, p = self.weight.shape[1], self.kernel_size[0], self.stride[0], self.padding[0]
        cols = jt.matmul(self.weight.reshape(c, o * k * k).transpose(),
                         x.transpose(1, 0, 2, 3).reshape(c, n * h * w))
        out = cols.reshape(o, k, k, n, h, w).reindex_reduce(
            'add', [n, o, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k],
            ['i3', 'i0', f'i4*{s}-{p}+i1', f'i5*{s}-{p}+i2'])
        return out + self.bias.reshape(1, o, 1, 1)


class OutputAlignedConv2d(FastConv2d):
    """jt.nn.Conv2d computed with its output channels zero-padded to a multiple of 32.

    Jittor's oneDNN op reorders the weights on every call; when oneDNN 2.2 convolves with
    brgconv (onednn_ops.brgconv_in_use) and must pad the output count (PWC-Net's 196),
    it takes its generic reorder: 5-10 ms per call against 0.1 ms for an aligned count,
    ~90 ms of a 64x64 forward. Padding first keeps the fast reorder. Each output channel
    is the same dot product either way, so the result is unchanged."""

    def execute(self, x):
        if not brgconv_in_use() or (jt.flags.no_grad and winograd_in_use()):
            return super().execute(x)
        pad = -self.out_channels % 32
        weight = self.weight
        if pad:
            weight = jt.concat([weight, jt.zeros((pad,) + tuple(weight.shape[1:]), dtype=weight.dtype)], 0)
        y = nn.conv2d(x, weight, None, self.stride, self.padding, self.dilation)
        if pad:
            y = y[:, :self.out_channels]
        return y + self.bias.reshape(1, -1, 1, 1)


def _conv(c_in, c_out, dilation=1):
    return FastConv2d(c_in, c_out, kernel_size=3, stride=1, padding=dilation, dilation=dilation)


def _leaky():
    return nn.LeakyReLU(0.1)


class Extractor(nn.Module):
    """Six-level feature pyramid, each level halving the resolution."""

    def __init__(self):
        super().__init__()
        widths = (3, 16, 32, 64, 96, 128, 196)
        names = ('moduleOne', 'moduleTwo', 'moduleThr', 'moduleFou', 'moduleFiv', 'moduleSix')
        self._names = names
        for name, c_in, c_out in zip(names, widths[:-1], widths[1:]):
            conv = OutputAlignedConv2d if c_out % 32 else FastConv2d
            setattr(self, name, nn.Sequential(
                conv(c_in, c_out, kernel_size=3, stride=2, padding=1), _leaky(),
                conv(c_out, c_out, kernel_size=3, stride=1, padding=1), _leaky(),
                conv(c_out, c_out, kernel_size=3, stride=1, padding=1), _leaky()))

    def execute(self, x):
        pyramid = []
        for name in self._names:
            x = getattr(self, name)(x)
            pyramid.append(x)
        return pyramid


class Decoder(nn.Module):
    """One PWC-Net level: cost volume, DenseNet-style conv stack, flow estimate."""

    def __init__(self, intLevel, align_corners=True):
        super().__init__()
        self.align_corners = align_corners
        current = _DECODER_INPUT[intLevel]
        if intLevel < 6:
            previous = _DECODER_INPUT[intLevel + 1] + sum(_DENSE_WIDTHS)
            self.moduleUpflow = ConvTranspose2d(2, 2, kernel_size=4, stride=2, padding=1)
            self.moduleUpfeat = ConvTranspose2d(previous, 2, kernel_size=4, stride=2, padding=1)
            self.dblBackward = _BACKWARD_SCALES[intLevel]
        names = ('moduleOne', 'moduleTwo', 'moduleThr', 'moduleFou', 'moduleFiv')
        self._names = names
        for name, width in zip(names, _DENSE_WIDTHS):
            setattr(self, name, nn.Sequential(_conv(current, width), _leaky()))
            current += width
        self.moduleSix = nn.Sequential(_conv(current, 2))

    def execute(self, tensorFirst, tensorSecond, objectPrevious):
        if objectPrevious is None:
            volume = nn.leaky_relu(correlation(tensorFirst, tensorSecond), 0.1)
            feat = volume
        else:
            flow = self.moduleUpflow(objectPrevious['tensorFlow'])
            upfeat = self.moduleUpfeat(objectPrevious['tensorFeat'])
            warped = Backward(tensorSecond, flow * self.dblBackward, self.align_corners)
            volume = nn.leaky_relu(correlation(tensorFirst, warped), 0.1)
            feat = jt.concat([volume, tensorFirst, flow, upfeat], 1)
        for name in self._names:
            feat = jt.concat([getattr(self, name)(feat), feat], 1)
        return {'tensorFlow': self.moduleSix(feat), 'tensorFeat': feat}


class Refiner(nn.Module):
    """Dilated context network adding a residual to the finest flow."""

    def __init__(self):
        super().__init__()
        c_in = _DECODER_INPUT[2] + sum(_DENSE_WIDTHS)
        self.moduleMain = nn.Sequential(
            _conv(c_in, 128, 1), _leaky(),
            _conv(128, 128, 2), _leaky(),
            _conv(128, 128, 4), _leaky(),
            _conv(128, 96, 8), _leaky(),
            _conv(96, 64, 16), _leaky(),
            _conv(64, 32, 1), _leaky(),
            _conv(32, 2, 1))

    def execute(self, x):
        return self.moduleMain(x)


class Network(nn.Module):
    """PWC-Net. Split in `extract` (per frame) and `decode` (per pair) so that a frame's
    pyramid can serve every pair it belongs to."""

    def __init__(self, align_corners=True):
        super().__init__()
        self.moduleExtractor = Extractor()
        self.moduleTwo = Decoder(2, align_corners)
        self.moduleThr = Decoder(3, align_corners)
        self.moduleFou = Decoder(4, align_corners)
        self.moduleFiv = Decoder(5, align_corners)
        self.moduleSix = Decoder(6, align_corners)
        self.moduleRefiner = Refiner()

    def extract(self, x):
        return self.moduleExtractor(x)

    def decode(self, first, second):
        """Flow (1/20 pixel units, quarter resolution) from two pyramids."""
        estimate = None
        for level, decoder in zip((6, 5, 4, 3, 2), (self.moduleSix, self.moduleFiv, self.moduleFou,
                                                    self.moduleThr, self.moduleTwo)):
            estimate = decoder(first[level - 1], second[level - 1], estimate)
        return estimate['tensorFlow'] + self.moduleRefiner(estimate['tensorFeat'])

    def execute(self, tensorFirst, tensorSecond):
        return self.decode(self.extract(tensorFirst), self.extract(tensorSecond))


class FlowNet(nn.Module):
    """What PWC_Recons asks of its flow network: `features(frame)` and `flow_from_features(first,
    second)`, in pixels (a subclass gives both); the rest of the original's interface follows."""

    def estimate_flow(self, tensorFirst, tensorSecond):
        return self.flow_from_features(self.features(tensorFirst), self.features(tensorSecond))

    def warp(self, x, flo):
        return warp(x, flo, self.align_corners)

    def execute(self, frame_1, frame_2):
        return self.estimate_flow(frame_1, frame_2)


class Flow_PWC(FlowNet):
    """PWC-Net on frames of any size: flow from frame_1 to frame_2, in pixels."""

    def __init__(self, pretrain_fn='.', device=None, align_corners=True):
        super().__init__()
        # `device` is kept for the original's signature; Jittor places every Var by
        # jt.flags.use_cuda, which jittor_self_blind_vsr.runtime sets.
        self.align_corners = align_corners
        self.moduleNetwork = Network(align_corners)
        if pretrain_fn != '.':
            self._load_pretrained(pretrain_fn)

    def _load_pretrained(self, path):
        """PWC-Net weights from a PWC-Net file (.pytorch or converted .pkl) or from the
        flow part of a full Self-Blind-VSR checkpoint; CheckpointError names what does not fit."""
        from jittor_self_blind_vsr.model import load_checked
        from jittor_self_blind_vsr.utils.checkpoint import load_flow_state_dict_file
        load_checked(self.moduleNetwork, load_flow_state_dict_file(path), path)

    def features(self, frame):
        """Pyramid of `frame` resized (bilinear) to the next multiple of 64."""
        _, _, h, w = frame.shape
        h64, w64 = int(math.ceil(h / 64.0) * 64), int(math.ceil(w / 64.0) * 64)
        return FlowFeatures(self.moduleNetwork.extract(resize_bilinear(frame, h64, w64)), (h, w))

    def flow_from_features(self, first, second):
        """Flow from the frame of `first` to that of `second` (FlowFeatures), in pixels."""
        h, w = first.size
        h64, w64 = first.pyramid[0].shape[2] * 2, first.pyramid[0].shape[3] * 2
        flow = 20.0 * resize_bilinear(self.moduleNetwork.decode(first.pyramid, second.pyramid), h, w)
        scale = jt.array(np.array([w / w64, h / h64], dtype=np.float32)).reshape(1, 2, 1, 1)
        return flow * scale
