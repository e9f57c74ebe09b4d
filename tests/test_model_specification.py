"""model/specification.py and the one state-dict report (model.load_checked): the published
configuration is the one the original's published model has, options default to it, and a
state dict that does not fit is refused with one sentence naming the first offender."""
import numpy as np
import pytest

from jittor_self_blind_vsr.model import StateDictMismatch, load_checked
from jittor_self_blind_vsr.model.specification import PUBLISHED_CONFIG, config_from_state_dict
from jittor_self_blind_vsr.option import parse_args
from jittor_self_blind_vsr.utils.checkpoint import CheckpointError
from conftest import parity_file
from parity_weights import read_keys

OPTION_KEYS = ('n_colors', 'n_sequence', 'n_feat', 'extra_RBS', 'recons_RBS', 'scale', 'ksize', 'flow')


def shapes_of(keys_tsv):
    return {key: np.empty(shape, np.float32) for key, shape in read_keys(parity_file(keys_tsv))}


def test_published_config_is_what_the_original_published_model_implies():
    # full_config_keys.tsv: the keys and shapes of the original code's model built as published
    assert config_from_state_dict(shapes_of('full_config_keys.tsv')) == PUBLISHED_CONFIG
    assert PUBLISHED_CONFIG == dict(n_colors=3, n_sequence=5, n_feat=128, extra_RBS=3, recons_RBS=20,
                                    kernel_size=3, scale=4, ksize=13, flow='pwc')


@pytest.mark.parametrize('template', ['Self_Blind_VSR_Gaussian', 'Self_Blind_VSR_Realistic'])
def test_published_templates_and_option_defaults_describe_the_published_model(template):
    args = parse_args(['--template', template])
    assert {k: getattr(args, k) for k in OPTION_KEYS} == {k: PUBLISHED_CONFIG[k] for k in OPTION_KEYS}


def test_cpu_template_changes_only_width_and_depth():
    args = parse_args(['--template', 'Self_Blind_VSR_CPU'])
    changed = {k: getattr(args, k) for k in OPTION_KEYS if getattr(args, k) != PUBLISHED_CONFIG[k]}
    assert changed == dict(n_feat=32, extra_RBS=1, recons_RBS=2)


def test_model_from_options_builds_what_the_options_say():
    from jittor_self_blind_vsr.model.specification import model_from_options
    args = parse_args(['--template', 'Self_Blind_VSR_CPU', '--align_corners', 'false'])
    net = model_from_options(args)
    built = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert built == {k: shape for k, shape in read_keys(parity_file('small_config_keys.tsv'))}
    assert net.align_corners is False and net.flow_net.align_corners is False and net.HR_in is False


# ---------------------------------------------------------------- the one state-dict report

@pytest.fixture(scope='module')
def module():
    from jittor_self_blind_vsr.runtime import import_jittor
    nn = import_jittor().nn
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))


def state_of(module):
    return {k: np.full(tuple(v.shape), i, np.float32) for i, (k, v) in enumerate(module.state_dict().items())}


def assert_unchanged(module, before):
    for key, var in module.state_dict().items():
        np.testing.assert_array_equal(var.numpy(), before[key])


def test_missing_key_is_named(module):
    before = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    state = state_of(module)
    del state['1.bias']
    with pytest.raises(StateDictMismatch) as info:
        load_checked(module, state, 'w.pkl')
    assert str(info.value) == "w.pkl does not fit the model: it lacks 1 of the model's tensors, first 1.bias"
    assert_unchanged(module, before)


def test_shape_mismatch_is_named_for_a_file_and_for_weights_in_memory(module):
    before = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    state = state_of(module)
    state['0.weight'] = np.zeros((4, 3, 5, 5), np.float32)
    state['1.weight'] = np.zeros((2, 4, 3, 3), np.float32)
    with pytest.raises(StateDictMismatch) as info:
        load_checked(module, state, 'w.pkl')
    assert str(info.value) == ('w.pkl does not fit the model: 0.weight has shape 4x3x5x5 in the file but 4x3x3x3 '
                               'in the model (and 1 more shapes differ)')
    with pytest.raises(StateDictMismatch) as info:
        load_checked(module, state)
    assert str(info.value) == ('the state dict does not fit the model: 0.weight has shape 4x3x5x5 in the state '
                               'dict but 4x3x3x3 in the model (and 1 more shapes differ)')
    assert_unchanged(module, before)


def test_every_problem_in_one_sentence_and_a_mismatch_is_a_checkpoint_error(module):
    state = state_of(module)
    del state['0.bias']
    state['0.weight'] = np.zeros(3, np.float32)
    state['extra'] = np.zeros(1, np.float32)
    with pytest.raises(CheckpointError) as info:
        load_checked(module, state, 'w.pkl')
    assert str(info.value) == ("w.pkl does not fit the model: its keys extra are not in the model; 0.weight has "
                               "shape 3 in the file but 4x3x3x3 in the model; it lacks 1 of the model's tensors, "
                               "first 0.bias")
    with pytest.raises(StateDictMismatch, match=r'^w.pkl is not a Self-Blind-VSR or PWC-Net checkpoint: its keys '
                                                r'a, b, c \(and 1 more\) do not fit the model$'):
        load_checked(module, {k: np.zeros(1, np.float32) for k in 'abcd'}, 'w.pkl')


def test_a_fitting_state_is_loaded_as_float32(module):
    state = {k: v.astype(np.float64) for k, v in state_of(module).items()}
    load_checked(module, state, 'w.pkl')
    for key, var in module.state_dict().items():
        assert var.numpy().dtype == np.float32
        np.testing.assert_array_equal(var.numpy(), state[key])
