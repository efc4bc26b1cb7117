"""This machine's CPU as source devices of the calibration prior: NB201 and FBNet networks measured here.

The shared measurements give the prior two server CPUs; this script adds the CPU the project runs on, with
two runtimes that behave differently (torch eager: a launch per operation, batch-norm kept; ONNX Runtime:
batch-norm folded, fused kernels, far less per-operation overhead).  For each space of ``--spaces`` it takes
``--n`` architectures of ``../shared/data/hw/<space>_latency.csv`` among those the development protocol
keeps (:func:`calibration_kinds.kept_rows`, so the protocol can hold these devices out like the shared
ones), measures each end to end (batch 1, one thread, the thread's CPU-time clock, all networks interleaved
in every round, one chunk, so that a machine drifting during the run shifts every network alike; medians:
:func:`zeroshot.estimator.timing.measure_archs`) with each runtime, and writes
the medians to ``benchmarks/results/cpu_sources_<space>.csv`` (columns ``arch, local_cpu_torch_ms,
local_cpu_ort_ms``: a latency CSV as :func:`zeroshot.estimator.latency_csv.read_latency_csv` reads) and
their noise (the relative inter-quartile range of each network's samples) to ``cpu_sources.md``.
``python -m zeroshot.estimator.calibration_prior --measured FILE ...`` adds them to the shipped prior.

Usage: python benchmarks/cpu_sources.py [--n 400] [--rounds 15] [--spaces nb201,fbnet]
"""
from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration_hw import shared_or_exit  # noqa: E402
from calibration_kinds import kept_rows  # noqa: E402
from zeroshot.estimator.timing import measure_archs  # noqa: E402

RESULTS = Path(__file__).with_name("results")
RUNTIMES = {"local_cpu_torch_ms": "torch", "local_cpu_ort_ms": "onnxruntime"}


def measure(space, texts, rounds: int) -> tuple[dict, list[str]]:
    """Per device column: the median latency of each network; and one noise line per runtime."""
    archs = [space.to_ir(t) for t in texts]
    out, notes = {}, []
    for column, runtime in RUNTIMES.items():
        timings = measure_archs(archs, rounds=rounds, clock="thread", runtime=runtime, chunk=len(archs))
        out[column] = np.array([t.median_ms for t in timings])
        noise = np.array([t.noise for t in timings])
        notes.append(f"| {space.name} | {runtime} | {np.median(out[column]):.2f} | {np.min(out[column]):.2f} - "
                     f"{np.max(out[column]):.2f} | {np.median(noise):.1%} | {np.percentile(noise, 90):.1%} |")
    return out, notes


def write_csv(path: Path, texts, columns: dict) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", *columns])
        for i, text in enumerate(texts):
            w.writerow([text, *(f"{columns[c][i]:.4f}" for c in columns)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--spaces", default="nb201,fbnet")
    p.add_argument("--kept", type=int, default=3000, help="the protocol's --n (architectures it keeps)")
    args = p.parse_args(argv)
    if not 1 <= args.n <= args.kept or args.rounds < 1:
        p.error(f"--n must be 1..--kept ({args.kept}) and --rounds at least 1, got {args.n} and {args.rounds}")
    t0 = time.time()
    rows = ["| space | runtime | median ms | range ms | median relative IQR of the samples | 90th percentile |",
            "|---|---|---|---|---|---|"]
    for space, texts, _ in shared_or_exit(args.spaces):
        pick = np.random.default_rng(1).choice(kept_rows(len(texts), args.kept), args.n, replace=False)
        chosen = [texts[i] for i in np.sort(pick)]
        columns, notes = measure(space, chosen, args.rounds)
        write_csv(RESULTS / f"cpu_sources_{space.name}.csv", chosen, columns)
        rows += notes
        print(f"{space.name}: {args.n} networks measured ({time.time() - t0:.0f} s)", file=sys.stderr)
    command = f"python benchmarks/cpu_sources.py --n {args.n} --rounds {args.rounds} --spaces {args.spaces}"
    lines = ["# This machine's CPU as calibration sources (torch and ONNX Runtime)", "",
             f"`{command}` on {platform.machine()}, torch {torch.__version__}, one thread; "
             f"{time.time() - t0:.0f} s.  " + " ".join(__doc__.split("\n\n")[1].split()), "", *rows, ""]
    (RESULTS / "cpu_sources.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
