"""Pre-flight check of the NVIDIA stack, before Jittor's import decides it for good.

Jittor 1.3.11 takes the CUDA stack it finds (`nvcc` on the PATH or in /usr/local/cuda)
and then fails in ways a user cannot act on: a compiler error wall on CUDA 13, a fatal
`file cudnn.h not found` or a cuDNN 8 library name it cannot find on cuDNN 9, a
download of NCCL/cutt/cutlass that aborts offline. This module

* detects the stack (`detect`): driver, toolkits, cuDNN copies, what Jittor's own
  search (compile_extern.setup_cuda_lib) will find in each toolkit;
* decides (`plan`, a pure function of those facts and the user's environment) which
  toolkit Jittor gets and with which settings, or why CUDA cannot be used;
* checks the outcome (`self_test`): known answers of the ops the model uses, run on
  CUDA after Jittor has started there, in a child process (`probe`) so that a crash or
  a wrong answer still leaves the parent free to start Jittor on the CPU.
"""
import ctypes
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

# Jittor's CUDA libraries (compile_extern.setup_cuda_extern) and the ones it still needs
# with conv_opt=1, which drops cuDNN, cuFFT and cuSPARSE.
JITTOR_LIBS = ('cublas', 'cudnn', 'curand', 'cufft', 'cusparse')
JITTOR_LIBS_CONV_OPT = ('cublas', 'curand')
# Libraries Jittor opens by these exact names for cuDNN on CUDA >= 11: cuDNN 8's layout.
CUDNN8_PARTS = ('libcudnn_ops_infer.so', 'libcudnn_ops_train.so', 'libcudnn_cnn_infer.so',
                'libcudnn_cnn_train.so')
# Jittor builds NCCL, cutt and cutlass from a download when these are unset; each is
# left to Jittor only when the user sets its use_ switch or points Jittor at a copy.
EXTRAS = {'nccl': ('nccl_include_path', 'nccl_lib_path'),
          'cutt': ('cutt_include_path', 'cutt_lib_path', 'CUTT_PATH'),
          'cutlass': ('cutlass_include_path', 'CUTLASS_PATH')}
SUPPORTED = 'CUDA 11.x or 12.x with cuDNN 8'
# CUDA 13 removed cudaDeviceProp::computeMode and ::clockRate, which Jittor's
# extern/cuda/inc/helper_cuda.h reads. This header sits before Jittor's in the include
# path and maps them, only while Jittor's header is parsed: the compute mode reads as
# Default (Jittor only refuses Prohibited devices) and the clock rate, which only ranks
# GPUs by speed when Jittor picks one, as the SM count.
HELPER_CUDA_SHIM = '''\
#ifndef SBVSR_CUDA13_HELPER_CUDA_SHIM_H
#define SBVSR_CUDA13_HELPER_CUDA_SHIM_H
/* written by jittor_self_blind_vsr.cuda_stack: CUDA 13 removed these cudaDeviceProp fields */
#define computeMode major * 0 + cudaComputeModeDefault
#define clockRate multiProcessorCount
#include_next <helper_cuda.h>
#undef computeMode
#undef clockRate
#endif
'''
_ANSI = re.compile(r'\x1b\[[0-9;]*m')  # Jittor colours its log lines
PROBE_VERSION = 1  # bump when the probe or the plan changes, so cached refusals are retried


@dataclass(frozen=True)
class Toolkit:
    nvcc: str          # the path Jittor is given (nvcc_path)
    version: tuple     # (major, minor) from `nvcc --version`
    home: str          # the folder Jittor derives include/ and lib64/ from
    jtcuda: bool = False             # Jittor's own install under ~/.cache/jittor/jtcuda
    has_cudart: bool = True          # lib64/libcudart.so, which Jittor loads at import
    libs: frozenset = frozenset()    # JITTOR_LIBS whose header and library Jittor finds
    cudnn8: bool = False             # Jittor also finds cuDNN 8's part libraries

    @property
    def label(self):
        return f'CUDA {self.version[0]}.{self.version[1]} ({self.nvcc})'


@dataclass(frozen=True)
class Cudnn:
    major: int
    include: str
    lib: str


@dataclass(frozen=True)
class StackFacts:
    driver: tuple = None       # CUDA version the driver supports, None without a driver
    devices: int = 0
    toolkits: tuple = ()       # in the order of preference (see find_toolkits)
    cudnns: tuple = ()
    jtcuda_incomplete: str = ''  # a ~/.cache/jittor/jtcuda with no usable toolkit: Jittor would download


@dataclass
class Decision:
    device: str                # 'cuda' or 'cpu'
    env: dict = field(default_factory=dict)   # variables to set before Jittor's import
    reason: str = ''           # why CUDA is not used (one sentence), '' when it is
    quiet: bool = False        # no GPU at all: the CPU is the normal case, nothing to warn about
    toolkit: Toolkit = None
    notes: tuple = ()


def extras_env(environ):
    """use_nccl/use_cutt/use_cutlass=0 unless the user set the switch or gave the paths."""
    env = {}
    for name, paths in EXTRAS.items():
        switch = f'use_{name}'
        if switch not in environ and not any(environ.get(p) for p in paths):
            env[switch] = '0'
    return env


def _usable_cudnn_note(facts):
    found = sorted({(c.major, c.lib) for c in facts.cudnns})
    if not found:
        return 'no cuDNN was found'
    return 'cuDNN ' + ', '.join(f'{major} in {lib}' for major, lib in found)


def plan(facts, environ, shim_dir=''):
    """The decision for `facts` and the user's environment `environ` (never modified).

    CPU when there is no driver or GPU (quietly), or when no toolkit can work (with the
    reason); else the first usable toolkit in facts.toolkits, with cuDNN switched off
    (conv_opt=1) when Jittor cannot find a cuDNN 8 next to it, and the CUDA 13 header
    shim when it is CUDA 13 or newer. Values the user set are never replaced.
    """
    env = extras_env(environ)
    if facts.driver is None or facts.devices == 0:
        what = 'no NVIDIA driver answers' if facts.driver is None else 'the NVIDIA driver reports no GPU'
        return Decision('cpu', dict(env, nvcc_path=''), f'no CUDA GPU is usable on this machine ({what})',
                        quiet=True)
    driver = f'{facts.driver[0]}.{facts.driver[1]}'
    if environ.get('nvcc_path') == '':
        return Decision('cpu', env, 'nvcc_path is set empty, which turns CUDA off in Jittor', quiet=True)
    if facts.jtcuda_incomplete:
        return Decision('cpu', dict(env, nvcc_path=''),
                        f'Jittor\'s CUDA folder {facts.jtcuda_incomplete} holds no complete toolkit and Jittor '
                        'would download one; finish or remove that install')
    if not facts.toolkits:
        return Decision('cpu', dict(env, nvcc_path=''),
                        f'an NVIDIA GPU answers (driver for CUDA {driver}) but no CUDA toolkit (nvcc) was found; '
                        f'install {SUPPORTED} and put its nvcc on the PATH or in nvcc_path')
    refusals = []
    for toolkit in facts.toolkits:
        why = _toolkit_problem(toolkit, facts, environ)
        if why:
            refusals.append(why)
            continue
        return _cuda_decision(toolkit, facts, environ, env, shim_dir)
    return Decision('cpu', dict(env, nvcc_path=''),
                    f'no CUDA toolkit here can work with Jittor: {"; ".join(refusals)}; '
                    f'install {SUPPORTED} (driver for CUDA {driver})')


def _toolkit_problem(toolkit, facts, environ):
    if toolkit.version[0] > facts.driver[0]:
        return (f'{toolkit.label} is newer than the driver (CUDA {facts.driver[0]}.{facts.driver[1]})')
    if not toolkit.has_cudart:
        return f'{toolkit.label} has no lib64/libcudart.so beside its bin folder'
    needed = JITTOR_LIBS_CONV_OPT if _conv_opt(toolkit, environ) else JITTOR_LIBS
    missing = [name for name in needed if name not in toolkit.libs]
    if missing:
        return f'{toolkit.label} lacks {", ".join("lib" + m for m in missing)} where Jittor looks'
    return ''


def _conv_opt(toolkit, environ):
    """True when Jittor must run without cuDNN: the user said so, or no cuDNN 8 it can find."""
    if 'conv_opt' in environ:
        return environ['conv_opt'] not in ('', '0')
    return not (toolkit.cudnn8 and 'cudnn' in toolkit.libs)


def _cuda_decision(toolkit, facts, environ, env, shim_dir):
    notes = [f'Jittor uses {toolkit.label}']
    if 'nvcc_path' not in environ:
        env['nvcc_path'] = toolkit.nvcc
    own = [t for t in facts.toolkits if t.jtcuda]
    if own and 'JTCUDA_VERSION' not in environ:
        # With its own CUDA folder present, Jittor picks a toolkit there by the driver's
        # version whatever nvcc_path says, and downloads it when absent: name one it has.
        pick = toolkit if toolkit.jtcuda else own[0]
        env['JTCUDA_VERSION'] = f'{pick.version[0]}.{pick.version[1]}'
    if _conv_opt(toolkit, environ):
        if 'conv_opt' not in environ:
            env['conv_opt'] = '1'
        notes.append(f'convolutions without cuDNN (conv_opt=1): {_usable_cudnn_note(facts)}, '
                     'Jittor needs cuDNN 8 beside its toolkit')
    if toolkit.version[0] >= 13 and shim_dir:
        flags = environ.get('cc_flags', '')
        env['cc_flags'] = f'{flags} -I"{shim_dir}"'.strip()
        notes.append('CUDA 13 header shim for Jittor\'s helper_cuda.h')
    return Decision('cuda', env, toolkit=toolkit, notes=tuple(notes))


# ---------------------------------------------------------------- detection

def _multiarch():
    return f'{platform.machine()}-linux-gnu'


def detect_driver():
    """(CUDA version the driver supports as (major, minor), device count), or (None, 0)."""
    for name in ('libcuda.so.1', 'libcuda.so'):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return None, 0
    version, count = ctypes.c_int(0), ctypes.c_int(0)
    try:
        if lib.cuInit(0) != 0 or lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None, 0
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return (version.value // 1000, version.value % 1000 // 10), 0
    except AttributeError:
        return None, 0
    return (version.value // 1000, version.value % 1000 // 10), count.value


def nvcc_version(nvcc):
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+)\.(\d+)', out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _jittor_dirs(nvcc):
    """(home, header folders, library folders) as compile_extern.setup_cuda_lib searches them."""
    real = os.path.realpath(nvcc)
    home = os.path.dirname(os.path.dirname(real))
    arch = platform.machine()
    include = os.path.join(home, 'include')
    lib = '/usr/lib/x86_64-linux-gnu' if nvcc == '/usr/bin/nvcc' else os.path.join(home, 'lib64')
    headers = [include, os.path.join(home, 'targets', f'{arch}-linux', 'include'), '/usr/include']
    libs = [os.path.dirname(real), lib, os.path.join(home, 'targets', f'{arch}-linux', 'lib'),
            f'/usr/lib/{_multiarch()}', '/usr/lib']
    return home, headers, libs, lib


def _found(dirs, name, versions=()):
    for folder in dirs:
        for suffix in [''] + ['.' + v for v in versions]:
            if os.path.isfile(os.path.join(folder, name + suffix)):
                return True
    return False


def describe_toolkit(nvcc, jtcuda=False):
    version = nvcc_version(nvcc)
    if version is None:
        return None
    home, headers, libs, lib = _jittor_dirs(nvcc)
    cudnn_versions = ('8',) if version[0] == 11 else ()
    found = frozenset(name for name in JITTOR_LIBS
                      if _found(headers, f'{name}.h')
                      and _found(libs, f'lib{name}.so', cudnn_versions if name == 'cudnn' else ()))
    cudnn8 = 'cudnn' in found and all(_found(libs, part, cudnn_versions) for part in CUDNN8_PARTS)
    return Toolkit(nvcc=nvcc, version=version, home=home, jtcuda=jtcuda,
                   has_cudart=os.path.isfile(os.path.join(lib, 'libcudart.so')), libs=found, cudnn8=cudnn8)


def _version_key(path):
    match = re.search(r'cuda-?(\d+)\.(\d+)', path)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def candidate_nvccs(environ, jtcuda_root):
    """[(nvcc, is_jtcuda)]: the user's nvcc_path alone when set; else Jittor's own
    installs, versioned /usr/local/cuda-X.Y toolkits (CUDA 11-12 first, newest first),
    then the nvcc Jittor would find itself."""
    if environ.get('nvcc_path'):
        return [(environ['nvcc_path'], False)]
    found = [(path, True) for path in sorted(glob.glob(os.path.join(jtcuda_root, '*', 'bin', 'nvcc')),
                                             key=_version_key, reverse=True)]
    versioned = sorted(glob.glob('/usr/local/cuda-*/bin/nvcc'), key=_version_key, reverse=True)
    versioned.sort(key=lambda p: _version_key(p)[0] > 12)
    found += [(path, False) for path in versioned]
    on_path = shutil.which('nvcc', path=environ.get('PATH'))
    for path in [on_path, '/usr/local/cuda/bin/nvcc', '/usr/bin/nvcc', '/opt/cuda/bin/nvcc']:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            found.append((path, False))
    unique, seen = [], set()
    for path, jtcuda in found:
        if os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            unique.append((path, jtcuda))
    return unique


def _cudnn_major(include):
    for name in ('cudnn_version.h', 'cudnn.h'):
        try:
            text = open(os.path.join(include, name), encoding='utf-8', errors='replace').read()
        except OSError:
            continue
        match = re.search(r'#define\s+CUDNN_MAJOR\s+(\d+)', text)
        if match:
            return int(match.group(1))
    return None


def find_cudnns(toolkits):
    """Every cuDNN with a header and a library: toolkits, system (multiarch) folders and the
    nvidia-cudnn-cu* wheels of sys.path."""
    places = []
    for toolkit in toolkits:
        _, headers, libs, _ = _jittor_dirs(toolkit.nvcc)
        places += list(zip(headers[:2], libs[1:3]))
    places += [('/usr/include', f'/usr/lib/{_multiarch()}'), (f'/usr/include/{_multiarch()}', f'/usr/lib/{_multiarch()}'),
               ('/usr/include', '/usr/lib'), ('/usr/local/cuda/include', '/usr/local/cuda/lib64')]
    for entry in sys.path:
        wheel = os.path.join(entry or '.', 'nvidia', 'cudnn')
        places.append((os.path.join(wheel, 'include'), os.path.join(wheel, 'lib')))
    found = []
    for include, lib in places:
        major = _cudnn_major(include)
        if major and glob.glob(os.path.join(lib, f'libcudnn.so.{major}*')):
            item = Cudnn(major, os.path.realpath(include), os.path.realpath(lib))
            if item not in found:
                found.append(item)
    return tuple(found)


def detect(environ, jtcuda_root):
    driver, devices = detect_driver()
    if driver is None or devices == 0:
        return StackFacts(driver=driver, devices=devices)
    toolkits = tuple(t for t in (describe_toolkit(path, jtcuda) for path, jtcuda
                                 in candidate_nvccs(environ, jtcuda_root)) if t)
    incomplete = ''
    if os.path.isdir(jtcuda_root) and not any(t.jtcuda for t in toolkits) and not environ.get('JTCUDA_VERSION'):
        incomplete = jtcuda_root
    return StackFacts(driver=driver, devices=devices, toolkits=toolkits, cudnns=find_cudnns(toolkits),
                      jtcuda_incomplete=incomplete)


# ---------------------------------------------------------------- self-test

def _cuda_last_error():
    """The CUDA runtime's pending error as text ('' when none). Jittor never reads it after
    a kernel launch, so a launch that fails leaves its output unwritten and says nothing."""
    try:
        maps = open('/proc/self/maps').read()
    except OSError:
        return ''
    paths = sorted({line.split()[-1] for line in maps.splitlines() if 'libcudart.so' in line})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.cudaGetErrorString.restype = ctypes.c_char_p
            code = lib.cudaGetLastError()
        except (OSError, AttributeError):
            continue
        if code:
            return f'CUDA error {code}: {lib.cudaGetErrorString(code).decode()}'
    return ''


def _numpy_correlation(first, second, d=4):
    b, c, h, w = first.shape
    import numpy as np
    padded = np.pad(second, ((0, 0), (0, 0), (d, d), (d, d)))
    out = np.empty((b, (2 * d + 1) ** 2, h, w), first.dtype)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            shifted = padded[:, :, d + dy:d + dy + h, d + dx:d + dx + w]
            out[:, (dy + d) * (2 * d + 1) + dx + d] = (first * shifted).mean(axis=1)
    return out


def self_test(jt, cuda=True):
    """'' when Jittor's CUDA answers an elementwise op, a sum, a matmul, a convolution and
    the correlation op as NumPy does; else one sentence naming the first wrong one.
    cuda=False runs the same checks on Jittor's CPU ops (which proves the references)."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((33, 47)).astype(np.float32)
    m = rng.standard_normal((47, 19)).astype(np.float32)
    x = rng.standard_normal((1, 3, 9, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    f1 = rng.standard_normal((1, 8, 10, 12)).astype(np.float32)
    f2 = rng.standard_normal((1, 8, 10, 12)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))

    def correlation():
        from jittor_self_blind_vsr.model.correlation import correlation as corr
        return corr(jt.array(f1), jt.array(f2)).numpy()

    checks = [
        ('elementwise x*2+1', lambda: (jt.array(a) * 2 + 1).numpy(), a * 2 + 1),
        ('sum', lambda: jt.array(a).sum().numpy(), a.sum(dtype=np.float64)),
        ('matmul', lambda: jt.matmul(jt.array(a), jt.array(m)).numpy(), a @ m),
        ('conv2d', lambda: jt.nn.conv2d(jt.array(x), jt.array(w), padding=1).numpy(),
         np.einsum('bchwij,ocij->bohw', windows, w)),
        ('correlation', correlation, _numpy_correlation(f1, f2)),
    ]
    prev = jt.flags.use_cuda
    jt.flags.use_cuda = int(cuda)
    try:
        for name, run, expected in checks:
            try:
                got = np.asarray(run(), dtype=np.float64).reshape(np.shape(expected))
                jt.sync_all(True)
            except Exception as error:  # Jittor raises RuntimeError, but a broken stack anything
                text = _ANSI.sub('', str(error)).strip().splitlines() or [type(error).__name__]
                return f'the CUDA self-test failed at {name}: {text[-1][:200]}'
            error = np.abs(got - expected).max() if got.size else 0.0
            if not np.isfinite(error) or error > 1e-3 * (1 + np.abs(expected).max()):
                launch = _cuda_last_error()
                return (f'the CUDA self-test got a wrong {name} (max error {error:.3g})'
                        + (f', {launch}' if launch else ''))
    finally:
        jt.flags.use_cuda = prev
    return ''


# ---------------------------------------------------------------- probe

def probe_key(decision, jittor_version):
    """Identity of a CUDA attempt: toolkit, its settings, Jittor, the probe itself."""
    blob = json.dumps([PROBE_VERSION, jittor_version, decision.toolkit.nvcc, decision.toolkit.version,
                       sorted(decision.env.items())])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def probe(env, timeout=3600):
    """Start Jittor on CUDA in a child process with `env` and run the self-test there.
    Returns (failure, the child's output): failure is '' when it passed, else one
    sentence. The child may crash, hang in a download or print wrong numbers, and none of
    it reaches this process."""
    child = dict(os.environ, **env)
    try:
        proc = subprocess.run([sys.executable, '-m', 'jittor_self_blind_vsr.cuda_stack', '--probe'], env=child,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b'').decode(errors='replace') + (expired.stderr or b'').decode(errors='replace')
        return f'Jittor did not start on CUDA within {timeout} s', output
    output = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith('SBVSR_PROBE '):
            return json.loads(line[len('SBVSR_PROBE '):])['failure'], output
    lines = [_ANSI.sub('', line).strip() for line in (proc.stderr + proc.stdout).splitlines()]
    lines = [line for line in lines if line]
    detail = lines[-1][:300] if lines else f'exit status {proc.returncode}'
    return f'Jittor failed to start on CUDA ({detail})', output


def _probe_main():
    from jittor_self_blind_vsr import runtime
    try:
        import jittor  # configured by the parent's environment
        # for the record kept with a refusal (runtime._probe_once)
        archs = list(getattr(jittor.flags, 'cuda_archs', []))  # a flag of CUDA builds only
        print(f'nvcc_flags: {jittor.flags.nvcc_flags}\ncuda_archs: {archs}', flush=True)
        failure = self_test(runtime.start_jittor('cuda'))
    except Exception as error:
        text = _ANSI.sub('', str(error)).strip().splitlines()
        failure = f'Jittor failed to start on CUDA ({text[-1][:300] if text else type(error).__name__})'
    print('SBVSR_PROBE ' + json.dumps({'failure': failure}), flush=True)


if __name__ == '__main__' and sys.argv[1:] == ['--probe']:
    _probe_main()
