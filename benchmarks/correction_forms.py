"""Forms of the measured device's per-model correction, refitted offline on the kept runs of estimator_accuracy.

Usage: python benchmarks/correction_forms.py [--out benchmarks/results/correction_forms.md]

Every ``benchmarks/results/estimator_accuracy*.csv`` run with its ``_calibration.csv`` holds, per evaluation
architecture, the raw kernel sum of the run's profile, the MB its ops write, its kernel count, the MB of its
weights and its latency in sessions A and B, and per mbv2 calibration model its raw kernel sum and latency
during the profile (its other terms are counted again from the architecture where the run did not write
them).  For each form of the correction (:func:`zeroshot.estimator.profiling.fit_correction` with some terms
held at 0) this refits it on the run's 40 mbv2 calibration models, as the profile does, and reports the share of the 100 evaluation
architectures within +-10 %: of the mean of the two sessions; drift-free (the run's median error removed: what
the model gets wrong, not the machine's change of speed); and speed-checked (each session's prediction
rescaled by the speed check's ratio the run recorded, where it recorded one).  No measurement is taken.
"""
import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np

from zeroshot.estimator.kernel_table import decompose
from zeroshot.estimator.measured_device import PER_UNIT, corrected_ms, model_terms
from zeroshot.estimator.profiling import fit_correction
from zeroshot.spaces import get_space, to_table

RESULTS = Path("benchmarks/results")
#: name -> the per-unit terms a form fits (the others held at 0)
FORMS = {"scale, MB, intercept (seeds 0-6)": ("ms_per_mb",),
         "scale, MB, kernels, intercept (seeds 7-11)": ("ms_per_mb", "ms_per_kernel"),
         "scale, MB, kernels, weights, intercept (now)": PER_UNIT,
         "scale, kernels, intercept": ("ms_per_kernel",), "scale, intercept": ()}
#: the evaluation CSV's column of each per-unit term
COLUMNS = {"ms_per_mb": "written_mb", "ms_per_kernel": "kernels", "ms_per_weight_mb": "weight_mb"}
RATIOS = re.compile(r"the ratios \| [^|]*; ([0-9.]+) / ([0-9.]+) \|")


def read(path: Path) -> dict:
    rows = list(csv.DictReader(open(path, newline="")))
    return {k: [r[k] for r in rows] for k in rows[0]}


def calibration_terms(cal: dict) -> np.ndarray:
    """:func:`~zeroshot.estimator.measured_device.model_terms` of the calibration models: their columns where the
    run wrote them all, else counted again from the architectures."""
    if all(c in cal for c in COLUMNS.values()):
        return np.column_stack([np.array(cal[COLUMNS[k]], float) for k in PER_UNIT])
    space = get_space("mbv2")
    return model_terms(decompose(to_table([space.to_ir(t) for t in cal["arch"]])))


def run_rows(path: Path) -> list:
    """One row per form: (form, within of the sessions' mean, drift-free, speed-checked or None)."""
    test = read(path)
    cal = read(path.with_name(path.stem + "_calibration.csv"))
    mbv2 = np.array(cal["space"]) == "mbv2"
    cal = {k: np.array(v)[mbv2] for k, v in cal.items()}
    cal_raw, cal_terms = cal["raw_sum_ms"].astype(float), calibration_terms(cal)
    raw = np.array(test["raw_sum_ms"], float)
    terms = np.column_stack([np.array(test[COLUMNS[k]], float) for k in PER_UNIT])
    a, b = np.array(test["session_a_ms"], float), np.array(test["session_b_ms"], float)
    found = RATIOS.search(path.with_suffix(".md").read_text())
    within = lambda pred, ref: float(np.mean(np.abs(pred / ref - 1) <= 0.10))  # noqa: E731
    rows = []
    for form, used in FORMS.items():
        pred = corrected_ms(fit_correction(cal_raw, cal_terms, cal["profile_ms"].astype(float), used), raw, terms)
        ref = (a + b) / 2
        drift = np.exp(np.median(np.log(ref / pred)))
        checked = (within(pred * float(found[1]), a) + within(pred * float(found[2]), b)) / 2 if found else None
        rows.append((form, within(pred, ref), within(pred * drift, ref), checked))
    return rows


def run_order(path: Path) -> tuple:
    """Sort key: the quiet run, then the busy runs by seed (seed10 after seed9)."""
    seed = re.search(r"seed(\d+)$", path.stem)
    return (path.stem != "estimator_accuracy", int(seed.group(1)) if seed else -1, path.stem)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(RESULTS / "correction_forms.md"))
    args = ap.parse_args()
    runs = sorted((p for p in RESULTS.glob("estimator_accuracy*.csv") if not p.stem.endswith("_calibration")
                   and p.with_name(p.stem + "_calibration.csv").exists()), key=run_order)
    if not runs:
        print(f"correction_forms: no estimator_accuracy runs with a _calibration.csv under {RESULTS}/ "
              "(run from the repository root, after benchmarks/estimator_accuracy.py)", file=sys.stderr)
        sys.exit(2)
    table = {p.stem.replace("estimator_accuracy", "") or "(quiet)": run_rows(p) for p in runs}
    lines = ["# Forms of the per-model correction, refitted on the kept runs", "",
             "`python benchmarks/correction_forms.py` (method: the script's docstring).  Each cell: within +-10 % "
             "of the sessions' mean / drift-free / speed-checked (- where the run did not record the check).", "",
             "| run | " + " | ".join(FORMS) + " |", "|---|" + "---|" * len(FORMS)]
    for run, rows in table.items():
        cells = [f"{m:.0%} / {d:.0%} / " + (f"{s:.1%}" if s is not None else "-") for _, m, d, s in rows]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    means = [np.mean([rows[i][2] for rows in table.values()]) for i in range(len(FORMS))]
    checked = [np.mean([rows[i][3] for rows in table.values() if rows[i][3] is not None]) for i in range(len(FORMS))]
    lines += ["", "Drift-free, mean over the runs: " + "; ".join(f"{f} {m:.1%}" for f, m in zip(FORMS, means)) + ".",
              "Speed-checked, mean over the runs that recorded the check: "
              + "; ".join(f"{f} {m:.1%}" for f, m in zip(FORMS, checked)) + "."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
