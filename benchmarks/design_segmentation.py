"""Case study 3 (zero-shot part): segmentation latency by channels, fusion and resolution.

Usage: python benchmarks/design_segmentation.py [--budget 2000] [--seed 0] [--device mobile-npu-16]
Writes benchmarks/results/design_segmentation.md.

From the MobileNetV2 LR-ASPP baseline (`zeroshot baseline mbv2 mobilenetv2 --task segment`, 512x512),
:func:`zeroshot.refine.refine` evolves per-stage width multipliers, per-block fusion and the input (and so
output) resolution, ``--budget`` candidates, latency from the estimator.  Reported: the Pareto front of
(score, latency) over everything evaluated and the baseline, the score being the topology-only rank
aggregate (live_macs + entropy) over all of them; and the fastest candidate whose score is at or above the
baseline's.  Nothing is trained: the seed's multishot search trained every candidate; this is the
zero-shot pre-filter's view only.
"""
import argparse
import time
from pathlib import Path

from design_detection_latency import md          # benchmarks/ is the script's folder
from estimator.devices import load_device
from spaces import get_space
from spaces.baselines import get_baseline
from zeroshot.refine import refine

OUT = Path(__file__).parent / "results" / "design_segmentation.md"
DIMS = ("fusion", "width", "resolution")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="mobile-npu-16")
    args = ap.parse_args()
    t0 = time.perf_counter()
    space = get_space("mbv2", task="segment")
    base = space.parse(get_baseline("mbv2", "mobilenetv2", "segment"))
    r = refine(space, base, DIMS, load_device(args.device), args.budget, args.seed)
    b = r["baseline"]["latency_ms"]
    lines = ["# Case study 3: segmentation, zero-shot search of channels, fusion and resolution (estimator only)",
             "", f"`python benchmarks/design_segmentation.py --budget {args.budget} --seed {args.seed} "
             f"--device {args.device}`", "",
             f"Baseline: MobileNetV2 LR-ASPP at 512x512, 21 classes, {b:.3f} ms on {args.device}. "
             f"{r['evaluated']} distinct candidates evaluated.  Pareto front of (score, latency); score = rank "
             "aggregate of live_macs and entropy over every candidate and the baseline.", "",
             "| latency | change | params | peak act. | score | >= baseline's | architecture |",
             "|---|---|---|---|---|---|---|"]
    for f in r["front"]:
        lines.append(f"| {f['latency_ms']:.3f} ms | {100 * (f['latency_ms'] / b - 1):+.0f}% | {f['params']:,} | "
                     f"{f['peak_activation_bytes'] / 1024:,.0f} KiB | {f['score']:.2f} | "
                     f"{'yes' if f['at_least_baseline'] else 'no'} | `{md(f['arch'])}` |")
    ok = [f for f in r["front"] if f["at_least_baseline"] and f["arch"] != "baseline"]
    lines += ["", f"Fastest on the front with the score at or above the baseline's: "
              + (f"{100 * (ok[0]['latency_ms'] / b - 1):+.0f}% (seed's models A-E: -27% to -51%, trained)."
                 if ok else "none."),
              f"Fastest whose score is at or above the baseline's in a pairwise comparison (as case 1): "
              f"{100 * (r['latency_ms'] / b - 1):+.0f}%.", "", f"Total time {time.perf_counter() - t0:.0f} s."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
