"""The public Python API: cost and zero-shot scores of architectures, as tables in input order.

Architectures are given as encodings of a space (``space`` names it, or is a
:class:`~zeroshot.spaces.SearchSpace`), as IR :class:`~zeroshot.spaces.ir.Arch` objects, or a mix (then every
encoding is lowered to its IR).  A device is a built-in name (:func:`list_devices`), a device ``.json`` file,
or a device object (for example from ``zeroshot.calibrate``).  The command line's ``estimate`` and ``score``
are thin layers over :func:`estimate` and :func:`score`: the numbers are the same.

Example
-------
>>> import zeroshot as zs
>>> archs = zs.get_space("nb201").sample(3, seed=0)
>>> t = zs.estimate(archs, space="nb201", device="mobile-npu-16", precision="int8")
>>> t.columns
['arch', 'params', 'macs', 'peak_activation_bytes', 'model_bytes', 'latency_ms']
>>> bool((t["model_bytes"] == t["params"]).all()) and list(t["arch"]) == archs
True
>>> s = zs.score(archs, space="nb201", proxies=["synflow", "naswot"], seed=0)
>>> s.columns, len(s)
(['arch', 'score', 'synflow', 'naswot'], 3)
"""
from __future__ import annotations

import inspect
import os
import warnings
import sys
from typing import Iterable, Sequence

import numpy as np

from zeroshot.estimator.counts import model_bytes, table_counts
from zeroshot.estimator.devices import Device, load_device
from zeroshot.estimator.calibration_posterior import z_of_level
from zeroshot.estimator.estimate import Estimator
from zeroshot.spaces import Arch, SearchSpace, get_space, to_table

from .batches import Data, load_data, validate
from .checks import check_batch_size, check_int, check_seed
from .errors import ParameterError
from .scoring import (DEFAULT_PROXIES, compute_ir_proxies, compute_proxies, rank_aggregate, resolve_proxies,
                    split_by_kind)
from .table import Table

__all__ = ["Archs", "calibrate", "estimate", "measure", "proxy_names", "resolve_archs", "resolve_device",
           "resolve_space", "score"]


class Archs:
    """Architectures resolved from what a user passed: their ``names`` (canonical encodings, or
    ``arch[i]`` for IR objects without one), and either ``codes`` of ``space`` or ``irs``."""

    def __init__(self, names: list[str], codes: np.ndarray | None = None, space: SearchSpace | None = None,
                 irs: list[Arch] | None = None):
        self.names, self.space, self.codes, self._irs = names, space, codes, irs

    def __len__(self) -> int:
        return len(self.names)

    @property
    def irs(self) -> list[Arch]:
        if self._irs is None:
            self._irs = self.space.irs(self.codes)
        return self._irs


def resolve_space(space: str | SearchSpace | None, **options) -> SearchSpace | None:
    """A space from its name (with ``options``) or as given; None stays None."""
    if space is None or isinstance(space, SearchSpace):
        if options:
            raise ParameterError("space_options", "given only with a space name", sorted(options))
        return space
    if not isinstance(space, str):
        raise ParameterError("space", "a space name (see zeroshot.list_spaces()) or a SearchSpace",
                             type(space).__name__)
    return get_space(space, **options)


def resolve_device(device: str | os.PathLike | Device | None) -> Device | None:
    """A device from a built-in name or a ``.json`` path; a device object or None as given."""
    if device is None or isinstance(device, Device):
        return device
    if not isinstance(device, (str, os.PathLike)):
        raise ParameterError("device", "a device name (see zeroshot.list_devices()), a .json path or a device "
                             "object", type(device).__name__)
    return load_device(os.fspath(device))


def resolve_archs(archs, space: SearchSpace | None, input_shape=None) -> Archs:
    """Encodings, IR architectures and/or torch modules, one or a sequence, as :class:`Archs` (see the
    module docstring).  Torch modules are traced at ``input_shape`` (C, H, W) by
    :func:`~zeroshot.spaces.tracing.from_torch`.  An :class:`Archs` (already resolved, e.g. a file the
    command line parsed) is returned as it is."""
    if isinstance(archs, Archs):
        return archs
    if not (_is_single(archs) or isinstance(archs, Iterable)):
        raise ParameterError("archs", "an architecture (an encoding, an IR Arch or a torch module) or a sequence of "
                             "them", type(archs).__name__)
    items = [archs] if _is_single(archs) else list(archs)
    if not items:
        raise ParameterError("archs", "at least one architecture", "an empty sequence")
    bad = [type(a).__name__ for a in items if not isinstance(a, (str, Arch)) and not _is_module(a)]
    if bad:
        raise ParameterError("archs", "encodings (str), IR Arch objects or torch modules", bad[0])
    if any(isinstance(a, str) for a in items) and space is None:
        raise ParameterError("space", "the space the encodings belong to", None,
                             fix="pass space='nb201' (or another of zeroshot.list_spaces())")
    if all(isinstance(a, str) for a in items):
        texts, codes = space.parse_many(items)
        if len(texts) != len(items):
            raise ParameterError("archs", "one encoding per item (no blank or comment items)", len(items))
        return Archs(texts, codes, space)
    irs = [_to_ir(a, space, input_shape) for a in items]
    return Archs([_name(a, i) for i, a in enumerate(items)], irs=irs)


def _is_single(archs) -> bool:
    return isinstance(archs, (str, Arch)) or _is_module(archs)


def _is_module(obj) -> bool:
    """Whether ``obj`` is a torch module (without importing torch for those who pass none)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _to_ir(item, space: SearchSpace | None, input_shape) -> Arch:
    if isinstance(item, Arch):
        return item
    if isinstance(item, str):
        return space.to_ir(item)
    if input_shape is None:
        raise ParameterError("input_shape", "the (C, H, W) input of the torch modules", None,
                             fix="for example input_shape=(3, 224, 224)")
    from zeroshot.spaces.tracing import from_torch
    return from_torch(item, input_shape)


def _name(item, i: int) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Arch):
        return item.meta.get("name", f"arch[{i}]")
    return f"{type(item).__name__}[{i}]"


def estimate(archs, space: str | SearchSpace | None = None, device: str | Device | None = None,
             precision: str = "fp32", input_shape=None, per_layer: bool = False, interval: float | None = None,
             **space_options) -> Table:
    """Exact ``params``, ``macs``, ``peak_activation_bytes`` and ``model_bytes`` (weights at ``precision``:
    fp32, fp16 or int8) of each architecture, and ``latency_ms`` on ``device`` when given.

    ``interval`` (a coverage level such as 0.8; a calibrated device needed): also ``latency_lo_ms`` and
    ``latency_hi_ms``, where a measurement of each network falls with that probability under the fit's
    assumptions (:meth:`~zeroshot.estimator.calibrated_device.CalibratedDevice.interval_ms`).

    ``per_layer=True`` (a device needed): one row per kernel of each architecture instead, with its
    latency, MACs, bytes moved, lane utilisation, what bounds it and its share of the total
    (:func:`zeroshot.estimator.breakdown.breakdown`); an architecture's rows add up to its latency.

    >>> import zeroshot as zs
    >>> t = zs.estimate("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
    ...                 space="nb201", device="mobile-npu-16")
    >>> int(t["params"][0]), int(t["macs"][0]), bool(t["latency_ms"][0] > 0)
    (316346, 43172480, True)
    """
    resolved = resolve_archs(archs, resolve_space(space, **space_options), input_shape)
    dev = resolve_device(device)
    if resolved.space is None and getattr(dev, "space", None):
        warnings.warn(f"device {dev.name!r} was calibrated on {dev.space} architectures; these networks come as IR "
                      f"or modules, which it prices by their kernels: outside {dev.space} its latencies (and "
                      "intervals) are an extrapolation", UserWarning, stacklevel=2)
    if interval is not None:
        _check_interval(interval, dev, per_layer)
    if per_layer:
        return _per_layer(resolved, dev, precision)
    if resolved.codes is not None:
        cost = Estimator(resolved.space, dev, precision).evaluate(resolved.codes)
    else:
        cost = _estimate_irs(resolved.irs, dev, precision)
    columns = ["params", "macs", "peak_activation_bytes", "model_bytes"] + (["latency_ms"] if dev else [])
    if interval is not None:
        on = dev.for_space(resolved.space.name) if resolved.space is not None else dev
        columns += ["latency_lo_ms", "latency_hi_ms"]
        cost["latency_lo_ms"], cost["latency_hi_ms"] = on.interval_ms(to_table(resolved.irs), interval)
    return Table({"arch": resolved.names, **{c: cost[c] for c in columns}})


def _check_interval(interval, device: Device | None, per_layer: bool) -> None:
    """Intervals come from a calibrated device's posterior, per network, at a level in (0, 1)."""
    z_of_level(interval)
    if device is None or not hasattr(device, "interval_ms"):
        raise ParameterError("interval", "given with a calibrated device (intervals come from its fit)",
                             None if device is None else f"a {device.kind} device",
                             fix="calibrate one with zs.calibrate or `zeroshot calibrate`, or drop interval")
    if per_layer:
        raise ParameterError("interval", "None with per_layer=True (intervals are per network)", "a level")


def _per_layer(resolved: Archs, device: Device | None, precision: str) -> Table:
    if device is None:
        raise ParameterError("device", "given for per-layer costs", None,
                             fix="for example mobile-npu-16 (see zeroshot.list_devices())")
    from zeroshot.estimator.breakdown import COLUMNS, breakdown
    if resolved.space is not None:                  # as the Estimator: the device for that space
        device = device.for_space(resolved.space.name)
    rows = [{"arch": name, **row} for name, arch in zip(resolved.names, resolved.irs)
            for row in breakdown(arch, device, precision)]
    return Table.from_rows(rows, columns=["arch", *COLUMNS])


def _estimate_irs(irs: Sequence[Arch], device: Device | None, precision: str) -> dict[str, np.ndarray]:
    table = to_table(irs)
    cost = table_counts(table, precision)
    cost["model_bytes"] = model_bytes(cost["params"], precision)
    if device is not None:
        cost["latency_ms"] = np.asarray(device.latency_ms(table), dtype=np.float64)
    return cost


def score(archs, space: str | SearchSpace | None = None, data=None, seed: int = 0,
          proxies: Sequence[str] | str | None = None, batch_size: int | None = None, progress: bool = False,
          input_shape=None, **space_options) -> Table:
    """The zero-shot score of each architecture (the rank aggregate of ``proxies``, by default the default
    score's, :data:`zeroshot.scoring.DEFAULT_PROXIES`) and each proxy's value.

    ``score``: higher is better.  It is the sum over the proxies of ``log(rank / N)`` among the ``N``
    architectures of the call (each proxy ranked in its own direction), so it is at most 0 (0: best by every
    proxy) and compares only the architectures given together: score them in one call.  The proxies'
    columns are their raw values.  ``data``: an ``.npz`` path with ``x`` and ``y``, an ``(x, y)`` pair of
    arrays (the rules of :mod:`zeroshot.batches`), or None for seeded synthetic input.

    >>> import zeroshot as zs
    >>> s = zs.score(zs.get_space("nb201").sample(4, seed=0), space="nb201", proxies=["live_macs", "paths"])
    >>> s.columns, bool((s["score"] <= 0).all())
    (['arch', 'score', 'live_macs', 'paths'], True)
    """
    names = proxy_names(proxies)
    check_seed(seed)
    if batch_size is not None:
        check_batch_size(batch_size)
    resolved = resolve_archs(archs, resolve_space(space, **space_options), input_shape)
    batch = _score_data(data, resolved.irs[0], names, batch_size, "resolution" if resolved.codes is not None
                        else "input_shape")
    if resolved.codes is not None:
        values = compute_proxies(resolved.space, resolved.codes, names, batch, seed, batch_size, progress)
    else:
        values = compute_ir_proxies(resolved.irs, names, batch, seed, batch_size, progress)
    return Table({"arch": resolved.names, "score": rank_aggregate(values), **values})


def proxy_names(proxies) -> list[str]:
    """The proxies ``proxies`` names: None (the default score's), names in a list or one comma-separated
    string; a :class:`~zeroshot.errors.ParameterError` for anything else, an unknown name listing the choices.

    >>> proxy_names("naswot, synflow"), proxy_names(None)
    (['naswot', 'synflow'], ['meco', 'swap_layers'])
    """
    if proxies is None:
        return list(DEFAULT_PROXIES)
    if isinstance(proxies, str):
        return resolve_proxies(proxies)
    items = list(proxies) if isinstance(proxies, Iterable) else [proxies]
    bad = [type(p).__name__ for p in items if not isinstance(p, str)]
    if bad:
        raise ParameterError("proxies", "None, proxy names (see zeroshot.list_proxies()) or one comma-separated "
                             "string of them", bad[0])
    return resolve_proxies(items)


def _score_data(data, arch: Arch, names: Sequence[str], batch_size: int | None, input_param: str) -> Data | None:
    """``data`` read and checked against the first architecture's input and classes (see :func:`score`);
    ``input_param``: what sets the input side (a space's ``resolution``, networks' ``input_shape``)."""
    if data is None:
        return None
    shape, classes = arch.input_shape, arch.tensor_shape(arch.outputs[0])[0]
    if isinstance(data, Data):
        batch = data
    elif isinstance(data, (str, os.PathLike)):
        batch = load_data(os.fspath(data), shape, classes, input_param)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        batch = validate(np.asarray(data[0]), np.asarray(data[1]), shape, classes, source="data",
                         input_param=input_param)
    else:
        raise ParameterError("data", "an .npz path, an (x, y) pair of arrays or None", type(data).__name__)
    if split_by_kind(names)[1]:
        check_batch_size(len(batch), "data")
    if batch_size is not None and batch_size > len(batch):
        raise ParameterError("batch_size", f"at most the {len(batch)} images of the data", batch_size)
    return batch


def calibrate(archs, latency_ms, space: str | SearchSpace | None = None, input_shape=None, name: str = "calibrated",
              **options) -> Device:
    """A device fitted to the measured whole-model latencies (ms: a sequence, an array or a tensor) of a few
    architectures, usable wherever a device name is (:func:`zeroshot.estimator.calibrated_device.calibrate`).
    Encodings need their ``space`` (a name, or a space object for one with options:
    ``zs.get_space("mbv2", P=16)``); IR architectures and torch modules (traced at ``input_shape``) of any
    origin need none: the device then predicts any network.  ``options``: the fit's (``prior``,
    ``variances``, ``noise``, ``robust_z``, ``similarity``).

    >>> import zeroshot as zs
    >>> archs = zs.get_space("nb201").sample(12, seed=0)
    >>> measured = 3 * zs.estimate(archs, space="nb201", device="edgetpu-like")["latency_ms"]
    >>> dev = zs.calibrate(archs, measured, space="nb201", name="mine")
    >>> t = zs.estimate(archs, space="nb201", device=dev)
    >>> dev.name, bool(abs(t["latency_ms"] / measured - 1).max() < 0.5)
    ('mine', True)
    """
    from zeroshot.estimator.calibrated_device import calibrate as fit
    _check_fit_options(options)
    latency_ms = _untensored(latency_ms)
    resolved = resolve_archs(archs, resolve_space(space), input_shape)
    if resolved.codes is not None:
        return fit(resolved.names, latency_ms, space=resolved.space, name=name, **options)
    return fit(resolved.irs, latency_ms, space=None, name=name, **options)


def _check_fit_options(options: dict) -> None:
    """Refuse a keyword of :func:`calibrate` the fit does not take (a space option, a typo), naming those it
    takes: ``prior`` and the keywords of :func:`~zeroshot.estimator.calibration_fit.calibrate_features`."""
    from zeroshot.estimator.calibration_fit import calibrate_features
    params = list(inspect.signature(calibrate_features).parameters)
    accepted = ["prior", *params[params.index("prior") + 1:]]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ParameterError(unknown[0], f"one of calibrate's options ({', '.join(accepted)})", None,
                             fix="a space's options go to its space object: space=zs.get_space(name, **options)")


def _untensored(values):
    """A torch tensor as a numpy array (on the CPU, without its graph); anything else as given."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return values


def measure(archs, space: str | SearchSpace | None = None, input_shape=None, threads: int = 1, batch: int = 1,
            rounds: int = 15, device: str = "auto", clock: str = "auto", seed: int = 0,
            runtime: str = "torch") -> Table:
    """Latency of each architecture measured with torch on this machine: ``latency_ms`` (the median of
    interleaved rounds) and ``noise`` (relative inter-quartile range), as ``zeroshot measure`` prints
    (:func:`zeroshot.estimator.timing.measure_archs`); ``runtime``: torch, or onnxruntime (CPU, an optional
    extra).

    >>> import zeroshot as zs
    >>> t = zs.measure(zs.get_space("nb201").sample(2, seed=0), space="nb201", rounds=3)
    >>> t.columns, bool((t["latency_ms"] > 0).all())
    (['arch', 'latency_ms', 'noise'], True)
    """
    from zeroshot.estimator.timing import measure_archs, pick_clock, require_onnxruntime, runtime_device
    for param, value in (("threads", threads), ("batch", batch), ("rounds", rounds)):
        check_int(param, value, 1, "a positive count")
    check_seed(seed)
    pick_clock(clock, runtime_device(runtime, device), threads)      # checked before anything is built
    if runtime != "torch":
        require_onnxruntime()
    resolved = resolve_archs(archs, resolve_space(space), input_shape)
    _check_fits_in_memory(resolved.irs, batch)
    timings = measure_archs(resolved.irs, threads=threads, batch=batch, device=device, rounds=rounds, seed=seed,
                            clock=clock, runtime=runtime)
    return Table({"arch": resolved.names, "latency_ms": [t.median_ms for t in timings],
                  "noise": [t.noise for t in timings]})


def _check_fits_in_memory(irs: Sequence[Arch], batch: int) -> None:
    """Refuse a ``batch`` whose fp32 activations at their peak (the estimator's exact count, per network)
    would take more than half of this machine's memory: measuring it would swap or be killed."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):             # no such figure on this platform: no check
        return
    need = batch * float(np.max(table_counts(to_table(irs), "fp32")["peak_activation_bytes"]))
    if need > total / 2:
        raise ParameterError("batch", f"a batch whose activations fit in half of this machine's "
                             f"{total / 2 ** 30:.0f} GiB", batch,
                             f"at its peak the largest network needs {need / 2 ** 30:.1f} GiB at batch {batch}")
