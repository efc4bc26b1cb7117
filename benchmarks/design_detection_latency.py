"""Case study 1: detection latency by depth multipliers (V1), per-block fusion (V2) and both (V3).

Usage: python benchmarks/design_detection_latency.py [--budget 2000] [--seeds 3] [--devices mobile-npu-16,edgetpu-like]
Writes benchmarks/results/design_detection_latency.md.

From the MobileNetV2 SSDLite detection baseline (`zeroshot baseline mbv2 mobilenetv2 --task detect`, 320x320),
:func:`zeroshot.refine.refine` searches each dimension alone and both (regularized evolution, ``--budget``
candidates, estimator latency on the device) keeping the score at or above the baseline's.  The score is
topology-only (live_macs + entropy, rank aggregate over the pair baseline / candidate): the default network
score (meco, swap) costs minutes per 320x320 detection network on this 2-core CPU, too slow for thousands of
candidates.  Median over ``--seeds`` seeds.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from estimator.devices import load_device
from spaces import get_space
from spaces.baselines import get_baseline
from zeroshot.refine import TOPOLOGY_SCORE, refine

OUT = Path(__file__).parent / "results" / "design_detection_latency.md"
VARIANTS = (("V1", ("depth-multiplier",)), ("V2", ("fusion",)), ("V3", ("fusion", "depth-multiplier")))
SEED_CLAIM = {"V1": -14, "V2": -35, "V3": -53}


def md(arch: str) -> str:
    """An encoding inside a markdown table cell (its '|' escaped)."""
    return arch.replace("|", "\\|")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--devices", default="mobile-npu-16,edgetpu-like")
    args = ap.parse_args()
    t0 = time.perf_counter()
    space = get_space("mbv2", task="detect")
    base = space.parse(get_baseline("mbv2", "mobilenetv2", "detect"))
    lines = ["# Case study 1: detection latency (estimator only)", "",
             f"`python benchmarks/design_detection_latency.py --budget {args.budget} --seeds {args.seeds} "
             f"--devices {args.devices}`", "",
             f"Baseline: MobileNetV2 SSDLite at 320x320 ({space.to_ir(base).params:,} parameters, 91 classes). "
             f"Acceptable: score ({' + '.join(TOPOLOGY_SCORE)}, rank aggregate over the pair) at or above the "
             f"baseline's.  Latency change of the fastest acceptable candidate, median (min..max) over "
             f"{args.seeds} seeds.", "",
             "| device | variant | dimensions | latency change | seed's | best architecture (seed 0) |",
             "|---|---|---|---|---|---|"]
    for name in args.devices.split(","):
        dev = load_device(name)
        for label, dims in VARIANTS:
            runs = [refine(space, base, dims, dev, args.budget, seed) for seed in range(args.seeds)]
            ch = [100 * (r["latency_ms"] / r["baseline"]["latency_ms"] - 1) for r in runs]
            lines.append(f"| {name} ({runs[0]['baseline']['latency_ms']:.3f} ms) | {label} | {' + '.join(dims)} | "
                         f"{np.median(ch):+.1f}% ({min(ch):+.1f}..{max(ch):+.1f}) | {SEED_CLAIM[label]}% | "
                         f"`{md(runs[0]['arch'])}` |")
            print(lines[-1], flush=True)
    lines += ["", f"Total time {time.perf_counter() - t0:.0f} s."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
