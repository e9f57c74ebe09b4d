"""KernelNet: estimates the blur kernel shared by a clip (RCAB blocks, pooling, MLP, softmax)."""
import jittor as jt
import numpy as np

from jittor_self_blind_vsr.model.onednn_ops import FastConv2d

nn = jt.nn


def adaptive_pool_matrix(size, bins):
    """(bins, size) matrix averaging PyTorch's adaptive bins [floor(i*size/bins), ceil((i+1)*size/bins))."""
    matrix = np.zeros((bins, size), dtype=np.float64)
    for i in range(bins):
        start = (i * size) // bins
        end = -((-(i + 1) * size) // bins)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix.astype(np.float32)


class AdaptiveAvgPool2d(nn.Module):
    """torch.nn.AdaptiveAvgPool2d: Jittor's own uses equal strided windows, not PyTorch's bins."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def execute(self, x):
        n, c, h, w = x.shape
        if self.output_size == 1:
            return x.mean(dims=(2, 3), keepdims=True)
        k = self.output_size
        rows = jt.array(adaptive_pool_matrix(h, k).T)
        cols = jt.array(adaptive_pool_matrix(w, k).T)
        y = jt.matmul(x.reshape(n * c * h, w), cols).reshape(n, c, h, k)
        y = jt.matmul(y.transpose(0, 1, 3, 2).reshape(n * c * k, h), rows)
        return y.reshape(n, c, k, k).transpose(0, 1, 3, 2)


class CALayer(nn.Module):
    """Channel attention: global average, squeeze, excite, rescale."""

    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0, bias=True),
            nn.ReLU(),
            nn.Conv2d(channel // reduction, channel, 1, padding=0, bias=True),
            nn.Sigmoid())

    def execute(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block: conv, act, conv, CALayer, plus the input."""

    def __init__(self, n_feat=64, kernel_size=3, reduction=16, bias=True, bn=False, act=None, res_scale=1):
        super().__init__()
        body = []
        for i in range(2):
            body.append(FastConv2d(n_feat, n_feat, kernel_size=kernel_size, stride=1,
                                   padding=kernel_size // 2, bias=bias))
            if bn:
                body.append(nn.BatchNorm2d(n_feat))
            if i == 0:
                body.append(act if act is not None else nn.ReLU())
        body.append(CALayer(n_feat, reduction))
        self.body = nn.Sequential(*body)
        self.res_scale = res_scale

    def execute(self, x):
        return self.body(x) * self.res_scale + x


class KernelNet(nn.Module):
    """(B, in_c, H, W) clip stacked on channels -> (B, 1, ksize, ksize) kernel summing to 1."""

    def __init__(self, in_c=3, ksize=13):
        super().__init__()
        self.ksize = ksize
        self.in_conv = FastConv2d(in_c, 64, kernel_size=3, padding=1, bias=True)
        self.body1 = nn.Sequential(RCAB(n_feat=64), RCAB(n_feat=64))
        self.global_pool = AdaptiveAvgPool2d(ksize)
        self.body2 = nn.Sequential(
            RCAB(n_feat=64),
            RCAB(n_feat=64),
            nn.Conv2d(64, 32, kernel_size=3, padding=1, bias=True),
            nn.Conv2d(32, 1, kernel_size=3, padding=1, bias=True))
        # The original's nn.Softmax() without dim acts on dim 1 of this 2-D input.
        self.fc_net = nn.Sequential(
            nn.Linear(ksize * ksize, 1000, bias=True),
            nn.Linear(1000, ksize * ksize, bias=True),
            nn.Softmax(dim=1))

    def execute(self, input_tensor):
        b = input_tensor.shape[0]
        out = self.body1(self.in_conv(input_tensor))
        out = self.body2(self.global_pool(out))
        out = self.fc_net(out.reshape(b, self.ksize * self.ksize))
        return out.reshape(b, 1, self.ksize, self.ksize)
