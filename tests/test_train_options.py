"""Options, templates, loss strings and the learning-rate schedule."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jittor_self_blind_vsr.option import OptionError, build_parser, parse_args, template_names

PACKAGE_DIR = Path(__file__).resolve().parents[1] / 'jittor_self_blind_vsr'


def test_published_templates_hold_the_published_settings():
    for name, kind in (('Self_Blind_VSR_Gaussian', 'GAUSSIAN'), ('Self_Blind_VSR_Realistic', 'REALISTIC')):
        args = parse_args(['--template', name])
        assert (args.data_train, args.data_test, args.save) == (f'REDS_BLURDOWN_{kind}', 'REDS_HRLR', name)
        assert (args.n_feat, args.extra_RBS, args.recons_RBS, args.ksize, args.scale) == (128, 3, 20, 13, 4)
        assert (args.patch_size, args.batch_size, args.epochs, args.n_frames_per_video) == (160, 8, 500, 50)
        assert (args.lr, args.flow_lr, args.lr_decay, args.gamma, args.loss) == (1e-4, 1e-6, 100, 0.5, '1*L1')
        assert args.save_middle_models and not args.save_images


def test_command_line_overrides_the_template():
    args = parse_args(['--template', 'Self_Blind_VSR_Realistic', '--lr', '2e-4', '--save_images', '--cpu',
                       '--align_corners', 'false'])
    assert (args.lr, args.save_images, args.device, args.align_corners) == (2e-4, True, 'cpu', False)
    assert args.n_feat == 128  # untouched template values stay


def test_switches_set_by_a_template_can_be_turned_off():
    published = parse_args(['--template', 'Self_Blind_VSR_Gaussian'])
    assert published.save_middle_models is True and published.save_images is False
    args = parse_args(['--template', 'Self_Blind_VSR_Gaussian', '--save_middle_models', 'false', '--save_images'])
    assert args.save_middle_models is False and args.save_images is True
    assert parse_args(['--template', 'Self_Blind_VSR_CPU', '--save_images', 'no']).save_images is False
    assert parse_args(['--resume', '--epochs', '3']).resume is True  # a bare switch before another option


def test_epochs_zero_means_endless():
    assert parse_args(['--epochs', '0']).epochs >= 10 ** 8


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(OptionError) as error:
        parse_args(['--template', 'Nope'])
    assert all(name in str(error.value) for name in template_names())
    assert {'Self_Blind_VSR_Gaussian', 'Self_Blind_VSR_Realistic', 'Self_Blind_VSR_CPU'} <= set(template_names())


def test_help_lists_the_templates():
    text = ' '.join(build_parser().format_help().split())
    assert 'one of: Self_Blind_VSR_CPU, Self_Blind_VSR_Gaussian, Self_Blind_VSR_Realistic' in text


def test_default_paths_are_the_original_root_layout_under_the_working_directory():
    args = parse_args([])
    assert (args.dir_data, args.dir_data_test, args.experiment_dir, args.pretrain_models_dir) == (
        'dataset/REDS/train', 'dataset/REDS4_BlurDown_Gaussian', 'experiment/', 'pretrain_models/')
    for name in template_names():
        args = parse_args(['--template', name])
        assert args.dir_data == 'dataset/REDS/train' and args.dir_data_test.startswith('dataset/REDS4_BlurDown_')


@pytest.mark.parametrize('argv, words', [
    (['--n_sequence', '3'], 'n_sequence must be 5'),
    (['--n_GPUs', '2'], 'mpirun'),
    (['--n_frames_per_video', '4'], r'--n_frames_per_video must be at least --n_sequence \(5\), got 4'),
])
def test_values_a_single_range_cannot_refuse_are_one_sentence(argv, words):
    with pytest.raises(OptionError, match=words):
        parse_args(argv)


def test_main_py_runs_from_inside_the_package():
    result = subprocess.run([sys.executable, 'main.py', '--template', 'Nope'], cwd=PACKAGE_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith('sbvsr-train: unknown template') and 'Self_Blind_VSR_CPU' in result.stderr
    assert 'Traceback' not in result.stderr


def test_loss_strings():
    from jittor_self_blind_vsr.loss import RECONS_FUNCTIONS, term_names
    from jittor_self_blind_vsr.option import LOSS_TYPES, parse_loss_string
    assert tuple(RECONS_FUNCTIONS) == LOSS_TYPES
    assert parse_loss_string('1*L1') == [(1.0, 'L1')]
    terms = parse_loss_string('0.5*L1+2*MSE+1*L1')
    assert terms == [(0.5, 'L1'), (2.0, 'MSE'), (1.0, 'L1')]
    assert term_names(terms) == ['L10', 'MSE', 'L12']
    for bad in ('L1', '1*VGG54', 'x*L1', 'nan*L1', '-1*L1', '1*L1+inf*MSE'):
        with pytest.raises(OptionError):
            parse_loss_string(bad)


def test_weighted_loss_terms():
    from jittor_self_blind_vsr.loss import Loss
    from jittor_self_blind_vsr.trainer.trainer import jt
    lr = jt.zeros((1, 3, 4, 4))
    kernel = jt.ones((1, 1, 13, 13)) / 169.
    out = {'input': lr, 'recons_down': jt.full((1, 3, 4, 4), 0.5), 'input_cycle': jt.full((1, 3, 4, 4), 0.25),
           'est_kernel': kernel}
    values = {k: float(v.item()) for k, v in Loss('2*L1+1*MSE')(out).items()}
    assert values['L1'] == pytest.approx(1.0) and values['MSE'] == pytest.approx(0.25)
    assert values['cycle'] == pytest.approx(0.25)
    expected = 1.0 + 0.25 + 0.25 + 0.5 * values['boundaries'] + 0.04 * values['sparse'] + values['center']
    assert values['total'] == pytest.approx(expected, rel=1e-6)
    assert values['sparse'] == pytest.approx(1 / 13.)  # mean of sqrt(1/169)
    assert values['center'] == pytest.approx(0.0, abs=1e-9)  # a flat kernel is centred


def test_saved_evaluation_images_round_as_the_original():
    from jittor_self_blind_vsr.trainer.trainer_flow_video import to_uint8
    grey = np.array([[[0.38627452, 0.5862745, 0.29215688]]], dtype=np.float32)  # (1, 1, 3): a kernel map
    # float32 ties 98.5, 149.5, 74.5 go up, as PyTorch 0.4.1's torch.round (float64 would give 99, 149, 75)
    assert to_uint8(grey).tolist() == [[[99] * 3, [150] * 3, [75] * 3]]


def test_step_schedule_as_the_original():
    from jittor_self_blind_vsr.trainer.trainer import lr_factor
    # PyTorch StepLR(step_size=100, gamma=0.5) stepped at the start of epochs 1, 2, ...
    assert [lr_factor(e, 100, 0.5) for e in (1, 100, 101, 200, 201, 500)] == [1, 1, .5, .5, .25, .0625]
