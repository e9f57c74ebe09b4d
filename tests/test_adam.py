"""The trainer's Adam against torch.optim.Adam: PyTorch >= 1.3's update (eps after the bias
correction) and PyTorch 0.4.1's (eps before it, the published training's), parameter groups
with their own rates, L2 weight decay, and a state saved by jt.optim.Adam resuming."""
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from jittor_self_blind_vsr.trainer.trainer import Adam, jt, load_optimizer_state, optimizer_state  # noqa: E402

SHAPES = ((3, 4), (5,), (2, 3))
GROUP_LRS = (1e-2, 1e-3)  # the first two tensors in the first group
STEPS = 12
BETAS, EPS = (0.9, 0.999), 1e-8


def problem(gradient_scale):
    """Start values, STEPS lists of gradients and a weight decay whose L2 term is as small as them."""
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    # gradients near eps make its placement visible
    grads = [[(gradient_scale * rng.standard_normal(shape)).astype(np.float32) for shape in SHAPES]
             for _ in range(STEPS)]
    return start, grads, 0.01 * gradient_scale


def groups(tensors):
    return [{'params': tensors[:2], 'lr': GROUP_LRS[0]}, {'params': tensors[2:], 'lr': GROUP_LRS[1]}]


def run_jittor(start, grads, weight_decay, optimizer_class=Adam, **kwargs):
    params = [jt.array(a) for a in start]
    optimizer = optimizer_class(groups(params), lr=GROUP_LRS[0], eps=EPS, betas=BETAS,
                                weight_decay=weight_decay, **kwargs)
    for step_grads in grads:
        # d(sum(p * G))/dp = G: the optimiser sees exactly these gradients
        optimizer.step(sum((p * jt.array(g)).sum() for p, g in zip(params, step_grads)))
    return [p.numpy() for p in params]


def run_torch(start, grads, weight_decay, eps_of_step):
    params = [torch.tensor(a) for a in start]
    optimizer = torch.optim.Adam(groups(params), lr=GROUP_LRS[0], eps=EPS, betas=BETAS,
                                 weight_decay=weight_decay)
    for step, step_grads in enumerate(grads, 1):
        for group in optimizer.param_groups:
            group['eps'] = eps_of_step(step)
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        optimizer.step()
    return [p.numpy() for p in params]


def assert_close(ours, reference, start):
    for a, b, s in zip(ours, reference, start):
        moved = np.abs(b - s).max()
        assert np.abs(a - b).max() <= 1e-5 * moved, (np.abs(a - b).max(), moved)


@pytest.mark.parametrize('gradient_scale', [1.0, 1e-8])
def test_eps_after_bias_correction_is_torchs_adam(gradient_scale):
    start, grads, weight_decay = problem(gradient_scale)
    ours = run_jittor(start, grads, weight_decay, eps_after_bias_correction=True)
    assert_close(ours, run_torch(start, grads, weight_decay, lambda step: EPS), start)


@pytest.mark.parametrize('gradient_scale', [1.0, 1e-8])
def test_default_is_pytorch_041s_adam(gradient_scale):
    # PyTorch 0.4.1's step is today's with eps / sqrt(1 - b2^t) in place of eps
    start, grads, weight_decay = problem(gradient_scale)
    ours = run_jittor(start, grads, weight_decay)
    reference = run_torch(start, grads, weight_decay, lambda step: EPS / np.sqrt(1 - BETAS[1] ** step))
    assert_close(ours, reference, start)
    assert_close(ours, run_jittor(start, grads, weight_decay, jt.optim.Adam), start)


def test_the_two_placements_differ_where_eps_matters():
    start, grads, weight_decay = problem(1e-8)
    before = run_jittor(start, grads, weight_decay)
    after = run_jittor(start, grads, weight_decay, eps_after_bias_correction=True)
    step_before, step_after = (np.abs(p[0] - start[0]).max() for p in (before, after))
    assert step_after > 2 * step_before


def test_a_jittor_adam_state_resumes(tmp_path):
    start, grads, weight_decay = problem(1.0)
    names = {}
    states = []
    for optimizer_class in (jt.optim.Adam, Adam):
        params = [jt.array(a) for a in start]
        names = {id(p): f'p{i}' for i, p in enumerate(params)}
        optimizer = optimizer_class(groups(params), lr=GROUP_LRS[0], eps=EPS, betas=BETAS,
                                    weight_decay=weight_decay)
        states.append((params, optimizer, names))
    old_params, old, old_names = states[0]
    new_params, new, new_names = states[1]
    for step_grads in grads[:6]:
        old.step(sum((p * jt.array(g)).sum() for p, g in zip(old_params, step_grads)))
    saved = optimizer_state(old, old_names)
    for p, q in zip(new_params, old_params):
        p.update(jt.array(q.numpy()))
    load_optimizer_state(new, saved, new_names, tmp_path / 'state.pkl')
    assert new.n_step == 6
    for step_grads in grads[6:]:
        for optimizer, params in ((old, old_params), (new, new_params)):
            optimizer.step(sum((p * jt.array(g)).sum() for p, g in zip(params, step_grads)))
    assert_close([p.numpy() for p in new_params], [p.numpy() for p in old_params], start)


@pytest.mark.parametrize('eps_after', [False, True])
@pytest.mark.parametrize('gradient_scale', [1.0, 1e-8])
def test_fast_fuses_the_update_with_the_same_arithmetic(monkeypatch, eps_after, gradient_scale):
    """--precision fast updates each parameter in one multi-threaded pass: the values of the
    element-wise expressions exact runs, to float32 rounding, for both eps placements."""
    from jittor_self_blind_vsr.trainer import trainer
    start, grads, weight_decay = problem(gradient_scale)
    exact = run_jittor(start, grads, weight_decay, eps_after_bias_correction=eps_after)
    fused_calls = []
    monkeypatch.setattr(trainer, 'current_precision', lambda: 'fast')
    fused_update = Adam._fused_update
    monkeypatch.setattr(Adam, '_fused_update', lambda self, *a: fused_calls.append(1) or fused_update(self, *a))
    fast = run_jittor(start, grads, weight_decay, eps_after_bias_correction=eps_after)
    assert len(fused_calls) == STEPS * len(SHAPES)
    for a, b, s in zip(fast, exact, start):
        moved = np.abs(b - s).max()
        assert moved > 0 and np.abs(a - b).max() <= 1e-6 * moved, (np.abs(a - b).max(), moved)
