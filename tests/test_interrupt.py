"""utils/interrupt.py: SIGINT and SIGTERM raise Interrupted in the main thread, also after Jittor's import."""
import os
import signal
import subprocess
import sys
import time

import pytest

from jittor_self_blind_vsr.utils import interrupt

AFTER_JITTOR = '''
import os, signal, sys, time
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


@pytest.mark.parametrize('name', ['SIGINT', 'SIGTERM'])
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
    with interrupt.handled():
        assert all(signal.getsignal(s) is not before[s] for s in interrupt.SIGNALS)
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


def _child_status(signum):
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signum)
        time.sleep(0.2)
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def test_forked_workers_leave_ctrl_c_to_the_command_and_end_on_sigterm():
    with interrupt.handled():
        ignored, ended = _child_status(signal.SIGINT), _child_status(signal.SIGTERM)
    assert os.WIFEXITED(ignored) and os.WEXITSTATUS(ignored) == 0
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
