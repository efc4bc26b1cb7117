"""Where the network-proxy suite's cost goes: each proxy alone and all 13 together, in forward+backward passes.

Usage: python benchmarks/proxies_cost_breakdown.py [--cells 4] [--mbv2 2] [--seed 0] [--glibc-defaults]
Writes benchmarks/results/proxies_cost_breakdown.md (with --glibc-defaults: ..._glibc_defaults.md).
Needs ../shared/data/images/cifar10_test_846.npz.

Each figure is :func:`zeroshot.proxies.network.suite_cost` (one call of ``compute_network_proxies`` timed
alternately with one cross-entropy forward+backward of the same network on the same batch, medians of 3,
one thread), median over the networks: NB201 cells (``default_rng(seed + 7)`` samples, none chosen for
speed) on the first 64 real images, and MobileNetV2 nets at 128 px on 16 Gaussian images.  Freed memory is
kept for reuse (:func:`zeroshot.allocator.keep_freed_memory`, as the command line does) unless
``--glibc-defaults``.  A proxy alone pays for every pass it needs (building the network included), so the
rows of single proxies overlap: the "passes it runs" column says what each one shares.
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch

from common import require_shared
from zeroshot.spaces import get_space
from zeroshot.allocator import keep_freed_memory
from zeroshot.batches import load_data
from zeroshot.proxies.network import NETWORK_PROXIES, suite_cost

OUT = Path(__file__).parent / "results" / "proxies_cost_breakdown.md"
PASSES = {    # in the order of the passes they share
    "naswot": "batch forward (bit-packed codes, Hamming Gram)",
    "swap": "batch forward (codes of 16 samples)",
    "grad_norm": "batch forward + cross-entropy backward (weights)",
    "snip": "the same passes as grad_norm",
    "fisher": "same + activation-gradient hooks",
    "zico": "same + the first half-batch's weight gradients",
    "grasp": "over 16 images: on the first 16, a no-grad forward + gradients at weights scaled by 1 +- 1e-2; "
             "up to 16: the cross-entropy backward + one more at scaled weights",
    "jacob_cov": "batch forward + all-ones backward to the input (no weight gradients)",
    "ntk": "same + per-sample weight gradients from that backward, B x B Gram",
    "zen": "two no-grad forwards of 16 Gaussian images, N(0,1) weights",
    "meco": "one no-grad forward of one Gaussian image",
    "synflow": "float64 forward + backward of one all-ones input",
    "linear_regions": "thin copy (channels / 8), 1,000 small crops, no grad",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--mbv2", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--glibc-defaults", action="store_true", help="leave glibc's malloc settings as they are")
    args = ap.parse_args()
    kept = False if args.glibc_defaults else keep_freed_memory()
    out = OUT.with_name(OUT.stem + "_glibc_defaults.md") if args.glibc_defaults else OUT
    (images,) = require_shared("images/cifar10_test_846.npz")
    torch.set_num_threads(1)
    nb = get_space("nb201")
    cells = [nb.to_ir(c) for c in nb.sample(args.cells, seed=args.seed + 7)]
    data = load_data(str(images), (3, 32, 32), 10)
    mb = get_space("mbv2")
    nets = [mb.to_ir(" ".join(["r128"] + c.split()[1:])) for c in mb.sample(args.mbv2, seed=args.seed + 7)]
    xm = torch.randn(16, 3, 128, 128, generator=torch.Generator().manual_seed(args.seed))
    sets = [(f"NB201, {len(cells)} cells, batch 64", cells, data.x[:64], data.y[:64]),
            (f"MobileNetV2, {len(nets)} nets, 128 px, batch 16", nets, xm, None)]
    groups = [(n, [n]) for n in PASSES] + [("**all 13**", list(NETWORK_PROXIES))]
    cols = {}
    for label, archs, x, y in sets:
        cols[label] = {g: np.median([suite_cost(a, names, x, y, args.seed)["multiple"] for a in archs])
                       for g, names in groups}
        print(label, {g: round(v, 2) for g, v in cols[label].items()}, flush=True)
    lines = ["# Cost of each network proxy alone and of the whole suite", "",
             f"`python benchmarks/proxies_cost_breakdown.py --cells {args.cells} --mbv2 {args.mbv2} --seed "
             f"{args.seed}{' --glibc-defaults' if args.glibc_defaults else ''}` on {platform.machine()}, torch "
             f"{torch.__version__}, one thread; freed memory "
             f"{'kept for reuse (keep_freed_memory)' if kept else 'handled by glibc defaults'}.  Multiples of one "
             "forward+backward pass (cross-entropy, train mode) of the same network on the same batch, timed "
             "alternately in one run; median over the networks.", "",
             "| proxy | passes it runs | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for g, _ in groups:
        lines.append(f"| {g} | {PASSES.get(g, 'the union, each pass once')} | "
                     + " | ".join(f"{cols[c][g]:.2f}" for c in cols) + " |")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
