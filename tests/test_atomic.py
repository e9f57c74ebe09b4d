"""utils/atomic.py, the one way the package writes a file: the data reaches the disk before
the rename, the file gets the usual mode, and a failure leaves the old file and no debris."""
import os
import stat

import numpy as np
import pytest

from jittor_self_blind_vsr.utils import atomic
from jittor_self_blind_vsr.utils.atomic import atomic_file, write_bytes_atomic
from jittor_self_blind_vsr.utils.checkpoint import save_pickle_atomic
from jittor_self_blind_vsr.utils.image_io import write_image

WRITERS = {
    'bytes': lambda path: write_bytes_atomic(path, b'data'),
    'image': lambda path: write_image(path, np.zeros((2, 2, 3), np.uint8)),
    'pickle': lambda path: save_pickle_atomic({'a': 1}, path),
}


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize('writer', sorted(WRITERS))
def test_every_writer_fsyncs_the_data_before_the_rename(tmp_path, monkeypatch, writer):
    calls = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, 'fsync', lambda fd: calls.append(('fsync', os.fstat(fd).st_size)) or fsync(fd))
    monkeypatch.setattr(atomic.os, 'replace', lambda a, b: calls.append(('replace', os.fspath(b))) or replace(a, b))
    target = tmp_path / 'out.png'
    WRITERS[writer](target)
    assert calls == [('fsync', target.stat().st_size), ('replace', str(target))]


@pytest.mark.parametrize('writer', sorted(WRITERS))
def test_written_files_get_the_mode_of_any_new_file(tmp_path, writer):
    WRITERS[writer](tmp_path / 'out.png')
    assert stat.S_IMODE((tmp_path / 'out.png').stat().st_mode) == 0o666 & ~_umask()


@pytest.mark.parametrize('error', [RuntimeError('disk full'), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    target = tmp_path / 'out.bin'
    write_bytes_atomic(target, b'old')
    with pytest.raises(type(error)):
        with atomic_file(target) as handle:
            handle.write(b'new, but never finished')
            raise error
    assert target.read_bytes() == b'old' and os.listdir(tmp_path) == ['out.bin']


def test_the_temporary_is_hidden_beside_the_target_until_the_rename(tmp_path):
    with atomic_file(tmp_path / 'out.bin') as handle:
        handle.write(b'x')
        names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].startswith('.out.bin.') and names[0].endswith('.tmp')
    assert os.listdir(tmp_path) == ['out.bin'] and (tmp_path / 'out.bin').read_bytes() == b'x'
