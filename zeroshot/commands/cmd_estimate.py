"""``zeroshot estimate SPACE --archs FILE [--device NAME_OR_FILE] [--precision P]``: exact params, MACs,
peak activation and model memory, and latency on a device, as CSV."""
from zeroshot.api import estimate
from zeroshot.cli import add_space_args, read_archs, space_from_args, write_text
from zeroshot.estimator.counts import BYTES_PER_ELEMENT
from zeroshot.estimator.devices import load_device


def register(sub):
    p = sub.add_parser("estimate", help="analytic cost of architectures (CSV)")
    add_space_args(p, archs=True)
    p.add_argument("--device", metavar="NAME_OR_FILE",
                   help="add latency_ms on this device (a built-in name, see `zeroshot device list`, or a .json)")
    p.add_argument("--precision", default="fp32", choices=sorted(BYTES_PER_ELEMENT),
                   help="bytes per element of model_bytes and peak_activation_bytes (default fp32)")
    p.add_argument("-o", "--output", help="write the CSV to this file instead of standard output")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    device = load_device(args.device) if args.device else None     # before reading the architectures
    texts, _ = read_archs(space, args.archs)
    write_text(estimate(texts, space=space, device=device, precision=args.precision).to_csv(), args.output)
