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


def test_kernel_prior_is_zero_at_the_prior_and_the_l1_distance_elsewhere():
    from jittor_self_blind_vsr.loss.kernel_loss import KernelPriorLoss, create_gaussian
    from jittor_self_blind_vsr.trainer.trainer import jt
    prior = create_gaussian(13, 1.5)
    prior /= prior.sum()
    loss = KernelPriorLoss(13, 1.5)
    assert loss(jt.array(prior[None, None].astype(np.float32))).item() == pytest.approx(0, abs=1e-6)
    delta = np.zeros((2, 1, 13, 13), np.float32)
    delta[:, 0, 6, 6] = 1
    # |1 - p(centre)| + (1 - p(centre)) for every other entry, the same for both samples
    assert loss(jt.array(delta)).item() == pytest.approx(2 * (1 - prior[6, 6]), rel=1e-5)


@pytest.mark.parametrize('warmup', [0, 1])
def test_kernel_prior_batches_adds_the_weighted_prior_for_its_first_batches_only(tmp_path, warmup):
    from jittor_self_blind_vsr.trainer.trainer import jt
    from jittor_self_blind_vsr.trainer.trainer_flow_video import KERNEL_PRIOR_WEIGHT
    fixture = np.load(parity_file('small_config.npz'))
    trainer = make_trainer(tmp_path, ['--kernel_prior_batches', str(warmup), '--kernel_prior_sigma', '1.5'])
    trainer.model.train()
    totals = []
    for _ in range(2):
        output, _ = trainer.model({'x': jt.array(fixture['x']), 'mode': 'train'})
        plain = trainer.loss(output)['total'].item()
        prior = trainer.kernel_prior(output['est_kernel']).item()
        total = trainer.compute_gradients(jt.array(fixture['x']))['total'].item()
        totals.append((total, plain, prior))
        trainer.optimizer.step()
    (first, plain1, prior1), (second, plain2, _) = totals
    assert first == pytest.approx(plain1 + (KERNEL_PRIOR_WEIGHT * prior1 if warmup else 0), rel=1e-5)
    assert second == pytest.approx(plain2, rel=1e-5)
