"""Run a command in its own process and send it a signal once its work is under way."""
import os
import signal
import subprocess
import sys
import threading

READY = 'SBVSR-TEST-READY'
# Prefix of the scripts below: `ready()` tells the test that the work it waits for is under way.
PRELUDE = f'''
import sys, time
def ready():
    print({READY!r}, file=sys.stderr, flush=True)
'''


def signal_when_ready(script, argv, signum, group=False, timeout=600):
    """Run `script` (PRELUDE + script, with argv as sys.argv[1:]); send `signum` when it calls ready(),
    to the process alone or, with `group`, to its whole process group as a terminal's Ctrl-C does.

    Returns (exit status, stderr). The process group is killed after `timeout` seconds.
    """
    process = subprocess.Popen([sys.executable, '-c', PRELUDE + script, *map(str, argv)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env=dict(os.environ, log_silent='1'))
    watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if READY in line:
                (os.killpg if group else os.kill)(process.pid, signum)
                break
        lines.append(process.stderr.read())
        process.wait()
    finally:
        watchdog.cancel()
    return process.returncode, ''.join(lines)


def snapshot(root):
    """{path relative to root: file bytes, or None for a folder}: everything under root."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            with open(os.path.join(folder, name), 'rb') as f:
                found[os.path.relpath(os.path.join(folder, name), root)] = f.read()
    return found
