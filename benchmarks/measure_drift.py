"""Drift between groups of a measurement: what the anchors of ``measure_archs`` correct.

``zeroshot measure`` builds and times networks in groups of 32 (memory); when other work on the machine
starts or stops between groups, a whole group runs faster or slower and its networks' latencies move
together.  :func:`zeroshot.estimator.timing.measure_archs` times the first 4 networks again with every
later group and divides each group by their median ratio to their median over the groups
(:func:`zeroshot.estimator.timing.carry_drift`).

This benchmark (pinned to core 0) measures ``--n`` random networks of ``--space``: first as one group, every
network interleaved in every round, with the other core quiet (the reference); then in groups of
``--chunk`` as ``measure_archs`` forms them (anchors appended to every later group), with a memory-streaming
load on core 1 running during every other group (other work starting and stopping).  It reports, against the
reference, the grouped timings as measured (no anchors) and as carried by the anchors: Spearman rho, and the
share within +-5 % / +-10 % of the reference after one overall scale (the median ratio; the load's mean
slow-down is not the question).

Usage: python benchmarks/measure_drift.py [--space fbnet] [--n 160] [--chunk 32] [--rounds 15] [--seed 0]
Writes benchmarks/results/measure_drift.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zeroshot.estimator.timing import CHUNK_ANCHORS, carry_drift, measure_archs  # noqa: E402
from zeroshot.spaces import get_space  # noqa: E402

STREAM = ("import os, sys, time\nimport numpy as np\nos.sched_setaffinity(0, {1})\na = np.ones(1 << 24)\n"
          "t = time.time()\nwhile time.time() - t < float(sys.argv[1]):\n    a *= 1.0000001\n")


def timed(archs, rounds, seed):
    return measure_archs(archs, rounds=rounds, seed=seed, clock="thread", chunk=len(archs), anchors=0)


def grouped(archs, chunk, rounds, seed):
    """Per group (anchors appended after the first), its timings; the load runs during the odd groups."""
    anchors = archs[:CHUNK_ANCHORS]
    groups, loaded = [], []
    for g, start in enumerate(range(0, len(archs), chunk)):
        load = subprocess.Popen([sys.executable, "-c", STREAM, "3600"]) if g % 2 else None
        try:
            time.sleep(1.0 if load else 0.0)
            groups.append(timed(archs[start:start + chunk] + (anchors if g else []), rounds, seed + start))
        finally:
            if load:
                load.kill()
                load.wait()
        loaded.append(bool(load))
    return groups, loaded


def agreement(ms, ref) -> str:
    ratio = ms / ref
    dev = np.abs(ratio / np.median(ratio) - 1)
    return (f"{spearmanr(ms, ref).statistic:.3f} | {np.mean(dev <= 0.05):.0%} | {np.mean(dev <= 0.10):.0%} | "
            f"{np.median(dev):.1%}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="fbnet")
    p.add_argument("--n", type=int, default=160)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not CHUNK_ANCHORS <= args.chunk < args.n or args.rounds < 1:
        p.error(f"--chunk must be at least {CHUNK_ANCHORS} and below --n (two groups or more), --rounds at least "
                f"1; got --chunk {args.chunk}, --n {args.n}, --rounds {args.rounds}")
    os.sched_setaffinity(0, {0})
    space = get_space(args.space)
    archs = [space.to_ir(t) for t in space.sample(args.n, seed=args.seed)]
    t0 = time.time()
    ref = np.array([t.median_ms for t in timed(archs, args.rounds, args.seed)])
    groups, loaded = grouped(archs, args.chunk, args.rounds, args.seed)
    raw = np.array([t.median_ms for t in groups[0]] +
                   [t.median_ms for g in groups[1:] for t in g[:-CHUNK_ANCHORS]])
    carried, ratios = carry_drift(groups, CHUNK_ANCHORS)
    carried = np.array([t.median_ms for t in carried])
    command = (f"python benchmarks/measure_drift.py --space {args.space} --n {args.n} --chunk {args.chunk} "
               f"--rounds {args.rounds} --seed {args.seed}")
    lines = ["# Drift between groups of a measurement, and the anchors that carry it", "",
             f"`{command}` on {platform.machine()}, {os.cpu_count()} cores; {time.time() - t0:.0f} s.  "
             + " ".join(__doc__.split("\n\n")[2].split()), "",
             "| timings | Spearman vs reference | within +-5% | within +-10% | median deviation |",
             "|---|---|---|---|---|",
             f"| in groups, as measured (no anchors) | {agreement(raw, ref)} |",
             f"| in groups, carried by the {CHUNK_ANCHORS} anchors (`measure_archs`) | {agreement(carried, ref)} |",
             "", "Groups (load on core 1: during the odd ones): the anchors' median ratio to their median over the "
             "groups: " + ", ".join(f"{r:.3f}{' (load)' if lo else ''}" for r, lo in zip(ratios, loaded)) + ".", ""]
    out = Path(__file__).with_name("results") / "measure_drift.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
