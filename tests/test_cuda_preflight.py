"""CUDA pre-flight, self-test and fall-back (runtime.choose_device, cuda_stack): every branch
with the stack detection and Jittor's CUDA start replaced, plus the real CLIs on this machine."""
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO
from jittor_self_blind_vsr import cuda_stack, runtime
from jittor_self_blind_vsr.cuda_stack import Cudnn, StackFacts, Toolkit

jt = runtime.import_jittor()

ALL_LIBS = frozenset(cuda_stack.JITTOR_LIBS)
CUDA12 = Toolkit('/opt/cuda-12.4/bin/nvcc', (12, 4), '/opt/cuda-12.4', libs=ALL_LIBS, cudnn8=True)
CUDA13 = Toolkit('/usr/local/cuda/bin/nvcc', (13, 0), '/usr/local/cuda',
                 libs=frozenset({'cublas', 'curand', 'cufft', 'cusparse'}))
CUDNN9_WHEEL = Cudnn(9, '/venv/site-packages/nvidia/cudnn/include', '/venv/site-packages/nvidia/cudnn/lib')


def facts(*toolkits, driver=(13, 0), devices=1, cudnns=(), **extra):
    return StackFacts(driver=driver, devices=devices, toolkits=toolkits, cudnns=cudnns, **extra)


# ---------------------------------------------------------------- plan: one case per branch

def test_no_driver_is_the_quiet_cpu_case():
    for no_gpu in (facts(CUDA12, driver=None, devices=0), facts(CUDA12, devices=0)):
        decision = cuda_stack.plan(no_gpu, {})
        assert decision.device == 'cpu' and decision.quiet
        assert decision.env['nvcc_path'] == ''
        assert 'no CUDA GPU is usable' in decision.reason


def test_driver_without_toolkit():
    decision = cuda_stack.plan(facts(), {})
    assert decision.device == 'cpu' and not decision.quiet
    assert 'no CUDA toolkit (nvcc) was found' in decision.reason and 'CUDA 13.0' in decision.reason
    assert 'CUDA 11.x or 12.x with cuDNN 8' in decision.reason


def test_supported_stack_uses_cudnn_and_nothing_is_downloaded():
    decision = cuda_stack.plan(facts(CUDA12), {})
    assert decision.device == 'cuda' and decision.toolkit == CUDA12
    assert decision.env == {'nvcc_path': CUDA12.nvcc, 'use_nccl': '0', 'use_cutt': '0', 'use_cutlass': '0'}


def test_cuda13_gets_the_header_shim_after_the_users_flags():
    decision = cuda_stack.plan(facts(CUDA13), {}, shim_dir='/cache/shim')
    assert decision.device == 'cuda'
    assert decision.env['cc_flags'] == '-I"/cache/shim"'
    decision = cuda_stack.plan(facts(CUDA13), {'cc_flags': '-DMINE'}, shim_dir='/cache/shim')
    assert decision.env['cc_flags'] == '-DMINE -I"/cache/shim"'
    assert 'cc_flags' not in cuda_stack.plan(facts(CUDA12), {}, shim_dir='/cache/shim').env


def test_cudnn9_only_turns_cudnn_off():
    decision = cuda_stack.plan(facts(CUDA13, cudnns=(CUDNN9_WHEEL,)), {})
    assert decision.device == 'cuda' and decision.env['conv_opt'] == '1'
    assert any('cuDNN 9 in /venv/site-packages/nvidia/cudnn/lib' in note for note in decision.notes)


def test_cudnn_not_found_turns_cudnn_off():
    decision = cuda_stack.plan(facts(CUDA13), {})
    assert decision.env['conv_opt'] == '1'
    assert any('no cuDNN was found' in note for note in decision.notes)


def test_users_conv_opt_is_kept_and_can_make_the_stack_unusable():
    assert 'conv_opt' not in cuda_stack.plan(facts(CUDA12), {'conv_opt': '1'}).env
    decision = cuda_stack.plan(facts(CUDA13), {'conv_opt': '0'})
    assert decision.device == 'cpu' and 'lacks libcudnn' in decision.reason


def test_toolkit_without_cublas_is_refused_with_the_reason():
    bare = Toolkit('/usr/local/cuda-13.0/bin/nvcc', (13, 0), '/usr/local/cuda-13.0')
    decision = cuda_stack.plan(facts(bare), {})
    assert decision.device == 'cpu'
    assert 'lacks libcublas, libcurand where Jittor looks' in decision.reason


def test_toolkit_newer_than_the_driver_is_skipped_for_the_next():
    decision = cuda_stack.plan(facts(CUDA13, CUDA12, driver=(12, 8)), {})
    assert decision.toolkit == CUDA12
    decision = cuda_stack.plan(facts(CUDA13, driver=(12, 8)), {})
    assert decision.device == 'cpu' and 'newer than the driver (CUDA 12.8)' in decision.reason


def test_wrapper_nvcc_without_cudart_is_refused():
    wrapper = Toolkit('/usr/local/bin/nvcc', (13, 0), '/usr/local', has_cudart=False, libs=ALL_LIBS)
    decision = cuda_stack.plan(facts(wrapper), {})
    assert decision.device == 'cpu' and 'no lib64/libcudart.so' in decision.reason


def test_users_nvcc_path_is_not_replaced():
    assert 'nvcc_path' not in cuda_stack.plan(facts(CUDA12), {'nvcc_path': CUDA12.nvcc}).env
    decision = cuda_stack.plan(facts(CUDA12), {'nvcc_path': ''})
    assert decision.device == 'cpu' and decision.quiet and 'nvcc_path is set empty' in decision.reason


def test_jittors_own_toolkit_is_named_so_it_is_not_downloaded():
    own = Toolkit('/home/u/.cache/jittor/jtcuda/cuda12.2_cudnn8_linux/bin/nvcc', (12, 2),
                  '/home/u/.cache/jittor/jtcuda/cuda12.2_cudnn8_linux', jtcuda=True, libs=ALL_LIBS, cudnn8=True)
    assert cuda_stack.plan(facts(own), {}).env['JTCUDA_VERSION'] == '12.2'
    assert cuda_stack.plan(facts(CUDA13, own, driver=(13, 0)), {}).env['JTCUDA_VERSION'] == '12.2'
    decision = cuda_stack.plan(facts(CUDA12, jtcuda_incomplete='/home/u/.cache/jittor/jtcuda'), {})
    assert decision.device == 'cpu' and 'would download one' in decision.reason


@pytest.mark.parametrize('name', ['nccl', 'cutt', 'cutlass'])
def test_nccl_cutt_cutlass_off_unless_the_user_asks(name):
    assert cuda_stack.extras_env({})[f'use_{name}'] == '0'
    assert f'use_{name}' not in cuda_stack.extras_env({f'use_{name}': '1'})
    paths = {p: '/opt/x' for p in cuda_stack.EXTRAS[name]}
    assert f'use_{name}' not in cuda_stack.extras_env(paths)
    for decision in (cuda_stack.plan(facts(CUDA12), {}), cuda_stack.plan(facts(), {}),
                     cuda_stack.plan(facts(driver=None, devices=0), {})):
        assert decision.env[f'use_{name}'] == '0'


# ---------------------------------------------------------------- detection on fake trees

def fake_toolkit(root, version, libs=(), cudnn8=False):
    """root/bin/nvcc answering `--version` like nvcc; include/ and lib64/ with the named libs."""
    (root / 'bin').mkdir(parents=True)
    nvcc = root / 'bin' / 'nvcc'
    nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {version}, V{version}.1"\n')
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    (root / 'include').mkdir()
    (root / 'lib64').mkdir()
    (root / 'lib64' / 'libcudart.so').touch()
    for name in libs:
        (root / 'include' / f'{name}.h').touch()
        (root / 'lib64' / f'lib{name}.so').touch()
    if cudnn8:
        (root / 'include' / 'cudnn_version.h').write_text('#define CUDNN_MAJOR 8\n')
        (root / 'lib64' / 'libcudnn.so.8').touch()
        for part in cuda_stack.CUDNN8_PARTS:
            (root / 'lib64' / part).touch()
    return str(nvcc)


def test_describe_toolkit_finds_what_jittor_finds(tmp_path):
    full = cuda_stack.describe_toolkit(fake_toolkit(tmp_path / 'a', '12.4', cuda_stack.JITTOR_LIBS, cudnn8=True))
    assert full.version == (12, 4) and full.libs == ALL_LIBS and full.cudnn8 and full.has_cudart
    bare = cuda_stack.describe_toolkit(fake_toolkit(tmp_path / 'b', '13.0', ['cublas']))
    assert bare.version == (13, 0) and bare.libs == {'cublas'} and not bare.cudnn8


def test_cudnn9_wheel_and_multiarch_are_found(tmp_path, monkeypatch):
    wheel = tmp_path / 'site' / 'nvidia' / 'cudnn'
    (wheel / 'include').mkdir(parents=True)
    (wheel / 'lib').mkdir()
    (wheel / 'include' / 'cudnn_version.h').write_text('#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 19\n')
    (wheel / 'lib' / 'libcudnn.so.9').touch()
    monkeypatch.setattr(sys, 'path', [str(tmp_path / 'site')])
    found = cuda_stack.find_cudnns(())
    assert Cudnn(9, str(wheel / 'include'), str(wheel / 'lib')) in found


def test_candidates_prefer_cuda12_over_13_and_keep_the_users_nvcc(tmp_path, monkeypatch):
    nvcc = fake_toolkit(tmp_path / 'mine', '12.1')
    assert cuda_stack.candidate_nvccs({'nvcc_path': nvcc}, str(tmp_path / 'jtcuda')) == [(nvcc, False)]
    own = fake_toolkit(tmp_path / 'jtcuda' / 'cuda12.2_cudnn8_linux', '12.2')
    monkeypatch.setattr(cuda_stack.glob, 'glob', lambda pattern: (
        [own] if 'jtcuda' in pattern else ['/usr/local/cuda-13.0/bin/nvcc', '/usr/local/cuda-12.6/bin/nvcc']))
    names = [path for path, _ in cuda_stack.candidate_nvccs({'PATH': ''}, str(tmp_path / 'jtcuda'))]
    assert names[:3] == [own, '/usr/local/cuda-12.6/bin/nvcc', '/usr/local/cuda-13.0/bin/nvcc']


# ---------------------------------------------------------------- self-test

def test_self_test_answers_match_on_the_cpu():
    # the references are right: on Jittor's CPU ops every check passes ...
    assert cuda_stack.self_test(jt, cuda=False) == ''


def test_self_test_names_a_wrong_answer(monkeypatch):
    # ... and a wrong result (here the matmul of a kernel that did not run) is caught
    monkeypatch.setattr(jt, 'matmul', lambda a, b: jt.zeros((a.shape[0], b.shape[1])))
    assert cuda_stack.self_test(jt, cuda=False).startswith('the CUDA self-test got a wrong matmul')


def test_self_test_reports_an_op_that_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('Wrong inputs\n\x1b[38;5;1mcudaErrorNoKernelImageForDevice\x1b[m')  # Jittor's colours
    monkeypatch.setattr(jt.nn, 'conv2d', broken)
    assert cuda_stack.self_test(jt, cuda=False) == \
        'the CUDA self-test failed at conv2d: cudaErrorNoKernelImageForDevice'


# ---------------------------------------------------------------- probe and fall-back

def test_probe_reports_a_crashing_jittor_start(monkeypatch):
    crashed = subprocess.CompletedProcess([], -6, stdout='', stderr='Compiling...\nterminate called without an '
                                                                   'active exception\n')
    monkeypatch.setattr(cuda_stack.subprocess, 'run', lambda *a, **k: crashed)
    assert cuda_stack.probe({}) == ('Jittor failed to start on CUDA (terminate called without an active exception)',
                                    crashed.stderr)
    answered = subprocess.CompletedProcess([], 0, stdout='SBVSR_PROBE {"failure": "wrong sum"}\n', stderr='')
    monkeypatch.setattr(cuda_stack.subprocess, 'run', lambda *a, **k: answered)
    assert cuda_stack.probe({})[0] == 'wrong sum'


def test_probe_child_reports_a_jittor_without_cuda(monkeypatch):
    """The real child process: here Jittor can only start on the CPU, which the probe refuses."""
    monkeypatch.setenv('PYTHONPATH', str(REPO))
    failure, output = cuda_stack.probe({'nvcc_path': '', 'log_silent': '1'})
    assert failure == ('Jittor failed to start on CUDA (a CUDA GPU is present, but this Jittor process was '
                       'started without CUDA)')
    assert 'nvcc_flags: ' in output and 'SBVSR_PROBE' in output


@pytest.fixture
def gpu_machine(monkeypatch, tmp_path):
    """A machine whose driver answers, with `stack` as detected and `probe` as the CUDA start."""
    monkeypatch.setattr(runtime, 'jittor_home', lambda: tmp_path)
    calls = []
    machine = {'facts': facts(CUDA12), 'failure': ''}
    monkeypatch.setattr(cuda_stack, 'detect', lambda environ, root: machine['facts'])

    def probe(env):
        calls.append(env)
        return machine['failure'], 'output of the CUDA start'
    monkeypatch.setattr(cuda_stack, 'probe', probe)
    machine['calls'] = calls
    return machine


def test_auto_uses_cuda_that_passes_the_probe(gpu_machine):
    device, env, line = runtime.choose_device('auto', {})
    assert (device, line) == ('cuda', f'CUDA: Jittor uses {CUDA12.label}') and env['nvcc_path'] == CUDA12.nvcc
    assert gpu_machine['calls'] == [env]
    runtime.choose_device('auto', {})
    assert len(gpu_machine['calls']) == 2  # a success is checked again by every process


def test_failed_self_test_means_cpu_for_auto_and_an_error_for_cuda(gpu_machine, tmp_path):
    gpu_machine['failure'] = 'the CUDA self-test got a wrong sum (max error 12)'
    device, env, warning = runtime.choose_device('auto', {})
    assert device == 'cpu' and env['nvcc_path'] == '' and env['use_nccl'] == '0'
    assert warning == ('warning: CUDA is not usable, running on the CPU: the CUDA self-test got a wrong sum '
                       f'(max error 12) ({CUDA12.label})')
    with pytest.raises(RuntimeError) as error:
        runtime.choose_device('cuda', {})
    assert str(error.value) == ('--device cuda was asked for, but the CUDA self-test got a wrong sum '
                                f'(max error 12) ({CUDA12.label})')
    assert len(gpu_machine['calls']) == 1  # the refusal is remembered for this stack, with the child's output
    logs = list((tmp_path / '.cache' / 'jittor' / 'sbvsr' / 'cuda_probe').glob('*.log'))
    assert [log.read_text() for log in logs] == ['output of the CUDA start']


def test_failed_preflight_means_cpu_for_auto_and_an_error_for_cuda(gpu_machine):
    gpu_machine['facts'] = facts()
    device, _, warning = runtime.choose_device('auto', {})
    assert device == 'cpu' and 'no CUDA toolkit (nvcc) was found' in warning
    with pytest.raises(RuntimeError, match='--device cuda was asked for, but an NVIDIA GPU answers'):
        runtime.choose_device('cuda', {})
    assert gpu_machine['calls'] == []


def test_no_gpu_is_quiet_for_auto(gpu_machine):
    gpu_machine['facts'] = facts(driver=None, devices=0)
    assert runtime.choose_device('auto', {})[::2] == ('cpu', '')
    with pytest.raises(RuntimeError, match='no CUDA GPU is usable on this machine'):
        runtime.choose_device('cuda', {})


def test_cpu_asks_nothing_of_the_stack(gpu_machine):
    gpu_machine['facts'] = None
    assert runtime.choose_device('cpu', {'use_nccl': '1'}) == ('cpu', {'nvcc_path': '', 'use_cutt': '0',
                                                                       'use_cutlass': '0'}, '')


def test_cuda13_shim_is_written_and_compiles_jittors_header(gpu_machine, tmp_path):
    gpu_machine['facts'] = facts(CUDA13)
    device, env, line = runtime.choose_device('auto', {})
    shim = tmp_path / '.cache' / 'jittor' / 'sbvsr' / 'cuda13_include'
    assert device == 'cuda' and env['cc_flags'] == f'-I"{shim}"' and env['conv_opt'] == '1'
    assert line == (f'CUDA: Jittor uses {CUDA13.label}; convolutions without cuDNN (conv_opt=1): no cuDNN was '
                    'found, Jittor needs cuDNN 8 beside its toolkit; CUDA 13 header shim for Jittor\'s helper_cuda.h')
    assert (shim / 'helper_cuda.h').read_text() == cuda_stack.HELPER_CUDA_SHIM
    nvcc = '/usr/local/cuda-13.0/bin/nvcc'
    if not os.path.isfile(nvcc):
        pytest.skip('no CUDA 13 nvcc here to compile Jittor\'s helper_cuda.h with')
    source = tmp_path / 'uses_helper.cc'
    source.write_text('#include <cuda_runtime.h>\n#include "helper_cuda.h"\n'
                      'int main() { return gpuGetMaxGflopsDeviceId() + gpuDeviceInit(0); }\n')
    jittor = os.path.dirname(jt.__file__)
    command = [nvcc, '-x', 'cu', '-std=c++14', '-DIS_CUDA', '-DHAS_CUDA', '-c', str(source), '-o',
               str(tmp_path / 'out.o'), f'-I{jittor}/src', f'-I{jittor}/extern/cuda/inc']
    plain = subprocess.run(command, capture_output=True, text=True)
    assert plain.returncode != 0 and 'has no member "computeMode"' in plain.stdout + plain.stderr
    shimmed = subprocess.run(command[:1] + [f'-I{shim}'] + command[1:], capture_output=True, text=True)
    assert shimmed.returncode == 0, shimmed.stdout + shimmed.stderr


@pytest.fixture
def fresh_process(monkeypatch):
    """import_jittor as in a process that has not started Jittor yet; the start itself
    hands back this test process's (CPU) Jittor and records the device it was asked for."""
    monkeypatch.setitem(runtime._state, 'device', None)
    monkeypatch.delitem(sys.modules, 'jittor')
    monkeypatch.setattr(os, 'environ', dict(os.environ))
    started = []

    def start(device):
        started.append(device)
        sys.modules['jittor'] = jt
        runtime._state['device'] = device
        return jt
    monkeypatch.setattr(runtime, 'start_jittor', start)
    yield started
    sys.modules['jittor'] = jt


def test_import_jittor_prints_one_warning_line_then_runs_on_the_cpu(fresh_process, monkeypatch, capsys):
    monkeypatch.setattr(runtime, 'choose_device',
                        lambda device: ('cpu', {'nvcc_path': ''}, 'warning: CUDA is not usable'))
    monkeypatch.setattr(sys, 'argv', ['/venv/bin/sbvsr-infer'])
    assert runtime.import_jittor('auto') is jt
    assert runtime.import_jittor() is jt  # a second call adds nothing
    assert capsys.readouterr().err == 'sbvsr-infer: warning: CUDA is not usable\n'
    assert fresh_process == ['cpu'] and os.environ['nvcc_path'] == ''


def test_a_self_test_failure_in_this_process_is_never_used(fresh_process, monkeypatch):
    monkeypatch.setattr(runtime, 'choose_device', lambda device: ('cuda', {}, ''))
    monkeypatch.setattr(cuda_stack, 'self_test', lambda jittor: 'the CUDA self-test got a wrong sum')
    with pytest.raises(RuntimeError, match='but not here: the CUDA self-test got a wrong sum; run with --device cpu'):
        runtime.import_jittor('auto')
    assert runtime.current_device() == 'cpu' and jt.flags.use_cuda == 0


# ---------------------------------------------------------------- the real CLIs on this machine

_CLI_CHILD = r'''
import json, socket, sys
attempts = []
def refuse(self, address, *args, **kwargs):
    attempts.append(repr(address))
    raise OSError('network blocked by the test')
socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = lambda host, *a, **k: attempts.append(repr(host)) or (_ for _ in ()).throw(socket.gaierror())
from jittor_self_blind_vsr import cuda_stack, demo, runtime
if sys.argv[1] == 'driver':  # what a GPU machine's driver would answer; the toolkits are this machine's
    cuda_stack.detect_driver = lambda: ((13, 0), 1)
sys.argv[0] = 'sbvsr-demo'
status = demo.main(['--output', sys.argv[2], '--epochs', '1', '--iters_per_epoch', '1', '--frames', '5',
                    '--size', '64'])
import jittor
print('RESULT ' + json.dumps({'status': status, 'attempts': attempts, 'device': runtime.current_device(),
                              'use_cuda': jittor.flags.use_cuda}))
'''


@pytest.mark.slow
@pytest.mark.parametrize('machine', ['here', 'driver'])
def test_demo_train_and_infer_with_auto_run_on_the_cpu(machine, tmp_path):
    """sbvsr-demo (which runs sbvsr-train's and sbvsr-infer's main) with the default --device
    auto: on this machine (no driver) without a word; with a driver answering but this
    machine's CUDA 13 toolkit (no cuBLAS, cuDNN) after exactly one warning line. No network."""
    if cuda_stack.detect_driver()[1]:
        pytest.skip('a GPU answers here: this checks the GPU-less and unusable-stack paths')
    # without what this test process's own runtime set (nvcc_path='' among it)
    env = {k: v for k, v in os.environ.items() if k not in ('nvcc_path', 'use_nccl', 'use_cutt', 'use_cutlass')}
    env.update(log_silent='1', PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, '-c', _CLI_CHILD, machine, str(tmp_path / 'demo')], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len('RESULT '):])
    assert result == {'status': 0, 'attempts': [], 'device': 'cpu', 'use_cuda': 0}
    warnings = [line for line in proc.stderr.splitlines() if 'warning' in line.lower()]
    if machine == 'here':
        assert warnings == []
    else:
        assert len(warnings) == 1, proc.stderr
        assert warnings[0].startswith('sbvsr-demo: warning: CUDA is not usable, running on the CPU: ')
        if os.path.isfile('/usr/local/cuda-13.0/bin/nvcc'):
            assert 'CUDA 13.0 (/usr/local/cuda-13.0/bin/nvcc) lacks libcublas' in warnings[0]


@pytest.mark.parametrize('command', [['jittor_self_blind_vsr.main', '--template', 'Self_Blind_VSR_CPU'],
                                     ['jittor_self_blind_vsr.demo', '--epochs', '1']])
def test_device_cuda_without_usable_cuda_is_one_sentence_and_non_zero(command, tmp_path):
    if cuda_stack.detect_driver()[1]:
        pytest.skip('a GPU answers here')
    env = {k: v for k, v in os.environ.items() if k != 'nvcc_path'}
    env['PYTHONPATH'] = str(REPO)
    proc = subprocess.run([sys.executable, '-m', *command, '--device', 'cuda'], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    name = {'jittor_self_blind_vsr.main': 'sbvsr-train', 'jittor_self_blind_vsr.demo': 'sbvsr-demo'}[command[0]]
    assert proc.returncode != 0
    assert proc.stderr == (f'{name}: --device cuda was asked for, but no CUDA GPU is usable on this machine '
                           '(no NVIDIA driver answers)\n')
    assert list(tmp_path.iterdir()) == []
