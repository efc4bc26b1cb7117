"""The ``zeroshot`` command: a thin layer over the library (:mod:`zeroshot.api` and the modules it names).

Each subcommand lives in ``zeroshot/commands/cmd_<name>.py`` and exposes ``register(subparsers)``, adding its
parser with ``set_defaults(run=...)``.  Any :class:`zeroshot.Error` (bad input: a malformed encoding, an
unknown name, a missing file, a parameter out of range) is printed as one line on stderr, naming the flag
where the library names the parameter, with exit status 2 and no traceback; anything else is a bug and keeps
its traceback.  Outputs are written only once everything is computed, so nothing is half-written.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import io
import pkgutil
import sys
import warnings
from typing import Iterable, Sequence

from zeroshot.spaces import Arch, SearchSpace, SpaceOptionError, get_space

from . import __version__, commands
from .allocator import keep_freed_memory
from .atomic import check_writable, write_text_atomically, writing
from .errors import Error, InputError, ParameterError
from .model_files import load_models, parse_input_shape

__all__ = ["DESCRIPTION", "PARAM_FLAGS", "SPACE_FLAGS", "Spelled", "TORCH_DEVICES", "add_space_args", "build_parser",
           "check_output", "command_name", "cost_device_hint", "error_line", "flag_of", "flag_used", "main",
           "models_from_args", "parse_run", "read_archs", "read_lines",
           "space_from_args", "space_label", "space_options", "wrote", "write_csv", "write_text"]

#: what ``zeroshot --help`` says first
DESCRIPTION = ("Hardware-aware neural-architecture screening: sample curated search spaces, estimate each "
               "candidate's cost on an accelerator, score it at initialisation with zero-shot proxies, and "
               "shortlist the few worth training.  Start with `zeroshot spaces` and `zeroshot screen mbv2`.")


# ------------------------------------------------------------------------------ shared helpers
def add_space_args(p: argparse.ArgumentParser, archs: bool = False, models: bool = False,
                   image_size: bool = True) -> None:
    """The space argument and its options, shared by every command that takes a space; with ``models``,
    ``--model FILE.py:FUNC --input C,H,W`` too, in place of the space and its encodings; without
    ``image_size``, no ``--image-size`` (a command that sets the input side itself: ``measure``)."""
    if models:
        p.add_argument("space", nargs="?", help="search space name (see `zeroshot spaces`); not with --model")
    else:
        p.add_argument("space", help="search space name (see `zeroshot spaces`)")
    p.add_argument("--classes", type=int, metavar="N",
                   help="number of output classes of the head (default: the space's: nb201 10, fbnet 100 for "
                        "cifar100 and 1000 for imagenet, mbv2 1000)")
    p.add_argument("--config", metavar="NAME", help="space configuration (fbnet: cifar100, the default, or imagenet)")
    if image_size:
        p.add_argument("--image-size", type=int, metavar="PX",
                       help="input side in pixels, for spaces that take it (nb201: 32, the default, or 16 for "
                            "ImageNet16-120)")
    p.add_argument("-P", "--parallelism", type=int, metavar="P",
                   help="accelerator parallelism factor for curation (mbv2; default 16)")
    p.add_argument("--task", metavar="TASK",
                   help="task head: classify (the default), detect or segment (where the space has them: mbv2)")
    if archs:
        p.add_argument("--archs", required=not models, metavar="FILE",
                       help="file with one encoding per line, '-' for standard input")
    if models:
        p.add_argument("--model", metavar="FILE.py:FUNC",
                       help="your own torch network(s): FUNC in FILE.py returns a module or a list of them")
        p.add_argument("--input", metavar="C,H,W", help="input shape of the --model networks, e.g. 3,224,224")


#: space option -> the command-line flag that sets it (add_space_args)
SPACE_FLAGS = {"classes": "--classes", "config": "--config", "parallelism": "--parallelism", "task": "--task",
               "resolution": "--image-size"}
#: library parameters whose flag is not their name in dashes (besides the space options)
PARAM_FLAGS = {"input_shape": "--input"}


def space_options(args: argparse.Namespace) -> dict:
    """The space options given on the command line (:data:`SPACE_FLAGS`), as ``get_space`` keywords."""
    given = {k: getattr(args, f.lstrip("-").replace("-", "_"), None) for k, f in SPACE_FLAGS.items()}
    return {k: v for k, v in given.items() if v is not None}


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    """The space a command names, built with the space options given as flags."""
    return get_space(args.space, **space_options(args))


#: space option -> how :func:`space_label` words its value
_LABELS = {"parallelism": "P={}", "classes": "{} classes", "task": "{}", "config": "{}", "resolution": "{} px",
           "channels": "{} channels", "cells": "{} cells"}


def space_label(space: SearchSpace) -> str:
    """The space as a user names it, with the options it was built with, e.g. ``mbv2 (P=16, 1000 classes,
    classify)``."""
    from zeroshot.spaces import list_space_options
    parts = [_LABELS[o].format(getattr(space, o)) for o in list_space_options(space.name)
             if o in _LABELS and getattr(space, o, None) is not None]
    return f"{space.name} ({', '.join(parts)})" if parts else space.name


#: names that are torch devices, not hardware cost profiles (see :func:`cost_device_hint`)
TORCH_DEVICES = ("auto", "cpu", "cuda", "mps", "gpu")


def cost_device_hint(error: Error, device, torch_flag: str | None = None) -> Error:
    """``error`` with a hint when ``--device`` named a torch device (``cuda``) where a command's ``--device`` is
    a hardware cost profile; ``torch_flag``: the command's flag for a torch device, if it has one."""
    name = getattr(error, "name", None)
    if getattr(error, "kind", None) != "device" or name != device or not isinstance(name, str) or \
            name.split(":")[0] not in TORCH_DEVICES:
        return error
    where = f"; for the torch device that trains, use {torch_flag} {name}" if torch_flag else ""
    return InputError(f"{error} (--device names a hardware cost profile of the latency, not a torch device{where})")


def parse_run(text: str) -> int | None:
    """A ``--run`` flag: a run number, or ``last`` (None)."""
    if text == "last":
        return None
    if not text.isdigit():
        raise InputError(f"--run must be a run number or last, got {text!r}")
    return int(text)


def wrote(args: argparse.Namespace, path, detail: str = "") -> None:
    """Say on standard error that the command wrote ``path`` (one line; standard output stays the command's
    data)."""
    print(f"{command_name(args)}: wrote {path}{': ' + detail if detail else ''}", file=sys.stderr)


def command_name(args: argparse.Namespace) -> str:
    """``zeroshot COMMAND`` (with its action: ``zeroshot device profile``), as messages start."""
    action = getattr(args, "device_action", None)
    return f"zeroshot {args.command}" + (f" {action}" if action else "")


class Spelled(argparse.Action):
    """A flag with several spellings (``--batch-size`` / ``--batch``) that remembers the one given, so that
    messages name it (:func:`flag_used`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        spelled = dict(getattr(namespace, "_spelled", {}))
        spelled[self.dest] = option_string
        setattr(namespace, "_spelled", spelled)


def flag_used(args: argparse.Namespace, dest: str, default: str) -> str:
    """The spelling of flag ``dest`` given on the command line (:class:`Spelled`), else ``default``."""
    return getattr(args, "_spelled", {}).get(dest) or default


def models_from_args(args: argparse.Namespace) -> list[Arch] | None:
    """The IR of the ``--model`` networks (each named as :func:`~zeroshot.model_files.load_models` names it),
    or None when the command names a space instead; exactly one of the two."""
    if args.model is None:
        if args.space is None:
            archs = " (with --archs FILE)" if hasattr(args, "archs") else ""
            raise InputError(f"name a space{archs} or give --model FILE.py:FUNC --input C,H,W")
        if args.input is not None:
            raise InputError("--input is the input shape of --model networks; a space's networks have theirs "
                             "(drop --input, or give --model FILE.py:FUNC)")
        return None
    if args.space is not None or getattr(args, "archs", None) is not None:
        raise InputError("give either a space (with --archs FILE) or --model FILE.py:FUNC, not both")
    if args.input is None:
        raise ParameterError("input", "given with --model: the networks' input shape C,H,W", None,
                             fix="for example --input 3,224,224")
    from zeroshot.spaces.tracing import from_torch          # torch only for commands given networks
    shape = parse_input_shape(args.input)
    models = load_models(args.model)
    irs = []
    for name, module in models:
        try:
            arch = from_torch(module, shape)
        except Error as e:
            if len(models) == 1:
                raise
            raise InputError(f"{name}: {error_line(e)}") from e       # which of the file's networks
        arch.meta["name"] = name
        irs.append(arch)
    return irs


def read_lines(path: str) -> list[str]:
    """Lines of a UTF-8 text file, or of standard input for ``-``; a file that cannot be read (or is not
    text) is an InputError."""
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{'standard input' if path == '-' else path} is not UTF-8 text; expected one "
                         f"encoding per line") from None


def read_archs(space: SearchSpace, path: str):
    """Canonical encodings and codes of an architecture file (blank lines and ``#`` comments skipped);
    errors name the line (commands hand them to the API as an :class:`~zeroshot.api.Archs`, parsed once)."""
    if path is None:
        raise ParameterError("archs", "a file of encodings, one per line ('-': standard input), or --model "
                             "FILE.py:FUNC --input C,H,W", None, fix=f"for example: zeroshot sample {space.name} "
                             "-n 10 > archs.txt, then --archs archs.txt")
    texts, codes = space.parse_many(read_lines(path))
    if not texts:
        raise InputError(f"{path}: no architectures (expected one {space.name} encoding per line)")
    return texts, codes


def write_csv(header: Sequence[str], rows: Iterable[Sequence], path: str | None = None) -> None:
    """Write a CSV to ``path`` atomically (temp file + rename), or to stdout when ``path`` is None."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text(buf.getvalue(), path)


def write_text(text: str, path: str | None = None) -> None:
    """``text`` to standard output, or atomically to ``path``."""
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with writing(path):
        write_text_atomically(text, path)


def check_output(args: argparse.Namespace) -> None:
    """An ``-o`` file that cannot be written, refused before the command's work (a command whose ``-o`` is
    a folder sets ``output_is_folder``)."""
    path = getattr(args, "output", None)
    if isinstance(path, str) and path != "-" and not getattr(args, "output_is_folder", False):
        with writing(path):
            check_writable(path)


# ------------------------------------------------------------------------------ entry point
class _Parser(argparse.ArgumentParser):
    """Argument errors in one line (with a pointer to --help), exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)    # --batch must not silently mean --batch-size
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``zeroshot`` parser with every subcommand of :mod:`zeroshot.commands` registered."""
    parser = _Parser(prog="zeroshot", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"zeroshot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: the process's); the exit status (2: bad input)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:                               # named by the subcommand that refused them, with its --help
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    keep_freed_memory()             # before any worker forks: they inherit it
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning(command_name(args))
        try:
            check_output(args)
            return args.run(args) or 0
        except Error as e:
            print(f"{command_name(args)}: error: {error_line(e)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{command_name(args)}: interrupted{getattr(args, 'interrupted_note', '')}", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 0


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` ran: ``zeroshot score``, ``zeroshot device profile``."""
    for dest in ("command", "device_action"):
        name = getattr(args, dest, None)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if name is None or not subs:
            break
        parser = subs[0].choices[name]
    return parser


def error_line(error: Error) -> str:
    """The message of a library error as the command line says it: parameters named by their flags.

    >>> error_line(ParameterError("batch_size", "at least 2 images", 1))
    '--batch-size must be at least 2 images, got 1'
    >>> error_line(ParameterError("resolution", "a multiple of 4", 30))
    '--image-size must be a multiple of 4, got 30'
    """
    if isinstance(error, SpaceOptionError):
        takes = ", ".join(SPACE_FLAGS[o] for o in error.accepted if o in SPACE_FLAGS) or "none of these options"
        return f"space {error.space!r} does not take {flag_of(error.param)}; it takes {takes}"
    if isinstance(error, ParameterError):
        return error.message_for(flag_of(error.param))
    return str(error)


def flag_of(param: str) -> str:
    """The flag that sets a library parameter (``-n`` for one letter, else ``--`` and dashes, unless
    :data:`SPACE_FLAGS` or :data:`PARAM_FLAGS` says otherwise).

    >>> flag_of("n"), flag_of("max_latency_ms"), flag_of("resolution"), flag_of("input_shape")
    ('-n', '--max-latency-ms', '--image-size', '--input')
    """
    if param in SPACE_FLAGS or param in PARAM_FLAGS:
        return {**SPACE_FLAGS, **PARAM_FLAGS}[param]
    return "-" + param if len(param) == 1 else "--" + param.replace("_", "-")


def _one_line_warning(command: str):
    """``warnings.showwarning`` for the command line (``command``: ``zeroshot NAME``): one line per warning,
    no source excerpt."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{command}: warning: {message}", file=file or sys.stderr)
    return show
