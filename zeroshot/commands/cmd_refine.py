"""``zeroshot refine SPACE ARCH --search fusion,depth-multiplier,width,resolution --device D``:
the fastest refinement of ARCH (an encoding or a baseline name) along the chosen dimensions whose score
stays at or above ARCH's (see :mod:`zeroshot.refine`).  Prints the baseline and best latency, the change,
and last a line ``best <encoding>``.

Example: ``zeroshot refine mbv2 mobilenetv2 --task detect --search fusion,depth-multiplier``
"""
from zeroshot.estimator.devices import load_device

from ..cli import add_space_args, space_from_args
from ..errors import InputError
from ..refine import DIMENSIONS, POPULATION, TOPOLOGY_SCORE, refine
from ..scoring import resolve_proxies
from .cmd_rewrite import resolve_arch


def register(sub):
    p = sub.add_parser("refine", help="search per-block fusion, per-stage depth / width multipliers, resolution "
                                      "of a baseline",
                       description="Find the fastest refinement of a network (an encoding or a baseline name) "
                                   "along the chosen dimensions whose score stays at or above the network's own, "
                                   "by evolution over estimated latencies; nothing is trained.  Prints the "
                                   "baseline's and the best's costs and last a line `best ENCODING`.  Example: "
                                   "zeroshot refine mbv2 mobilenetv2 --task detect --search fusion,depth-multiplier")
    add_space_args(p)
    p.add_argument("arch", help="an encoding (quoted) or a baseline name, like mobilenetv2")
    p.add_argument("--search", required=True, metavar="DIMS",
                   help=f"comma-separated dimensions to search, one or more of {', '.join(DIMENSIONS)}")
    p.add_argument("--device", default="mobile-npu-16", metavar="NAME_OR_FILE",
                   help="device whose latency is minimised: a built-in name (see `zeroshot device list`) or a "
                        "device .json (default %(default)s)")
    p.add_argument("--budget", type=int, default=2000,
                   help=f"candidates costed and scored, at least {POPULATION} (the first population) "
                        "(default %(default)s)")
    p.add_argument("--proxies", default=",".join(TOPOLOGY_SCORE), metavar="NAMES",
                   help="comma-separated score components that must not fall below the baseline's (see "
                        "`zeroshot proxies`; default %(default)s: topology-only, instant; 'default' for the default "
                        "network score, slow on a CPU)")
    p.add_argument("--proxy-resolution", type=int, default=None, metavar="PX",
                   help="network proxies see each candidate at PX pixels (and a dense network's backbone); "
                        "default: its own resolution")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the evolution: its random first population, tournaments and mutations "
                        "(default 0)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    dims = parse_dimensions(args.search)
    device = load_device(args.device)
    base = resolve_arch(space, args.arch)
    r = refine(space, base, dims, device, args.budget, args.seed, resolve_proxies(args.proxies),
               args.proxy_resolution)
    b = r["baseline"]
    print(f"searched {', '.join(dims)} on {device.name}: {r['evaluated']} distinct candidates, "
          f"{r['acceptable']} with the score at or above the baseline's")
    for k in ("latency_ms", "params", "macs", "peak_activation_bytes"):
        fmt = "{:>14,.3f}" if k == "latency_ms" else "{:>14,}"
        print(f"{k:>22}: {fmt.format(b[k])} -> {fmt.format(r[k])} ({100 * (r[k] / b[k] - 1):+.1f}%)")
    print(f"best {r['arch']}")
    return 0


def parse_dimensions(text: str) -> tuple[str, ...]:
    """The dimensions of ``--search`` (comma-separated), in :data:`~zeroshot.refine.DIMENSIONS` order."""
    dims = {d.strip() for d in text.split(",") if d.strip()}
    if not dims or not dims <= set(DIMENSIONS):
        raise InputError(f"--search {text!r}: expected one or more of {', '.join(DIMENSIONS)} "
                         "(comma-separated), like --search fusion,depth-multiplier")
    return tuple(d for d in DIMENSIONS if d in dims)
