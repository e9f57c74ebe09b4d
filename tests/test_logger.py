"""The experiment folder: curves written whole or not at all; only an earlier experiment is archived."""
import pytest

from interrupting import snapshot
from jittor_self_blind_vsr.logger.logger import ExperimentError, Logger
from jittor_self_blind_vsr.option import parse_args
from jittor_self_blind_vsr.utils import image_io
from jittor_self_blind_vsr.utils.image_io import read_image


def test_plot_writes_a_png_and_a_failed_write_leaves_the_old_one_and_no_temporary(tmp_path, monkeypatch):
    ckp = Logger(parse_args(['--template', 'Self_Blind_VSR_CPU', '--experiment_dir', str(tmp_path), '--save', 'run']))
    ckp.start()
    ckp.plot('psnr.png', [20.0, 21.5], 'PSNR', 'PSNR (dB)')
    assert read_image(ckp.dir / 'psnr.png').shape == (480, 640, 3)  # matplotlib's 6.4x4.8 inches at 100 dpi
    before = (ckp.dir / 'psnr.png').read_bytes()

    def full_disk(src, dst):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(image_io.os, 'replace', full_disk)
    with pytest.raises(OSError):
        ckp.plot('psnr.png', [20.0, 21.5, 22.0], 'PSNR', 'PSNR (dB)')
    ckp.done()
    assert sorted(p.name for p in ckp.dir.iterdir()) == ['.sbvsr-train', 'log.txt', 'model', 'psnr.png', 'result']
    assert (ckp.dir / 'psnr.png').read_bytes() == before


def logger(experiment_dir, save):
    return Logger(parse_args(['--template', 'Self_Blind_VSR_CPU', '--experiment_dir', str(experiment_dir),
                              '--save', str(save)]))


@pytest.fixture
def user_tree(tmp_path):
    """experiments/ (holding one earlier experiment) inside a user's folder with their own files."""
    (tmp_path / 'paper.tex').write_text('\\documentclass{article}')
    (tmp_path / 'experiments' / 'notes').mkdir(parents=True)
    (tmp_path / 'experiments' / 'notes' / 'todo.txt').write_text('mine')
    ckp = logger(tmp_path / 'experiments', 'old_run')
    ckp.start()
    ckp.done()
    return tmp_path


@pytest.mark.parametrize('save', ['.', '..', 'notes', 'ABSOLUTE'])
def test_a_folder_that_is_no_experiment_is_refused_and_untouched(user_tree, save):
    save = str(user_tree) if save == 'ABSOLUTE' else save
    before = snapshot(user_tree)
    with pytest.raises(ExperimentError, match='is not an earlier experiment of sbvsr-train'):
        logger(user_tree / 'experiments', save)
    assert snapshot(user_tree) == before


def test_the_current_folder_is_never_archived(user_tree, monkeypatch):
    monkeypatch.chdir(user_tree / 'experiments' / 'old_run')
    with pytest.raises(ExperimentError, match='it holds the current folder'):
        logger(user_tree / 'experiments', 'old_run')


@pytest.mark.parametrize('kind', ['marker', 'config.txt of an earlier version'])
def test_an_earlier_experiment_is_archived(user_tree, kind):
    old = user_tree / 'experiments' / 'old_run'
    if kind != 'marker':
        (old / '.sbvsr-train').unlink()
        (old / 'config.txt').write_text('From epoch 0...\n\nbatch_size: 2\n')
    content = snapshot(old)
    ckp = logger(user_tree / 'experiments', 'old_run')
    ckp.start()
    ckp.done()
    assert ckp.archived is not None and ckp.archived.parent == old.parent
    assert ckp.archived.name.startswith('old_run_archived_') and snapshot(ckp.archived) == content
    assert (old / '.sbvsr-train').is_file()


def test_an_empty_folder_is_used_as_it_is(tmp_path):
    (tmp_path / 'run').mkdir()
    ckp = logger(tmp_path, 'run')
    ckp.start()
    ckp.done()
    assert ckp.archived is None and sorted(p.name for p in tmp_path.iterdir()) == ['run']
