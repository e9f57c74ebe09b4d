"""Model package: PWC_Recons and its parts; weights exchanged as {torch-style key: ndarray}."""
import numpy as np

from jittor_self_blind_vsr.utils.cli import UserError


class StateDictMismatch(UserError, ValueError):
    """A strict load found missing, unexpected or shape-mismatched keys (all named in the message)."""


def state_dict_problems(expected, state):
    """(missing, unexpected, mismatched) keys between {key: shape} `expected` and `state`."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f'{k} (model {tuple(expected[k])}, given {tuple(np.shape(state[k]))})'
                  for k in expected if k in state and tuple(np.shape(state[k])) != tuple(expected[k])]
    return missing, unexpected, mismatched


def load_numpy_state_dict(module, state, strict=True):
    """Copy {key: array} into `module`'s Vars of the same key (float32).

    strict: every key must match in name and shape, else StateDictMismatch naming all of
    them and nothing is changed. Not strict: keys present on both sides with equal shapes
    are loaded, the rest ignored; a shape mismatch still raises.
    """
    params = module.state_dict()
    missing, unexpected, mismatched = state_dict_problems({k: v.shape for k, v in params.items()}, state)
    if mismatched or (strict and (missing or unexpected)):
        parts = [f'{label} keys: {", ".join(keys)}' for label, keys in
                 (('missing', missing), ('unexpected', unexpected), ('shape-mismatched', mismatched)) if keys]
        raise StateDictMismatch(f'state dict does not match {type(module).__name__}: ' + '; '.join(parts))
    for key, var in params.items():
        if key in state:
            var.assign(np.ascontiguousarray(state[key], dtype=np.float32))


def load_checked(module, state, path):
    """Strict load_numpy_state_dict of a state read from `path`; CheckpointError with one
    sentence naming the first keys or shapes that do not fit, or the first tensor that is
    not floating-point or holds NaN or infinite values. Every weight loader passes here."""
    from jittor_self_blind_vsr.utils.checkpoint import CheckpointError, check_float_arrays, mismatch_sentence
    # Var shapes are known without running anything: no parameter is computed here.
    sentence = mismatch_sentence(path, state, {k: tuple(v.shape) for k, v in module.state_dict().items()})
    if sentence:
        raise CheckpointError(sentence)
    check_float_arrays(path, state, 'model weights')
    load_numpy_state_dict(module, state, strict=True)


def numpy_state_dict(module):
    """{key: float32 ndarray} of every Var of `module` (keys as PyTorch names them)."""
    return {k: np.asarray(v.numpy(), dtype=np.float32) for k, v in module.state_dict().items()}
