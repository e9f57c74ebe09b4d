"""Optimiser, learning-rate schedule, epoch bookkeeping and checkpoint state.

Schedule as the original (PyTorch StepLR stepped at the start of every epoch):
epoch e (1-based) trains with lr * gamma ** ((e - 1) // lr_decay) in every group.
The rate is derived from the epoch, so a resumed run follows the same schedule.
"""
import math
from collections import OrderedDict

import jittor as jt
import numpy as np

from jittor_self_blind_vsr.model import load_checked
from jittor_self_blind_vsr.option import ENDLESS_EPOCHS
from jittor_self_blind_vsr.runtime import current_precision
from jittor_self_blind_vsr.utils.checkpoint import CheckpointError, check_float_arrays

STATE_VERSION = 1


def lr_factor(epoch, lr_decay, gamma):
    return gamma ** ((epoch - 1) // lr_decay)


class Adam(jt.optim.Adam):
    """PyTorch's Adam (no amsgrad) on jt.optim.Adam's parameter groups, moments ('m', 'values'),
    step count and MPI gradient averaging. With g = grad + weight_decay * p and step t:

        m = b1 * m + (1 - b1) * g,   v = b2 * v + (1 - b2) * g * g
        eps_after_bias_correction=False (PyTorch 0.4.1, which trained the published models;
        also jt.optim.Adam's formula):
            p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
        eps_after_bias_correction=True (PyTorch >= 1.3):
            p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    Each in the element-wise operation order of that PyTorch version's CPU step. Both keep
    the same m, v and t, so a state saved by either (or by jt.optim.Adam) resumes in either.
    """

    def __init__(self, params, lr, eps=1e-8, betas=(0.9, 0.999), weight_decay=0, eps_after_bias_correction=False):
        super().__init__(params, lr, eps=eps, betas=betas, weight_decay=weight_decay)
        self.eps_after_bias_correction = eps_after_bias_correction

    def step(self, loss=None, retain_graph=False):
        self.pre_step(loss, retain_graph)
        t = self.n_step
        # --precision fast on the CPU: one OpenMP pass per parameter (Jittor runs its
        # element-wise ops on one thread: 47 ms a step for the published model's 18.9M, 23 ms
        # on this machine's 2 cores).
        fused = current_precision() == 'fast' and not jt.flags.use_cuda
        for group in self.param_groups:
            lr, eps = group.get('lr', self.lr), group.get('eps', self.eps)
            weight_decay = group.get('weight_decay', self.weight_decay)
            b1, b2 = group.get('betas', self.betas)
            correction1, correction2 = 1 - b1 ** t, 1 - b2 ** t
            constants = self._fused_constants(lr, eps, weight_decay, b1, b2, correction1, correction2)
            for p, g, v, m in zip(group['params'], group['grads'], group['values'], group['m']):
                if p.is_stop_grad():
                    continue
                if fused and all(str(a.dtype) == 'float32' for a in (p, g, m, v)):
                    self._fused_update(p, g, m, v, constants)
                    continue
                if weight_decay != 0:
                    g = g + weight_decay * p
                if self.eps_after_bias_correction:
                    m.update(m + (1 - b1) * (g - m))  # torch's lerp_ for weights below 0.5
                    v.update(v * b2 + (1 - b2) * g * g)
                    p.update(p - lr / correction1 * m / (jt.sqrt(v) / correction2 ** 0.5 + eps))
                else:
                    m.update(m * b1 + (1 - b1) * g)
                    v.update(v * b2 + (1 - b2) * g * g)
                    p.update(p - lr * math.sqrt(correction2) / correction1 * m / (jt.sqrt(v) + eps))
        self.post_step()

    def _fused_constants(self, lr, eps, weight_decay, b1, b2, correction1, correction2):
        """A parameter group's scalars for _FUSED_ADAM_SRC at this step."""
        if self.eps_after_bias_correction:
            data = dict(after=1, step=lr / correction1, root2=correction2 ** 0.5)
        else:
            data = dict(after=0, step=lr * math.sqrt(correction2) / correction1, root2=1.)
        return dict(data, b1=b1, b2=b2, one_b1=1 - b1, one_b2=1 - b2, eps=eps, decay=weight_decay)

    def _fused_update(self, p, g, m, v, constants):
        """The update of step() in one OpenMP loop, in the same float32 operation order."""
        new_p, new_m, new_v = jt.code([p.shape] * 3, [p.dtype] * 3, [p, g, m, v], cpu_src=_FUSED_ADAM_SRC,
                                      data=constants)
        m.update(new_m)
        v.update(new_v)
        p.update(new_p)


_FUSED_ADAM_SRC = r'''
const float b1 = data["b1"], b2 = data["b2"], one_b1 = data["one_b1"], one_b2 = data["one_b2"];
const float eps = data["eps"], decay = data["decay"], step = data["step"], root2 = data["root2"];
const bool after = data["after"] != 0;
const int64_t count = in0->num;
#pragma omp parallel for schedule(static)
for (int64_t k = 0; k < count; k++) {
    const float p = in0_p[k], g = decay != 0 ? in1_p[k] + decay * p : in1_p[k];
    const float m = after ? in2_p[k] + one_b1 * (g - in2_p[k]) : in2_p[k] * b1 + one_b1 * g;
    const float v = in3_p[k] * b2 + one_b2 * g * g;
    out1_p[k] = m;
    out2_p[k] = v;
    out0_p[k] = after ? p - step * m / (std::sqrt(v) / root2 + eps) : p - step * m / (std::sqrt(v) + eps);
}
'''


def optimizer_state(optimizer, names):
    """Adam's step count and both moments of every parameter, keyed by parameter name."""
    first, second = {}, {}
    for group in optimizer.param_groups:
        for param, m, v in zip(group['params'], group['m'], group['values']):
            first[names[id(param)]] = m.numpy().copy()
            second[names[id(param)]] = v.numpy().copy()
    return {'n_step': int(optimizer.n_step), 'm': first, 'v': second}


def load_optimizer_state(optimizer, state, names, path):
    for group in optimizer.param_groups:
        for param, m, v in zip(group['params'], group['m'], group['values']):
            name = names[id(param)]
            for moments in (state['m'], state['v']):
                if not isinstance(moments.get(name), np.ndarray) or moments[name].shape != tuple(param.shape):
                    raise CheckpointError(f'the optimizer state in {path} does not fit parameter {name} '
                                          f'(continue with the options the run was started with)')
            check_float_arrays(path, {f"the Adam moment m of {name}": state['m'][name],
                                      f"the Adam moment v of {name}": state['v'][name]}, 'Adam moments')
            if (state['v'][name] < 0).any():  # Adam divides by its square root
                raise CheckpointError(f'{path} holds negative values in the Adam moment v of {name}, an average '
                                      f'of squares')
            m.update(jt.array(state['m'][name]).stop_grad())
            v.update(jt.array(state['v'][name]).stop_grad())
    optimizer.n_step = state['n_step']


def check_state(state, path):
    """Raise CheckpointError unless `state` has the layout and values `Trainer.state()` writes."""
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        raise CheckpointError(f'{path} is not a training state written by this version of sbvsr-train')
    optimizer = state.get('optimizer')
    complete = ('epoch' in state and isinstance(state.get('model'), dict) and isinstance(state.get('logs'), dict)
                and isinstance(optimizer, dict) and 'n_step' in optimizer
                and isinstance(optimizer.get('m'), dict) and isinstance(optimizer.get('v'), dict))
    if not complete:
        raise CheckpointError(f'{path} is damaged: parts of the training state are missing')
    problem = _field_problem(state)
    if problem is not None:
        raise CheckpointError(f'{path} is damaged: {problem}')


MAX_STEPS = 2 ** 63 - 1  # Adam's step count, an int64


def _is_count(value, high):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _brief(value):
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int of over 4300 digits, a list nested too deep
        text = ''
    return text if 0 < len(text) <= 40 else f'a {type(value).__name__}'


def _field_problem(state):
    """What is wrong with the epoch, step count or logs of a complete state, or None."""
    epoch, n_step = state['epoch'], state['optimizer']['n_step']
    if not _is_count(epoch, ENDLESS_EPOCHS):
        return f'its epoch must be an integer in [0, {ENDLESS_EPOCHS}], not {_brief(epoch)}'
    if not _is_count(n_step, MAX_STEPS):
        return f'its optimizer n_step must be an integer in [0, 2**63 - 1], not {_brief(n_step)}'
    for name, values in state['logs'].items():
        if not isinstance(name, str) or not isinstance(values, list):
            return f'its logs must be lists of numbers named by texts, not {_brief(name)}: {_brief(values)}'
        # NaN is a genuine entry: the PSNR of a test set without ground truth.
        bad = [value for value in values if not _is_number(value)]
        if bad:
            return f'its log {name!r} must hold numbers only, not {_brief(bad[0])}'
    return None


class Trainer:
    """Owns the optimiser and the per-epoch logs; a subclass adds train() and test()."""

    def __init__(self, args, loader, model, loss, ckp):
        self.args = args
        self.loader_train = loader.loader_train
        self.loader_test = loader.loader_test
        self.model = model
        self.loss = loss
        self.ckp = ckp
        self.names = {id(p): name for name, p in model.named_parameters()}
        self.optimizer = self.make_optimizer() if not args.test_only else None
        self.epoch = 0  # completed training epochs
        self.logs = OrderedDict()
        if ckp.continuing:
            self.restore(ckp.load_state())

    def make_optimizer(self, groups=None):
        """Adam over `groups` (jt.optim parameter groups; default: one group of every parameter)."""
        return Adam(groups or self.model.parameters(), lr=self.args.lr, eps=self.args.epsilon,
                    betas=(self.args.beta1, self.args.beta2), weight_decay=self.args.weight_decay,
                    eps_after_bias_correction=self.args.adam_eps_after_bias_correction)

    def base_lrs(self):
        """The epoch-1 learning rate of each parameter group."""
        return [group.get('base_lr', self.args.lr) for group in self.optimizer.param_groups]

    def set_epoch_lr(self, epoch):
        factor = lr_factor(epoch, self.args.lr_decay, self.args.gamma)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs()):
            group['lr'] = base * factor
        self.optimizer.lr = self.args.lr * factor
        return self.args.lr * factor

    def log_value(self, name, value):
        self.logs.setdefault(name, []).append(float(value))

    def state(self):
        return {
            'version': STATE_VERSION,
            'epoch': self.epoch,
            'model': self.model.numpy_state_dict(),
            'optimizer': optimizer_state(self.optimizer, self.names),
            'logs': {name: list(values) for name, values in self.logs.items()},
        }

    def restore(self, state):
        check_state(state, self.ckp.state_path)
        load_checked(self.model, state['model'], self.ckp.state_path)
        if self.optimizer is not None:
            load_optimizer_state(self.optimizer, state['optimizer'], self.names, self.ckp.state_path)
        self.epoch = state['epoch']
        self.logs = OrderedDict((name, list(values)) for name, values in state['logs'].items())
        self.ckp.committed_epoch = self.epoch
        self.ckp.write_log(f'Continue from epoch {self.epoch}...')

    def best_epoch(self, key='psnr'):
        values = self.logs.get(key, [])
        return int(np.argmax(values)) + 1 if values else 0

    def terminate(self):
        if self.args.test_only:
            self.test()
            return True
        return self.epoch >= self.args.epochs
