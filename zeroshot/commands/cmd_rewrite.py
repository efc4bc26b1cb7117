"""``zeroshot rewrite SPACE ARCH --apply SPEC [--device D] [--quiet]``: apply expert rewrites and report.

ARCH is an encoding or a baseline name (``zeroshot baseline SPACE``).  The report has one row per step
(before, then each rewrite in turn): latency on the device, params, MACs, peak activation memory, the
proxies and the score (rank aggregate over the rows; topology-only proxies by default, which are
instant; ``--proxies default`` uses the default network score, slow on a CPU for mbv2 networks),
then what each rewrite changed and which constraint moved it, then the new encoding.

Example: ``zeroshot rewrite mbv2 mobilenetv2 --apply fuse:stages=1-3,snap:P=16 --device mobile-npu-16``
"""
import argparse

import numpy as np

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.spaces.baselines import get_baseline, list_baselines
from zeroshot.errors import EncodingError
from zeroshot.spaces.rewrites import RewriteError, apply_steps, describe_rewrites

from ..cli import add_space_args, space_from_args, space_label
from ..scoring import compute_proxies, rank_aggregate, resolve_proxies

#: Instant topology-only score components: complexity (live MACs) and DeepMAD expressivity (entropy).
TOPOLOGY_SCORE = ("live_macs", "entropy")


#: what ``zeroshot rewrite --help`` says first (the rewrites follow)
DESCRIPTION = """Apply named design rewrites to a network, one after another, and report each step: latency on
--device, params, MACs, peak activation memory, the proxies and the score (a rank aggregate over the rows),
then what each rewrite changed and the new encoding.  ARCH is an encoding or a baseline name
(`zeroshot baseline SPACE` lists them).

Example: zeroshot rewrite mbv2 mobilenetv2 --apply fuse:stages=1-3,snap:P=16 --device mobile-npu-16"""


def register(sub):
    p = sub.add_parser("rewrite", help="apply named design rewrites (fuse, snap, depth, ...) with a report",
                       description=DESCRIPTION + "\n\nRewrites (--apply NAME:SETTING, comma-separated):\n" +
                       describe_rewrites(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_space_args(p)
    p.add_argument("arch", help="an encoding (quoted) or a baseline name, like mobilenetv2")
    p.add_argument("--apply", required=True, metavar="SPEC",
                   help="comma-separated rewrites applied in turn, like fuse:stages=1-3,snap:P=16")
    p.add_argument("--device", metavar="NAME_OR_FILE",
                   help="device for a latency_ms column: a built-in name (see `zeroshot device list`) or a device "
                        ".json (default: none, no latency column)")
    p.add_argument("--proxies", default=",".join(TOPOLOGY_SCORE), metavar="NAMES",
                   help=f"comma-separated score components (see `zeroshot proxies`; default "
                        f"{','.join(TOPOLOGY_SCORE)}: topology-only, instant; 'default' for the default network "
                        "score, slow on a CPU for mbv2)")
    p.add_argument("--quiet", action="store_true", help="print only the new encoding (default: the whole report)")
    p.set_defaults(run=run)


def resolve_arch(space, arch: str) -> np.ndarray:
    """Codes of an encoding or of a baseline name of the space (for the space's task)."""
    names = list_baselines(space.name)
    if "|" not in arch and arch in names:
        arch = get_baseline(space.name, arch, getattr(space, "task", "classify"))
    try:
        return space.parse(arch)
    except EncodingError as e:
        if not names or "|" in arch:
            raise
        raise EncodingError(f"{e}; or name a baseline of {space.name}: {', '.join(names)}") from None


def run(args):
    space = space_from_args(args)
    codes = resolve_arch(space, args.arch)
    try:
        steps = apply_steps(space, codes, args.apply)
    except RewriteError as e:
        raise RewriteError(f"--apply {args.apply!r}: {e}") from None
    if args.quiet:
        print(space.format(steps[-1][1]))
        return 0
    device = load_device(args.device) if args.device else None
    names = resolve_proxies(args.proxies)
    print(format_report(space, steps, device, names))
    return 0


def format_report(space, steps, device=None, proxies=TOPOLOGY_SCORE) -> str:
    """The before / after table of :func:`zeroshot.spaces.rewrites.apply_steps`' steps, the notes and the result."""
    codes = np.stack([c for _, c, _ in steps])
    cost = Estimator(space, device).evaluate(codes)
    values = compute_proxies(space, codes, proxies)
    score = rank_aggregate(values)
    cols = (["latency_ms"] if device else []) + ["params", "macs", "peak_kb"]
    data = {**{k: cost[k] for k in ("params", "macs")}, "peak_kb": cost["peak_activation_bytes"] / 1024,
            **({"latency_ms": cost["latency_ms"]} if device else {})}
    width = max(len(s) for s, _, _ in steps)
    head = f"{'step':<{width}}  " + "  ".join(f"{c:>19}" for c in cols + list(proxies) + ["score"])
    lines = [f"# {space_label(space)}" + (f" on {device.name}" if device else "") +
             f"; score = rank aggregate of {', '.join(proxies)} over these rows", head]
    for i, (step, _, _) in enumerate(steps):
        cells = [_cell(data[c][i], data[c][0], i) for c in cols]
        cells += [f"{values[p][i]:>19.4g}" for p in proxies] + [f"{score[i]:>19.3f}"]
        lines.append(f"{step:<{width}}  " + "  ".join(cells))
    lines += [f"note: {n}" for _, _, notes in steps for n in notes]
    lines.append(f"after: {space.format(steps[-1][1])}")
    return "\n".join(lines)


def _cell(v, v0, i) -> str:
    text = f"{v:,.3f}" if isinstance(v, float) or np.asarray(v).dtype.kind == "f" else f"{int(v):,}"
    if i and v0:
        text += f" ({100 * (v - v0) / v0:+.0f}%)"
    return f"{text:>19}"
