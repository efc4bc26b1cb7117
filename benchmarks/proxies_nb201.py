"""Rank correlation of every proxy and of the default ``score`` with trained accuracy on NB201 CIFAR-10.

Usage: python benchmarks/proxies_nb201.py [--n 1000] [--dev 600] [--seed 0] [--batch-size 64] [--cost-n 10]
       [--cost-mbv2 3] [--few-shot 50] [--compute-only | --no-compute] [--reverse]
       [--table CSV --images NPZ --classes K --image-size PX]
Writes benchmarks/results/proxies_nb201.md.  Needs ../shared/data (nb201/nb201_cifar10.csv and
images/cifar10_test_846.npz).  Another dataset, with the same code and settings: ``--table`` in the same
format (``index, test_acc, val_acc`` per official cell index), ``--images`` an NPZ of that dataset's images
and labels (:mod:`zeroshot.batches`), ``--classes`` and ``--image-size`` its classes and image side, e.g.
``--classes 100`` for CIFAR-100, ``--classes 120 --image-size 16`` for ImageNet16-120; results and cache
then go to ``proxies_nb201_<table stem>.md`` / ``..._cache.csv``.

Cells: the reported set is ``--n`` cells drawn with ``numpy.random.default_rng(seed)`` from the 15,625
(official index order), scored against ``test_acc``.  The development set is ``--dev`` other cells
(the first of ``default_rng(seed + 1).permutation`` of the cells outside the reported set's
isomorphism classes), scored against ``val_acc``: the only data the default score's
choices were looked at on.  Network proxies run once per isomorphism class (the class representative,
:meth:`zeroshot.spaces.SearchSpace.canonical_codes`) on the first ``--batch-size`` real images with
``--seed``; their values and seconds are cached in benchmarks/results/proxies_nb201_cache.csv (delete it
after changing a proxy), so an interrupted run resumes.  Run it in the background:
``nohup python benchmarks/proxies_nb201.py > /tmp/proxies_nb201.log 2>&1 &``.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from zeroshot.spaces import get_space
from zeroshot.spaces.nb201 import official_codes
from zeroshot.spaces.shared_data import shared_data
from zeroshot.allocator import keep_freed_memory
from zeroshot.batches import load_data
from zeroshot.proxies import get_proxy, list_proxies
from zeroshot.proxies.network import compute_network_proxies, suite_cost
from zeroshot.scoring import CANDIDATES, DEFAULT_PROXIES, compute_proxies, log_ranks, rank_aggregate

RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "proxies_nb201_cache.csv"


CHEAP = ("naswot", "synflow", "meco", "linear_regions", "swap", "swap_layers", "meco_batch")   # computed first


def split_cells(canon, n: int, dev: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the reported cells (``default_rng(seed)``) and of the development cells: ``dev`` others
    outside the reported set's isomorphism classes (``default_rng(seed + 1)``); ``canon``: canonical codes."""
    report = np.random.default_rng(seed).choice(len(canon), n, replace=False)
    seen = {tuple(c) for c in canon[report]}
    rest = np.array([i for i in range(len(canon)) if tuple(canon[i]) not in seen])
    return report, np.random.default_rng(seed + 1).permutation(rest)[:dev]


def load_cache(path: Path = CACHE):
    """(arch, proxy) -> value and (arch, proxy) -> seconds (its share of the call), from the cache."""
    values, seconds = {}, {}
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                values[row["arch"], row["proxy"]] = float(row["value"])
                seconds[row["arch"], row["proxy"]] = float(row["seconds"])
    return values, seconds


def fill_cache(space, phases, data, seed, batch_size, cache: Path = CACHE):
    """Compute, phase by phase, every (representative, proxy) pair not yet cached.

    ``phases``: list of (representative codes, proxy names).  Each architecture's missing proxies run in
    one shared call; its seconds are split evenly over them.  A call that raises is logged and left
    uncached (retried by the next run).  ``data``: a batch (``.x``, ``.y``), or a function of the IR
    architecture giving its batch.
    """
    if not cache.exists():
        cache.write_text("arch,proxy,value,seconds\n")
    with open(cache, "a", newline="") as f:
        w = csv.writer(f)
        for reps, names in phases:
            values, _ = load_cache(cache)       # again per phase: another run may have added some
            todo = [(space.format(r), r) for r in reps]
            todo = [(a, r, [n for n in names if (a, n) not in values]) for a, r in todo]
            todo = [t for t in todo if t[2]]
            print(f"phase {','.join(names)}: {len(todo)} architectures to compute", flush=True)
            for i, (a, r, missing) in enumerate(todo):
                if i % 10 == 0:                     # skip what a parallel run has done meanwhile
                    values, _ = load_cache(cache)
                missing = [n for n in missing if (a, n) not in values]
                if not missing:
                    continue
                t = time.perf_counter()
                try:
                    arch = space.build_ir(r)
                    batch = data(arch) if callable(data) else data
                    got = compute_network_proxies(arch, missing, batch.x, batch.y, seed=seed, batch_size=batch_size)
                except Exception as e:                     # noqa: BLE001  (logged, retried next run)
                    print(f"{a}: {type(e).__name__}: {e}", flush=True)
                    continue
                sec = (time.perf_counter() - t) / len(missing)
                for n in missing:
                    w.writerow([a, n, repr(float(got[n])), repr(sec)])
                    values[a, n] = float(got[n])
                f.flush()
                if i % 25 == 0:
                    print(f"  {i}/{len(todo)} ({sec * len(missing):.2f} s last)", flush=True)
    return load_cache(cache)


def correlations(values, acc):
    """name -> (Spearman, Kendall, cells used): missing (NaN) values are left out, infinities kept
    (they rank at the ends)."""
    out = {}
    for name, v in values.items():
        ok = ~np.isnan(v)
        if ok.sum() < 10:
            out[name] = (np.nan, np.nan, int(ok.sum()))
            continue
        out[name] = (spearmanr(v[ok], acc[ok])[0], kendalltau(v[ok], acc[ok])[0], int(ok.sum()))
    return out


def few_shot(features_train, acc_train, features_test):
    """Few-shot calibration: ridge regression on the rank-transformed proxies of a few trained archs."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
    model.fit(features_train, acc_train)
    return model.predict(features_test)


def rank_features(values, names):
    """:func:`zeroshot.scoring.log_ranks` of each proxy over all cells, one column per proxy."""
    return np.stack([log_ranks(n, values[n]) for n in names], axis=1)


def cost_sets(space, reps, data, args):
    """(label, architectures, x, y) on which the suite's cost is measured: NB201 cells at --batch-size, at
    16 and at twice --batch-size real images (the fixed costs: grasp's 16 images, zen, meco, synflow,
    linear_regions, weigh less in a larger batch); --cost-mbv2 MobileNetV2 nets (``default_rng(seed)`` samples at 128 px) on 16
    Gaussian images with seeded labels (what ``zeroshot score`` uses without --data)."""
    archs = [space.build_ir(c) for c in reps]
    for b in dict.fromkeys((args.batch_size, 16, 2 * args.batch_size)):
        yield (f"NB201, {len(archs)} cells, batch {b}", archs, data.x[:b], data.y[:b])
    if args.cost_mbv2:
        mb = get_space("mbv2")
        nets = [mb.to_ir(" ".join(["r128"] + c.split()[1:])) for c in mb.sample(args.cost_mbv2, seed=args.seed)]
        x = torch.randn(16, 3, 128, 128, generator=torch.Generator().manual_seed(args.seed))
        yield (f"MobileNetV2, {len(nets)} nets, 128 px, batch 16", nets, x, None)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dev", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cost-n", type=int, default=10)
    ap.add_argument("--cost-mbv2", type=int, default=3, help="MobileNetV2 nets in the cost table")
    ap.add_argument("--few-shot", type=int, default=50)
    ap.add_argument("--compute-only", action="store_true", help="fill the cache, write no report")
    ap.add_argument("--no-compute", action="store_true",
                    help="report from the cache as it is (costly proxies on the cells computed so far)")
    ap.add_argument("--reverse", action="store_true",
                    help="every phase in reverse order (a second run in parallel shares the work)")
    ap.add_argument("--table", type=Path, help="accuracy table of another dataset (default: shared CIFAR-10)")
    ap.add_argument("--images", type=Path, help="images and labels of that dataset (NPZ)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=32)
    args = ap.parse_args()
    cifar10 = (args.table, args.images, args.classes, args.image_size) == (None, None, 10, 32)
    if not cifar10 and (args.table is None or args.images is None):
        ap.error("another dataset needs --table and --images together (with its --classes and --image-size); "
                 "without them the run is on CIFAR-10 at 10 classes, 32 px")
    if args.cost_n < 1:
        ap.error(f"--cost-n must be at least 1 (cells in the cost table), got {args.cost_n}")
    return args


def load_benchmark(args) -> SimpleNamespace:
    """The dataset's table and images, the space, the reported and development cells and their classes."""
    table_path = args.table or shared_data("nb201/nb201_cifar10.csv")
    images = args.images or shared_data("images/cifar10_test_846.npz")
    if table_path is None or images is None:
        raise SystemExit("needs ../shared/data/nb201/nb201_cifar10.csv and images/cifar10_test_846.npz")
    suffix = f"_{Path(table_path).stem}" if args.table else ""
    space = get_space("nb201", classes=args.classes, resolution=args.image_size)
    codes = official_codes(table_path, space)
    with open(table_path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    canon = space.canonical_codes(codes)
    report, dev = split_cells(canon, args.n, args.dev, args.seed)
    rep_u, dev_u = (np.unique(canon[c], axis=0) for c in (report, dev))
    print(f"{len(report)} + {len(dev)} cells, {len(rep_u)} + {len(dev_u)} isomorphism classes", flush=True)
    return SimpleNamespace(
        space=space, codes=codes, canon=canon, report=report, dev=dev, rep_u=rep_u, dev_u=dev_u,
        test_acc=np.array([float(r["test_acc"]) for r in rows]), val_acc=np.array([float(r["val_acc"]) for r in rows]),
        data=load_data(str(images), (3, args.image_size, args.image_size), args.classes), images=images,
        dataset=Path(table_path).stem if args.table else "CIFAR-10", suffix=suffix,
        cache_path=RESULTS / f"proxies_nb201{suffix}_cache.csv",
        # the costly proxies run on the reported classes only, in a random order: if the run is stopped
        # early, the cells they cover are a random subset (the table says how many)
        shuffled=rep_u[np.random.default_rng(args.seed + 2).permutation(len(rep_u))])


def compute_cache(args, b: SimpleNamespace) -> tuple[dict, dict, float]:
    """Fill the cache phase by phase (cheap proxies on every class, then the costly ones on the reported
    classes); the cached values, their seconds and this run's computing time."""
    net_names = list_proxies("network")
    cheap = [n for n in CHEAP if n in net_names]
    rest = [n for n in net_names if n not in cheap and n != "grasp"]
    last = [n for n in net_names if n == "grasp"]
    phases = [(b.dev_u, cheap), (b.rep_u, cheap), (b.shuffled, rest), (b.shuffled, last)]
    if args.reverse:
        phases = [(reps[::-1], names) for reps, names in phases]
    if args.no_compute:
        phases = phases[:2]                 # the cheap proxies must be complete; the costly ones as they are
    t0 = time.perf_counter()
    cache, per_proxy = fill_cache(b.space, [p for p in phases if p[1]], b.data, args.seed, args.batch_size,
                                  b.cache_path)
    return cache, per_proxy, time.perf_counter() - t0


def proxy_values(b: SimpleNamespace, cache: dict) -> dict[str, np.ndarray]:
    """Every proxy and the default score on the reported cells, then the development cells."""
    cells = np.concatenate([b.report, b.dev])
    values = compute_proxies(b.space, b.codes[cells], list_proxies("topology"))
    for n in list_proxies("network"):
        values[n] = np.array([cache.get((b.space.format(r), n), np.nan) for r in b.canon[cells]])
    nr = len(b.report)
    values["score"] = np.zeros(len(cells))
    for part in (slice(0, nr), slice(nr, len(cells))):
        values["score"][part] = rank_aggregate({n: values[n][part] for n in DEFAULT_PROXIES})
    return values


def main():
    args = parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()                 # as the command line does (zeroshot.allocator)
    b = load_benchmark(args)
    cache, per_proxy, wall = compute_cache(args, b)
    if args.compute_only:
        return
    values = proxy_values(b, cache)
    lines = [*header_lines(args, b), *proxy_table(b, values), *candidates_section(b, values),
             *few_shot_section(args, b, values), *cost_section(args, b, per_proxy, wall)]
    out = RESULTS / f"proxies_nb201{b.suffix}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def header_lines(args, b: SimpleNamespace) -> list[str]:
    dataset_args = (f"--table {args.table} --images {args.images} --classes {args.classes} --image-size "
                    f"{args.image_size} " if args.table else "")
    return [
        f"# Zero-shot proxies on NAS-Bench-201 {b.dataset}",
        "",
        f"`python benchmarks/proxies_nb201.py --n {args.n} --dev {args.dev} --seed {args.seed} {dataset_args}"
        f"--batch-size {args.batch_size} --cost-n {args.cost_n} --cost-mbv2 {args.cost_mbv2} --few-shot {args.few_shot}` on "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one thread, "
        f"{os.cpu_count()} cores shared with other jobs.",
        "",
        f"Reported set: {len(b.report)} random cells (`default_rng({args.seed})`) vs **test** accuracy (200 epochs). "
        f"Development set: {len(b.dev)} other cells (`default_rng({args.seed + 1})`, none isomorphic to a reported "
        "cell) vs **validation** accuracy; the default score's components were chosen on principles and on "
        "the development set only, never on the reported set.  Network proxies: the first "
        f"{args.batch_size} of the {len(b.data)} images of `{Path(b.images).name}`, seed {args.seed}, computed once per "
        f"isomorphism class ({len(b.rep_u)} + {len(b.dev_u)} classes).",
        "",
        f"Default `score` = sum of log-ranks of {', '.join(DEFAULT_PROXIES)} (zeroshot/scoring.py).",
        "",
    ]


def proxy_table(b: SimpleNamespace, values: dict) -> list[str]:
    """Spearman and Kendall of every proxy on the reported cells (test), Spearman on the development
    cells (validation)."""
    nr, nd = len(b.report), len(b.dev)
    rep_corr = correlations({k: v[:nr] for k, v in values.items()}, b.test_acc[b.report])
    dev_corr = correlations({k: v[nr:] for k, v in values.items()}, b.val_acc[b.dev])
    lines = ["| proxy | kind | needs | Spearman (reported, test) | Kendall (reported, test) | cells | "
             "Spearman (dev, val) |",
             "|---|---|---|---|---|---|---|"]
    for n in sorted(rep_corr, key=lambda n: -np.nan_to_num(rep_corr[n][0], nan=-2)):
        rho, tau, used = rep_corr[n]
        kind, needs = ("aggregate", "-") if n == "score" else (get_proxy(n).kind, get_proxy(n).needs)
        name = f"**{n}**" if n in ("score", "params", "macs") else n
        dev_rho = "-" if dev_corr[n][2] < 0.9 * nd else f"{dev_corr[n][0]:.3f}"
        lines.append(f"| {name} | {kind} | {needs} | {rho:.3f} | {tau:.3f} | {used} | {dev_rho} |")
    return lines + [
        "",
        "Cells: how many of the reported cells the proxy was computed on (the costly proxies ran on a "
        "random subset of the reported isomorphism classes in the time this run had; each figure is over "
        "that proxy's cells).  Non-finite values (a network with no input->output path) are kept at the "
        "worst end of their proxy's order.",
        "",
    ]


def candidates_section(b: SimpleNamespace, values: dict) -> list[str]:
    """The candidate combinations the default was chosen from (chosen on the dev column only)."""
    nr = len(b.report)
    rows = []
    for combo in CANDIDATES:
        if all(n in values for n in combo):
            r = spearmanr(rank_aggregate({n: values[n][:nr] for n in combo}), b.test_acc[b.report])[0]
            d = spearmanr(rank_aggregate({n: values[n][nr:] for n in combo}), b.val_acc[b.dev])[0]
            rows.append(f"| {' + '.join(combo)} | {d:.3f} | {r:.3f} |")
    return [
        "## How the default was chosen",
        "",
        "Sum of log-ranks of each pre-listed candidate set (`zeroshot.scoring.CANDIDATES`); the default is "
        "chosen on development data only: this development column together with NAS-Bench-Macro's development "
        "networks (benchmarks/score_protocol.py).  The reported column is shown for transparency only.",
        "",
        "| candidate | Spearman (dev, val) | Spearman (reported, test) |",
        "|---|---|---|",
        *rows,
        "",
    ]


def few_shot_section(args, b: SimpleNamespace, values: dict) -> list[str]:
    """Ridge on the proxies complete on every cell, fitted on the first k development cells (val_acc)."""
    nr = len(b.report)
    complete = [n for n in list_proxies("network") + list_proxies("topology") if not np.isnan(values[n]).any()]
    feats = rank_features(values, complete)
    base = spearmanr(values["score"][:nr], b.test_acc[b.report])[0]
    rows = []
    for k in (args.few_shot, 4 * args.few_shot):
        pred = few_shot(feats[nr:nr + k], b.val_acc[b.dev[:k]], feats[:nr])
        r, t = spearmanr(pred, b.test_acc[b.report])[0], kendalltau(pred, b.test_acc[b.report])[0]
        rows.append(f"| {k} | {r:.3f} | {t:.3f} | {r - base:+.3f} |")
    return [
        "## Few-shot calibration",
        "",
        "Ridge regression (scikit-learn `RidgeCV` on standardised log-rank features of the "
        f"{len(complete)} proxies complete on every cell) fitted on the first k development cells with their "
        f"validation accuracy, evaluated on the reported set (unsupervised score: Spearman {base:.3f}):",
        "",
        "| trained archs k | Spearman | Kendall | gain over the score |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def cost_section(args, b: SimpleNamespace, per_proxy: dict, wall: float) -> list[str]:
    """Cost of the suite in forward+backward passes of the same network on the same batch (suite_cost:
    the two timed alternately, medians of 3), NB201 at batch 64, 16 and 128, and a few MobileNetV2 nets."""
    net_names = list_proxies("network")
    cheap = [n for n in CHEAP if n in net_names]
    default_net = [n for n in DEFAULT_PROXIES if get_proxy(n).kind == "network"]
    variants = {"all": net_names, "no grasp": [n for n in net_names if n != "grasp"], "default": default_net}
    rows = []
    for label, archs, xb, yb in cost_sets(b.space, b.shuffled[: args.cost_n], b.data, args):
        got = {k: [suite_cost(a, names, xb, yb, args.seed) for a in archs] for k, names in variants.items()}
        rows.append(f"| {label} | " + " | ".join(
            f"{np.median([c['multiple'] for c in v]):.2f} ({min(c['multiple'] for c in v):.2f}-"
            f"{max(c['multiple'] for c in v):.2f})" for v in got.values())
            + f" | {np.median([c['seconds'] for c in got['all']]):.2f} | "
            f"{np.median([c['fwd_bwd_seconds'] for c in got['all']]):.3f} |")
        print(rows[-1], flush=True)
    per_arch = np.array([sum(per_proxy[b.space.format(c), n] for n in cheap) for c in b.rep_u])
    return [
        "## Cost",
        "",
        "Cost of one call of `compute_network_proxies` as a multiple of one forward+backward pass (cross-"
        "entropy, train mode) of the same network on the same batch (`zeroshot.proxies.network.suite_cost`: "
        "the two timed alternately in one process, one thread, medians of 3, freed memory kept for reuse as the "
        "command line does: `zeroshot.allocator`; median over architectures, "
        f"range in brackets).  all: the {len(net_names)} network proxies; no grasp: {len(variants['no grasp'])}; "
        f"default: the network proxies of the default score ({', '.join(default_net)}).",
        "",
        f"| networks | all {len(net_names)} | no grasp | default | seconds (all) | forward+backward s |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"The {len(cheap)} cheap proxies ({', '.join(cheap)}) in one shared call, as timed when the cache's values "
        f"were computed (by the code of that day, on a loaded machine; the table above is this run's "
        f"measurement): mean {per_arch.mean():.2f} s per architecture (median {np.median(per_arch):.2f} s) "
        f"over {len(per_arch)} classes at batch {args.batch_size}; this run "
        f"computed missing values for {wall:.0f} s.  Topology proxies: microseconds per architecture "
        "(benchmarks/results/proxies_topology.md).",
    ]


if __name__ == "__main__":
    main()
