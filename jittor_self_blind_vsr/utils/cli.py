"""How every command line reports what went wrong: one sentence on stderr and an exit status.

A library function raises a `UserError` (or a subclass) when the cause lies in the user's
input or machine: a missing folder, a damaged checkpoint, an option out of range. Only
`run_command` turns it into output, so the library itself never prints or exits.
"""
import re
import sys

from jittor_self_blind_vsr.utils import interrupt

# the commands' --verbose (runtime.show_jittor_log)
VERBOSE_HELP = "also show Jittor's own log lines (compiler, cache folder, CUDA search), silent by default"


class UserError(Exception):
    """A problem the user can fix; its message is a sentence naming the cause.

    `exit_status` is 1 for bad data or state, 2 for a bad command line (as argparse)."""
    exit_status = 1


def one_line(text):
    """The message on one line, without a trailing full stop (reports may go on after it)."""
    return re.sub(r'\s+', ' ', str(text)).strip().rstrip('.')


def run_command(program, body, kept=None, write_target=None):
    """Run `body()` inside interrupt.handled() and return the command's exit status.

    program: the name printed before every message ('sbvsr-infer').
    kept: called after an interrupt or an OSError, returns what was left as it was ('OUT is
    unchanged'); without it an interrupt reports the exception's `kept` attribute, if any.
    write_target: what an unexpected OSError was writing, when the error names no file.
    A UserError prints its sentence; an OSError its cause and file; SIGINT/SIGTERM/SIGHUP exit 130/143/129.
    """
    try:
        with interrupt.handled():
            body()
    except UserError as error:
        _say(program, one_line(error))
        return error.exit_status
    except OSError as error:
        where = error.filename or write_target or 'a file'
        sentence = f'{error.strerror or one_line(error)} ({where})'
        _say(program, sentence if kept is None else f'{sentence}; {kept()}')
        return 1
    except KeyboardInterrupt as error:
        what = kept() if kept is not None else getattr(error, 'kept', 'nothing was written')
        _say(program, f'interrupted ({interrupt.signal_name(error)}): {what}')
        return interrupt.exit_code(error)
    return 0


def _say(program, sentence):
    print(f'{program}: {sentence}', file=sys.stderr, flush=True)

