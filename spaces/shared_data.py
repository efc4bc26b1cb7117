"""Locating the shared reference data (``../shared/data``) without ever copying it into the project.

Looked up, in order: ``$ZEROSHOT_SHARED_DATA``, ``./../shared/data`` from the working directory, and
``../shared/data`` beside the project checkout.  ``None`` when absent: callers skip or fall back and say so.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data"]


def shared_data(relative: str) -> Path | None:
    """Path of ``relative`` inside the shared data folder, or ``None`` if it cannot be found."""
    roots = []
    if os.environ.get("ZEROSHOT_SHARED_DATA"):
        roots.append(Path(os.environ["ZEROSHOT_SHARED_DATA"]))
    roots.append(Path.cwd().parent / "shared" / "data")
    roots.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for root in roots:
        path = root / relative
        if path.exists():
            return path
    return None
