"""The training objective of Self-Blind-VSR.

total = recons('1*L1+...' string on recons_down vs the LR centre frame; parsed by option/)
      + L1(input_cycle, LR centre frame)
      + 0.5 * boundaries + 0.04 * sparsity + 1 * centralized   (on the estimated kernel)

The weights of the kernel terms are fixed in the original trainer, not options.
"""
from collections import OrderedDict

from jittor import nn

from jittor_self_blind_vsr.loss.kernel_loss import BoundariesLoss, CentralizedLoss, SparsityLoss
from jittor_self_blind_vsr.option import parse_loss_string

# One per option.LOSS_TYPES, the types --loss is checked against.
RECONS_FUNCTIONS = {'L1': nn.l1_loss, 'MSE': nn.mse_loss}
KERNEL_WEIGHTS = OrderedDict([('boundaries', 0.5), ('sparse', 0.04), ('center', 1.0)])


def term_names(terms):
    """Log names of the reconstruction terms: their type, numbered when a type repeats."""
    kinds = [kind for _, kind in terms]
    return [kind if kinds.count(kind) == 1 else f'{kind}{i}' for i, kind in enumerate(kinds)]


class Loss(nn.Module):
    """All terms of the objective; `execute(output_dict)` -> OrderedDict name -> Var, 'total' last."""

    def __init__(self, loss_string='1*L1', ksize=13, scale=4):
        super().__init__()
        self.terms = parse_loss_string(loss_string)
        self.recons_names = term_names(self.terms)
        self.kernel_losses = OrderedDict([
            ('boundaries', BoundariesLoss(k_size=ksize)),
            ('sparse', SparsityLoss()),
            ('center', CentralizedLoss(k_size=ksize, scale_factor=1. / scale)),
        ])

    def names(self):
        return self.recons_names + ['cycle'] + list(KERNEL_WEIGHTS) + ['total']

    def execute(self, output_dict):
        lr_center = output_dict['input']
        kernel = output_dict['est_kernel']
        values = OrderedDict()
        for name, (weight, kind) in zip(self.recons_names, self.terms):
            values[name] = weight * RECONS_FUNCTIONS[kind](output_dict['recons_down'], lr_center)
        values['cycle'] = nn.l1_loss(output_dict['input_cycle'], lr_center)
        for name, function in self.kernel_losses.items():
            values[name] = function(kernel)
        total = sum(values[name] for name in self.recons_names) + values['cycle']
        for name, weight in KERNEL_WEIGHTS.items():
            total = total + weight * values[name]
        values['total'] = total
        return values
