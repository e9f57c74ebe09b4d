"""Streaming inference: a long clip costs memory independent of its length, the frames streamed
one window at a time are today's output bit for bit, an interrupted --resume run goes on without
redoing its finished frames and ends with the frames of an uninterrupted run, a run with other
options is refused, and the progress line reports frames per second and the time left."""
import io
import json
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, parity_file
from interrupting import snapshot
from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer import sources
from jittor_self_blind_vsr.infer.progress import Progress
from jittor_self_blind_vsr.infer.results import MANIFEST, RESUME_RECORD
from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
from jittor_self_blind_vsr.utils.image_io import read_image, write_image
from parity_weights import seeded_state

SHORT, LONG = 9, 80  # frames of the resume clips; the memory clips have LONG and 3 * LONG
# One thread per test process: the tests' processes share a loaded machine, where Jittor's
# worker threads would mostly wait for each other.
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', log_silent='1')


def pan(rng, n_frames, height, width, scale=4):
    """(HR, LR) uint8 frames of a smooth random canvas panning 1 px down and 2 px right per HR frame."""
    canvas = cv2.GaussianBlur(rng.random((height * scale + n_frames, width * scale + 2 * n_frames, 3)),
                              (0, 0), 3)
    canvas = ((canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255).astype(np.float32)
    hrs = [canvas[i:i + height * scale, 2 * i:2 * i + width * scale].round().astype(np.uint8)
           for i in range(n_frames)]
    return hrs, [cv2.resize(hr, (width, height), interpolation=cv2.INTER_AREA) for hr in hrs]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """small.pkl, other.pkl (other weights), {LR,HR}/clip/<frame>.png (LR 24x32, SHORT frames) and
    long<N>/<frame>.png (16x16, N frames)."""
    root = tmp_path_factory.mktemp('streaming')
    rng = np.random.default_rng(5)
    hrs, lrs = pan(rng, SHORT, 24, 32)
    for sub, frames in (('LR', lrs), ('HR', hrs)):
        (root / sub / 'clip').mkdir(parents=True)
        for i, frame in enumerate(frames):
            write_image(root / sub / 'clip' / f'{i:08d}.png', frame)
    for n in (LONG, 3 * LONG):
        (root / f'long{n}').mkdir()
        for i, frame in enumerate(pan(rng, n, 16, 16)[1]):
            write_image(root / f'long{n}' / f'{i:08d}.png', frame)
    save_state_dict_file(seeded_state(parity_file('small_config_keys.tsv'), 0), root / 'small.pkl')
    save_state_dict_file(seeded_state(parity_file('small_config_keys.tsv'), 1), root / 'other.pkl')
    return root


def cli(data, out, *extra, model='small.pkl'):
    return ['--model_path', str(data / model), '--input_path', str(data / 'LR'), '--gt_path', str(data / 'HR'), '--result_path', str(out), '--dataset_name', 'd', '--blur_type', 'b',
            '--device', 'cpu', '--tile_overlap', '8', *extra]


def run(argv, script='sys.exit(inference.main(sys.argv[1:]))'):
    """(exit status, stdout, stderr) of sbvsr-infer's main in a process of its own."""
    code = f'import sys\nfrom jittor_self_blind_vsr import inference\n{script}'
    child = subprocess.run([sys.executable, '-c', code, *map(str, argv)], capture_output=True, text=True, cwd=REPO,
                           env=ENV, timeout=900)
    return child.returncode, child.stdout, child.stderr


# ---------------------------------------------------------------- memory

MEASURE = '''
import tracemalloc
from jittor_self_blind_vsr.infer.results import InferenceRun
tracemalloc.start()
log_warm_up, at_loop = InferenceRun.log_warm_up, []

def warmed_up(self, *args):  # the frame loop starts: Python memory is measured from here
    log_warm_up(self, *args)
    tracemalloc.reset_peak()
    at_loop.append(tracemalloc.get_traced_memory()[0])

InferenceRun.log_warm_up = warmed_up
code = inference.main(sys.argv[1:])
# VmHWM (KiB), not ru_maxrss: a child forked from pytest starts with pytest's ru_maxrss
hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))
print('MEMORY', tracemalloc.get_traced_memory()[1] - at_loop[0], int(hwm.split()[1]))
sys.exit(code)
'''


def test_memory_does_not_grow_with_the_clip_length(data, tmp_path):
    """The same tiny frames, LONG and 3 * LONG of them: the loop's Python allocations (tracemalloc: frames,
    outputs, records) and the process's peak resident memory stay the same, well below what keeping
    one HR frame per extra frame (12 KiB each) or one record per frame (about 1 KiB) would add."""
    measured = {}
    for n in (LONG, 3 * LONG):
        argv = ['--model_path', data / 'small.pkl', '--input_path', data / f'long{n}', '--result_path',
                tmp_path / str(n), '--device', 'cpu', '--save_video']
        code, out, err = run(argv, MEASURE)
        assert code == 0, err[-2000:]
        python_peak, rss_kib = map(int, out.split('MEMORY')[-1].split())
        measured[n] = python_peak, rss_kib * 1024
        assert len(os.listdir(tmp_path / str(n) / f'long{n}' / 'unknown' / f'long{n}')) == n - 4
    extra = 2 * LONG  # frames
    python_growth = measured[3 * LONG][0] - measured[LONG][0]
    rss_growth = measured[3 * LONG][1] - measured[LONG][1]
    # 5-16 KiB measured (CI's full run: 16.2 KiB), and 219 KiB with the records kept in memory as before
    # streaming: 400 bytes a frame (64 KiB) stays clear of both
    assert python_growth < extra * 400, measured
    # resident memory between two processes varies by a few MiB (allocator arenas, Jittor's pools):
    # this bound catches keeping each frame's float64 HR output (96 KiB a frame), the sharp check is above
    assert rss_growth < extra * 64 * 64 * 3 * 8 / 2, measured


# ---------------------------------------------------------------- streaming is today's output

def windows_at_once(data, tile, border):
    """The clip restored as before streaming: every frame read first, then window after window."""
    from jittor_self_blind_vsr.infer import restorer
    from jittor_self_blind_vsr.infer.sources import window_indices
    from jittor_self_blind_vsr.utils.image_io import to_uint8_image
    net, _ = restorer.load_model(str(data / 'small.pkl'), 4, 5, True)
    paths = sorted((data / 'LR' / 'clip').iterdir())
    frames = {i: sources.model_input(read_image(p), (24, 32)) for i, p in enumerate(paths)}
    windows = restorer.clip_restorer(net, (24, 32), tile, 8)
    import jittor as jt
    with jt.no_grad():
        return {paths[w[2]].stem: to_uint8_image(windows.restore(w, frames).numpy()[0])
                for w in window_indices(len(paths), 5, border)}


@pytest.mark.parametrize('tile', [0, 20])
def test_streamed_frames_are_the_windows_restored_at_once(data, tmp_path, tile):
    assert inference.main(cli(data, tmp_path, '--border', '--tile', str(tile))) == 0
    expected = windows_at_once(data, tile, border=True)
    assert len(expected) == SHORT
    for name, image in expected.items():
        np.testing.assert_array_equal(read_image(tmp_path / 'd' / 'b' / 'clip' / f'{name}.png'), image)


# ---------------------------------------------------------------- resume

STOP_AFTER = '''
import os, time
from jittor_self_blind_vsr.infer.results import InferenceRun
add_frame, done = InferenceRun.add_frame, []

def counted_add_frame(self, clip, frame):
    add_frame(self, clip, frame)
    done.append(frame.name)
    if len(done) == int(os.environ['STOP_AFTER']):
        os.kill(os.getpid(), int(os.environ['STOP_SIGNAL']))
        time.sleep(600)

InferenceRun.add_frame = counted_add_frame
sys.exit(inference.main(sys.argv[1:]))
'''


def interrupt(argv, frames, signum):
    """Run sbvsr-infer and send it `signum` once `frames` frames are done; returns (exit status, stderr).

    The process signals itself, under a shell: Jittor's SIGCHLD handler in this test process
    would end it when a child of its own is killed (utils/interrupt.py)."""
    code = f'import sys\nfrom jittor_self_blind_vsr import inference\n{STOP_AFTER}'
    child = subprocess.run(['sh', '-c', '"$0" "$@"; exit $?', sys.executable, '-c', code, *map(str, argv)],
                           capture_output=True, text=True, cwd=REPO, timeout=900,
                           env=dict(ENV, STOP_AFTER=str(frames), STOP_SIGNAL=str(int(signum))))
    return child.returncode, child.stderr


def png_files(folder):
    """{relative path: (inode, mtime in ns)} of the PNG files under `folder`."""
    return {p.relative_to(folder): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob('*.png')}


def frame_lines(log):
    return [line.split()[1] for line in log.read_text().splitlines() if line.startswith('> ')]


@pytest.fixture(scope='module')
def uninterrupted(data, tmp_path_factory):
    """The result of one run straight through, with --border, --save_video and --tile 20."""
    out = tmp_path_factory.mktemp('straight')
    code, _, err = run(cli(data, out, '--border', '--save_video', '--tile', '20'))
    assert code == 0, err[-2000:]
    return out / 'd' / 'b'


def video_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.mark.parametrize('signum', [signal.SIGKILL, signal.SIGINT], ids=['SIGKILL', 'SIGINT'])
def test_an_interrupted_run_resumes_without_redoing_finished_frames(data, tmp_path, uninterrupted, signum):
    argv = cli(data, tmp_path, '--border', '--save_video', '--tile', '20', '--resume')
    code, err = interrupt(argv, 4, signum)
    assert code == 128 + signum, err[-2000:]
    resumable = tmp_path / 'd' / '.b.resumable'
    if signum == signal.SIGINT:
        assert err.strip().splitlines()[-1] == (f'sbvsr-infer: interrupted (SIGINT): nothing was moved into '
                                                f'{tmp_path / "d" / "b"} (it was not created); 4 restored frames '
                                                f'are kept in {resumable}, and --resume continues from there')
        assert sorted(os.listdir(resumable)) == ['.frames.jsonl', '.resume.json', 'clip', 'inference_log.txt']
    finished = png_files(resumable)
    assert len(finished) >= 4
    # the resumed run restores only the frames not finished, and leaves the finished ones' files alone
    code, out, err = run(cli(data, tmp_path, '--border', '--save_video', '--tile', '20', '--resume'))
    assert code == 0, err[-2000:]
    result = tmp_path / 'd' / 'b'
    assert not resumable.exists()
    assert [line.split()[1] for line in out.splitlines() if line.startswith('> ')] == [
        f'clip-{i:08d}' for i in range(len(finished), SHORT)]
    assert {name: png_files(result)[name] for name in finished} == finished
    # the same frames, video, log lines and metrics as one run straight through
    assert sorted(os.listdir(result)) == sorted(os.listdir(uninterrupted))
    for name in png_files(uninterrupted):
        assert (result / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    decoded, expected = video_frames(result / 'clip.mp4'), video_frames(uninterrupted / 'clip.mp4')
    assert len(decoded) == SHORT and all(np.array_equal(a, b) for a, b in zip(decoded, expected))
    assert frame_lines(result / 'inference_log.txt') == frame_lines(uninterrupted / 'inference_log.txt')
    assert '# Resumed: ' in (result / 'inference_log.txt').read_text()
    metrics, straight = (json.loads((r / 'metrics.json').read_text()) for r in (result, uninterrupted))
    frames = metrics['videos']['clip']['frames']
    assert [(f['frame'], f['psnr']) for f in frames] == [(f['frame'], f['psnr'])
                                                         for f in straight['videos']['clip']['frames']]
    assert metrics['total']['avg_psnr'] == pytest.approx(np.mean([f['psnr'] for f in frames]), abs=1e-9)


def test_a_damaged_finished_frame_is_redone_with_those_after_it(data, tmp_path, uninterrupted):
    argv = cli(data, tmp_path, '--border', '--save_video', '--tile', '20', '--resume')
    assert interrupt(argv, 5, signal.SIGKILL)[0] == 128 + signal.SIGKILL
    resumable = tmp_path / 'd' / '.b.resumable'
    damaged = resumable / 'clip' / '00000002.png'
    damaged.write_bytes(damaged.read_bytes()[:-1])
    kept = {name: stat for name, stat in png_files(resumable).items() if name.stem < '00000002'}
    code, out, err = run(argv)
    assert code == 0, err[-2000:]
    result = tmp_path / 'd' / 'b'
    assert [line.split()[1] for line in out.splitlines() if line.startswith('> ')] == [
        f'clip-{i:08d}' for i in range(2, SHORT)]
    assert {name: png_files(result)[name] for name in kept} == kept
    for name in png_files(uninterrupted):
        assert (result / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_resuming_with_other_options_or_model_is_refused(data, tmp_path):
    argv = cli(data, tmp_path, '--resume')
    code, err = interrupt(argv, 2, signal.SIGKILL)
    assert code == 128 + signal.SIGKILL, err[-2000:]
    resumable = tmp_path / 'd' / '.b.resumable'
    before = snapshot(tmp_path)
    del before[os.path.join('d', '.b.lock')]  # the killed run's lock file: the next run takes it over and removes it
    for extra, model, reason in ((['--tile', '20'], 'small.pkl', 'other options (--tile 0 there, 20 here)'),
                                 (['--border'], 'small.pkl', 'other options (--border False there, True here)'),
                                 ([], 'other.pkl', 'another model (the model files differ)')):
        code, _, err = run(cli(data, tmp_path, '--resume', *extra, model=model))
        assert code == 1
        assert err.strip().splitlines() == [f'sbvsr-infer: {resumable} holds an interrupted run with {reason}: give '
                                            f'the options it was started with, or remove that folder to start '
                                            f'afresh']
        assert snapshot(tmp_path) == before


def test_a_folder_of_that_name_not_left_by_a_run_is_not_used(data, tmp_path, capsys):
    mine = tmp_path / 'd' / '.b.resumable'
    mine.mkdir(parents=True)
    (mine / 'notes.txt').write_text('mine')
    assert inference.main(cli(data, tmp_path, '--resume')) == 1
    assert capsys.readouterr().err.strip().endswith(f'{mine} exists and is not an interrupted run of sbvsr-infer '
                                                    f'--resume, so it is not used; move it away or give another '
                                                    f'--result_path')
    assert os.listdir(mine) == ['notes.txt'] and not (tmp_path / 'd' / 'b').exists()


def test_resume_needs_the_png_frames(capsys):
    with pytest.raises(SystemExit) as stop:
        inference.parse_args(['--resume', '--save_image', 'False'])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith('--resume keeps the finished frames as PNG files: it needs '
                                                    '--save_image')


def test_a_resumable_run_that_finished_no_frame_leaves_nothing(data, tmp_path, capsys):
    damaged = tmp_path / 'LR' / 'clip'
    damaged.mkdir(parents=True)
    for path in (data / 'LR' / 'clip').iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    first = damaged / '00000000.png'
    first.write_bytes(first.read_bytes()[:len(first.read_bytes()) // 2])  # the header is read, the data fails
    assert inference.main(cli(data, tmp_path / 'out', '--resume', '--input_path', str(damaged.parent))) == 1
    assert 'cannot read image' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- sound

def video_with_sound(data, path):
    """The LR clip as an MJPEG .avi at 12 frames per second with a 440 Hz tone, by ffmpeg."""
    ffmpeg = pytest.importorskip('imageio_ffmpeg', reason='the audio extra is not installed').get_ffmpeg_exe()
    subprocess.run([ffmpeg, '-v', 'error', '-framerate', '12', '-i', str(data / 'LR' / 'clip' / '%08d.png'), '-f',
                    'lavfi', '-i', 'sine=frequency=440:sample_rate=8000', '-c:v', 'mjpeg', '-q:v', '2', '-c:a',
                    'pcm_s16le', '-shortest', str(path)], check=True)
    return ffmpeg


def test_the_input_videos_sound_is_copied_from_the_first_restored_frame(data, tmp_path):
    ffmpeg = video_with_sound(data, tmp_path / 'walk.avi')
    argv = ['--model_path', str(data / 'small.pkl'), '--input_path', str(tmp_path / 'walk.avi'), '--result_path',
            str(tmp_path / 'out'), '--save_video', '--device', 'cpu']
    assert inference.main(argv) == 0
    result = tmp_path / 'out' / 'walk' / 'unknown'
    assert sorted(os.listdir(result)) == ['inference_log.txt', 'metrics.csv', 'metrics.json', 'walk', 'walk.mp4']
    assert len(video_frames(result / 'walk.mp4')) == SHORT - 4
    assert cv2.VideoCapture(str(result / 'walk.mp4')).get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    sound = subprocess.run([ffmpeg, '-v', 'error', '-i', str(result / 'walk.mp4'), '-map', '0:a', '-f', 's16le',
                            '-ac', '1', '-ar', '8000', '-'], capture_output=True, check=True).stdout
    # the frames restored, 2 to SHORT - 3, last (SHORT - 4) / 12 s: so does the sound (AAC pads up to 1024 samples)
    assert abs(len(sound) // 2 - (SHORT - 4) / 12 * 8000) <= 1024
    assert np.abs(np.frombuffer(sound, np.int16)).max() > 1000


def test_without_ffmpeg_the_log_says_the_sound_is_not_copied(data, tmp_path, monkeypatch):
    from jittor_self_blind_vsr.infer import results
    video = tmp_path / 'walk.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 12, (32, 24))
    for path in sorted((data / 'LR' / 'clip').iterdir()):
        writer.write(cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR))
    writer.release()
    monkeypatch.setattr(results, 'ffmpeg_program', lambda: None)
    argv = ['--model_path', str(data / 'small.pkl'), '--input_path', str(video), '--result_path',
            str(tmp_path / 'out'), '--save_video', '--device', 'cpu']
    assert inference.main(argv) == 0
    result = tmp_path / 'out' / 'walk' / 'unknown'
    assert len(video_frames(result / 'walk.mp4')) == SHORT - 4
    assert ("# walk: the input's sound, if any, is not copied: that needs ffmpeg (pip install imageio-ffmpeg, or "
            "an ffmpeg on the PATH)") in (result / 'inference_log.txt').read_text().splitlines()


# ---------------------------------------------------------------- progress

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_off_a_terminal_is_a_line_every_interval_with_rate_and_time_left():
    clock, lines = Clock(), io.StringIO()
    progress = Progress('walk', 10, done=2, terminal=io.StringIO(), lines=lines, every=30, clock=clock)
    for step in range(8):
        clock.now += 20  # 3 frames per minute
        progress.update()
    assert lines.getvalue().splitlines() == [
        'walk: 4/10 frames, 0.05 frames/s, 0:00:40 elapsed, 0:02:00 left',
        'walk: 6/10 frames, 0.05 frames/s, 0:01:20 elapsed, 0:01:20 left',
        'walk: 8/10 frames, 0.05 frames/s, 0:02:00 elapsed, 0:00:40 left',
        'walk: 10/10 frames, 0.05 frames/s, 0:02:40 elapsed, 0:00:00 left',
    ]
