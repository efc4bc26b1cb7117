"""Our network proxies against NASLib's on the same NAS-Bench-201 cells, and the cost of the suite.

For a fixed random subset of the 724 cells of ``../shared/data/nb201/naslib_proxies_cifar10.csv``
(NASLib's zero-cost scores, CIFAR-10, batch 64), computes every network proxy with the shared-pass
engine on the first 64 images of ``images/cifar10_test_846.npz`` (normalised with the CIFAR-10 mean /
std, their labels), then reports per overlapping proxy the Spearman rho of our score against NASLib's,
and both against the cells' validation accuracy; plus the suite's seconds per cell and its cost as a
multiple of one forward + backward pass of the same network on the same batch (measured alternately on
every cell, one thread).

Usage: ``python benchmarks/proxies_naslib.py [--n 200] [--seed 0]`` (about 3 s per cell on one core, with the
exact grasp on the whole batch and on grasp's 16 images)
-> ``benchmarks/results/proxies_naslib.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads: threaded BLAS stalls under load
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zeroshot.spaces import get_space  # noqa: E402
from zeroshot.spaces.shared_data import shared_data  # noqa: E402
from zeroshot.allocator import keep_freed_memory  # noqa: E402
from zeroshot.proxies import get_proxy  # noqa: E402
from zeroshot.proxies.network import NETWORK_PROXIES, NONFINITE, compute_network_proxies, fwd_bwd_seconds  # noqa: E402
from zeroshot.proxies.grasp import GRASP_BATCH, grasp_exact  # noqa: E402
from common import require_shared

# NASLib column -> our proxy
NASLIB_NAMES = {"fisher": "fisher", "grad_norm": "grad_norm", "grasp": "grasp", "jacov": "jacob_cov",
                "nwot": "naswot", "snip": "snip", "synflow": "synflow"}
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616])
OUT = Path(__file__).resolve().parent / "results"
NOTES = """## Differences from NASLib, deliberate or not

- Different random weights: NASLib's networks were initialised by its own code and seed; ours come from
  per-op canonical seeds. The agreement of a proxy with NASLib cannot exceed its own seed-to-seed
  agreement: see `proxies_seed_noise.md`. grasp's agreement with NASLib is of the order of its
  agreement between two of our own seeds, so its gap is initialisation noise, not a definition
  difference; the other six are stable across seeds and agree closely with NASLib.
- Live ops only: activations and weights of ops no output depends on (dead NB201 edges, ops fed only by
  'none') are not observed, so isomorphic cells get equal scores; NASLib hooks every ReLU module,
  including dead ones (naswot's K differs by a constant block for such cells).
- naswot uses every live activation's input codes at batch 64 (NASLib: the same batch 64); singular
  kernels are -inf (worst) instead of a large negative log-determinant.
- synflow is reported as a log (NASLib's column is a log too); fisher, snip, grad_norm and jacob_cov
  follow NASLib's formulas exactly (see `tests/test_proxies_network.py`); grasp's formula too, but on
  the first 16 images of the batch and with a finite difference of gradients for its Hessian-gradient
  product (section above).
"""


def load_batch(n: int = 64):
    d = np.load(shared_data("images/cifar10_test_846.npz"))
    x = ((d["x"][:n] / 255.0 - CIFAR_MEAN) / CIFAR_STD).transpose(0, 3, 1, 2).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(d["y"][:n].astype(np.int64))


def subset(path, n: int, seed: int) -> list[dict]:
    """The CSV rows of a fixed random subset of ``n`` cells (all when ``n`` is 0 or too large)."""
    rows = list(csv.DictReader(open(path, newline="")))
    if 0 < n < len(rows):
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
        rows = [rows[i] for i in pick]
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="cells (random subset of the 724; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    path, _ = require_shared("nb201/naslib_proxies_cifar10.csv", "images/cifar10_test_846.npz")
    torch.set_num_threads(1)
    keep_freed_memory()                 # as the command line does (zeroshot.allocator)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = subset(path, args.n, args.seed)
    x, y = load_batch(args.batch)
    space = get_space("nb201")
    ours, secs, units, lite, exact = [], [], [], [], []
    no_grasp = [n for n in NETWORK_PROXIES if n != "grasp"]
    for k, r in enumerate(rows):
        arch = space.to_ir(r["arch_str"])
        units.append(fwd_bwd_seconds(arch, x, y, args.seed, repeats=1))
        t = time.perf_counter()
        ours.append(compute_network_proxies(arch, NETWORK_PROXIES, x, y, seed=args.seed))
        secs.append(time.perf_counter() - t)
        # the reference's double backward: on the whole batch (the reference's definition; timed) and on
        # the first GRASP_BATCH images that our grasp reads (the check of its finite difference)
        t = time.perf_counter()
        whole = grasp_exact(arch, x, y, args.seed)
        exact.append((whole, time.perf_counter() - t,
                      grasp_exact(arch, x[:GRASP_BATCH], y[:GRASP_BATCH], args.seed)))
        if k % 4 == 0:                          # the suite without grasp
            t = time.perf_counter()
            compute_network_proxies(arch, no_grasp, x, y, seed=args.seed)
            lite.append(((time.perf_counter() - t), units[-1]))
        if (k + 1) % 25 == 0 or k + 1 == len(rows):
            report(rows[:k + 1], ours, secs, units, lite, exact, args)
            print(f"{k + 1}/{len(rows)} cells, {np.mean(secs):.2f} s per cell", file=sys.stderr, flush=True)


def rho(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok])[0]) if ok.sum() > 2 else float("nan")


def report(rows, ours, secs, units, lite, exact, args) -> None:
    acc = [float(r["val_acc"]) for r in rows]
    lines = agreement_section(rows, ours, acc, args) + cost_section(secs, units, lite) + \
        grasp_section(rows, ours, units, exact, acc, args) + [NOTES]
    (OUT / "proxies_naslib.md").write_text("\n".join(lines) + "\n")
    (OUT / "proxies_naslib.json").write_text(json.dumps(
        {"cells": [r["arch_str"] for r in rows], "values": ours, "seconds": secs, "fwd_bwd_seconds": units,
         "no_grasp_seconds_and_unit": lite, "grasp_exact_and_seconds": exact},
        allow_nan=True))


def agreement_section(rows, ours, acc, args) -> list[str]:
    """Our proxies against NASLib's values of the same cells, and every network proxy against val_acc."""
    table = []
    for theirs, mine in NASLIB_NAMES.items():
        a = [o[mine] for o in ours]
        b = [float(r[theirs]) for r in rows]
        table.append((mine, theirs, rho(a, b), rho(a, acc), rho(b, acc), int(np.isfinite(a).sum())))
    others = [(n, rho([o[n] for o in ours], acc), float(kendalltau([o[n] for o in ours], acc)[0]))
              for n in NETWORK_PROXIES]
    lines = [
        "# Network proxies vs NASLib's (NB201, CIFAR-10)",
        "",
        f"`python benchmarks/proxies_naslib.py --n {args.n} --seed {args.seed}`: {len(rows)} cells (random subset "
        f"of the 724 in `nb201/naslib_proxies_cifar10.csv`, seed {args.seed}), batch {args.batch} of real CIFAR-10 "
        f"test images (first {args.batch} of `cifar10_test_846.npz`, CIFAR mean/std), their labels, seed "
        f"{args.seed}, one thread. val_acc: the CSV's (cifar10-valid, 200 epochs).",
        "",
        "| ours | NASLib | rho(ours, NASLib) | rho(ours, val_acc) | rho(NASLib, val_acc) | finite |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {t} | {a:.3f} | {b:.3f} | {c:.3f} | {n}/{len(rows)} |" for m, t, a, b, c, n in table]
    lines += ["", "All network proxies on the same cells (signed, ntk is lower-is-better so its rho is expected "
              "negative):", "", "| proxy | direction | Spearman vs val_acc | Kendall vs val_acc |", "|---|---|---|---|"]
    return lines + [f"| {n} | {'higher' if get_proxy(n).higher_is_better else 'lower'} | {s:.3f} | {k:.3f} |"
                    for n, s, k in others]


def cost_section(secs, units, lite) -> list[str]:
    """The suite's seconds per cell against one forward + backward of the same network and batch."""
    ratio = np.asarray(secs) / np.asarray(units)
    return ["", "## Cost of the full suite (13 proxies, shared passes)", "",
            f"- seconds per cell: mean {np.mean(secs):.2f}, median {np.median(secs):.2f} (one thread on a "
            f"{os.cpu_count()}-core machine shared with other jobs; freed memory kept for reuse, "
            "`zeroshot.allocator`; ratios below are measured alternately per cell)",
            f"- one forward + backward (cross-entropy, same network, same batch): mean {np.mean(units):.2f} s",
            f"- suite / (forward + backward): median {np.median(ratio):.2f}, mean {np.mean(ratio):.2f}",
            f"- without grasp (12 proxies, every 4th cell): median {np.median([s / u for s, u in lite]):.2f} x "
            f"forward + backward, mean {np.mean([s for s, _ in lite]):.2f} s per cell",
            f"- non-finite values replaced by the worst value: {dict(NONFINITE) or 'none'}", ""]


def grasp_section(rows, ours, units, exact, acc, args) -> list[str]:
    """Our finite-difference grasp against the exact double backward, on 16 images and on the whole batch."""
    fd = np.array([o["grasp"] for o in ours])
    ex = np.array([e[2] for e in exact])
    whole = np.array([e[0] for e in exact])
    naslib_grasp = [float(r["grasp"]) for r in rows]
    nz = ex != 0
    rel = np.abs(fd[nz] - ex[nz]) / np.abs(ex[nz])
    ex_cost = np.array([e[1] for e in exact]) / np.asarray(units)
    return ["## grasp: 16 images and a finite difference vs the exact double backward", "",
            f"Our grasp reads the first {GRASP_BATCH} images of the batch and takes its Hessian product from a "
            "central difference of gradients (`zeroshot/proxies/grasp.py::_grasp_central`: a no-grad forward "
            f"and two forward+backward passes of the {GRASP_BATCH} images, at the weights scaled by 1 +- 1e-2); "
            "the reference's double backward (`grasp_exact`) on the same "
            f"network, on the same {GRASP_BATCH} images and on the whole batch of {args.batch} (the reference's "
            "definition):", "",
            f"- same {GRASP_BATCH} images: Spearman rho(finite difference, exact) {rho(fd, ex):.4f}, Kendall "
            f"{float(kendalltau(fd, ex)[0]):.4f}; relative difference |fd - exact| / |exact|: median "
            f"{np.median(rel):.3f}, 90th percentile {np.quantile(rel, 0.9):.3f} (cells with exact != 0)",
            f"- whole batch: rho(ours, exact on {args.batch}) {rho(fd, whole):.3f}; rho(exact on {args.batch}, "
            f"NASLib grasp) {rho(whole, naslib_grasp):.3f}; rho(exact on {args.batch}, val_acc) "
            f"{rho(whole, acc):.3f}",
            f"- the exact product on the whole batch alone (forward + double backward): median "
            f"{np.median(ex_cost):.2f} x forward + backward; ours about 0.6 (proxies_cost_breakdown.md)", ""]

if __name__ == "__main__":
    main()
