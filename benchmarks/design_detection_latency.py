"""Case study 1: detection latency by depth multipliers (V1), per-block fusion (V2) and both (V3).

Usage: python benchmarks/design_detection_latency.py [--budget 2000] [--seeds 3]
       [--devices mobile-npu-16,edgetpu-like] [--net-budget 150] [--net-device mobile-npu-16]
       [--proxy-resolution 128]
Writes benchmarks/results/design_detection_latency.md.

From the MobileNetV2 SSDLite detection baseline (`zeroshot baseline mbv2 mobilenetv2 --task detect`, 320x320),
:func:`zeroshot.refine.refine` searches each dimension alone and both (regularized evolution, latency from
the estimator) keeping a score at or above the baseline's.  Depth multipliers {0.25, 0.5, 0.75, 1} per
stage (every depth from one block to MobileNetV2's); a fusion bit per block.  Three tables:

1. the floor: the same search with no score (every candidate acceptable), seed 0: how far each set of
   dimensions can go on the device at all;
2. the topology score (live_macs + entropy, rank aggregate over the pair baseline / candidate),
   ``--budget`` candidates, median over ``--seeds`` seeds, every device;
3. the default network score (meco + swap) on each candidate's backbone at ``--proxy-resolution`` pixels
   (batch 16, seed 0; see :func:`zeroshot.refine.proxy_view`), ``--net-budget`` candidates, seed 0, on
   ``--net-device``; then each winner's meco against the baseline's under four more initialisation seeds
   (is the acceptance robust, or did the search find a lucky draw?).

Settings were fixed before the run.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from zeroshot.estimator.devices import load_device
from zeroshot.spaces import get_space
from zeroshot.spaces.baselines import get_baseline
from zeroshot.refine import TOPOLOGY_SCORE, proxy_view, refine, score_values
from zeroshot.scoring import DEFAULT_PROXIES, compute_proxies

OUT = Path(__file__).parent / "results" / "design_detection_latency.md"
VARIANTS = (("V1", ("depth-multiplier",)), ("V2", ("fusion",)), ("V3", ("fusion", "depth-multiplier")))
SEED_CLAIM = {"V1": -14, "V2": -35, "V3": -53}
NET_BATCH, RECHECK_SEEDS = 16, (1, 2, 3, 4)


def md(arch: str) -> str:
    """An encoding inside a markdown table cell (its '|' escaped)."""
    return arch.replace("|", "\\|")


def change(r: dict) -> float:
    return 100 * (r["latency_ms"] / r["baseline"]["latency_ms"] - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--devices", default="mobile-npu-16,edgetpu-like")
    ap.add_argument("--net-budget", type=int, default=150, help="candidates of the network-score search (0: skip)")
    ap.add_argument("--net-device", default="mobile-npu-16")
    ap.add_argument("--proxy-resolution", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    space = get_space("mbv2", task="detect")
    base = space.parse(get_baseline("mbv2", "mobilenetv2", "detect"))
    devices = args.devices.split(",")
    lines = ["# Case study 1: detection latency (estimator, zero-shot scores)", "",
             f"`python benchmarks/design_detection_latency.py --budget {args.budget} --seeds {args.seeds} "
             f"--devices {args.devices} --net-budget {args.net_budget} --net-device {args.net_device} "
             f"--proxy-resolution {args.proxy_resolution}`", "",
             f"Baseline: MobileNetV2 SSDLite at 320x320 ({space.to_ir(base).params:,} parameters, 91 classes). "
             "Depth multipliers {0.25, 0.5, 0.75, 1} per stage, a fusion bit per block.  Latency change of the "
             "fastest acceptable candidate.", "",
             "## 1. Floor: no score (every candidate acceptable), seed 0", "",
             "| device | V1 depth | V2 fusion | V3 both | seed's V1 / V2 / V3 |", "|---|---|---|---|---|"]
    for name in devices:
        dev = load_device(name)
        floor = [change(refine(space, base, dims, dev, args.budget, 0, ())) for _, dims in VARIANTS]
        lines.append(f"| {name} | " + " | ".join(f"{c:+.1f}%" for c in floor) + " | -14% / -35% / -53% |")
        print(lines[-1], flush=True)
    lines += ["", f"## 2. Topology score ({' + '.join(TOPOLOGY_SCORE)}, rank aggregate over the pair), "
              f"{args.budget} candidates, median (min..max) over {args.seeds} seeds", "",
              "| device | variant | dimensions | latency change | seed's | best architecture (seed 0) |",
              "|---|---|---|---|---|---|"]
    for name in devices:
        dev = load_device(name)
        for label, dims in VARIANTS:
            runs = [refine(space, base, dims, dev, args.budget, seed) for seed in range(args.seeds)]
            ch = [change(r) for r in runs]
            lines.append(f"| {name} ({runs[0]['baseline']['latency_ms']:.3f} ms) | {label} | {' + '.join(dims)} | "
                         f"{np.median(ch):+.1f}% ({min(ch):+.1f}..{max(ch):+.1f}) | {SEED_CLAIM[label]}% | "
                         f"`{md(runs[0]['arch'])}` |")
            print(lines[-1], flush=True)
    if args.net_budget:
        lines += network_score(args, space, base)
    lines += ["", f"Total time {time.perf_counter() - t0:.0f} s."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def network_score(args, space, base) -> list[str]:
    dev, cache = load_device(args.net_device), {}
    view, codes_of = proxy_view(space, args.proxy_resolution)
    lines = ["", f"## 3. Default network score ({' + '.join(DEFAULT_PROXIES)}) on the backbone at "
             f"{args.proxy_resolution} px, {args.net_budget} candidates, seed 0, {args.net_device}", "",
             "| variant | latency change | evaluated / acceptable | meco base -> best (seed 0) | swap best | "
             f"winner's meco >= baseline's under seeds {','.join(map(str, RECHECK_SEEDS))} | best architecture |",
             "|---|---|---|---|---|---|---|"]
    again = {s: compute_proxies(view, codes_of(base[None]), ["meco"], seed=s)["meco"][0] for s in RECHECK_SEEDS}
    for label, dims in VARIANTS:
        t = time.perf_counter()
        r = refine(space, base, dims, dev, args.net_budget, 0, DEFAULT_PROXIES, args.proxy_resolution, NET_BATCH,
                   cache)
        best = codes_of(space.parse(r["arch"])[None])
        kept = sum(compute_proxies(view, best, ["meco"], seed=s)["meco"][0] >= again[s] for s in RECHECK_SEEDS)
        base_meco = score_values(space, base[None], DEFAULT_PROXIES, args.proxy_resolution, NET_BATCH,
                                 cache)["meco"][0]                       # a cache hit: refine scored it
        lines.append(f"| {label} | {change(r):+.1f}% | {r['evaluated']} / {r['acceptable']} | {base_meco:.2f} -> "
                     f"{r['meco']:.2f} | {r['swap']:.0f} | {kept} of {len(RECHECK_SEEDS)} | `{md(r['arch'])}` |")
        print(lines[-1], f"({time.perf_counter() - t:.0f} s)", flush=True)
    return lines


if __name__ == "__main__":
    main()
