"""One training step of the trainer against the original's losses and gradients (parity fixture)."""
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import parity_file
from parity_weights import seeded_state

LOSS_NAMES = {'recons_l1': 'L1', 'cycle_l1': 'cycle', 'k_boundaries': 'boundaries', 'k_sparse': 'sparse',
              'k_center': 'center', 'total': 'total'}


def make_trainer(tmp_path, extra=()):
    from jittor_self_blind_vsr.logger.logger import Logger
    from jittor_self_blind_vsr.loss import Loss
    from jittor_self_blind_vsr.model.specification import model_from_options
    from jittor_self_blind_vsr.option import parse_args
    from jittor_self_blind_vsr.trainer.trainer_flow_video import Trainer_Flow_Video

    args = parse_args(['--template', 'Self_Blind_VSR_CPU', '--experiment_dir', str(tmp_path), *extra])
    net = model_from_options(args)
    net.load_numpy_state_dict(seeded_state(parity_file('small_config_keys.tsv'), seed=0))
    loader = SimpleNamespace(loader_train=None, loader_test=None)
    loss = Loss(args.loss, ksize=args.ksize, scale=args.scale)
    return Trainer_Flow_Video(args, loader, net, loss, Logger(args))


@pytest.fixture(scope='module')
def step(tmp_path_factory):
    from jittor_self_blind_vsr.trainer.trainer import jt
    fixture = np.load(parity_file('small_config.npz'))
    trainer = make_trainer(tmp_path_factory.mktemp('exp'))
    trainer.model.train()
    values = trainer.compute_gradients(jt.array(fixture['x']))
    losses = {name: float(var.item()) for name, var in values.items()}
    params = dict(trainer.model.named_parameters())
    grads = {key[len('train/grad/'):]: params[key[len('train/grad/'):]].opt_grad(trainer.optimizer).numpy()
             for key in fixture.files if key.startswith('train/grad/')}
    return fixture, losses, grads


@pytest.mark.parametrize('fixture_name', sorted(LOSS_NAMES))
def test_losses_match_original(step, fixture_name):
    fixture, losses, _ = step
    reference = float(fixture[f'train/loss/{fixture_name}'])
    assert losses[LOSS_NAMES[fixture_name]] == pytest.approx(reference, rel=1e-4)


def test_total_is_the_published_weighting(step):
    _, losses, _ = step
    expected = losses['L1'] + losses['cycle'] + 0.5 * losses['boundaries'] + 0.04 * losses['sparse'] \
        + losses['center']
    assert losses['total'] == pytest.approx(expected, rel=1e-6)


def test_gradients_match_original(step):
    fixture, _, grads = step
    for key, grad in grads.items():
        reference = fixture[f'train/grad/{key}']
        tolerance = 1e-3 * float(np.abs(reference).max())
        error = float(np.abs(grad - reference).max())
        assert error <= tolerance, f'{key}: max abs error {error:.3g} > {tolerance:.3g}'
