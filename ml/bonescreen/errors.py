"""The one exception type that BoneScreen raises for bad input."""

from __future__ import annotations

from os import PathLike


class BoneScreenError(Exception):
    """A problem with the user's input, named with the file it concerns.

    Parameters
    ----------
    message : str
        What is wrong, in plain words.
    path : str or PathLike, optional
        The file or folder concerned; it is put in front of the message.
    """

    def __init__(self, message: str, path: str | PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(message if path is None else f"{path}: {message}")
