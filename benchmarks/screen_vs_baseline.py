"""Screen vs baseline: `zeroshot screen mbv2` against its MobileNetV2 baseline on every built-in npu profile.

Usage: python benchmarks/screen_vs_baseline.py [--n 100000] [--survivors 200] [--top 3] [--workers 2]
Writes benchmarks/results/screen_vs_baseline.md.

For each npu profile (``zeroshot device list``), one screen on the defaults but ``--n`` / ``--survivors``:
the baseline (MobileNetV2, 224 px) costed and scored in the survivors' batch, the constraints it sets
(faster, params and peak activation memory no larger), the score floor (its score).  The table gives the
baseline's latency on the device, how many candidates passed its constraints, and the best ``--top``
shortlisted networks with their change against it (latency, params, peak activations, score), or that
nothing beats it and the closest.
"""
import argparse
import os
import time
from pathlib import Path

from zeroshot.backends import LocalBackend
from zeroshot.estimator.devices import list_devices, load_device
from zeroshot.funnel import screen
from zeroshot.scoring import DEFAULT_PROXIES

OUT = Path(__file__).parent / "results" / "screen_vs_baseline.md"


def npu_profiles() -> list[str]:
    """The built-in devices of kind npu, by name."""
    return [name for name in list_devices() if load_device(name).kind == "npu"]


def run(device: str, args) -> tuple[dict, float]:
    t0 = time.perf_counter()
    result = screen("mbv2", device=device, n=args.n, survivors=args.survivors, top=args.top, seed=args.seed,
                    backend=LocalBackend(args.workers), quiet=True)
    return result.summary, time.perf_counter() - t0


def rows(device: str, summary: dict, seconds: float) -> list[str]:
    base, counts = summary["baseline"], summary["counts"]
    head = (f"| {device} | {base['latency_ms']:.3f} | {counts['passed']:,} of {counts['sampled']:,} | "
            f"{counts.get('scored', 0)} | {seconds:.0f} |")
    shown = summary["shortlist"] or summary["closest"]
    verdict = "" if summary["shortlist"] else " (closest: nothing beats it)"
    out = []
    for i, r in enumerate(shown):
        cells = (f" {r['latency_ms']:.3f} | {r['latency_pct']:+.1f}% | {r['params_pct']:+.1f}% | "
                 f"{r['peak_pct']:+.1f}% | {r['score_vs_baseline']:+.3f}{verdict if i == 0 else ''} |")
        out.append((head if i == 0 else "| | | | | |") + cells)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--survivors", type=int, default=200)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    lines, total = [], time.perf_counter()
    for device in npu_profiles():
        summary, seconds = run(device, args)
        lines += rows(device, summary, seconds)
        print(lines[-len(summary["shortlist"] or summary["closest"])], flush=True)
    total = time.perf_counter() - total
    command = (f"python benchmarks/screen_vs_baseline.py --n {args.n} --survivors {args.survivors} "
               f"--top {args.top} --workers {args.workers} --seed {args.seed}")
    OUT.write_text(f"""# Screen vs baseline (mbv2, MobileNetV2 at 224 px)

`{command}` ({total:.0f} s in all on a shared 2-core machine, load average {os.getloadavg()[0]:.1f} at the
end; the screen's defaults: 100,000 candidates, 200 survivors, 64 of them scored; default score
{' + '.join(DEFAULT_PROXIES)}).  Each row: one `zeroshot screen mbv2` on the device,
on the defaults otherwise (baseline-relative: faster than MobileNetV2, params and peak activations no
larger, default score at or above the baseline's, the baseline scored in the survivors' batch).  Changes
are against the baseline on the same device; score: the default score (rank aggregate over the scored
survivors and the baseline) minus the baseline's.

| device | baseline ms | passed its constraints | scored | s | shortlisted ms | latency | params | peak | score |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
