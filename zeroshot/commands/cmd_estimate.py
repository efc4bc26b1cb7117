"""``zeroshot estimate SPACE --archs FILE [--device NAME_OR_FILE] [--precision P]``: exact params, MACs,
peak activation and model memory, and latency on a device, as CSV."""
from zeroshot.estimator.counts import BYTES_PER_ELEMENT
from zeroshot.estimator.devices import DeviceError, load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.cli import add_space_args, read_archs, space_from_args, write_csv
from zeroshot.errors import UserError


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
    try:
        device = load_device(args.device) if args.device else None
    except DeviceError as e:
        raise UserError(str(e)) from None
    texts, codes = read_archs(space, args.archs)
    try:
        cost = Estimator(space, device, args.precision).evaluate(codes)
    except DeviceError as e:            # a kernel the device cannot cost (a measured device's unprofiled type)
        raise UserError(str(e)) from None
    columns = ["params", "macs", "peak_activation_bytes", "model_bytes"] + (["latency_ms"] if device else [])
    rows = ([t] + [_cell(cost[c][i]) for c in columns] for i, t in enumerate(texts))
    write_csv(["arch"] + columns, rows, args.output)


def _cell(value):
    return int(value) if value.dtype.kind == "i" else f"{value:.6g}"
