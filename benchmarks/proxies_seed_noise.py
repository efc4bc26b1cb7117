"""How much a network proxy's ranking depends on the initialisation seed: the noise ceiling of any
agreement with another implementation (which necessarily uses other random weights).

For the first ``--n`` cells of the subset used by ``proxies_naslib.py`` (same data, same batch),
computes the proxies that NASLib also reports with seeds 0 and 1 and writes the Spearman rho between
the two seeds to ``benchmarks/results/proxies_seed_noise.md``.

Usage: ``python benchmarks/proxies_seed_noise.py [--n 25]`` (about 10 s per cell on one loaded core)
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads: threaded BLAS stalls under load
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxies_naslib import NASLIB_NAMES, OUT, load_batch, subset  # noqa: E402
from zeroshot.spaces import get_space  # noqa: E402
from zeroshot.proxies.network import compute_network_proxies  # noqa: E402
from common import require_shared  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=25)
    args = ap.parse_args(argv)
    path, _ = require_shared("nb201/naslib_proxies_cifar10.csv", "images/cifar10_test_846.npz")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = subset(path, 200, 0)[:args.n]
    x, y = load_batch()
    space = get_space("nb201")
    names = list(NASLIB_NAMES.values())
    runs = {s: [compute_network_proxies(space.to_ir(r["arch_str"]), names, x, y, seed=s) for r in rows]
            for s in (0, 1)}
    lines = ["# Seed noise of the network proxies (NB201, CIFAR-10)", "",
             f"`python benchmarks/proxies_seed_noise.py --n {args.n}`: the first {len(rows)} cells of the "
             "subset of `proxies_naslib.md`, same batch; Spearman rho between the scores of seed 0 and seed 1 "
             "(different random weights, same data).", "", "| proxy | rho(seed 0, seed 1) |", "|---|---|"]
    lines += [f"| {n} | {spearmanr([v[n] for v in runs[0]], [v[n] for v in runs[1]])[0]:.3f} |" for n in names]
    (OUT / "proxies_seed_noise.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
