"""Importing the package: Jittor imported first works, the package's import changes nothing
in the process or on disk, and inference never imports torch. Each check runs in a fresh
process, since this one has long imported everything."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, parity_file
from jittor_self_blind_vsr import runtime
from parity_weights import seeded_state

# What runtime.import_jittor() adds to the environment; a child started from this process
# would inherit it and so be configured without going through the code under test.
RUNTIME_VARIABLES = ('nvcc_path', 'DNNL_MAX_CPU_ISA', 'FIX_TORCH_ERROR', 'use_nccl', 'use_cutt', 'use_cutlass')


def plain_env(**extra):
    """This process's environment without what the runtime set, the package importable from
    this checkout. nvcc_path='' stands for a machine without CUDA: this one has an nvcc but
    no GPU, and a plain `import jittor` that finds nvcc compiles Jittor's CUDA support and
    then cannot run it (choosing CUDA or not is the runtime's job, not checked here)."""
    env = {k: v for k, v in os.environ.items() if k not in RUNTIME_VARIABLES}
    env.update(PYTHONPATH=str(REPO), log_silent='1', nvcc_path='')
    env.update(extra)
    return env


def run_child(code, env, cwd, *args, timeout=900):
    """The JSON a child (`python -c code args`) prints on its last 'RESULT ' line."""
    proc = subprocess.run([sys.executable, '-c', code, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len('RESULT '):])


TORCH_INSTALLED = importlib.util.find_spec('torch') is not None
ENTRY_POINTS = ('main', 'inference', 'demo', 'convert_pytorch_to_jittor', 'script_gene_dataset_blurdown',
                'visualize_results')

_ENTRY_IMPORTS = r'''
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module('jittor_self_blind_vsr.' + name)
print('RESULT ' + json.dumps(sorted(m for m in ('jittor', 'torch') if m in sys.modules)))
'''


def test_command_modules_import_no_jittor(tmp_path):
    """A command configures Jittor (runtime.import_jittor) before anything imports it, so its
    module imports the modules that do inside functions."""
    assert run_child(_ENTRY_IMPORTS, plain_env(), tmp_path, *ENTRY_POINTS) == []


_JITTOR_FIRST = r'''
import json, sys
import jittor
from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
net = PWC_Recons(n_feat=8, extra_RBS=1, recons_RBS=1, flow_pretrain_fn='.')
from jittor_self_blind_vsr import runtime
print('RESULT ' + json.dumps({'same': runtime.import_jittor() is jittor, 'device': runtime.current_device(),
                              'params': len(net.state_dict()), 'torch': 'torch' in sys.modules}))
'''


def test_jittor_imported_first_then_the_model(tmp_path):
    """The user's own `import jittor` first: the model imports and builds, and the runtime
    takes that Jittor as it is (here on the CPU, as it was started)."""
    result = run_child(_JITTOR_FIRST, plain_env(), tmp_path)
    assert result['same'] and result['device'] == 'cpu' and result['params'] > 100
    # Jittor's own import loads torch when it can: what the runtime switches off below
    assert result['torch'] == TORCH_INSTALLED


_IMPORT_ALL = r"""
import importlib, json, os, pkgutil, sys
import jittor
import cv2  # OpenCV's own import adds its library folder to LD_LIBRARY_PATH

def tree(root, skip=()):  # {path: what lstat tells of it}, without the top-level folders in skip
    found = {}
    for folder, dirs, files in os.walk(root):
        if folder == root:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[path] = [st.st_mode, st.st_size, st.st_mtime_ns,
                           os.readlink(path) if os.path.islink(path) else None]
    return found

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGING = {'os.mkdir', 'os.symlink', 'os.link', 'os.rename', 'os.remove', 'os.rmdir', 'os.truncate',
            'os.chmod', 'os.chown', 'os.utime', 'shutil.rmtree', 'shutil.copyfile', 'shutil.move'}
writes = []

def audit(event, args):
    if event == 'open' and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and set(mode) & set('wax+')) or (mode is None and flags & WRITE_FLAGS):
            writes.append(f'open {args[0]} {mode or flags}')
    elif event in CHANGING:
        writes.append(f'{event} {args}')

home, jittor_cache = sys.argv[1], sys.argv[2]
JITTORS_OWN = [name for name in os.listdir(jittor_cache) if name.startswith('jt')]
env, files = dict(os.environ), {**tree(home), **tree(jittor_cache, JITTORS_OWN)}
sys.addaudithook(audit)
import jittor_self_blind_vsr
names = sorted(m.name for m in pkgutil.walk_packages(jittor_self_blind_vsr.__path__, 'jittor_self_blind_vsr.'))
for name in names:
    importlib.import_module(name)
recorded = list(writes)
after = {**tree(home), **tree(jittor_cache, JITTORS_OWN)}
print('RESULT ' + json.dumps({
    'modules': names,
    'env_changed': sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)),
    'files_changed': sorted(k for k in set(files) | set(after) if files.get(k) != after.get(k)),
    'writes': recorded,
}))
"""


def test_importing_every_module_changes_no_variable_and_no_file(tmp_path):
    """After `import jittor`, importing each module of the package (walk_packages) leaves
    os.environ as it was and writes no file.

    HOME is a new empty folder. Jittor's own home stays the real one (JITTOR_HOME): in a new
    one Jittor compiles its core again (minutes). There the package's own files (oneDNN
    links, CUDA records) and Jittor's config are compared; Jittor's compile folders (jt*/)
    are not, since any Jittor process on the machine may write there at any time. A Python
    audit hook records every file opened for writing or changed, anywhere, meanwhile.
    """
    home = tmp_path / 'home'
    home.mkdir()
    jittor_home = runtime.jittor_home()
    env = plain_env(HOME=str(home), JITTOR_HOME=str(jittor_home))
    result = run_child(_IMPORT_ALL, env, tmp_path, home, jittor_home / '.cache' / 'jittor')
    assert {'jittor_self_blind_vsr.model.pwc_recons', 'jittor_self_blind_vsr.trainer.trainer_flow_video',
            'jittor_self_blind_vsr.logger.logger', 'jittor_self_blind_vsr.main',
            'jittor_self_blind_vsr.inference'} <= set(result['modules'])
    assert result['env_changed'] == []
    assert result['files_changed'] == []
    assert result['writes'] == []


_INFER = r'''
import json, sys
from jittor_self_blind_vsr import inference
status = inference.main(sys.argv[1:])
print('RESULT ' + json.dumps({'status': status, 'jittor': 'jittor' in sys.modules, 'torch': 'torch' in sys.modules}))
'''


@pytest.mark.skipif(not TORCH_INSTALLED, reason='torch is not installed, so nothing could import it')
def test_inference_does_not_import_torch(tmp_path):
    """A real sbvsr-infer run (the small model on a 5-frame clip) in a process where torch is
    installed ends without torch loaded: the runtime turns Jittor's torch import off."""
    from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
    from jittor_self_blind_vsr.utils.image_io import write_image
    rng = np.random.default_rng(0)
    (tmp_path / 'LR' / 'clip').mkdir(parents=True)
    for i in range(5):
        write_image(tmp_path / 'LR' / 'clip' / f'{i:08d}.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    save_state_dict_file(seeded_state(parity_file('small_config_keys.tsv'), 0), tmp_path / 'small.pkl')
    env = {k: v for k, v in plain_env().items() if k != 'nvcc_path'}  # the entry point decides
    result = run_child(_INFER, env, tmp_path, '--model_path', tmp_path / 'small.pkl', '--input_path',
                       tmp_path / 'LR', '--result_path', tmp_path / 'out', '--dataset_name', 'tiny',
                       '--device', 'cpu')
    assert result == {'status': 0, 'jittor': True, 'torch': False}
    assert len(list((tmp_path / 'out' / 'tiny').rglob('*.png'))) == 1  # 5 frames, 1 window: its centre
