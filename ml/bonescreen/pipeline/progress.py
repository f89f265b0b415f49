"""Progress reports from long core work, and cancelling it between steps."""

from __future__ import annotations

from collections.abc import Callable, Generator

#: ``progress(stage, done, total)``; returning False cancels the run at the next step.
ProgressCallback = Callable[[str, int, int], "bool | None"]


class Cancelled(Exception):
    """The user cancelled the run; nothing was changed."""


def report(progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` and raise :class:`Cancelled` if it returns False."""
    if progress is not None and progress(stage, done, total) is False:
        raise Cancelled(f"cancelled during {stage} ({done} of {total})")


def drive(gen: Generator, progress: ProgressCallback | None):
    """Run a progress generator to its end, reporting to ``progress`` (which may cancel); return its value."""
    while True:
        try:
            stage, done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        try:
            report(progress, stage, done, total)
        except Exception:
            gen.close()
            raise
