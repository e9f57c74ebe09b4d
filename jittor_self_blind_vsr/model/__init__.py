"""Model package: PWC_Recons and its parts, its specification (specification.py), and the one
check every weight load passes; weights are exchanged as {torch-style key: float32 ndarray}."""
import numpy as np

from jittor_self_blind_vsr.utils.checkpoint import CheckpointError, check_float_arrays

# How many keys a mismatch sentence names before '(and N more)'.
SHOWN_KEYS = 3


class StateDictMismatch(CheckpointError):
    """Weights whose keys or shapes do not fit the model; the message is one sentence naming the first."""


def _shape(shape):
    return 'x'.join(str(n) for n in shape) or 'scalar'


def _first(keys):
    shown = ', '.join(keys[:SHOWN_KEYS])
    return shown + (f' (and {len(keys) - SHOWN_KEYS} more)' if len(keys) > SHOWN_KEYS else '')


def foreign_sentence(path, keys):
    """The sentence for a file whose `keys` all belong to another network."""
    return f'{path} is not a Self-Blind-VSR or PWC-Net checkpoint: its keys {_first(keys)} do not fit the model'


def mismatch_sentence(path, state, expected):
    """One sentence naming the first keys of `state` that do not fit `expected` {key: shape}, or None.

    `path` names the file the state was read from; None for weights given in memory."""
    name, holder = (path, 'the file') if path else ('the state dict', 'the state dict')
    unexpected = [k for k in state if k not in expected]
    if unexpected and len(unexpected) == len(state):
        return foreign_sentence(name, unexpected)
    problems = []
    if unexpected:
        problems.append(f'its keys {_first(unexpected)} are not in the model')
    wrong = [k for k in state if k in expected and tuple(np.shape(state[k])) != tuple(expected[k])]
    if wrong:
        key = wrong[0]
        more = f' (and {len(wrong) - 1} more shapes differ)' if len(wrong) > 1 else ''
        problems.append(f'{key} has shape {_shape(np.shape(state[key]))} in {holder} but '
                        f'{_shape(expected[key])} in the model{more}')
    missing = [k for k in expected if k not in state]
    if missing:
        problems.append(f'it lacks {len(missing)} of the model\'s tensors, first {_first(missing)}')
    if not problems:
        return None
    return f'{name} does not fit the model: ' + '; '.join(problems)


def load_checked(module, state, path=None):
    """Copy {key: array} into `module`'s Vars of the same key, as float32; every weight load passes here.

    Every key must match in name and shape, else StateDictMismatch; every array must be
    floating-point and finite, else CheckpointError. Either sentence names the first offender
    (and `path`, the file `state` was read from: None for weights given in memory), and then
    nothing is changed.
    """
    params = module.state_dict()
    # Var shapes are known without running anything: no parameter is computed here.
    sentence = mismatch_sentence(path, state, {k: tuple(v.shape) for k, v in params.items()})
    if sentence:
        raise StateDictMismatch(sentence)
    check_float_arrays(path or 'the state dict', state, 'model weights')
    for key, var in params.items():
        var.assign(np.ascontiguousarray(state[key], dtype=np.float32))


def numpy_state_dict(module):
    """{key: float32 ndarray} of every Var of `module` (keys as PyTorch names them)."""
    return {k: np.asarray(v.numpy(), dtype=np.float32) for k, v in module.state_dict().items()}
