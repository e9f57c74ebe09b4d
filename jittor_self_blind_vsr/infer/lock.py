"""One run at a time on a results folder: an exclusive flock on OUT/<dataset_name>/.<blur_type>.lock.

Two runs writing OUT/<dataset_name>/<blur_type> (or its --resume staging folder) at once would
mix their frames and manifests, so the second stops at once. The lock file is created and
removed by the run that holds it; one a killed run left behind holds no lock (the kernel drops
a flock with its process) and is taken over. A file of that name that this tool did not write
is never opened for writing.
"""
import errno
import fcntl
import os
import re
import stat

from jittor_self_blind_vsr.infer import InferenceError
from jittor_self_blind_vsr.utils import interrupt

# What a lock file holds; empty while its creator has not yet written its process id.
LOCK_TEXT = re.compile(rb'(?:sbvsr-infer pid (\d+)\n)?')


def lock_path(result_path, dataset_name, blur_type):
    return os.path.join(result_path, dataset_name, f'.{blur_type}.lock')


class OutputLock:
    """`with OutputLock(args):` holds the lock of the results folder of `args` for the block.

    Also creates OUT/<dataset_name> (it holds the lock file), and removes on leaving the
    folders it created when they are empty, so a refused or failed first run leaves nothing."""

    def __init__(self, args):
        self.parent = os.path.join(args.result_path, args.dataset_name)
        self.final = os.path.join(self.parent, args.blur_type)
        self.path = lock_path(args.result_path, args.dataset_name, args.blur_type)
        self.created = [d for d in (args.result_path, self.parent) if not os.path.isdir(d)]
        self.fd = None

    def __enter__(self):
        try:
            with interrupt.deferred():  # a signal is raised once the lock is held, then released below
                try:
                    os.makedirs(self.parent, exist_ok=True)
                    self._acquire()
                except OSError as error:
                    raise InferenceError(f'cannot create the results folder {self.parent}: '
                                         f'{error.strerror or error}') from None
        except BaseException:
            self.__exit__()  # `with` calls __exit__ only after __enter__ returned
            raise
        return self

    def __exit__(self, *exc):
        with interrupt.deferred():
            if self.fd is not None:
                # removed while still locked: a run waiting on the old file sees it gone and retries
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                os.close(self.fd)
                self.fd = None
            self._remove_created()

    def _acquire(self):
        # The holder removes the file when it ends; a run that opened it just before then retries.
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = LOCK_TEXT.fullmatch(os.pread(fd, 64, 0) or b'')
                os.close(fd)
                pid = f' (pid {int(holder.group(1))})' if holder and holder.group(1) else ''
                raise InferenceError(f'another run is writing {self.final}{pid}; wait for it to end, or give '
                                     f'another --result_path, --dataset_name or --blur_type') from None
            try:
                now = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            here = os.fstat(fd)
            if now is None or (now.st_dev, now.st_ino) != (here.st_dev, here.st_ino):
                os.close(fd)
                continue
            self.fd = fd
            os.ftruncate(fd, 0)
            os.pwrite(fd, f'sbvsr-infer pid {os.getpid()}\n'.encode(), 0)
            return

    def _open(self):
        """A descriptor of the lock file, created when absent; refused when it is not one."""
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        while True:
            try:
                return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                pass
            try:
                fd = os.open(self.path, flags)
            except FileNotFoundError:
                continue
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                    self._refuse('it is not a regular file')
                raise
            info = os.fstat(fd)
            content = os.pread(fd, 64, 0) if stat.S_ISREG(info.st_mode) else b''
            if not stat.S_ISREG(info.st_mode) or info.st_size > 64 or not LOCK_TEXT.fullmatch(content):
                os.close(fd)
                self._refuse('it is not a regular file' if not stat.S_ISREG(info.st_mode)
                             else 'it was not written by sbvsr-infer')
            return fd

    def _refuse(self, reason):
        raise InferenceError(f'{self.path} exists and is not the lock file of sbvsr-infer ({reason}), so it is not '
                             f'touched; move it away or give another --result_path, --dataset_name or --blur_type')

    def _remove_created(self):
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:
                pass
        self.created = []
