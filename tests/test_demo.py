"""sbvsr-demo: the clip really follows the requested camera path, and a tiny run writes
the comparison images and prints scores that match the files it wrote."""
import json
import re
import signal

import cv2
import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from interrupting import signal_when_ready
from jittor_self_blind_vsr import demo
from jittor_self_blind_vsr.utils.image_io import list_images, read_image
from jittor_self_blind_vsr.utils.metrics import calc_psnr, calc_ssim


def phase_shift(a, b):
    """(x, y) translation taking frame a to frame b: Hann-windowed phase correlation, 1/50 pixel steps."""
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) * window for f in (a, b)]
    # skimage returns the shift that registers b onto a, (row, column)
    return -phase_cross_correlation(grey[0], grey[1], upsample_factor=50)[0][::-1]


def misfit(a, b, shift):
    """Mean absolute difference, away from the borders, between b and a translated by `shift`."""
    matrix = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], dtype=np.float64)
    moved = cv2.warpAffine(a.astype(np.float32), matrix, a.shape[1::-1], flags=cv2.INTER_LANCZOS4)
    return np.abs(moved - b)[12:-12, 12:-12].mean()


def test_frames_are_shifted_copies_along_the_path():
    path = demo.camera_path(8, zoom=0)
    frames = demo.build_clip(demo.source_image(), path, 96)
    assert frames.shape == (8, 96, 96, 3) and frames.dtype == np.uint8
    steps = np.diff(path[:, :2], axis=0)
    # the pan is a fraction of a pixel per frame, so whole-pixel crops could not produce it
    assert np.all(np.abs(steps[:, 0] - np.round(steps[:, 0])) > 0.05)
    for t, step in enumerate(steps):
        # the camera moves by +step, so the content moves by -step
        np.testing.assert_allclose(phase_shift(frames[t], frames[t + 1]), -step, atol=0.2)
        # finer than phase correlation: the requested shift aligns the frames better than
        # any shift a quarter pixel away
        best = misfit(frames[t], frames[t + 1], -step)
        assert best < 3.0  # of 255: two Lanczos resamplings and uint8 rounding
        for delta in ((0.25, 0), (-0.25, 0), (0, 0.25), (0, -0.25)):
            assert misfit(frames[t], frames[t + 1], -step + delta) > 1.5 * best


def test_frame_matrix_centres_and_zooms():
    # source point (10, 20) lands on the centre (2, 2) of a 5x5 frame, magnified twice
    matrix = demo.frame_matrix((10, 20), 2.0, 5)
    np.testing.assert_allclose(matrix, [[2, 0, -18], [0, 2, -38]])
    np.testing.assert_allclose(matrix @ [10, 20, 1], [2, 2])
    np.testing.assert_allclose(matrix @ [11, 20, 1] - matrix @ [10, 20, 1], [2, 0])


def test_zoom_magnifies_the_content():
    path = demo.camera_path(2, pan=(0, 0), arc=0, zoom=0.25)
    frames = demo.build_clip(demo.source_image(), path, 64)
    # the zoomed frame is the centre of the first one, enlarged 1.25 times about the frame centre
    expected = cv2.warpAffine(frames[0].astype(np.float32), cv2.getRotationMatrix2D((31.5, 31.5), 0, 1.25),
                              (64, 64), flags=cv2.INTER_CUBIC)
    inner = slice(12, 52)
    diff = np.abs(frames[1][inner, inner].astype(np.float64) - expected[inner, inner])
    assert diff.mean() < 3.0
    assert np.abs(frames[1][inner, inner].astype(np.float64) - frames[0][inner, inner]).mean() > 3 * diff.mean()


def test_path_leaving_the_image_is_refused():
    with pytest.raises(ValueError, match='leaves the'):
        demo.build_clip(np.zeros((64, 64, 3), np.uint8), demo.camera_path(4, pan=(20, 0)), 48)


def test_bad_options_are_one_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(['--size', '30'])
    assert exit_info.value.code == 2
    assert "argument --size: must be a multiple of 4 >= 64, not '30'" in capsys.readouterr().err
    target = tmp_path / 'a_file'
    target.write_text('x')
    assert demo.main(['--output', str(target), '--epochs', '1']) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f'sbvsr-demo: --output {target} exists and is not a folder']
    assert target.read_text() == 'x'
    foreign = tmp_path / 'mine'
    (foreign / 'data').mkdir(parents=True)
    assert demo.main(['--output', str(foreign), '--epochs', '1']) == 1
    assert 'is not empty and was not written by sbvsr-demo' in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ['data']


@pytest.mark.slow
def test_tiny_run_writes_images_and_prints_matching_scores(tmp_path, capsys):
    out = tmp_path / 'demo'
    assert demo.main(['--output', str(out), '--epochs', '1', '--iters_per_epoch', '1',
                      '--frames', '5', '--size', '64', '--device', 'cpu']) == 0
    printed = capsys.readouterr().out
    scores = {name: (float(psnr), float(ssim)) for name, psnr, ssim in
              re.findall(r'^(bicubic|ours)\s+PSNR\s+([\d.]+) dB\s+SSIM\s+([\d.]+)$', printed, re.M)}
    assert set(scores) == {'bicubic', 'ours'}

    hr = [read_image(p) for p in list_images(out / 'data' / 'clip' / 'HR' / 'astronaut')]
    lr = [read_image(p) for p in list_images(out / 'data' / 'clip' / 'LR_blurdown_x4' / 'astronaut')]
    sr = [read_image(p) for p in list_images(out / 'results' / 'demo' / 'Gaussian' / 'astronaut')]
    side = [read_image(p) for p in list_images(out / 'side_by_side')]
    assert len(hr) == len(lr) == len(sr) == len(side) == 5
    assert lr[0].shape == (16, 16, 3) and sr[0].shape == hr[0].shape == (64, 64, 3)
    label = demo.LABEL_HEIGHT
    for up, ours, gt, row in zip(lr, sr, hr, side):
        assert row.shape == (label + 64, 3 * 64 + 2 * demo.GAP, 3)
        np.testing.assert_array_equal(row[label:, :64], demo.bicubic(up))
        np.testing.assert_array_equal(row[label:, 64 + demo.GAP:128 + demo.GAP], ours)
        np.testing.assert_array_equal(row[label:, -64:], gt)

    bicubic = np.mean([(calc_psnr(demo.bicubic(a), b), calc_ssim(demo.bicubic(a), b)) for a, b in zip(lr, hr)], 0)
    ours = np.mean([(calc_psnr(a, b), calc_ssim(a, b)) for a, b in zip(sr, hr)], 0)
    np.testing.assert_allclose(scores['bicubic'], bicubic, atol=0.006)
    np.testing.assert_allclose(scores['ours'], ours, atol=0.006)
    saved = json.loads((out / 'demo_scores.json').read_text())
    np.testing.assert_allclose([saved['ours']['psnr'], saved['ours']['ssim']], ours, rtol=1e-9)


WAIT_INSTEAD_OF_TRAINING = '''
from jittor_self_blind_vsr import demo

def train(*args):
    ready()  # the clip and both data sets are written
    time.sleep(60)

demo.train = train
sys.exit(demo.main(sys.argv[1:]))
'''


def test_ctrl_c_ends_the_demo_with_130_and_no_staging(tmp_path):
    out = tmp_path / 'demo'
    code, err = signal_when_ready(WAIT_INSTEAD_OF_TRAINING, ['--output', out, '--frames', '5', '--size', '64',
                                                             '--device', 'cpu'], signal.SIGINT, group=True)
    assert code == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (f'sbvsr-demo: interrupted (SIGINT): {out} keeps the steps that '
                                            f'finished (a rerun replaces them)')
    assert (out / 'data' / 'eval' / 'LR_blurdown_x4' / 'astronaut').is_dir()
    assert not [p for p in out.rglob('*') if 'partial' in p.name or p.suffix == '.tmp']
