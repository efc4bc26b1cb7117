"""Accuracy of the `measured` device on this machine: predicted vs measured end-to-end mbv2 latency.

Usage: python benchmarks/estimator_accuracy.py [--budget-s 600] [--n 100] [--rounds 15] [--seed 0] [--load-check]
[--busy]
Writes benchmarks/results/estimator_accuracy.md (with ``--busy``: estimator_accuracy_busy.md, the whole run
beside a busy loop pinned to the other core); per architecture its measurements, prediction and cost
features to benchmarks/results/estimator_accuracy.csv, and the profile's calibration models (latency
during the profile and, for mbv2, in the sessions) to estimator_accuracy_calibration.csv, to study the
error offline.  Run from the repository root (``PYTHONPATH=.`` where the package is not installed).

Steps (one run, fixed seeds): measure ``n`` random mbv2 architectures end to end with torch (batch 1, one
thread, all architectures interleaved in every round, each sample after one untimed call, medians;
session A); profile this machine as ``zeroshot device profile`` does (all registered spaces,
``--budget-s``); measure the same architectures again (session B).  The reference latency of an
architecture is the mean of its two session medians; the figure is the share of predictions within
+-10 % of it; beside it, the same with the device speed-checked in each session (its reference models
measured in that session rescale it, as ``zeroshot device check -o`` does).  Noise is reported four ways:
the median relative IQR of the samples within a session, the A-vs-B disagreement, the share of
architectures whose two sessions agree within +-10 %, and the profile's 40 mbv2 calibration models
measured again in both sessions (interleaved with the evaluation architectures) against their latency
during the profile.  The evaluation architectures are drawn with a
seed the profile never uses (the profile's calibration architectures are checked to be disjoint); the
prediction is the one `zeroshot estimate --device` makes, with the device's mbv2 correction.  The load
average is recorded: on a shared machine, other processes slow timings down in ways no model of this
machine can predict.
"""
import argparse
import csv
import os
from contextlib import contextmanager
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.stats import spearmanr

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.estimator.kernel_table import KT, decompose
from zeroshot.estimator.timing import measure_archs
from zeroshot.estimator.measured_device import CORRECTION, PER_UNIT, POOLED, model_terms
from zeroshot.estimator.profiling import calibration_archs_of, fit_correction, profile
from zeroshot.estimator.speed_check import SpeedCheck
from zeroshot.spaces import get_space, list_spaces, to_table

EVAL_SEED_OFFSET = 1000          # the profile samples with seeds seed and seed + 1
CALIBRATION_ARCHS = 40           # per space, profile()'s default


def within(pred, ref, tol=0.10):
    return float(np.mean(np.abs(pred - ref) / ref <= tol))


#: earlier forms of the correction (the per-unit terms they had), refitted on each run's calibration models
EARLIER_FORMS = {"without its weight term (scale, MB, kernels, intercept)": ("ms_per_mb", "ms_per_kernel"),
                 "without its weight and per-kernel terms (scale, MB, intercept)": ("ms_per_mb",)}


def fmt(c):
    return ", ".join(f"{c[k]:.4f}" for k in CORRECTION)


def refitted(cal: dict, space: str, raw_ms: np.ndarray, terms: np.ndarray, kept: tuple) -> np.ndarray:
    """Predictions from raw kernel sums and :func:`model_terms` with ``space``'s correction refitted on the
    same calibration models with only the per-unit terms in ``kept`` (an earlier form of the correction)."""
    m = cal["space"] == space
    mask = np.array([k in kept for k in PER_UNIT], float)
    c = fit_correction(cal["raw_ms"][m], cal["terms"][m] * mask, cal["measured_ms"][m])
    return c["scale"] * raw_ms + (terms * mask) @ np.array([c[k] for k in PER_UNIT]) + c["intercept_ms"]


def session(archs, rounds, seed):
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    timings = measure_archs(archs, threads=1, rounds=rounds, seed=seed, chunk=len(archs))   # all interleaved
    return (np.array([t.median_ms for t in timings]), np.array([t.noise for t in timings]),
            load, os.getloadavg()[0], time.perf_counter() - t0)


BUSY_LOOP = "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\nt = time.time()\n" \
            "while time.time() - t < float(sys.argv[2]): pass\n"


@contextmanager
def busy_other_core(seconds=7200):
    """Pin this process to the first core and keep a busy-loop process on the second while inside."""
    os.sched_setaffinity(0, {0})
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, "1", str(seconds)])
    try:
        time.sleep(1)
        yield
    finally:
        busy.kill()
        busy.wait()


def load_check(archs, rounds, seed, out):
    """Medians of ``archs`` measured quiet, with a busy-loop process pinned to the other core (this process
    pinned to the first), and quiet again; written to ``out``."""
    os.sched_setaffinity(0, {0})
    quiet = session(archs, rounds, seed)
    with busy_other_core(600):
        loaded = session(archs, rounds, seed)
    again = session(archs, rounds, seed)
    lines = [f"# Timing with a busy loop on the other core ({len(archs)} mbv2 networks, {rounds} rounds, seed "
             f"{seed})", "", f"`python benchmarks/estimator_accuracy.py --load-check --n {len(archs)}`; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores.", "",
             "| session | load before | median noise | median / max change of the medians vs quiet | within +-10% |",
             "|---|---|---|---|---|"]
    for name, (ms, noise, load, _, _) in (("quiet", quiet), ("busy loop on core 1", loaded), ("quiet again", again)):
        d = np.abs(ms / quiet[0] - 1)
        lines.append(f"| {name} | {load:.1f} | {np.median(noise):.3f} | {np.median(d):.1%} / {d.max():.1%} | "
                     f"{np.mean(d <= 0.10):.0%} |")
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget-s", type=float, default=600)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="default: benchmarks/results/estimator_accuracy.md "
                    "(estimator_accuracy_busy.md with --busy)")
    ap.add_argument("--load-check", action="store_true",
                    help="only time the networks quiet, beside a busy loop on the other core, and quiet again "
                         "(writes estimator_accuracy_load.md)")
    ap.add_argument("--busy", action="store_true",
                    help="the whole run (both sessions and the profile) beside a busy loop pinned to the other "
                         "core, this process pinned to the first")
    args = ap.parse_args()
    args.out = args.out or f"benchmarks/results/estimator_accuracy{'_busy' if args.busy else ''}.md"
    if args.busy:
        with busy_other_core():
            return accuracy(args)
    return accuracy(args)


def session_speed_check(dev, cal_texts: list, cal_ms: np.ndarray) -> SpeedCheck:
    """The device's mbv2 reference models as measured within a session (interleaved with the evaluation
    networks) against their profile-time latency: what `zeroshot device check` measures, taken in the session."""
    at = dict(zip(cal_texts, cal_ms))
    refs = [r for r in dev.info["reference"] if r["space"] == "mbv2"]
    return SpeedCheck.of(refs, [at[r["arch"]] for r in refs])


def accuracy(args):
    log = lambda s: print(f"[{time.strftime('%X')}] {s}", file=sys.stderr, flush=True)  # noqa: E731
    space = get_space("mbv2")
    codes = space.sample_distinct_codes(args.n, np.random.default_rng(args.seed + EVAL_SEED_OFFSET))
    texts = [space.format(c) for c in codes]
    spaces = [get_space(n) for n in list_spaces()]
    cal_texts = calibration_archs_of(space, CALIBRATION_ARCHS, args.seed)
    assert not set(cal_texts) & set(texts), "evaluation architectures overlap the profile's calibration set"
    archs = [space.to_ir(t) for t in texts]
    if args.load_check:
        return load_check(archs, args.rounds, args.seed, Path(args.out).with_name("estimator_accuracy_load.md"))
    table = to_table(archs)
    cal_archs = [space.to_ir(t) for t in cal_texts]      # re-measured in the sessions: same conditions?

    log(f"session A: {args.n} mbv2 architectures")
    a = session(archs + cal_archs, args.rounds, args.seed)
    log(f"profile ({args.budget_s:.0f} s budget)")
    load_p = os.getloadavg()[0]
    dev = profile(spaces, budget_s=args.budget_s, threads=1, seed=args.seed, log=log,
                  calibration_archs=CALIBRATION_ARCHS)
    cal = dev.calibration
    in_mbv2 = cal["space"] == "mbv2"
    assert list(cal["arch"][in_mbv2]) == cal_texts
    cal_profile_ms = cal["measured_ms"][in_mbv2]
    with tempfile.TemporaryDirectory() as tmp:        # predict with the device as saved and loaded
        dev.save(Path(tmp) / "local.json")
        dev = load_device(str(Path(tmp) / "local.json"))
    log("session B")
    b = session(archs + cal_archs, args.rounds, args.seed + 1)
    cal_sessions = (a[0][args.n:] + b[0][args.n:]) / 2
    checks = [session_speed_check(dev, cal_texts, x[0][args.n:]) for x in (a, b)]
    checks_all = [SpeedCheck(x[0][args.n:] / cal_profile_ms) for x in (a, b)]   # all 40 models as references
    cal_ab = {t: (ma, mb) for t, ma, mb in zip(cal_texts, a[0][args.n:], b[0][args.n:])}
    a, b = [(x[0][:args.n], x[1][:args.n]) + x[2:] for x in (a, b)]
    ref = (a[0] + b[0]) / 2
    pred = Estimator(space, dev).evaluate(codes)["latency_ms"]        # as `zeroshot estimate --device`
    mbv2_dev = dev.for_space("mbv2")
    whole = mbv2_dev.latency_ms(table)
    kt = decompose(table, dev.fusion)
    owner = np.repeat(np.arange(len(kt)), np.diff(kt.ptr))
    per_arch = lambda v: np.bincount(owner, weights=v, minlength=len(kt))  # noqa: E731
    kernel_raw = dev.raw_kernel_ms(kt)
    raw = per_arch(kernel_raw)
    pooled = dev.for_space(POOLED).latency_ms(table)
    terms = model_terms(kt)
    earlier = {form: refitted(cal, "mbv2", raw, terms, kept) for form, kept in EARLIER_FORMS.items()}
    csv_path = Path(args.out).with_suffix(".csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "resolution", "macs", "kernels", "written_mb", "weight_mb", "raw_sum_ms",
                    "raw_conv_ms", "raw_dwconv_ms", "predicted_ms", "pooled_predicted_ms", "session_a_ms",
                    "session_b_ms", "noise_a", "noise_b"])
        per_type = {t: per_arch(np.where(kt.cols["type"] == KT[t], kernel_raw, 0)) for t in ("conv", "dwconv")}
        columns = (terms[:, PER_UNIT.index("ms_per_mb")], terms[:, PER_UNIT.index("ms_per_weight_mb")], raw,
                   per_type["conv"], per_type["dwconv"], pred, pooled, a[0], b[0], a[1], b[1])
        for j, text in enumerate(texts):
            w.writerow([text, archs[j].input_shape[1], archs[j].macs, kt.ptr[j + 1] - kt.ptr[j]] +
                       [f"{v[j]:.5g}" for v in columns])
    ratio_ab = b[0] / a[0]
    ratio_cal = cal_sessions / cal_profile_ms
    with open(Path(args.out).with_name(Path(args.out).stem + "_calibration.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "space", "profile_ms", "sessions_ms", "raw_sum_ms", "written_mb", "kernels",
                    "weight_mb", "session_a_ms", "session_b_ms"])
        sess = dict(zip(cal_texts, cal_sessions))
        for t, sp, m, r, (mb, n, wmb) in zip(*(cal[k] for k in ("arch", "space", "measured_ms", "raw_ms", "terms"))):
            w.writerow([t, sp, f"{m:.5g}", f"{sess[t]:.5g}" if sp == "mbv2" else "", f"{r:.5g}", f"{mb:.5g}",
                        f"{n:g}", f"{wmb:.5g}"] + ([f"{v:.5g}" for v in cal_ab[t]] if sp == "mbv2" else ["", ""]))
    i = dev.info
    checked = [within(pred * check.ratio, x[0]) for check, x in zip(checks, (a, b))]
    checked_earlier = {form: [within(p * check.ratio, x[0]) for check, x in zip(checks, (a, b))]
                       for form, p in earlier.items()}
    checked_all = [within(pred * check.ratio, x[0]) for check, x in zip(checks_all, (a, b))]
    lines = [
        "# Measured-device accuracy on this machine (mbv2, batch 1, one thread)",
        "",
        f"`python benchmarks/estimator_accuracy.py --budget-s {args.budget_s:g} --n {args.n} --rounds "
        f"{args.rounds} --seed {args.seed}{' --busy' if args.busy else ''}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}; clock: {i['clock']} (the thread's CPU time; time slices "
        f"taken by other processes do not count, their contention for caches and memory does)."
        + (" Busy: a busy-loop process pinned to core 1 for the whole run (session A, the profile, session B), "
           "this process pinned to core 0; other processes of the machine ran as they came." if args.busy else ""),
        "",
        "| figure | value |",
        "|---|---|",
        f"| predictions within +-10 % of the measured latency (mean of sessions A and B) | "
        f"**{within(pred, ref):.0%}** ({args.n} architectures) |",
        f"| within +-10 % of session A / of session B alone | {within(pred, a[0]):.0%} / {within(pred, b[0]):.0%} |",
        f"| within +-5 % / +-20 % (mean of sessions) | {within(pred, ref, 0.05):.0%} / {within(pred, ref, 0.20):.0%} |",
        f"| median / 90th percentile absolute relative error | {np.median(np.abs(pred / ref - 1)):.1%} / "
        f"{np.percentile(np.abs(pred / ref - 1), 90):.1%} |",
        f"| Spearman rho, predicted vs measured | {spearmanr(pred, ref)[0]:.3f} |",
        f"| largest difference, segment-cached estimate vs whole-architecture prediction | "
        f"{np.max(np.abs(pred / whole - 1)):.2e} |",
        f"| plain sum of kernel predictions (no per-model correction): within +-10 % | {within(raw, ref):.0%} |",
        f"| with the pooled correction (all spaces' calibration models) instead of mbv2's: within +-10 % | "
        f"{within(pooled, ref):.0%} |",
        f"| **speed-checked**: the device rescaled in each session by its {len(checks[0].ratios)} mbv2 reference "
        f"networks as measured in that session (`zeroshot device check -o`): within +-10 % of session A / B; "
        f"mean; the ratios | {checked[0]:.0%} / {checked[1]:.0%}; **{np.mean(checked):.0%}**; "
        f"{checks[0].ratio:.3f} / {checks[1].ratio:.3f} |",
        f"| speed-checked with all {len(cal_texts)} mbv2 calibration models as references, not "
        f"{len(checks[0].ratios)}: within +-10 % of A / B; mean; the ratios | {checked_all[0]:.0%} / "
        f"{checked_all[1]:.0%}; {np.mean(checked_all):.0%}; {checks_all[0].ratio:.3f} / {checks_all[1].ratio:.3f} |",
        *(f"| the mbv2 correction refitted {form}: within +-10 % (mean of sessions); speed-checked, A / B; "
          f"mean | {within(p, ref):.0%}; {checked_earlier[form][0]:.0%} / {checked_earlier[form][1]:.0%}; "
          f"{np.mean(checked_earlier[form]):.0%} |" for form, p in earlier.items()),
        f"| **noise**: median relative IQR of samples within a session (A / B) | "
        f"{np.median(a[1]):.1%} / {np.median(b[1]):.1%} |",
        f"| **noise**: session B / session A latency, median (5th-95th percentile) | {np.median(ratio_ab):.3f} "
        f"({np.percentile(ratio_ab, 5):.3f}-{np.percentile(ratio_ab, 95):.3f}) |",
        f"| **noise**: architectures whose two sessions agree within +-10 % | {within(b[0], a[0]):.0%} |",
        f"| measured latency, median (min-max) | {np.median(ref):.1f} ms ({ref.min():.1f}-{ref.max():.1f}) |",
        f"| load average (1 min) at session A start/end, profile start, session B start/end | "
        f"{a[2]:.1f}/{a[3]:.1f}, {load_p:.1f}, {b[2]:.1f}/{b[3]:.1f} on {os.cpu_count()} CPUs |",
        f"| profile: seconds, kernels measured, spaces | {i['profile_seconds']:.0f} s, {i['kernels_measured']}, "
        f"{', '.join(i['spaces'])} |",
        f"| profile: kernel noise (median relative IQR), kernels within +-10 % out-of-bag | "
        f"{i['kernel_noise_median']:.1%}, {i['kernel_oob_within_10pct']:.0%} |",
        f"| profile: mbv2 correction (scale, ms per MB written, ms per kernel, ms per MB of weights, intercept "
        f"ms); pooled | "
        f"{fmt(mbv2_dev.correction)}; {fmt(dev.corrections[POOLED])} |",
        f"| profile: calibration models within +-10 % (own space's correction) | "
        f"{i['calibration_within_10pct']:.0%} of {i['calibration_models']}, each measured on "
        f"{i['calibration_occasions']} occasions ("
        f"{', '.join(f'{k} {v:.0%}' for k, v in i['calibration_within_10pct_per_space'].items())}) |",
        f"| **noise**: mbv2 calibration models, latency in the sessions / during the profile, median "
        f"(5th-95th percentile) | {np.median(ratio_cal):.3f} ({np.percentile(ratio_cal, 5):.3f}-"
        f"{np.percentile(ratio_cal, 95):.3f}) |",
        f"| session A / B measuring time (with the {len(cal_texts)} mbv2 calibration models interleaved) | "
        f"{a[4]:.0f} s / {b[4]:.0f} s |",
        "",
        "Target (issue 4): >= 95 % within +-10 % (nn-Meter: 99.0 % on a mobile CPU).  A prediction cannot be",
        "more consistent with a measurement than two measurements of the same network are with each other:",
        "the session agreement row is the ceiling this machine allowed during the run.",
        "",
    ]
    lines.append(f"Per architecture: `{csv_path}`.")
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
