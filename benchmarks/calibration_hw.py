"""Few-shot device calibration on the shared measurements, each device left out in turn.

For every device of ``../shared/data/hw/{nb201,fbnet}_latency.csv``: the prior is fitted on the *other*
devices only (:func:`estimator.calibrate.fit_source`); the target contributes nothing but ``k`` random
measured architectures (k = 10 / 20 / 100, several seeds); the calibrated model predicts every other
architecture of the file, scored by Spearman rho and the share within +-10%.  Baseline: ridge regression
(alpha 1) on the one-hot operation choices fitted on the same k samples.  ``--grid`` adds the
leave-one-device-out table of fixed refinement ridges (primitives still cross-validated) beside the
cross-validated choice.

Usage: python benchmarks/calibration_hw.py [--seeds 5] [--ks 10,20,100] [--spaces nb201,fbnet] [--grid]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimator import calibrate as cal  # noqa: E402

HELP_ANCHOR = {"nb201": 0.932, "fbnet": 0.910}


def one_hot(space, texts) -> np.ndarray:
    codes = np.array([space.parse(t) for t in texts])
    return np.concatenate([(codes == v).astype(float) for v in range(int(space.cards.max()))], 1)


def run_space(space, texts, devices, ks, seeds, hypers):
    """rho and within-10% per (config, k, device), averaged over seeds; config 'ridge' is the baseline."""
    t0 = time.time()
    features = cal.arch_features(space, texts)
    x_onehot = one_hot(space, texts)
    names = list(devices)
    sources = [cal.fit_source(features, devices[d]) for d in names]
    print(f"{space.name}: features and {len(names)} source fits in {time.time() - t0:.0f} s", file=sys.stderr)
    n = len(texts)
    out = {}
    for t, target in enumerate(names):
        prior = cal.Prior([f"{space.name}/{d}" for d in names if d != target],
                          np.array([sources[s][0] for s in range(len(names)) if s != t]),
                          np.array([sources[s][1] for s in range(len(names)) if s != t]))
        y_all = devices[target]
        for k in ks:
            for seed in range(seeds):
                idx = np.random.default_rng([seed, t, k]).choice(n, k, replace=False)
                rest = np.setdiff1d(np.arange(n), idx)
                preds = {"ridge": Ridge(alpha=1.0).fit(x_onehot[idx], y_all[idx]).predict(x_onehot[rest])}
                for h, hyper in enumerate(hypers):
                    b, theta = cal.calibrate_features(features[idx], y_all[idx], prior, **hyper)
                    preds[h] = cal.predict_features(features[rest], b, theta)
                for key, p in preds.items():
                    rho = spearmanr(p, y_all[rest]).statistic
                    within = np.mean(np.abs(p / y_all[rest] - 1) <= 0.10)
                    out.setdefault((key, k, target), []).append((rho, within))
        print(f"  {target} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    return names, {key: np.mean(v, 0) for key, v in out.items()}


def table(space_name, names, res, ks, config) -> list[str]:
    head = "| device | " + " | ".join(f"k={k} rho | k={k} +-10% | ridge k={k} rho | ridge k={k} +-10%" for k in ks)
    lines = [head + " |", "|---" * (1 + 4 * len(ks)) + "|"]
    rows = names + ["**mean**"]
    for d in rows:
        cells = []
        for k in ks:
            for key in (config, "ridge"):
                vals = np.array([res[(key, k, n)] for n in names]).mean(0) if d == "**mean**" else res[(key, k, d)]
                cells += [f"{vals[0]:.3f}", f"{100 * vals[1]:.0f}%"]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ks", default="10,20,100")
    p.add_argument("--spaces", default="nb201,fbnet")
    p.add_argument("--grid", action="store_true", help="also score the hyperparameter grid")
    p.add_argument("-o", "--output", default=str(Path(__file__).with_name("results") / "calibration_hw.md"))
    args = p.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    data = cal.shared_datasets(args.spaces.split(","))
    if not data:
        raise SystemExit("skipped: ../shared/data/hw/*_latency.csv not found (set ZEROSHOT_SHARED_DATA)")
    hypers = [{}] + ([dict(refine_ridge=r) for r in cal.REFINE_GRID] if args.grid else [])
    lines = ["# Few-shot device calibration (leave one device out)", "",
             f"`python benchmarks/calibration_hw.py --seeds {args.seeds} --ks {args.ks}"
             f"{' --grid' if args.grid else ''}`: for each device the prior comes from the other devices of the "
             "same file only; the target gives k random measured architectures; scores are on all other "
             f"architectures, mean over {args.seeds} seeds.  Ours: `estimator.calibrate` (basis_ridge="
             f"{cal.BASIS_RIDGE}, spread_floor={cal.SPREAD_FLOOR}; refine_ridge from {cal.REFINE_GRID} and "
             f"the primitive bases on or off by {cal.CV_FOLDS}-fold cross-validation on the k samples); "
             "ridge: alpha 1 on one-hot operation choices, same k samples.", ""]
    grid_lines = []
    for space, texts, devices in data:
        names, res = run_space(space, texts, devices, ks, args.seeds, hypers)
        lines += [f"## {space.name} ({len(texts)} architectures, {len(names)} devices; HELP with 10 samples: "
                  f"mean rho {HELP_ANCHOR.get(space.name, float('nan')):.3f})", ""]
        lines += table(space.name, names, res, ks, 0) + [""]
        if args.grid:
            for h, hyper in enumerate(hypers):
                means = [np.mean([res[(h, k, d)][0] for d in names]) for k in ks]
                setting = f"refine_ridge={hyper['refine_ridge']}" if hyper else "refine_ridge by cross-validation"
                grid_lines.append(f"| {space.name} | {setting} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    if grid_lines:
        lines += ["## Hyperparameter grid (mean rho, leave one device out)", "",
                  "| space | setting | " + " | ".join(f"k={k}" for k in ks) + " |",
                  "|---|---|" + "---|" * len(ks)] + grid_lines + [""]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
