"""The one exception type that BoneScreen raises for bad input and bad arguments, and the checks that raise it."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from os import PathLike


class BoneScreenError(Exception):
    """A problem with the user's input or with an argument, named with the file or value it concerns.

    Every public function of BoneScreen raises this, and only this, for input it cannot use; any
    other exception is a bug (the command line reports it as one).

    Parameters
    ----------
    message : str
        What is wrong, in plain words.
    path : str or PathLike, optional
        The file or folder concerned; it is put in front of the message.
    """

    #: The command line's exit code for it: 2, bad input or a bad argument.
    exit_code = 2

    def __init__(self, message: str, path: str | PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(message if path is None else f"{path}: {message}")


class OutputError(BoneScreenError):
    """An output that could not be written (a full disk, a folder made read-only during the run) after the input was
    read and screened: exit code 1, as for the other outputs that fail (helper-92: result.json on a full disk ended
    with exit code 2, which says the input was bad)."""

    exit_code = 1


def check_choice(name: str, value: object, allowed: Iterable) -> None:
    """Raise :class:`BoneScreenError` unless ``value`` is one of ``allowed``, naming both.

    Parameters
    ----------
    name : str
        The argument's name, as the caller wrote it.
    value : object
        What was given.
    allowed : iterable
        The accepted values.
    """
    allowed = list(allowed)
    if value not in allowed:
        raise BoneScreenError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def check_number(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    whole: bool = False,
) -> None:
    """Raise :class:`BoneScreenError` unless ``value`` is a finite number within the bounds, naming them.

    Parameters
    ----------
    name : str
        The argument's name.
    value : float
        What was given.
    low, high : float, optional
        Bounds, included unless ``low_open``/``high_open``.
    whole : bool
        The value must be a whole number (an int, not a bool).
    """
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = is_number and math.isfinite(value) and (not whole or isinstance(value, numbers.Integral))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        kind = "a whole number" if whole else "a finite number"
        bounds = []
        if low is not None:
            bounds.append(f"{'above' if low_open else 'at least'} {low:g}")
        if high is not None:
            bounds.append(f"{'below' if high_open else 'at most'} {high:g}")
        raise BoneScreenError(f"{name} must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}, got {value!r}")
