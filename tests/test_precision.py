"""--precision: exact is today's arithmetic; fast (oneDNN's Winograd kernel for the trunk's
3x3 convolutions) stays within a bound of the original, and says what it falls back to
where it cannot run.

The precision is fixed when Jittor starts (runtime.FAST_MAX_CPU_ISA), so fast runs in child
processes; this process runs exact, as every other test file does.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jittor_self_blind_vsr import runtime
from jittor_self_blind_vsr.model import onednn_ops
from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
from conftest import child_env, parity_file
from parity_weights import seeded_state

jt = runtime.import_jittor()

AVX512_CORE = {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'}
# fast against the original's small-configuration output (fixture, seeded weights): the
# Winograd kernel measured 4.2e-6 max / 5.6e-7 mean abs error, exact 3.2e-6 / 4.2e-7
# (docs/model.md). The trunk's weights rounded to bfloat16 give 1.6e-2 / 3.0e-3: an
# arithmetic that coarse fails here (test_the_bound_rejects_bfloat16_weights).
FAST_MAX, FAST_MEAN = 2e-5, 2e-6

_CHILD = '''
import json, sys
import numpy as np
sys.path.insert(0, 'tests')
from jittor_self_blind_vsr import runtime
jt = runtime.import_jittor('cpu', 'fast')
from jittor_self_blind_vsr.model import onednn_ops
from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
from parity_weights import seeded_state
net = PWC_Recons(n_feat=32, extra_RBS=1, recons_RBS=2, align_corners=True)
net.load_numpy_state_dict(seeded_state(sys.argv[1], 0))
with jt.no_grad():
    out, _ = net({'x': jt.array(np.load(sys.argv[2])['x']), 'mode': 'infer'})
np.save(sys.argv[3], out['recons'].numpy())
print('STATE', json.dumps({'precision': runtime.current_precision(), 'winograd': onednn_ops.winograd_in_use()}))
'''


def cpu_has_avx512_core():
    try:
        return AVX512_CORE <= set(Path('/proc/cpuinfo').read_text().split())
    except OSError:
        return False


def run_fast_child(tmp_path, isa=None):
    """(recons of the small configuration at --precision fast, oneDNN's convolution kernels,
    the child's state, its stderr), with DNNL_MAX_CPU_ISA=isa or unset."""
    env = child_env(isa, DNNL_VERBOSE='1')
    out_file = tmp_path / 'recons.npy'
    done = subprocess.run([sys.executable, '-c', _CHILD, str(parity_file('small_config_keys.tsv')),
                           str(parity_file('small_config.npz')), str(out_file)],
                          env=env, capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    kernels = {line.split(',')[4] for line in done.stdout.splitlines()
               if line.startswith('dnnl_verbose,exec,cpu,convolution')}
    state = json.loads(next(line for line in done.stdout.splitlines() if line.startswith('STATE '))[6:])
    return np.load(out_file), kernels, state, done.stderr


def errors(got, ref):
    err = np.abs(got.astype(np.float64) - ref)
    return err.max(), err.mean()


def test_exact_is_the_default():
    assert runtime.current_precision() == 'exact'
    assert not onednn_ops.winograd_in_use()
    assert runtime.precision_fallback(jt) == ''


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match='precision must be one of exact, fast'):
        runtime.import_jittor('cpu', 'half')


@pytest.mark.skipif(not cpu_has_avx512_core(), reason="oneDNN 2.2's Winograd kernel needs AVX-512")
def test_fast_runs_winograd_within_the_bound(tmp_path):
    recons, kernels, state, stderr = run_fast_child(tmp_path)
    assert state == {'precision': 'fast', 'winograd': True}
    assert 'jit_wino_4x3:avx512_core' in kernels, kernels
    assert 'not available' not in stderr
    ref = np.load(parity_file('small_config.npz'))['aligned/infer/recons']
    max_err, mean_err = errors(recons, ref)
    assert max_err <= FAST_MAX and mean_err <= FAST_MEAN, (max_err, mean_err)


def test_the_fall_back_is_said_once():
    """A command that starts Jittor again after parsing its options (sbvsr-train) says it once."""
    child = ("from jittor_self_blind_vsr import runtime\n"
             "runtime.import_jittor('cpu', 'fast')\nruntime.import_jittor('cpu', 'fast')\n")
    done = subprocess.run([sys.executable, '-c', child], env=child_env('AVX2'),
                          capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count('--precision fast is not available') == 1, done.stderr


def test_the_bound_rejects_bfloat16_weights():
    """The bound above is tight enough to catch a bfloat16-grade arithmetic."""
    net = PWC_Recons(n_feat=32, extra_RBS=1, recons_RBS=2, align_corners=True)
    state = seeded_state(parity_file('small_config_keys.tsv'), 0)
    for key, value in state.items():
        if not key.startswith(('flow_net', 'kernel_net')):
            state[key] = (value.view(np.uint32) + 0x8000 & 0xFFFF0000).view(np.float32)
    net.load_numpy_state_dict(state)
    fixture = np.load(parity_file('small_config.npz'))
    with jt.no_grad():
        out, _ = net({'x': jt.array(fixture['x']), 'mode': 'infer'})
    max_err, mean_err = errors(out['recons'].numpy(), fixture['aligned/infer/recons'])
    assert max_err > FAST_MAX or mean_err > FAST_MEAN


def test_fast_says_what_it_falls_back_to(tmp_path):
    """With oneDNN held to AVX2 (as on a CPU without AVX-512) fast names why it cannot run
    and computes with the exact convolutions."""
    recons, kernels, state, stderr = run_fast_child(tmp_path, 'AVX2')
    assert state == {'precision': 'fast', 'winograd': False}
    assert not any('wino' in k for k in kernels), kernels
    assert ('warning: --precision fast is not available: oneDNN\'s Winograd kernel needs AVX-512 '
            '(avx512_core), which DNNL_MAX_CPU_ISA=AVX2 excludes') in stderr
    assert 'running the exact convolutions' in stderr
    ref = np.load(parity_file('small_config.npz'))['aligned/infer/recons']
    max_err, mean_err = errors(recons, ref)
    assert max_err <= 1e-3 and mean_err <= 1e-4  # the parity tolerance


def test_tiling_budgets_for_the_winograd_buffers():
    """--max_memory under fast counts the Winograd kernel's buffers: 4.36 GiB measured
    untiled at LR 180x320 (published size), against 1.72 GiB exact."""
    from jittor_self_blind_vsr.infer import tiling
    size, geometry = (180, 320), dict(overlap=16, n_seq=5, n_feat=128, scale=4)
    fast = tiling.estimated_peak(size, 0, **geometry, precision='fast') / tiling.GIB
    exact = tiling.estimated_peak(size, 0, **geometry) / tiling.GIB
    assert abs(fast - 4.36) < 0.2 and exact < 2.0
    assert tiling.choose_tile(3, size, **geometry) == 0
    assert 0 < tiling.choose_tile(3, size, **geometry, precision='fast') < max(size)


def test_the_commands_take_the_option():
    from jittor_self_blind_vsr import inference, option
    assert inference.parse_args([]).precision == 'exact' and option.parse_args([]).precision == 'exact'
    assert inference.parse_args(['--precision', 'fast']).precision == 'fast'
    assert option.parse_args(['--precision', 'fast']).precision == 'fast'
    with pytest.raises(SystemExit):
        inference.parse_args(['--precision', 'bf16'])


def small_model():
    net = PWC_Recons(n_feat=32, extra_RBS=1, recons_RBS=2, align_corners=True)
    net.load_numpy_state_dict(seeded_state(parity_file('small_config_keys.tsv'), 0))
    return net


def test_fast_training_batches_the_window_and_computes_the_same(monkeypatch):
    """Training at fast stacks a window's frames (and PWC-Net's pairs) into one batch: the
    same reconstruction and parameter gradients as frame by frame and pair by pair, to
    float32 rounding; exact, and fast outside training, keep the frame-by-frame calls."""
    net = small_model()
    frames = [jt.array(np.random.default_rng(i).random((2, 3, 24, 32), dtype=np.float32)) for i in range(5)]
    net.train()
    ref = net.recons_from_features(frames, [net.frame_features(f) for f in frames])
    weight = jt.array(np.random.default_rng(9).standard_normal(tuple(ref.shape)).astype(np.float32))
    names, params = zip(*[(k, v) for k, v in net.named_parameters() if not k.startswith('kernel_net')])
    ref_grads = [g.numpy() for g in jt.grad((ref * weight).sum(), list(params))]
    ref = ref.numpy()
    calls = []
    batched = net._recons_forward_batched
    monkeypatch.setattr(net, '_recons_forward_batched', lambda f: calls.append(1))
    net.recons_forward(frames)
    assert calls == []  # exact
    monkeypatch.setattr(onednn_ops, 'winograd_in_use', lambda: True)  # fast, as far as the model asks
    net.recons_forward(frames)
    assert calls == [1]
    net.eval()
    with jt.no_grad():
        net.recons_forward(frames)
    assert calls == [1]

    net.train()
    decoded = []
    decode = net.flow_net.flow_from_features
    monkeypatch.setattr(net.flow_net, 'flow_from_features', lambda a, b: decoded.append(a.pyramid[0].shape[0])
                        or decode(a, b))
    got = batched(frames)
    assert decoded == [8]  # the four pairs of two clips in one call
    got_grads = jt.grad((got * weight).sum(), list(params))
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-5)
    for name, g, r in zip(names, got_grads, ref_grads):
        assert np.abs(r).max() > 0, name
        np.testing.assert_allclose(g.numpy(), r, rtol=1e-3, atol=1e-4 * np.abs(r).max(), err_msg=name)
    decoded.clear()
    net.eval()
    with jt.no_grad():
        net.window_flows([net.flow_net.features(f) for f in frames])
    assert decoded == [2, 2, 2, 2]  # inference: a pair at a time, as infer/tiling.py budgets


_TRANSFORM_CHILD = '''
import json, sys
import numpy as np
from jittor_self_blind_vsr import runtime
jt = runtime.import_jittor('cpu', 'fast')
from jittor_self_blind_vsr.model import onednn_ops
rng = np.random.default_rng(0)
errors = []
# oneDNN picks its F(4x4, 3x3) kernel for the first and last, its F(2x2, 3x3) for the second.
for n, c, size, out_c in [(2, 128, 24, 128), (1, 64, 32, 32), (4, 128, 16, 512)]:
    x = jt.array(rng.standard_normal((n, c, size, size)).astype(np.float32))
    for step in range(3):  # new weights each time, as after every optimizer step
        weight = jt.array((rng.standard_normal((out_c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32))
        bias = jt.array(rng.standard_normal(out_c).astype(np.float32))
        with jt.no_grad():
            got = onednn_ops.conv2d(x, weight, bias, 1, 1, 1).numpy()
        ref = jt.nn.conv2d(x, weight, bias, 1, 1).numpy()
        errors.append(float(np.abs(got - ref).max() / np.abs(ref).max()))
print('ERRORS', json.dumps(errors))
'''


@pytest.mark.skipif(not cpu_has_avx512_core(), reason="oneDNN 2.2's Winograd kernel needs AVX-512")
def test_fast_transforms_changing_weights_itself_as_onednn_would():
    """Weights that change (every optimizer step) are transformed to the Winograd domain by
    onednn_ops' own single pass, checked once per geometry against oneDNN's reorder: the
    convolution stays within Winograd's rounding of the direct one for every new weight, and
    oneDNN's slower reorder runs only for each geometry's check."""
    done = subprocess.run([sys.executable, '-c', _TRANSFORM_CHILD], env=child_env(DNNL_VERBOSE='1'), capture_output=True, text=True,
                          timeout=900, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    kernels = [line.split(',')[4] for line in lines if line.startswith('dnnl_verbose,exec,cpu,convolution')]
    assert {'jit_wino_4x3:avx512_core', 'jit_fp32_wino_2x3:avx512_core'} <= set(kernels), kernels
    assert sum(line.startswith('dnnl_verbose,exec,cpu,reorder,wino_reorder') for line in lines) == 3
    assert 'differs from oneDNN' not in done.stderr
    errors = json.loads(next(line for line in lines if line.startswith('ERRORS '))[7:])
    assert len(errors) == 9 and max(errors) < 1e-5, errors


def test_winograd_serves_the_geometries_it_is_faster_on():
    """Measured on the 2-core AVX-512 machine (onednn_ops._winograd_fits): 3x3, stride 1,
    undilated, at least 1024 output pixels, channel counts it pads by at most a third."""
    fits = onednn_ops._winograd_fits
    assert fits(128, 128, 3, 3, 1, 1, 2 * 40 * 40)  # the trunk in a training step
    assert fits(565, 128, 3, 3, 1, 1, 48 * 80)  # PWC-Net's decoder: pads 565 to 576
    assert fits(117, 128, 3, 3, 1, 1, 8 * 16 * 16)
    assert not fits(565, 2, 3, 3, 1, 1, 48 * 80)  # its flow output: 2 of 16 channels
    assert not fits(128, 3, 3, 3, 1, 1, 720 * 1280)  # the trunk's last convolution
    assert not fits(3, 16, 3, 3, 1, 1, 192 * 320)
    assert not fits(565, 128, 3, 3, 1, 1, 8 * 8 * 8)  # its weights cost more than it saves
    assert not fits(128, 128, 3, 3, 2, 1, 4096) and not fits(128, 128, 3, 3, 1, 2, 4096)
    assert not fits(128, 128, 1, 1, 1, 1, 4096)
