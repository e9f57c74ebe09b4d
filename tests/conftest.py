"""Shared test set-up: no network, torch before Jittor, the parity fixtures."""
import os
import socket
from pathlib import Path

import pytest

try:  # torch's MKL and Jittor's oneDNN clash unless torch is loaded first
    import torch  # noqa: F401
except ImportError:
    pass

REPO = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get('SBVSR_PARITY_DIR', REPO / 'tests' / 'fixtures' / 'parity'))


def child_env(isa=None, **extra):
    """Environment for a child process that starts its own Jittor: without the oneDNN ISA
    cap this process set for exact (it would hold a --precision fast child to exact), with
    DNNL_MAX_CPU_ISA=isa when given, Jittor's log silenced, and `extra`."""
    env = dict(os.environ, log_silent='1', **extra)
    env.pop('DNNL_MAX_CPU_ISA', None)
    if isa:
        env['DNNL_MAX_CPU_ISA'] = isa
    return env


class NetworkAttempted(RuntimeError):
    pass


def _refuse_connect(self, address, *args, **kwargs):
    if self.family == getattr(socket, 'AF_UNIX', None):
        return _real_connect(self, address, *args, **kwargs)
    raise NetworkAttempted(f'network access attempted during tests: {address!r}')


_real_connect = socket.socket.connect
socket.socket.connect = _refuse_connect
socket.socket.connect_ex = _refuse_connect

from jittor_self_blind_vsr.runtime import import_jittor  # noqa: E402

import_jittor('auto')


# The fixtures are part of the repository: a missing one is a broken checkout (or a wrong
# SBVSR_PARITY_DIR), so the test fails instead of skipping.
def parity_file(name):
    path = PARITY_DIR / name
    if not path.is_file():
        pytest.fail(f'parity fixture {name} not found in {PARITY_DIR} '
                    '(tests/fixtures/parity, or SBVSR_PARITY_DIR when set)', pytrace=False)
    return path


@pytest.fixture(scope='session')
def parity_dir():
    if not PARITY_DIR.is_dir():
        pytest.fail(f'parity fixtures not found at {PARITY_DIR} '
                    '(tests/fixtures/parity, or SBVSR_PARITY_DIR when set)', pytrace=False)
    return PARITY_DIR
