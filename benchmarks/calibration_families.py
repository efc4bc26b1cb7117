"""Few-shot calibration on other model families: mbv2 and NAS-Bench-Macro networks on unseen accelerators.

For each space (the ``mbv2`` space, and NAS-Bench-Macro as declared in ``benchmarks/nasbench_macro.py``)
``--n`` random networks; each of ``--synthetic`` accelerators of the npu family drawn from the ``test``
seed stream (disjoint from the prior's sources) costs them, times ``--noise`` log-normal measurement
noise.  ``zeroshot.estimator.calibrated_device.calibrate`` gets k measured networks (the shipped prior: no
source was fitted on these spaces, so all of them serve, as for users' own networks) and predicts the
others; Spearman rho on those, mean over ``--seeds`` draws.  Beside it: the old prior (the shared devices
only), and MACs as the predictor.

Usage: python benchmarks/calibration_families.py [--n 500] [--k 20] [--seeds 5] [--synthetic 12] [--noise 0.03]
Writes benchmarks/results/calibration_families.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration_hw import draws  # noqa: E402
from calibration_kinds import unseen_device_args  # noqa: E402
from nasbench_macro import nasbench_macro  # noqa: E402
from zeroshot.estimator.calibrated_device import calibrate  # noqa: E402
from zeroshot.estimator.calibration_features import arch_table  # noqa: E402
from zeroshot.estimator.calibration_prior import load_prior  # noqa: E402
from zeroshot.estimator.counts import table_counts  # noqa: E402
from zeroshot.estimator.synthetic_devices import sample_npu_devices, with_noise  # noqa: E402
from zeroshot.spaces import get_space  # noqa: E402


def run_space(space, n, k, seeds, devices, noise) -> dict:
    archs = space.sample(n, seed=0)
    table = arch_table(space, archs)
    macs = table_counts(table)["macs"]
    priors = {"ours": load_prior(), "old": load_prior().without_kinds({"npu"}).without_local()}
    out = {}
    for t, device in enumerate(devices):
        y = with_noise(device.latency_ms(table), noise, seed=t)
        rows = []
        for idx, rest in draws(len(archs), t, k, seeds):
            row = []
            for prior in priors.values():
                fitted = calibrate([archs[i] for i in idx], y[idx], space=space, prior=prior)
                row.append(spearmanr(fitted.predict(space, [archs[i] for i in rest]), y[rest]).statistic)
            rows.append(row + [spearmanr(macs[rest], y[rest]).statistic])
        out[device.name] = np.mean(rows, 0)
    return out


def table(res: dict, descr: dict) -> list[str]:
    lines = ["| device | ours | old prior | MACs | device |", "|---|---|---|---|---|"]
    for d, vals in res.items():
        lines.append(f"| {d} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {descr[d]} |")
    for name, agg in (("**mean**", np.mean), ("**min**", np.min)):
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in agg(list(res.values()), 0)) + " |  |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--k", type=int, default=20)
    unseen_device_args(p)
    p.add_argument("-o", "--output", default=str(Path(__file__).with_name("results") / "calibration_families.md"))
    args = p.parse_args(argv)
    t0 = time.time()
    devices = sample_npu_devices(args.synthetic, stream="test")
    descr = {d.name: d.summary() for d in devices}
    lines = ["# Few-shot calibration on other model families (unseen accelerators)", "",
             f"`python benchmarks/calibration_families.py --n {args.n} --k {args.k} --seeds {args.seeds} "
             f"--synthetic {args.synthetic} --noise {args.noise:g}`.  " + " ".join(__doc__.split("\n\n")[1].split()),
             ""]
    for space in (get_space("mbv2"), nasbench_macro()):
        with threadpool_limits(1):          # a shared machine: one BLAS thread
            res = run_space(space, args.n, args.k, args.seeds, devices, args.noise)
        lines += [f"## {space.name} ({args.n} networks, k={args.k})", ""] + table(res, descr) + [""]
        print(f"{space.name} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    lines += [f"Took {time.time() - t0:.0f} s on this machine (one BLAS thread).", ""]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
