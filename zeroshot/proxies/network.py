"""Network proxies computed on a built torch network, all requested ones from shared passes.

:func:`compute_network_proxies` is the entry point; each registered proxy can also be computed alone
(``get_proxy(name).fn(arch, x, y, seed)``), which runs only the passes that proxy needs.  The passes,
their conventions and the deliberate differences from the reference implementations are described in
:mod:`zeroshot.proxies.passes`.

Conventions: batch of real images ``x`` (float32, N C H W, already normalised) with integer labels ``y``
(when ``y`` is None, labels are drawn uniformly from the classifier's classes with the seed); PyTorch
default initialisation from per-op canonical seeds (isomorphic networks get the same weights, see
:mod:`zeroshot.proxies.structure`); train-mode BN; only conv, transposed conv and linear weights are
scored; only live ops (those an output depends on) are observed.  Everything is deterministic for a seed.

Any geometry the IR holds is scored: non-square kernels and strides, asymmetric padding (ceil-mode pools
included), dilation, transposed convolutions (their weights are scored like a conv's) and every
activation.  A classifier ending in a global pool and a flatten without a linear layer builds to an
(N, C, 1, 1) output, read as (N, C) logits.  Proxies that read labels need a classifier (one output of
shape (classes,)); on a segmentation or detection network they raise an
:class:`~zeroshot.errors.InputError` naming them; the others score any network (the input Jacobian and
the NTK of a network with several outputs sum them).

**NaN / inf rule.**  A proxy never raises on a broken network and never ranks one first: a non-finite
value (NaN, or an infinity, e.g. the log-determinant of a singular kernel or the condition number of a
singular NTK) is replaced by the worst value for its direction, ``-inf`` when higher is better and
``+inf`` when lower is better, counted in :data:`NONFINITE` per proxy, and reported by a
``RuntimeWarning``.

Speed: in long loops call ``torch.set_num_threads(1)`` and start the process with
``OPENBLAS_NUM_THREADS=1``; on a machine loaded by other jobs, threaded BLAS made the small eigen-problems
here up to 100x slower; call :func:`zeroshot.allocator.keep_freed_memory` once (the command line does) so
that the memory freed after one architecture is reused by the next instead of page-faulted back in (what
that costs: :mod:`zeroshot.allocator`).

Example
-------
>>> import torch
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> arch = space.to_ir(space.sample(1, seed=0)[0])
>>> x = torch.randn(8, 3, 32, 32)
>>> out = compute_network_proxies(arch, ["naswot", "snip", "synflow"], x, seed=0)
>>> sorted(out)
['naswot', 'snip', 'synflow']
"""
from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from zeroshot.checks import check_batch_size
from zeroshot.errors import DataError, InputError
from zeroshot.spaces.ir import Arch

from . import get_proxy, list_proxies, register_proxy
from .linear_regions import linear_regions
from .meco import meco
from .net import network, stream_seed
from .passes import BATCH_PROXIES, LABEL_PROXIES, SWAP_SAMPLES, batch_pass
from .synflow import synflow
from .zen import zen

#: proxy name -> how many times it was non-finite and replaced by its worst value (this process)
NONFINITE: Counter = Counter()

_SPECS = {   # name: (needs, higher_is_better, description)
    "naswot": ("images", True, "log|det K|, K = units - Hamming distance of activation codes (NASWOT)"),
    "synflow": ("nothing", True, "log sum |W dR/dW|: |W|, no BN, float64, all-ones input (SynFlow)"),
    "snip": ("labels", True, "sum |W * dL/dW| for the cross-entropy loss (SNIP)"),
    "grad_norm": ("labels", True, "sum over layers of ||dL/dW||_2 (cross-entropy)"),
    "grasp": ("labels", True, "-sum W * (H g), Hessian-gradient product of the loss, first 16 images (GraSP)"),
    "fisher": ("labels", True, "sum over channels of 0.5 mean_b (sum_hw act * dL/dact)^2"),
    "jacob_cov": ("images", True, "-sum log(l + k) + 1/(l + k) over the input-Jacobian correlation spectrum"),
    "zen": ("random", True, "log E|f(x) - f(x + 0.01 e)| + sum log BN std, N(0,1) weights (Zen-NAS)"),
    "zico": ("labels", True, "sum over layers of log sum mean|g| / std(g) over two half batches (ZiCo)"),
    "meco": ("random", True, "sum over layers of the smallest eigenvalue of the channel correlation (MeCo)"),
    "meco_full": ("random", True, "meco, plus the smallest eigenvalue over 8 sampled channels (MeCo_opt, "
                  "unweighted) on the layers with C >= H*W, where meco's term is 0"),
    "swap": ("images", True, "distinct sign patterns of activations over 16 samples (SWAP, no regulariser)"),
    "swap_layers": ("images", True, "swap per activation layer, summed: no single 2^16 cap for the network"),
    "meco_batch": ("images", True, "meco over the batch: 8 channels per layer x every image's positions, "
                   "weighted C / 8 (MeCo_opt); no 1x1 / batch-one NaN"),
    "ntk": ("images", False, "condition number of the per-sample NTK Gram matrix (TE-NAS; lower is better)"),
    "linear_regions": ("images", True, "distinct activation patterns of a thin copy over 1,000 crops (TE-NAS)"),
}


def _single(name: str):
    def fn(arch: Arch, x, y=None, seed: int = 0) -> float:
        return compute_network_proxies(arch, [name], x, y, seed)[name]
    fn.__name__ = name
    fn.__doc__ = f"{_SPECS[name][2]} (this proxy alone)."
    return fn


for _name, (_needs, _hib, _desc) in _SPECS.items():
    register_proxy(_name, needs=_needs, higher_is_better=_hib, kind="network", description=_desc)(_single(_name))

NETWORK_PROXIES = tuple(_SPECS)


def _as_batch(arch: Arch, x, y, seed: int, batch_size: int | None):
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float().contiguous()
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(arch.input_shape):
        raise DataError(f"x must be a float (N, C, H, W) batch with (C, H, W) = {arch.input_shape}, got "
                         f"shape {tuple(x.shape)}; resize or transpose the images to the network's input")
    if batch_size is not None:
        x = x[:batch_size]
    check_batch_size(x.shape[0], "x")
    classes = arch.ops[arch.outputs[0] - 1].c_out
    if y is None:
        y = torch.randint(classes, (x.shape[0],), generator=torch.Generator().manual_seed(stream_seed(seed, "labels")))
    else:
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()[:x.shape[0]]
        if y.shape != (x.shape[0],) or int(y.min()) < 0 or int(y.max()) >= classes:
            raise ValueError(f"y must hold {x.shape[0]} integer labels in 0..{classes - 1}, got shape "
                             f"{tuple(y.shape)} and range {int(y.min())}..{int(y.max())}")
    return x, y


def compute_network_proxies(arch: Arch, names: Sequence[str], x, y=None, seed: int = 0,
                            batch_size: int | None = None) -> dict[str, float]:
    """Values of the network proxies ``names`` for ``arch`` on the batch ``x`` (labels ``y``), sharing
    passes; deterministic for ``seed``.  Non-finite values follow the module's NaN / inf rule."""
    names = list(dict.fromkeys(names))
    for n in names:
        if get_proxy(n).kind != "network":
            raise ValueError(f"{n!r} is not a network proxy; choose from {', '.join(list_proxies('network'))}")
    check_labels(arch, names)
    x, y = _as_batch(arch, x, y, seed, batch_size)
    if {"swap", "swap_layers"} & set(names) and x.shape[0] < SWAP_SAMPLES:
        warnings.warn(f"swap reads {SWAP_SAMPLES} samples but the batch has {x.shape[0]}: it counts patterns over "
                      f"{x.shape[0]} (at most 2^{x.shape[0]}), not comparable with scores of a batch of "
                      f"{SWAP_SAMPLES} or more; pass at least {SWAP_SAMPLES} images", UserWarning, stacklevel=2)
    torch.manual_seed(stream_seed(seed, "torch"))
    want = set(names)
    raw: dict[str, float] = {}
    net = network(arch, seed) if want & (BATCH_PROXIES | {"meco", "meco_full", "zen"}) else None   # one build, reused
    if want & BATCH_PROXIES:
        raw.update(batch_pass(arch, net, want, x, y))
    if want & {"meco", "meco_full"}:
        raw["meco"], raw["meco_full"] = meco(arch, net, seed, full="meco_full" in want)
    if "zen" in want:                      # last: re-initialises the network
        raw["zen"] = zen(arch, net, seed)
    if "synflow" in want:
        raw["synflow"] = synflow(arch, seed)
    if "linear_regions" in want:
        raw["linear_regions"] = linear_regions(arch, x, seed)
    return _apply_nonfinite_rule({n: raw[n] for n in names})


def check_labels(arch: Arch, names: Sequence[str]) -> None:
    """Proxies that read labels need a classifier: one output of shape (classes,) (a linear layer, or a
    global pool followed by a flatten).

    >>> from zeroshot.spaces.ir import Graph
    >>> g = Graph(3, 8, 8)
    >>> check_labels(g.finish(g.conv(0, 4, 3), task="segment"), ["naswot", "snip"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    zeroshot.errors.InputError: snip needs a classifier's labels: this segment network outputs (4, 8, 8), ...
    """
    labelled = [n for n in names if get_proxy(n).needs == "labels"]
    shapes = [arch.tensor_shape(t) for t in arch.outputs]
    if labelled and (len(shapes) != 1 or shapes[0][1:] != (1, 1)):
        raise InputError(f"{', '.join(labelled)} need{'s' if len(labelled) == 1 else ''} a classifier's labels: "
                         f"this {arch.task} network outputs {', '.join(map(str, shapes))}, not (classes,); "
                         "choose proxies that need no labels (needs images, random or nothing)")


def _apply_nonfinite_rule(values: dict[str, float]) -> dict[str, float]:
    bad = []
    for n, v in values.items():
        if not math.isfinite(v):
            values[n] = -math.inf if get_proxy(n).higher_is_better else math.inf
            NONFINITE[n] += 1
            bad.append(f"{n}={v}")
    if bad:
        warnings.warn(f"non-finite proxy values set to their worst ({', '.join(bad)})", RuntimeWarning,
                      stacklevel=3)
    return values


def fwd_bwd_seconds(arch: Arch, x, y=None, seed: int = 0, repeats: int = 3) -> float:
    """Median seconds of one forward + backward (cross-entropy, train mode) of the network on the
    batch, timed alone from a freshly built network (no warm-up pass); :func:`suite_cost` times the same
    unit alternately with the suite."""
    x, y = _as_batch(arch, x, y, seed, None)
    net = network(arch, seed)
    return float(np.median([_fwd_bwd(net, x, y) for _ in range(repeats)]))


def _fwd_bwd(net, x, y) -> float:
    t = time.perf_counter()
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return time.perf_counter() - t


def suite_cost(arch: Arch, names: Sequence[str], x, y=None, seed: int = 0, repeats: int = 3) -> dict:
    """Seconds of :func:`compute_network_proxies` for ``names`` and its cost as a multiple of one
    forward + backward pass of the same network on the same batch: the two are timed alternately
    (``repeats`` times each, one warm-up pass first), medians."""
    x, y = _as_batch(arch, x, y, seed, None)
    net = network(arch, seed)
    _fwd_bwd(net, x, y)
    units, suites = [], []
    for _ in range(repeats):
        units.append(_fwd_bwd(net, x, y))
        t = time.perf_counter()
        compute_network_proxies(arch, names, x, y, seed)
        suites.append(time.perf_counter() - t)
    unit, suite = float(np.median(units)), float(np.median(suites))
    return {"seconds": suite, "fwd_bwd_seconds": unit, "multiple": suite / unit}


__all__ = ["check_labels", "compute_network_proxies", "suite_cost", "fwd_bwd_seconds", "NETWORK_PROXIES", "NONFINITE",
           "LABEL_PROXIES"]
