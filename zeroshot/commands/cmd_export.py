"""``zeroshot export SPACE ARCH --format torch|onnx|json -o FILE``."""
from zeroshot.cli import add_space_args, space_from_args
from zeroshot.export import FORMATS, export

from .cmd_rewrite import resolve_arch


def register(sub):
    p = sub.add_parser("export", help="write an architecture as a PyTorch file, ONNX or its IR (JSON)")
    add_space_args(p)
    p.add_argument("arch", help="the architecture's encoding, or a baseline name (mobilenetv2)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    export(space, space.format(resolve_arch(space, args.arch)), args.format, args.output, args.seed)
