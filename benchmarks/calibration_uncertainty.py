"""Coverage of the calibrated device's prediction intervals on hardware kinds never seen.

The protocol of calibration_kinds.py: devices per space are the ten of ``../shared/data/hw`` (kinds gpu, cpu,
phone, pi; with ``--local-cpu`` this machine's CPU too) and the npu kind (the seven built-in profiles with
``--noise`` measurement noise); each kind K is
held out of the prior in turn; each of its devices gives k random measured architectures (``--seeds`` draws)
and the interval of every other architecture is checked against its latency.  Then ``--synthetic`` unseen
accelerators (npu family, test seed stream, prior: every source).  The fit's setting is the module default
(nothing is chosen on the held-out data).

Reported per held-out kind and k: the share of latencies inside the intervals of nominal level 50 / 80 /
95 % (the posterior predictive of the fit, Student-t with the fit's degrees of freedom:
:meth:`CalibratedDevice.interval_ms`), inside the Gaussian 80 % interval of the same posterior (the
intervals before the Student-t), the median half-width of the 80 % interval relative to the prediction,
and the 80 % coverage with the interval scaled by a factor chosen without K's data: the factor that gives
80 % on the other kinds held out one level down (prior without K and K2, devices of K2; for the unseen
accelerators: the held-out kinds' own draws).  The floor of the device (a tenth of the fastest
measurement) is left out; the footer counts the predictions it lifts.

Below each space's table, the development level that chose the intervals' degrees of freedom (the rows held
out above unused): the residuals of that inner protocol, pooled over every pair of kinds, under each rule.

Usage: python benchmarks/calibration_uncertainty.py [--n 1000] [--seeds 3] [--inner-seeds 3] [--ks 10,20]
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
from scipy.special import stdtr, stdtrit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration_hw import draws  # noqa: E402
from calibration_kinds import KIND_ORDER, Bench, benches, protocol_args, protocol_command  # noqa: E402
from zeroshot.estimator.calibrated_device import latency_floor  # noqa: E402
from zeroshot.estimator.calibration_features import predict_features  # noqa: E402
from zeroshot.estimator.calibration_fit import PRIOR_DOF, fit_posterior  # noqa: E402
from zeroshot.estimator.calibration_posterior import z_of_level  # noqa: E402

LEVELS = (0.5, 0.8, 0.95)
SCALED = 0.8
FLOORED = [0, 0]        # predictions below the device's floor, predictions
#: the degrees of freedom of the intervals compared on the development level, from a fit's and k
DOF_RULES = {"Gaussian (before)": lambda dof, k: np.full_like(dof, np.inf),
             "Student-t, k - 1": lambda dof, k: np.full_like(dof, k - 1),
             "Student-t, residual": lambda dof, k: dof - PRIOR_DOF,
             f"Student-t, residual + {PRIOR_DOF:g} (shipped)": lambda dof, k: dof}


def residuals(bench: Bench, prior, y, k, seeds, salt, dev=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised residuals ``(y - prediction) / sd``, relative sd and the fit's degrees of freedom of every
    unmeasured architecture, over ``seeds`` draws of k measured ones (among the rows device ``dev`` was
    measured on; ``None``: all) (counts in FLOORED the predictions the floor would lift)."""
    z, rel, dof = [], [], []
    for idx, rest in (bench.draws(dev, salt, k, seeds) if dev else draws(len(y), salt, k, seeds)):
        fit = fit_posterior(bench.features[idx], y[idx], prior)
        mean = predict_features(bench.features[rest], fit.intercept_ms, fit.theta)
        FLOORED[0] += int(np.sum(mean < latency_floor(y[idx])))
        FLOORED[1] += len(mean)
        sd = fit.posterior.sd_ms(bench.features[rest])
        z.append((y[rest] - mean) / sd)
        rel.append(sd / np.abs(mean))
        dof.append(np.full(len(rest), fit.posterior.dof))
    return np.concatenate(z), np.concatenate(rel), np.concatenate(dof)


def in_units(z: np.ndarray, dof: np.ndarray, level: float = SCALED) -> np.ndarray:
    """``|z|`` in units of the half-width of the ``level`` interval (inside: at most 1)."""
    return np.abs(z) / stdtrit(dof, 0.5 + level / 2)


def scale_for(z_dev: np.ndarray, dof: np.ndarray, level: float = SCALED) -> float:
    """The factor on the interval's half-width that makes ``level`` of these residuals fall inside."""
    return float(np.quantile(in_units(z_dev, dof, level), level))


def pooled(got: list[tuple]) -> tuple[np.ndarray, ...]:
    """The :func:`residuals` of several devices, concatenated."""
    return tuple(np.concatenate([g[i] for g in got]) for i in range(3))


def inner(bench: Bench, out: str, k: int, seeds: int) -> tuple[np.ndarray, ...]:
    """Residuals of every kind but ``out`` held out one level down (prior without ``out`` and that kind)."""
    return pooled([residuals(bench, bench.prior({out, kind}), bench.y[dev], k, seeds, 100 + u, dev)
                   for kind in KIND_ORDER if kind != out for u, dev in enumerate(bench.targets(kind))])


def coverage(z: np.ndarray, dof: np.ndarray) -> list[float]:
    """The shares of standardised residuals ``z`` inside the Student-t intervals of each of LEVELS."""
    inside = 2 * stdtr(dof, np.abs(z)) - 1             # the level of the narrowest interval holding it
    return [float(np.mean(inside <= lv)) for lv in LEVELS]


def row(name: str, k: int, res: tuple[np.ndarray, ...], scale: float | None) -> str:
    """A table row from pooled :func:`residuals`; ``scale``: the factor chosen without them (None: none)."""
    z, rel, dof = res
    units = in_units(z, dof)
    scaled = "- | -" if scale is None else f"{scale:.2f} | {np.mean(units <= scale):.0%}"
    return (f"| {name} | {k} | " + " | ".join(f"{c:.0%}" for c in coverage(z, dof)) +
            f" | {np.mean(np.abs(z) <= z_of_level(SCALED)):.0%} | "
            f"{np.median(rel * stdtrit(dof, 0.5 + SCALED / 2)):.1%} | {scaled} |")


def development(dev: dict) -> list[str]:
    """Coverage of the pooled inner residuals ``{k: (z, rel, dof)}`` under each of DOF_RULES."""
    lines = ["| k | intervals | inside 50% | inside 80% | inside 95% | mean distance from nominal |",
             "|---|---|---|---|---|---|"]
    for k, (z, _, dof) in dev.items():
        for name, rule in DOF_RULES.items():
            cover = coverage(z, rule(dof, k))
            lines.append(f"| {k} | {name} | " + " | ".join(f"{c:.1%}" for c in cover) +
                         f" | {np.mean(np.abs(np.subtract(cover, LEVELS))):.2%} |")
    return lines


def run_space(bench: Bench, ks, seeds, inner_seeds, log) -> list[str]:
    lines = ["| held out | k | inside 50% | inside 80% | inside 95% | inside Gaussian 80% (before) | "
             "80% half-width / prediction | scale (chosen without it) | inside scaled 80% |",
             "|---|---|---|---|---|---|---|---|---|"]
    developing = {}
    for k in ks:
        kinds, inners = [], []
        for kind in KIND_ORDER:
            got = pooled([residuals(bench, bench.prior({kind}), bench.y[dev], k, seeds, t, dev)
                          for t, dev in enumerate(bench.targets(kind))])
            kinds.append(got)
            inners.append(inner(bench, kind, k, inner_seeds))
            lines.append(row(f"{kind} ({len(bench.targets(kind))} devices)", k, got, scale_for(*inners[-1][::2])))
            log(f"  k={k} {kind}")
        every = pooled(kinds)
        lines.append(row("**every kind**", k, every, None))
        syn = pooled([residuals(bench, bench.prior(set()), y, k, seeds, 200 + t)
                      for t, y in enumerate(bench.syn.values())])
        lines.append(row(f"unseen accelerators ({len(bench.syn)})", k, syn, scale_for(*every[::2])))
        developing[k] = pooled(inners)
        log(f"  k={k} unseen accelerators")
    return lines + ["", "Development level (inner protocol, every pair of kinds):", ""] + development(developing)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    protocol_args(p, "calibration_uncertainty", n=1000, inner_seeds=3)
    p.set_defaults(seeds=3)
    p.add_argument("--local-cpu", action="store_true",
                   help="this machine's CPU (benchmarks/cpu_sources.py) among the devices, kind cpu")
    args = p.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    t0 = time.time()

    def log(msg):
        print(f"{msg} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    lines = ["# Prediction intervals of calibrated devices: coverage on kinds never seen", "",
             f"`{protocol_command('calibration_uncertainty.py', args)}{' --local-cpu' * args.local_cpu}`.  " +
             " ".join(" ".join(__doc__.split("\n\n")[1:3]).split()), ""]
    for space, pick, bench in benches(args, log, args.local_cpu):
        lines += [f"## {space.name} ({len(pick)} architectures)", ""]
        lines += run_space(bench, ks, args.seeds, args.inner_seeds, log) + [""]
    lines += [f"The floor would lift {FLOORED[0]} of {FLOORED[1]} predictions.",
              f"Took {time.time() - t0:.0f} s on this machine (one BLAS thread; load average "
              f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores).", ""]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
