"""Funnel throughput: stages 1-3 on a million candidates, the whole funnel on defaults, and memory vs N.

Usage: python benchmarks/funnel_speed.py [--space mbv2] [--n 1000000] [--workers 2] [--skip-full]
       python benchmarks/funnel_speed.py --store-ratio --n 1000000 [--repeats 2]
       python benchmarks/funnel_speed.py --memory-only --n 400000
       python benchmarks/funnel_speed.py --scale-check [--check-archs 40]
       python benchmarks/funnel_speed.py --report-read --n 1000000 [--repeats 2]
Writes benchmarks/results/funnel_speed.md (funnel_store.md, funnel_memory.md, funnel_proxy_scale.md,
funnel_report.md).
Every figure of one table comes from the same run.

* stages 1-3 (compute): sample in seeded chunks, cost (exact counts, device latency, model bytes) and the
  cheap topology score through the segment cache, filter by constraints, keep the top M by the cheap score
  and the Pareto front; run on ``--workers`` processes exactly as `zeroshot screen` does, without the store.
* the same through `zeroshot screen --survivors 0` (with the SQLite store).
* the whole funnel on defaults (100,000 candidates, 200 survivors of which 64 get network proxies, top 10;
  timed in fresh processes with its ranking quality by screen_default_run.py).
* ``--store-ratio``: in one process, alternating, stages 1-3 in memory and
  ``screen(..., survivors=0, db=FILE)`` (the same candidates through the results store, with its reads of
  stage 3 and the shortlist) on ``--workers`` processes: the store's cost as a ratio measured under the
  same load.
* peak resident memory of `zeroshot screen --survivors 0` at N and 4N (flat = streaming works).
* ``--report-read``: `zeroshot screen --survivors 0` on ``--n`` candidates (the baseline's constraints), then
  `zeroshot report` of it, alternated with reading every candidate the report plots with its encoding (what
  the report read up to commit 143fed7, which formatted each): what formatting on read-back cost.
* ``--scale-check``: the rank agreement of the default score computed at ``proxy_scale`` times each
  network's input side vs at full resolution (and, for scale, between two seeds at full resolution), on
  the survivors of a separate screen (seed 1234, 20,000 candidates, the top ``--check-archs`` by the cheap
  score): archs used for no other figure.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from zeroshot.spaces import get_space
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.backends import LocalBackend
from zeroshot.funnel import ScreenConfig, cost_chunks, n_chunks, proxy_codes, run_screen, screen
from zeroshot.pareto import pareto_front

CHECK_SEED = 1234                                    # the scale check's screen: no reported figure uses it
CHECK_SETTINGS = ((1.0, 0), (1.0, 1), (0.75, 0), (0.5, 0))      # (proxy scale, seed); the first is the reference


def stages_1_to_3(cfg: ScreenConfig, workers: int):
    """Stages 1-3 in memory (what the funnel computes, without the store)."""
    space = get_space(cfg.space, **cfg.space_options)
    chunks = list(range(n_chunks(cfg, space)))
    cheap, lat, n = [], [], 0
    limits = cfg.constraints()
    t0 = time.perf_counter()
    for _, m in cost_chunks(cfg, LocalBackend(workers), chunks):
        ok = np.ones(len(m["cheap"]), bool)
        for k, v in limits.items():
            ok &= m[k] <= v
        cheap.append(m["cheap"][ok])
        lat.append(m["latency_ms"][ok])
        n += len(ok)
    cheap, lat = np.concatenate(cheap), np.concatenate(lat)
    top = np.argsort(-cheap)[: cfg.survivors]
    front = pareto_front(cheap, lat)
    return time.perf_counter() - t0, n, len(cheap), len(np.union1d(top, front))


def torch_build_seconds(space, k=10, repeats=3):
    """Seconds to build one torch module and count its parameters: the best of ``repeats`` passes over
    ``k`` architectures (the least disturbed by other jobs; the conservative side for the speed-up)."""
    torch.set_num_threads(1)
    archs = space.irs(space.sample_distinct_codes(k, np.random.default_rng(0)))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in archs:
            count_parameters(build(a))
        best = min(best, time.perf_counter() - t0)
    return best / k


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


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
    ap.add_argument("--scale-check", action="store_true",
                    help="only the default score's rank agreement at reduced resolution (funnel_proxy_scale.md)")
    ap.add_argument("--check-archs", type=int, default=40)
    ap.add_argument("--store-ratio", action="store_true",
                    help="only stages 1-3 in memory vs screen(survivors=0, db=...) in one process (funnel_store.md)")
    ap.add_argument("--report-read", action="store_true",
                    help="only the report of a `--survivors 0` screen vs reading every encoding (funnel_report.md)")
    ap.add_argument("--repeats", type=int, default=2, help="alternations of --store-ratio (default 2)")
    args = ap.parse_args()
    if args.report_read:
        return report_read(args)
    if args.memory_only:
        return memory_only(args)
    if args.store_ratio:
        return store_ratio(args)
    if args.scale_check:
        return scale_check(args)
    return throughput(args)


def throughput(args):
    """Stages 1-3 against building torch modules, the store's runs at N and 4N, and the default run."""
    load0 = _load()
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
             "| torch: build one module and count its parameters (best of 3 passes over 10) | "
             f"{t_build * 1e3:.1f} ms |",
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
            lines += [f"| whole funnel on defaults (100,000 candidates, {cfg.survivors} survivors, {cfg.scored} "
                      f"scored, top 10, network proxies at {cfg.proxy_scale} x the input side) | {wall_f:.0f} s |",
                      "", "Output of the default run:", "", "```", out.strip(), "```"]
    lines += ["", "Peak RSS is that of the largest child so far (getrusage), so the second figure bounds the "
              "first: equal figures mean memory stays flat as N grows.", "",
              f"Load average at the start: {load0}; at the end: {_load()} ({os.cpu_count()} cores shared with "
              "other jobs: wall times are upper bounds, the speed-up is a ratio within this run)."]
    out = Path(__file__).parent / "results" / "funnel_speed.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def store_ratio(args):
    """Stages 1-3 in memory and the screen with its store, alternated in this process (same load)."""
    cfg = ScreenConfig(space=args.space, n=args.n, chunk=50_000, survivors=200, top=10)
    loads, memory, stored = [_load()], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            memory.append(stages_1_to_3(cfg, args.workers)[0])
            db = str(Path(tmp) / f"r{r}.db")
            t0 = time.perf_counter()
            res = screen(args.space, n=args.n, chunk=cfg.chunk, survivors=0, top=cfg.top, db=db, baseline=None,
                         backend=LocalBackend(args.workers), quiet=True)      # no constraint, as in memory
            stored.append(time.perf_counter() - t0)
            size = os.path.getsize(db) / 2 ** 20
            loads.append(_load())
    ratios = [s / m for s, m in zip(stored, memory)]
    section = [f"## {args.n:,} candidates", "",
               f"`python benchmarks/funnel_speed.py --store-ratio --space {args.space} --n {args.n} --workers "
               f"{args.workers} --repeats {args.repeats}`", "",
               "| pass | stages 1-3 in memory | screen with the store | ratio |", "|---|---|---|---|"]
    section += [f"| {r + 1} | {m:.2f} s | {s:.2f} s | {q:.2f} |" for r, (m, s, q) in
                enumerate(zip(memory, stored, ratios))]
    section += ["", f"Median ratio **{np.median(ratios):.2f}**; counts {res.counts}; database {size:,.0f} MiB. "
                f"Load average (1, 5, 15 min) before and after each pass: {'; '.join(loads)} "
                f"({os.cpu_count()} cores shared with other jobs)."]
    out = Path(__file__).parent / "results" / "funnel_store.md"
    sections = _sections(out) | {args.n: section}
    head = [f"# The results store's cost ({args.space}, {args.workers} workers)", "",
            "Stages 1-3 in memory (sample, cost, cheap score, filter, top-200 + Pareto front, nothing kept; each "
            "worker's process sends back only the metrics) vs `zeroshot.screen(..., survivors=0, baseline=None, "
            "db=FILE)` (no constraint: every candidate passes, as in memory) on the "
            "same candidates (stages 1-3 with every candidate in the SQLite store, stage 3 and the shortlist read "
            "back from it, the run's summary), alternated in one process so that both see the same load; each "
            "pass starts with a cold segment cache, as a fresh command does.", ""]
    body = ["\n".join(sections[n]).strip() for n in sorted(sections)]
    out.write_text("\n".join(head) + "\n" + "\n\n".join(body) + "\n")
    print("\n".join(section))


def report_read(args):
    """The report of a million-candidate screen vs reading every plotted candidate with its encoding."""
    from zeroshot.report import write_report
    from zeroshot.store import ResultStore
    columns = ("arch", "cheap", "latency_ms", "params", "peak_activation_bytes", "stage", "top")
    loads, formatted, report = [_load()], [], []
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "big.db")
        wall, _, out = screen_cli([args.space, "-n", str(args.n), "--survivors", "0", "--db", db, "--workers",
                                   str(args.workers)], "screen")
        for r in range(args.repeats):
            t0 = time.perf_counter()
            with ResultStore(db) as store:
                rows = store.candidates(store.last_run(), "passed", has="cheap", columns=columns)
            formatted.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            write_report(db, str(Path(tmp) / f"report{r}"))
            report.append(time.perf_counter() - t0)
            loads.append(_load())
    lines = [f"# Reading a big screen back: `zeroshot report` ({args.space}, {args.n:,} candidates)", "",
             f"`python benchmarks/funnel_speed.py --report-read --space {args.space} --n {args.n} --workers "
             f"{args.workers} --repeats {args.repeats}`: `zeroshot screen {args.space} -n {args.n} --survivors 0` "
             f"into a database ({wall:.1f} s wall, {len(rows):,} candidates within the baseline's constraints), "
             "then, alternated in one process, every candidate the report plots read with its encoding (the read "
             "of `zeroshot report` up to commit 143fed7, which formatted each encoding) and the whole report now "
             "(pareto.png, funnel.png, index.html; it reads the plotted columns as arrays and formats only the "
             "rows it lists).", "",
             "| pass | read with every encoding formatted | whole report now |", "|---|---|---|"]
    lines += [f"| {r + 1} | {f:.2f} s | {w:.2f} s |" for r, (f, w) in enumerate(zip(formatted, report))]
    lines += ["", f"Medians: {np.median(formatted):.2f} s vs {np.median(report):.2f} s. Load average (1, 5, 15 min) "
              f"before and after each pass: {'; '.join(loads)} ({os.cpu_count()} cores shared with other jobs).",
              "", "The screen's own output:", "", "```", out.strip(), "```"]
    path = Path(__file__).parent / "results" / "funnel_report.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _sections(path: Path) -> dict:
    """The ``## N candidates`` sections of a results file, by N (to replace one and keep the others)."""
    sections, n = {}, None
    for line in (path.read_text().splitlines() if path.exists() else []):
        if line.startswith("## "):
            n = int(line.split()[1].replace(",", ""))
            sections[n] = []
        if n is not None:
            sections[n].append(line)
    return sections


def memory_only(args):
    lines = [f"# Peak memory of `zeroshot screen {args.space} --survivors 0` vs N", "",
             f"`python benchmarks/funnel_speed.py --space {args.space} --n {args.n} --memory-only` (chunks of "
             "50,000; each N in a fresh process: peak RSS of the coordinator + 2 x the largest worker, an upper "
             "bound)", "",
             "| candidates | wall | peak RSS |", "|---|---|---|"]
    loads = [_load()]
    with tempfile.TemporaryDirectory() as tmp:
        for N in (args.n, 4 * args.n):
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", _RSS_CHILD, args.space, str(N), str(Path(tmp) / f"{N}.db"),
                                str(args.workers)], capture_output=True, text=True, check=True)
            lines.append(f"| {N:,} | {time.perf_counter() - t0:.1f} s | {int(p.stdout.split()[-1]):,} MiB |")
            loads.append(_load())
    lines += ["", f"Load average (1, 5, 15 min) before and after each N: {'; '.join(loads)} ({os.cpu_count()} cores "
              "shared with other jobs)."]
    out = Path(__file__).parent / "results" / "funnel_memory.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _proxies_at(task):
    """Stage 4's proxy values of ``codes`` at ``scale`` (as the funnel computes them) and CPU seconds."""
    from zeroshot.scoring import DEFAULT_PROXIES, compute_proxies
    space_name, codes, scale, seed = task
    torch.set_num_threads(1)
    space = get_space(space_name)
    t0 = time.process_time()
    values = compute_proxies(space, proxy_codes(space, codes, scale), DEFAULT_PROXIES, None, seed, 16)
    return values, time.process_time() - t0


def scale_check(args):
    from scipy.stats import kendalltau, spearmanr

    from zeroshot.scoring import DEFAULT_PROXIES, rank_aggregate
    space = get_space(args.space)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ScreenConfig(space=args.space, n=20_000, survivors=0, top=args.check_archs, seed=CHECK_SEED,
                           baseline=None)
        archs = [r["arch"] for r in run_screen(cfg, str(Path(tmp) / "check.db"), quiet=True)["shortlist"]]
    codes = np.array([space.parse(a) for a in archs])
    halves = np.array_split(np.arange(len(codes)), 2)
    tasks = [(args.space, codes[h], scale, seed) for scale, seed in CHECK_SETTINGS for h in halves]
    got = list(LocalBackend(args.workers).map(_proxies_at, tasks, resources={"num_cpus": 1}))   # as stage 4
    scores, cpu, saturated = {}, {}, {}
    for k, setting in enumerate(CHECK_SETTINGS):
        parts = got[2 * k: 2 * k + 2]
        values = {n: np.concatenate([p[0][n] for p in parts]) for n in DEFAULT_PROXIES}
        scores[setting] = rank_aggregate(values)
        cpu[setting] = sum(p[1] for p in parts) / len(codes)
        saturated[setting] = f" {int((values['swap'] >= 2 ** 16).sum())}/{len(codes)} |" if "swap" in values else ""
    ref = scores[CHECK_SETTINGS[0]]
    top = set(np.argsort(-ref, kind="stable")[:10].tolist())
    lines = [f"# Default score at reduced proxy resolution ({args.space})", "",
             f"`python benchmarks/funnel_speed.py --scale-check --check-archs {args.check_archs}`: the top "
             f"{len(codes)} survivors by the cheap score of a separate screen (seed {CHECK_SEED}, 20,000 "
             "candidates), scored by the default score (rank aggregate of "
             f"{' + '.join(DEFAULT_PROXIES)}, batch 16, synthetic input) at `proxy_scale` times each network's "
             "input side; agreement with full resolution, seed 0.", "",
             "| proxy scale | seed | Kendall tau | Spearman rho | top-10 overlap | CPU s / arch |"
             + (" swap at its 2^16 cap |" if "swap" in DEFAULT_PROXIES else ""),
             "|---|---|---|---|---|---|" + ("---|" if "swap" in DEFAULT_PROXIES else "")]
    for setting in CHECK_SETTINGS:
        s = scores[setting]
        overlap = len(top & set(np.argsort(-s, kind="stable")[:10].tolist()))
        lines.append(f"| {setting[0]} | {setting[1]} | {kendalltau(ref, s)[0]:.3f} | {spearmanr(ref, s)[0]:.3f} | "
                     f"{overlap}/10 | {cpu[setting]:.2f} |{saturated[setting]}")
    lines += ["", f"Load average at the end: {_load()} ({os.cpu_count()} cores; CPU seconds are per process, "
              f"{args.workers} processes)."]
    out = Path(__file__).parent / "results" / "funnel_proxy_scale.md"
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
