"""How many samples swap should read: 16, 32 or 64 (``zeroshot.proxies.passes.SWAP_SAMPLES``).

swap counts the distinct rows of the (units x samples) sign matrix of the activations' inputs, so it can
never exceed ``min(2^samples, units)``.  At 16 samples every MobileNetV2-like network sits at 2^16 and the
default score (meco + swap) is meco's ranking alone there.  For each sample count this measures:

* NB201 CIFAR-10, the **development** cells of benchmarks/proxies_nb201.py only (the same 600 cells,
  ``default_rng(seed + 1)``, validation accuracy, the first 64 of the 846 real images, seed 0; never the
  reported cells): Spearman / Kendall of swap alone and of the default aggregate meco + swap (meco from
  benchmarks/results/proxies_nb201_cache.csv, computed where absent), and the fraction of cells at the cap;
* mbv2: ``--mbv2`` networks sampled from the space (``seed``) at their own resolution and at the funnel's
  stage-4 ``proxy_scale`` (0.75) on the seeded synthetic batch stage 4 uses without ``--data``, with a batch
  of exactly ``samples`` images: the fraction at the cap, the distinct swap values, Kendall(swap, meco),
  and the CPU seconds of swap alone per network.

``SWAP_SAMPLES`` is set on the module (passes.py reads it at call time).  The swap tap keeps
``flat[:SWAP_SAMPLES]``: a batch of ``B < SWAP_SAMPLES`` images silently gives ``min(B, SWAP_SAMPLES)``
samples; this script refuses such a batch and checks, on every call, that swap packed exactly
``samples`` columns.

Usage: ``python benchmarks/proxies_swap_samples.py [--mbv2 40] [--seed 0]`` from the repo root (about
25 minutes on one loaded core, up to ~6 GB of memory for the mbv2 nets at 64 samples).  Writes
benchmarks/results/proxies_swap_samples.md.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import platform
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads: threaded BLAS stalls under load
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import zeroshot.proxies.passes as passes  # noqa: E402
from common import require_shared  # noqa: E402
from proxies_nb201 import RESULTS, correlations, load_cache, split_cells  # noqa: E402
from zeroshot.spaces import get_space  # noqa: E402
from zeroshot.spaces.ir import ACT  # noqa: E402
from zeroshot.spaces.nb201 import official_codes  # noqa: E402
from zeroshot.batches import load_data  # noqa: E402
from zeroshot.funnel import ScreenConfig, proxy_codes  # noqa: E402
from zeroshot.proxies.network import compute_network_proxies  # noqa: E402
from zeroshot.proxies.structure import live_ops  # noqa: E402
from zeroshot.scoring import input_batch, rank_aggregate  # noqa: E402

SAMPLES = (16, 32, 64)
WITHIN = 0.005          # decision rule: dev Spearman of meco + swap within this of the best
MAX_AT_CAP = 0.10       # decision rule: fewer than this fraction of mbv2 networks at the cap
STAGE4_SCALE = next(f.default for f in dataclasses.fields(ScreenConfig) if f.name == "proxy_scale")
RULE = (f"Fixed before the run: among {', '.join(map(str, SAMPLES))}, a sample count qualifies when its "
        f"development Spearman of meco + swap is within {WITHIN} of the best of the three and fewer than "
        f"{MAX_AT_CAP:.0%} of the mbv2 networks are at the cap `min(2^samples, units)` at both resolutions "
        f"(own and {STAGE4_SCALE}x); the choice is the smallest qualifying count, 16 when none qualifies.")


def units(arch) -> int:
    """Rows of swap's sign matrix: the per-sample size of every tensor a live activation reads."""
    live = live_ops(arch)
    read = {op.inputs[0] for i, op in enumerate(arch.ops) if live[i] and op.kind == ACT}
    return int(sum(np.prod(arch.tensor_shape(t)) for t in read))


@contextmanager
def swap_samples(k: int):
    """``passes.SWAP_SAMPLES = k`` inside, with a check that every sign matrix swap packs has ``k``
    sample columns (the tap truncates silently to the batch size)."""
    seen, pack = [], passes.pack_signs

    def checked(a):
        seen.append(a.shape[1])
        return pack(a)

    old = passes.SWAP_SAMPLES
    passes.SWAP_SAMPLES, passes.pack_signs = k, checked
    try:
        yield
    finally:
        passes.SWAP_SAMPLES, passes.pack_signs = old, pack
    if any(c != k for c in seen):
        raise RuntimeError(f"swap packed {sorted(set(seen))} sample columns, expected {k}")


def swap(arch, x, k: int, seed: int) -> tuple[float, float]:
    """swap of ``arch`` on ``x`` with ``k`` samples, and the CPU seconds of that call (swap alone)."""
    if x.shape[0] < k:
        raise SystemExit(f"swap with {k} samples needs a batch of at least {k} images, got {x.shape[0]}")
    with swap_samples(k):
        t = time.process_time()
        v = compute_network_proxies(arch, ["swap"], x, seed=seed)["swap"]
        return v, time.process_time() - t


def nb201_study(args) -> dict:
    table_path, images = require_shared("nb201/nb201_cifar10.csv", "images/cifar10_test_846.npz")
    space = get_space("nb201")
    codes = official_codes(table_path, space)
    with open(table_path, newline="") as f:
        val_acc = np.array([float(r["val_acc"]) for r in sorted(csv.DictReader(f), key=lambda r: int(r["index"]))])
    canon = space.canonical_codes(codes)
    _, dev = split_cells(canon, args.n, args.dev, args.seed)
    reps, inverse = np.unique(canon[dev], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    data = load_data(str(images), (3, 32, 32), 10)
    x = torch.as_tensor(data.x[:args.batch_size])
    cache, _ = load_cache()
    meco, sw, sec = np.empty(len(reps)), {k: np.empty(len(reps)) for k in SAMPLES}, {k: [] for k in SAMPLES}
    n_units = np.empty(len(reps))
    print(f"NB201: {len(dev)} dev cells, {len(reps)} classes", flush=True)
    for i, r in enumerate(reps):
        arch, a = space.build_ir(r), space.format(r)
        m = cache.get((a, "meco"))
        meco[i] = m if m is not None else compute_network_proxies(arch, ["meco"], x, seed=args.seed)["meco"]
        n_units[i] = units(arch)
        for k in SAMPLES:
            sw[k][i], s = swap(arch, x, k, args.seed)
            sec[k].append(s)
        if i % 50 == 0:
            print(f"  {i}/{len(reps)}", flush=True)
    cached16 = np.array([cache.get((space.format(r), "swap"), np.nan) for r in reps])
    rows = {}
    for k in SAMPLES:
        v = {"swap": sw[k][inverse], "meco": meco[inverse]}
        v["meco + swap"] = rank_aggregate({"meco": v["meco"], "swap": v["swap"]})
        v["units"] = n_units[inverse]
        corr = correlations(v, val_acc[dev])
        cap = np.minimum(2.0 ** k, n_units[inverse])
        rows[k] = {"swap": corr["swap"][:2], "agg": corr["meco + swap"][:2], "meco": corr["meco"][:2],
                   "at_2k": float((v["swap"] >= 2.0 ** k).mean()), "at_cap": float((v["swap"] >= cap).mean()),
                   "near_cap": float((v["swap"] >= 0.99 * cap).mean()), "units": corr["units"][:2],
                   "frac_units": float(np.median(v["swap"] / v["units"])),
                   "cpu": float(np.mean(sec[k])), "cells": len(dev)}
    ok = ~np.isnan(cached16)
    return {"rows": rows, "classes": len(reps), "cache_match": (int((cached16[ok] == sw[16][ok]).sum()), int(ok.sum())),
            "units": (int(n_units.min()), int(n_units.max()))}


def mbv2_study(args) -> dict:
    space = get_space("mbv2")
    codes = np.array([space.parse(a) for a in space.sample(args.mbv2, seed=args.seed)], dtype=np.int64)
    out = {}
    for scale in (1.0, STAGE4_SCALE):
        pc = proxy_codes(space, codes, scale)
        meco, n_units, sw, sec = [], [], {k: [] for k in SAMPLES}, {k: [] for k in SAMPLES}
        sides = []
        print(f"mbv2 at {scale}x", flush=True)
        for i, c in enumerate(pc):
            arch = space.build_ir(c)
            sides.append(arch.input_shape[1])
            x = torch.as_tensor(input_batch(arch, None, max(SAMPLES), args.seed).x)   # stage 4's synthetic batch
            meco.append(compute_network_proxies(arch, ["meco"], x[:2], seed=args.seed)["meco"])
            n_units.append(units(arch))
            for k in SAMPLES:
                v, s = swap(arch, x[:k], k, args.seed)
                sw[k].append(v)
                sec[k].append(s)
            print(f"  {i + 1}/{len(pc)} {arch.input_shape[1]} px: "
                  + " ".join(f"{k}:{sw[k][-1]:.0f} ({sec[k][-1]:.1f} s)" for k in SAMPLES), flush=True)
        meco, n_units = np.array(meco), np.array(n_units, dtype=np.float64)
        rows = {}
        for k in SAMPLES:
            v = np.array(sw[k])
            cap = np.minimum(2.0 ** k, n_units)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # constant swap: Kendall undefined (NaN)
                rows[k] = {"at_cap": float((v >= cap).mean()), "at_2k": float((v >= 2.0 ** k).mean()),
                           "near_cap": float((v >= 0.99 * cap).mean()),
                           "distinct": len(np.unique(v)), "frac_units": float(np.median(v / n_units)),
                           "tau_meco": kendalltau(v, meco)[0], "tau_units": kendalltau(v, n_units)[0],
                           "cpu": float(np.median(sec[k])), "cpu_mean": float(np.mean(sec[k]))}
        out[scale] = {"rows": rows, "sides": (min(sides), max(sides)), "units": (int(n_units.min()), int(n_units.max()))}
    return out


def choose(nb, mb) -> tuple[int, list[str]]:
    """The decision rule (:data:`RULE`) applied; the reasons, one line per sample count."""
    best = max(nb["rows"][k]["agg"][0] for k in SAMPLES)
    why, ok = [], []
    for k in SAMPLES:
        near = nb["rows"][k]["agg"][0] >= best - WITHIN
        worst = max(mb[s]["rows"][k]["at_cap"] for s in mb)
        fine = worst < MAX_AT_CAP
        if near and fine:
            ok.append(k)
        why.append(f"- {k}: dev Spearman {nb['rows'][k]['agg'][0]:.3f} ({'within' if near else 'not within'} "
                   f"{WITHIN} of the best, {best:.3f}); at most {worst:.0%} of mbv2 networks at the cap "
                   f"({'below' if fine else 'not below'} {MAX_AT_CAP:.0%}): {'qualifies' if near and fine else 'out'}")
    return (min(ok) if ok else 16), why


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="reported cells of proxies_nb201.py (excluded, never scored)")
    ap.add_argument("--dev", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64, help="NB201 batch (as proxies_nb201.py)")
    ap.add_argument("--mbv2", type=int, default=40)
    args = ap.parse_args(argv)
    if args.batch_size < max(SAMPLES):
        raise SystemExit(f"--batch-size must be at least {max(SAMPLES)} (the largest sample count), got {args.batch_size}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    nb = nb201_study(args)
    mb = mbv2_study(args)
    lines = report(args, nb, mb, time.perf_counter() - t0)
    out = RESULTS / "proxies_swap_samples.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(args, nb: dict, mb: dict, seconds: float) -> list[str]:
    """The results file: the rule, the NB201 and mbv2 tables, and the count the rule chooses."""
    choice, why = choose(nb, mb)
    lines = [
        "# How many samples swap reads (SWAP_SAMPLES)", "",
        f"`python benchmarks/proxies_swap_samples.py --n {args.n} --dev {args.dev} --seed {args.seed} --batch-size "
        f"{args.batch_size} --mbv2 {args.mbv2}` on {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, one thread, {os.cpu_count()} cores shared with other jobs "
        f"({seconds:.0f} s; load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}).",
        "",
        "swap = distinct rows of the (units x samples) sign matrix of the activations' inputs: at most "
        "`min(2^samples, units)`, *the cap*.  `SWAP_SAMPLES` was set on `zeroshot.proxies.passes` for each "
        "count; every call checked that swap packed exactly that many sample columns (the tap keeps "
        "`flat[:SWAP_SAMPLES]`, so a batch smaller than the count would silently give fewer samples; the "
        "funnel's stage 4 runs at `batch_size` 16, so a larger count needs a batch of at least that many).",
        "",
        "## Decision rule", "", RULE, "",
    ]
    return lines + nb201_section(args, nb) + mbv2_section(args, mb) + [
        "## Choice", "", *why, "", f"**SWAP_SAMPLES = {choice}** by the rule."]


def nb201_section(args, nb: dict) -> list[str]:
    """Swap and meco + swap at each sample count on the NB201 development cells."""
    r = nb["rows"]
    return [
        "## NB201 CIFAR-10, development cells (validation accuracy)", "",
        f"The {args.dev} development cells of benchmarks/proxies_nb201.py ({nb['classes']} isomorphism classes; "
        f"the reported cells are not scored here), the first {args.batch_size} real test images, seed "
        f"{args.seed}; the same batch for every count (swap reads its first `samples` images).  meco+swap: "
        "zeroshot.scoring.rank_aggregate.  Units per cell: "
        f"{nb['units'][0]:,} to {nb['units'][1]:,}.",
        "",
        "| samples | swap Spearman | swap Kendall | meco + swap Spearman | meco + swap Kendall | at 2^samples "
        "| at the cap | within 1% of the cap | swap / units | CPU s / cell (swap alone) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {k} | {r[k]['swap'][0]:.3f} | {r[k]['swap'][1]:.3f} | {r[k]['agg'][0]:.3f} | {r[k]['agg'][1]:.3f} | "
          f"{r[k]['at_2k']:.1%} | {r[k]['at_cap']:.1%} | {r[k]['near_cap']:.1%} | {r[k]['frac_units']:.4f} | "
          f"{r[k]['cpu']:.3f} |" for k in SAMPLES],
        "",
        f"meco alone: Spearman {r[16]['meco'][0]:.3f}, Kendall {r[16]['meco'][1]:.3f}; the number of units "
        f"alone (swap's ceiling once every unit has its own pattern): Spearman {r[16]['units'][0]:.3f}, Kendall "
        f"{r[16]['units'][1]:.3f}.  swap / units: median over cells.  Check: swap at 16 "
        f"samples equals the cached value of proxies_nb201.py on {nb['cache_match'][0]} of "
        f"{nb['cache_match'][1]} classes.",
        "",
    ]


def mbv2_section(args, mb: dict) -> list[str]:
    """Caps, saturation and cost of swap at each sample count on mbv2 networks at two resolutions."""
    lines = [
        f"## mbv2 ({args.mbv2} networks, `sample(seed={args.seed})`)", "",
        f"Synthetic batch as the funnel's stage 4 without `--data` (`zeroshot.scoring.input_batch`: seeded Gaussian "
        "images), batch = samples (the smallest batch that gives that many), seed "
        f"{args.seed}.  Own resolution and {STAGE4_SCALE}x (`zeroshot.funnel.proxy_codes`, as stage 4).  "
        "swap / units: median over networks of the fraction of units with a pattern of their own.  CPU s: "
        "one call computing swap alone (build, forward of the batch, packing, counting), median (mean).  "
        "Kendall(swap, units) = 1 means swap orders the networks exactly as their number of units: below "
        "2^samples, but every unit nearly has a pattern of its own (the other bound of the cap).",
        "",
        "| resolution | samples | at the cap | at 2^samples | within 1% of the cap | distinct values | swap / units "
        "| Kendall(swap, meco) | Kendall(swap, units) | CPU s / net |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, m in mb.items():
        for k in SAMPLES:
            q = m["rows"][k]
            lines.append(f"| {s}x ({m['sides'][0]}-{m['sides'][1]} px) | {k} | {q['at_cap']:.0%} | {q['at_2k']:.0%} | "
                         f"{q['near_cap']:.0%} | {q['distinct']}/{args.mbv2} | {q['frac_units']:.4f} | {q['tau_meco']:.3f} | "
                         f"{q['tau_units']:.3f} | {q['cpu']:.2f} ({q['cpu_mean']:.2f}) |")
    return lines + ["", "Units per network: " + "; ".join(
        f"{s}x {m['units'][0]:,} to {m['units'][1]:,}" for s, m in mb.items()) + ".", ""]


if __name__ == "__main__":
    main()
