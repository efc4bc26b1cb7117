"""Case study 2: fit MobileNetV2 into a memory budget (parameters + peak activation memory).

Usage: python benchmarks/design_memory_budget.py [--cut 0.47] [--n 100000] [--device mobile-npu-16]
Writes benchmarks/results/design_memory_budget.md.

The budget is the seed's reduction: at most ``1 - cut`` of the classification baseline's parameters and
of its peak activation memory.  Two routes find architectures that fit:

* rewrites (:mod:`zeroshot.spaces.rewrites`): every composition of ``dw2conv`` on the first 0-3 stages (fused
  blocks: no expanded tensor at the input resolution), ``width`` 1 / 0.75 / 0.5 / 0.35, ``depth`` 1 / 0.75
  / 0.5 and ``snap:P=16`` or not (95 specs beside the baseline), costed by the estimator;
* search: ``zeroshot screen mbv2 -n N --max-params --max-peak-kb --survivors 0`` on the curated space.

The candidates that fit from both routes are ranked together by the topology-only score (rank aggregate
of live_macs and entropy: :data:`zeroshot.commands.cmd_rewrite.TOPOLOGY_SCORE`); the table shows each
route's best five with their reductions and latency on ``--device``.
"""
import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from design_detection_latency import md          # benchmarks/ is the script's folder
from zeroshot.estimator.devices import load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.spaces import get_space
from zeroshot.spaces.baselines import get_baseline
from zeroshot.spaces.rewrites import apply_rewrites
from zeroshot.commands.cmd_rewrite import TOPOLOGY_SCORE
from zeroshot.scoring import compute_proxies, rank_aggregate

OUT = Path(__file__).parent / "results" / "design_memory_budget.md"
SPECS = [",".join(p for p in parts if p) for parts in itertools.product(
    ["", "dw2conv:stages=1", "dw2conv:stages=1-2", "dw2conv:stages=1-3"],
    ["", "width:m=0.75", "width:m=0.5", "width:m=0.35"],
    ["", "depth:m=0.75", "depth:m=0.5"], ["", "snap:P=16"])][1:]       # [0]: the baseline itself


def screen(n, params, peak_kb, device, seed):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "zeroshot", "screen", "mbv2", "-n", str(n), "--max-params", str(params),
               "--max-peak-kb", str(peak_kb), "--survivors", "0", "--top", "50", "--device", device,
               "--seed", str(seed), "--baseline", "none", "--db", f"{tmp}/s.db", "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cut", type=float, default=0.47, help="reduction the budget asks for (default 0.47)")
    ap.add_argument("--n", type=int, default=100_000, help="candidates the search screens (default 100,000)")
    ap.add_argument("--device", default="mobile-npu-16")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    space, dev = get_space("mbv2"), load_device(args.device)
    est = Estimator(space, dev)
    base = space.parse(get_baseline("mbv2", "mobilenetv2"))
    b = {k: v[0] for k, v in est.evaluate(base[None]).items()}
    max_params, max_peak = (1 - args.cut) * b["params"], (1 - args.cut) * b["peak_activation_bytes"]

    rewritten = [apply_rewrites(space, base, spec)[0] for spec in SPECS]
    cost = est.evaluate(np.stack(rewritten))
    fit = (cost["params"] <= max_params) & (cost["peak_activation_bytes"] <= max_peak)
    found = screen(args.n, int(max_params), max_peak / 1024, args.device, args.seed)
    searched = [space.parse(r["arch"]) for r in found["shortlist"]]

    names = [SPECS[i] for i in np.flatnonzero(fit)] + [f"search #{i + 1}" for i in range(len(searched))]
    codes = np.stack([rewritten[i] for i in np.flatnonzero(fit)] + searched)
    c = est.evaluate(codes)
    score = rank_aggregate(compute_proxies(space, codes, TOPOLOGY_SCORE))
    lines = ["# Case study 2: a memory budget (estimator only)", "",
             f"`python benchmarks/design_memory_budget.py --cut {args.cut} --n {args.n} --device {args.device}`", "",
             f"Baseline MobileNetV2 1.0 (224): {b['params']:,} parameters, peak activation "
             f"{b['peak_activation_bytes'] / 1024:,.0f} KiB (fp32), {b['latency_ms']:.3f} ms on {args.device}.",
             f"Budget (-{100 * args.cut:.0f}% each): at most {int(max_params):,} parameters and "
             f"{max_peak / 1024:,.0f} KiB peak activation.", "",
             f"- rewrites: {int(fit.sum())} of {len(SPECS)} compositions fit;",
             f"- search: {found['counts']['passed']} of {found['counts']['sampled']:,} sampled curated "
             f"candidates fit (removed by: {', '.join(f'{k} {v:,}' for k, v in found['removed_by'].items())}); "
             f"its shortlist holds {len(searched)}.", "",
             f"Best five of each route by the topology score ({' + '.join(TOPOLOGY_SCORE)}, rank aggregate over "
             "every fitting candidate of both routes; higher is better):", "",
             "| route | rewrites / architecture | params | peak act. | latency | score |", "|---|---|---|---|---|---|"]
    for route, rows in (("rewrite", [i for i, n in enumerate(names) if not n.startswith("search")]),
                        ("search", [i for i, n in enumerate(names) if n.startswith("search")])):
        for i in sorted(rows, key=lambda i: -score[i])[:5]:
            what = f"`{names[i]}`" if route == "rewrite" else f"`{md(space.format(codes[i]))}`"
            lines.append(f"| {route} | {what} | {c['params'][i]:,} ({100 * (c['params'][i] / b['params'] - 1):+.0f}%) "
                         f"| {c['peak_activation_bytes'][i] / 1024:,.0f} KiB "
                         f"({100 * (c['peak_activation_bytes'][i] / b['peak_activation_bytes'] - 1):+.0f}%) "
                         f"| {c['latency_ms'][i]:.3f} ms ({100 * (c['latency_ms'][i] / b['latency_ms'] - 1):+.0f}%) "
                         f"| {score[i]:.2f} |")
    lines += ["", f"Total time {time.perf_counter() - t0:.0f} s."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
