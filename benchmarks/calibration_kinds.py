"""Few-shot calibration on hardware kinds never seen: leave one kind out, and unseen accelerators.

Devices per space: the ten of ``../shared/data/hw/{nb201,fbnet}_latency.csv`` (kinds gpu, cpu, phone, pi:
:func:`zeroshot.estimator.calibration_prior.device_kind`) and the prior's analytic accelerators (kind npu:
the seven built-in npu profiles and the sampled family of
:func:`zeroshot.estimator.calibration_prior.npu_sources`), all on ``--n`` random architectures of the space.
With ``--local-cpu``, also this machine's CPU with torch and with ONNX Runtime (kind cpu), measured on some
of those architectures (benchmarks/cpu_sources.py; held out and drawn among those only).  Every device is a
source (:func:`zeroshot.estimator.calibration_prior.fit_source` on the architectures it has).

1. Leave one kind out: for each kind K, the prior holds no device of kind K; each device of K (for npu: the
   seven built-in profiles, with ``--noise`` log-normal measurement noise) gives k random measured
   architectures; Spearman rho on all its other architectures, mean over ``--seeds`` draws.  The setting (of
   calibration_hw.GRID) is chosen by the same protocol one level down, K's data unused: every other kind K2
   held out in turn (prior without K and K2, k=10, ``--inner-seeds`` draws per device of K2), best mean rho.
2. Unseen accelerators: ``--synthetic`` devices of the npu family drawn from the ``test`` seed stream
   (disjoint from the prior's ``prior`` stream), with ``--noise`` measurement noise; prior: every source;
   setting chosen by the inner protocol over all kinds.  Noise ceiling: rho of the noise-free latencies
   against the noisy ones.

Beside ours: the old method (prior of the shared devices only, without kind K; the module default setting)
and ridge (alpha 1 on one-hot operation choices, same k samples).

Usage: python benchmarks/calibration_kinds.py [--n 3000] [--seeds 5] [--inner-seeds 2] [--ks 10,20]
       [--synthetic 12] [--noise 0.03] [--spaces nb201,fbnet] [--local-cpu]
Writes benchmarks/results/calibration_kinds.md.
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

from calibration_hw import GRID, INNER_K, draws, one_hot, setting_name, shared_or_exit  # noqa: E402
from zeroshot.estimator.calibrated_device import latency_floor  # noqa: E402
from zeroshot.estimator.calibration_features import arch_table, predict_features, table_features  # noqa: E402
from zeroshot.estimator.calibration_fit import PRIOR_VARIANCES, SIMILARITY, calibrate_features  # noqa: E402
from zeroshot.estimator.calibration_prior import Prior, device_kind, fit_source, npu_sources  # noqa: E402
from zeroshot.estimator.latency_csv import latency_dataset  # noqa: E402
from zeroshot.estimator.synthetic_devices import ANCHORS, sample_npu_devices, with_noise  # noqa: E402

KIND_ORDER = ("gpu", "cpu", "phone", "pi", "npu")
DEFAULT = dict(variances={"sources": PRIOR_VARIANCES["sources"]}, similarity=SIMILARITY)
TARGET_NPU = {f"npu-{a}" for a in ANCHORS}      # the npu kind's held-out devices: the named profiles


def kept_rows(n_texts: int, n: int) -> np.ndarray:
    """The rows of a shared latency CSV of ``n_texts`` architectures the protocol keeps with ``--n n``."""
    return np.sort(np.random.default_rng(0).choice(n_texts, min(n, n_texts), replace=False))


def _spread(n: int, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Latencies ``y`` of rows ``rows`` in an array of ``n`` (NaN elsewhere)."""
    out = np.full(n, np.nan)
    out[rows] = y
    return out


def local_devices(space, kept_texts) -> dict:
    """This machine's CPU devices measured on some of ``kept_texts`` (benchmarks/cpu_sources.py):
    ``{device: (rows, latencies)}``; exits when their CSV is missing or holds an architecture not kept."""
    path = Path(__file__).with_name("results") / f"cpu_sources_{space.name}.csv"
    if not path.exists():
        raise SystemExit(f"--local-cpu: {path} not found; run python benchmarks/cpu_sources.py first")
    _, texts, devices = latency_dataset(path, space)
    where = {t: i for i, t in enumerate(kept_texts)}
    if any(t not in where for t in texts):
        raise SystemExit(f"--local-cpu: {path} holds architectures this --n does not keep (measured for "
                         f"another --kept)")
    rows = np.array([where[t] for t in texts])
    return {d: (rows, y) for d, y in devices.items()}


class Bench:
    """One space: features, every source's fit, and the targets' (possibly noisy) latencies."""

    def __init__(self, space, texts, measured, noise, n_synthetic, local=None):
        table = arch_table(space, texts)
        self.features = table_features(table)
        self.onehot = one_hot(space, texts)
        npu = {d.name: d.latency_ms(table) for d in npu_sources()}
        local = local or {}
        self.local = set(local)
        self.names = list(measured) + list(local) + list(npu)
        #: rows each device was measured on (all of them but for ``local``'s devices)
        self.rows = {d: local[d][0] if d in local else np.arange(len(texts)) for d in self.names}
        exact = {**measured, **{d: _spread(len(texts), *local[d]) for d in local}, **npu}
        self.fits = {d: fit_source(self.features[self.rows[d]], exact[d][self.rows[d]]) for d in self.names}
        seeds = {d: i for i, d in enumerate([*measured, *npu])}     # the npu targets' noise, local devices or not
        self.y = {d: with_noise(y, noise, seed=seeds[d]) if d in npu else y for d, y in exact.items()}
        synthetic = sample_npu_devices(n_synthetic, stream="test")
        self.exact_syn = {d.name: d.latency_ms(table) for d in synthetic}
        self.syn = {d: with_noise(y, noise, seed=1000 + i) for i, (d, y) in enumerate(self.exact_syn.items())}
        self.descr = {d.name: d.summary() for d in synthetic}

    def draws(self, dev: str, salt, k: int, seeds: int):
        """:func:`calibration_hw.draws` among the rows ``dev`` was measured on."""
        rows = self.rows[dev]
        for idx, rest in draws(len(rows), salt, k, seeds):
            yield rows[idx], rows[rest]

    def targets(self, kind: str) -> list[str]:
        return [d for d in self.names if device_kind(d) == kind and (kind != "npu" or d in TARGET_NPU)]

    def prior(self, out_kinds, shared_only=False) -> Prior:
        keep = [d for d in self.names if device_kind(d) not in out_kinds
                and not (shared_only and (device_kind(d) == "npu" or d in self.local))]
        return Prior(keep, np.array([self.fits[d][0] for d in keep]), np.array([self.fits[d][1] for d in keep]))

    def rho(self, prior, y, idx, rest, setting) -> float:
        b, theta = calibrate_features(self.features[idx], y[idx], prior, **setting)
        pred = np.maximum(predict_features(self.features[rest], b, theta), latency_floor(y[idx]))
        return spearmanr(pred, y[rest]).statistic

    def ridge(self, y, idx, rest) -> float:
        return spearmanr(Ridge(alpha=1.0).fit(self.onehot[idx], y[idx]).predict(self.onehot[rest]),
                         y[rest]).statistic


def inner_scores(bench: Bench, out: str | None, seeds: int) -> np.ndarray:
    """Sum over every kind K2 other than ``out`` and its devices of the rho of each setting of GRID, with a
    prior without ``out`` and K2 (k=INNER_K)."""
    total = np.zeros(len(GRID))
    for kind in KIND_ORDER:
        if kind == out:
            continue
        prior = bench.prior({out, kind})
        for u, dev in enumerate(bench.targets(kind)):
            for idx, rest in bench.draws(dev, 100 + u, INNER_K, seeds):
                total += [bench.rho(prior, bench.y[dev], idx, rest, s) for s in GRID]
    return total


def evaluate(bench, y, prior_new, prior_old, setting, ks, seeds, salt, dev=None) -> dict:
    """Mean rho over the draws of ours / old / ridge for each k (among the rows device ``dev`` was measured
    on; ``None``: all)."""
    out = {}
    for k in ks:
        picks = bench.draws(dev, salt, k, seeds) if dev else draws(len(y), salt, k, seeds)
        rows = [(bench.rho(prior_new, y, idx, rest, setting), bench.rho(prior_old, y, idx, rest, DEFAULT),
                 bench.ridge(y, idx, rest)) for idx, rest in picks]
        out[k] = np.mean(rows, 0)
    return out


def run_space(bench: Bench, ks, seeds, inner_seeds, log):
    kinds, chosen = {}, {}
    for kind in KIND_ORDER:
        chosen[kind] = GRID[int(np.argmax(inner_scores(bench, kind, inner_seeds)))]
        for t, dev in enumerate(bench.targets(kind)):
            kinds[dev] = evaluate(bench, bench.y[dev], bench.prior({kind}), bench.prior({kind}, shared_only=True),
                                  chosen[kind], ks, seeds, t, dev)
        log(f"  held out {kind}: {setting_name(chosen[kind])}")
    chosen["synthetic"] = GRID[int(np.argmax(inner_scores(bench, None, inner_seeds)))]
    syn = {dev: evaluate(bench, y, bench.prior(set()), bench.prior(set(), shared_only=True),
                         chosen["synthetic"], ks, seeds, 200 + t) for t, (dev, y) in enumerate(bench.syn.items())}
    log(f"  synthetic: {setting_name(chosen['synthetic'])}")
    return kinds, syn, chosen


def table(res: dict, ks, extra=None) -> list[str]:
    """Per device: ours / old / ridge rho for each k, then ``extra[device]`` cells; a mean row."""
    extra = extra or {}
    head = "| device | " + " | ".join(f"k={k} ours | k={k} old | k={k} ridge" for k in ks)
    ncol = 1 + 3 * len(ks) + (len(next(iter(extra.values()))) if extra else 0)
    lines = [head + "".join(f" | {h}" for h in extra.get("__head__", [])) + " |", "|---" * ncol + "|"]
    devices = [d for d in res]
    for d in devices + ["**mean**", "**min**"]:
        agg = {"**mean**": np.mean, "**min**": np.min}.get(d)
        cells = []
        for k in ks:
            vals = agg([res[x][k] for x in devices], 0) if agg else res[d][k]
            cells += [f"{v:.3f}" for v in vals]
        cells += extra.get(d, [""] * (ncol - 1 - 3 * len(ks))) if "__head__" in extra else []
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def kinds_table(kinds: dict, chosen: dict, ks) -> list[str]:
    lines = []
    for kind in KIND_ORDER:
        devs = [d for d in kinds if device_kind(d) == kind]
        lines += [f"**held out: {kind}** (setting chosen without it: {setting_name(chosen[kind])})", ""]
        lines += table({d: kinds[d] for d in devs}, ks) + [""]
    lines += ["**every held-out device**", ""] + table(kinds, ks) + [""]
    return lines


def unseen_device_args(p: argparse.ArgumentParser) -> None:
    """``--seeds``, ``--synthetic`` and ``--noise`` (also calibration_families.py's)."""
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--synthetic", type=int, default=12)
    p.add_argument("--noise", type=float, default=0.03)


def protocol_args(p: argparse.ArgumentParser, name: str, n: int, inner_seeds: int) -> None:
    """The arguments of the leave-one-kind-out protocol (also calibration_uncertainty.py's); ``name``: the
    results file's stem."""
    p.add_argument("--n", type=int, default=n)
    p.add_argument("--inner-seeds", type=int, default=inner_seeds)
    p.add_argument("--ks", default="10,20")
    unseen_device_args(p)
    p.add_argument("--spaces", default="nb201,fbnet")
    p.add_argument("-o", "--output", default=str(Path(__file__).with_name("results") / f"{name}.md"))


def protocol_command(script: str, args) -> str:
    return (f"python benchmarks/{script} --n {args.n} --seeds {args.seeds} --inner-seeds {args.inner_seeds} "
            f"--ks {args.ks} --synthetic {args.synthetic} --noise {args.noise:g} --spaces {args.spaces}")


def benches(args, log, local_cpu: bool = False):
    """Per space of ``args.spaces``: ``(space, architectures kept, Bench)``, built and used with one BLAS
    thread (a shared machine); ``local_cpu``: with this machine's CPU devices (:func:`local_devices`)."""
    for space, texts, measured in shared_or_exit(args.spaces):
        pick = kept_rows(len(texts), args.n)
        kept = [texts[i] for i in pick]
        with threadpool_limits(1):
            bench = Bench(space, kept, {d: y[pick] for d, y in measured.items()}, args.noise, args.synthetic,
                          local_devices(space, kept) if local_cpu else None)
            log(f"{space.name}: {len(pick)} architectures, {len(bench.names)} sources")
            yield space, pick, bench


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    protocol_args(p, "calibration_kinds", n=3000, inner_seeds=2)
    p.add_argument("--local-cpu", action="store_true",
                   help="this machine's CPU (benchmarks/cpu_sources.py) among the devices, kind cpu")
    args = p.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    t0 = time.time()

    def log(msg):
        print(f"{msg} ({time.time() - t0:.0f} s)", file=sys.stderr)

    command = protocol_command("calibration_kinds.py", args) + (" --local-cpu" if args.local_cpu else "")
    lines = ["# Few-shot calibration on kinds never seen (leave one kind out; unseen accelerators)", "",
             f"`{command}`.  " + " ".join(" ".join(__doc__.split("\n\n")[1:3]).split()), ""]
    for space, pick, bench in benches(args, log, args.local_cpu):
        kinds, syn, chosen = run_space(bench, ks, args.seeds, args.inner_seeds, log)
        ceiling = {d: [f"{spearmanr(bench.exact_syn[d], bench.syn[d]).statistic:.3f}", bench.descr[d]]
                   for d in syn}
        lines += [f"## {space.name} ({len(pick)} architectures)", "", "### Leave one kind out", ""]
        lines += kinds_table(kinds, chosen, ks)
        lines += [f"### Unseen accelerators (npu family, test stream, {args.noise:g} noise; setting "
                  f"{setting_name(chosen['synthetic'])})", ""]
        lines += table(syn, ks, {"__head__": ["noise ceiling", "device"], **ceiling}) + [""]
    lines += [f"Took {time.time() - t0:.0f} s on this machine (one BLAS thread).", ""]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
