"""sbvsr-train on bad input: one sentence on stderr, exit status 1, no traceback, nothing started."""
import pickle

import numpy as np
import pytest

from hr_clips import make_hr_clips
from interrupting import snapshot
from jittor_self_blind_vsr.main import main
from jittor_self_blind_vsr.script_gene_dataset_blurdown import generate


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    make_hr_clips(root / 'train' / 'HR', n_videos=1, n_frames=5, size=(96, 96))  # the CPU template's HR patch
    make_hr_clips(root / 'test_hr', n_videos=1, n_frames=5)
    generate(str(root / 'test_hr'), str(root / 'test'), kind='Gaussian', progress=False)
    return root


def run(dataset, experiments, capsys, *extra):
    argv = ['--template', 'Self_Blind_VSR_CPU', '--dir_data', str(dataset / 'train'),
            '--dir_data_test', str(dataset / 'test'), '--experiment_dir', str(experiments),
            '--random_flow_init', '--pretrain_models_dir', str(dataset / 'none'), '--save', 'run', *extra]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize('extra, message', [
    (lambda d: ['--dir_data', str(d / 'nope')], lambda d: f'gt frames folder not found: {d / "nope" / "HR"}'),
    (lambda d: ['--data_train', 'NOPE'],
     lambda d: "unknown dataset 'NOPE'; choose one of REDS_BLURDOWN_GAUSSIAN, REDS_BLURDOWN_REALISTIC, "
               "REDS_HRLR, VIDEO_LR"),
    (lambda d: ['--dir_data_test', str(d / 'train')],
     lambda d: f'input frames folder not found: {d / "train" / "LR_blurdown_x4"}'),
], ids=['missing-train-folder', 'unknown-dataset', 'test-set-without-lr'])
def test_bad_dataset_is_one_sentence(dataset, tmp_path, capsys, extra, message):
    code, err = run(dataset, tmp_path / 'exp', capsys, *extra(dataset))
    assert code == 1
    assert err == [f'sbvsr-train: {message(dataset)}']
    assert not (tmp_path / 'exp').exists()


def test_patch_larger_than_the_frames_is_refused_before_the_experiment_starts(dataset, tmp_path, capsys):
    code, err = run(dataset, tmp_path / 'exp', capsys, '--patch_size', '25', '--n_threads', '2')
    assert code == 1
    assert err == ['sbvsr-train: video 000: frames of 96x96 pixels are smaller than the 100x100 training patch '
                   '(lower --patch_size)']
    assert not (tmp_path / 'exp').exists()


def test_unreadable_frame_is_one_sentence(dataset, tmp_path, capsys):
    train = tmp_path / 'train'
    make_hr_clips(train / 'HR', n_videos=1, n_frames=5, size=(96, 96))
    (train / 'HR' / '000' / '00000000.png').write_bytes(b'not a png')
    code, err = run(dataset, tmp_path / 'exp', capsys, '--dir_data', str(train))
    assert code == 1
    assert err == ['sbvsr-train: cannot read image (not a valid PNG/JPEG/BMP file?): '
                   f'{train / "HR" / "000" / "00000000.png"}']
    assert not (tmp_path / 'exp').exists()


def test_experiment_dir_that_is_a_file_is_one_sentence(dataset, tmp_path, capsys):
    (tmp_path / 'exp').write_text('a file')
    code, err = run(dataset, tmp_path / 'exp', capsys)
    assert code == 1
    assert err == [f'sbvsr-train: cannot create the experiment folder {tmp_path / "exp" / "run"}: '
                   f'{tmp_path / "exp"} is not a folder']
    assert (tmp_path / 'exp').read_text() == 'a file'


def model_state(n_feat=32):
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    return PWC_Recons(n_feat=n_feat, extra_RBS=1, recons_RBS=2, flow_pretrain_fn='.').numpy_state_dict()


def test_pre_train_that_does_not_fit_is_named_in_one_short_sentence(dataset, tmp_path, capsys):
    from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
    state = model_state()
    del state['in_conv.0.bias']
    state['foo.weight'] = np.zeros(3, np.float32)
    save_state_dict_file(state, tmp_path / 'other.pkl')
    code, err = run(dataset, tmp_path / 'exp', capsys, '--pre_train', str(tmp_path / 'other.pkl'))
    assert code == 1
    assert err == [f'sbvsr-train: {tmp_path / "other.pkl"} does not fit the model: its keys foo.weight are not in '
                   "the model; it lacks 1 of the model's tensors, first in_conv.0.bias"]


def training_state():
    model = model_state()
    zeros = {key: np.zeros_like(value) for key, value in model.items()}
    return {'version': 1, 'epoch': 1, 'model': model, 'logs': {'psnr': [20.0]},
            'optimizer': {'n_step': 5, 'm': dict(zeros), 'v': dict(zeros)}}


def without(state, *path):
    *parents, last = path
    for key in parents:
        state = state[key]
    del state[last]


def resume_from(state, dataset, tmp_path, capsys):
    """sbvsr-train --resume from `state` written as the run's training_state.pkl: (code, stderr lines, path)."""
    folder = tmp_path / 'exp' / 'run'
    folder.mkdir(parents=True)
    path = folder / 'training_state.pkl'
    with open(path, 'wb') as handle:
        pickle.dump(state, handle)
    code, err = run(dataset, tmp_path / 'exp', capsys, '--resume')
    return code, err, path


@pytest.mark.parametrize('change, message', [
    (lambda s: [1, 2, 3], 'is not a training state written by this version of sbvsr-train'),
    (lambda s: {**s, 'version': 7}, 'is not a training state written by this version of sbvsr-train'),
    (lambda s: without(s, 'optimizer') or s, 'is damaged: parts of the training state are missing'),
    (lambda s: {**s, 'logs': [1.0]}, 'is damaged: parts of the training state are missing'),
    (lambda s: without(s, 'optimizer', 'v', 'in_conv.0.weight') or s,
     'does not fit parameter in_conv.0.weight (continue with the options the run was started with)'),
    (lambda s: {**s, 'model': model_state(n_feat=16)},
     'does not fit the model: in_conv.0.weight has shape 16x3x3x3 in the file but 32x3x3x3 in the model (and '),
    (lambda s: {**s, 'epoch': -50}, 'is damaged: its epoch must be an integer in [0, 100000000], not -50'),
    (lambda s: {**s, 'epoch': 1.0}, 'is damaged: its epoch must be an integer in [0, 100000000], not 1.0'),
    (lambda s: {**s, 'epoch': True}, 'is damaged: its epoch must be an integer in [0, 100000000], not True'),
    (lambda s: {**s, 'optimizer': {**s['optimizer'], 'n_step': -7}},
     'is damaged: its optimizer n_step must be an integer in [0, 2**63 - 1], not -7'),
    (lambda s: {**s, 'optimizer': {**s['optimizer'], 'n_step': 5.0}},
     'is damaged: its optimizer n_step must be an integer in [0, 2**63 - 1], not 5.0'),
    (lambda s: {**s, 'logs': {'psnr': [20.0, 'x']}}, "is damaged: its log 'psnr' must hold numbers only, not 'x'"),
    (lambda s: {**s, 'logs': {'psnr': [[20.0] * 50]}},
     "is damaged: its log 'psnr' must hold numbers only, not a list"),
    (lambda s: {**s, 'logs': {'psnr': 20.0}},
     "is damaged: its logs must be lists of numbers named by texts, not 'psnr': 20.0"),
], ids=['a-list', 'other-version', 'no-optimizer', 'logs-not-a-dict', 'optimizer-lacks-a-parameter',
        'model-of-other-width', 'epoch-negative', 'epoch-float', 'epoch-bool', 'n_step-negative', 'n_step-float',
        'log-of-text', 'log-of-lists', 'log-not-a-list'])
def test_bad_training_state_is_one_sentence(dataset, tmp_path, capsys, change, message):
    code, err, path = resume_from(change(training_state()), dataset, tmp_path, capsys)
    assert code == 1
    assert len(err) == 1 and err[0].startswith('sbvsr-train: ') and message in err[0] and len(err[0]) < 300, err
    assert str(path) in err[0]


def test_state_whose_logs_hold_nan_is_valid():
    from jittor_self_blind_vsr.trainer.trainer import check_state
    state = training_state()
    state['logs'] = {'psnr': [float('nan')], 'loss_total': [0.5]}  # the PSNR of a test set without ground truth
    check_state(state, 'training_state.pkl')


def _set(state, part, key, value):
    state[part][key] = value
    return state


@pytest.mark.parametrize('change, message', [
    (lambda s: _set(s, 'model', 'in_conv.0.bias', np.full(32, np.nan, np.float32)),
     'holds NaN or infinite values in in_conv.0.bias: model weights must be finite numbers'),
    (lambda s: _set(s, 'model', 'in_conv.0.bias', np.zeros(32, np.int32)),
     'holds int32 values in in_conv.0.bias, but model weights must be floating-point (float32)'),
    (lambda s: _set(s['optimizer'], 'm', 'in_conv.0.weight', np.full((32, 3, 3, 3), np.inf, np.float32)) and s,
     'holds NaN or infinite values in the Adam moment m of in_conv.0.weight: Adam moments must be finite numbers'),
    (lambda s: _set(s['optimizer'], 'v', 'in_conv.0.weight', np.zeros((32, 3, 3, 3), np.int64)) and s,
     'holds int64 values in the Adam moment v of in_conv.0.weight, but Adam moments must be floating-point '
     '(float32)'),
    (lambda s: _set(s['optimizer'], 'v', 'in_conv.0.weight', np.full((32, 3, 3, 3), -1e-8, np.float32)) and s,
     'holds negative values in the Adam moment v of in_conv.0.weight, an average of squares'),
], ids=['nan-weight', 'integer-weight', 'inf-moment', 'integer-moment', 'negative-second-moment'])
def test_training_state_with_values_the_model_cannot_use_is_refused(dataset, tmp_path, capsys, change, message):
    code, err, path = resume_from(change(training_state()), dataset, tmp_path, capsys)
    assert code == 1
    assert err == [f'sbvsr-train: {path} {message}']


def test_pre_train_with_nan_weights_is_refused(dataset, tmp_path, capsys):
    from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
    state = model_state()
    state['recons_net.1.conv2.weight'][0, 0, 1, 1] = np.inf
    save_state_dict_file(state, tmp_path / 'inf.pkl')
    code, err = run(dataset, tmp_path / 'exp', capsys, '--pre_train', str(tmp_path / 'inf.pkl'))
    assert code == 1
    assert err == [f'sbvsr-train: {tmp_path / "inf.pkl"} holds NaN or infinite values in recons_net.1.conv2.weight: '
                   'model weights must be finite numbers']


@pytest.mark.parametrize('save', ['.', 'USER_FOLDER'])
def test_a_save_folder_that_is_no_experiment_is_refused_and_untouched(dataset, tmp_path, capsys, save):
    experiments = tmp_path / 'exp'
    (experiments / 'notes').mkdir(parents=True)
    (experiments / 'notes' / 'paper.tex').write_text('\\documentclass{article}')
    folder = experiments if save == '.' else experiments / 'notes'
    before = snapshot(tmp_path)
    code, err = run(dataset, experiments, capsys, '--save', str(folder) if save != '.' else '.')
    assert code == 1
    assert err == [f'sbvsr-train: {folder} exists and is not an earlier experiment of sbvsr-train (it has neither '
                   f'.sbvsr-train nor a config.txt written by sbvsr-train), so it is not archived; give another '
                   f'--save or --experiment_dir']
    assert snapshot(tmp_path) == before
