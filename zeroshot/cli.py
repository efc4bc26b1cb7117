"""The ``zeroshot`` command.  Each subcommand lives in ``zeroshot/commands/cmd_<name>.py`` and exposes
``register(subparsers)`` adding its parser with ``set_defaults(run=...)``.

Bad input (:class:`~zeroshot.errors.UserError`, malformed encodings, unknown names, missing files) is
reported as one line on stderr with exit status 2 and no traceback; outputs are written only once
everything is computed, so nothing is half-written.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import io
import inspect
import os
import pkgutil
import sys
import tempfile
import warnings
from typing import Iterable, Sequence

from zeroshot.spaces import EncodingError, SearchSpace, get_space

from . import __version__, commands
from .allocator import keep_freed_memory
from .errors import UserError


# ------------------------------------------------------------------------------ shared helpers
def add_space_args(p: argparse.ArgumentParser, archs: bool = False) -> None:
    """The space argument and its options, shared by every command that takes a space."""
    p.add_argument("space", help="search space name (see `zeroshot spaces`)")
    p.add_argument("--classes", type=int, help="number of output classes of the head")
    p.add_argument("--config", help="space configuration (fbnet: cifar100 or imagenet)")
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="input side in pixels, for spaces that take it (nb201: 32, or 16 for ImageNet16-120)")
    p.add_argument("-P", "--parallelism", type=int, help="accelerator parallelism factor for curation (mbv2)")
    p.add_argument("--task", help="task head: classify, detect or segment (where the space has them)")
    if archs:
        p.add_argument("--archs", required=True, metavar="FILE",
                       help="file with one encoding per line, '-' for standard input")


#: space option -> the command-line flag that sets it (add_space_args)
SPACE_FLAGS = {"classes": "--classes", "config": "--config", "parallelism": "--parallelism", "task": "--task",
               "resolution": "--image-size"}


def space_options(args: argparse.Namespace) -> dict:
    """The space options given on the command line (:data:`SPACE_FLAGS`), as ``get_space`` keywords."""
    given = {k: getattr(args, f.lstrip("-").replace("-", "_"), None) for k, f in SPACE_FLAGS.items()}
    return {k: v for k, v in given.items() if v is not None}


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    return make_space(args.space, **space_options(args))


def make_space(name: str, **options) -> SearchSpace:
    """``get_space`` with user-facing errors for unknown names and options."""
    try:
        return get_space(name, **options)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    except TypeError:
        from zeroshot.spaces import _REGISTRY
        accepted = [p for p in inspect.signature(_REGISTRY[name].__init__).parameters if p != "self"]
        bad = ", ".join(SPACE_FLAGS.get(o, o) for o in sorted(set(options) - set(accepted)))
        takes = ", ".join(SPACE_FLAGS[o] for o in accepted if o in SPACE_FLAGS) or "none of these options"
        raise UserError(f"space {name!r} does not take {bad}; it takes {takes}") from None
    except ValueError as e:
        raise UserError(f"space {name!r}: {e}") from None


def read_lines(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def read_archs(space: SearchSpace, path: str):
    """Canonical encodings and codes of an architecture file; errors name the line."""
    texts, codes = space.parse_many(read_lines(path))
    if not texts:
        raise UserError(f"{path}: no architectures (expected one {space.name} encoding per line)")
    return texts, codes


def write_csv(header: Sequence[str], rows: Iterable[Sequence], path: str | None = None) -> None:
    """Write a CSV to ``path`` atomically (temp file + rename), or to stdout when ``path`` is None."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text(buf.getvalue(), path)


def write_text(text: str, path: str | None = None) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".zeroshot-")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ entry point
class _Parser(argparse.ArgumentParser):
    """Argument errors in one line (with a pointer to --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zeroshot", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"zeroshot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    keep_freed_memory()             # before any worker forks: they inherit it
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning(args.command)
        try:
            return args.run(args) or 0
        except (UserError, EncodingError) as e:
            print(f"zeroshot {args.command}: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"zeroshot {args.command}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 0


def _one_line_warning(command: str):
    """``warnings.showwarning`` for the command line: one line per warning, no source excerpt."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"zeroshot {command}: warning: {message}", file=file or sys.stderr)
    return show
