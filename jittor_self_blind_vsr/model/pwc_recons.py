"""PWC_Recons: the Self-Blind-VSR network (flow-aligned fusion, reconstruction, kernel estimate)."""
import math
from collections import namedtuple

import jittor as jt

from jittor_self_blind_vsr.model import load_checked, numpy_state_dict, onednn_ops, trunk_layout
from jittor_self_blind_vsr.model.flow_dis import Flow_DIS
from jittor_self_blind_vsr.model.flow_pwc import Flow_PWC
from jittor_self_blind_vsr.model.kernel import KernelNet

nn = jt.nn

MODES = ('train', 'val', 'infer')
# The flow between a window's frames: PWC-Net (the published model, learned) or OpenCV's DIS
# (classical, no weights: flow_dis.py).
FLOWS = ('pwc', 'dis')

FrameFeatures = namedtuple('FrameFeatures', ['feat', 'flow'])
FrameFeatures.__doc__ = ('Per-frame work of recons_forward: extra_feat(in_conv(frame)) (a trunk_layout.TrunkTensor) '
                         'and the PWC-Net pyramid (FlowFeatures); reusable by every window holding the frame.')


def get_same_padding(kernel_size, dilation):
    kernel_size = kernel_size + (kernel_size - 1) * (dilation - 1)
    return (kernel_size - 1) // 2


class ResBlock(nn.Module):
    """conv-relu-conv plus the input, on trunk features (trunk_layout.TrunkTensor)."""

    def __init__(self, inplanes, planes, kernel_size=3, stride=1, dilation=1):
        super().__init__()
        padding = get_same_padding(kernel_size, dilation)
        self.conv1 = trunk_layout.Conv2d(inplanes, planes, kernel_size=kernel_size, stride=stride,
                                         padding=padding, dilation=dilation)
        self.conv2 = trunk_layout.Conv2d(planes, planes, kernel_size=kernel_size, stride=1,
                                         padding=padding, dilation=dilation)
        self.res_translate = None
        if inplanes != planes or stride != 1:
            self.res_translate = trunk_layout.Conv2d(inplanes, planes, kernel_size=1, stride=stride)

    def execute(self, x):
        residual = x if self.res_translate is None else self.res_translate(x)
        return self.conv2(self.conv1(x, relu=True)) + residual


def blur_down(x, kernel, scale):
    """Replicate-pad by ksize//2, correlate every channel of sample i with kernel[i]
    (B, 1, k, k), keep every `scale`-th pixel from 0: the original's blur then [::s, ::s]."""
    b, c = x.shape[:2]
    ksize = kernel.shape[2]
    if kernel.shape[1] != 1:
        raise ValueError(f'blur_down needs a (B, 1, k, k) kernel, got {tuple(kernel.shape)}')
    padded = nn.pad(x, (ksize // 2,) * 4, mode='replicate')
    # A strided valid convolution computes exactly the kept pixels of the blurred image.
    out = []
    for i in range(b):
        blurred = nn.conv2d(padded[i].reshape(c, 1, *padded.shape[2:]), kernel[i:i + 1], stride=scale)
        out.append(blurred.reshape(1, c, *blurred.shape[2:]))
    return out[0] if b == 1 else jt.concat(out, 0)


class PWC_Recons(nn.Module):
    def __init__(self, n_colors=3, n_sequence=5, extra_RBS=5, recons_RBS=10, n_feat=32, kernel_size=3,
                 scale=4, ksize=13, HR_in=False, flow_pretrain_fn='.', device=None, align_corners=True,
                 flow='pwc'):
        super().__init__()
        if flow not in FLOWS:
            raise ValueError(f'flow must be one of {FLOWS}, got {flow!r}')
        self.ksize = ksize
        self.n_feat = n_feat
        self.n_sequence = n_sequence
        self.scale = scale
        self.HR_in = HR_in
        self.align_corners = align_corners

        # The reconstruction trunk, from in_conv to out_conv, passes trunk_layout.TrunkTensors
        # (features in the layout oneDNN's kernel works on; see trunk_layout.py).
        conv = trunk_layout.Conv2d
        self.in_conv = nn.Sequential(conv(n_colors, n_feat, kernel_size=3, stride=1, padding=1))
        self.extra_feat = nn.Sequential(*[ResBlock(n_feat, n_feat, kernel_size=kernel_size, stride=1)
                                          for _ in range(extra_RBS)])
        self.fusion_conv = nn.Sequential(conv(n_feat * n_sequence, n_feat, kernel_size=3, stride=1, padding=1))
        self.recons_net = nn.Sequential(*[ResBlock(n_feat, n_feat, kernel_size=kernel_size, stride=1)
                                          for _ in range(recons_RBS)])
        self.out_conv = nn.Sequential(
            conv(n_feat, n_feat, kernel_size=3, stride=1, padding=1),
            conv(n_feat, n_colors, kernel_size=3, stride=1, padding=1, nchw_out=True))
        upsample = []
        for _ in range(int(math.log2(scale))):
            upsample += [conv(n_feat, n_feat * 4, 3, 1, 1, bias=True), trunk_layout.PixelShuffle(2)]
        self.upsample_layers = nn.Sequential(*upsample)
        self.flow = flow
        if flow == 'pwc':
            self.flow_net = Flow_PWC(pretrain_fn=flow_pretrain_fn, device=device, align_corners=align_corners)
        else:
            self.flow_net = Flow_DIS(align_corners=align_corners)
        self.kernel_net = KernelNet(in_c=n_colors * n_sequence, ksize=ksize)

    def load_numpy_state_dict(self, state):
        load_checked(self, state)

    def numpy_state_dict(self):
        return numpy_state_dict(self)

    def execute(self, input_dict):
        x, mode = input_dict['x'], input_dict['mode']
        if mode not in MODES:
            raise ValueError(f'Not support mode={mode}!')
        frames = [x[:, i] for i in range(self.n_sequence)]
        center = self.n_sequence // 2
        est_kernel = self.kernel_net(jt.concat(frames, 1))
        if mode == 'infer':
            return {'recons': self.recons_forward(frames), 'est_kernel': est_kernel}, None
        down_frames = [self.blur_down(f, est_kernel, self.scale) for f in frames]
        if mode == 'train':
            down_recons = self.recons_forward(down_frames)
            # The original reconstructs the full clip under torch.no_grad(), then detaches.
            with jt.no_grad():
                recons = self.recons_forward(frames)
            input_cycle = self.blur_down(recons.detach(), est_kernel, self.scale)
            return {'input': frames[center], 'recons_down': down_recons,
                    'input_cycle': input_cycle, 'est_kernel': est_kernel}, None
        recons = self.recons_forward(frames)
        return {'input': frames[center], 'input_down': down_frames[center],
                'input_cycle': self.blur_down(recons, est_kernel, self.scale), 'recons': recons,
                'recons_down': self.recons_forward(down_frames), 'est_kernel': est_kernel}, None

    def trunk_features(self, frame):
        return self.extra_feat(self.in_conv(frame))

    def frame_features(self, frame):
        return FrameFeatures(self.trunk_features(frame), self.flow_net.features(frame))

    def window_flows(self, pyramids):
        """Flows (pixels) from the centre frame to each frame of a window, from their PWC-Net
        pyramids (FlowFeatures); None at the centre. In training at --precision fast the pairs
        go through PWC-Net's decoder as one batch (a quarter of its calls, most of them on the
        coarse levels' few pixels, where a call costs its overhead). Inference keeps one pair
        at a time: the batch would hold four pairs' decoder buffers at once, which
        infer/tiling.py's memory estimate does not count."""
        center = self.n_sequence // 2
        others = [i for i in range(len(pyramids)) if i != center]
        flows = [None] * len(pyramids)
        if not self._batch_window():
            for i in others:
                flows[i] = self.flow_net.flow_from_features(pyramids[center], pyramids[i])
            return flows
        first = pyramids[center]._replace(pyramid=[jt.concat([level] * len(others), 0)
                                                   for level in pyramids[center].pyramid])
        second = pyramids[center]._replace(pyramid=[jt.concat(levels, 0) for levels in
                                                    zip(*[pyramids[i].pyramid for i in others])])
        pair_flows = self.flow_net.flow_from_features(first, second)
        b = pair_flows.shape[0] // len(others)
        for k, i in enumerate(others):
            flows[i] = pair_flows[k * b:(k + 1) * b]
        return flows

    def recons_from_features(self, frames, features, flows=None):
        """Reconstruct the centre of `frames` from their FrameFeatures (same order); `flows`, as
        window_flows returns them, default to those of the features' pyramids."""
        center = self.n_sequence // 2
        base = frames[center]
        if not self.HR_in:
            base = nn.interpolate(base, scale_factor=self.scale, mode='bilinear', align_corners=False)
        if flows is None:
            flows = self.window_flows([feature.flow for feature in features])
        warped = [feature.feat if i == center else feature.feat.warp(flows[i], self.align_corners)
                  for i, feature in enumerate(features)]
        recons_feat = self.recons_net(self.fusion_conv(trunk_layout.concat(warped)))
        if not self.HR_in:
            recons_feat = self.upsample_layers(recons_feat)
        return self.out_conv(recons_feat) + base

    def _batch_window(self):
        """True where a window's frames and pairs run as one batch: training at --precision
        fast (the weight gradients then sum in another order, which exact must not change)."""
        return self.is_training() and onednn_ops.winograd_in_use()

    def recons_forward(self, frame_list):
        if self._batch_window():
            return self._recons_forward_batched(frame_list)
        return self.recons_from_features(frame_list, [self.frame_features(f) for f in frame_list])

    def _recons_forward_batched(self, frame_list):
        """recons_forward with the window's frames stacked into one batch for the per-frame
        networks (and its pairs into one for PWC-Net's decoder, window_flows): a fifth of the
        calls, which dominate at training patch sizes, and of the Winograd weight transforms
        (used where _batch_window())."""
        b = frame_list[0].shape[0]
        frames = jt.concat(frame_list, 0)
        feat, pyramid = self.trunk_features(frames), self.flow_net.features(frames)
        features = [FrameFeatures(trunk_layout.TrunkTensor(feat.var[i * b:(i + 1) * b], feat.layout),
                                  pyramid._replace(pyramid=[level[i * b:(i + 1) * b] for level in pyramid.pyramid]))
                    for i in range(len(frame_list))]
        return self.recons_from_features(frame_list, features)

    def blur_down(self, x, kernel, scale):
        return blur_down(x, kernel, scale)
