"""Funnel throughput: stages 1-3 on a million candidates, the whole funnel on defaults, and memory vs N.

Usage: python benchmarks/funnel_speed.py [--space mbv2] [--n 1000000] [--workers 2] [--skip-full]
Writes benchmarks/results/funnel_speed.md.  Every figure of one table comes from the same run.

* stages 1-3 (compute): sample in seeded chunks, cost (exact counts, device latency, model bytes) and the
  cheap topology score through the segment cache, filter by constraints, keep the top M by the cheap score
  and the Pareto front; run on ``--workers`` processes exactly as `zeroshot screen` does, without the store.
* the same through `zeroshot screen --survivors 0` (with the SQLite store).
* the whole funnel on defaults (100,000 candidates, 200 survivors with network proxies, top 10).
* peak resident memory of `zeroshot screen --survivors 0` at N and 4N (flat = streaming works).
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from spaces import get_space
from spaces.builder import build, count_parameters
from zeroshot.backends import LocalBackend
from zeroshot.funnel import ScreenConfig, _init_worker, cost_chunk, n_chunks, pareto_front


def stages_1_to_3(cfg: ScreenConfig, workers: int):
    """Stages 1-3 in memory (what the funnel computes, without the store)."""
    space = get_space(cfg.space, **cfg.space_options)
    chunks = range(n_chunks(cfg, space))
    cheap, lat, n = [], [], 0
    limits = cfg.constraints()
    t0 = time.perf_counter()
    for _, codes, m in LocalBackend(workers).map(cost_chunk, chunks, init=_init_worker, init_args=(asdict(cfg),)):
        ok = np.ones(len(codes), bool)
        for k, v in limits.items():
            ok &= m[k] <= v
        cheap.append(m["cheap"][ok])
        lat.append(m["latency_ms"][ok])
        n += len(codes)
    cheap, lat = np.concatenate(cheap), np.concatenate(lat)
    top = np.argsort(-cheap)[: cfg.survivors]
    front = pareto_front(cheap, lat)
    return time.perf_counter() - t0, n, len(cheap), len(np.union1d(top, front))


def torch_build_seconds(space, k=10):
    torch.set_num_threads(1)
    archs = space.irs(space.sample_distinct_codes(k, np.random.default_rng(0)))
    t0 = time.perf_counter()
    for a in archs:
        count_parameters(build(a))
    return (time.perf_counter() - t0) / k


def screen_cli(args, label):
    """Run `zeroshot screen` in a child; wall time and the child's peak RSS (MiB)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "zeroshot", "screen", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{label} failed: {p.stderr}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-full", action="store_true", help="skip the whole funnel with network proxies")
    ap.add_argument("--memory-only", action="store_true",
                    help="only peak memory of `zeroshot screen --survivors 0` at N and 4N (funnel_memory.md)")
    args = ap.parse_args()
    if args.memory_only:
        return memory_only(args)
    space = get_space(args.space)
    cfg = ScreenConfig(space=args.space, n=args.n, chunk=50_000, survivors=200, top=10)
    t_build = torch_build_seconds(space)
    wall, n, passed, kept = stages_1_to_3(cfg, args.workers)
    per_arch = wall / n
    lines = [f"# Funnel throughput ({args.space}, device {cfg.device}, {args.workers} workers, "
             f"{os.cpu_count()} cores)", "",
             f"`python benchmarks/funnel_speed.py --space {args.space} --n {args.n} --workers {args.workers}`", "",
             "| measure | value |", "|---|---|",
             f"| stages 1-3 on {n:,} candidates (sample, cost, cheap score, filter, top-M + Pareto) | "
             f"{wall:.1f} s |",
             f"| architectures per second, stages 1-3 | {n / wall:,.0f} |",
             f"| torch: build one module and count its parameters | {t_build * 1e3:.1f} ms |",
             f"| speed-up per architecture vs building the torch module | {t_build / per_arch:,.0f}x |",
             f"| kept for stage 4 (top 200 + Pareto front) | {kept:,} of {passed:,} |"]
    with tempfile.TemporaryDirectory() as tmp:
        small, large = args.n // 10, args.n // 10 * 4
        rows = []
        for N in (small, large):
            db = str(Path(tmp) / f"m{N}.db")
            wall_n, rss, _ = screen_cli([args.space, "-n", str(N), "--survivors", "0", "--db", db,
                                         "--workers", str(args.workers), "--chunk", "50000"], f"screen {N}")
            rows.append((N, wall_n, rss))
        lines += [f"| `zeroshot screen --survivors 0` with the SQLite store, {N:,} candidates | {w:.1f} s, "
                  f"peak RSS {r:,.0f} MiB |" for N, w, r in rows]
        if not args.skip_full:
            db = str(Path(tmp) / "full.db")
            wall_f, _, out = screen_cli([args.space, "--db", db, "--workers", str(args.workers)], "full funnel")
            lines += [f"| whole funnel on defaults (100,000 candidates, 200 survivors, top 10) | {wall_f:.0f} s |",
                      "", "Output of the default run:", "", "```", out.strip(), "```"]
    lines += ["", "Peak RSS is that of the largest child so far (getrusage), so the second figure bounds the "
              "first: equal figures mean memory stays flat as N grows."]
    out = Path(__file__).parent / "results" / "funnel_speed.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def memory_only(args):
    lines = [f"# Peak memory of `zeroshot screen {args.space} --survivors 0` vs N", "",
             f"`python benchmarks/funnel_speed.py --space {args.space} --n {args.n} --memory-only` (chunks of "
             "50,000; each N in a fresh process: peak RSS of the coordinator + 2 x the largest worker, an upper bound)", "",
             "| candidates | wall | peak RSS |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for N in (args.n, 4 * args.n):
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", _RSS_CHILD, args.space, str(N), str(Path(tmp) / f"{N}.db"),
                                str(args.workers)], capture_output=True, text=True, check=True)
            lines.append(f"| {N:,} | {time.perf_counter() - t0:.1f} s | {int(p.stdout.split()[-1]):,} MiB |")
    out = Path(__file__).parent / "results" / "funnel_memory.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


_RSS_CHILD = """
import resource, sys
from zeroshot.backends import LocalBackend
from zeroshot.funnel import ScreenConfig, run_screen
space, n, db, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
run_screen(ScreenConfig(space=space, n=n, chunk=50_000, survivors=0), db, backend=LocalBackend(workers), quiet=True)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print((own + 2 * kids) // 1024)
"""


if __name__ == "__main__":
    main()
