"""Few-shot calibration of this machine's CPU on other model families: mbv2 and NAS-Bench-Macro networks.

For each space (the ``mbv2`` space, and NAS-Bench-Macro as declared in ``benchmarks/nasbench_macro.py``)
``--n`` random networks are measured end to end with torch on this machine (batch 1, one thread, every
network interleaved in every round, medians: :func:`zeroshot.estimator.timing.measure_archs`) in two
sessions, A and B; the reference latency is their mean, and Spearman rho of A against B is the noise
ceiling.  ``zeroshot.estimator.calibrated_device.calibrate`` gets k measured networks (the shipped prior
without this machine's own NB201 / FBNet sources, :meth:`Prior.without_local`; no source was fitted on these
spaces) and predicts the others; Spearman rho on those, mean over
``--seeds`` draws, beside the old prior (the shared devices only) and MACs as the predictor.

Usage: python benchmarks/calibration_cpu.py [--n 200] [--ks 10,20] [--seeds 5] [--rounds 15] [--reuse]
Writes benchmarks/results/calibration_cpu.md and the measurements to calibration_cpu.csv (``--reuse``: fit
on that file's measurements instead of measuring again).  Run it on a quiet core (``taskset -c 0``): the
load average is recorded.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration_hw import draws  # noqa: E402
from nasbench_macro import nasbench_macro  # noqa: E402
from zeroshot.estimator.calibrated_device import calibrate  # noqa: E402
from zeroshot.estimator.calibration_prior import load_prior  # noqa: E402
from zeroshot.estimator.timing import measure_archs  # noqa: E402
from zeroshot.scoring import compute_proxies  # noqa: E402
from zeroshot.spaces import get_space  # noqa: E402


def measure(space, codes, rounds: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Session A and B medians (ms) of ``codes`` and the median relative IQR of their samples."""
    archs = [space.build_ir(c) for c in codes]
    sessions = [measure_archs(archs, threads=1, rounds=rounds, seed=s, chunk=len(archs)) for s in (0, 1)]
    a, b = (np.array([t.median_ms for t in ts]) for ts in sessions)
    return a, b, float(np.median([t.noise for ts in sessions for t in ts]))


def measured(space, codes, args) -> tuple[np.ndarray, np.ndarray, float, str]:
    """:func:`measure`, or with ``--reuse`` the same networks' rows of the measurements file."""
    path = Path(args.output).with_suffix(".csv")
    names = [space.format(c) for c in codes]
    if args.reuse:
        with open(path, newline="") as f:
            rows = {(r["space"], r["arch"]): r for r in csv.DictReader(f)}
        got = [rows[space.name, n] for n in names]
        a, b = (np.array([float(r[col]) for r in got]) for col in ("a_ms", "b_ms"))
        return a, b, float(np.median([float(r["noise"]) for r in got])), f"reused from {path.name}"
    t = time.time()
    a, b, noise = measure(space, codes, args.rounds)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["space", "arch", "a_ms", "b_ms", "noise"])
        w.writerows([space.name, n, repr(float(x)), repr(float(z)), repr(noise)] for n, x, z in zip(names, a, b))
    return a, b, noise, f"measured in {time.time() - t:.0f} s"


def fits(space, codes, y, k: int, seeds: int) -> np.ndarray:
    """Mean over ``seeds`` draws of k measured networks: Spearman rho on the rest of the prior's and the
    old prior's calibrated device and of MACs."""
    mine = load_prior().without_local()                    # this machine is the device under test
    priors = (mine, mine.without_kinds({"npu"}))
    macs = compute_proxies(space, codes, ["macs"])["macs"]
    rows = []
    for idx, rest in draws(len(codes), 0, k, seeds):
        row = [spearmanr(calibrate(codes[idx], y[idx], space=space, prior=p).predict(space, codes[rest]),
                         y[rest]).statistic for p in priors]
        rows.append(row + [spearmanr(macs[rest], y[rest]).statistic])
    return np.mean(rows, 0)


def run_space(space, args) -> list[str]:
    codes = np.asarray(space.sample(args.n, seed=0))
    codes = np.array([space.parse(c) for c in codes]) if codes.dtype.kind in "UO" else codes
    a, b, noise, how = measured(space, codes, args)
    y = (a + b) / 2
    lines = [f"## {space.name} ({args.n} networks; median {np.median(y):.2f} ms, "
             f"{y.min():.2f}-{y.max():.2f}; {how})", "",
             f"Noise: median relative IQR of the samples {noise:.1%}; session B / A median "
             f"{np.median(b / a):.3f}; **ceiling** (rho of session A vs B) {spearmanr(a, b).statistic:.3f}.", "",
             "| k | ours | old prior (shared devices only) | MACs |", "|---|---|---|---|"]
    for k in args.ks:
        with threadpool_limits(1):
            vals = fits(space, codes, y, k, args.seeds)
        lines.append(f"| {k} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    print(f"{space.name} done", file=sys.stderr, flush=True)
    return lines + [""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--ks", type=lambda s: [int(k) for k in s.split(",")], default=[10, 20])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--reuse", action="store_true", help="fit on the measurements file instead of measuring")
    p.add_argument("-o", "--output", default=str(Path(__file__).with_name("results") / "calibration_cpu.md"))
    args = p.parse_args(argv)
    if not args.reuse:
        Path(args.output).with_suffix(".csv").unlink(missing_ok=True)
    torch.set_num_threads(1)
    load = [os.getloadavg()[0]]
    body = [line for space in (get_space("mbv2"), nasbench_macro()) for line in run_space(space, args)]
    load.append(os.getloadavg()[0])
    lines = ["# Few-shot calibration of this machine's CPU on other model families", "",
             f"`python benchmarks/calibration_cpu.py --n {args.n} --ks {','.join(map(str, args.ks))} --seeds "
             f"{args.seeds} --rounds {args.rounds}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; load average (1 min) at "
             f"start / end {load[0]:.1f} / {load[1]:.1f}.  " + " ".join(__doc__.split("\n\n")[1].split()), ""]
    Path(args.output).write_text("\n".join(lines + body))
    print("\n".join(lines + body))


if __name__ == "__main__":
    main()
