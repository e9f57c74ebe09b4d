"""sbvsr-train --pre_train X.pt: the published PyTorch format goes through the reader and checks
sbvsr-infer --model_path X.pt uses (utils/checkpoint.py, model.load_checked), without torch."""
import sys

import numpy as np
import pytest

from conftest import parity_file
from jittor_self_blind_vsr.main import build_model
from jittor_self_blind_vsr.option import parse_args
from jittor_self_blind_vsr.utils.checkpoint import CheckpointError, save_state_dict_file
from parity_weights import seeded_state

torch = pytest.importorskip('torch')


class QuietLog:
    """What build_model needs of the experiment logger for a fresh run."""
    continuing = False

    def write_log(self, line):
        pass


def save_torch(state, path, fmt):
    """PyTorch's legacy format is the published weights', zip the one of PyTorch >= 1.6."""
    torch.save({key: torch.from_numpy(value) for key, value in state.items()}, path,
               _use_new_zipfile_serialization=fmt == 'zip')


def pre_trained(path):
    args = parse_args(['--template', 'Self_Blind_VSR_CPU', '--pre_train', str(path)])
    return build_model(args, QuietLog()).numpy_state_dict()


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
def test_pre_train_pt_loads_the_weights_of_the_pkl_without_torch(tmp_path, monkeypatch, fmt):
    state = seeded_state(parity_file('small_config_keys.tsv'), 1)  # the CPU template's network size
    save_torch(state, tmp_path / 'weights.pt', fmt)
    save_state_dict_file(state, tmp_path / 'weights.pkl')
    monkeypatch.setitem(sys.modules, 'torch', None)  # any import of torch from here on fails
    from_pt, from_pkl = pre_trained(tmp_path / 'weights.pt'), pre_trained(tmp_path / 'weights.pkl')
    assert sorted(from_pt) == sorted(from_pkl) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(from_pt[key], value)
        np.testing.assert_array_equal(from_pkl[key], value)


def test_pre_train_pt_that_does_not_fit_is_one_sentence(tmp_path):
    state = seeded_state(parity_file('small_config_keys.tsv'), 1)
    del state['in_conv.0.bias']
    save_torch(state, tmp_path / 'other.pt', 'legacy')
    with pytest.raises(CheckpointError) as error:
        pre_trained(tmp_path / 'other.pt')
    assert str(error.value) == (f"{tmp_path / 'other.pt'} does not fit the model: it lacks 1 of the model's "
                                "tensors, first in_conv.0.bias")


def test_pre_train_of_a_dis_model_without_flow_dis_is_one_sentence(tmp_path):
    from jittor_self_blind_vsr.main import StartError
    state = {k: v for k, v in seeded_state(parity_file('small_config_keys.tsv'), 1).items()
             if not k.startswith('flow_net.')}
    save_state_dict_file(state, tmp_path / 'dis.pkl')
    with pytest.raises(StartError) as error:
        pre_trained(tmp_path / 'dis.pkl')
    assert str(error.value) == (f"{tmp_path / 'dis.pkl'} is a model with --flow dis, but the run is set for "
                                "--flow pwc: add --flow dis")
    args = parse_args(['--template', 'Self_Blind_VSR_CPU', '--pre_train', str(tmp_path / 'dis.pkl'), '--flow', 'dis'])
    loaded = build_model(args, QuietLog()).numpy_state_dict()
    assert loaded.keys() == state.keys() and all(np.array_equal(loaded[k], state[k]) for k in state)
