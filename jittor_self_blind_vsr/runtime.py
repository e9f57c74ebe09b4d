"""Make Jittor work on a fresh, offline machine.

Every entry point (the command lines, benchmarks, test scripts) calls `import_jittor()`
before anything imports Jittor, because the decisions below are taken by Jittor at import
time and cannot be undone later. Library modules import Jittor plainly and configure
nothing, so importing them changes no environment variable and writes no file.

* CUDA: Jittor compiles for CUDA as soon as it finds `nvcc`, takes whatever stack it
  finds and cannot go back to the CPU in the same process. The stack is checked first
  (cuda_stack.plan), Jittor is started on CUDA and checked against known answers in a
  child process (cuda_stack.probe), and only then in this one; otherwise it is kept
  off (`nvcc_path=""`), with one warning line when a GPU was there.
* NCCL, cutt, cutlass: Jittor downloads and builds them on a CUDA import unless told
  not to; they stay off unless the user asks for them (cuda_stack.extras_env).
* oneDNN: on first import Jittor downloads its CPU conv/matmul backend from its own
  server. The identical oneDNN 2.2 build ships on PyPI (`onednn-cpu-gomp`,
  `onednn-devel-cpu-gomp`); we link it where Jittor looks, so no download happens.
* oneDNN's convolution kernel: see ONEDNN_MAX_CPU_ISA.
* Jittor's log: every import prints Jittor's set-up as info lines (compiler paths,
  "Found nvcc", the cache folder) before a command's own lines; they are silenced
  (`log_silent=1`, which keeps Jittor's errors) unless the user set the variable or the
  command's `--verbose` asked for them (show_jittor_log). A first import that must
  compile Jittor's core says so in one line, since it then stays silent for minutes.
* torch: Jittor imports torch at its own import whenever torch is installed (to work
  around a clash of their libraries, `FIX_TORCH_ERROR` in jittor/compile_extern.py);
  nothing here uses torch, so that import is switched off (`FIX_TORCH_ERROR=0`, unless the
  user set the variable), which keeps inference and training free of torch.

Importing Jittor first is supported: `import_jittor()` then takes that Jittor as it is.
Its CUDA, oneDNN, ISA cap and torch import were fixed at its import by the user's own
environment, none of the above is applied, and only the device is chosen among what that
Jittor has ('auto' keeps its `jt.flags.use_cuda`), without a CUDA self-test; the compile
guard is installed as usual. A program that uses the library without calling
`import_jittor()` at all runs on whatever its Jittor import chose, without the compile
guard (see compile_guard.py).
"""
import atexit
import functools
import json
import os
import platform
import random
import sys
from importlib import metadata
from pathlib import Path

from jittor_self_blind_vsr import compile_guard, cuda_stack
from jittor_self_blind_vsr.utils.cli import UserError

DEVICES = ('auto', 'cpu', 'cuda')
PRECISIONS = ('exact', 'fast')
_ONEDNN_DIR = 'dnnl_lnx_2.2.0_cpu_gomp'
_ONEDNN_DISTS = ('onednn-cpu-gomp', 'onednn-devel-cpu-gomp')

_state = {'device': None, 'precision': 'exact', 'said': set()}

# On AVX-512 CPUs oneDNN 2.2 convolves with its brgconv kernel, which sums each output
# over all (kh, kw, input channel) terms in one float32 accumulator; PyTorch's CPU
# convolution (oneDNN's direct kernel) restarts it every 16 input channels. brgconv's
# rounding error is 2.3x PyTorch's per 128-channel conv, and the reconstruction trunk's
# 68 convs compound it: the full configuration then misses the parity fixture's mean bound
# (1.17e-4 against 1e-4; PyTorch itself, forced onto brgconv by channels_last tensors,
# gives 1.16e-4). Capping oneDNN at AVX512_MIC selects the direct kernel: 4.7e-5, as
# PyTorch. brgconv's training steps are ~4 % faster (inference is not, since the trunk
# runs on model/onednn_ops.py); DNNL_MAX_CPU_ISA=ALL set by the user wins (see
# docs/model.md). Nothing changes on CPUs without AVX-512 (whose AVX2 kernel rounds like
# brgconv). oneDNN reads the variable at its first primitive.
ONEDNN_MAX_CPU_ISA = 'AVX512_MIC'
# ISA caps under which oneDNN 2.2 may still choose brgconv on an AVX-512 core CPU.
_BRGCONV_ISAS = ('ALL', 'AVX512_CORE', 'AVX512_CORE_VNNI', 'AVX512_CORE_BF16', 'AVX512_CORE_AMX')
# --precision fast: the cap under which oneDNN 2.2 offers its Winograd F(4x4, 3x3) kernel
# (jit_wino_4x3, AVX-512 core) for the trunk's 3x3 convolutions, and brgconv for the rest.
# Its AVX512_MIC Winograd kernel is slower than the direct one (61 ms against 36 ms per
# 128->128 conv at 180x320), so the exact cap cannot serve it; the cap is read once per
# process, so the precision is chosen when Jittor starts (docs/model.md, "Precision").
FAST_MAX_CPU_ISA = 'ALL'


class DeviceError(UserError, RuntimeError):
    """The device asked for cannot be used; the message says why."""


def cuda_available():
    """True when a CUDA driver is loadable and reports at least one device."""
    driver, devices = cuda_stack.detect_driver()
    return driver is not None and devices > 0


def jittor_home():
    """The folder Jittor keeps `.cache/jittor` in (JITTOR_HOME, as jittor_utils reads it)."""
    home = os.environ.get('JITTOR_HOME')
    if home:
        return Path(home)
    config = Path.home() / '.cache' / 'jittor' / 'config.json'
    if config.is_file():
        import json
        try:
            home = json.loads(config.read_text()).get('JITTOR_HOME')
        except (ValueError, OSError):
            home = None
    return Path(home) if home else Path.home()


def _onednn_files():
    """Libraries and headers of the PyPI oneDNN wheels, or None when not installed."""
    found = {}
    for dist_name in _ONEDNN_DISTS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            return None
        for entry in dist.files or ():
            path = Path(os.path.abspath(dist.locate_file(entry)))
            if path.parent.name == 'lib' and path.name.startswith(('libmkldnn', 'libdnnl')):
                found[('lib', path.name)] = path
            elif 'include' in path.parts[:-1] and path.suffix in ('.h', '.hpp'):
                # keep sub-folders: dnnl.hpp includes "oneapi/dnnl/dnnl.hpp"
                inner = path.parts[len(path.parts) - path.parts[::-1].index('include'):]
                found[('include', '/'.join(inner))] = path
    if ('lib', 'libmkldnn.so') not in found or ('include', 'mkldnn.hpp') not in found:
        return None
    return found


def provision_onednn():
    """Link the PyPI oneDNN where Jittor looks for its download; return that folder.

    Returns None (Jittor then follows its own path) off x86-64 Linux or when the
    wheels are not installed. Links are refreshed on every call, so a deleted
    virtualenv never leaves Jittor with dangling links that would send it to the network.
    """
    if platform.system() != 'Linux' or platform.machine() != 'x86_64':
        return None
    files = _onednn_files()
    if files is None:
        return None
    target = jittor_home() / '.cache' / 'jittor' / 'mkl' / _ONEDNN_DIR
    for (sub, name), source in files.items():
        link = target / sub / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and Path(os.readlink(link)) == source:
            continue
        if link.exists() and not link.is_symlink():
            continue  # a real download by Jittor itself: leave it alone
        tmp = link.with_name(link.name + f'.tmp{os.getpid()}')
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(source)
        os.replace(tmp, link)
    return target


def sbvsr_cache():
    """This package's own folder in Jittor's cache (CUDA header shim, refused CUDA probes)."""
    return jittor_home() / '.cache' / 'jittor' / 'sbvsr'


def _write_shim():
    folder = sbvsr_cache() / 'cuda13_include'
    header = folder / 'helper_cuda.h'
    if not header.is_file() or header.read_text() != cuda_stack.HELPER_CUDA_SHIM:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = header.with_name(f'helper_cuda.h.tmp{os.getpid()}')
        tmp.write_text(cuda_stack.HELPER_CUDA_SHIM)
        os.replace(tmp, header)
    return folder


def _probe_once(decision):
    """cuda_stack.probe for this decision, remembering a refusal: a stack that failed stays
    on the CPU without paying another CUDA start (delete the sbvsr/cuda_probe folder of
    Jittor's cache to try again; the child's output is kept there beside the refusal). A
    success is never remembered: each process checks."""
    try:
        jittor_version = metadata.version('jittor')
    except metadata.PackageNotFoundError:
        jittor_version = ''
    record = sbvsr_cache() / 'cuda_probe' / f'{cuda_stack.probe_key(decision, jittor_version)}.json'
    try:
        return json.loads(record.read_text())['failure']
    except (OSError, ValueError, KeyError):
        pass
    failure, output = cuda_stack.probe(decision.env)
    if failure:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.with_suffix('.log').write_text(output)
        record.write_text(json.dumps({'failure': failure, 'toolkit': decision.toolkit.label, 'env': decision.env}))
    return failure


def choose_device(device, environ=None):
    """Decide CPU or CUDA for `device` before Jittor's import: (device, variables to set,
    the line to show or ''). The line is a warning when a GPU answers but CUDA cannot be
    used, and says which stack runs when CUDA is used. Raises DeviceError with the
    reason when 'cuda' cannot be had."""
    environ = os.environ if environ is None else environ
    extras = cuda_stack.extras_env(environ)
    if device == 'cpu':
        return 'cpu', dict(extras, nvcc_path=''), ''
    jtcuda_root = str(jittor_home() / '.cache' / 'jittor' / 'jtcuda')
    facts = cuda_stack.detect(environ, jtcuda_root)
    decision = cuda_stack.plan(facts, environ, shim_dir=str(sbvsr_cache() / 'cuda13_include'))
    if decision.device == 'cuda':
        if decision.toolkit.version[0] >= 13:
            _write_shim()
        failure = _probe_once(decision)
        if failure:
            decision = cuda_stack.Decision('cpu', dict(extras, nvcc_path=''),
                                           f'{failure} ({decision.toolkit.label})')
    if decision.device == 'cuda':
        return 'cuda', decision.env, 'CUDA: ' + '; '.join(decision.notes)
    if device == 'cuda':
        raise DeviceError(f'--device cuda was asked for, but {decision.reason}')
    env = dict(decision.env, nvcc_path='')
    warning = '' if decision.quiet else f'warning: CUDA is not usable, running on the CPU: {decision.reason}'
    return 'cpu', env, warning


def start_jittor(device):
    """Import Jittor (configured by the environment) and select `device`."""
    import jittor
    return _select(jittor, device)


def _select(jittor, device):
    if device == 'cuda' and not jittor.has_cuda:
        raise DeviceError('a CUDA GPU is present, but this Jittor process was started without CUDA')
    compile_guard.install(jittor)
    _close_compile_pool()
    jittor.flags.use_cuda = int(device == 'cuda')
    _state['device'] = device
    return jittor


def _close_compile_pool():
    """Close the process pool Jittor's import compiles its core and extensions with.

    Jittor keeps the pool (`jittor_utils.p`) for the life of the process and closes it from
    an atexit hook. Its idle workers wait on the pool's task queue, one of them holding the
    queue's lock; SIGTERM sent to every process of a command (`pkill -f`, `killall`, a job
    scheduler) kills that one with the lock held, and the hook then waits for ever. Nothing
    compiles through the pool after the import, so it is closed here, while every worker is
    alive; a later compile of several files would open a new one."""
    import jittor_utils
    cleanup = getattr(jittor_utils, 'pool_cleanup', None)  # as in Jittor 1.3.x
    if cleanup is None or getattr(jittor_utils, 'p', None) is None:
        return
    atexit.unregister(cleanup)
    cleanup()
    jittor_utils.pool_size = 0


def _adopt(jittor, device):
    """The device for a Jittor the user imported before the runtime, as that import configured it."""
    if device == 'cuda' and not jittor.has_cuda:
        raise DeviceError('--device cuda was asked for, but Jittor was imported before '
                           'jittor_self_blind_vsr.runtime and started without CUDA')
    if device == 'auto':
        device = 'cuda' if jittor.has_cuda and jittor.flags.use_cuda else 'cpu'
    return _select(jittor, device)


def import_jittor(device='auto', precision=None):
    """Configure CUDA, oneDNN and Jittor's torch import for `device` ('auto', 'cpu' or
    'cuda') and `precision` ('exact' or 'fast', see precision_fallback; None keeps the
    precision asked for before, at first 'exact'), import Jittor and return it.

    Called again, 'auto' keeps the device chosen first and 'cpu' switches CUDA off. With
    Jittor imported before the first call, that Jittor is taken as it was configured (see
    the module's docstring). 'auto' with an unusable CUDA stack runs on the CPU after one
    warning line on stderr (none when there is no GPU at all). Raises DeviceError with
    the reason when 'cuda' is asked for and cannot be used. 'fast' where it cannot run
    prints on stderr the one line precision_fallback gives, once per process.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if precision not in PRECISIONS + (None,):
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    jittor = _import_jittor(device, precision or _state['precision'])
    if precision is not None:
        _state['precision'] = precision
        line = precision_fallback(jittor)
        if line and line not in _state['said']:  # a command asks again after parsing its options
            _state['said'].add(line)
            _say(line)
    return jittor


def show_jittor_log():
    """Let Jittor's own info and warning lines through (the commands' --verbose); effective
    when called before Jittor is imported."""
    os.environ['log_silent'] = '0'


def _core_is_built():
    """Whether Jittor's core library is in its cache, i.e. importing Jittor compiles no core."""
    import jittor_utils  # finds the compiler and the cache folder; compiles nothing
    cache = Path(jittor_utils.cache_path)
    # with nvcc found, the core sits one level deeper, in a folder named after the CUDA key
    return any(cache.glob('jittor_core*')) or any(cache.glob('*/jittor_core*'))


def _say(line):
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ''
    program = program if program.startswith('sbvsr') else 'sbvsr'
    print(f'{program}: {line}', file=sys.stderr, flush=True)


def _import_jittor(device, precision):
    if _state['device'] is not None:
        if device == 'cuda' and _state['device'] != 'cuda':
            reason = 'no CUDA GPU is usable on this machine' if not cuda_available() else \
                'this Jittor process was already started on the CPU'
            raise DeviceError(f'--device cuda was asked for, but {reason}')
        import jittor
        if device == 'cpu':
            jittor.flags.use_cuda = 0
            _state['device'] = 'cpu'
        return jittor
    if 'jittor' in sys.modules:
        return _adopt(sys.modules['jittor'], device)
    os.environ.setdefault('DNNL_MAX_CPU_ISA', FAST_MAX_CPU_ISA if precision == 'fast' else ONEDNN_MAX_CPU_ISA)
    os.environ.setdefault('FIX_TORCH_ERROR', '0')
    os.environ.setdefault('log_silent', '1')
    provision_onednn()  # before the CUDA probe too: Jittor sets up oneDNN on every import
    chosen, env, line = choose_device(device)
    os.environ.update(env)
    if line:
        _say(line)
    if not _core_is_built():
        _say('compiling Jittor for this machine, once per installation: about 4 minutes on 2 cores')
    jittor = start_jittor(chosen)
    if chosen == 'cuda':
        failure = cuda_stack.self_test(jittor)
        if failure:  # the child passed the same test: the process itself differs
            jittor.flags.use_cuda = 0
            _state['device'] = 'cpu'
            raise DeviceError(f'CUDA passed its self-test in a child process but not here: {failure}; '
                               'run with --device cpu')
    return jittor


@functools.lru_cache(maxsize=None)
def onednn_uses_brgconv():
    """True when oneDNN may convolve with brgconv: an AVX-512 core CPU and an ISA cap
    (DNNL_MAX_CPU_ISA) that allows it. brgconv works on NHWC; the direct kernel on
    16-channel blocks, which it reorders to faster from NCHW. Read once, as oneDNN does."""
    if os.environ.get('DNNL_MAX_CPU_ISA', 'ALL').upper() not in _BRGCONV_ISAS:
        return False
    try:
        cpuinfo = Path('/proc/cpuinfo').read_text()
    except OSError:
        return False
    flags = set(cpuinfo.split())
    return {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'} <= flags


def onednn_dir():
    """(include, lib) folders of the oneDNN Jittor links its CPU ops against, or None.

    Found as Jittor finds it: the mkl_include_path / mkl_lib_path variables, else the
    `dnnl*` folder of its cache (where provision_onednn links the PyPI build)."""
    include, lib = os.environ.get('mkl_include_path'), os.environ.get('mkl_lib_path')
    if include and lib:
        return Path(include), Path(lib)
    cache = jittor_home() / '.cache' / 'jittor' / 'mkl'
    try:
        names = os.listdir(cache)
    except OSError:
        return None
    homes = [cache / name for name in names if name.startswith('dnnl') and (cache / name).is_dir()]
    if not homes:
        return None
    home = homes[-1]  # Jittor's own choice: the last one os.listdir names
    if not (home / 'include' / 'dnnl.hpp').is_file():
        return None
    return home / 'include', home / 'lib'


def current_precision():
    """The precision import_jittor() was last asked for ('exact' before any)."""
    return _state['precision']


def fast_kernels_usable(jittor):
    """True when oneDNN's AVX-512 Winograd kernel can serve --precision fast: Jittor on the
    CPU with oneDNN, an AVX-512 core CPU and an ISA cap that allows it (as for brgconv)."""
    return not jittor.flags.use_cuda and bool(jittor.compile_extern.use_mkl) and onednn_uses_brgconv()


def precision_fallback(jittor):
    """'' unless --precision fast was asked for and cannot run; then the sentence saying why
    and what runs instead (the exact arithmetic, to the last bit on CUDA and on CPUs without
    AVX-512; under a user's ISA cap with the convolution kernel that cap selects)."""
    if _state['precision'] != 'fast' or fast_kernels_usable(jittor):
        return ''
    if jittor.flags.use_cuda:
        why = 'it is a CPU mode (oneDNN\'s Winograd kernel) and this process runs on CUDA'
    elif not jittor.compile_extern.use_mkl:
        why = 'this Jittor runs its CPU convolutions without oneDNN'
    elif os.environ.get('DNNL_MAX_CPU_ISA', 'ALL').upper() not in _BRGCONV_ISAS:
        why = (f"oneDNN's Winograd kernel needs AVX-512 (avx512_core), which DNNL_MAX_CPU_ISA="
               f"{os.environ.get('DNNL_MAX_CPU_ISA')} excludes (fixed when Jittor started)")
    else:
        why = "oneDNN's Winograd kernel needs an AVX-512 CPU (avx512f, avx512bw, avx512vl, avx512dq)"
    return f'warning: --precision fast is not available: {why}; running the exact convolutions'


def current_device():
    """'cpu' or 'cuda' once import_jittor() has run, else None."""
    return _state['device']


def seed_everything(seed):
    """Seed Python's, NumPy's and Jittor's generators."""
    import jittor
    import numpy as np
    random.seed(seed)
    np.random.seed(seed)
    jittor.set_global_seed(seed)
