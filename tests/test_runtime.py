"""The runtime: oneDNN convolution in use, a fresh offline machine, device selection."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env
from jittor_self_blind_vsr import runtime

jt = runtime.import_jittor()

X86_LINUX = platform.system() == 'Linux' and platform.machine() == 'x86_64'
needs_x86_linux = pytest.mark.skipif(not X86_LINUX, reason='the PyPI oneDNN build exists for x86-64 Linux only')


def numpy_conv3x3(x, w):
    """Cross-correlation with zero padding 1, as conv2d computes it."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    return np.einsum('bchwij,ocij->bohw', windows, w)


def conv_inputs():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((1, 3, 8, 8)).astype(np.float32),
            rng.standard_normal((4, 3, 3, 3)).astype(np.float32))


def executed_ops(fn):
    """Run fn under Jittor's profiler; return its result and the names of the ops it executed."""
    # the profiler, not jt.log_capture_scope: that captures nothing in the process that built Jittor
    with jt.profile_scope() as report:
        result = fn()
    return result, [row[0].split('\u00ab', 1)[0] for row in report[1:] if int(row[2]) > 0]


@needs_x86_linux
def test_conv_runs_on_onednn():
    assert jt.compile_extern.mkl_ops is not None
    x, w = conv_inputs()
    y, ops = executed_ops(lambda: jt.nn.conv2d(jt.array(x), jt.array(w), padding=1).numpy())
    assert 'mkl_conv' in ops
    assert np.abs(y - numpy_conv3x3(x, w)).max() < 1e-4


@needs_x86_linux
def test_trunk_sized_conv_runs_on_onednn():
    # Jittor's fallback (reindex + reduce) needs well over a second for this conv on 2 cores, oneDNN
    # milliseconds; asserted on the op Jittor runs, not on the clock
    conv = jt.nn.Conv2d(128, 128, 3, padding=1)
    x = jt.random((1, 128, 64, 64))
    conv(x).sync()
    _, ops = executed_ops(lambda: conv(x).sync())
    assert ops.count('mkl_conv') == 1


_FRESH_CHILD = r'''
import json, socket
attempts = []
real_connect = socket.socket.connect

def refuse_connect(self, address, *args, **kwargs):
    if self.family == getattr(socket, 'AF_UNIX', None):
        return real_connect(self, address, *args, **kwargs)
    attempts.append('connect ' + repr(address))
    raise OSError('network blocked by the fresh-machine test')

def refuse_lookup(host, *args, **kwargs):
    attempts.append('getaddrinfo ' + repr(host))
    raise socket.gaierror('network blocked by the fresh-machine test')

socket.socket.connect = refuse_connect
socket.socket.connect_ex = refuse_connect
socket.getaddrinfo = refuse_lookup

import numpy as np
from jittor_self_blind_vsr.runtime import import_jittor
jt = import_jittor()
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
with jt.profile_scope() as report:
    y = jt.nn.conv2d(jt.array(x), jt.array(w), padding=1).numpy()
print('RESULT ' + json.dumps({
    'attempts': attempts,
    'mkl_ops': jt.compile_extern.mkl_ops is not None,
    'ops': [row[0].split('\u00ab', 1)[0] for row in report[1:] if int(row[2]) > 0],
    'cache_path': jt.flags.cache_path,
    'use_cuda': jt.flags.use_cuda,
    'y': y.tolist(),
}))
'''


@pytest.mark.slow
@needs_x86_linux
def test_fresh_machine_offline(tmp_path):
    """Empty HOME (so an empty ~/.cache/jittor), no network: Jittor builds itself and uses oneDNN."""
    home = tmp_path / 'home'
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != 'JITTOR_HOME'}
    env.update(HOME=str(home), log_silent='1')
    proc = subprocess.run([sys.executable, '-c', _FRESH_CHILD], env=env, cwd=home,
                          capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len('RESULT '):])
    assert result['attempts'] == []
    # a cold import says once why it is silent for minutes (a warm one does not: test_inference)
    assert proc.stderr.count('sbvsr: compiling Jittor for this machine, once per installation') == 1
    assert result['mkl_ops'] and 'mkl_conv' in result['ops']
    assert Path(result['cache_path']).is_relative_to(home)
    assert result['use_cuda'] == 0
    x, w = conv_inputs()
    assert np.abs(np.array(result['y']) - numpy_conv3x3(x, w)).max() < 1e-4


def _gpu_device_nodes():
    return any(Path('/dev').glob('nvidia[0-9]*'))


def test_no_cuda_without_a_gpu():
    if _gpu_device_nodes():
        pytest.skip('this machine has an NVIDIA device; the GPU-less behaviour is checked elsewhere')
    assert runtime.cuda_available() is False
    assert runtime.current_device() == 'cpu'
    assert jt.flags.use_cuda == 0
    assert os.environ['nvcc_path'] == ''
    assert jt.flags.nvcc_path == ''


def test_cuda_used_when_a_gpu_answers():
    if not runtime.cuda_available():
        pytest.skip('no usable CUDA GPU on this machine')
    assert runtime.current_device() == 'cuda'
    assert jt.flags.use_cuda == 1


def test_cuda_request_without_gpu_is_refused():
    if runtime.cuda_available():
        pytest.skip('a CUDA GPU is usable here, so --device cuda is valid')
    with pytest.raises(RuntimeError, match='no CUDA GPU is usable'):
        runtime.import_jittor('cuda')
    assert runtime.current_device() == 'cpu'


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        runtime.import_jittor('gpu')


def test_seed_everything_repeats_draws():
    def draws():
        return np.random.rand(3), jt.randn(3).numpy()

    runtime.seed_everything(123)
    first = draws()
    runtime.seed_everything(123)
    second = draws()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    runtime.seed_everything(124)
    assert not np.array_equal(first[1], draws()[1])


def test_auto_keeps_an_explicit_cpu_choice_on_a_gpu_machine(monkeypatch):
    # A later import_jittor() ('auto'), after an entry point chose --device cpu on a GPU
    # machine, must not switch to (or fail over) CUDA.
    monkeypatch.setattr(runtime, 'cuda_available', lambda: True)
    assert runtime.import_jittor('cpu') is jt
    assert runtime.import_jittor() is jt
    assert runtime.current_device() == 'cpu'
    assert jt.flags.use_cuda == 0


_KERNEL_CHILD = '''
from jittor_self_blind_vsr import runtime
jt = runtime.import_jittor('cpu')
jt.nn.Conv2d(128, 128, 3, padding=1)(jt.random((1, 128, 16, 16))).sync()
print('BRGCONV_ALLOWED', runtime.onednn_uses_brgconv())
'''


def conv_kernel_in_child(isa=None):
    """(oneDNN's implementation name for a 128->128 conv, runtime.onednn_uses_brgconv())
    in a child process, with DNNL_MAX_CPU_ISA=isa or unset."""
    env = child_env(isa, DNNL_VERBOSE='1')
    out = subprocess.run([sys.executable, '-c', _KERNEL_CHILD], env=env, capture_output=True,
                         text=True, timeout=600).stdout
    kernels = [line.split(',')[4] for line in out.splitlines()
               if line.startswith('dnnl_verbose,exec,cpu,convolution')]
    return kernels[0], 'BRGCONV_ALLOWED True' in out


@needs_x86_linux
def test_onednn_convolves_with_the_direct_kernel_unless_the_user_says_otherwise():
    """The default keeps PyTorch's accuracy (runtime.ONEDNN_MAX_CPU_ISA); a user's own
    DNNL_MAX_CPU_ISA wins, and the trunk's layout follows it."""
    kernel, brgconv_allowed = conv_kernel_in_child()
    assert 'brgconv' not in kernel and not brgconv_allowed
    cpu_flags = set(Path('/proc/cpuinfo').read_text().split())
    if not {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'} <= cpu_flags:
        pytest.skip('no AVX-512 core CPU: oneDNN has no brgconv here')
    assert kernel.startswith('jit:avx512')
    kernel, brgconv_allowed = conv_kernel_in_child('ALL')
    assert kernel.startswith('brgconv') and brgconv_allowed


def test_cpu_after_a_choice_switches_cuda_off(monkeypatch):
    monkeypatch.setitem(runtime._state, 'device', 'cuda')
    assert runtime.import_jittor('cpu') is jt
    assert runtime.current_device() == 'cpu' and jt.flags.use_cuda == 0


def test_a_jittor_imported_first_is_taken_as_it_is(monkeypatch):
    """As after the user's own `import jittor`: no variable set, the device Jittor has."""
    monkeypatch.setitem(runtime._state, 'device', None)
    monkeypatch.setattr(os, 'environ', dict(os.environ))
    for name in ('DNNL_MAX_CPU_ISA', 'FIX_TORCH_ERROR', 'nvcc_path'):
        os.environ.pop(name, None)
    before = dict(os.environ)
    assert runtime.import_jittor() is jt
    assert runtime.current_device() == ('cuda' if jt.flags.use_cuda else 'cpu')
    assert os.environ == before


def test_cuda_refused_for_a_jittor_imported_first_without_it(monkeypatch):
    if jt.has_cuda:
        pytest.skip('this Jittor was started with CUDA')
    monkeypatch.setitem(runtime._state, 'device', None)
    with pytest.raises(RuntimeError, match='Jittor was imported before jittor_self_blind_vsr.runtime and started '
                                           'without CUDA'):
        runtime.import_jittor('cuda')
