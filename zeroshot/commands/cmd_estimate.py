"""``zeroshot estimate SPACE --archs FILE [--device NAME_OR_FILE] [--precision P]``, or ``zeroshot estimate
--model FILE.py:FUNC --input C,H,W ...`` for your own torch networks: exact params, MACs, peak activation and
model memory, and latency on a device, as CSV; ``--per-layer``: one row per kernel (where the time goes);
``--interval 0.8``: a calibrated device's interval around each latency (``latency_lo_ms``, ``latency_hi_ms``)."""
from zeroshot.api import Archs, estimate
from zeroshot.cli import add_space_args, models_from_args, read_archs, space_from_args, write_text, wrote
from zeroshot.estimator.counts import BYTES_PER_ELEMENT
from zeroshot.estimator.devices import load_device


def register(sub):
    p = sub.add_parser("estimate", help="analytic cost of architectures (CSV)",
                       description="Exact parameters, MACs, peak activation and model memory of architectures, "
                                   "and their latency on --device, as CSV on standard output (or -o FILE).  "
                                   "Example: zeroshot sample mbv2 -n 10 | zeroshot estimate mbv2 --archs - "
                                   "--device mobile-npu-16")
    add_space_args(p, archs=True, models=True)
    p.add_argument("--device", metavar="NAME_OR_FILE",
                   help="add latency_ms on this device: a built-in name (see `zeroshot device list`) or a device "
                        ".json (default: none, no latency column)")
    p.add_argument("--precision", default="fp32", choices=sorted(BYTES_PER_ELEMENT),
                   help="bytes per element of model_bytes and peak_activation_bytes (default fp32: 4 bytes)")
    p.add_argument("--per-layer", action="store_true",
                   help="one row per kernel: latency, MACs, bytes moved, lane utilisation, bound, share (default: "
                        "one row per network)")
    p.add_argument("--interval", type=float, metavar="LEVEL",
                   help="with a calibrated device: add latency_lo_ms and latency_hi_ms, where a measurement "
                        "falls with probability LEVEL (for example 0.8) under the fit's assumptions (default: none)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the CSV to this file instead of standard output ('-': standard output)")
    p.set_defaults(run=run)


def run(args):
    models = models_from_args(args)
    space = space_from_args(args) if models is None else None
    device = load_device(args.device) if args.device else None     # before reading the architectures
    archs = models if models is not None else Archs(*read_archs(space, args.archs), space=space)
    table = estimate(archs, space=space, device=device, precision=args.precision, per_layer=args.per_layer,
                     interval=args.interval)
    write_text(table.to_csv(), args.output)
    if args.output not in (None, "-"):
        wrote(args, args.output)
