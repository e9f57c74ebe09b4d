"""How far a clip's restoration is: frames done, frames per second and the time left.

When stderr is a terminal, tqdm's bar there (redrawn in place). Anywhere else (a log file,
a pipe, a batch job) a bar would be a stream of carriage returns, so one plain line is
printed every `every` seconds and one when the clip is done, on stdout among the log's
frame lines (stderr stays for the one sentence of a failure).
"""
import sys
import time

from tqdm import tqdm


def clock_text(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
    """The progress of one clip of `total` frames, of which `done` were finished before (kept from an
    interrupted run: counted as done, not in the rate)."""

    def __init__(self, label, total, done=0, terminal=None, lines=None, every=30.0, clock=time.monotonic):
        terminal = terminal if terminal is not None else sys.stderr
        self.lines = lines if lines is not None else sys.stdout
        self.label, self.total, self.done, self.every, self.clock = label, total, done, every, clock
        self.start = self.last_line = clock()
        self.new = 0
        isatty = getattr(terminal, 'isatty', None)
        self.bar = None
        if isatty is not None and isatty():
            self.bar = tqdm(total=total, initial=done, desc=label, unit='frame', leave=False, file=terminal)

    def update(self):
        """One more frame done."""
        self.done += 1
        self.new += 1
        if self.bar is not None:
            self.bar.update()
            return
        now = self.clock()
        if now - self.last_line >= self.every or self.done == self.total:
            self.last_line = now
            tqdm.write(self.line(now), file=self.lines)

    def line(self, now):
        elapsed = now - self.start
        rate = self.new / elapsed if elapsed > 0 else 0.0
        left = clock_text((self.total - self.done) / rate) if rate > 0 else '?'
        return (f'{self.label}: {self.done}/{self.total} frames, {rate:.3g} frames/s, '
                f'{clock_text(elapsed)} elapsed, {left} left')

    def close(self):
        if self.bar is not None:
            self.bar.close()
