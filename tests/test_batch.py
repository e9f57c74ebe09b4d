"""sbvsr-infer on a batch of videos (a folder of video files, or a glob pattern): one results folder per
video with the model loaded and compiled once, a broken video said in one line and skipped with the
exit status of a partly failed batch, a batch that cannot be run refused in one sentence, and an
interrupted batch naming what it kept."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer import restorer
from jittor_self_blind_vsr.infer.batch import PARTLY_FAILED
from jittor_self_blind_vsr.utils.image_io import write_image
from test_streaming import interrupt, pan

N_FRAMES = 5
LR_H, LR_W = 24, 32


def write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 25, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """clips/{a,b}.mp4 (LR 24x32, 5 frames), clips/x.mp4 (random bytes), clips/t.mp4 (a.mp4 cut in half);
    hr/a.mp4 and hr/b/<frame>.png, their ground truth."""
    root = tmp_path_factory.mktemp('batch')
    (root / 'clips').mkdir()
    (root / 'hr' / 'b').mkdir(parents=True)
    rng = np.random.default_rng(7)
    for name in 'ab':
        hrs, lrs = pan(rng, N_FRAMES, LR_H, LR_W)
        write_video(root / 'clips' / f'{name}.mp4', lrs)
        if name == 'a':
            write_video(root / 'hr' / 'a.mp4', hrs)
        else:
            for i, frame in enumerate(hrs):
                write_image(root / 'hr' / 'b' / f'{i:08d}.png', frame)
    (root / 'clips' / 'x.mp4').write_bytes(rng.bytes(3000))
    whole = (root / 'clips' / 'a.mp4').read_bytes()
    (root / 'clips' / 't.mp4').write_bytes(whole[:len(whole) // 2])
    return root


def cli(input_path, out, *extra):
    return ['--model_path', 'embedded', '--input_path', str(input_path), '--result_path', str(out), *extra]


def messages(err):
    return [line for line in err.splitlines() if line.startswith('sbvsr-infer:')]


def test_a_folder_with_broken_videos_restores_the_others_and_says_which_failed(data, tmp_path):
    out = tmp_path / 'out'
    # a process of its own, as users run it: OpenCV reads FFmpeg's log level when the process first
    # opens a video, which in this one the fixtures have done
    captured = subprocess.run([sys.executable, '-m', 'jittor_self_blind_vsr.inference', *cli(data / 'clips', out)],
                              env={k: v for k, v in os.environ.items() if k != 'OPENCV_FFMPEG_LOGLEVEL'},
                              capture_output=True, text=True, timeout=600)
    assert captured.returncode == PARTLY_FAILED, captured.stderr[-3000:]
    unreadable = 'is neither a folder nor a video file OpenCV can read'
    assert messages(captured.stderr) == [
        f'sbvsr-infer: video {data / "clips" / "t.mp4"} failed and is skipped: {data / "clips" / "t.mp4"} {unreadable}',
        f'sbvsr-infer: video {data / "clips" / "x.mp4"} failed and is skipped: {data / "clips" / "x.mp4"} {unreadable}',
        'sbvsr-infer: 2 of 4 videos failed and were skipped (t, x); 2 restored']
    assert 'moov atom' not in captured.stderr  # FFmpeg's own lines about the cut file are not printed
    # one results folder per good video, the default dataset name being the folder's; nothing for the others
    assert sorted(os.listdir(out)) == ['clips']
    assert sorted(os.listdir(out / 'clips')) == ['a', 'b']
    for name in 'ab':
        result = out / 'clips' / name / 'unknown'
        assert sorted(os.listdir(out / 'clips' / name)) == ['unknown']
        assert sorted(os.listdir(result)) == [name, 'inference_log.txt', 'metrics.csv', 'metrics.json']
        assert os.listdir(result / name) == ['00000002.png']  # 5 frames, no --border: the centre one
    summary = captured.stdout[captured.stdout.index('batch: '):].splitlines()
    assert summary[0] == 'batch: 2 of 4 videos restored'
    for line, name in zip(summary[1:3], 'ab'):
        folder = re.escape(str(out / 'clips' / name / 'unknown'))
        assert re.fullmatch(rf'  {name}: 1 frame, \d+\.\d s, results in {folder}', line), line
    assert summary[3:] == [f'  t: failed: {data / "clips" / "t.mp4"} {unreadable}',
                           f'  x: failed: {data / "clips" / "x.mp4"} {unreadable}']


def test_a_batch_of_broken_videos_only_fails_and_leaves_nothing(data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert inference.main(cli(data / 'clips' / '[tx].mp4', out)) == 1
    assert messages(capsys.readouterr().err)[-1] == 'sbvsr-infer: 2 of 2 videos failed and were skipped (t, x); 0 restored'
    assert not out.exists()


def test_a_glob_with_ground_truth_loads_the_model_once_and_scores_each_video(data, tmp_path, capsys, monkeypatch):
    loads, warm_ups = [], []
    load_model, warm_up = restorer.load_model, restorer.warm_up
    monkeypatch.setattr(restorer, 'load_model', lambda *a: loads.append(a) or load_model(*a))
    monkeypatch.setattr(restorer, 'warm_up', lambda *a: warm_ups.append(a) or warm_up(*a))
    out = tmp_path / 'out'
    argv = cli(data / 'clips' / '[ab].mp4', out, '--gt_path', str(data / 'hr'), '--dataset_name', 'set', '--border')
    assert inference.main(argv) == 0
    assert len(loads) == 1 and len(warm_ups) == 1
    summary = capsys.readouterr().out.split('batch: ')[1].splitlines()
    assert summary[0] == '2 of 2 videos restored'
    for line, name in zip(summary[1:], 'ab'):
        result = out / 'set' / name / 'unknown'
        metrics = json.loads((result / 'metrics.json').read_text())
        assert sorted(os.listdir(result / name)) == [f'{i:08d}.png' for i in range(N_FRAMES)]
        total = metrics['total']
        assert total['n_frames'] == N_FRAMES
        assert re.fullmatch(rf'  {name}: 5 frames, PSNR {total["avg_psnr"]:.5} dB, SSIM {total["avg_ssim"]:.4}, '
                            rf'\d+\.\d s, results in {re.escape(str(result))}', line), line
        warm = [line for line in (result / 'inference_log.txt').read_text().splitlines() if line.startswith('# Warm')]
        assert len(warm) == 1 and warm[0].endswith(', done for an earlier video of this batch') == (name == 'b')
        assert metrics['warmup'][0].get('earlier_video', False) == (name == 'b')


def test_the_exit_status_of_a_partly_failed_batch_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        inference.main(['--help'])
    assert f'{PARTLY_FAILED} a batch partly failed' in ' '.join(capsys.readouterr().out.split())


def refusal(data, tmp_path):
    """{case: (argv, the one line expected)} of batches refused before any work."""
    dup = tmp_path / 'dup'
    dup.mkdir()
    shutil.copy(data / 'clips' / 'a.mp4', dup / 'a.mp4')
    shutil.copy(data / 'clips' / 'a.mp4', dup / 'a.mkv')
    mixed = tmp_path / 'mixed'
    (mixed / 'frames').mkdir(parents=True)
    shutil.copy(data / 'clips' / 'a.mp4', mixed / 'a.mp4')
    only_a = tmp_path / 'only_a'
    only_a.mkdir()
    shutil.copy(data / 'hr' / 'a.mp4', only_a / 'a.mp4')
    out = tmp_path / 'out'
    pattern = data / 'clips' / '[ab].mp4'
    return {
        'same name': (cli(dup, out), f'the batch holds two videos named a ({dup / "a.mkv"} and {dup / "a.mp4"}), whose '
                                     f'results would share {out / "dup" / "a"}; rename one'),
        'no match': (cli(tmp_path / 'none' / '*.mp4', out), f'the input pattern {tmp_path / "none" / "*.mp4"} matches '
                                                            f'no file'),
        'folders and videos': (cli(mixed, out), f'the input path {mixed} holds both video folders and video files '
                                                f'(a.mp4); move one kind elsewhere'),
        'frames': (cli(data / 'hr' / 'b' / '*.png', out), f'the input pattern {data / "hr" / "b" / "*.png"} matches '
                                                         f'the image {data / "hr" / "b" / "00000000.png"}: give the '
                                                         f'folder of the frames instead'),
        'GT missing': (cli(pattern, out, '--gt_path', str(only_a)),
                       f'the GT folder {only_a} holds no video or frame folder named b (for '
                       f'{data / "clips" / "b.mp4"}); give ground truth for every video of the batch, or no --gt_path'),
        'GT not a folder': (cli(pattern, out, '--gt_path', str(only_a / 'a.mp4')),
                            f'with a batch of videos, --gt_path must be a folder holding a GT video or a folder of GT '
                            f'frames named after each input video; {only_a / "a.mp4"} is not a folder'),
        'GT videos for one video': (cli(data / 'clips' / 'a.mp4', out, '--gt_path', str(only_a)),
                                    f'the GT path {only_a} is a folder of video files: only sbvsr-infer\'s '
                                    f'--input_path takes it (as a batch); give one video here'),
        'results inside': (cli(data / 'clips', data / 'clips' / 'out'),
                           f'the results root {data / "clips" / "out" / "clips"} and the input folder '
                           f'{data / "clips"} lie inside one another; give another --result_path'),
    }


@pytest.mark.parametrize('case', ['same name', 'no match', 'folders and videos', 'frames', 'GT missing', 'GT not a folder',
                                  'GT videos for one video', 'results inside'])
def test_a_batch_that_cannot_run_is_one_sentence_before_any_work(data, tmp_path, capsys, case):
    argv, sentence = refusal(data, tmp_path)[case]
    assert inference.main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [f'sbvsr-infer: {sentence}']
    assert not (tmp_path / 'out').exists() and not (data / 'clips' / 'out').exists()


def test_an_interrupted_batch_names_what_it_kept_and_resumes(data, tmp_path):
    three = tmp_path / 'three'
    three.mkdir()
    for name, source in (('a', 'a'), ('b', 'b'), ('c', 'a')):
        shutil.copy(data / 'clips' / f'{source}.mp4', three / f'{name}.mp4')
    out = tmp_path / 'out'
    argv = cli(three, out, '--border', '--resume')
    code, err = interrupt(argv, N_FRAMES + 2, signal.SIGINT)  # a done, 2 frames of b
    assert code == 130, err[-2000:]
    assert messages(err) == [
        f'sbvsr-infer: interrupted (SIGINT): finished and kept: a ({out / "three" / "a" / "unknown"}); b was '
        f'stopped: nothing was moved into {out / "three" / "b" / "unknown"} (it was not created); 2 restored frames '
        f'are kept in {out / "three" / "b" / ".unknown.resumable"}, and --resume continues from there; not started: c']
    assert sorted(os.listdir(out / 'three')) == ['a', 'b']
    assert sorted(os.listdir(out / 'three' / 'b')) == ['.unknown.resumable']
    assert inference.main(argv) == 0
    log = (out / 'three' / 'b' / 'unknown' / 'inference_log.txt').read_text()
    assert '# Resumed: 2 frames an interrupted run finished are kept' in log
    for name in 'abc':
        assert len(os.listdir(out / 'three' / name / 'unknown' / name)) == N_FRAMES
