"""Speed of the mbv2 space's batch operations: vectorised sampling, membership, text format and parse.

Usage: python benchmarks/mbv2_sampling.py [--n 1000000] [--text-n 100000] [--repeats 3] [--seed 0]
Writes benchmarks/results/mbv2_sampling.md.  Each figure is the best of ``--repeats`` runs (wall clock and
process CPU time), all in one run; the reference is drawing a uniform int64 matrix of the same shape with
the same generator, so the ratio says what sampling costs beyond writing that many random numbers.
"""
import argparse
import platform
import time
from pathlib import Path

import numpy as np

from zeroshot.spaces import get_space


def best(fn, repeats):
    """(wall s, cpu s, result) of the fastest of ``repeats`` calls."""
    runs = []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - w, time.process_time() - c))
    wall, cpu = min(runs)
    return wall, cpu, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--text-n", type=int, default=10**5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    space = get_space("mbv2")
    rng = np.random.default_rng(args.seed)
    space.sample_codes(args.n, rng)                                            # warm-up (page faults)
    rows = []
    wall, cpu, codes = best(lambda: space.sample_codes(args.n, rng), args.repeats)
    rows.append((f"sample_codes({args.n:,})", wall, cpu))
    ref = best(lambda: rng.integers(0, 2, codes.shape), args.repeats)
    rows.append((f"reference: rng.integers of shape {codes.shape}", *ref[:2]))
    wall_c, cpu_c, inside = best(lambda: space.contains(codes), args.repeats)
    rows.append((f"contains({args.n:,})", wall_c, cpu_c))
    few = codes[: args.text_n]
    wall_f, cpu_f, texts = best(lambda: [space.format(c) for c in few], args.repeats)
    rows.append((f"format x {len(few):,}", wall_f, cpu_f))
    wall_p, cpu_p, back = best(lambda: [space.parse(t) for t in texts], args.repeats)
    rows.append((f"parse x {len(few):,}", wall_p, cpu_p))
    assert inside.all() and np.array_equal(np.array(back), few)

    lines = ["# mbv2 space: batch operation speed", "",
             f"`python benchmarks/mbv2_sampling.py --n {args.n} --text-n {args.text_n} --repeats {args.repeats} "
             f"--seed {args.seed}` on {platform.processor() or platform.machine()}, "
             f"numpy {np.__version__}; best of {args.repeats}, one run.", "",
             f"Space size {space.size:,} ({space.size:.3e}), code length {space.code_length} int64.", "",
             "| operation | wall s | CPU s | per second (wall) |", "|---|---:|---:|---:|"]
    counts = [args.n, args.n, args.n, len(few), len(few)]
    lines += [f"| {name} | {w:.3f} | {c:.3f} | {k / w:,.0f} |" for (name, w, c), k in zip(rows, counts)]
    lines += ["", f"Sampling / reference (wall): {rows[0][1] / ref[0]:.2f}x; "
                  f"all {args.n:,} samples are curated members (contains)."]
    out = Path(__file__).parent / "results" / "mbv2_sampling.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
