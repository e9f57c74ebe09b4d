"""utils/interrupt.py: SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread, also after
Jittor's import."""
import glob
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from interrupting import PRELUDE, READY
from jittor_self_blind_vsr.utils import interrupt

AFTER_JITTOR = '''
import os, signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal, also where the tests run under nohup
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils import interrupt
with interrupt.handled():
    import_jittor('cpu')
    {install}
    try:
        os.kill(os.getpid(), signal.{name})
        time.sleep(30)
    except KeyboardInterrupt as error:
        print('cleanup ran', file=sys.stderr)
        sys.exit(interrupt.exit_code(error))
'''


@pytest.mark.parametrize('name', ['SIGINT', 'SIGTERM', 'SIGHUP'])
def test_our_handler_wins_over_jittors(name):
    def run(install):
        return subprocess.run([sys.executable, '-c', AFTER_JITTOR.format(install=install, name=name)],
                              capture_output=True, text=True, timeout=300, env=dict(os.environ, log_silent='1'))
    ours = run('interrupt.install()')
    assert ours.returncode == 128 + getattr(signal, name) and 'cleanup ran' in ours.stderr, ours.stderr[-2000:]
    if name == 'SIGINT':  # why install() is called again after the import
        jittors = run('pass')
        assert jittors.returncode == 1 and 'cleanup ran' not in jittors.stderr


def test_a_deferred_signal_is_raised_at_the_end_of_the_block():
    steps = []
    with pytest.raises(interrupt.Interrupted) as caught:
        with interrupt.handled():
            with interrupt.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                steps.append('after the signal')
            steps.append('after the block')
    assert steps == ['after the signal'] and interrupt.exit_code(caught.value) == 143


def test_an_error_after_a_signal_counts_as_the_interrupt():
    with pytest.raises(interrupt.Interrupted) as caught:
        with interrupt.handled():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                raise RuntimeError('operator failed') from None  # what Jittor makes of it inside its C++ calls
    assert caught.value.signum == signal.SIGINT and isinstance(caught.value.__cause__, RuntimeError)


def test_the_previous_handlers_come_back():
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    ours = [s for s in interrupt.SIGNALS if not (s == signal.SIGHUP and before[s] is signal.SIG_IGN)]  # nohup
    with interrupt.handled():
        assert all(signal.getsignal(s) is not before[s] for s in ours)
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


NOHUP = '''
import os, signal, sys, time
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils import interrupt
with interrupt.handled():
    import_jittor('cpu')
    interrupt.install()
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(0.5)
    print('still running', file=sys.stderr)
'''


def test_a_hangup_ignored_at_the_start_stays_ignored():
    """`nohup` starts a command with SIGHUP ignored, so that closing the terminal leaves it running."""
    done = subprocess.run([sys.executable, '-c', NOHUP], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, log_silent='1'),
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert done.returncode == 0 and 'still running' in done.stderr, done.stderr[-2000:]


def _child_status(signum):
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signum)
        time.sleep(0.2)
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def test_forked_workers_leave_ctrl_c_to_the_command_and_end_on_sigterm():
    with interrupt.handled():
        ignored = [_child_status(signal.SIGINT), _child_status(signal.SIGHUP)]
        ended = _child_status(signal.SIGTERM)
    assert all(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 for status in ignored)
    assert os.WIFSIGNALED(ended) and os.WTERMSIG(ended) == signal.SIGTERM


COMPILING = '''
import os, random, sys
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils import interrupt
try:  # as the commands do
    with interrupt.handled():
        jt = import_jittor('cpu')
        interrupt.install()
        print('compiling', file=sys.stderr, flush=True)
        for k in random.sample(range(10 ** 9), 100):  # a new kernel each time: g++ runs nearly always
            jt.code([4], 'float32', [], cpu_src=f'for (int i = 0; i < 4; i++) @out(i) = {k} + i;').sync()
except KeyboardInterrupt as error:
    print('cleanup ran', file=sys.stderr)
    sys.exit(interrupt.exit_code(error))
'''


def test_a_terminals_ctrl_c_during_compilation_runs_the_cleanup():
    """A terminal sends SIGINT to the whole process group: the compiler Jittor runs dies of it too."""
    process = subprocess.Popen([sys.executable, '-c', COMPILING], stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=dict(os.environ, log_silent='1'))
    try:
        assert 'compiling' in process.stderr.readline()
        time.sleep(1.5)
        os.killpg(process.pid, signal.SIGINT)
        err = process.communicate(timeout=300)[1]
    finally:
        process.kill()
    assert process.returncode == 130 and 'cleanup ran' in err, err[-2000:]


IDLE_AFTER_START = '''
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils import interrupt
try:  # as the commands do
    with interrupt.handled():
        jt = import_jittor('cpu')
        interrupt.install()
        ready()
        time.sleep(120)
except KeyboardInterrupt as error:
    print('cleanup ran', file=sys.stderr)
    sys.exit(interrupt.exit_code(error))
'''


def test_sigterm_to_the_whole_command_ends_it():
    """`pkill -f`, `killall` and job schedulers send SIGTERM to every process of a command. Jittor's
    compile pool, had it outlived the start, would lose a worker that holds its queue lock, and
    the pool's clean-up at exit would wait for ever."""
    process = subprocess.Popen([sys.executable, '-c', PRELUDE + IDLE_AFTER_START], stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env=dict(os.environ, log_silent='1'))
    try:
        for line in process.stderr:
            if READY in line:
                break
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # A second SIGTERM ends the hang; a SIGKILL would end this pytest run too (Jittor's
            # SIGCHLD handler here quick-exits when a child dies of any other signal).
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
            pytest.fail('the command hung at exit after SIGTERM to its process group')
        err = process.stderr.read()
    finally:
        process.stderr.close()
    assert process.returncode == 128 + signal.SIGTERM and 'cleanup ran' in err, (process.returncode, err[-2000:])


LOADER = '''
import os, random, signal, sys, threading, time
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal, also where the tests run under nohup
import numpy as np
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils import interrupt
mode = sys.argv[1]
try:  # as sbvsr-train does with --n_threads 2
    with interrupt.handled():
        jt = import_jittor('cpu')
        interrupt.install(loader_workers=True)
        from jittor.dataset import Dataset

        class Numbers(Dataset):
            def __getitem__(self, index):
                time.sleep(0.05)
                if mode == 'failing' and index == 40:
                    raise ValueError('a damaged file')
                return np.full(1, index, np.float32)

        numbers = Numbers(num_workers=2).set_attrs(total_len=100)
        for step, batch in enumerate(numbers):
            if step == 1:
                print('workers', *[worker.p.pid for worker in numbers.workers], file=sys.stderr, flush=True)
                threading.Timer(1.5 if mode == 'compiling' else 0, ready).start()
            if mode == 'compiling':  # a new kernel each step: g++ runs nearly always
                k = random.randrange(10 ** 9)
                jt.code([4], 'float32', [], cpu_src=f'for (int i = 0; i < 4; i++) @out(i) = {k} + i;').sync()
    print('finished', file=sys.stderr)
except KeyboardInterrupt as error:
    print('cleanup ran', file=sys.stderr)
    sys.exit(interrupt.exit_code(error))
'''


def run_loader(mode, act):
    """Run LOADER in its own process group; once its workers run, `act(process group id, worker pids)`.

    Returns the exit status and the output (Jittor's workers print their errors on stdout)."""
    process = subprocess.Popen([sys.executable, '-c', PRELUDE + LOADER, mode], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env=dict(os.environ, log_silent='1'))
    # One reader to the end: communicate() after iterating would read the pipe past the lines
    # the iterator had already buffered, and lose them.
    watchdog = threading.Timer(300, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        lines, acted = [], False
        for line in process.stdout:
            lines.append(line)
            if line.startswith('workers '):
                workers = [int(pid) for pid in line.split()[1:]]
            if READY in line and not acted:
                act(process.pid, workers)
                acted = True
        process.wait()
    finally:
        watchdog.cancel()
        process.kill()
    return process.returncode, ''.join(lines)


COMPILER_PROCESSES = ('sh', 'g++', 'cc1plus', 'as', 'collect2', 'ld')


def compiler_runs(group):
    """True while a process of `group` runs the C++ compiler (g++ or its cc1plus) or its shell."""
    for stat in glob.glob('/proc/[0-9]*/stat'):
        try:
            with open(stat) as f:
                name, fields = f.read().rsplit(')', 1)
        except OSError:
            continue
        if int(fields.split()[2]) == group and name.split('(', 1)[1] in COMPILER_PROCESSES:
            return True
    return False


def test_a_terminals_ctrl_c_during_compilation_with_loader_workers_runs_the_cleanup():
    """The compiler dies of the terminal's SIGINT: Jittor's SIGCHLD handler alone would exit 1 at once."""
    def ctrl_c_while_compiling(group, workers):
        deadline = time.monotonic() + 60
        while not compiler_runs(group) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(group, signal.SIGINT)

    code, err = run_loader('compiling', ctrl_c_while_compiling)
    assert code == 130 and 'cleanup ran' in err, err[-2000:]


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_whole_command_with_loader_workers_runs_the_cleanup(signum):
    """pkill -f, killall, timeout and job schedulers send SIGTERM to the workers too, a closed
    terminal SIGHUP. Had they ended, the command would wait for a batch inside Jittor's C++
    for ever, where its handler cannot run."""
    code, err = run_loader('plain', lambda group, workers: os.killpg(group, signum))
    assert code == 128 + signum and 'cleanup ran' in err and 'finished' not in err, err[-2000:]


FORKED_WORKER = '''
import os, signal, subprocess, sys, time
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils import interrupt
with interrupt.handled():
    import_jittor('cpu')
    interrupt.install(loader_workers=True)
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    time.sleep(0.5)
    subprocess.run([sys.executable, '-c', f'import os; os.kill({pid}, 15)'], check=True)
    time.sleep(0.5)
    survived_others = os.waitpid(pid, os.WNOHANG) == (0, 0)
    os.kill(pid, signal.SIGTERM)
    status = os.waitpid(pid, 0)[1]
    print(survived_others, os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
'''


def test_a_loader_worker_ends_on_sigterm_from_its_command_only():
    done = subprocess.run([sys.executable, '-c', FORKED_WORKER], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, log_silent='1'))
    assert done.returncode == 0, done.stderr[-2000:]
    survived_others, ended_on_parents = done.stdout.split()
    assert survived_others == 'True', 'a loader worker ended on SIGTERM from another process'
    assert ended_on_parents == 'True', 'a loader worker did not end on SIGTERM from its command'


def test_a_loader_worker_killed_for_memory_ends_the_command_with_a_sentence():
    """The main process waits for that worker inside Jittor's C++: only a C handler can end it."""
    killed = []

    def kill_a_worker(group, workers):
        killed.append(workers[0])
        os.kill(workers[0], signal.SIGKILL)

    code, err = run_loader('waiting', kill_a_worker)
    assert code == 1 and 'cleanup ran' not in err and 'finished' not in err, err[-2000:]
    assert f'sbvsr-train: stopping at once: child process {killed[0]} was killed by signal 9 (SIGKILL' in err


def test_a_loader_worker_that_stops_and_continues_is_no_failure():
    """Ctrl-Z and `fg` stop and continue the workers too; Jittor's handler quick-exits on either."""
    def stop_and_continue(group, workers):
        os.kill(workers[0], signal.SIGSTOP)
        time.sleep(0.5)
        os.kill(workers[0], signal.SIGCONT)

    code, err = run_loader('waiting', stop_and_continue)
    assert code == 0 and 'finished' in err, err[-2000:]


def test_a_loader_worker_that_fails_ends_the_command_with_a_sentence():
    """Jittor's worker reports its exception by SIGINT to its parent, which waits for it in C++."""
    code, err = run_loader('failing', lambda group, workers: None)
    assert code == 1 and 'ValueError: a damaged file' in err and 'finished' not in err, err[-2000:]
    assert re.search(r'sbvsr-train: stopping at once: loader worker \d+ failed \(its error is printed above\)', err)
