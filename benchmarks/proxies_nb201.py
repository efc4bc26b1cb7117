"""Rank correlation of every proxy and of the default ``score`` with trained accuracy on NB201 CIFAR-10.

Usage: python benchmarks/proxies_nb201.py [--n 1000] [--dev 300] [--seed 0] [--batch-size 64] [--cost-n 20]
Writes benchmarks/results/proxies_nb201.md.  Needs ../shared/data (nb201/nb201_cifar10.csv and
images/cifar10_test_846.npz).

Cells: the reported set is ``--n`` cells drawn with ``numpy.random.default_rng(seed)`` from the 15,625
(official index order), scored against ``test_acc``.  The development set is ``--dev`` other cells
(``default_rng(seed + 1)`` over the rest), scored against ``val_acc``: the only data the default score's
choices were looked at on.  Network proxies run once per isomorphism class (the class representative,
:meth:`spaces.SearchSpace.canonical_codes`) on the first ``--batch-size`` real images with
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

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from spaces import get_space
from spaces.builder import build
from spaces.nb201 import official_codes
from spaces.shared_data import shared_data
from zeroshot.data import load_data
from zeroshot.proxies import get_proxy, list_proxies
from zeroshot.proxies.network import compute_network_proxies
from zeroshot.score import DEFAULT_PROXIES, compute_proxies, rank_aggregate

RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "proxies_nb201_cache.csv"


def load_cache(names):
    cache = {}
    if CACHE.exists():
        with open(CACHE, newline="") as f:
            for row in csv.DictReader(f):
                if all(n in row for n in names):
                    cache[row["arch"]] = row
    return cache


def fill_cache(space, reps, names, data, seed, batch_size):
    """Compute the network proxies of every representative not yet cached (one row appended each)."""
    cache = load_cache(names)
    todo = [r for r in reps if space.format(r) not in cache]
    header = ["arch", "seconds"] + names
    new = not CACHE.exists() or not cache
    with open(CACHE, "w" if new else "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(header)
        for i, codes in enumerate(todo):
            arch = space.build_ir(codes)
            t = time.perf_counter()
            got = compute_network_proxies(arch, names, data.x, data.y, seed=seed, batch_size=batch_size)
            sec = time.perf_counter() - t
            row = [space.format(codes), repr(sec)] + [repr(float(got[n])) for n in names]
            w.writerow(row)
            f.flush()
            cache[row[0]] = dict(zip(header, row))
            if i % 25 == 0:
                print(f"{i}/{len(todo)} computed ({sec:.2f} s last)", flush=True)
    return cache


def fwd_bwd_seconds(arch, x, y, repeat=3):
    """Median seconds of one forward + backward pass (train mode, cross-entropy) on batch ``x``."""
    net = build(arch)
    times = []
    for _ in range(repeat):
        net.zero_grad(set_to_none=True)
        t = time.perf_counter()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def correlations(values, acc):
    out = {}
    for name, v in values.items():
        v = np.where(np.isfinite(v), v, np.nan)
        ok = ~np.isnan(v)
        rho = spearmanr(v[ok], acc[ok])[0]
        tau = kendalltau(v[ok], acc[ok])[0]
        out[name] = (rho, tau, int((~ok).sum()))
    return out


def few_shot(features_train, acc_train, features_test):
    """Few-shot calibration: ridge regression on the rank-transformed proxies of a few trained archs."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
    model.fit(features_train, acc_train)
    return model.predict(features_test)


def rank_features(values, names, idx_sets):
    """``log(rank / N)`` of each proxy over the union of the given index sets (NaN/inf worst)."""
    from scipy.stats import rankdata

    cols = []
    for n in names:
        v = values[n]
        v = v if get_proxy(n).higher_is_better else -v
        v = np.where(np.isnan(v), -np.inf, v)
        cols.append(np.log(rankdata(v) / len(v)))
    return np.stack(cols, axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dev", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cost-n", type=int, default=20)
    ap.add_argument("--few-shot", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    table_path = shared_data("nb201/nb201_cifar10.csv")
    images = shared_data("images/cifar10_test_846.npz")
    if table_path is None or images is None:
        raise SystemExit("needs ../shared/data/nb201/nb201_cifar10.csv and images/cifar10_test_846.npz")
    space = get_space("nb201")
    codes = official_codes(table_path, space)
    with open(table_path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    test_acc = np.array([float(r["test_acc"]) for r in rows])
    val_acc = np.array([float(r["val_acc"]) for r in rows])
    report = np.random.default_rng(args.seed).choice(len(codes), args.n, replace=False)
    rest = np.setdiff1d(np.arange(len(codes)), report)
    dev = np.random.default_rng(args.seed + 1).choice(rest, args.dev, replace=False)
    cells = np.concatenate([report, dev])
    data = load_data(str(images), (3, 32, 32), 10)

    net_names = list_proxies("network")
    topo_names = list_proxies("topology")
    reps = space.canonical_codes(codes[cells])
    unique = np.unique(reps, axis=0)
    print(f"{len(cells)} cells, {len(unique)} isomorphism classes; network proxies: {', '.join(net_names)}",
          flush=True)
    t0 = time.perf_counter()
    cache = fill_cache(space, unique, net_names, data, args.seed, args.batch_size)
    wall = time.perf_counter() - t0
    values = compute_proxies(space, codes[cells], topo_names)
    for n in net_names:
        values[n] = np.array([float(cache[space.format(r)][n]) for r in reps])
    seconds = np.array([float(cache[space.format(r)]["seconds"]) for r in unique])
    values["score"] = np.zeros(len(cells))
    nr, nd = len(report), len(dev)
    for part in (slice(0, nr), slice(nr, nr + nd)):
        values["score"][part] = rank_aggregate({n: values[n][part] for n in DEFAULT_PROXIES})

    rep_corr = correlations({k: v[:nr] for k, v in values.items()}, test_acc[report])
    dev_corr = correlations({k: v[nr:] for k, v in values.items()}, val_acc[dev])

    # few-shot calibration: the first --few-shot dev cells with their val_acc train a ridge model
    feats = rank_features(values, net_names + topo_names, None)
    k = args.few_shot
    train = np.arange(nr, nr + k)
    pred = few_shot(feats[train], val_acc[dev[:k]], feats[:nr])
    fs_rho, fs_tau = spearmanr(pred, test_acc[report])[0], kendalltau(pred, test_acc[report])[0]

    # cost of the suite in forward+backward passes of the same network on the same batch
    x = torch.from_numpy(data.x[: args.batch_size])
    y = torch.from_numpy(data.y[: args.batch_size])
    ratios, suite_s, pass_s = [], [], []
    for codes_i in unique[: args.cost_n]:
        arch = space.build_ir(codes_i)
        fb = fwd_bwd_seconds(arch, x, y)
        t = time.perf_counter()
        compute_network_proxies(arch, net_names, data.x, data.y, seed=args.seed, batch_size=args.batch_size)
        s = time.perf_counter() - t
        ratios.append(s / fb)
        suite_s.append(s)
        pass_s.append(fb)

    lines = [
        "# Zero-shot proxies on NAS-Bench-201 CIFAR-10",
        "",
        f"`python benchmarks/proxies_nb201.py --n {args.n} --dev {args.dev} --seed {args.seed} "
        f"--batch-size {args.batch_size} --cost-n {args.cost_n} --few-shot {args.few_shot}` on "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one thread, "
        f"{os.cpu_count()} cores shared with other jobs.",
        "",
        f"Reported set: {nr} random cells (`default_rng({args.seed})`) vs **test** accuracy (200 epochs). "
        f"Development set: {nd} other cells (`default_rng({args.seed + 1})`) vs **validation** accuracy; the "
        "default score's components were chosen on principles and on the development set only, never on "
        f"the reported set.  Network proxies: the first {args.batch_size} of the 846 real CIFAR-10 test "
        f"images, seed {args.seed}, computed once per isomorphism class ({len(unique)} classes for "
        f"{len(cells)} cells).",
        "",
        f"Default `score` = sum of log-ranks of {', '.join(DEFAULT_PROXIES)} (zeroshot/score.py).",
        "",
        "| proxy | kind | needs | Spearman (reported, test) | Kendall (reported, test) | Spearman (dev, val) | undefined |",
        "|---|---|---|---|---|---|---|",
    ]
    order = sorted(rep_corr, key=lambda n: -np.nan_to_num(rep_corr[n][0], nan=-2))
    for n in order:
        rho, tau, bad = rep_corr[n]
        kind, needs = ("aggregate", "-") if n == "score" else (get_proxy(n).kind, get_proxy(n).needs)
        name = f"**{n}**" if n in ("score", "params", "macs") else n
        lines.append(f"| {name} | {kind} | {needs} | {rho:.3f} | {tau:.3f} | {dev_corr[n][0]:.3f} | {bad} |")
    base = rep_corr["score"][0]
    lines += [
        "",
        "Undefined: values that are NaN or infinite (dropped from that proxy's correlation only; the score "
        "ranks them last).",
        "",
        "## Few-shot calibration",
        "",
        f"Ridge regression (scikit-learn `RidgeCV` on standardised log-rank features of all "
        f"{len(net_names) + len(topo_names)} proxies) fitted on {k} development cells with their validation "
        f"accuracy, evaluated on the reported set: Spearman {fs_rho:.3f}, Kendall {fs_tau:.3f} "
        f"(unsupervised score: {base:.3f}; gain {fs_rho - base:+.3f}).",
        "",
        "## Cost",
        "",
        f"All {len(net_names)} network proxies with shared passes: mean {seconds.mean():.2f} s per "
        f"architecture (median {np.median(seconds):.2f} s) over {len(unique)} classes at batch "
        f"{args.batch_size}; this run computed the missing ones in {wall:.0f} s.  On {len(ratios)} "
        f"architectures timed side by side, the suite costs median {np.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}) one forward+backward pass of the same network on the "
        f"same batch (pass: median {np.median(pass_s) * 1e3:.0f} ms; suite: {np.median(suite_s):.2f} s).  "
        "Topology proxies: microseconds per architecture (benchmarks/results/proxies_topology.md).",
    ]
    out = RESULTS / "proxies_nb201.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
