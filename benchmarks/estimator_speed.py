"""Speed of the estimator: latency and memory of 100,000 architectures vs building a few torch models.

For every registered space, draws ``--n`` architectures (seeded; repeats allowed, since nb201 has only
15,625), and times each stage of ``estimate`` in chunks: the Python lowering to the IR (``space.irs``),
flattening to the op table (``to_table``), exact counts (Cython), kernel decomposition (numpy) and the
``npu`` latency kernel (Cython) on every built-in profile.  In the same run it times building ``--models``
torch models of the same space with ``zeroshot.spaces.builder.build``.  Where the space has a segment decomposition
it also times :class:`zeroshot.estimator.segmented.SegmentedEvaluator` on the same codes (counts and latency on every
profile) and reports its largest latency deviation from the whole-network estimate.  Writes
``benchmarks/results/estimator_speed.md``.

Usage: ``python benchmarks/estimator_speed.py [--n 100000] [--models 5] [--seed 0]``
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from zeroshot.estimator.counts import table_counts
from zeroshot.estimator.devices import list_devices, load_device
from zeroshot.estimator.kernel_table import decompose
from zeroshot.estimator.segmented import SegmentedEvaluator, count_metrics, latency_metric
from zeroshot.spaces import get_space, list_spaces, to_table
from zeroshot.spaces.builder import build

STAGES = ("to_ir", "to_table", "counts", "decompose", "npu_kernel")
RESULTS = Path(__file__).with_name("results") / "estimator_speed.md"


def time_estimates(space, n: int, seed: int, chunk: int = 5000) -> dict[str, float]:
    """Seconds per stage for ``n`` architectures of ``space`` on every built-in device."""
    devices = [load_device(d) for d in list_devices()]
    fusions = sorted({d.fusion for d in devices})
    rng = np.random.default_rng(seed)
    spent = defaultdict(float)
    checksum = 0.0
    for start in tqdm(range(0, n, chunk), desc=space.name, disable=not sys.stderr.isatty()):
        codes = space.sample_codes(min(chunk, n - start), rng)
        t0 = time.process_time()
        irs = space.irs(codes)
        t1 = time.process_time()
        table = to_table(irs)
        t2 = time.process_time()
        table_counts(table)
        t3 = time.process_time()
        kernels = {f: decompose(table, f) for f in fusions}
        t4 = time.process_time()
        for d in devices:
            checksum += float(d.kernel_latency_ms(kernels[d.fusion]).sum())
        t5 = time.process_time()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            spent[stage] += dt
    assert np.isfinite(checksum) and checksum > 0
    spent["devices"] = len(devices)
    spent["fusions"] = len(fusions)
    return dict(spent)


def time_segmented(space, n: int, seed: int, chunk: int = 5000, check: int = 1000):
    """Seconds of the segment-cached path on the codes :func:`time_estimates` draws, and the largest
    relative latency deviation from whole-network lowering on ``check`` of them (None: no segments)."""
    devices = [load_device(d) for d in list_devices()]
    ev = SegmentedEvaluator(space, {**count_metrics(), **{d.name: latency_metric(d) for d in devices}})
    if not ev.segmented:
        return None
    rng = np.random.default_rng(seed)
    t0 = time.process_time()
    for start in range(0, n, chunk):
        codes = space.sample_codes(min(chunk, n - start), rng)
        out = ev.evaluate(codes)
    seconds = time.process_time() - t0
    codes = codes[:check]
    table = to_table(space.irs(codes))
    seg = ev.evaluate(codes)
    worst = max(float(np.max(np.abs(seg[d.name] / d.latency_ms(table) - 1))) for d in devices)
    assert out
    return seconds, worst


def time_builds(space, k: int, seed: int) -> float:
    """Seconds to build ``k`` torch models of ``space`` (IR lowering included)."""
    codes = space.sample_codes(k, np.random.default_rng(seed + 1))
    torch.manual_seed(seed)
    t0 = time.process_time()
    for c in codes:
        build(space.build_ir(c))
    return time.process_time() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="architectures per space (default 100000)")
    p.add_argument("--models", type=int, default=5, help="torch models built per space (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spaces", nargs="*", default=None, help="spaces (default: every registered space)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lines = ["# Estimator speed", "",
             f"`python benchmarks/estimator_speed.py --n {args.n} --models {args.models} --seed {args.seed}`; "
             f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, torch "
             f"{torch.__version__}, one thread; all figures from this one run, in CPU seconds of this process "
             "(`time.process_time`, robust to other jobs sharing the machine).", "",
             "Seconds for n architectures per stage; `npu_kernel` covers every built-in profile; "
             "`builds` is the time to build the given number of torch models (`zeroshot.spaces.builder.build`). "
             "`ratio` = estimate total / build time.  `segmented`: the same n through the segment cache "
             "(`zeroshot.estimator.segmented`, spaces with segments only), and its largest relative latency deviation "
             "from whole-network lowering on 1,000 of the codes.", "",
             "| space | n | to_ir | to_table | counts | decompose | npu_kernel (devices) | total | "
             "us/arch | builds | ratio | to_ir share | segmented |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.spaces or list_spaces():
        space = get_space(name)
        builds = time_builds(space, args.models, args.seed)
        s = time_estimates(space, args.n, args.seed)
        total = sum(s[st] for st in STAGES)
        seg = time_segmented(space, args.n, args.seed)
        seg = "-" if seg is None else f"{seg[0]:.1f} s, max dev {100 * seg[1]:.1f}%"
        lines.append(f"| {name} | {args.n:,} | {s['to_ir']:.1f} | {s['to_table']:.1f} | {s['counts']:.2f} | "
                     f"{s['decompose']:.1f} ({s['fusions']} fusion sets) | {s['npu_kernel']:.2f} "
                     f"({s['devices']}) | {total:.1f} | {1e6 * total / args.n:.0f} | "
                     f"{builds:.2f} ({args.models} models) | {total / builds:.0f} | "
                     f"{100 * s['to_ir'] / total:.0f}% | {seg} |")
        print(lines[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
