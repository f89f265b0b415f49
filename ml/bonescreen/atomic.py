"""Write files under a temporary name and move them into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    A reader never sees a half-written file: if the body raises, the temporary
    file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or PathLike
        The final file name.
    suffix : str, optional
        Suffix of the temporary name (some writers choose the format by it);
        by default the final name's suffixes.

    Raises
    ------
    OSError
        If the file cannot be moved into place (``path`` a folder, a read-only disk), or the body's writing fails
        without naming a file or naming the temporary one (a full disk): named by ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:  # a full disk while writing: named by the file, not left nameless or temporary
            if exc.errno is not None and exc.filename in (None, str(tmp_path)):
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
            raise
        # mkstemp makes the file private (0600); give it the permissions of a normally created file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        try:
            os.replace(tmp_path, path)
        except OSError as exc:  # named by the file the user asked for, not the temporary one (helper-60)
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def temporary_names(path: str | os.PathLike) -> str:
    """The glob pattern of :func:`atomic_path`'s temporary files for ``path`` (in its folder): what a run stopped by
    a signal or a power cut leaves behind (helper-97: a hidden ``.report.<random>.tmp.png`` stayed for good)."""
    path = Path(path)
    return f".{path.stem}.*.tmp{''.join(path.suffixes)}"


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class HeldFolder:
    """An output folder's lock (:func:`lock_output_folder`) for one run, taken at once (the folder made if not there);
    :meth:`keep` says the run writes there now. A run that ends before writing leaves no folder it made behind."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        # a folder not there yet is made and locked now too, so that a second run is refused before its work, not the
        # first after its own (helper-98); release() takes it away again if nothing was written into it
        self.made = [p for p in [self.out, *self.out.parents] if not p.exists()]
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            self.fd: int | None = lock_output_folder(self.out)
        except BaseException:
            self._remove_made()
            raise

    def keep(self) -> None:
        """The run writes into the folder now: it stays when the lock goes."""
        self.made = []

    def release(self) -> None:
        """Let the lock go; a folder this run made and left empty is removed (with the parents it made)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self._remove_made()

    def _remove_made(self) -> None:
        for p in self.made:  # deepest first; one holding anything stays
            try:
                p.rmdir()
            except OSError:
                break
        self.made = []


@contextlib.contextmanager
def held_output_folder(out: str | os.PathLike) -> Iterator[HeldFolder]:
    """Hold ``out``'s lock while the block runs (:class:`HeldFolder`), and let it go however the block ends.

    Raises
    ------
    BoneScreenError
        If another run holds the folder.
    """
    held = HeldFolder(out)
    try:
        yield held
    finally:
        held.release()


def lock_output_folder(out: str | os.PathLike) -> int:
    """Take an output folder's lock (``flock`` on the folder itself) for a run that writes there, or refuse: two
    batches writing into one folder removed each other's studies half-written and marked good results failed, and a
    ``screen`` into a running batch's folder wrote its outputs among the batch's (helper-92, helper-94).

    Returns
    -------
    int
        The folder's descriptor; closing it lets the lock go (the system does so when the process ends).

    Raises
    ------
    BoneScreenError
        If another run holds the folder.
    """
    import fcntl

    from .errors import BoneScreenError

    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BoneScreenError(
            "another bonescreen run (a batch or a screen) is writing into this output folder: wait for it to end, or "
            "give another --out",
            out,
        ) from None
    return fd
