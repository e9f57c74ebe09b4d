"""Optimiser, learning-rate schedule, epoch bookkeeping and checkpoint state.

Schedule as the original (PyTorch StepLR stepped at the start of every epoch):
epoch e (1-based) trains with lr * gamma ** ((e - 1) // lr_decay) in every group.
The rate is derived from the epoch, so a resumed run follows the same schedule.
"""
from collections import OrderedDict

import numpy as np

from jittor_self_blind_vsr.model import load_checked
from jittor_self_blind_vsr.runtime import current_device, import_jittor
from jittor_self_blind_vsr.utils.checkpoint import CheckpointError

jt = import_jittor(current_device() or 'auto')

STATE_VERSION = 1


def lr_factor(epoch, lr_decay, gamma):
    return gamma ** ((epoch - 1) // lr_decay)


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
            m.update(jt.array(state['m'][name]).stop_grad())
            v.update(jt.array(state['v'][name]).stop_grad())
    optimizer.n_step = state['n_step']


def check_state(state, path):
    """Raise CheckpointError unless `state` has the layout `Trainer.state()` writes."""
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        raise CheckpointError(f'{path} is not a training state written by this version of sbvsr-train')
    optimizer = state.get('optimizer')
    complete = (isinstance(state.get('epoch'), int) and isinstance(state.get('model'), dict)
                and isinstance(state.get('logs'), dict) and all(isinstance(v, list) for v in state['logs'].values())
                and isinstance(optimizer, dict) and isinstance(optimizer.get('n_step'), int)
                and isinstance(optimizer.get('m'), dict) and isinstance(optimizer.get('v'), dict))
    if not complete:
        raise CheckpointError(f'{path} is damaged: parts of the training state are missing')


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

    def make_optimizer(self):
        return jt.optim.Adam(self.model.parameters(), lr=self.args.lr, eps=self.args.epsilon,
                             betas=(self.args.beta1, self.args.beta2), weight_decay=self.args.weight_decay)

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
