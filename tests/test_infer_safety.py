"""Issue #27, inference: --resume trusts nothing in its staging folder (links, foreign files, garbled
records, changed inputs), one run at a time writes a results folder, a video with a damaged frame is
refused instead of renamed, and absurd tiles and names are one sentence."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from interrupting import PRELUDE, READY, snapshot
from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer import results
from jittor_self_blind_vsr.infer.lock import lock_path
from jittor_self_blind_vsr.utils.image_io import read_image, write_image
from test_option_ranges import exit_status

N_FRAMES, SIZE = 7, (16, 16)
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', log_silent='1')


def pan(rng, n_frames, shift=0):
    canvas = cv2.GaussianBlur(rng.random((SIZE[0] * 4 + n_frames + 8, SIZE[1] * 4 + 2 * n_frames + 8, 3)), (0, 0), 3)
    canvas = ((canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255).astype(np.float32)
    hrs = [canvas[shift + i:shift + i + SIZE[0] * 4, 2 * i:2 * i + SIZE[1] * 4].round().astype(np.uint8)
           for i in range(n_frames)]
    return hrs, [cv2.resize(hr, SIZE[::-1], interpolation=cv2.INTER_AREA) for hr in hrs]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """LR/clip and HR/clip (N_FRAMES frames, LR 16x16) and `other`: other pictures of the same size."""
    root = tmp_path_factory.mktemp('safety')
    rng = np.random.default_rng(27)
    hrs, lrs = pan(rng, N_FRAMES)
    for sub, frames in (('LR', lrs), ('HR', hrs)):
        (root / sub / 'clip').mkdir(parents=True)
        for i, frame in enumerate(frames):
            write_image(root / sub / 'clip' / f'{i:08d}.png', frame)
    (root / 'other').mkdir()
    write_image(root / 'other' / 'frame.png', pan(rng, 1, shift=5)[1][0])
    return root


def cli(data, out, *extra, lr=None):
    return ['--model_path', 'embedded', '--device', 'cpu', '--input_path', str(lr or data / 'LR'),
            '--gt_path', str(data / 'HR'), '--result_path', str(out), '--dataset_name', 'd', '--blur_type', 'b',
            '--border', '--resume', *extra]


STOP_AFTER = '''
import os
from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer.results import InferenceRun
add_frame, done = InferenceRun.add_frame, []

def counted_add_frame(self, clip, frame):
    add_frame(self, clip, frame)
    done.append(frame.name)
    if len(done) == int(os.environ['STOP_AFTER']):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get('SLOW'):
        print('PID', os.getpid(), file=sys.stderr)
        ready()
        time.sleep(float(os.environ['SLOW']))

InferenceRun.add_frame = counted_add_frame
sys.exit(inference.main(sys.argv[1:]))
'''


def child(argv, stop_after=0, slow=None):
    """A Popen of sbvsr-infer's main, killed (SIGKILL) after `stop_after` frames, or sleeping `slow`
    seconds after each frame and saying its pid; stderr is a pipe.

    Under a shell: Jittor's SIGCHLD handler in this test process would end it when a child of its
    own is killed (utils/interrupt.py)."""
    env = dict(ENV, STOP_AFTER=str(stop_after), **({'SLOW': str(slow)} if slow else {}))
    script = PRELUDE + 'import signal\n' + STOP_AFTER
    return subprocess.Popen(['sh', '-c', '"$0" "$@"; exit $?', sys.executable, '-c', script, *map(str, argv)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after(argv, frames):
    """Run sbvsr-infer with argv, killed outright after `frames` frames."""
    process = child(argv, stop_after=frames)
    process.communicate(timeout=900)
    assert process.returncode == 128 + signal.SIGKILL


@pytest.fixture(scope='module')
def killed(data, tmp_path_factory):
    """OUT of a --resume --save_video run killed outright after 3 frames: OUT/d/.b.resumable holds 3
    finished frames, a leftover .clip.partial.mp4, and OUT/d/.b.lock the dead run's lock file."""
    out = tmp_path_factory.mktemp('killed') / 'out'
    kill_after(cli(data, out, '--save_video'), 3)
    resumable = out / 'd' / '.b.resumable'
    assert len(list((resumable / 'clip').glob('*.png'))) == 3 and (resumable / '.clip.partial.mp4').is_file()
    assert (out / 'd' / '.b.lock').is_file()
    return out


@pytest.fixture(scope='module')
def straight(data, tmp_path_factory):
    """The result of one uninterrupted run, in a process like the killed one's."""
    out = tmp_path_factory.mktemp('straight')
    process = child(cli(data, out, '--save_video'))
    assert process.wait(timeout=900) == 0, process.stderr.read()[-2000:]
    return out / 'd' / 'b'


def copy_of(killed, tmp_path):
    out = tmp_path / 'out'
    shutil.copytree(killed, out, symlinks=True)
    return out, out / 'd' / '.b.resumable'


def without_lock(found):
    """A snapshot without the dead run's lock file, which the next run takes over and removes."""
    found.pop(os.path.join('d', '.b.lock'))
    return found


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resumed(data, out, *extra, lr=None):
    """(exit status, stderr lines) of resuming the run in OUT in a process like the killed one's."""
    process = child(cli(data, out, '--save_video', *extra, lr=lr))
    err = process.communicate(timeout=900)[1]
    assert 'Traceback' not in err
    return process.returncode, err.strip().splitlines()


def refused(data, out, capsys):
    """(exit status, stderr lines) of a run refused before its first frame, in this process."""
    capsys.readouterr()
    code = inference.main(cli(data, out, '--save_video'))
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    return code, err.strip().splitlines()


def same_frames(result, straight):
    names = sorted(p.name for p in (straight / 'clip').iterdir())
    assert sorted(p.name for p in (result / 'clip').iterdir()) == names
    for name in names:
        assert (result / 'clip' / name).read_bytes() == (straight / 'clip' / name).read_bytes(), name


# ---------------------------------------------------------------- 2, 6: links in the staging folder

def link_clip_folder(resumable, outside):
    shutil.copytree(resumable / 'clip', outside)
    shutil.rmtree(resumable / 'clip')
    os.symlink(outside, resumable / 'clip')
    return 'the link clip'


def link_log(resumable, outside):
    outside.write_text('my notes\n')
    os.unlink(resumable / 'inference_log.txt')
    os.symlink(outside, resumable / 'inference_log.txt')
    return 'the link inference_log.txt'


def link_partial_video(resumable, outside):
    outside.write_bytes(b'my video')
    os.unlink(resumable / '.clip.partial.mp4')
    os.symlink(outside, resumable / '.clip.partial.mp4')
    return 'the link .clip.partial.mp4'


def link_identical_png(resumable, outside):
    """Issue #27 case 6: a staged PNG replaced by a link to an identical file elsewhere."""
    shutil.copy(resumable / 'clip' / '00000001.png', outside)
    os.unlink(resumable / 'clip' / '00000001.png')
    os.symlink(outside, resumable / 'clip' / '00000001.png')
    return 'the link clip/00000001.png'


@pytest.mark.parametrize('plant', [link_clip_folder, link_log, link_partial_video, link_identical_png])
def test_a_link_in_the_staging_folder_is_refused_and_nothing_is_written_through_it(data, killed, tmp_path, capsys,
                                                                                    plant):
    out, resumable = copy_of(killed, tmp_path)
    outside = tmp_path / 'elsewhere' / 'target'
    outside.parent.mkdir()
    what = plant(resumable, outside)
    before_outside, before_out = snapshot(tmp_path / 'elsewhere'), snapshot(out)
    code, err = refused(data, out, capsys)
    assert code == 1
    assert err == [f'sbvsr-infer: {resumable} holds {what}, which sbvsr-infer did not write there, so it is not '
                   f'used; move that away, or remove the folder to start afresh']
    assert snapshot(tmp_path / 'elsewhere') == before_outside  # nothing written outside OUT
    assert snapshot(out) == without_lock(before_out) and not (out / 'd' / 'b').exists()


# ---------------------------------------------------------------- 5: foreign files in the staging folder

@pytest.mark.parametrize('name', ['foreign.txt', 'clip/notes.txt', 'clip/extra_99999999.png', 'clip/sub/x.png'])
def test_a_foreign_file_in_the_staging_folder_is_refused(data, killed, tmp_path, capsys, name):
    out, resumable = copy_of(killed, tmp_path)
    (resumable / name).parent.mkdir(exist_ok=True)
    (resumable / name).write_bytes(b'mine')
    before = snapshot(out)
    code, err = refused(data, out, capsys)
    assert code == 1
    shown = name.rsplit('/', 1)[0] if name.startswith('clip/sub') else name
    assert err == [f'sbvsr-infer: {resumable} holds {shown}, which sbvsr-infer did not write there, so it is not '
                   f'used; move that away, or remove the folder to start afresh']
    assert snapshot(out) == without_lock(before) and sha256(resumable / name) == hashlib.sha256(b'mine').hexdigest()


def test_a_resumed_run_removes_its_own_leftovers_and_the_dead_runs_lock(data, killed, straight, tmp_path):
    out, resumable = copy_of(killed, tmp_path)
    code, err = resumed(data, out)
    assert code == 0, err
    result = out / 'd' / 'b'
    same_frames(result, straight)
    assert sorted(os.listdir(out / 'd')) == ['b']  # no lock file, no staging folder
    assert sorted(os.listdir(result)) == ['clip', 'clip.mp4', 'inference_log.txt', 'metrics.csv', 'metrics.json']
    assert '# Resumed: 3 frames' in (result / 'inference_log.txt').read_text()


# ---------------------------------------------------------------- 4: a changed input is restored again

def test_a_changed_input_frame_is_restored_again(data, tmp_path):
    """Issue #27 case 4, the input changed in place between the interruption and the resumed run."""
    lr, out = tmp_path / 'LR', tmp_path / 'out'
    shutil.copytree(data / 'LR', lr)
    kill_after(cli(data, out, '--save_video', lr=lr), 3)
    shutil.copy(data / 'other' / 'frame.png', lr / 'clip' / '00000003.png')  # in the windows of frames 1-5
    kept = (out / 'd' / '.b.resumable' / 'clip' / '00000000.png').stat()
    code, err = resumed(data, out, lr=lr)
    assert code == 0, err
    expected = tmp_path / 'expected'
    assert child(cli(data, expected, '--save_video', lr=lr)).wait(timeout=900) == 0
    result = out / 'd' / 'b'
    same_frames(result, expected / 'd' / 'b')
    assert (result / 'clip' / '00000000.png').stat().st_ino == kept.st_ino  # frame 0 does not see frame 3
    log = (result / 'inference_log.txt').read_text()
    assert '# Resumed: 1 frames' in log
    assert '# Resume: restoring again from there on, since the input frames of clip-00000001 changed' in log
    metrics = json.loads((result / 'metrics.json').read_text())
    assert metrics['total']['n_frames'] == N_FRAMES


def test_fingerprints_follow_the_decoded_frames_of_each_window(data, tmp_path):
    """A frame changes the fingerprints of the windows that hold it (and a GT frame its own window's);
    the same pixels in another file do not."""
    from jittor_self_blind_vsr.infer.sources import collect_clips, window_fingerprints
    shutil.copytree(data / 'LR', tmp_path / 'LR')
    shutil.copytree(data / 'HR', tmp_path / 'HR')
    args = inference.parse_args(cli(data, tmp_path / 'out', lr=tmp_path / 'LR') + ['--gt_path', str(tmp_path / 'HR')])

    def fingerprints():
        return list(window_fingerprints(collect_clips(args)[0], 5, True))

    before = fingerprints()
    assert len(before) == N_FRAMES == len(set(before))
    frame = read_image(tmp_path / 'LR' / 'clip' / '00000003.png')
    os.unlink(tmp_path / 'LR' / 'clip' / '00000003.png')
    cv2.imwrite(str(tmp_path / 'LR' / 'clip' / '00000003.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 0])  # other bytes, the same pixels
    assert fingerprints() == before
    frame[0, 0] ^= 1
    write_image(tmp_path / 'LR' / 'clip' / '00000003.png', frame)
    changed = fingerprints()
    assert [a == b for a, b in zip(before, changed)] == [True, False, False, False, False, False, True]
    gt = read_image(tmp_path / 'HR' / 'clip' / '00000006.png')
    write_image(tmp_path / 'HR' / 'clip' / '00000006.png', 255 - gt)
    assert [a == b for a, b in zip(changed, fingerprints())] == [True] * 6 + [False]


# ---------------------------------------------------------------- 8: garbled manifest records

def garble(field, value):
    def edit(entry):
        if field == 'record':
            del entry['record']
        else:
            entry['record'][field] = value
        return json.dumps(entry)
    return edit


@pytest.mark.parametrize('edit', [
    garble('forward_time', 'abc'), garble('record', None),
    lambda e: json.dumps(e).replace(json.dumps(e['record']['pre_time']), 'NaN', 1), garble('total_time', 1e308),
], ids=['string time', 'no record', 'NaN', '1e308'])
def test_a_garbled_record_is_restored_from_there_on(data, killed, straight, tmp_path, edit):
    out, resumable = copy_of(killed, tmp_path)
    manifest = resumable / results.MANIFEST
    lines = manifest.read_text().splitlines()
    lines[2] = edit(json.loads(lines[2]))
    manifest.write_text('\n'.join(lines) + '\n')
    code, err = resumed(data, out)
    assert code == 0, err
    result = out / 'd' / 'b'
    same_frames(result, straight)
    log = (result / 'inference_log.txt').read_text()
    assert '# Resumed: 2 frames' in log
    metrics = json.loads((result / 'metrics.json').read_text(), parse_constant=pytest.fail)
    assert metrics['total']['n_frames'] == N_FRAMES
    assert [f['frame'] for f in metrics['videos']['clip']['frames']] == [f'{i:08d}' for i in range(N_FRAMES)]


RECORD = dict(frame='a', psnr=30.5, ssim=0.5, **dict.fromkeys(results.TIME_KEYS + results.POST_PARTS, 0.5))
ENTRY = dict(clip='c', frame='a', sha256='0' * 64, inputs='1' * 64, wall=1.0, record=RECORD)


@pytest.mark.parametrize('entry', [
    dict(ENTRY, record=dict(RECORD, psnr='x')), dict(ENTRY, record=dict(RECORD, ssim=True)),
    dict(ENTRY, record=dict(RECORD, ssim=1.5)), dict(ENTRY, record=dict(RECORD, eval_time=-1.0)),
    dict(ENTRY, record=dict(RECORD, psnr=float('nan'))), dict(ENTRY, record=dict(RECORD, write_time=float('inf'))),
    dict(ENTRY, record=dict(RECORD, frame='b')), dict(ENTRY, record=dict(RECORD, extra=1)),
    dict(ENTRY, extra=1), dict(ENTRY, sha256=7), dict(ENTRY, sha256='A' * 64), dict(ENTRY, inputs=None),
    dict(ENTRY, wall='1'), dict(ENTRY, clip=3), dict(ENTRY, record=[]), [1, 2], None,
    dict(ENTRY, record=dict(RECORD, pre_time=10 ** 400)),
], ids=['string psnr', 'bool ssim', 'ssim > 1', 'negative time', 'NaN psnr', 'infinite time', 'other frame',
        'extra record key', 'extra key', 'sha256 number', 'sha256 upper case', 'no inputs', 'string wall',
        'clip number', 'record list', 'list', 'null', 'integer of 401 digits'])
def test_a_record_not_written_by_the_tool_is_not_valid(entry):
    assert results.valid_entry(ENTRY, True)
    assert not results.valid_entry(entry, True)


def test_a_line_nested_too_deep_for_the_parser_ends_the_manifest(tmp_path):
    (tmp_path / 'm').write_text(json.dumps(ENTRY) + '\n' + '[' * 100000 + ']' * 100000 + '\n' + json.dumps(ENTRY) + '\n')
    assert [entry for _, entry in results.read_manifest(tmp_path / 'm', True)] == [ENTRY]


def test_an_infinite_psnr_is_stored_as_null_and_read_back(tmp_path):
    entry = dict(ENTRY, record=dict(RECORD, psnr=None))
    (tmp_path / 'm').write_text(json.dumps(entry, allow_nan=False) + '\n')
    [(_, read)] = list(results.read_manifest(tmp_path / 'm', True))
    assert read['record']['psnr'] == float('inf')
    assert not results.valid_entry(entry, False)  # a PSNR where there is no GT


# ---------------------------------------------------------------- 3: one run at a time

def test_a_second_run_on_the_same_output_is_refused_and_the_first_covers_every_frame(data, tmp_path, capsys):
    out = tmp_path / 'out'
    first = child(cli(data, out), slow=1.0)
    try:
        for line in first.stderr:
            if line.startswith('PID '):
                pid = int(line.split()[1])
            if READY in line:
                break
        code, err = refused(data, out, capsys)
        assert code == 1
        assert err == [f'sbvsr-infer: another run is writing {out / "d" / "b"} (pid {pid}); wait for it to '
                       f'end, or give another --result_path, --dataset_name or --blur_type']
        rest = first.stderr.read()
        first.wait(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, rest[-2000:]
    result = out / 'd' / 'b'
    metrics = json.loads((result / 'metrics.json').read_text())
    assert metrics['total']['n_frames'] == N_FRAMES == len(metrics['videos']['clip']['frames'])
    assert '# Resumed' not in (result / 'inference_log.txt').read_text()
    assert sorted(os.listdir(out / 'd')) == ['b']


def test_a_lock_file_not_written_by_the_tool_is_refused_and_kept(data, tmp_path, capsys):
    out = tmp_path / 'out'
    path = lock_path(str(out), 'd', 'b')
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as f:
        f.write('my notes\n')
    code, line = exit_status(inference.main, cli(data, out), capsys)
    assert code == 1
    assert line == (f'sbvsr-infer: {path} exists and is not the lock file of sbvsr-infer (it was not written by '
                    f'sbvsr-infer), so it is not touched; move it away or give another --result_path, '
                    f'--dataset_name or --blur_type')
    assert open(path).read() == 'my notes\n' and sorted(os.listdir(out / 'd')) == ['.b.lock']


# ---------------------------------------------------------------- 7: a video with an undecodable frame

def test_a_video_that_decodes_fewer_frames_than_it_lists_is_refused(data, tmp_path, capsys):
    """Issue #27 case 7: an 8-frame MJPG .avi with 840 bytes overwritten at offset 5000."""
    video = tmp_path / 'walk.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 12, (64, 48))
    rng = np.random.default_rng(7)
    for i in range(8):
        writer.write(cv2.resize(pan(rng, 1)[1][0], (64, 48)))
    writer.release()
    damaged = bytearray(video.read_bytes())
    damaged[5000:5840] = bytes(840)
    video.write_bytes(bytes(damaged))
    capture, decoded = cv2.VideoCapture(str(video)), 0
    while capture.grab():
        decoded += 1
    assert 0 < decoded < 8 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 8
    out = tmp_path / 'out'
    code, line = exit_status(inference.main, ['--model_path', 'embedded', '--device', 'cpu', '--input_path',
                                              str(video), '--result_path', str(out)], capsys)
    assert code == 1
    missing = 8 - decoded
    assert line == (f'sbvsr-infer: the video {video} decodes {decoded} frames but its container lists 8: {missing} '
                    f'{"frame is" if missing == 1 else "frames are"} damaged or missing, and OpenCV does not tell '
                    f'which, so the restored frames could not be named after their source frames; repair or '
                    f're-encode the video')
    assert not out.exists()


# ---------------------------------------------------------------- messages

@pytest.mark.parametrize('argv,message', [
    (['--tile', '1', '--tile_overlap', '0'], '--tile 1 is too small'),
    (['--tile', '40', '--tile_overlap', '0'], '--tile_overlap 0 is too small'),
])
def test_absurd_tiles_are_one_sentence(argv, message, capsys):
    code, line = exit_status(inference.main, argv, capsys)
    assert code == 2 and message in line


def test_a_blur_type_too_long_for_its_staging_folder_is_named(data, tmp_path, capsys):
    out = tmp_path / 'out'
    argv = cli(data, out, '--blur_type', 'b' * 250)
    code, line = exit_status(inference.main, argv, capsys)
    assert code == 1
    assert line == ('sbvsr-infer: --blur_type is 250 bytes long, too long for the name of its staging folder '
                    '.<blur_type>.partial-XXXXXXXX (255 bytes at most): give at most 237 bytes')
    assert not out.exists()


def test_an_earlier_result_that_cannot_be_removed_is_named(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out, '--resume', 'False')) == 0
    real_rmtree = shutil.rmtree

    def stuck(path, onerror, **_):  # a folder of the old result cannot be removed (as for a read-only folder)
        onerror(os.rmdir, os.path.join(path, 'previous', 'clip'), (PermissionError, PermissionError(13, 'Permission denied'), None))

    monkeypatch.setattr(results.shutil, 'rmtree', stuck)
    capsys.readouterr()
    assert inference.main(cli(data, out, '--resume', 'False')) == 0
    err = capsys.readouterr().err.strip().splitlines()
    [old] = [n for n in os.listdir(out / 'd') if n.startswith('.b.old-')]
    assert err == [f'sbvsr-infer: warning: the earlier result it replaced could not be removed entirely (Permission '
                   f'denied: {out / "d" / old / "previous" / "clip"}); what is left of it is in {out / "d" / old}']
    real_rmtree(out / 'd' / old)


def test_a_frame_name_too_long_for_its_temporary_file_is_named(data, tmp_path, capsys):
    name = 'f' * 240
    (tmp_path / 'LR' / 'clip').mkdir(parents=True)
    for i in range(5):
        shutil.copy(data / 'LR' / 'clip' / f'{i:08d}.png', tmp_path / 'LR' / 'clip' / f'{name}{i}.png')
    out = tmp_path / 'out'
    code, line = exit_status(inference.main, ['--model_path', 'embedded', '--device', 'cpu', '--input_path',
                                              str(tmp_path / 'LR'), '--result_path', str(out)], capsys)
    assert code == 1
    assert line == (f'sbvsr-infer: the frame name {name}0 of video clip is too long for the temporary file of its PNG '
                    f'output (255 bytes at most with 18 added): rename the frames')
    assert not out.exists()
