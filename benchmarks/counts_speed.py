"""Throughput of the exact analytic counts vs building the torch module and counting its parameters.

Usage: python benchmarks/counts_speed.py [--n 2000] [--torch-n 20] [--seed 0]
Writes benchmarks/results/counts_speed.md.  All figures of one space come from the same run.
"""
import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from estimator.counts import table_counts
from spaces import get_space, list_spaces, to_table
from spaces.builder import build, count_parameters


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--torch-n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in list_spaces():
        space = get_space(name)
        codes = space.sample_distinct_codes(args.n, np.random.default_rng(args.seed))
        t0 = time.perf_counter()
        archs = space.irs(codes)
        t1 = time.perf_counter()
        table = to_table(archs)
        t2 = time.perf_counter()
        counts = table_counts(table)
        t3 = time.perf_counter()
        t4 = time.perf_counter()
        for arch in archs[: args.torch_n]:
            assert count_parameters(build(arch)) == arch.params
        t5 = time.perf_counter()
        assert len(counts["params"]) == args.n
        per = {"lower": (t1 - t0) / args.n, "table": (t2 - t1) / args.n, "kernel": (t3 - t2) / args.n,
               "torch": (t5 - t4) / args.torch_n}
        total = per["lower"] + per["table"] + per["kernel"]
        rows.append((name, args.n, 1 / per["kernel"], 1 / total, 1 / per["torch"], per["torch"] / total,
                     per["torch"] / per["kernel"], np.mean(np.diff(table.ptr))))
    lines = [
        "# Analytic counts vs torch build + parameter count",
        "",
        f"`python benchmarks/counts_speed.py --n {args.n} --torch-n {args.torch_n} --seed {args.seed}` "
        f"on {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread.",
        "",
        "| space | archs | ops/arch | Cython kernel archs/s | end to end archs/s (IR + table + kernel) | "
        "torch build archs/s | speed-up end to end | speed-up kernel only |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, n, k, e, t, su, sk, ops in rows:
        lines.append(f"| {name} | {n} | {ops:.0f} | {k:,.0f} | {e:,.0f} | {t:,.1f} | {su:,.0f}x | {sk:,.0f}x |")
    lines += ["", "End to end includes lowering each encoding to the Python IR (the dominant cost) and "
              "flattening to the op table; the Cython kernel alone is the last step."]
    out = Path(__file__).parent / "results" / "counts_speed.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
