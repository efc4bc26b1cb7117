"""The default zero-shot score and the batch computation of proxies for a list of architectures.

``score`` aggregates complementary proxies by ranks, as AZ-NAS does: each proxy ranks the batch
(1 = worst, N = best in its own direction) and an architecture's score is ``sum_p log(rank_p / N)``, so
one proxy calling an architecture poor costs it much more than another calling it good gains it.  The
score is relative to the batch it is computed on (N = 1 gives 0).  Undefined values (NaN, or infinities
against the proxy's direction) rank worst, ties share their mean rank.

Default components (:data:`DEFAULT_PROXIES`): two complementary views of expressivity at initialisation,
one in feature space and one in activation space:

* ``meco``: the smallest eigenvalue of each layer's channel correlation, summed (how far every layer
  is from collapsing its channels onto fewer directions; data-free);
* ``swap_layers``: the number of distinct sign patterns of each activation layer's units over 16 images,
  summed over layers (how finely the network partitions its input: swap counted layer by layer, so that
  large networks do not all sit at swap's single 2^16 cap).

Both were chosen among :data:`CANDIDATES` on development sets only (600 NB201 cells, 400 NAS-Bench-Macro
networks) with a validity rule (no component at its cap on more than 10% of mbv2 networks): the protocol is
benchmarks/score_protocol.py, the figures and the history docs/proxies.md.

Example
-------
>>> import numpy as np
>>> rank_aggregate({"macs": np.array([1.0, 3.0, 2.0]), "params": np.array([1.0, 2.0, 3.0])})
array([-2.19722458, -0.40546511, -0.40546511])
"""
from __future__ import annotations

import sys
import warnings
from typing import Iterable, Sequence

import numpy as np
from scipy.stats import rankdata

from zeroshot.spaces import Arch, SearchSpace, to_table

from .batches import Data, resize, synthetic_data
from .errors import ParameterError
from .proxies import get_proxy

__all__ = ["CANDIDATES", "DEFAULT_BATCH", "DEFAULT_PROXIES", "compute_ir_proxies", "compute_proxies", "data_proxies",
           "input_batch", "log_ranks", "network_values", "rank_aggregate", "resolve_proxies",
           "split_by_kind", "topology_values"]

DEFAULT_PROXIES = ("meco", "swap_layers")
#: the combinations the default was (re-)chosen from, fixed before each round (see the module docstring)
CANDIDATES = (("meco", "swap"), ("meco_batch", "swap"), ("meco", "swap_layers"), ("meco_batch", "swap_layers"),
              ("meco", "meco_batch", "swap_layers"), ("meco_batch", "swap_layers", "live_macs"),
              ("meco", "swap_layers", "live_macs"), ("meco_batch",), ("swap_layers",),
              ("meco_full", "swap_layers"), ("meco_full",))
DEFAULT_BATCH = 64


def log_ranks(name: str, values: np.ndarray) -> np.ndarray:
    """``log(rank / N)`` of each value of proxy ``name``, ranked in its direction (NaN worst, ties
    averaged): 0 for the best, ``log(1 / N)`` for the worst."""
    v = np.asarray(values, dtype=np.float64)
    oriented = v if get_proxy(name).higher_is_better else -v
    oriented = np.where(np.isnan(oriented), -np.inf, oriented)
    return np.log(rankdata(oriented) / len(v))


def rank_aggregate(values: dict[str, np.ndarray]) -> np.ndarray:
    """Sum over proxies of :func:`log_ranks` (see the module docstring)."""
    if not values:
        raise ValueError("rank_aggregate needs at least one proxy")
    return sum(log_ranks(name, v) for name, v in values.items())


def resolve_proxies(names: Sequence[str] | str) -> list[str]:
    """Validated proxy names, from a list or a comma-separated string (``score`` is not a proxy; the string
    ``default`` names the default score's proxies).

    >>> resolve_proxies("meco, swap"), resolve_proxies("default")
    (['meco', 'swap'], ['meco', 'swap_layers'])
    """
    if isinstance(names, str) and names.strip() == "default":
        return list(DEFAULT_PROXIES)
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ParameterError("proxies", "at least one proxy name", fix="for example naswot,synflow")
    for n in names:
        get_proxy(n)                    # an unknown name raises, listing the choices
    if len(set(names)) != len(names):
        raise ParameterError("proxies", "distinct proxy names", ",".join(names))
    return names


def data_proxies(names: Sequence[str]) -> list[str]:
    """The proxies of ``names`` that read images or labels (without data: seeded Gaussian input).

    >>> data_proxies(["meco", "snip", "params"])
    ['snip']
    """
    return [n for n in names if get_proxy(n).needs in ("images", "labels")]


def input_batch(arch, data: Data | None, batch_size: int | None, seed: int) -> Data:
    """The batch the network proxies of ``arch`` see: ``data`` resized to the architecture's input
    resolution when it differs (mbv2 candidates run at 160 to 224 pixels), or seeded synthetic input of
    its input shape and class count."""
    if data is not None:
        return resize(data, arch.input_shape[1:])
    classes = arch.tensor_shape(arch.outputs[0])[0]
    return synthetic_data(batch_size or DEFAULT_BATCH, arch.input_shape, classes, seed)


def compute_proxies(space: SearchSpace, codes: np.ndarray, names: Sequence[str], data: Data | None = None,
                    seed: int = 0, batch_size: int | None = None, progress: bool = False
                    ) -> dict[str, np.ndarray]:
    """Every proxy of ``names`` for every architecture (row of ``codes``), float64 arrays.

    Topology proxies run on the whole batch at once.  Network proxies run once per isomorphism class
    (:meth:`~zeroshot.spaces.SearchSpace.canonical_codes`) on its representative, all requested ones sharing
    passes, on the first ``batch_size`` (default 64) images of ``data``, or without ``data`` on seeded
    synthetic input (:func:`zeroshot.batches.synthetic_data`).
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1, space.code_length)
    topo, net = split_by_kind(names)
    out = topology_values(to_table(space.irs(codes)), topo) if topo else {}
    if net:
        unique, inverse = np.unique(space.canonical_codes(codes), axis=0, return_inverse=True)
        reps = (space.build_ir(u) for u in unique)
        values = network_values(reps, len(unique), net, data, seed, batch_size, progress)
        out.update({n: v[inverse.reshape(-1)] for n, v in values.items()})
    return {n: out[n] for n in names}


def compute_ir_proxies(archs: Sequence[Arch], names: Sequence[str], data: Data | None = None, seed: int = 0,
                       batch_size: int | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """:func:`compute_proxies` for IR architectures of any origin (each network built and scored once)."""
    topo, net = split_by_kind(names)
    if net:
        from .proxies.network import check_labels
        for arch in archs:                         # every network's before any is scored
            check_labels(arch, net)
    out = topology_values(to_table(archs), topo) if topo else {}
    if net:
        out.update(network_values(archs, len(archs), net, data, seed, batch_size, progress))
    return {n: out[n] for n in names}


def split_by_kind(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``names`` split into topology proxies and network proxies, order kept."""
    return ([n for n in names if get_proxy(n).kind == "topology"],
            [n for n in names if get_proxy(n).kind == "network"])


def topology_values(table, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Topology proxies ``names`` of every architecture of an op table, float64 arrays."""
    return {n: np.asarray(get_proxy(n).fn(table), dtype=np.float64) for n in names}


def network_values(archs: Iterable[Arch], count: int, names: Sequence[str], data: Data | None, seed: int,
                   batch_size: int | None, progress: bool) -> dict[str, np.ndarray]:
    """Network proxies ``names`` of each of ``count`` architectures, sharing one input batch per
    (input shape, classes)."""
    from .proxies.network import compute_network_proxies

    batches: dict = {}
    values = np.empty((count, len(names)), dtype=np.float64)
    if progress and sys.stderr.isatty():
        from tqdm import tqdm
        archs = tqdm(archs, total=count, desc="proxies", unit="arch", file=sys.stderr)
    for i, arch in enumerate(archs):
        shape = (arch.input_shape, arch.tensor_shape(arch.outputs[0])[0])
        if shape not in batches:
            batches[shape] = input_batch(arch, data, batch_size, seed)
        batch = batches[shape]
        got = compute_network_proxies(arch, names, batch.x, batch.y, seed=seed,
                                      batch_size=batch_size or DEFAULT_BATCH)
        values[i] = [got[n] for n in names]
    out = {n: values[:, j] for j, n in enumerate(names)}
    if "linear_regions" in out:
        _warn_at_cap(out["linear_regions"])
    return out


def _warn_at_cap(regions: np.ndarray) -> None:
    """Warn when linear_regions sits near its cap (one pattern per crop) on most networks: it then ranks
    them hardly at all (MobileNet-scale networks on small crops)."""
    from .proxies.linear_regions import LR_SAMPLES
    near = int(np.sum(regions >= 0.98 * LR_SAMPLES))
    if len(regions) > 1 and near > len(regions) / 2:
        warnings.warn(f"linear_regions is within 2% of its cap ({LR_SAMPLES} crops, one pattern each) on {near} "
                      f"of {len(regions)} networks: it hardly ranks them; prefer the default score",
                      RuntimeWarning, stacklevel=3)
