"""The default screen as a user runs it: `zeroshot screen mbv2` on defaults, its time and its ranking quality.

Usage: python benchmarks/screen_default_run.py [--repeats 3] [--workers 2] [--skip-agreement]
       python benchmarks/screen_default_run.py --development [--seeds 1 2]
Writes benchmarks/results/screen_default_run.md (funnel_scored_dev.md).

* time: ``--repeats`` fresh processes of `python -m zeroshot screen mbv2 --db FILE` (every other option on its
  default: 100,000 candidates, mobile-npu-16, the MobileNetV2 baseline, the default survivors, proxy scale and
  batch), each timed from outside (wall, the child's CPU seconds), with the per-stage seconds the run records
  in its summary and the load average before and after; median and spread (min-max).
* agreement with the slow path, on the last timed run's candidates: the default score
  (:data:`zeroshot.scoring.DEFAULT_PROXIES`, read when this runs) as the run computed it (its stored proxy
  values at its proxy scale and batch, the baseline recomputed the same way) against the slow way: full
  resolution (proxy scale 1.0), batch 64, and every survivor of the cheap stage kept (the run's survivors,
  its Pareto front of cheap score vs latency included, and the 200 best by the cheap score, the survivors of
  the earlier default).  Spearman and Kendall of the two scores over the run's scored candidates, overlap of
  the run's top-10 shortlist with the slow path's, and how many of the run's shortlist still score at or
  above the baseline under the slow score; the same for the earlier default (the 200 best survivors all
  scored, at the run's proxy scale and batch) beside it.
* ``--development``: how many survivors stage 4 needs to score (``scored``), chosen on screens of other seeds
  than the timed runs' (seed 0): each screen scores all of its best 200 survivors, and the top-10 shortlist of
  a subset of ``S`` of them (the shortlist that ``scored=S`` gives, the same proxy values) is compared with the
  shortlist of all 200, for the subset :func:`zeroshot.funnel.scored_survivors` picks (largest input side first)
  and for the best ``S`` by the cheap score alone.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from zeroshot.backends import LocalBackend
from zeroshot.funnel import ScreenConfig, _init_worker, network_chunk
from zeroshot.scoring import DEFAULT_PROXIES, rank_aggregate
from zeroshot.store import ResultStore

OUT = Path(__file__).parent / "results" / "screen_default_run.md"
SLOW = {"proxy_scale": 1.0, "batch_size": 64}
OLD_SURVIVORS = 200                 # the survivors of the earlier default: all scored on the slow path
SHORTLIST = 10
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")     # what the benchmark runs with


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(db: str) -> dict:
    """One fresh `zeroshot screen mbv2` on defaults into ``db``: wall and CPU seconds, loads, its summary."""
    load, cpu, t0 = _load(), _child_cpu(), time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARIABLES}      # as a user's shell has it
    p = subprocess.run([sys.executable, "-m", "zeroshot", "screen", "mbv2", "--db", db], capture_output=True,
                       text=True, env=env)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - cpu
    if p.returncode:
        raise SystemExit(f"zeroshot screen mbv2 failed: {p.stderr}")
    with ResultStore(db) as store:
        run_id = store.last_run("screen")
        summary = store.run_summary(run_id)
    return {"wall": wall, "cpu": cpu, "load": (load, _load()), "summary": summary, "stdout": p.stdout,
            "run_id": run_id}


def timing_lines(runs: list[dict]) -> list[str]:
    walls = [r["wall"] for r in runs]
    lines = ["| run | wall | CPU s (all processes) | cost | select | proxies | scored | shortlisted (beat the "
             "baseline) | load before | load after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(runs, 1):
        t, c = r["summary"]["timings_s"], r["summary"]["counts"]
        lines.append(f"| {i} | {r['wall']:.1f} s | {r['cpu']:.1f} | {t['cost']:.1f} s | {t['select']:.1f} s | "
                     f"{t.get('proxies', 0):.1f} s | {c.get('scored', 0)} | {len(r['summary']['shortlist'])} | "
                     f"{r['load'][0]} | {r['load'][1]} |")
    lines += ["", f"Wall time median **{np.median(walls):.1f} s** (spread {min(walls):.1f}-{max(walls):.1f} s), "
              f"from starting the process to its exit (Python and torch start-up included); CPU seconds median "
              f"{np.median([r['cpu'] for r in runs]):.1f} (the run's own and its workers', whatever the load)."]
    return lines


def proxy_values(cfg: ScreenConfig, archs: list[str], workers: int) -> dict[str, dict]:
    """arch -> the default score's proxy values as stage 4 computes them under ``cfg``."""
    batches = [archs[s:s + 4] for s in range(0, len(archs), 4)]
    results = LocalBackend(workers).map(network_chunk, batches, init=_init_worker, init_args=(asdict(cfg),),
                                        resources={"num_cpus": 1})
    return {a: v for batch, values in zip(batches, results) for a, v in zip(batch, values)}


def scores(values: dict[str, dict], baseline: str) -> tuple[dict[str, float], float]:
    """The default score (rank aggregate over ``values``' networks, the baseline among them): arch -> score
    for the candidates, and the baseline's."""
    archs = sorted(a for a in values if a != baseline) + [baseline]
    agg = rank_aggregate({n: np.array([values[a][n] for a in archs]) for n in DEFAULT_PROXIES})
    return dict(zip(archs[:-1], agg[:-1].tolist())), float(agg[-1])


def shortlist(score: dict[str, float], floor: float) -> list[str]:
    """The top :data:`SHORTLIST` by score at or above ``floor`` (ties by encoding), as the funnel picks."""
    ranked = sorted(score, key=lambda a: (-score[a], a))
    return [a for a in ranked if score[a] >= floor][:SHORTLIST]


def compare(fast: dict, fast_list: list[str], slow: dict, slow_list: list[str], slow_base: float) -> dict:
    """Agreement of a fast score (arch -> score) and its shortlist with the slow path's."""
    from scipy.stats import kendalltau, spearmanr
    archs = sorted(fast)
    f, s = [fast[a] for a in archs], [slow[a] for a in archs]
    return {"spearman": spearmanr(f, s)[0], "kendall": kendalltau(f, s)[0],
            "overlap": f"{len(set(fast_list) & set(slow_list))}/{len(slow_list)}",
            "beats": f"{sum(slow[a] >= slow_base for a in fast_list)}/{len(fast_list)}"}


def _row(fast: str, slow: str, c: dict) -> str:
    return f"| {fast} | {slow} | {c['spearman']:.3f} | {c['kendall']:.3f} | {c['overlap']} | {c['beats']} |"


def agreement(db: str, run_id: int, workers: int) -> tuple[list[str], dict]:
    """The run's default score vs the slow path's (module docstring); table lines and the figures."""
    with ResultStore(db) as store:
        cfg = ScreenConfig(**store.run_config(run_id))
        summary = store.run_summary(run_id)
        scored = store.candidates(run_id, "scored", columns=["arch", "score", *DEFAULT_PROXIES])
        kept = {r["arch"] for r in store.candidates(run_id, "survived", columns=["arch"])}
        best = [r["arch"] for r in store.top(run_id, "cheap", OLD_SURVIVORS, min_stage="passed", columns=["arch"])]
    kept |= set(best)
    base = summary["baseline"]["arch"]
    fast = {r["arch"]: {n: r[n] for n in DEFAULT_PROXIES} for r in scored}
    fast.update(proxy_values(cfg, [base], 1))
    fast_score, fast_base = scores(fast, base)
    stored = np.array([r["score"] for r in scored])
    reproduced = np.allclose(stored, [fast_score[r["arch"]] for r in scored])
    earlier = fast | proxy_values(cfg, sorted(set(best) - set(fast)), workers)
    cpu = time.process_time() + _child_cpu()
    slow = proxy_values(replace(cfg, **SLOW), sorted(kept | {base}), workers)
    cpu = time.process_time() + _child_cpu() - cpu
    slow_score, slow_base = scores(slow, base)
    same_set, same_base = scores({a: slow[a] for a in fast}, base)
    run_list = [r["arch"] for r in summary["shortlist"]]
    slow_list = shortlist(slow_score, slow_base)
    figures = {"scored": len(fast_score), "slow_set": len(slow_score), "reproduced": reproduced,
               "run": compare(fast_score, run_list, slow_score, slow_list, slow_base),
               "own": compare(fast_score, run_list, same_set, shortlist(same_set, same_base), same_base)}
    old_score, old_base = scores(earlier, base)
    figures["earlier"] = compare(old_score, shortlist(old_score, old_base), slow_score, slow_list, slow_base)
    lines = [f"Default score: rank aggregate of {' + '.join(DEFAULT_PROXIES)}. The run scored "
             f"{figures['scored']} candidates at proxy scale {cfg.proxy_scale}, batch {cfg.batch_size} (its stored "
             f"scores {'reproduced' if reproduced else 'NOT reproduced'} from its stored proxy values and the "
             f"baseline's); the slow path scores {figures['slow_set']} at proxy scale {SLOW['proxy_scale']}, batch "
             f"{SLOW['batch_size']}: the run's survivors (Pareto front of cheap score vs latency included) and the "
             f"{OLD_SURVIVORS} best by the cheap score, with the baseline.", "",
             "| scored the fast way | compared with the slow path on | Spearman | Kendall | top-10 overlap | "
             "shortlist at or above the baseline on the slow score |", "|---|---|---|---|---|---|",
             _row(f"the run ({figures['scored']})", f"every survivor kept ({figures['slow_set']})", figures["run"]),
             _row(f"the run ({figures['scored']})", f"the run's own {figures['scored']}", figures["own"]),
             _row(f"the earlier default (the {len(earlier) - 1} best survivors)",
                  f"every survivor kept ({figures['slow_set']})", figures["earlier"]), "",
             "Spearman and Kendall over the candidates scored the fast way; the overlap of the two top-10 "
             f"shortlists. Slow path: {cpu:.0f} CPU s. The run's baseline score {fast_base:.3f}, on the slow path "
             f"{slow_base:.3f}."]
    return lines, figures


def development(seeds: list[int], workers: int) -> None:
    """The ``--development`` table (module docstring): funnel_scored_dev.md."""
    from zeroshot.funnel import scored_survivors, screen
    from zeroshot.spaces import get_space
    sizes, space = (50, 64, 80, 100, 120, 150), get_space("mbv2")
    lines = ["# How many survivors stage 4 scores: development screens", "",
             f"`python benchmarks/screen_default_run.py --development --seeds {' '.join(map(str, seeds))}`: "
             f"`zeroshot screen mbv2` on defaults but the seed, scoring all of its best {OLD_SURVIVORS} survivors "
             f"(default score {' + '.join(DEFAULT_PROXIES)}). Top-10 overlap of the shortlist of S of them with the "
             f"shortlist of all {OLD_SURVIVORS} (each shortlist ranked in its own batch with the baseline, at or "
             "above it), S chosen by `scored_survivors` (largest input side first, ties by the cheap score) or by "
             "the cheap score alone.", "",
             "| seed | chosen by | " + " | ".join(f"S={n}" for n in sizes) + " |", "|---|---|" + "---|" * len(sizes)]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            db = str(Path(tmp) / f"dev{seed}.db")
            r = screen("mbv2", seed=seed, survivors=OLD_SURVIVORS, scored=None, db=db, quiet=True,
                       backend=LocalBackend(workers))
            with ResultStore(db) as store:
                cfg = ScreenConfig(**store.run_config(r.run_id))
                best = [x["arch"] for x in store.top(r.run_id, "cheap", OLD_SURVIVORS, min_stage="passed")]
                rows = store.candidates(r.run_id, "scored", columns=["arch", *DEFAULT_PROXIES])
            base = r.summary["baseline"]["arch"]
            values = {x["arch"]: {n: x[n] for n in DEFAULT_PROXIES} for x in rows} | proxy_values(cfg, [base], 1)
            full = set(shortlist(*scores(values, base)))
            for label, pick in (("largest input first", lambda n: scored_survivors(replace(cfg, scored=n), space,
                                                                                   best)),
                                ("cheap score", lambda n: best[:n])):
                cells = []
                for n in sizes:
                    part = scores({a: values[a] for a in pick(n) + [base]}, base)
                    cells.append(f"{len(full & set(shortlist(*part)))}/{len(full)}")
                lines.append(f"| {seed} | {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Load average at the end: {_load()}."]
    out = OUT.parent / "funnel_scored_dev.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes of the slow path (the runs use defaults)")
    ap.add_argument("--skip-agreement", action="store_true", help="time the runs only")
    ap.add_argument("--development", action="store_true", help="only the choice of `scored` (funnel_scored_dev.md)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="seeds of --development (not 0)")
    args = ap.parse_args()
    if args.development:
        return development(args.seeds, args.workers)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [timed_run(str(Path(tmp) / f"run{i}.db")) for i in range(args.repeats)]
        lines = ["# `zeroshot screen mbv2` on defaults: time and ranking quality", "",
                 f"`python benchmarks/screen_default_run.py --repeats {args.repeats}` (commit {commit} and the "
                 f"working tree; {os.cpu_count()} cores shared with other jobs; default score "
                 f"{' + '.join(DEFAULT_PROXIES)})", "", "## Time, each run a fresh process", ""]
        lines += timing_lines(runs)
        lines += ["", "Output of the last run:", "", "```", runs[-1]["stdout"].rstrip(), "```"]
        if not args.skip_agreement:
            part, _ = agreement(str(Path(tmp) / f"run{args.repeats - 1}.db"), runs[-1]["run_id"], args.workers)
            lines += ["", "## Ranking quality: the run vs the slow path", ""] + part
    lines += ["", f"Load average at the end: {_load()}."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
