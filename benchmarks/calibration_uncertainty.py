"""Coverage of the calibrated device's prediction intervals on hardware kinds never seen.

The protocol of calibration_kinds.py: devices per space are the ten of ``../shared/data/hw`` (kinds gpu, cpu,
phone, pi) and the npu kind (the seven built-in profiles with ``--noise`` measurement noise); each kind K is
held out of the prior in turn; each of its devices gives k random measured architectures (``--seeds`` draws)
and the interval of every other architecture is checked against its latency.  Then ``--synthetic`` unseen
accelerators (npu family, test seed stream, prior: every source).  The fit's setting is the module default
(nothing is chosen on the held-out data).

Reported per held-out kind and k: the share of latencies inside the intervals of nominal level 50 / 80 /
95 % (the posterior predictive of the fit, :meth:`CalibratedDevice.interval_ms`), the median half-width of
the 80 % interval relative to the prediction, and the 80 % coverage with the interval scaled by a factor
chosen without K's data: the factor that gives 80 % on the other kinds held out one level down (prior
without K and K2, devices of K2; for the unseen accelerators: the held-out kinds' own draws).  The floor of
the device (a tenth of the fastest measurement) is left out; the footer counts the predictions it lifts.

Usage: python benchmarks/calibration_uncertainty.py [--n 1000] [--seeds 3] [--inner-seeds 1] [--ks 10,20]
       [--synthetic 12] [--noise 0.03] [--spaces nb201,fbnet]
Writes benchmarks/results/calibration_uncertainty.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration_hw import draws  # noqa: E402
from calibration_kinds import KIND_ORDER, Bench, benches, protocol_args, protocol_command  # noqa: E402
from zeroshot.estimator.calibrated_device import latency_floor  # noqa: E402
from zeroshot.estimator.calibration_features import predict_features  # noqa: E402
from zeroshot.estimator.calibration_fit import fit_posterior  # noqa: E402
from zeroshot.estimator.calibration_posterior import z_of_level  # noqa: E402

LEVELS = (0.5, 0.8, 0.95)
SCALED = 0.8
FLOORED = [0, 0]        # predictions below the device's floor, predictions


def residuals(bench: Bench, prior, y, k, seeds, salt) -> tuple[np.ndarray, np.ndarray]:
    """Standardised residuals ``(y - prediction) / sd`` and relative sd of every unmeasured architecture,
    over ``seeds`` draws of k measured ones (counts in FLOORED the predictions the floor would lift)."""
    z, rel = [], []
    for idx, rest in draws(len(y), salt, k, seeds):
        fit = fit_posterior(bench.features[idx], y[idx], prior)
        mean = predict_features(bench.features[rest], fit.intercept_ms, fit.theta)
        FLOORED[0] += int(np.sum(mean < latency_floor(y[idx])))
        FLOORED[1] += len(mean)
        sd = fit.posterior.sd_ms(bench.features[rest])
        z.append((y[rest] - mean) / sd)
        rel.append(sd / np.abs(mean))
    return np.concatenate(z), np.concatenate(rel)


def scale_for(z_dev: np.ndarray, level: float = SCALED) -> float:
    """The factor on the interval's half-width that makes ``level`` of these residuals fall inside."""
    return float(np.quantile(np.abs(z_dev), level) / z_of_level(level))


def inner(bench: Bench, out: str, k: int, seeds: int) -> np.ndarray:
    """Residuals of every kind but ``out`` held out one level down (prior without ``out`` and that kind)."""
    z = [residuals(bench, bench.prior({out, kind}), bench.y[dev], k, seeds, 100 + u)[0]
         for kind in KIND_ORDER if kind != out for u, dev in enumerate(bench.targets(kind))]
    return np.concatenate(z)


def row(name: str, k: int, z: np.ndarray, rel: np.ndarray, scale: float | None) -> str:
    cover = [np.mean(np.abs(z) <= z_of_level(lv)) for lv in LEVELS]
    scaled = "- | -" if scale is None else f"{scale:.2f} | {np.mean(np.abs(z) <= scale * z_of_level(SCALED)):.0%}"
    return (f"| {name} | {k} | " + " | ".join(f"{c:.0%}" for c in cover) +
            f" | {np.median(rel) * z_of_level(SCALED):.1%} | {scaled} |")


def run_space(bench: Bench, ks, seeds, inner_seeds, log) -> list[str]:
    lines = ["| held out | k | inside 50% | inside 80% | inside 95% | 80% half-width / prediction | "
             "scale (chosen without it) | inside scaled 80% |", "|---|---|---|---|---|---|---|---|"]
    for k in ks:
        pooled = ([], [])
        for kind in KIND_ORDER:
            got = [residuals(bench, bench.prior({kind}), bench.y[dev], k, seeds, t)
                   for t, dev in enumerate(bench.targets(kind))]
            z, rel = (np.concatenate([g[i] for g in got]) for i in (0, 1))
            pooled[0].append(z)
            pooled[1].append(rel)
            lines.append(row(f"{kind} ({len(got)} devices)", k, z, rel, scale_for(inner(bench, kind, k, inner_seeds))))
            log(f"  k={k} {kind}")
        z_all = np.concatenate(pooled[0])
        lines.append(row("**every kind**", k, z_all, np.concatenate(pooled[1]), None))
        syn = [residuals(bench, bench.prior(set()), y, k, seeds, 200 + t) for t, y in enumerate(bench.syn.values())]
        lines.append(row(f"unseen accelerators ({len(syn)})", k, np.concatenate([s[0] for s in syn]),
                         np.concatenate([s[1] for s in syn]), scale_for(z_all)))
        log(f"  k={k} unseen accelerators")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    protocol_args(p, "calibration_uncertainty", n=1000, inner_seeds=1)
    p.set_defaults(seeds=3)
    args = p.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    t0 = time.time()

    def log(msg):
        print(f"{msg} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    lines = ["# Prediction intervals of calibrated devices: coverage on kinds never seen", "",
             f"`{protocol_command('calibration_uncertainty.py', args)}`.  " +
             " ".join(" ".join(__doc__.split("\n\n")[1:3]).split()), ""]
    for space, pick, bench in benches(args, log):
        lines += [f"## {space.name} ({len(pick)} architectures)", ""]
        lines += run_space(bench, ks, args.seeds, args.inner_seeds, log) + [""]
    lines += [f"The floor would lift {FLOORED[0]} of {FLOORED[1]} predictions.",
              f"Took {time.time() - t0:.0f} s on this machine (one BLAS thread; load average "
              f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores).", ""]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
