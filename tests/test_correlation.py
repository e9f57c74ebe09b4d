"""The correlation op against the PyTorch fixture, a numpy reference and finite differences."""
import numpy as np
import pytest

from jittor_self_blind_vsr import runtime
from jittor_self_blind_vsr.model.correlation import CHANNELS, correlation, jt

from conftest import parity_file

D = 4


def numpy_correlation(first, second):
    """Reference cost volume and its vector-Jacobian product, by shifting padded copies."""
    b, c, h, w = first.shape
    padded = np.pad(second, ((0, 0), (0, 0), (D, D), (D, D)))
    volume = np.zeros((b, CHANNELS, h, w), first.dtype)
    for dy in range(2 * D + 1):
        for dx in range(2 * D + 1):
            shifted = padded[:, :, dy:dy + h, dx:dx + w]
            volume[:, dy * 9 + dx] = (first * shifted).sum(1) / c
    return volume


def numpy_correlation_grads(first, second, grad_volume):
    b, c, h, w = first.shape
    padded = np.pad(second, ((0, 0), (0, 0), (D, D), (D, D)))
    grad_first = np.zeros_like(first)
    grad_padded = np.zeros_like(padded)
    for dy in range(2 * D + 1):
        for dx in range(2 * D + 1):
            g = grad_volume[:, dy * 9 + dx][:, None] / c
            grad_first += g * padded[:, :, dy:dy + h, dx:dx + w]
            grad_padded[:, :, dy:dy + h, dx:dx + w] += g * first
    return grad_first, grad_padded[:, :, D:D + h, D:D + w]


def op_with_grads(first, second, grad_volume, dtype='float32'):
    # dtype= given explicitly: jt.array alone rounds float64 arrays to float32
    f = jt.array(first, dtype=dtype)
    s = jt.array(second, dtype=dtype)
    volume = correlation(f, s)
    grad_first, grad_second = jt.grad((volume * jt.array(grad_volume, dtype=dtype)).sum(), [f, s])
    return volume.numpy(), grad_first.numpy(), grad_second.numpy()


def random_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    b, _, h, w = shape
    return (rng.standard_normal(shape).astype(np.float32),
            rng.standard_normal(shape).astype(np.float32),
            rng.standard_normal((b, CHANNELS, h, w)).astype(np.float32))


def test_matches_pytorch_fixture():
    ref = np.load(parity_file('correlation.npz'))
    volume, grad_first, grad_second = op_with_grads(ref['first'], ref['second'], ref['grad_out'])
    assert volume.shape == (2, 81, 9, 11)
    assert np.abs(volume - ref['out']).max() < 1e-5
    assert np.abs(grad_first - ref['grad_first']).max() < 1e-5
    assert np.abs(grad_second - ref['grad_second']).max() < 1e-5


@pytest.mark.parametrize('shape', [(1, 1, 1, 1), (3, 5, 7, 3), (2, 7, 4, 13), (1, 3, 11, 17), (2, 2, 9, 9)])
def test_matches_numpy_reference(shape):
    first, second, grad_volume = random_inputs(shape, seed=sum(shape))
    volume, grad_first, grad_second = op_with_grads(first, second, grad_volume)
    ref_first, ref_second = numpy_correlation_grads(first.astype(np.float64), second.astype(np.float64),
                                                   grad_volume.astype(np.float64))
    assert np.abs(volume - numpy_correlation(first.astype(np.float64), second.astype(np.float64))).max() < 1e-5
    assert np.abs(grad_first - ref_first).max() < 1e-5
    assert np.abs(grad_second - ref_second).max() < 1e-5


def test_hand_computed_displacements():
    # second is first moved one pixel right, so displacement dx=+1 matches it exactly.
    first = np.zeros((1, 2, 3, 4), np.float32)
    first[0, 0, 1, 1], first[0, 1, 1, 1] = 2.0, 4.0
    second = np.roll(first, 1, axis=3)
    volume = correlation(jt.array(first), jt.array(second)).numpy()
    expected = np.zeros_like(volume)
    expected[0, (0 + 4) * 9 + (1 + 4), 1, 1] = (2 * 2 + 4 * 4) / 2
    assert np.array_equal(volume, expected)


def _directional_error(first, second, grad_volume, grad_first, grad_second, seed):
    """|central difference of sum(volume*grad_volume) along a random direction - <grads, direction>|."""
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal(first.shape), rng.standard_normal(second.shape)
    eps = 1e-3

    def loss(f, s):
        volume = correlation(jt.array(f, dtype='float64'), jt.array(s, dtype='float64')).numpy()
        return float((volume * grad_volume).sum())

    numeric = (loss(first + eps * u, second + eps * v) - loss(first - eps * u, second - eps * v)) / (2 * eps)
    analytic = float((grad_first * u).sum() + (grad_second * v).sum())
    return abs(numeric - analytic)


def test_gradients_match_finite_differences():
    shape = (2, 3, 6, 10)
    rng = np.random.default_rng(7)
    first, second = rng.standard_normal(shape), rng.standard_normal(shape)
    grad_volume = rng.standard_normal((2, CHANNELS, 6, 10))
    _, grad_first, grad_second = op_with_grads(first, second, grad_volume, dtype='float64')
    assert grad_first.dtype == np.float64
    for seed in range(3):
        assert _directional_error(first, second, grad_volume, grad_first, grad_second, seed) < 1e-8
    # the check has teeth: the gradients swapped, or one entry off by 1e-4, are caught
    assert _directional_error(first, second, grad_volume, grad_second, grad_first, 0) > 1e-2
    nudged = grad_second.copy()
    nudged[1, 2, 5, 9] += 1e-4
    assert _directional_error(first, second, grad_volume, grad_first, nudged, 0) > 1e-6


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match='one shape'):
        correlation(jt.zeros((1, 2, 5, 5)), jt.zeros((1, 2, 5, 6)))


def test_one_compiled_op_each_way_at_finest_pwc_level():
    # The op replaced a plain-op version (about 40 ms here); its speed rests on one compiled pass
    # each way, asserted on the ops Jittor runs, not on the clock. PWC-Net level 2 of a 192x320 frame.
    first, second, grad_volume = (jt.array(a) for a in random_inputs((1, 32, 48, 80), seed=0))

    def run():
        volume = correlation(first, second)
        jt.sync([volume, *jt.grad((volume * grad_volume).sum(), [first, second])])
    run()
    with jt.profile_scope() as report:
        run()
    names = [row[0] for row in report[1:] if int(row[2]) > 0]
    passes = [name for name in names if name.startswith('code') and 'sbvsr_corr::' in name]
    assert len(passes) == 2
    assert sorted(name.split('CODE:sbvsr_corr::')[1].split('<')[0] for name in passes) == ['backward', 'forward']
    # a plain-op correlation shows up as reindexing (the shifts) and reductions (the channel mean)
    assert not [name for name in names if name not in passes and ('reindex' in name or 'reduce' in name)]


def test_cuda_matches_cpu():
    if not runtime.cuda_available() or not jt.has_cuda:
        pytest.skip('no usable CUDA GPU on this machine: the CUDA source is only checked where one exists')
    first, second, grad_volume = random_inputs((2, 19, 13, 21), seed=3)
    with jt.flag_scope(use_cuda=0):
        cpu = op_with_grads(first, second, grad_volume)
    with jt.flag_scope(use_cuda=1):
        gpu = op_with_grads(first, second, grad_volume)
    for c, g in zip(cpu, gpu):
        assert np.abs(c - g).max() < 1e-5
