"""Writing a file so that no reader, crash or Ctrl-C ever sees it half written.

Every file the package writes (checkpoints, frames, kernels, logs, metrics) goes through
`atomic_file`: the data goes to a hidden temporary file in the target's folder, is flushed
to the disk, and is renamed over the target only when it is complete.
"""
import contextlib
import os
import secrets


def _create_temporary(path):
    """(name, descriptor) of a new hidden file next to `path`, with the mode any new file gets.

    os.open applies the process's umask itself: reading the umask would mean setting it,
    which is not safe while another thread creates files."""
    folder, name = os.path.split(os.path.abspath(path))
    while True:
        temporary = os.path.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp')
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_file(path):
    """A binary file to write whose content replaces `path` when the block ends without error.

    The data is fsynced before the rename, so a power cut cannot leave an empty `path`
    behind the rename (about 1 ms for a 1.6 MB 720x1280 PNG, docs/architecture.md). On an
    error or interrupt the temporary file is removed and `path` is left as it was; an
    OSError propagates unchanged.
    """
    path = os.fspath(path)
    temporary, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, 'wb') as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_bytes_atomic(path, data):
    """Write `data` to `path` through atomic_file."""
    with atomic_file(path) as handle:
        handle.write(data)
