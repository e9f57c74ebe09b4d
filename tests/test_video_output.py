"""--save_video: H.264 through ffmpeg by default (MJPEG 4:4:4 in .avi), 40 dB or more from the PNG frames
whichever decoder reads it; OpenCV's writer, said in the log, without ffmpeg; absurd --video_crf and
codec choices refused by the parser; a failing ffmpeg is one sentence and leaves no video behind."""
import os
import stat

import cv2
import numpy as np
import pytest

from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer import results
from jittor_self_blind_vsr.utils.image_io import read_image, write_image
from jittor_self_blind_vsr.utils.metrics import calc_psnr

imageio_ffmpeg = pytest.importorskip('imageio_ffmpeg', reason='imageio-ffmpeg is not installed')
N_FRAMES = 5


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """LR/clip: N_FRAMES frames of 32x32 (HR 128x128): a camera panning over the lower part of
    scikit-image's astronaut at the picture's own resolution, downscaled 4x. Footage of ordinary colour
    detail: the saturated upper half loses 2-4 dB more to 4:2:0's half-resolution colour
    (docs/inference.md has figures for both)."""
    from skimage import data
    root = tmp_path_factory.mktemp('video')
    picture = data.astronaut()
    (root / 'LR' / 'clip').mkdir(parents=True)
    for i in range(N_FRAMES):
        hr = picture[370:498, 300 + 8 * i:428 + 8 * i]
        write_image(root / 'LR' / 'clip' / f'{i:08d}.png', cv2.resize(hr, (32, 32), interpolation=cv2.INTER_AREA))
    return root / 'LR'


def cli(lr, out, *extra):
    return ['--model_path', 'embedded', '--device', 'cpu', '--input_path', str(lr), '--result_path', str(out),
            '--dataset_name', 'd', '--blur_type', 'b', '--border', '--save_video', *extra]


def decoded(path):
    """(codec and pixel format as ffmpeg names them, frames decoded by ffmpeg, frames decoded by OpenCV), RGB."""
    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    width, height = meta['size']
    by_ffmpeg = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in frames]
    capture, by_opencv = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return (meta['codec'], meta['pix_fmt'].split('(')[0]), by_ffmpeg, by_opencv
        by_opencv.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def written(out):
    return sorted(p for p in out.rglob('*') if not p.is_dir()) if out.exists() else []


def psnr_to_pngs(result, frames):
    pngs = [read_image(p) for p in sorted((result / 'clip').iterdir())]
    assert len(frames) == len(pngs) == N_FRAMES
    return min(calc_psnr(frame, png, 0) for frame, png in zip(frames, pngs))


@pytest.mark.parametrize('video_format, codec', [('mp4', ('h264', 'yuv420p')), ('avi', ('mjpeg', 'yuvj444p'))])
def test_the_video_is_h264_or_mjpeg_within_40_db_of_the_pngs(clip, tmp_path, capsys, video_format, codec):
    assert inference.main(cli(clip, tmp_path, '--video_format', video_format)) == 0
    result = tmp_path / 'd' / 'b'
    assert sorted(os.listdir(result)) == ['clip', f'clip.{video_format}', 'inference_log.txt', 'metrics.csv',
                                          'metrics.json']
    found, by_ffmpeg, by_opencv = decoded(result / f'clip.{video_format}')
    assert found == codec
    # measured: 42.1 dB (.mp4, CRF 18) and 46.3 dB (.avi) on the worst frame, both decoders alike
    assert psnr_to_pngs(result, by_ffmpeg) >= 40
    assert psnr_to_pngs(result, by_opencv) >= 40
    assert 'ffmpeg' not in capsys.readouterr().out


def test_without_ffmpeg_opencv_writes_the_video_and_the_log_says_why(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(results, 'ffmpeg_program', lambda: None)
    assert inference.main(cli(clip, tmp_path)) == 0
    line = ('# --save_video: no ffmpeg was found, so OpenCV writes the videos (mp4v, blockier than H.264); '
            'pip install imageio-ffmpeg gives H.264')
    assert line in capsys.readouterr().out.splitlines()
    assert line in (tmp_path / 'd' / 'b' / 'inference_log.txt').read_text().splitlines()
    found, by_ffmpeg, _ = decoded(tmp_path / 'd' / 'b' / 'clip.mp4')
    assert found == ('mpeg4', 'yuv420p') and len(by_ffmpeg) == N_FRAMES


def test_codec_options_without_ffmpeg_are_refused(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(results, 'ffmpeg_program', lambda: None)
    assert inference.main(cli(clip, tmp_path, '--video_crf', '23')) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        'sbvsr-infer: --video_codec and --video_crf need ffmpeg (pip install imageio-ffmpeg, or an ffmpeg on the '
        'PATH); without them OpenCV writes the videos']
    assert written(tmp_path) == []


@pytest.mark.parametrize('extra, message', [
    (['--video_crf', '52'], "argument --video_crf: must be an integer in [0, 51], not '52'"),
    (['--video_crf', '-1'], "argument --video_crf: must be an integer in [0, 51], not '-1'"),
    (['--video_codec', 'mpeg4', '--video_crf', '20'],
     '--video_crf applies to libx264 and libx265; mpeg4 is written at its quantiser -q:v 2 instead'),
    (['--video_codec', 'mjpeg'], '--video_codec mjpeg is not written in .mp4 files: give one of libx264, libx265, '
                                 'mpeg4'),
    (['--video_codec', 'vp9'], "argument --video_codec: invalid choice: 'vp9' (choose from 'libx264', 'libx265', "
                               "'mjpeg', 'mpeg4')"),
])
def test_absurd_video_options_are_one_sentence(capsys, extra, message):
    with pytest.raises(SystemExit) as stop:
        inference.parse_args(['--save_video', *extra])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f'sbvsr-infer: error: {message}'


def use_failing_ffmpeg(folder, monkeypatch, encoding):
    """Make the command use a fake ffmpeg in `folder` that lists the real one's encoders but runs the
    shell lines `encoding` instead of encoding."""
    fake = folder / 'ffmpeg'
    fake.write_text(f'#!/bin/sh\ncase "$*" in *-encoders*) exec "{imageio_ffmpeg.get_ffmpeg_exe()}" "$@";; esac\n'
                    + encoding)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(results, 'ffmpeg_program', lambda: str(fake))


def test_a_failing_ffmpeg_is_one_sentence_and_leaves_no_video(clip, tmp_path, capsys, monkeypatch):
    """An ffmpeg that lists its encoders but fails to encode, as one whose disk is full would."""
    use_failing_ffmpeg(tmp_path, monkeypatch, 'echo "Error opening output file: first line" >&2\n'
                                              'echo "Conversion failed!" >&2\nexit 3\n')
    out = tmp_path / 'out'
    assert inference.main(cli(clip, out)) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ['sbvsr-infer: ffmpeg failed to write the video clip.mp4 with libx264 (exit '
                                        'status 3): Conversion failed!']
    assert written(out) == []  # no results folder, no staging folder, no video


def test_a_resumed_run_after_a_failing_ffmpeg_leaves_no_video_in_the_kept_frames(clip, tmp_path, capsys, monkeypatch):
    """ffmpeg reads every frame, then fails: the frames are kept for --resume, the video is not, and the
    next run, with another --video_crf, writes it."""
    use_failing_ffmpeg(tmp_path, monkeypatch, 'cat > /dev/null\necho "Conversion failed!" >&2\nexit 1\n')
    out = tmp_path / 'out'
    assert inference.main(cli(clip, out, '--resume')) == 1
    assert 'Conversion failed!' in capsys.readouterr().err
    resumable = out / 'd' / '.b.resumable'
    assert sorted(os.listdir(resumable)) == ['.frames.jsonl', '.resume.json', 'clip', 'inference_log.txt']
    monkeypatch.undo()
    # the video is written again from the PNG files, so its quality may change on resumption
    assert inference.main(cli(clip, out, '--resume', '--video_crf', '23')) == 0
    assert '# Resumed: 5 frames' in capsys.readouterr().out
    found, by_ffmpeg, _ = decoded(out / 'd' / 'b' / 'clip.mp4')
    assert found == ('h264', 'yuv420p') and len(by_ffmpeg) == N_FRAMES
