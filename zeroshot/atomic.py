"""Atomic file writes: a temporary file in the target's folder, then a rename, so no reader ever sees
half a file (the command line's outputs, tables written with :meth:`zeroshot.table.Table.to_csv`).

Example
-------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
>>> write_text_atomically("a,b\\n", path)
>>> open(path).read()
'a,b\\n'
"""
from __future__ import annotations

import os
import tempfile

__all__ = ["write_text_atomically"]


def write_text_atomically(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (OSError as the system gives it)."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".zeroshot-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
