"""A declared space proves itself: NAS-Bench-Macro as a MacroSpace, its counts against the benchmark's, and
the default zero-shot score on it against the networks' trained accuracy.

1. Exactness: every row of ``../shared/data/macro/nas_bench_macro_cifar10_unique.csv`` parsed in the
   declared space (:mod:`nasbench_macro`), lowered to the IR and counted
   (:func:`~zeroshot.estimator.counts.analytic_counts`): ``params`` and ``flops_macs`` must equal the
   file's; the space's size and its distinct networks (canonical classes) against the file's rows.
2. The default score (``zs.score(..., proxies=None)``, seed 0) of every row (or a seeded sample: ``--sample
   N``) on the first images of ``images/cifar10_test_846.npz`` (real CIFAR-10), one torch thread: Spearman
   rho against ``mean_test_acc``, beside #params, MACs and the seed-to-seed ceiling (the mean of the three
   pairwise rhos between the file's seeds), all computed here from the file's columns.

Usage: ``python benchmarks/macro_space.py [--sample 1500] [--seed 0]`` (about 0.8 s per network on one loaded
core) -> ``benchmarks/results/macro_space.md``.  A development set: nothing is tuned on it.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads: threaded BLAS stalls under load
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zeroshot as zs  # noqa: E402
from zeroshot.estimator.counts import analytic_counts  # noqa: E402
from common import require_shared  # noqa: E402
from nasbench_macro import encoding, nasbench_macro  # noqa: E402

TABLE, IMAGES = "macro/nas_bench_macro_cifar10_unique.csv", "images/cifar10_test_846.npz"
OUT = Path(__file__).resolve().parent / "results" / "macro_space.md"


def exactness(space, rows: list[dict]) -> dict:
    """Rows whose params / MACs equal the IR's, the time it took, and the space's size facts."""
    t0 = time.perf_counter()
    codes = np.array([space.parse(encoding(r["arch"])) for r in rows])
    counts = analytic_counts(space.irs(codes))
    seconds = time.perf_counter() - t0
    every = np.concatenate(list(space.enumerate_codes()))
    canonical = {space.format(c) for c in space.canonical_codes(every)}
    return {"rows": len(rows), "seconds": seconds,
            "params": int((counts["params"] == column(rows, "params")).sum()),
            "macs": int((counts["macs"] == column(rows, "flops_macs")).sum()),
            "size": space.size, "canonical": len(canonical),
            "file_is_canonical": canonical == {encoding(r["arch"]) for r in rows}}


def column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows])


def rho(a, b) -> float:
    return float(spearmanr(a, b)[0])


def baselines(rows: list[dict]) -> dict[str, float]:
    """Spearman rho against mean accuracy of #params and MACs, and the seed-to-seed ceiling."""
    acc = column(rows, "mean_test_acc")
    seeds = [column(rows, f"test_acc_seed{i}") for i in range(3)]
    return {"params": rho(column(rows, "params"), acc), "macs": rho(column(rows, "flops_macs"), acc),
            "ceiling": float(np.mean([rho(seeds[i], seeds[j]) for i, j in ((0, 1), (0, 2), (1, 2))]))}


def default_score(space, rows: list[dict], data: str) -> dict:
    """The default score of ``rows`` (one call: it ranks within it), its rhos and the time it took."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    table = zs.score([encoding(r["arch"]) for r in rows], space=space, data=data, seed=0, proxies=None)
    seconds = time.perf_counter() - t0
    acc = column(rows, "mean_test_acc")
    return {"seconds": seconds, "rho": {c: rho(table[c], acc) for c in table.columns if c != "arch"}}


def report(args, exact: dict, scored: dict, base_all: dict, base_sample: dict, n: int) -> str:
    sample = "all" if n == exact["rows"] else f"a seeded sample of {n} (seed {args.seed})"
    lines = [
        "# NAS-Bench-Macro declared as a MacroSpace",
        "",
        f"`python benchmarks/macro_space.py{f' --sample {args.sample} --seed {args.seed}' if args.sample else ''}`"
        f" (one torch thread; `benchmarks/nasbench_macro.py` declares the space in a few lines).",
        "",
        "## Exactness (all rows)",
        "",
        f"- params equal to the file's: **{exact['params']:,} / {exact['rows']:,}** rows; MACs (`flops_macs`): "
        f"**{exact['macs']:,} / {exact['rows']:,}** ({exact['seconds']:.1f} s to parse, lower and count all, "
        f"{exact['rows'] / exact['seconds']:,.0f} networks/s).",
        f"- size: {exact['size']:,} digit strings (3^8); {exact['canonical']:,} distinct networks after "
        f"`canonical_codes` (non-first identities moved to the end of their stage); the file's rows are "
        f"exactly those canonical networks: {exact['file_is_canonical']}.",
        "",
        f"## Default score vs mean test accuracy ({sample} of the {exact['rows']:,} networks)",
        "",
        f"`zs.score(archs, space=space, data='{IMAGES}', seed=0, proxies=None)` (the default score: rank "
        f"aggregate of its proxies), {scored['seconds']:.0f} s ({scored['seconds'] / n:.2f} s per network).",
        "",
        "| ranking | Spearman rho vs mean_test_acc (these networks) | over all rows |",
        "|---|---|---|",
    ]
    for name, value in scored["rho"].items():
        label = "**default score**" if name == "score" else f"{name} (a proxy of the default score)"
        lines.append(f"| {label} | {value:.3f} | |")
    lines += [f"| #params | {base_sample['params']:.3f} | {base_all['params']:.3f} |",
              f"| MACs | {base_sample['macs']:.3f} | {base_all['macs']:.3f} |",
              f"| seed-to-seed ceiling (mean of the 3 pairwise rhos) | {base_sample['ceiling']:.3f} | "
              f"{base_all['ceiling']:.3f} |", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=0, help="score a seeded sample of N rows (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table, images = require_shared(TABLE, IMAGES)
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    space = nasbench_macro()
    exact = exactness(space, rows)
    print(exact, flush=True)
    picked = rows
    if args.sample:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(rows), args.sample, replace=False))
        picked = [rows[i] for i in keep]
    scored = default_score(space, picked, str(images))
    OUT.write_text(report(args, exact, scored, baselines(rows), baselines(picked), len(picked)))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
