"""Few-shot device calibration on the shared measurements, each device held out of everything in turn.

For every device t of ``../shared/data/hw/{nb201,fbnet}_latency.csv`` (nested leave-one-device-out):

1. inner: every other device u plays the unseen device once, with a prior fitted on the devices other
   than t and u (:func:`zeroshot.estimator.calibration_prior.fit_source`) and k=10 random measured architectures of u
   (``--inner-seeds`` draws); each setting of :data:`GRID` is scored by Spearman rho on u's other
   architectures, and the setting with the best mean over the u's is chosen for t (t's data unused);
2. outer: the prior is fitted on the devices other than t; t gives nothing but k random measured
   architectures (k = 10 / 20 / 100, ``--seeds`` draws); with the chosen setting the calibrated model
   predicts every other architecture of t (floored as a calibrated device floors them,
   :func:`zeroshot.estimator.calibrated_device.latency_floor`), scored by Spearman rho and the share within +-10%.

Baseline: ridge regression (alpha 1) on the one-hot operation choices, fitted on the same k samples.
Ceilings per device: Spearman of a perfect predictor against the measurements (below 1 only through ties,
e.g. whole milliseconds), and a noise ceiling: the best of two models fitted on 80% of all architectures
of the device (ridge on one-hot choices; the source fit on kernel features), 5-fold cross-fitted, with
the lag-1 autocorrelation of its residuals in file order.

Usage: python benchmarks/calibration_hw.py [--seeds 5] [--inner-seeds 3] [--ks 10,20,100] [--spaces nb201,fbnet]
Writes benchmarks/results/calibration_hw.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zeroshot.estimator.calibrated_device import FLOOR_FRACTION, latency_floor  # noqa: E402
from zeroshot.estimator.calibration_features import arch_features, predict_features  # noqa: E402
from zeroshot.estimator.calibration_fit import PRIOR_VARIANCES, ROBUST_Z, calibrate_features  # noqa: E402
from zeroshot.estimator.calibration_prior import Prior, fit_source  # noqa: E402
from zeroshot.estimator.latency_csv import shared_datasets  # noqa: E402

HELP_ANCHOR = {"nb201": 0.932, "fbnet": 0.910}
INNER_K = 10
#: settings the nested leave-one-out chooses from (the module defaults are one of them)
GRID = [dict(variances={"sources": s}, similarity=g) for s in (0.1, 0.3, 1.0, 3.0) for g in (0.0, 1.0, 2.0, 4.0)]


def one_hot(space, texts) -> np.ndarray:
    codes = np.array([space.parse(t) for t in texts])
    return np.concatenate([(codes == v).astype(float) for v in range(int(space.cards.max()))], 1)


def draws(n, t, k, seeds):
    for seed in range(seeds):
        idx = np.random.default_rng([seed, t, k]).choice(n, k, replace=False)
        yield idx, np.setdiff1d(np.arange(n), idx)


def scores(pred, y) -> tuple[float, float]:
    return spearmanr(pred, y).statistic, float(np.mean(np.abs(pred / y - 1) <= 0.10))


def shared_or_exit(spaces: str):
    """:func:`zeroshot.estimator.latency_csv.shared_datasets` of comma-separated ``spaces``; exits when none
    is there."""
    data = shared_datasets(spaces.split(","))
    if not data:
        raise SystemExit("skipped: ../shared/data/hw/*_latency.csv not found (set ZEROSHOT_SHARED_DATA)")
    return data


def setting_name(h: dict) -> str:
    return f"sources {h['variances']['sources']:g}, similarity {h['similarity']:g}"


class Held:
    """Calibration of one held-out device with priors made of the other devices' source fits."""

    def __init__(self, features, sources, names):
        self.features, self.sources, self.names = features, sources, names

    def prior(self, out: set) -> Prior:
        keep = [i for i, d in enumerate(self.names) if d not in out]
        return Prior([self.names[i] for i in keep], np.array([self.sources[i][0] for i in keep]),
                         np.array([self.sources[i][1] for i in keep]))

    def predict(self, prior, idx, y, setting) -> np.ndarray:
        b, theta = calibrate_features(self.features[idx], y, prior, **setting)
        return np.maximum(predict_features(self.features, b, theta), latency_floor(y))


def run_space(space, texts, devices, ks, seeds, inner_seeds):
    t0 = time.time()
    features = arch_features(space, texts)
    x_onehot = one_hot(space, texts)
    names = list(devices)
    held = Held(features, [fit_source(features, devices[d]) for d in names], names)
    print(f"{space.name}: features and {len(names)} source fits in {time.time() - t0:.0f} s", file=sys.stderr)
    n = len(texts)
    out, chosen = {}, {}
    for t, target in enumerate(names):
        inner = np.zeros(len(GRID))
        for u, other in enumerate(names):
            if other == target:
                continue
            prior = held.prior({target, other})
            for idx, rest in draws(n, u, INNER_K, inner_seeds):
                for h, setting in enumerate(GRID):
                    pred = held.predict(prior, idx, devices[other][idx], setting)
                    inner[h] += scores(pred[rest], devices[other][rest])[0]
        chosen[target] = GRID[int(np.argmax(inner))]
        prior = held.prior({target})
        y_all = devices[target]
        for k in ks:
            for idx, rest in draws(n, t, k, seeds):
                preds = {"ours": held.predict(prior, idx, y_all[idx], chosen[target])[rest],
                         "ridge": Ridge(alpha=1.0).fit(x_onehot[idx], y_all[idx]).predict(x_onehot[rest])}
                for key, p in preds.items():
                    out.setdefault((key, k, target), []).append(scores(p, y_all[rest]))
        print(f"  {target}: {setting_name(chosen[target])} ({time.time() - t0:.0f} s)", file=sys.stderr)
    return names, {key: np.mean(v, 0) for key, v in out.items()}, chosen, ceilings(features, x_onehot, devices)


def ceilings(features, x_onehot, devices) -> dict:
    """Per device: Spearman of a perfect predictor against the ties, the 5-fold cross-fitted noise
    ceiling, and the lag-1 autocorrelation of that fit's residuals in file order (measurement drift)."""
    n = features.shape[0]
    fold = np.random.default_rng(0).permutation(n) % 5
    out = {}
    for name, y in devices.items():
        tie = spearmanr(y, np.arange(n)[np.argsort(np.argsort(y, kind="stable"))]).statistic
        fits = np.zeros((2, n))
        for f in range(5):
            train, test = fold != f, fold == f
            fits[0, test] = Ridge(alpha=1e-3).fit(x_onehot[train], y[train]).predict(x_onehot[test])
            b, theta = fit_source(features[train], y[train])
            fits[1, test] = predict_features(features[test], b, theta) * y[train].mean()   # mean 1 -> ms
        rho = [spearmanr(p, y).statistic for p in fits]
        resid = y - fits[int(np.argmax(rho))]
        out[name] = (tie, max(rho), np.corrcoef(resid[:-1], resid[1:])[0, 1])
    return out


def table(names, res, ks, chosen, ceil) -> list[str]:
    head = "| device | " + " | ".join(f"k={k} rho | k={k} +-10% | ridge k={k} rho | ridge k={k} +-10%" for k in ks)
    lines = [head + " | tie ceiling | noise ceiling | residual lag-1 | setting chosen (nested) |",
             "|---" * (5 + 4 * len(ks)) + "|"]
    for d in names + ["**mean**"]:
        cells = []
        for k in ks:
            for key in ("ours", "ridge"):
                vals = np.array([res[(key, k, x)] for x in names]).mean(0) if d == "**mean**" else res[(key, k, d)]
                cells += [f"{vals[0]:.3f}", f"{100 * vals[1]:.0f}%"]
        c = np.mean([ceil[x] for x in names], 0) if d == "**mean**" else ceil[d]
        cells += [f"{c[0]:.4f}", f"{c[1]:.3f}", f"{c[2]:.2f}", setting_name(chosen[d]) if d in chosen else ""]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--inner-seeds", type=int, default=3)
    p.add_argument("--ks", default="10,20,100")
    p.add_argument("--spaces", default="nb201,fbnet")
    p.add_argument("-o", "--output", default=str(Path(__file__).with_name("results") / "calibration_hw.md"))
    args = p.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    data = shared_or_exit(args.spaces)
    lines = ["# Few-shot device calibration (nested leave one device out)", "",
             f"`python benchmarks/calibration_hw.py --seeds {args.seeds} --inner-seeds {args.inner_seeds} "
             f"--ks {args.ks}`: each device is held out of everything in turn.  Its setting "
             f"(from {len(GRID)}: prior variance of the source combination x similarity weighting) is chosen "
             f"by leave-one-out over the other devices only (k={INNER_K}, {args.inner_seeds} draws each, "
             "their priors without the held-out device); its prior comes from the other devices of the same "
             "file; it gives k random measured architectures; scores are on all its other architectures, "
             f"mean over {args.seeds} draws.  Ours: `zeroshot.estimator.calibrated_device` (Gaussian prior from "
             f"the source devices, variances {PRIOR_VARIANCES} except the one chosen, local variance and noise "
             f"by marginal likelihood, robust_z {ROBUST_Z}, predictions floored at "
             f"{FLOOR_FRACTION:g} x the fastest measurement); ridge: alpha 1 on one-hot operation "
             "choices, same k samples.  Tie ceiling: "
             "Spearman of a perfect predictor against the measurements (ties of whole-millisecond devices); "
             "noise ceiling: best of ridge on one-hot choices and the kernel-feature fit trained on 80% of "
             "all the device's architectures (5-fold cross-fitted), an estimate of what measurement noise "
             "leaves; residual lag-1: autocorrelation of that fit's residuals between neighbouring rows of "
             "the file (far from 0: the unexplained part depends on where in the measurement session a "
             "network was measured, not on the network; see calibration_ceiling.md).", ""]
    for space, texts, devices in data:
        with threadpool_limits(1):          # a shared machine: one BLAS thread
            names, res, chosen, ceil = run_space(space, texts, devices, ks, args.seeds, args.inner_seeds)
        lines += [f"## {space.name} ({len(texts)} architectures, {len(names)} devices; HELP with 10 samples: "
                  f"mean rho {HELP_ANCHOR.get(space.name, float('nan')):.3f})", ""]
        lines += table(names, res, ks, chosen, ceil) + [""]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
