"""The package as a user gets it: a wheel built from this checkout, installed (not editable)
into a fresh virtualenv, its console scripts run from an unrelated folder.

The fresh virtualenv sees the dependencies already installed for the tests (one `.pth` line
naming their site-packages, which also keeps pip offline), but not this checkout: the
package must come from the wheel, templates included.
"""
import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from hr_clips import make_hr_clips

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = ('Self_Blind_VSR_CPU', 'Self_Blind_VSR_Gaussian', 'Self_Blind_VSR_Realistic')


def run(command, cwd, timeout):
    """Run `command` without this checkout on PYTHONPATH; fail the test with its output unless it succeeds."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f'{command} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
    assert 'Traceback' not in done.stderr, done.stderr[-3000:]
    return done.stdout


def dependency_dirs():
    """The site-packages of the environment running the tests."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths['purelib'], paths['platlib'], *site.getsitepackages()]))


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(bin folder, site-packages) of a fresh virtualenv holding the wheel."""
    root = tmp_path_factory.mktemp('wheel')
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-q',
         '--wheel-dir', root / 'dist', REPO], root, 300)
    wheel, = (root / 'dist').glob('jittor_self_blind_vsr-*.whl')
    venv = root / 'venv'
    run([sys.executable, '-m', 'venv', '--without-pip', venv], root, 120)
    bin_dir = venv / 'bin'
    purelib = Path(run([bin_dir / 'python', '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                       root, 60).strip())
    # a path line, not a site dir: the test environment's own .pth files (an editable install of
    # this checkout among them) are not processed
    (purelib / 'test_dependencies.pth').write_text(''.join(d + '\n' for d in dependency_dirs()))
    # pip is one of those dependencies; --no-index: everything the wheel requires is already there
    run([bin_dir / 'python', '-m', 'pip', 'install', '--no-index', '-q', wheel], root, 300)
    return bin_dir, purelib


@pytest.fixture(scope='module')
def elsewhere(tmp_path_factory):
    """An unrelated working folder laid out like the original's root: dataset/ with tiny clips."""
    cwd = tmp_path_factory.mktemp('elsewhere')
    make_hr_clips(cwd / 'dataset' / 'REDS' / 'train' / 'HR', n_videos=1, n_frames=5, size=(96, 96))
    make_hr_clips(cwd / 'test_hr', n_videos=1, n_frames=5)
    return cwd


def test_the_package_its_templates_and_weights_come_from_the_wheel(installed, elsewhere):
    bin_dir, purelib = installed
    where = run([bin_dir / 'python', '-c', 'import jittor_self_blind_vsr, jittor_self_blind_vsr.option as o; '
                 'from jittor_self_blind_vsr import weights; print(jittor_self_blind_vsr.__file__); '
                 'print(o.template_dir()); print(weights.embedded_path())'], elsewhere, 120).split()
    assert Path(where[0]) == purelib / 'jittor_self_blind_vsr' / '__init__.py'
    assert Path(where[1]) == purelib / 'jittor_self_blind_vsr' / 'templates'
    shipped = purelib / 'jittor_self_blind_vsr' / 'weights' / 'embedded.npz'
    assert Path(where[2]) == shipped
    assert shipped.read_bytes() == (REPO / 'jittor_self_blind_vsr' / 'weights' / 'embedded.npz').read_bytes()


def test_help_lists_the_templates(installed, elsewhere):
    text = ' '.join(run([installed[0] / 'sbvsr-train', '--help'], elsewhere, 120).split())
    assert f"one of: {', '.join(TEMPLATES)}" in text


def test_tiny_training_with_the_default_paths(installed, elsewhere):
    bin_dir = installed[0]
    run([bin_dir / 'sbvsr-gene-dataset', '--HR_root', 'test_hr', '--save_root', 'dataset/REDS4_BlurDown_Realistic',
         '--type', 'Realistic'], elsewhere, 300)
    out = run([bin_dir / 'sbvsr-train', '--template', 'Self_Blind_VSR_CPU', '--random_flow_init',
               '--epochs', '1', '--test_every', '2'], elsewhere, 900)
    experiment = elsewhere / 'experiment' / 'Self_Blind_VSR_CPU'
    assert (experiment / 'model' / 'model_latest.pkl').is_file(), out[-3000:]
    assert (experiment / 'training_state.pkl').is_file()


def test_demo_completes(installed, tmp_path):
    out = run([installed[0] / 'sbvsr-demo'], tmp_path, 900)  # the embedded model, read from the wheel
    assert {line.split()[0] for line in out.splitlines() if ' PSNR ' in line} == {'bicubic', 'ours', 'margin'}
    scores = json.loads((tmp_path / 'demo_output' / 'demo_scores.json').read_text())
    assert all(10 < scores[name]['psnr'] < 60 for name in ('bicubic', 'ours'))
    assert len(list((tmp_path / 'demo_output' / 'side_by_side').iterdir())) == 10
