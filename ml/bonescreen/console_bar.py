"""Progress bars for the command line: tqdm on a terminal, plain lines in a log file.

tqdm redraws its bar with carriage returns; written to a file (a batch job's log, ``2> log``) every
redraw stays, so each stage's start and end appeared twice on one long line. Off a terminal a bar
prints a line when it ends, and one a minute while it runs.
"""

from __future__ import annotations

import sys
import time

#: Seconds between the lines a bar writes to a log file while it runs.
LOG_INTERVAL_S = 60.0


class LineBar:
    """The part of tqdm's interface the command line uses, written as whole lines to ``file``.

    Parameters
    ----------
    desc : str
        What is counted ("segment", "studies").
    total : int, optional
        Count at the end; None when unknown.
    file : text stream
        Where the lines go (standard error).
    """

    def __init__(self, desc: str, total: int | None, file) -> None:
        self.desc, self.total, self.n, self.file = desc, total, 0, file
        self.postfix = ""
        self.closed = False
        self.t0 = self.last = time.monotonic()

    def _line(self) -> str:
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {count} in {time.monotonic() - self.t0:.1f} s{extra}"

    def update(self, k: int = 1) -> None:
        """Count ``k`` more done."""
        self.n += k
        self.refresh()

    def refresh(self) -> None:
        """Write a line if the last one is more than :data:`LOG_INTERVAL_S` old."""
        now = time.monotonic()
        if not self.closed and now - self.last > LOG_INTERVAL_S:
            self.last = now
            print(self._line(), file=self.file, flush=True)

    def set_postfix(self, **values) -> None:
        """Values shown after the count (``loss=0.01``)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Write the final line (once)."""
        if not self.closed:
            self.closed = True
            print(self._line(), file=self.file, flush=True)


def progress_bar(desc: str, total: int | None = None, unit: str = ""):
    """A bar on standard error: tqdm's on a terminal, a :class:`LineBar` otherwise.

    Parameters
    ----------
    desc : str
        Its label.
    total : int, optional
        Count at the end.
    unit : str
        tqdm's unit ("study").
    """
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True, file=sys.stderr)
    return LineBar(desc, total, sys.stderr)
