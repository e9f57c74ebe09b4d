"""utils/cli.py: every user-error class is a UserError, and run_command reports each outcome in one line."""
import errno
import os
import signal

import pytest

from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.cli import UserError, run_command


def user_error_classes():
    from jittor_self_blind_vsr.convert_pytorch_to_jittor import CheckpointError
    from jittor_self_blind_vsr.data import DatasetError
    from jittor_self_blind_vsr.demo import DemoError
    from jittor_self_blind_vsr.inference import InferenceError
    from jittor_self_blind_vsr.logger.logger import ExperimentError
    from jittor_self_blind_vsr.main import StartError
    from jittor_self_blind_vsr.model import StateDictMismatch
    from jittor_self_blind_vsr.option import OptionError
    from jittor_self_blind_vsr.runtime import DeviceError
    from jittor_self_blind_vsr.script_gene_dataset_blurdown import GenerationError
    from jittor_self_blind_vsr.utils.image_io import ImageReadError
    from jittor_self_blind_vsr.visualize_results import VisualizeError
    return (CheckpointError, DatasetError, DemoError, InferenceError, ExperimentError, StartError,
            StateDictMismatch, OptionError, DeviceError, GenerationError, ImageReadError, VisualizeError)


def test_every_user_error_class_is_a_user_error():
    classes = user_error_classes()
    assert [cls.__name__ for cls in classes if not issubclass(cls, UserError)] == []
    # the ones callers catch as ValueError (or RuntimeError) still are
    value_errors = {'CheckpointError', 'DatasetError', 'ExperimentError', 'StartError', 'StateDictMismatch',
                    'OptionError', 'ImageReadError'}
    assert {cls.__name__ for cls in classes if issubclass(cls, ValueError)} == value_errors
    assert issubclass(classes[8], RuntimeError)


def raiser(error):
    def body():
        raise error
    return body


def test_a_user_error_is_its_sentence_and_its_status(capsys):
    from jittor_self_blind_vsr.option import OptionError
    assert run_command('sbvsr-x', raiser(UserError('the folder  dataset/HR\n does not exist.'))) == 1
    assert capsys.readouterr().err == 'sbvsr-x: the folder dataset/HR does not exist\n'
    assert run_command('sbvsr-x', raiser(OptionError('--lr must be > 0'))) == 2
    assert capsys.readouterr().err == 'sbvsr-x: --lr must be > 0\n'


def test_an_os_error_names_its_file_and_what_was_kept(capsys):
    no_space = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert run_command('sbvsr-x', raiser(no_space), write_target='OUT', kept=lambda: 'OUT is unchanged') == 1
    assert capsys.readouterr().err == 'sbvsr-x: No space left on device (OUT); OUT is unchanged\n'
    missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), 'a/b.png')
    assert run_command('sbvsr-x', raiser(missing)) == 1
    assert capsys.readouterr().err == 'sbvsr-x: No such file or directory (a/b.png)\n'


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_an_interrupt_says_what_was_kept(capsys, signum):
    assert run_command('sbvsr-x', raiser(interrupt.Interrupted(signum)), kept=lambda: 'OUT is unchanged') == \
        128 + signum
    assert capsys.readouterr().err == f'sbvsr-x: interrupted ({signal.Signals(signum).name}): OUT is unchanged\n'
    error = interrupt.Interrupted(signum)
    error.kept = 'run/training_state.pkl keeps epoch 1'
    assert run_command('sbvsr-x', raiser(error)) == 128 + signum
    assert capsys.readouterr().err.endswith('): run/training_state.pkl keeps epoch 1\n')


def test_success_is_zero_and_silent(capsys):
    assert run_command('sbvsr-x', lambda: None) == 0
    assert capsys.readouterr().err == ''
