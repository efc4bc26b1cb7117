"""Progress bars on a terminal (tqdm), silent in pipes and files."""
import sys

from tqdm import tqdm

__all__ = ["progress"]


def progress(disable: bool = False, **kw):
    """A tqdm bar on stderr, shown only when stderr is a terminal and not ``disable``."""
    return tqdm(file=sys.stderr, disable=disable or not sys.stderr.isatty(), leave=False, **kw)
