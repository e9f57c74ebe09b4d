"""Priors on the estimated blur kernel (B, 1, k, k): sum to one, centred, sparse, small boundaries."""
import jittor as jt
import numpy as np

nn = jt.nn


def create_gaussian(size, sigma1, sigma2=-1):
    """Outer product of two sampled 1-D Gaussians on -size//2+1 .. size//2 (float64 ndarray)."""
    def gauss(sigma):
        return [np.exp(-z ** 2 / (2 * sigma ** 2)) / np.sqrt(2 * np.pi * sigma ** 2)
                for z in range(-size // 2 + 1, size // 2 + 1)]
    func1 = gauss(sigma1)
    func2 = func1 if sigma2 == -1 else gauss(sigma2)
    return np.outer(func1, func2)


def create_penalty_mask(k_size, penalty_scale):
    """Weights growing towards the kernel's border; zero on the central region."""
    center_size = k_size // 2 + k_size % 2
    mask = create_gaussian(size=k_size, sigma1=k_size)
    mask = 1 - mask / np.max(mask)
    margin = (k_size - center_size) // 2 - 1
    mask[margin:-margin, margin:-margin] = 0
    return penalty_scale * mask


def l1_loss(a, b):
    return jt.abs(a - b).mean()


class CentralizedLoss(nn.Module):
    """Squared distance of each kernel's centre of mass from (k//2, k//2), averaged."""

    def __init__(self, k_size, scale_factor=.5):
        super().__init__()
        self._indices = np.arange(k_size, dtype=np.float32)
        self._center = float(k_size // 2)

    def execute(self, kernel):
        b = kernel.shape[0]
        indices = jt.array(self._indices)
        losses = []
        for i in range(b):
            kernel_map = kernel[i, 0]
            total = kernel_map.sum()
            row_com = (kernel_map.sum(1) * indices).sum() / total
            col_com = (kernel_map.sum(0) * indices).sum() / total
            losses.append(((row_com - self._center) ** 2 + (col_com - self._center) ** 2) / 2.0)
        return sum(losses) / b


class BoundariesLoss(nn.Module):
    """Mean |kernel * penalty mask|: mass far from the centre is penalised."""

    def __init__(self, k_size):
        super().__init__()
        self._mask = create_penalty_mask(k_size, 30).astype(np.float32)

    def execute(self, kernel):
        return l1_loss(kernel * jt.array(self._mask)[None, None], 0.0)


class SparsityLoss(nn.Module):
    """Mean |kernel| ** 0.5 (zero entries contribute 0 and no gradient)."""

    def __init__(self):
        super().__init__()
        self.power = 0.5

    def execute(self, kernel):
        magnitude = jt.abs(kernel)
        nonzero = magnitude > 0
        # pow at 0 has an infinite derivative: feed 1 there and mask the result.
        safe = jt.where(nonzero, magnitude, jt.ones_like(magnitude))
        power_kernel = jt.where(nonzero, safe ** self.power, jt.zeros_like(magnitude))
        return l1_loss(power_kernel, 0.0)


class KernelPriorLoss(nn.Module):
    """Sum of |kernel - isotropic Gaussian(sigma)| per sample, averaged over the batch.

    Not part of the original objective: sbvsr-train adds it for the first --kernel_prior_batches
    batches only. Without it a small model trained from scratch settles in the objective's
    trivial solution, a one-pixel kernel: the blurred-down training inputs are then merely
    decimated, and the network learns plain interpolation instead of undoing blur
    (docs/training.md). The cycle loss pulls towards that solution whenever the restored
    frames are blurrier than the truth, which they are while the network is still learning.
    """

    def __init__(self, k_size, sigma):
        super().__init__()
        prior = create_gaussian(k_size, sigma)
        self._prior = (prior / prior.sum()).astype(np.float32)

    def execute(self, kernel):
        return jt.abs(kernel - jt.array(self._prior)[None, None]).sum() / kernel.shape[0]
