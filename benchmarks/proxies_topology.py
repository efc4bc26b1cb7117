"""Throughput of the topology proxies (zeroshot._topology + counts) on every registered space.

Usage: python benchmarks/proxies_topology.py [--n 2000] [--repeat 5] [--seed 0]
Writes benchmarks/results/proxies_topology.md.  The kernel time is the best of ``--repeat`` runs of
:func:`zeroshot.proxies.topology.topology_features` on one op table (all ten features at once).
"""
import argparse
import platform
import time
from pathlib import Path

import numpy as np

from zeroshot.spaces import get_space, list_spaces, to_table
from zeroshot.proxies.topology import topology_features


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for name in list_spaces():
        space = get_space(name)
        codes = space.sample_distinct_codes(args.n, np.random.default_rng(args.seed))
        t0 = time.perf_counter()
        archs = space.irs(codes)
        t1 = time.perf_counter()
        table = to_table(archs)
        t2 = time.perf_counter()
        best = np.inf
        for _ in range(args.repeat):
            s = time.perf_counter()
            feats = topology_features(table)
            best = min(best, time.perf_counter() - s)
        assert all(len(v) == args.n for v in feats.values())
        per_kernel = best / args.n
        per_total = (t1 - t0 + t2 - t1) / args.n + per_kernel
        rows.append((name, args.n, np.mean(np.diff(table.ptr)), len(feats), per_kernel * 1e6,
                     1 / per_kernel, 1 / per_total))
    lines = [
        "# Topology proxies: throughput",
        "",
        f"`python benchmarks/proxies_topology.py --n {args.n} --repeat {args.repeat} --seed {args.seed}` on "
        f"{platform.processor() or platform.machine()}, one thread.",
        "",
        "| space | archs | ops/arch | features | kernel us/arch | kernel archs/s | end to end archs/s "
        "(IR + table + kernel) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, ops, nf, us, k, e in rows:
        lines.append(f"| {name} | {n} | {ops:.0f} | {nf} | {us:.2f} | {k:,.0f} | {e:,.0f} |")
    lines += ["", "The kernel column computes all features (params, macs, live_params, live_macs, entropy, "
              "paths, depth, shortest, merges, convs) for the whole table in one call (three Cython passes: "
              "graph features, counts, live counts).  End to end adds lowering each encoding to the Python "
              "IR and flattening it, which dominate."]
    out = Path(__file__).parent / "results" / "proxies_topology.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
