"""script_gene_dataset_blurdown: the original's layout, exact contents, reproducibility, errors."""
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import io as scio

from hr_clips import make_hr_clips
from interrupting import signal_when_ready, snapshot
from jittor_self_blind_vsr import script_gene_dataset_blurdown as gene
from jittor_self_blind_vsr.utils import degradation as deg
from jittor_self_blind_vsr.utils.image_io import read_image, write_image
from test_image_io import write_bomb_png

PACKAGE_DIR = Path(gene.__file__).resolve().parent


def tree(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*'))


def run_main(argv, capsys):
    code = gene.main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def test_layout_and_contents_gaussian(tmp_path, capsys):
    clips = make_hr_clips(tmp_path / 'hr', n_videos=2, n_frames=3)
    out = tmp_path / 'out'
    code, _ = run_main(['--HR_root', str(tmp_path / 'hr'), '--save_root', str(out), '--type', 'Gaussian'], capsys)
    assert code == 0
    frames = [f'{f:08d}' for f in range(3)]
    expected = ['HR', 'LR_blurdown_x4', 'kernel']
    for folder, ext in (('HR', '.png'), ('LR_blurdown_x4', '.png'), ('kernel', '.mat')):
        for video in ('000', '001'):
            expected += [f'{folder}/{video}'] + [f'{folder}/{video}/{f}{ext}' for f in frames]
    assert tree(out) == sorted(expected)
    kernel = deg.gaussian_kernel(1.2)
    assert kernel.shape == (9, 9)
    for video, hr_frames in clips.items():
        for f, hr in zip(frames, hr_frames):
            np.testing.assert_array_equal(read_image(out / 'HR' / video / f'{f}.png'), hr)
            lr = read_image(out / 'LR_blurdown_x4' / video / f'{f}.png')
            assert lr.shape == (16, 16, 3)
            np.testing.assert_array_equal(lr, deg.blur_down_uint8(hr, kernel, 4))
            np.testing.assert_allclose(scio.loadmat(out / 'kernel' / video / f'{f}.mat')['kernel'], kernel)


def test_realistic_one_kernel_per_video_reproducible_with_seed(tmp_path, capsys):
    make_hr_clips(tmp_path / 'hr', n_videos=2, n_frames=2)

    def generate(name, seed):
        argv = ['--HR_root', str(tmp_path / 'hr'), '--save_root', str(tmp_path / name),
                '--type', 'Realistic', '--seed', str(seed)]
        assert run_main(argv, capsys)[0] == 0
        return {v: [scio.loadmat(tmp_path / name / 'kernel' / v / f'{f:08d}.mat')['kernel'] for f in range(2)]
                for v in ('000', '001')}

    first, again, other = generate('a', 5), generate('b', 5), generate('c', 6)
    np.testing.assert_array_equal(first['000'][0], first['000'][1])  # one kernel per video
    assert np.abs(first['000'][0] - first['001'][0]).max() > 1e-3  # a new kernel for the next video
    assert first['000'][0].shape == (13, 13)
    # the kernels are the seed's stream in video order
    rng = np.random.RandomState(5)
    for video in ('000', '001'):
        np.testing.assert_array_equal(first[video][0], deg.random_realistic_kernel(rng))
    for video in ('000', '001'):
        np.testing.assert_array_equal(first[video][0], again[video][0])
        lr_a = (tmp_path / 'a' / 'LR_blurdown_x4' / video / '00000001.png').read_bytes()
        assert lr_a == (tmp_path / 'b' / 'LR_blurdown_x4' / video / '00000001.png').read_bytes()
        assert np.abs(first[video][0] - other[video][0]).max() > 1e-3


def test_jpeg_input_gives_png_outputs(tmp_path, capsys):
    make_hr_clips(tmp_path / 'hr', n_videos=1, n_frames=2, ext='.jpg')
    out = tmp_path / 'out'
    assert run_main(['--HR_root', str(tmp_path / 'hr'), '--save_root', str(out)], capsys)[0] == 0
    decoded = read_image(tmp_path / 'hr' / '000' / '00000001.jpg')
    np.testing.assert_array_equal(read_image(out / 'HR' / '000' / '00000001.png'), decoded)
    np.testing.assert_array_equal(read_image(out / 'LR_blurdown_x4' / '000' / '00000001.png'),
                                  deg.blur_down_uint8(decoded, deg.gaussian_kernel(1.2), 4))


def test_hr_root_inside_save_root_is_left_in_place(tmp_path, capsys):
    # the original's own usage: HR_root = save_root/HR
    make_hr_clips(tmp_path / 'set' / 'HR', n_videos=1, n_frames=2)
    hr_file = tmp_path / 'set' / 'HR' / '000' / '00000000.png'
    before = (hr_file.read_bytes(), hr_file.stat().st_mtime_ns)
    code, _ = run_main(['--HR_root', str(tmp_path / 'set' / 'HR'), '--save_root', str(tmp_path / 'set')], capsys)
    assert code == 0
    assert (hr_file.read_bytes(), hr_file.stat().st_mtime_ns) == before
    assert (tmp_path / 'set' / 'LR_blurdown_x4' / '000' / '00000001.png').is_file()


def test_crop_option_crops_bottom_right_to_a_multiple_of_the_scale(tmp_path, capsys):
    clips = make_hr_clips(tmp_path / 'hr', n_videos=1, n_frames=1, size=(66, 63))
    code, err = run_main(['--HR_root', str(tmp_path / 'hr'), '--save_root', str(tmp_path / 'out'), '--crop'],
                         capsys)
    assert code == 0
    assert 'note: cropping the frames of 000 from 63x66 to 60x64' in err
    hr = read_image(tmp_path / 'out' / 'HR' / '000' / '00000000.png')
    np.testing.assert_array_equal(hr, clips['000'][0][:64, :60])
    assert read_image(tmp_path / 'out' / 'LR_blurdown_x4' / '000' / '00000000.png').shape == (16, 15, 3)


def _unreadable(hr):
    make_hr_clips(hr, n_videos=1, n_frames=2)
    (hr / '000' / '00000001.png').write_bytes(b'not a png')


def _truncated(hr):
    make_hr_clips(hr, n_videos=1, n_frames=2)
    path = hr / '000' / '00000001.png'
    path.write_bytes(path.read_bytes()[:200])


def _bomb(hr):
    make_hr_clips(hr, n_videos=1, n_frames=2)
    write_bomb_png(hr / '000' / '00000001.png')


def _video_without_images(hr):
    make_hr_clips(hr, n_videos=1, n_frames=2)
    (hr / '001').mkdir()
    (hr / '001' / 'notes.txt').write_text('no frames here')


@pytest.mark.parametrize('prepare,message', [
    (lambda hr: None, 'does not exist or is not a folder'),
    (lambda hr: hr.mkdir(), 'contains no video folders'),
    (_video_without_images, 'contains no PNG/JPEG/BMP frames'),
    (_unreadable, 'cannot read image (not a valid PNG/JPEG/BMP file?)'),
    (_truncated, 'cannot read image (not a valid PNG/JPEG/BMP file?)'),
    (_bomb, 'pixels, too many for a video frame (a decompression bomb?)'),
    (lambda hr: make_hr_clips(hr, n_videos=1, n_frames=1, size=(64, 62)),
     'are 62x64, not a multiple of the scale 4; pass --crop'),
], ids=['missing', 'empty', 'video-without-images', 'unreadable', 'truncated', 'bomb', 'not-multiple'])
def test_errors_are_one_sentence_non_zero_and_write_nothing(tmp_path, capsys, prepare, message):
    hr = tmp_path / 'hr'
    prepare(hr)
    out = tmp_path / 'out'
    code, err = run_main(['--HR_root', str(hr), '--save_root', str(out)], capsys)
    assert code == 1
    assert message in err
    assert err.startswith('sbvsr-gene-dataset: ') and err.count('\n') == 1 and 'Traceback' not in err
    assert not out.exists()


def test_cropping_in_place_is_refused(tmp_path, capsys):
    make_hr_clips(tmp_path / 'set' / 'HR', n_videos=1, n_frames=1, size=(64, 62))
    code, err = run_main(['--HR_root', str(tmp_path / 'set' / 'HR'), '--save_root', str(tmp_path / 'set'),
                          '--crop'], capsys)
    assert code == 1 and 'would have to be cropped in place' in err


def test_unwritable_save_root_is_one_sentence(tmp_path, capsys):
    make_hr_clips(tmp_path / 'hr', n_videos=1, n_frames=1)
    (tmp_path / 'file').write_text('a file, not a folder')
    code, err = run_main(['--HR_root', str(tmp_path / 'hr'), '--save_root', str(tmp_path / 'file')], capsys)
    assert code == 1 and err.startswith('sbvsr-gene-dataset: ') and err.count('\n') == 1
    assert err.rstrip().endswith(f'no file was written; {tmp_path / "file"} is unchanged'), err


def test_bad_type_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gene.main(['--HR_root', str(tmp_path), '--save_root', str(tmp_path), '--type', 'Motion'])
    assert exit_info.value.code == 2
    assert "invalid choice: 'Motion'" in capsys.readouterr().err


def test_runs_as_a_file_from_inside_the_package_folder(tmp_path):
    make_hr_clips(tmp_path / 'hr', n_videos=1, n_frames=1)
    ok = subprocess.run([sys.executable, 'script_gene_dataset_blurdown.py', '--HR_root', str(tmp_path / 'hr'),
                         '--save_root', str(tmp_path / 'out'), '--type', 'Realistic', '--seed', '3'],
                        cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / 'out' / 'kernel' / '000' / '00000000.mat').is_file()
    bad = subprocess.run([sys.executable, 'script_gene_dataset_blurdown.py', '--HR_root', str(tmp_path / 'nope'),
                          '--save_root', str(tmp_path / 'out2')],
                         cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith('sbvsr-gene-dataset: HR_root') and 'Traceback' not in bad.stderr


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).with_name('sbvsr-gene-dataset')
    if not script.exists():
        pytest.skip('console scripts are not installed in this environment')
    result = subprocess.run([str(script), '--HR_root', str(tmp_path / 'nope'), '--save_root', str(tmp_path)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, 'PYTHONWARNINGS': ''})
    assert result.returncode == 1 and 'does not exist' in result.stderr


def test_full_disk_leaves_save_root_as_it_was_and_names_it(tmp_path, capsys, monkeypatch):
    make_hr_clips(tmp_path / 'hr', n_videos=2, n_frames=3)
    argv = ['--HR_root', str(tmp_path / 'hr'), '--save_root', str(tmp_path / 'out'), '--type', 'Realistic']
    assert run_main(argv + ['--seed', '1'], capsys)[0] == 0
    before = snapshot(tmp_path / 'out')
    calls = []

    def full_disk(path, rgb):
        calls.append(path)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write(): no file name
        write_image(path, rgb)
    monkeypatch.setattr(gene, 'write_image', full_disk)
    code, err = run_main(argv + ['--seed', '2'], capsys)
    assert code == 1
    assert err.splitlines()[-1] == (f'sbvsr-gene-dataset: No space left on device ({tmp_path / "out"}); '
                                    f'no file was written; {tmp_path / "out"} is unchanged')
    assert snapshot(tmp_path / 'out') == before
    calls.clear()
    assert run_main(['--HR_root', str(tmp_path / 'hr'), '--save_root', str(tmp_path / 'new' / 'set')], capsys)[0] == 1
    assert not (tmp_path / 'new').exists()


SLOW_GENERATION = '''
from jittor_self_blind_vsr import script_gene_dataset_blurdown as gene
save_kernel = gene.save_kernel

def slow_save_kernel(path, kernel):
    save_kernel(path, kernel)
    ready()
    time.sleep(0.5)

gene.save_kernel = slow_save_kernel
sys.exit(gene.main(sys.argv[1:]))
'''


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_a_signal_mid_run_leaves_the_earlier_set_byte_identical(tmp_path, capsys, signum):
    make_hr_clips(tmp_path / 'hr', n_videos=2, n_frames=4)
    argv = ['--HR_root', str(tmp_path / 'hr'), '--save_root', str(tmp_path / 'out'), '--type', 'Realistic']
    assert run_main(argv + ['--seed', '1'], capsys)[0] == 0
    before = snapshot(tmp_path / 'out')
    code, err = signal_when_ready(SLOW_GENERATION, argv + ['--seed', '2'], signum)
    assert code == 128 + signum, err[-3000:]
    assert err.strip().splitlines()[-1] == (f'sbvsr-gene-dataset: interrupted ({signal.Signals(signum).name}): '
                                            f'no file was written; {tmp_path / "out"} is unchanged')
    assert snapshot(tmp_path / 'out') == before
