"""Two processes under `mpirun` (Jittor's MPI mode): averaged gradients equal one process on
the combined batch, and a 2-process training run completes with rank 0 alone writing."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from test_train_run import dataset, train_argv, training_state  # noqa: F401  (dataset is a fixture)

pytestmark = pytest.mark.slow

MPI_ENV = dict(os.environ, log_silent='1', OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1',
               OMPI_MCA_rmaps_base_oversubscribe='1')
N_PROCESSES = 2


def mpirun(args, timeout):
    return subprocess.run(['mpirun', '-np', str(N_PROCESSES), *args], capture_output=True, text=True,
                          timeout=timeout, env=MPI_ENV)


@pytest.fixture(scope='module')
def mpi():
    missing = [tool for tool in ('mpirun', 'mpicc') if shutil.which(tool) is None]
    if missing:
        pytest.skip(f'MPI is not installed ({", ".join(missing)} not found); on Debian/Ubuntu: '
                    f'apt-get install openmpi-bin libopenmpi-dev')
    probe = mpirun(['true'], timeout=60)
    if probe.returncode != 0:
        pytest.skip(f'mpirun cannot start {N_PROCESSES} processes here: {probe.stderr.strip()[-300:]}')


GRADIENT_SCRIPT = '''
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from jittor_self_blind_vsr.runtime import import_jittor
jt = import_jittor()
from test_train_mpi import trainer_for_gradients

trainer, x = trainer_for_gradients({weights!r})
assert jt.in_mpi and jt.world_size == {n}
share = x.shape[0] // jt.world_size
losses = trainer.compute_gradients(jt.array(x[jt.rank * share:(jt.rank + 1) * share]))
grads = {{name: p.opt_grad(trainer.optimizer).numpy() for name, p in trainer.model.named_parameters()
          if not p.is_stop_grad()}}
np.savez({out!r}.format(jt.rank), total=losses['total'].numpy(), **grads)
'''


def trainer_for_gradients(weights_path):
    """Small-config trainer with the weights of `weights_path` and a seeded batch of 4 clips."""
    from jittor_self_blind_vsr.logger.logger import Logger
    from jittor_self_blind_vsr.loss import Loss
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    from jittor_self_blind_vsr.option import parse_args
    from jittor_self_blind_vsr.trainer.trainer_flow_video import Trainer_Flow_Video

    args = parse_args(['--template', 'Self_Blind_VSR_CPU', '--experiment_dir', '/nonexistent-mpi-test'])
    net = PWC_Recons(n_feat=args.n_feat, extra_RBS=args.extra_RBS, recons_RBS=args.recons_RBS)
    net.load_numpy_state_dict(dict(np.load(weights_path)))
    net.train()
    loss = Loss(args.loss, ksize=args.ksize, scale=args.scale)
    trainer = Trainer_Flow_Video(args, type('NoData', (), {'loader_train': None, 'loader_test': None}),
                                 net, loss, Logger(args))
    x = np.random.default_rng(7).random((2 * N_PROCESSES, 5, 3, 24, 24), dtype=np.float32)
    return trainer, x


def test_averaged_gradients_equal_the_combined_batch(mpi, tmp_path):
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    from jittor_self_blind_vsr.runtime import seed_everything
    from jittor_self_blind_vsr.trainer.trainer import jt
    seed_everything(0)
    weights = tmp_path / 'weights.npz'
    net = PWC_Recons(n_feat=32, extra_RBS=1, recons_RBS=2)
    np.savez(weights, **net.numpy_state_dict())
    script = tmp_path / 'grads.py'
    out = str(tmp_path / 'grads_rank{}.npz')
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(GRADIENT_SCRIPT.format(tests=tests, weights=str(weights), n=N_PROCESSES, out=out))
    result = mpirun([sys.executable, str(script)], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    trainer, x = trainer_for_gradients(weights)
    trainer.compute_gradients(jt.array(x))
    rank0, rank1 = np.load(out.format(0)), np.load(out.format(1))
    params = dict(trainer.model.named_parameters())
    checked = 0
    for name in rank0.files:
        if name == 'total':
            continue
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=f'{name}: ranks disagree')
        reference = params[name].opt_grad(trainer.optimizer).numpy()
        scale = float(np.abs(reference).max())
        assert float(np.abs(rank0[name] - reference).max()) <= 1e-4 * scale + 1e-9, name
        checked += 1
    assert checked == len([p for p in params.values() if not p.is_stop_grad()])


def test_two_process_training_run(mpi, dataset, tmp_path):  # noqa: F811
    argv = train_argv(dataset, tmp_path, epochs=1)
    result = mpirun([sys.executable, '-m', 'jittor_self_blind_vsr.main', *argv], timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    state = training_state(tmp_path / 'run')
    assert state['epoch'] == 1 and len(state['logs']['psnr']) == 1
    log = (tmp_path / 'run' / 'log.txt').read_text()
    assert log.count('[Epoch 1]') == 1 and log.count('average Cycle-PSNR') == 1  # rank 0 alone writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']
