"""Every numeric option of every CLI has a checked range: a value outside it is one sentence
naming the option, the value and the range, exit status 2, before any work starts."""
import argparse

import pytest

from jittor_self_blind_vsr import convert_pytorch_to_jittor, demo, inference, main as train_main, visualize_results
from jittor_self_blind_vsr import option
from jittor_self_blind_vsr import script_gene_dataset_blurdown as gene


def exit_status(main, argv, capsys):
    """(exit status, last stderr line) of a CLI's main, which exits through argparse or returns."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    return code, err.strip().splitlines()[-1]


def parser_of(parse, argv, monkeypatch):
    """The ArgumentParser that `parse(argv)` builds (some CLIs build it inside parse_args)."""
    built = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        built.append(self)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', capture)
    parse(argv)
    return built[0]


PARSERS = {
    'sbvsr-train': (option.parse_args, []),
    'sbvsr-infer': (inference.parse_args, []),
    'sbvsr-gene-dataset': (gene.parse_args, ['--HR_root', 'a', '--save_root', 'b']),
    'sbvsr-demo': (demo.parse_args, []),
    'sbvsr-visualize': (lambda argv: visualize_results.build_parser().parse_args(argv), ['run']),
    'sbvsr-convert': (convert_pytorch_to_jittor._parse_args, ['--pytorch_model', 'a', '--jittor_model', 'b']),
}


@pytest.mark.parametrize('cli', PARSERS)
def test_every_numeric_option_has_a_range_its_default_lies_in(cli, monkeypatch):
    parser = parser_of(*PARSERS[cli], monkeypatch)
    for action in parser._actions:
        assert action.type not in (int, float), f'{cli} {action.option_strings}: a number without a range'
        if hasattr(action.type, 'rule') and action.default is not None:
            assert action.type(str(action.default)) == action.default, (cli, action.dest)


def test_range_types_state_their_rule():
    assert option.positive_int('3') == 3 and option.non_negative_float('0') == 0.0
    cases = [(option.positive_int, '0', "must be an integer >= 1, not '0'"),
             (option.positive_int, '2.5', "must be an integer >= 1, not '2.5'"),
             (option.non_negative_float, 'nan', "must be a finite number >= 0, not 'nan'"),
             (option.positive_float, '-inf', "must be a finite number > 0, not '-inf'"),
             (option.float_range(0, 1, high_open=True), '1', "must be a number in [0, 1), not '1'"),
             (option.float_range(0, 1, low_open=True), '0', "must be a number in (0, 1], not '0'"),
             (option.int_range(1, odd=True), '4', "must be an odd integer >= 1, not '4'"),
             (option.int_range(64, multiple_of=4), '66', "must be a multiple of 4 >= 64, not '66'"),
             (option.seed_int, '2147483648', "must be an integer in [0, 2147483647], not '2147483648'"),
             (option.power_of_two, '6', "must be a power of two (1, 2, 4, 8, ...), not '6'")]
    for parse, text, message in cases:
        with pytest.raises(argparse.ArgumentTypeError) as error:
            parse(text)
        assert str(error.value) == message


# (option, bad value): those of issue 13 first, then the rest of sbvsr-train's numeric options.
TRAIN_BAD = [
    ('flow_lr', 'nan'), ('flow_lr', '-5'), ('gamma', '-3'), ('gamma', 'nan'), ('beta1', '2'), ('epsilon', '-1'),
    ('weight_decay', '-10'), ('rgb_range', '0'), ('rgb_range', '-255'), ('n_frames_per_video', '-3'),
    ('extra_RBS', '-2'), ('test_padding', '-5'), ('mid_loss_weight', 'inf'), ('loss', 'nan*L1'),
    ('lr', '0'), ('lr', 'inf'), ('gamma', '1.5'), ('gamma', '0'), ('beta1', '-0.1'), ('beta2', '1'),
    ('epsilon', '0'), ('epsilon', 'nan'), ('weight_decay', 'nan'), ('mid_loss_weight', '-1'),
    ('n_threads', '-1'), ('n_GPUs', '0'), ('seed', '-1'), ('seed', '2147483648'), ('scale', '3'), ('scale', '0'),
    ('patch_size', '0'), ('size_must_mode', '0'), ('n_colors', '0'), ('n_sequence', '0'), ('n_sequence', '3'),
    ('n_frames_per_video', '3'), ('n_feat', '0'), ('recons_RBS', '-1'), ('ksize', '4'), ('ksize', '-13'),
    ('test_every', '0'), ('epochs', '-1'), ('epochs', '2.5'), ('batch_size', '0'), ('lr_decay', '0'),
    ('print_every', '0'), ('lr', 'abc'), ('loss', '-1*L1'), ('loss', 'inf*MSE'), ('loss', '1*L1+x*MSE'),
    ('loss', 'L1'), ('loss', '1*VGG'),
]


@pytest.mark.parametrize('name, value', TRAIN_BAD, ids=[f'{n}={v}' for n, v in TRAIN_BAD])
def test_train_refuses_values_out_of_range(name, value, capsys):
    code, message = exit_status(train_main.main, ['--template', 'Self_Blind_VSR_CPU', f'--{name}={value}'], capsys)
    assert code == 2
    assert message.startswith('sbvsr-train: ') and f'--{name}' in message and value in message


@pytest.mark.parametrize('argv', [
    ['--flow_lr', '0'], ['--beta1', '0'], ['--gamma', '1'], ['--weight_decay', '0'], ['--extra_RBS', '0'],
    ['--recons_RBS', '0'], ['--epochs', '0'], ['--seed', '0'], ['--seed', '2147483647'], ['--n_threads', '0'],
    ['--scale', '1'], ['--ksize', '1'], ['--mid_loss_weight', '0'], ['--loss', '0*L1+2.5*MSE'],
    ['--n_frames_per_video', '5'], ['--lr', '1e-3'],
])
def test_train_accepts_the_edges_of_the_ranges(argv):
    option.parse_args(['--template', 'Self_Blind_VSR_CPU', *argv])


def test_templates_parse_and_their_values_are_checked(tmp_path, monkeypatch):
    for name in option.template_names():
        option.parse_args(['--template', name])
    (tmp_path / 'bad.cfg').write_text('gamma = nan\n')
    monkeypatch.setattr(option, 'template_dir', lambda: tmp_path)
    with pytest.raises(option.OptionError) as error:
        option.parse_args(['--template', 'bad'])
    assert str(error.value) == f"{tmp_path / 'bad.cfg'}: gamma must be a number in (0, 1], not 'nan'"


INFER_BAD = [('n_seq', '4'), ('n_seq', '-1'), ('scale', '3'), ('scale', '0'), ('size_must_mode', '0'),
             ('fps', '0'), ('fps', 'nan'), ('fps', 'inf')]


@pytest.mark.parametrize('name, value', INFER_BAD, ids=[f'{n}={v}' for n, v in INFER_BAD])
def test_infer_refuses_values_out_of_range(name, value, capsys, tmp_path):
    code, message = exit_status(inference.main, ['--result_path', str(tmp_path / 'out'), f'--{name}={value}'],
                                capsys)
    assert code == 2
    assert f'argument --{name}: must be ' in message and message.endswith(f'not {value!r}')
    assert not (tmp_path / 'out').exists()


GENE_BAD = [('scale', '0'), ('scale', '-4'), ('seed', '-1'), ('seed', '1e3')]


@pytest.mark.parametrize('name, value', GENE_BAD, ids=[f'{n}={v}' for n, v in GENE_BAD])
def test_gene_dataset_refuses_values_out_of_range(name, value, capsys, tmp_path):
    argv = ['--HR_root', str(tmp_path), '--save_root', str(tmp_path / 'out'), f'--{name}={value}']
    code, message = exit_status(gene.main, argv, capsys)
    assert code == 2
    assert f'argument --{name}: must be ' in message and message.endswith(f'not {value!r}')
    assert not (tmp_path / 'out').exists()


DEMO_BAD = [('minutes', '0'), ('minutes', 'nan'), ('minutes', '-inf'), ('epochs', '0'), ('iters_per_epoch', '0'),
            ('frames', '4'), ('size', '30'), ('size', '66'), ('lr', '-1'), ('lr', 'nan'), ('seed', '-1')]


@pytest.mark.parametrize('name, value', DEMO_BAD, ids=[f'{n}={v}' for n, v in DEMO_BAD])
def test_demo_refuses_values_out_of_range(name, value, capsys, tmp_path):
    code, message = exit_status(demo.main, ['--output', str(tmp_path / 'out'), f'--{name}={value}'], capsys)
    assert code == 2
    assert f'argument --{name}: must be ' in message and message.endswith(f'not {value!r}')
    assert not (tmp_path / 'out').exists()
