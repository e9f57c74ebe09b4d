"""Short training runs of the CPU template on a tiny generated dataset: the loss goes down,
the experiment folder is complete, resuming is exact, a kill while saving is survivable."""
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data

from conftest import child_env
from interrupting import signal_when_ready, snapshot
from jittor_self_blind_vsr.utils.image_io import write_image

pytestmark = pytest.mark.slow

HR_SIZE = 112
TEST_HR_SIZE = 96
SHIFT = 3  # pixels of camera motion per frame


def write_video(folder, image, n_frames, size, origin):
    """Frames of a camera panning over `image` by SHIFT pixels per frame."""
    y, x = origin
    folder.mkdir(parents=True)
    for t in range(n_frames):
        write_image(folder / f'{t:08d}.png', image[y + t * SHIFT:y + t * SHIFT + size, x:x + size])


def make_dataset(root):
    """root/train/HR/<video>/ (2 videos x 6 frames) and root/test (the generation script's layout)."""
    from jittor_self_blind_vsr.script_gene_dataset_blurdown import generate
    images = {'astronaut': (skimage.data.astronaut(), (40, 180)), 'coffee': (skimage.data.coffee(), (60, 200))}
    for name, (image, origin) in images.items():
        write_video(root / 'train' / 'HR' / name, image, 6, HR_SIZE, origin)
    write_video(root / 'test_hr' / 'chelsea', skimage.data.chelsea(), 5, TEST_HR_SIZE, (60, 150))
    generate(str(root / 'test_hr'), str(root / 'test'), kind='Realistic', seed=0, progress=False)
    return root


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('data'))


def train_argv(dataset, experiment_dir, save='run', epochs=2, extra=()):
    return ['--template', 'Self_Blind_VSR_CPU', '--dir_data', str(dataset / 'train'),
            '--dir_data_test', str(dataset / 'test'), '--experiment_dir', str(experiment_dir),
            '--pretrain_models_dir', str(dataset / 'no_such_folder'), '--random_flow_init',
            '--save', save, '--epochs', str(epochs), '--test_every', '2', '--lr', '5e-4', '--seed', '3',
            *extra]


def train(argv):
    from jittor_self_blind_vsr.main import main
    assert main(argv) == 0


def training_state(folder):
    from jittor_self_blind_vsr.utils.checkpoint import load_pickle_safe
    return load_pickle_safe(folder / 'training_state.pkl')


@pytest.fixture(scope='module')
def straight_run(dataset, tmp_path_factory):
    """Two epochs in one go."""
    experiments = tmp_path_factory.mktemp('exp')
    train(train_argv(dataset, experiments, epochs=2))
    return experiments / 'run'


def test_training_lowers_the_loss(straight_run):
    totals = training_state(straight_run)['logs']['loss_total']
    assert len(totals) == 2
    assert totals[1] < 0.97 * totals[0]


def test_evaluation_is_logged(straight_run):
    logs = training_state(straight_run)['logs']
    for name in ('psnr', 'cycle_psnr', 'down_psnr'):
        assert len(logs[name]) == 2 and all(10 < value < 60 for value in logs[name])
    log = (straight_run / 'log.txt').read_text()
    assert log.count('average Cycle-PSNR') == 2


def test_experiment_folder_layout(straight_run):
    from jittor_self_blind_vsr.utils.checkpoint import load_state_dict_file
    state = training_state(straight_run)
    assert state['epoch'] == 2
    latest = load_state_dict_file(straight_run / 'model' / 'model_latest.pkl')
    assert set(latest) == set(state['model'])
    assert all(np.array_equal(latest[key], state['model'][key]) for key in latest)
    assert (straight_run / 'model' / 'model_best.pkl').is_file()
    assert 'From epoch 0...' in (straight_run / 'config.txt').read_text()
    for plot in ('psnr.png', 'cycle_psnr.png', 'downdata_psnr.png', 'loss_total.png', 'loss_L1.png',
                 'loss_cycle.png', 'loss_boundaries.png', 'loss_sparse.png', 'loss_center.png'):
        assert (straight_run / plot).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', plot
    images = straight_run / 'result' / 'REDS_HRLR' / 'chelsea'
    for postfix in ('gt', 'lr', 'sr', 'lr_cycle', 'lr_down', 'sr_down', 'est_kernel', 'gt_kernel'):
        assert (images / f'00000002_{postfix}.png').is_file(), postfix
    assert not list(straight_run.rglob('*.tmp'))


def assert_same_weights(state_a, state_b):
    assert set(state_a['model']) == set(state_b['model'])
    for key, value in state_a['model'].items():
        np.testing.assert_array_equal(value, state_b['model'][key], err_msg=key)
    for moment in ('m', 'v'):
        for key, value in state_a['optimizer'][moment].items():
            np.testing.assert_array_equal(value, state_b['optimizer'][moment][key], err_msg=key)
    assert state_a['optimizer']['n_step'] == state_b['optimizer']['n_step']


def test_resume_gives_the_same_weights(dataset, straight_run, tmp_path):
    (tmp_path / 'run').mkdir()  # an experiment of an earlier version: its config.txt, no .sbvsr-train
    (tmp_path / 'run' / 'config.txt').write_text('From epoch 0...\n\nbatch_size: 2\n')
    (tmp_path / 'run' / 'marker').write_text('old')
    train(train_argv(dataset, tmp_path, epochs=1))
    archived = [p for p in tmp_path.iterdir() if p.name.startswith('run_archived_')]
    assert len(archived) == 1 and (archived[0] / 'marker').read_text() == 'old'
    assert training_state(tmp_path / 'run')['epoch'] == 1
    train(train_argv(dataset, tmp_path, epochs=2, extra=['--resume']))
    resumed = training_state(tmp_path / 'run')
    straight = training_state(straight_run)
    assert resumed['epoch'] == 2
    assert_same_weights(resumed, straight)
    assert resumed['logs'].keys() == straight['logs'].keys()
    for name, values in straight['logs'].items():
        assert resumed['logs'][name] == pytest.approx(values, rel=1e-12), name
    assert 'From epoch 1...' in (tmp_path / 'run' / 'config.txt').read_text()


KILL_AT_SAVE = '''
import os, pickle, signal, sys

def dump_then_die(obj, f, protocol=None):
    data = pickle.dumps(obj, protocol=protocol)
    if isinstance(obj, dict) and obj.get('epoch') == {epoch}:
        f.write(data[:len(data) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    f.write(data)

pickle.dump = dump_then_die  # this process only: the checkpoint writer's pickling
from jittor_self_blind_vsr.main import main
sys.exit(main(sys.argv[1:]))
'''


def test_kill_while_saving_resumes_from_last_good_checkpoint(dataset, straight_run, tmp_path):
    train(train_argv(dataset, tmp_path, epochs=1))
    script = tmp_path / 'kill_at_save.py'
    script.write_text(KILL_AT_SAVE.format(epoch=2))
    command = [sys.executable, str(script), *train_argv(dataset, tmp_path, epochs=2, extra=['--resume'])]
    # Through a shell: Jittor's SIGCHLD handler ends this process when a direct child dies by a signal.
    result = subprocess.run(['sh', '-c', '"$@"; exit $?', 'sh', *command], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, log_silent='1'))
    assert result.returncode == 128 + signal.SIGKILL, result.stderr[-2000:]
    assert training_state(tmp_path / 'run')['epoch'] == 1  # the killed save left the previous one
    train(train_argv(dataset, tmp_path, epochs=2, extra=['--resume']))
    assert_same_weights(training_state(tmp_path / 'run'), training_state(straight_run))


def test_resume_without_checkpoint_is_one_clear_error(dataset, tmp_path, capsys):
    from jittor_self_blind_vsr.main import main
    assert main(train_argv(dataset, tmp_path, save='never_started', extra=['--resume'])) == 1
    err = capsys.readouterr().err
    assert 'cannot continue' in err and 'Traceback' not in err
    assert not (tmp_path / 'never_started').exists()


def test_missing_flow_weights_stop_before_any_file_is_written(dataset, tmp_path, capsys):
    from jittor_self_blind_vsr.main import main
    argv = [a for a in train_argv(dataset, tmp_path) if a != '--random_flow_init']
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert 'PWC-Net initial weights not found' in err and '--random_flow_init' in err
    assert list(Path(tmp_path).iterdir()) == []


SLOW_SECOND_EPOCH = '''
from jittor_self_blind_vsr.logger.logger import Logger  # imports no Jittor: that stays inside main()
from jittor_self_blind_vsr.main import main
write_log = Logger.write_log

def write_log_then_wait(self, text, echo=True):
    write_log(self, text, echo)
    if text.startswith('[Epoch 2]'):  # epoch 1 is committed, epoch 2 begins
        ready()
        time.sleep(60)

Logger.write_log = write_log_then_wait
sys.exit(main(sys.argv[1:]))
'''


def test_ctrl_c_keeps_the_last_committed_epoch(dataset, straight_run, tmp_path):
    """A terminal's Ctrl-C (the whole process group) while loader workers run."""
    train(train_argv(dataset, tmp_path, epochs=1))
    before = snapshot(tmp_path / 'run')
    argv = train_argv(dataset, tmp_path, epochs=2, extra=['--resume', '--n_threads', '2'])
    code, err = signal_when_ready(SLOW_SECOND_EPOCH, argv, signal.SIGINT, group=True, timeout=300)
    assert code == 130, err[-3000:]
    state = tmp_path / 'run' / 'training_state.pkl'
    assert err.strip().splitlines()[-1] == (f'sbvsr-train: interrupted (SIGINT): {state} keeps epoch 1, '
                                            f'the last one completed')
    after = snapshot(tmp_path / 'run')
    assert {k: v for k, v in after.items() if k not in ('log.txt', 'config.txt')} == \
        {k: v for k, v in before.items() if k not in ('log.txt', 'config.txt')}  # no temporary, nothing replaced
    assert after['log.txt'].decode().endswith(f'Interrupted (SIGINT): {state} keeps epoch 1, the last one completed\n')
    train(train_argv(dataset, tmp_path, epochs=2, extra=['--resume']))
    assert_same_weights(training_state(tmp_path / 'run'), training_state(straight_run))


def test_epoch_order_follows_seed_and_epoch_alone():
    """Epoch N's loader order is the permutation of default_rng(seed + N), whatever the loader
    did before (a resumed run), set through Jittor's public sampler hook: Jittor's private
    shuffle generator is deleted here, as in a Jittor release without it."""
    import jittor as jt
    from jittor_self_blind_vsr.trainer.trainer_flow_video import Trainer_Flow_Video

    class Clips(jt.dataset.Dataset):
        def __init__(self):
            super().__init__()
            self.set_attrs(total_len=10, batch_size=3, shuffle=True)
            del self._shuffle_rng

        def __getitem__(self, index):
            return np.array([index], np.int32)

    def epoch_order(loader, epoch):
        trainer = SimpleNamespace(args=SimpleNamespace(seed=3), loader_train=loader, set_epoch_lr=lambda e: 1e-4,
                                  ckp=SimpleNamespace(write_log=lambda *args, **kwargs: None))
        Trainer_Flow_Video._start_epoch(trainer, epoch)
        return [int(value) for batch in loader for value in batch.numpy().ravel()]

    straight = Clips()
    orders = [epoch_order(straight, epoch) for epoch in (1, 2, 3)]
    assert orders == [np.random.default_rng(3 + epoch).permutation(10).tolist() for epoch in (1, 2, 3)]
    assert epoch_order(Clips(), 3) == orders[2]


def test_fast_precision_trains_like_exact(dataset, straight_run, tmp_path):
    """The same two epochs at --precision fast (a child process: the precision is fixed when
    Jittor starts): Winograd, the batched window and the fused Adam change only rounding, so
    the epoch losses stay within 1e-4 of exact's and still fall."""
    argv = train_argv(dataset, tmp_path, save='fast', epochs=2, extra=['--precision', 'fast'])
    done = subprocess.run([sys.executable, '-m', 'jittor_self_blind_vsr.main', *argv], capture_output=True,
                          text=True, timeout=1800, cwd=Path(__file__).resolve().parents[1], env=child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'not available' not in done.stderr
    fast = training_state(tmp_path / 'fast')['logs']['loss_total']
    exact = training_state(straight_run)['logs']['loss_total']
    assert len(fast) == 2 and fast[1] < 0.97 * fast[0]
    np.testing.assert_allclose(fast, exact, rtol=1e-4)  # measured: 4e-7
