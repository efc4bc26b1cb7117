"""``zeroshot export SPACE ARCH --format torch|onnx|json -o FILE`` (``-o -``: the JSON on standard output)."""
import os
import sys
import tempfile

from zeroshot.cli import add_space_args, space_from_args, wrote
from zeroshot.errors import ParameterError
from zeroshot.export import FORMATS, export

from .cmd_rewrite import resolve_arch

#: what each --format writes
WHAT = {"torch": "a PyTorch file: the network's IR and initial weights",
        "onnx": "ONNX (needs the optional onnx package)", "json": "the network's IR as JSON text"}
#: formats that are text, which ``-o -`` writes to standard output
TEXT_FORMATS = ("json",)


def register(sub):
    p = sub.add_parser("export", help="write an architecture as a PyTorch file, ONNX or its IR (JSON)",
                       description="Write one architecture of a space as a PyTorch file (the network's IR and "
                                   "initial weights), ONNX, or its IR as JSON.  Example: zeroshot export mbv2 "
                                   "mobilenetv2 --format torch -o net.pt")
    add_space_args(p)
    p.add_argument("arch", help="the architecture's encoding, or a baseline name (mobilenetv2)")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="; ".join(f"{f}: {w}" for f, w in WHAT.items()) + " (required)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="file to write ('-': standard output, for --format json only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    arch = space.format(resolve_arch(space, args.arch))
    if args.output != "-":
        export(space, arch, args.format, args.output, args.seed)
        wrote(args, args.output)
        return
    if args.format not in TEXT_FORMATS:
        raise ParameterError("output", f"a file name: --format {args.format} is binary, only --format json writes "
                                       "to standard output", "-", fix=f"for example -o net.{_SUFFIX[args.format]}")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "export.json")
        export(space, arch, args.format, path, args.seed)
        with open(path, encoding="utf-8") as f:
            sys.stdout.write(f.read())
    sys.stdout.flush()


_SUFFIX = {"torch": "pt", "onnx": "onnx", "json": "json"}
