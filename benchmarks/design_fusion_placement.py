"""Case study 4: fusing early IBN stages helps latency, fusing late, wide ones hurts (MobileDets' finding).

Usage: python benchmarks/design_fusion_placement.py [--measured CPU.json] [--rounds 15] [--no-timing]
Writes benchmarks/results/design_fusion_placement.md.

From MobileNetV2 (classification at 224, and the SSDLite detection baseline at 320), the rewrite
``fuse:stages=S`` (:mod:`zeroshot.spaces.rewrites`) fuses one stage at a time, then growing prefixes ``1-k``.  Each
variant's latency change against the baseline comes from the estimator on NPU profiles (``mobile-npu-16``
and ``edgetpu-like`` as the two the finding is about, ``ethos-u55-128`` as a small-MAC-array contrast), on
this machine's ``measured`` CPU device when ``--measured`` names one (``zeroshot device profile -o
CPU.json``), and from end-to-end torch timings of the classification variants on this CPU (one thread,
median of ``--rounds``, interleaved).  MACs and peak activation memory show the price of fusing.
"""
import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.estimator.timing import measure_archs
from zeroshot.spaces import get_space
from zeroshot.spaces.baselines import get_baseline
from zeroshot.spaces.rewrites import apply_rewrites

NPUS = ("mobile-npu-16", "edgetpu-like", "ethos-u55-128")
OUT = Path(__file__).parent / "results" / "design_fusion_placement.md"


def variants(space, base):
    n = space.n_stages
    specs = [f"fuse:stages={s}" for s in range(1, n + 1)] + [f"fuse:stages=1-{k}" for k in range(2, n + 1)]
    return specs, np.stack([base] + [apply_rewrites(space, base, s)[0] for s in specs])


def pct(v):
    return [100.0 * (x / v[0] - 1.0) for x in v[1:]]


def table(task, devices, timing_rounds):
    space = get_space("mbv2", task=task)
    base = space.parse(get_baseline("mbv2", "mobilenetv2", task))
    specs, codes = variants(space, base)
    cost = Estimator(space).evaluate(codes)
    cols = {"MACs": pct(cost["macs"]), "peak act.": pct(cost["peak_activation_bytes"])}
    abs0 = {}
    for name, dev in devices.items():
        lat = Estimator(space, dev).evaluate(codes)["latency_ms"]
        cols[name] = pct(lat)
        abs0[name] = lat[0]
    if timing_rounds and task == "classify":
        torch.set_num_threads(1)
        t = [x.median_ms for x in measure_archs(space.irs(codes), threads=1, device="cpu", rounds=timing_rounds)]
        cols["CPU timed"] = pct(t)
        abs0["CPU timed"] = t[0]
    widths = [blocks[0][3] for blocks in space.decode(base)[3]]
    head = f"| rewrite | {' | '.join(cols)} |"
    lines = [f"### {task}: {get_baseline('mbv2', 'mobilenetv2', task)[:4]} MobileNetV2, stage widths "
             f"{'/'.join(map(str, widths))}", "",
             "Baseline latency: " + ", ".join(f"{k} {v:.3f} ms" for k, v in abs0.items()) + ".", "",
             head, "|" + "---|" * (len(cols) + 1)]
    for i, s in enumerate(specs):
        lines.append(f"| `{s}` | " + " | ".join(f"{cols[c][i]:+.0f}%" for c in cols) + " |")
    return lines, cols, specs


def verdict(cols, specs, n_stages):
    """Per latency column: is fusing each of the first two stages cheaper than fusing each of the last two?"""
    out = []
    for name, v in cols.items():
        if name in ("MACs", "peak act."):
            continue
        early, late = v[:2], v[n_stages - 2:n_stages]
        best = min(range(len(specs)), key=lambda i: v[i])
        out.append(f"- {name}: fusing stage 1 / 2 {early[0]:+.0f}% / {early[1]:+.0f}%, stage {n_stages - 1} / "
                   f"{n_stages} {late[0]:+.0f}% / {late[1]:+.0f}%; early < late: "
                   f"{'yes' if max(early) < min(late) else 'no'}; best rewrite `{specs[best]}` ({v[best]:+.0f}%)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measured", help="a measured device JSON of this machine (zeroshot device profile)")
    ap.add_argument("--rounds", type=int, default=15, help="timing rounds per network (default 15)")
    ap.add_argument("--no-timing", action="store_true", help="skip the end-to-end torch timings")
    args = ap.parse_args()
    devices = {n: load_device(n) for n in NPUS}
    if args.measured:
        devices["CPU measured device"] = load_device(args.measured)
    t0 = time.perf_counter()
    lines = ["# Case study 4: where fusion pays (estimator and this CPU)", "",
             f"`python benchmarks/design_fusion_placement.py{' --measured FILE' if args.measured else ''}`; "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread.", "",
             "Latency change of each rewrite against the MobileNetV2 baseline (negative = faster).", ""]
    if not args.measured:
        lines += ["No `measured` CPU device was given (`--measured`): the CPU column is end-to-end torch "
                  "timing only.", ""]
    n_stages = get_space("mbv2").n_stages
    for task in ("classify", "detect"):
        body, cols, specs = table(task, devices, 0 if args.no_timing else args.rounds)
        lines += body + ["", "Early vs late:", ""] + verdict(cols, specs, n_stages) + [""]
    lines.append(f"Total time {time.perf_counter() - t0:.0f} s.")
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
