"""PWC-Net cost volume (placeholder in plain Jittor ops; replaced by the jt.code op)."""
from jittor_self_blind_vsr.runtime import import_jittor

jt = import_jittor()

MAX_DISPLACEMENT = 4


def correlation(first, second):
    """Cost volume of two (B, C, H, W) maps: (B, 81, H, W), channel (dy+4)*9 + (dx+4)."""
    d = MAX_DISPLACEMENT
    _, _, h, w = first.shape
    padded = jt.nn.pad(second, (d, d, d, d))
    volume = [(first * padded[:, :, dy:dy + h, dx:dx + w]).mean(1, keepdims=True)
              for dy in range(2 * d + 1) for dx in range(2 * d + 1)]
    return jt.concat(volume, 1)
