"""Ctrl-C (SIGINT) and SIGTERM end every command through its normal cleanup.

Importing Jittor installs a C-level SIGINT handler that calls quick_exit(1): no `finally`
block, no `except KeyboardInterrupt` and no atexit hook runs, so staging folders and
temporary files stay behind. SIGTERM's default action kills the process just as abruptly.
Every command therefore runs inside `handled()`, which makes both signals raise
`Interrupted` (a KeyboardInterrupt) in the main thread, and calls `install()` again right
after its first Jittor import, whose C handler would otherwise win.

Processes forked from a command (Jittor's data-loader workers, its compile pool) ignore
SIGINT and die on SIGTERM: a terminal's Ctrl-C reaches them too, but the command itself
decides how to stop them. A loader worker that raised KeyboardInterrupt would print a
traceback and signal its parent again; a compile-pool worker killed while it holds the
pool's queue lock makes the pool's clean-up at exit wait for ever. Jittor forks that pool
when it is imported, so a command imports Jittor inside `handled()`.

Jittor also installs a C SIGCHLD handler that quick-exits as soon as any child dies by a
signal other than SIGTERM. A terminal's Ctrl-C kills the compiler Jittor is running (g++
is a child), so that handler would end the command before ours runs. `install()` resets
SIGCHLD to its default unless the command runs Jittor's loader workers: there Jittor's
handler is what stops the main process from waiting forever (in C++, where no Python
handler runs) for a worker the kernel killed for memory.
"""
import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = {'depth': 0, 'previous': None, 'deferring': 0, 'pending': None, 'fork_hook': False, 'received': None}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self):
        return 128 + self.signum


def exit_code(error):
    """The exit status for an interrupt: 130 for SIGINT or a plain KeyboardInterrupt, 143 for SIGTERM."""
    return getattr(error, 'exit_code', 128 + signal.SIGINT)


def signal_name(error):
    return signal.Signals(getattr(error, 'signum', signal.SIGINT)).name


def _raise(signum, frame):
    _state['received'] = _state['received'] or signum
    if _state['deferring']:
        _state['pending'] = _state['pending'] or signum
        return
    raise Interrupted(signum)


def _forked_child():
    if _state['depth']:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def install(loader_workers=False):
    """Put our handlers on SIGINT and SIGTERM (again: after importing Jittor) and, unless Jittor's
    loader workers will run, the default action on SIGCHLD. Only inside `handled()`."""
    if not _state['depth'] or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, _raise)
    if not loader_workers:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


class handled:  # noqa: N801 (used as `with interrupt.handled():`)
    """The body of a command: SIGINT and SIGTERM raise Interrupted; the previous handlers come back after.

    A class, not a generator: a signal that is acted on inside __exit__ (Python runs handlers
    between bytecodes, so right after a long C call) must not leave a generator whose
    clean-up runs at some later garbage collection.
    """

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        if not _state['fork_hook']:
            os.register_at_fork(after_in_child=_forked_child)
            _state['fork_hook'] = True
        if not _state['depth']:
            _state['previous'] = {signum: signal.getsignal(signum) for signum in SIGNALS}
            _state['received'] = None
        _state['depth'] += 1
        install()
        return self

    def __exit__(self, exc_type, exc, traceback):
        if threading.current_thread() is not threading.main_thread():
            return
        _state['depth'] -= 1
        if not _state['depth']:
            for signum, handler in _state['previous'].items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        received = _state['received']
        if received is not None and exc_type is not None and issubclass(exc_type, Exception):
            # Jittor turns an exception raised inside its C++ calls (ours, when the signal is
            # acted on in a Python callback it runs) into a RuntimeError; and the signal may
            # have killed a compiler first. Either way the command was interrupted.
            raise Interrupted(received) from exc


@contextlib.contextmanager
def deferred():
    """A signal arriving inside the block is raised at its end: for steps that must not be cut
    in half (the renames that swap finished results in)."""
    _state['deferring'] += 1
    try:
        yield
    finally:
        _state['deferring'] -= 1
        pending = None
        if not _state['deferring']:
            pending, _state['pending'] = _state['pending'], None
    if pending is not None:
        raise Interrupted(pending)
