"""The parity fixtures ship with the repository; the checks of their regeneration script."""
import importlib.util
import os

import numpy as np
import pytest

import conftest
from conftest import REPO

FIXTURES = REPO / 'tests' / 'fixtures' / 'parity'
ARRAY_FILES = ('small_config.npz', 'full_config.npz', 'correlation.npz', 'train_curve.npz')
SCRIPT = REPO / 'tests' / 'fixtures' / 'make_parity_fixtures.py'


@pytest.fixture(scope='module')
def script():
    pytest.importorskip('torch')
    spec = importlib.util.spec_from_file_location('make_parity_fixtures', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed(name):
    with np.load(FIXTURES / name) as arrays:
        return dict(arrays)


def failures(script, name, recomputed):
    return {key for key, _, ok in script.compare(name, recomputed, committed(name)) if not ok}


def test_fixtures_are_in_the_repository():
    names = ARRAY_FILES + ('README.md', 'small_config_keys.tsv', 'full_config_keys.tsv')
    assert [name for name in names if not (FIXTURES / name).is_file()] == []
    if 'SBVSR_PARITY_DIR' not in os.environ:
        assert conftest.PARITY_DIR == FIXTURES


def test_cost_volume_stand_in_reproduces_the_correlation_fixture(script):
    rows = script.compare('correlation.npz', script.correlation_arrays(FIXTURES), committed('correlation.npz'))
    assert len(rows) == 6
    assert [row for row in rows if not row[2]] == []


@pytest.mark.parametrize('name', ARRAY_FILES)
def test_each_committed_file_passes_its_own_check(script, name):
    # Includes a gradient that is exactly zero in the reference (0 / 0 must count as no error).
    assert failures(script, name, committed(name)) == set()


def test_check_flags_arrays_outside_the_tolerances(script):
    arrays = committed('small_config.npz')
    arrays['aligned/infer/recons'] = arrays['aligned/infer/recons'] + 5e-4  # max is within 1e-3, mean is not
    arrays['modern/infer/est_kernel'] = arrays['modern/infer/est_kernel'] + 2e-6
    arrays['train/loss/total'] = arrays['train/loss/total'] * (1 + 2e-4)
    grad = 'train/grad/kernel_net.body1.0.body.3.conv_du.0.weight'
    arrays[grad] = arrays[grad] + 1e-12  # the reference is all zeros
    arrays['x'] = arrays['x'] + 1e-7  # inputs are copied, never recomputed
    del arrays['modern/warp/mask']
    arrays['extra'] = np.zeros(1)
    assert failures(script, 'small_config.npz', arrays) == {
        'aligned/infer/recons', 'modern/infer/est_kernel', 'train/loss/total', grad, 'x', 'modern/warp/mask',
        'extra'}
