"""The experiment folder's curves: written whole or not at all."""
import pytest

from jittor_self_blind_vsr.logger.logger import Logger
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
    assert sorted(p.name for p in ckp.dir.iterdir()) == ['log.txt', 'model', 'psnr.png', 'result']
    assert (ckp.dir / 'psnr.png').read_bytes() == before
