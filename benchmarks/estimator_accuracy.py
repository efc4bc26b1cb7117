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
from dataclasses import dataclass
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
from zeroshot.estimator.measured_device import CORRECTION, PER_UNIT, POOLED, corrected_ms, model_terms
from zeroshot.estimator.profiling import calibration_archs_of, fit_correction, profile
from zeroshot.estimator.speed_check import SpeedCheck
from zeroshot.spaces import get_space, list_spaces, to_table

EVAL_SEED_OFFSET = 1000          # the profile samples with seeds seed and seed + 1
CALIBRATION_ARCHS = 40           # per space, profile()'s default
KT_COLUMNS = ("conv", "dwconv")  # kernel types whose raw sums the per-architecture CSV keeps


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
    return corrected_ms(fit_correction(cal["raw_ms"][m], cal["terms"][m], cal["measured_ms"][m], kept), raw_ms,
                        terms)


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


@dataclass
class Run:
    """One run's measurements: the evaluation networks' sessions A and B (median ms, noise, load before and
    after, seconds), the profiled device and its calibration record, and the mbv2 calibration models as
    measured in each session."""

    args: argparse.Namespace
    texts: list
    archs: list
    cal_texts: list
    a: tuple
    b: tuple
    cal_a: np.ndarray
    cal_b: np.ndarray
    load_profile: float
    dev: object

    @property
    def cal(self) -> dict:
        return self.dev.calibration

    @property
    def cal_profile_ms(self) -> np.ndarray:
        return self.cal["measured_ms"][self.cal["space"] == "mbv2"]

    @property
    def ref(self) -> np.ndarray:
        return (self.a[0] + self.b[0]) / 2


def measure(args, space, texts, cal_texts, log) -> Run:
    """Session A, the profile (the device saved and loaded again, as a user has it), session B; the mbv2
    calibration models are interleaved with the evaluation networks in both sessions."""
    archs, cal_archs = [space.to_ir(t) for t in texts], [space.to_ir(t) for t in cal_texts]
    log(f"session A: {args.n} mbv2 architectures")
    a = session(archs + cal_archs, args.rounds, args.seed)
    log(f"profile ({args.budget_s:.0f} s budget)")
    load_profile = os.getloadavg()[0]
    dev = profile([get_space(n) for n in list_spaces()], budget_s=args.budget_s, threads=1, seed=args.seed,
                  log=log, calibration_archs=CALIBRATION_ARCHS)
    calibration = dev.calibration
    assert list(calibration["arch"][calibration["space"] == "mbv2"]) == cal_texts
    with tempfile.TemporaryDirectory() as tmp:        # predict with the device as saved and loaded
        dev.save(Path(tmp) / "local.json")
        dev = load_device(str(Path(tmp) / "local.json"))
    dev.calibration = calibration
    log("session B")
    b = session(archs + cal_archs, args.rounds, args.seed + 1)
    n = args.n
    return Run(args, texts, archs, cal_texts, *[(x[0][:n], x[1][:n]) + x[2:] for x in (a, b)], a[0][n:], b[0][n:],
               load_profile, dev)


def predict(run: Run, space, codes) -> dict:
    """Predictions of the evaluation networks: as `zeroshot estimate --device`, whole-network, pooled, the
    plain kernel sum (also per kernel type), and the earlier correction forms refitted."""
    dev, table = run.dev, to_table(run.archs)
    kt = decompose(table, dev.fusion)
    kernel_raw = dev.raw_kernel_ms(kt)
    raw, terms = kt.sum_per_arch(kernel_raw), model_terms(kt)
    return {"pred": Estimator(space, dev).evaluate(codes)["latency_ms"], "raw": raw, "terms": terms,
            "whole": dev.for_space("mbv2").latency_ms(table), "pooled": dev.for_space(POOLED).latency_ms(table),
            "kernels": np.diff(kt.ptr),
            "per_type": {t: kt.sum_per_arch(np.where(kt.cols["type"] == KT[t], kernel_raw, 0)) for t in KT_COLUMNS},
            "earlier": {form: refitted(run.cal, "mbv2", raw, terms, kept) for form, kept in EARLIER_FORMS.items()}}


def write_architectures(run: Run, p: dict, path: Path):
    """Per evaluation network: its cost features, raw sums, predictions and session measurements."""
    columns = (p["terms"][:, PER_UNIT.index("ms_per_mb")], p["terms"][:, PER_UNIT.index("ms_per_weight_mb")],
               p["raw"], *p["per_type"].values(), p["pred"], p["pooled"], run.a[0], run.b[0], run.a[1], run.b[1])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "resolution", "macs", "kernels", "written_mb", "weight_mb", "raw_sum_ms",
                    *(f"raw_{t}_ms" for t in KT_COLUMNS), "predicted_ms", "pooled_predicted_ms", "session_a_ms",
                    "session_b_ms", "noise_a", "noise_b"])
        for j, (text, arch) in enumerate(zip(run.texts, run.archs)):
            w.writerow([text, arch.input_shape[1], arch.macs, p["kernels"][j]] + [f"{v[j]:.5g}" for v in columns])


def write_calibration(run: Run, path: Path):
    """Per calibration model of the profile: its latency then and (mbv2) in the sessions, raw sum and terms."""
    sessions = {t: (ma, mb) for t, ma, mb in zip(run.cal_texts, run.cal_a, run.cal_b)}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "space", "profile_ms", "sessions_ms", "raw_sum_ms", "written_mb", "kernels",
                    "weight_mb", "session_a_ms", "session_b_ms"])
        for t, sp, m, r, (mb, n, wmb) in zip(*(run.cal[k] for k in ("arch", "space", "measured_ms", "raw_ms",
                                                                     "terms"))):
            ab = sessions.get(t) if sp == "mbv2" else None
            w.writerow([t, sp, f"{m:.5g}", f"{np.mean(ab):.5g}" if ab else "", f"{r:.5g}", f"{mb:.5g}", f"{n:g}",
                        f"{wmb:.5g}"] + ([f"{v:.5g}" for v in ab] if ab else ["", ""]))


def accuracy_rows(run: Run, p: dict) -> list:
    """The report's rows on the predictions: plain, per session, speed-checked, earlier forms."""
    a, b, ref, pred = run.a, run.b, run.ref, p["pred"]
    checks = [session_speed_check(run.dev, run.cal_texts, ms) for ms in (run.cal_a, run.cal_b)]
    checks_all = [SpeedCheck(ms / run.cal_profile_ms) for ms in (run.cal_a, run.cal_b)]   # all 40 as references
    checked = lambda q, cs: [within(q * c.ratio, x[0]) for c, x in zip(cs, (a, b))]  # noqa: E731
    ok, ok_all = checked(pred, checks), checked(pred, checks_all)
    ok_earlier = {form: checked(q, checks) for form, q in p["earlier"].items()}
    return [
        f"| predictions within +-10 % of the measured latency (mean of sessions A and B) | "
        f"**{within(pred, ref):.0%}** ({len(ref)} architectures) |",
        f"| within +-10 % of session A / of session B alone | {within(pred, a[0]):.0%} / {within(pred, b[0]):.0%} |",
        f"| within +-5 % / +-20 % (mean of sessions) | {within(pred, ref, 0.05):.0%} / {within(pred, ref, 0.20):.0%} |",
        f"| median / 90th percentile absolute relative error | {np.median(np.abs(pred / ref - 1)):.1%} / "
        f"{np.percentile(np.abs(pred / ref - 1), 90):.1%} |",
        f"| Spearman rho, predicted vs measured | {spearmanr(pred, ref)[0]:.3f} |",
        f"| largest difference, segment-cached estimate vs whole-architecture prediction | "
        f"{np.max(np.abs(pred / p['whole'] - 1)):.2e} |",
        f"| plain sum of kernel predictions (no per-model correction): within +-10 % | {within(p['raw'], ref):.0%} |",
        f"| with the pooled correction (all spaces' calibration models) instead of mbv2's: within +-10 % | "
        f"{within(p['pooled'], ref):.0%} |",
        f"| **speed-checked**: the device rescaled in each session by its {len(checks[0].ratios)} mbv2 reference "
        f"networks as measured in that session (`zeroshot device check -o`): within +-10 % of session A / B; "
        f"mean; the ratios | {ok[0]:.0%} / {ok[1]:.0%}; **{np.mean(ok):.0%}**; "
        f"{checks[0].ratio:.3f} / {checks[1].ratio:.3f} |",
        f"| speed-checked with all {len(run.cal_texts)} mbv2 calibration models as references, not "
        f"{len(checks[0].ratios)}: within +-10 % of A / B; mean; the ratios | {ok_all[0]:.0%} / "
        f"{ok_all[1]:.0%}; {np.mean(ok_all):.0%}; {checks_all[0].ratio:.3f} / {checks_all[1].ratio:.3f} |",
        *(f"| the mbv2 correction refitted {form}: within +-10 % (mean of sessions); speed-checked, A / B; "
          f"mean | {within(q, ref):.0%}; {ok_earlier[form][0]:.0%} / {ok_earlier[form][1]:.0%}; "
          f"{np.mean(ok_earlier[form]):.0%} |" for form, q in p["earlier"].items()),
    ]


def noise_rows(run: Run) -> list:
    """The report's rows on the machine: noise, drift, load, and the profile."""
    a, b, ref, i = run.a, run.b, run.ref, run.dev.info
    ratio_ab, ratio_cal = b[0] / a[0], (run.cal_a + run.cal_b) / 2 / run.cal_profile_ms
    spread = lambda r: f"{np.median(r):.3f} ({np.percentile(r, 5):.3f}-{np.percentile(r, 95):.3f})"  # noqa: E731
    return [
        f"| **noise**: median relative IQR of samples within a session (A / B) | "
        f"{np.median(a[1]):.1%} / {np.median(b[1]):.1%} |",
        f"| **noise**: session B / session A latency, median (5th-95th percentile) | {spread(ratio_ab)} |",
        f"| **noise**: architectures whose two sessions agree within +-10 % | {within(b[0], a[0]):.0%} |",
        f"| measured latency, median (min-max) | {np.median(ref):.1f} ms ({ref.min():.1f}-{ref.max():.1f}) |",
        f"| load average (1 min) at session A start/end, profile start, session B start/end | "
        f"{a[2]:.1f}/{a[3]:.1f}, {run.load_profile:.1f}, {b[2]:.1f}/{b[3]:.1f} on {os.cpu_count()} CPUs |",
        f"| profile: seconds, kernels measured, spaces | {i['profile_seconds']:.0f} s, {i['kernels_measured']}, "
        f"{', '.join(i['spaces'])} |",
        f"| profile: kernel noise (median relative IQR), kernels within +-10 % out-of-bag | "
        f"{i['kernel_noise_median']:.1%}, {i['kernel_oob_within_10pct']:.0%} |",
        f"| profile: mbv2 correction (scale, ms per MB written, ms per kernel, ms per MB of weights, intercept "
        f"ms); pooled | {fmt(run.dev.corrections['mbv2'])}; {fmt(run.dev.corrections[POOLED])} |",
        f"| profile: calibration models within +-10 % (own space's correction) | "
        f"{i['calibration_within_10pct']:.0%} of {i['calibration_models']}, each measured on "
        f"{i['calibration_occasions']} occasions ("
        f"{', '.join(f'{k} {v:.0%}' for k, v in i['calibration_within_10pct_per_space'].items())}) |",
        f"| **noise**: mbv2 calibration models, latency in the sessions / during the profile, median "
        f"(5th-95th percentile) | {spread(ratio_cal)} |",
        f"| session A / B measuring time (with the {len(run.cal_texts)} mbv2 calibration models interleaved) | "
        f"{a[4]:.0f} s / {b[4]:.0f} s |",
    ]


def header(run: Run) -> list:
    args = run.args
    return [
        "# Measured-device accuracy on this machine (mbv2, batch 1, one thread)",
        "",
        f"`python benchmarks/estimator_accuracy.py --budget-s {args.budget_s:g} --n {args.n} --rounds "
        f"{args.rounds} --seed {args.seed}{' --busy' if args.busy else ''}`; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}; clock: {run.dev.info['clock']} (the thread's CPU time; time slices "
        f"taken by other processes do not count, their contention for caches and memory does)."
        + (" Busy: a busy-loop process pinned to core 1 for the whole run (session A, the profile, session B), "
           "this process pinned to core 0; other processes of the machine ran as they came." if args.busy else ""),
        "",
        "| figure | value |",
        "|---|---|",
    ]


def accuracy(args):
    log = lambda s: print(f"[{time.strftime('%X')}] {s}", file=sys.stderr, flush=True)  # noqa: E731
    space = get_space("mbv2")
    codes = space.sample_distinct_codes(args.n, np.random.default_rng(args.seed + EVAL_SEED_OFFSET))
    texts = [space.format(c) for c in codes]
    cal_texts = calibration_archs_of(space, CALIBRATION_ARCHS, args.seed)
    assert not set(cal_texts) & set(texts), "evaluation architectures overlap the profile's calibration set"
    if args.load_check:
        return load_check([space.to_ir(t) for t in texts], args.rounds, args.seed,
                          Path(args.out).with_name("estimator_accuracy_load.md"))
    run = measure(args, space, texts, cal_texts, log)
    p = predict(run, space, codes)
    csv_path = Path(args.out).with_suffix(".csv")
    write_architectures(run, p, csv_path)
    write_calibration(run, Path(args.out).with_name(Path(args.out).stem + "_calibration.csv"))
    lines = header(run) + accuracy_rows(run, p) + noise_rows(run) + [
        "",
        "Target (issue 4): >= 95 % within +-10 % (nn-Meter: 99.0 % on a mobile CPU).  A prediction cannot be",
        "more consistent with a measurement than two measurements of the same network are with each other:",
        "the session agreement row is the ceiling this machine allowed during the run.",
        "",
        f"Per architecture: `{csv_path}`.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
