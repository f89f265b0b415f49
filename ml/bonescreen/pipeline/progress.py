"""Progress reports from long core work, and cancelling it between steps.

A step that reports no progress of its own (the level split: a minute on a thin-slice CT on the CPU) calls
:func:`heartbeat` between its parts; a front end that listens (:func:`listening`; :func:`drive` does, with the
``progress`` callback it is given) keeps its window alive there and may cancel, by raising :class:`Cancelled`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``progress(stage, done, total)``; returning False cancels the run at the next step.
ProgressCallback = Callable[[str, int, int], "bool | None"]


#: What a step that reports no progress of its own does, in words, for its status while it runs (:func:`step_text`).
STEP_WORDS = {"name levels": "naming the levels: splitting the mark into vertebrae and naming them"}


def without_progress(done: int, total: int) -> bool:
    """Whether a report ``done`` of ``total`` is a step that reports no progress of its own (0 of 1): a front end
    shows a busy bar and :func:`step_text`, not a bar stuck at 0 %."""
    return done == 0 and total == 1


def step_text(stage: str, seconds: float) -> str:
    """The status of a step without progress of its own (:func:`without_progress`) while it runs: what it does and
    the whole seconds it has taken so far (napari's Segment dock and Slicer's panel say the same)."""
    return (
        f"{stage}: {STEP_WORDS.get(stage, 'one step')}, {int(seconds)} s so far (a minute or more for a thin-slice "
        "CT on the CPU; Cancel stops it)"
    )


class Cancelled(Exception):
    """The user cancelled the run; nothing was changed."""


def report(progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` and raise :class:`Cancelled` if it returns False."""
    if progress is not None and progress(stage, done, total) is False:
        raise Cancelled(f"cancelled during {stage} ({done} of {total})")


#: What :func:`heartbeat` calls in this thread (or task), if anything.
_BEAT: ContextVar[Callable[[], None] | None] = ContextVar("bonescreen_heartbeat", default=None)


def heartbeat() -> None:
    """Called by long core steps that report no progress, between their parts (a few seconds apart at most).

    Calls what :func:`listening` set in this thread, which may raise :class:`Cancelled` to stop the step;
    does nothing when nothing listens.
    """
    beat = _BEAT.get()
    if beat is not None:
        beat()


#: Least time (s) between two calls of a listener: a step may beat often, and a front end's call may pump its events.
BEAT_EVERY_S = 0.25


@contextmanager
def listening(beat: Callable[[], None]) -> Iterator[None]:
    """Within the block, :func:`heartbeat` in this thread calls ``beat`` (which may raise :class:`Cancelled`), at
    most every :data:`BEAT_EVERY_S` seconds."""
    last = [time.monotonic()]

    def throttled() -> None:
        now = time.monotonic()
        if now - last[0] >= BEAT_EVERY_S:
            last[0] = now
            beat()

    token = _BEAT.set(throttled)
    try:
        yield
    finally:
        _BEAT.reset(token)


def listened(gen: Generator, beat: Callable[[], None]) -> Generator:
    """``gen``'s items and value, each of its steps run :func:`listening` to ``beat``: a front end's way to keep
    alive, or to stop (``beat`` raising :class:`Cancelled`), inside a step that yields nothing until it ends (the
    level split). :func:`drive` and napari's Segment worker both run their work so."""
    while True:
        try:
            with listening(beat):
                item = next(gen)
        except StopIteration as stop:
            return stop.value
        yield item


def drive(gen: Generator, progress: ProgressCallback | None):
    """Run a progress generator to its end, reporting to ``progress`` (which may cancel); return its value.

    Inside a step, each :func:`heartbeat` reports the step's last ``(stage, done, total)`` to ``progress`` again,
    so that a front end on the same thread (Slicer) stays alive and can cancel during the level split.
    """
    last: list[tuple[str, int, int]] = []

    def again() -> None:
        if last:
            report(progress, *last[-1])

    steps = listened(gen, again)
    while True:
        try:
            stage, done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        last[:] = [(stage, done, total)]
        try:
            report(progress, stage, done, total)
        except Exception:
            gen.close()
            raise
