"""Atomic file writes: a temporary file in the target's folder, then a rename, so no reader ever sees
half a file (the command line's outputs, exports, checkpoints, tables written with
:meth:`zeroshot.table.Table.to_csv`).  Files come out with the mode a plain ``open()`` gives them
(``0o666`` less the umask).

Example
-------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
>>> write_text_atomically("a,b\\n", path)
>>> open(path).read()
'a,b\\n'
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator

from .errors import InputError

__all__ = ["check_writable", "open_atomically", "writing", "write_text_atomically"]


@contextmanager
def open_atomically(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """``path`` opened for writing (``mode``: ``"w"`` or ``"wb"``) through a temporary file, renamed onto
    it when the block ends without an error and removed otherwise.  A path that cannot be written (a
    directory, a missing folder) raises its OSError before the block runs."""
    path = os.fspath(path)
    fd, tmp = _temporary_beside(path)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomically(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (OSError as the system gives it)."""
    with open_atomically(path) as f:
        f.write(text)


def check_writable(path: str | os.PathLike) -> None:
    """Raise the OSError that writing ``path`` atomically would raise, before any work is done (a file is
    created in its folder and removed at once)."""
    fd, tmp = _temporary_beside(os.fspath(path))
    os.close(fd)
    os.unlink(tmp)


@contextmanager
def writing(path: str | os.PathLike, what: str = "", fix: str = "") -> Iterator[None]:
    """Within the block, an OSError of writing ``path`` becomes one :class:`~zeroshot.errors.InputError`:
    ``cannot write [what ]PATH: reason[; fix]``."""
    try:
        yield
    except OSError as e:
        raise InputError(f"cannot write {what + ' ' if what else ''}{os.fspath(path)}: {e.strerror or e}"
                         + (f"; {fix}" if fix else "")) from None


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new temporary file (descriptor, name) in the folder of ``path``; IsADirectoryError when ``path``
    is a folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    return tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".zeroshot-")


def _umask() -> int:
    """The process's umask (read by setting it and back: there is no other portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
