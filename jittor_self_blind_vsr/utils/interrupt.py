"""Ctrl-C (SIGINT), SIGTERM and SIGHUP end every command through its normal cleanup.

Importing Jittor installs a C-level SIGINT handler that calls quick_exit(1): no `finally`
block, no `except KeyboardInterrupt` and no atexit hook runs, so staging folders and
temporary files stay behind. The default actions of SIGTERM and of SIGHUP (the terminal
was closed, an ssh connection dropped) kill the process just as abruptly. Every command
therefore runs inside `handled()`, which makes these signals raise `Interrupted` (a
KeyboardInterrupt) in the main thread, and calls `install()` again right after its first
Jittor import, whose C handler would otherwise win. A SIGHUP that was ignored when the
command started (`nohup`) stays ignored.

Processes forked from a command (Jittor's data-loader workers, its compile pool) ignore
SIGINT and SIGHUP and die on SIGTERM: a terminal's Ctrl-C and hangup reach them too, but
the command itself decides how to stop them. A loader worker that raised
KeyboardInterrupt would print a traceback and signal its parent again; a compile-pool
worker killed while it holds the pool's queue lock would make the pool's clean-up at exit
wait for ever. Jittor forks that
pool when it is imported, so a command imports Jittor inside `handled()` (and runtime.py
closes the pool right after the import). SIGTERM, too, often reaches every process of a
command (`pkill -f`, `killall`, `timeout`, job schedulers): with `install(loader_workers=True)`
a loader worker ends on SIGTERM from the command, which is how Jittor stops its workers,
and ignores it from anyone else while the command lives, since the command, waiting for a
batch inside Jittor's C++ (below), could not act on its own SIGTERM without them.

Jittor also installs a C SIGCHLD handler that quick-exits as soon as any child dies by a
signal other than SIGTERM (or merely stops or continues). A terminal's Ctrl-C kills the
compiler Jittor is running (g++ is a child), so that handler would end the command before
ours runs. Commands without loader workers need no SIGCHLD handler: `install()` puts back
the default action. With Jittor's loader workers, two events must be acted on in C: the
main thread then waits for a batch inside Jittor's C++ ring buffer, holding the GIL, where
no Python handler runs, and would wait forever for a worker that is gone -- killed by the
kernel for memory, or ended by an exception, which Jittor's worker reports by sending
SIGINT to its parent. `install(loader_workers=True)` therefore puts two C handlers
(`_LOADER_HEADER`, compiled once as a small Jittor op, like compile_guard's hook) in front:
on SIGCHLD, a child killed by a signal other than SIGINT, SIGTERM or SIGHUP gets one line and
Jittor's quick exit, while a child that died of SIGINT (the terminal's Ctrl-C, which our
SIGINT handler acts on) or stopped or continued (Ctrl-Z, `fg`) is left to the code that
waits for it; on SIGINT, one sent by a child of ours (a failed loader worker) gets one line
and a quick exit (status 1), any other goes on to our Python handler. The handlers read
the signal's own siginfo (which child, how it ended), not a `waitid` peek: the thread that
waits for a compiler may already have reaped it.
"""
import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_LOADER_HEADER = r"""
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

namespace sbvsr_loader_signals {
static struct sigaction jittors_sigchld, pythons_sigint;  // the handlers ours pass on to
static pid_t owner;

static char* decimal(char* end, long n) {
    do { *--end = char('0' + n % 10); n /= 10; } while (n);
    return end;
}

static void say(const char* text) {
    ssize_t ignored = write(2, text, strlen(text));
    (void)ignored;
}

static void say_pid(const char* before, pid_t pid, const char* after) {
    char digits[24] = {0};
    say(before);
    say(decimal(digits + 23, pid));
    say(after);
}

static void on_sigchld(int signum, siginfo_t* info, void* context) {
    bool killed = info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED;
    if (!killed || info->si_status == SIGINT || info->si_status == SIGTERM || info->si_status == SIGHUP ||
        getpid() != owner) return;
    char status[24] = {0};
    say_pid("sbvsr-train: stopping at once: child process ", info->si_pid, " was killed by signal ");
    say(decimal(status + 23, info->si_status));
    say(" (SIGKILL, 9, is how the kernel ends a process when memory runs out: fewer loader workers,"
        " --n_threads, or a smaller --batch_size need less)\n");
    if (jittors_sigchld.sa_flags & SA_SIGINFO) jittors_sigchld.sa_sigaction(signum, info, context);
    std::quick_exit(1);  // what Jittor's handler does; here too if it was not there to do it
}

// The parent of `pid` from /proc/<pid>/stat ("pid (name) state ppid ..."), or -1.
static pid_t parent_of(pid_t pid) {
    char path[48] = "/proc/", digits[24] = {0}, stat[512];
    strcat(path, decimal(digits + 23, pid));
    strcat(path, "/stat");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0) return -1;
    stat[n] = 0;
    char* end = strrchr(stat, ')');
    if (!end || end + 4 >= stat + n) return -1;
    return pid_t(atol(end + 4));
}

static void on_sigint(int signum, siginfo_t* info, void* context) {
    if (getpid() == owner && info->si_code == SI_USER && info->si_pid != owner && parent_of(info->si_pid) == owner) {
        say_pid("sbvsr-train: stopping at once: loader worker ", info->si_pid,
                " failed (its error is printed above)\n");
        std::quick_exit(1);
    }
    if (pythons_sigint.sa_flags & SA_SIGINFO) pythons_sigint.sa_sigaction(signum, info, context);
    else if (pythons_sigint.sa_handler != SIG_DFL && pythons_sigint.sa_handler != SIG_IGN)
        pythons_sigint.sa_handler(signum);
}

// Puts `handler` on `signum` and keeps the one found in `previous`; nothing when it is there already.
static bool wrap(int signum, void (*handler)(int, siginfo_t*, void*), struct sigaction* previous, int flags) {
    struct sigaction current, ours;
    sigaction(signum, nullptr, &current);
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == handler) return true;
    *previous = current;
    memset(&ours, 0, sizeof ours);
    sigemptyset(&ours.sa_mask);
    ours.sa_sigaction = handler;
    ours.sa_flags = SA_SIGINFO | flags;
    return sigaction(signum, &ours, nullptr) == 0;
}

// In a loader worker. SIGTERM from the command is how Jittor stops its workers: the worker
// ends. SIGTERM from anyone else while the command lives (pkill -f, killall, timeout, a job
// scheduler signal every process) reached the command too, which stops its workers when it
// acts on it; ending here would leave the command waiting for a batch for ever.
static void on_sigterm_in_worker(int signum, siginfo_t* info, void* context) {
    bool from_a_process = info->si_code == SI_USER || info->si_code == SI_QUEUE;  // kill() or sigqueue()
    if (from_a_process && info->si_pid != owner && getppid() == owner) return;
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
}

static void in_forked_child() {
    if (getppid() != owner) return;
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    sigemptyset(&ours.sa_mask);
    ours.sa_sigaction = on_sigterm_in_worker;
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGTERM, &ours, nullptr);
}

static int install() {
    owner = getpid();
    static bool at_fork = pthread_atfork(nullptr, nullptr, in_forked_child) == 0;
    // SIGINT keeps Python's flags: no SA_RESTART, so that a blocking call returns and Python's handler runs.
    return at_fork && wrap(SIGCHLD, on_sigchld, &jittors_sigchld, SA_RESTART) &&
           wrap(SIGINT, on_sigint, &pythons_sigint, SA_ONSTACK);
}
}
"""

_state = {'depth': 0, 'previous': None, 'deferring': 0, 'pending': None, 'fork_hook': False, 'received': None,
          'loader_guard': False}


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self):
        return 128 + self.signum


def exit_code(error):
    """The exit status for an interrupt: 130 for SIGINT or a plain KeyboardInterrupt, 143 for
    SIGTERM, 129 for SIGHUP."""
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
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if not _state['loader_guard']:  # else the C handler _LOADER_HEADER put on SIGTERM at the fork stays
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def install(loader_workers=False):
    """Put our handlers on SIGINT, SIGTERM and SIGHUP (again: after importing Jittor; not on a
    SIGHUP that was ignored when the outermost `handled()` began) and on SIGCHLD the
    default action or, when Jittor's loader workers will run (Jittor is imported), the C handlers
    of `_LOADER_HEADER` in front of Jittor's SIGCHLD handler and our SIGINT one. Only inside
    `handled()`."""
    if not _state['depth'] or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        if not (signum == signal.SIGHUP and _state['previous'][signum] is signal.SIG_IGN):
            signal.signal(signum, _raise)
    if loader_workers:
        _guard_loader_workers()
    else:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _guard_loader_workers():
    """Put the C handlers of `_LOADER_HEADER` in front of Jittor's SIGCHLD handler and our SIGINT one."""
    import jittor as jt  # here: this module is imported, and its handlers set, before Jittor
    with jt.flag_scope(use_cuda=0):
        if int(jt.code([1], 'int32', [], cpu_header=_LOADER_HEADER,
                       cpu_src='@out(0) = sbvsr_loader_signals::install();').item()) != 1:
            raise OSError('the signal handlers for loader workers could not be installed')
    _state['loader_guard'] = True


class handled:  # noqa: N801 (used as `with interrupt.handled():`)
    """The body of a command: SIGINT, SIGTERM and SIGHUP raise Interrupted; the previous handlers
    come back after.

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
