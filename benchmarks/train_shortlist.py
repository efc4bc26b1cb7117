"""End to end and real: screen NB201 -> shortlist 5 -> train each briefly on real images -> proxy rank vs
trained rank.

Usage: python benchmarks/train_shortlist.py [--n 1000] [--survivors 40] [--top 5] [--epochs 4] [--seed 0]
Writes benchmarks/results/train_shortlist.md.  Needs ../shared/data (images/cifar10_test_846.npz; the
NB201 table, when present, adds each cell's published 200-epoch CIFAR-10 accuracy for reference).

The screen is the funnel's (zeroshot/funnel.py, its default cheap proxy and default score) on ``--n``
sampled cells, network proxies on the first 64 of the 846 real CIFAR-10 test images.  Each shortlisted cell is trained with zeroshot/train.py on the same 846
images (the published NB201 skeleton, C=16, N=5): SGD, cosine, crop + flip, a seeded 25% validation split,
``--epochs`` epochs, seed 0, CPU with one torch thread.  So small a budget ranks networks by how fast they
learn, not by their final accuracy: it is a check that the pieces work together on real data, not an
accuracy claim.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from zeroshot.spaces import get_space
from zeroshot.spaces.shared_data import shared_data
from zeroshot.training_sets import load_dataset
from zeroshot.funnel import ScreenConfig, run_screen
from zeroshot.scoring import DEFAULT_PROXIES
from zeroshot.train import TrainConfig, train

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--survivors", type=int, default=40)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    images = shared_data("images/cifar10_test_846.npz")
    if images is None:
        print("skipped: ../shared/data/images/cifar10_test_846.npz is absent (set ZEROSHOT_SHARED_DATA)",
              file=sys.stderr)
        return 0
    torch.set_num_threads(1)
    published = {}
    table = shared_data("nb201/nb201_cifar10.csv")
    if table is not None:
        with open(table, newline="") as f:
            published = {r["arch_str"]: float(r["test_acc"]) for r in csv.DictReader(f)}

    t0 = time.perf_counter()
    cfg = ScreenConfig(space="nb201", n=args.n, survivors=args.survivors, top=args.top, seed=args.seed,
                       data=str(images), batch_size=64)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_screen(cfg, os.path.join(tmp, "screen.db"), quiet=True)
    screen_s = time.perf_counter() - t0
    shortlist = summary["rows"][: args.top]

    space = get_space("nb201")
    data = load_dataset(str(images), (3, 32, 32), 10)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=64, val_fraction=0.25, seed=args.seed)
    rows = []
    for rank, r in enumerate(shortlist, 1):
        t = time.perf_counter()
        res = train(space.to_ir(r["arch"]), data, tcfg, quiet=True)
        rows.append(dict(arch=r["arch"], score=r["score"], proxy_rank=rank, val=res.val_accuracy,
                         loss=res.history[-1]["train_loss"], seconds=time.perf_counter() - t,
                         published=published.get(r["arch"])))
        print(f"{rank}: {r['arch']} score {r['score']:.3f} -> val {res.val_accuracy:.2f} "
              f"({rows[-1]['seconds']:.0f}s)", flush=True)
    order = np.argsort([-r["val"] for r in rows], kind="stable")
    for pos, i in enumerate(order, 1):
        rows[i]["trained_rank"] = pos
    write_report(args, rows, summary, screen_s, cfg.cheap, time.perf_counter() - t0)
    return 0


def write_report(args, rows, summary, screen_s, cheap, total_s) -> None:
    score = [r["score"] for r in rows]
    val = [r["val"] for r in rows]
    rho = spearmanr(score, val).statistic
    tau = kendalltau(score, val).statistic
    lines = [
        "# Screen -> shortlist -> real training (NB201, CIFAR-10 images)",
        "",
        f"`python benchmarks/train_shortlist.py --n {args.n} --survivors {args.survivors} --top {args.top} "
        f"--epochs {args.epochs} --seed {args.seed}` on {platform.machine()}, {os.cpu_count()} cores, torch "
        "threads 1.",
        "",
        "Screen: " + ", ".join(f"{k} {v:,}" for k, v in summary["counts"].items()) + f" in {screen_s:.0f}s "
        f"(funnel defaults otherwise: cheap proxy {cheap}, then the default score {'+'.join(DEFAULT_PROXIES)} "
        f"on 64 real CIFAR-10 test images). Whole benchmark {total_s / 60:.1f} min (load average at the end "
        f"{os.getloadavg()[0]:.1f}: the machine was shared). Training: each shortlisted cell on the 846 real CIFAR-10 test images "
        f"(634 train / 212 validation, seeded), {args.epochs} epochs of SGD + cosine + crop/flip, seed "
        f"{args.seed}, CPU. A budget this small ranks networks by how fast they learn; the published column is "
        "NB201's 200-epoch CIFAR-10 test accuracy of the same cell, for reference only.",
        "",
        "| proxy rank | trained rank | score | val acc % (trained here) | last train loss | published acc % | s | arch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pub = f"{r['published']:.2f}" if r["published"] is not None else "-"
        lines.append(f"| {r['proxy_rank']} | {r['trained_rank']} | {r['score']:.3f} | {r['val']:.2f} | "
                     f"{r['loss']:.3f} | {pub} | {r['seconds']:.0f} | `{r['arch']}` |")
    lines += ["", f"Rank agreement of the score with the trained validation accuracy over the {len(rows)} "
              f"shortlisted cells: Spearman {rho:.2f}, Kendall {tau:.2f} (a handful of points: "
              "indicative only)."]
    if all(r["published"] is not None for r in rows):
        pub = [r["published"] for r in rows]
        lines.append(f"Against the published accuracies: score Spearman {spearmanr(score, pub).statistic:.2f}, "
                     f"short training Spearman {spearmanr(val, pub).statistic:.2f}.")
    lines.append("")
    (RESULTS / "train_shortlist.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
