"""``zs.from_torch`` on real torch modules: exact counts and speed.

1. Exactness on the torchvision-style test models (:mod:`torch_models`): the IR's params against
   ``sum(p.numel())``, its MACs against a forward-hook count, and the built network's output shapes.
2. Exactness on every row of ``../shared/data/macro/nas_bench_macro_cifar10_unique.csv``: the skeleton written
   as a plain ``nn.Module`` (:class:`torch_models.MacroNet`), traced, ``params`` and ``flops_macs`` against
   the file's columns (rows matched / total, per column).
3. Speed: networks per second of ``from_torch`` on those modules (one torch thread, one run), beside the
   time to construct the torch modules themselves, measured in the same run.

Usage: ``python benchmarks/from_torch.py [--rows N]`` -> ``benchmarks/results/from_torch.md``.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import require_shared  # noqa: E402
from torch_models import MODELS, hook_macs, macro_net  # noqa: E402

from zeroshot.spaces.builder import build  # noqa: E402
from zeroshot.spaces.tracing import from_torch  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "from_torch.md"


def test_models() -> list[str]:
    """One table row per test model: ops, task, params and MACs against torch's, output shapes."""
    rows = []
    for name, (ctor, shape) in MODELS.items():
        model = ctor()
        t0 = time.perf_counter()
        arch = from_torch(model, shape)
        dt = time.perf_counter() - t0
        params, macs = sum(p.numel() for p in model.parameters()), hook_macs(model, shape)
        x = torch.zeros(1, *shape)
        with torch.no_grad():
            same = _shapes(build(arch).eval()(x)) == _shapes(model.eval()(x))
        rows.append(f"| {name} | {'x'.join(map(str, shape))} | {arch.task} | {len(arch.ops)} | {params:,} | "
                    f"{'yes' if arch.params == params else 'NO'} | {macs:,} | {'yes' if arch.macs == macs else 'NO'} | "
                    f"{'yes' if same else 'NO'} | {dt * 1000:.0f} |")
    return rows


def _shapes(out):
    return [tuple(o.shape) for o in (out if isinstance(out, (list, tuple)) else [out])]


def macro(rows: list[dict]) -> dict:
    """Matches per column over ``rows``, and the seconds spent constructing modules and tracing them."""
    matched = {"params": 0, "flops_macs": 0}
    build_s = trace_s = 0.0
    for row in rows:
        t0 = time.perf_counter()
        net = macro_net(row["arch"])
        t1 = time.perf_counter()
        arch = from_torch(net, (3, 32, 32))
        t2 = time.perf_counter()
        build_s, trace_s = build_s + t1 - t0, trace_s + t2 - t1
        matched["params"] += arch.params == int(row["params"])
        matched["flops_macs"] += arch.macs == int(row["flops_macs"])
    return {"matched": matched, "build_s": build_s, "trace_s": trace_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=0, help="first N rows only (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    (path,) = require_shared("macro/nas_bench_macro_cifar10_unique.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    rows = rows[:args.rows] if args.rows else rows
    models = test_models()
    m = macro(rows)
    n = len(rows)
    lines = [
        "# from_torch: torch modules -> IR, exactness and speed", "",
        "Reproduce: `OPENBLAS_NUM_THREADS=1 python benchmarks/from_torch.py` (one torch thread, one run).", "",
        "## Test models (written in benchmarks/torch_models.py, no torchvision, no weights)", "",
        "| model | input | task | IR ops | params (torch) | params equal | MACs (hooks) | MACs equal | "
        "built output shapes equal | from_torch ms |",
        "|---|---|---|---|---|---|---|---|---|---|", *models, "",
        "## NAS-Bench-Macro (the skeleton as a plain nn.Module, every row of the shared file)", "",
        "| column | rows matched | total |", "|---|---|---|",
        *(f"| {col} | {k:,} | {n:,} |" for col, k in m["matched"].items()), "",
        "## Speed (NAS-Bench-Macro networks, input 3x32x32, one thread)", "",
        "| step | seconds | networks / s |", "|---|---|---|",
        f"| construct the torch module | {m['build_s']:.1f} | {n / m['build_s']:.0f} |",
        f"| from_torch (two forward passes, trace, IR) | {m['trace_s']:.1f} | {n / m['trace_s']:.0f} |", "",
        f"from_torch takes {m['trace_s'] / m['build_s']:.2f}x the time of constructing the module it reads "
        "(it runs the model twice: once as given, to word an input shape it rejects, once traced). The "
        "machine is shared with other jobs: the ratio, measured in the same run, is the comparable figure.", "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
