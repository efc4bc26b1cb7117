"""Latency measurement with torch on this machine: whole architectures and single kernels.

Every measurement runs in eval mode under ``torch.inference_mode`` with a pinned thread count, after a
warm-up.  With one thread on the CPU the clock is the thread's CPU time (:func:`time.thread_time`), so
time slices taken by other processes on a shared machine do not count (their contention for caches and
memory does); otherwise it is wall time, with ``torch.cuda.synchronize`` around samples on a GPU.  Items
are timed *interleaved*: each round takes one sample of every item in a shuffled order, so a burst of
load from other processes spreads over all items instead of spoiling one.  A sample is the mean of
enough back-to-back calls to last ``min_sample_ms``, after one untimed call that brings the item's
weights back into the caches (so an item's latency does not depend on how many others it is interleaved
with); an item's latency is the median of its samples and its noise the relative inter-quartile range
(IQR / median).  A measurement disturbed by load (a median noise above :data:`BUSY_NOISE`, or a load
average above the core count) gives one :class:`BusyMachineWarning` (see :func:`busy_reason`).

Kernels are timed as one-kernel networks (:func:`zeroshot.estimator.sampling.kernel_arch`) through the same
executor as whole models (:func:`zeroshot.spaces.builder.build`); the fixed cost of calling an executor, paid
once per model, is measured separately (:func:`call_overhead_ms`) and taken off every kernel.

Example
-------
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201", channels=4, cells=1, resolution=8)
>>> t = measure_archs([space.to_ir(space.sample(1)[0])], rounds=3)[0]
>>> t.median_ms > 0
True
"""
from __future__ import annotations

import gc
import io
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from zeroshot.errors import MissingExtraError, ParameterError, UnknownNameError
from zeroshot.spaces import ir
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import Arch, Graph

from .sampling import kernel_arch

__all__ = ["BUSY_NOISE", "CHUNK_ANCHORS", "CHUNK_DRIFT_WARN", "CLOCKS", "RUNTIMES", "BusyMachineWarning",
           "Timing", "at_resolution", "busy_reason", "call_overhead_ms", "carry_drift", "measure_archs",
           "measure_kernels", "onnxruntime_call", "pick_clock", "pinned_threads", "replay", "require_onnxruntime",
           "runtime_device", "time_calls", "torch_device", "upsample_size", "warn_if_busy", "warn_if_drifted"]


@dataclass(frozen=True)
class Timing:
    """Median latency of one item (ms) and the spread of its samples."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    samples: int

    @property
    def noise(self) -> float:
        """Relative inter-quartile range of the samples (IQR / median)."""
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else 0.0

    def scaled(self, factor: float) -> "Timing":
        """The same timing with every latency multiplied by ``factor``."""
        return Timing(self.median_ms * factor, self.q1_ms * factor, self.q3_ms * factor, self.samples)

    @classmethod
    def of(cls, samples_ms) -> "Timing":
        """The timing of a list of samples (ms)."""
        q1, med, q3 = np.percentile(np.asarray(samples_ms, float), [25, 50, 75])
        return cls(float(med), float(q1), float(q3), len(samples_ms))


BUSY_NOISE = 0.15
"""Median relative IQR of a measurement's items above which its samples are called disturbed."""


class BusyMachineWarning(UserWarning):
    """Timings taken while other processes loaded the machine (their figures are less repeatable)."""


def busy_reason(noises: Sequence[float], load: float | None = None, cores: int | None = None) -> str | None:
    """Why timings with these per-item ``noises`` look disturbed by load, or None when they do not.

    Disturbed: the median noise exceeds :data:`BUSY_NOISE`, or the one-minute ``load`` average exceeds
    ``cores`` (other processes then wait for every core).  ``load`` / ``cores`` default to this machine's
    (:func:`os.getloadavg`, :func:`os.cpu_count`).

    >>> busy_reason([0.02, 0.03, 0.05], load=0.5, cores=2) is None
    True
    >>> busy_reason([0.30, 0.25, 0.02], load=0.5, cores=2)
    'median noise 0.25 (relative IQR of the samples) is above 0.15'
    >>> busy_reason([0.02], load=3.1, cores=2)
    'load average 3.1 on 2 cores'
    """
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = cores or os.cpu_count() or 1
    reasons = []
    noise = float(np.median(noises)) if len(noises) else 0.0
    if noise > BUSY_NOISE:
        reasons.append(f"median noise {noise:.2f} (relative IQR of the samples) is above {BUSY_NOISE:.2f}")
    if load > cores:
        reasons.append(f"load average {load:.1f} on {cores} cores")
    return "; ".join(reasons) or None


def warn_if_busy(timings: Sequence[Timing]) -> None:
    """One :class:`BusyMachineWarning` when :func:`busy_reason` finds these timings disturbed."""
    reason = busy_reason([t.noise for t in timings])
    if reason:
        warnings.warn(f"the machine looks busy ({reason}): latencies may be inflated and less repeatable; "
                      f"measure on a quiet machine or with more rounds", BusyMachineWarning, stacklevel=3)


def torch_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; otherwise the named torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:                  # torch's word for a malformed device string
        raise ParameterError("device", "a torch device: auto, cpu, cuda or cuda:N", name) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "cpu or auto on this machine (CUDA is not available here)", name)
    return dev


@contextmanager
def pinned_threads(threads: int | None):
    """Run with ``torch.set_num_threads(threads)`` (None: leave as is) and restore it afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ParameterError("threads", "a positive count", threads)
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def pick_clock(clock: str, dev: torch.device, threads: int | None) -> str:
    """``auto``: thread CPU time for one CPU thread, wall time otherwise; or the named clock."""
    if clock == "auto":
        return "thread" if dev.type == "cpu" and threads == 1 else "wall"
    if clock not in CLOCKS:
        raise UnknownNameError("clock", clock, ["auto", *CLOCKS])
    if clock == "thread" and (dev.type != "cpu" or threads != 1):
        raise ParameterError("clock", "wall or auto unless it times one CPU thread (the thread clock measures "
                             "one thread's CPU time)", clock)
    return clock


def time_calls(calls: Sequence[Callable[[], object]], rounds: int = 15, warmup: int = 2,
               min_sample_ms: float = 1.0, seed: int = 0, sync: Callable[[], None] | None = None,
               clock: str = "wall", warm: int = 1) -> list[Timing]:
    """Interleaved timing of argument-free callables; one :class:`Timing` per callable.

    Each callable is first run ``warmup`` times and its number of calls per sample chosen so that a
    sample lasts about ``min_sample_ms``; then ``rounds`` rounds take one sample of each, in an order
    shuffled per round (``seed``); each sample follows ``warm`` untimed calls of the same callable, so it
    finds the caches as a callable run back to back does, whatever ran before it in the round (without,
    a small network measured among a hundred others pays for fetching its weights afresh: up to 30 % on
    this machine).  ``sync`` (for example ``torch.cuda.synchronize``) is called around every sample;
    ``clock`` names an entry of :data:`CLOCKS`.
    """
    if rounds < 1:
        raise ParameterError("rounds", "at least 1", rounds)
    sync = sync or (lambda: None)
    clock = CLOCKS[clock]
    numbers = []
    for fn in calls:
        for _ in range(max(warmup, 1)):
            sync()
            t0 = clock()
            fn()
            sync()
            once = clock() - t0
        numbers.append(max(1, int(np.ceil(min_sample_ms / 1e3 / max(once, 1e-7)))))
    samples = [[] for _ in calls]
    order = np.arange(len(calls))
    rng = np.random.default_rng(seed)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            rng.shuffle(order)
            for i in order:
                fn, number = calls[i], numbers[i]
                for _ in range(warm):
                    fn()
                sync()
                t0 = clock()
                for _ in range(number):
                    fn()
                sync()
                samples[i].append((clock() - t0) * 1e3 / number)
    finally:
        if gc_was:
            gc.enable()
    return [Timing.of(s) for s in samples]


#: architectures of the first group that :func:`measure_archs` times again with every later group
CHUNK_ANCHORS = 4
#: a group whose anchors ran this much faster or slower than their median over the groups is worth a warning
CHUNK_DRIFT_WARN = 0.05


def measure_archs(archs: Sequence[Arch], threads: int | None = 1, batch: int = 1, device: str = "auto",
                  rounds: int = 15, warmup: int = 2, min_sample_ms: float = 1.0, chunk: int = 32,
                  seed: int = 0, clock: str = "auto", warm: int = 1, runtime: str = "torch",
                  anchors: int = CHUNK_ANCHORS) -> list[Timing]:
    """End-to-end latency of each architecture (eval mode, batch ``batch``) run by ``runtime``: torch, or
    ONNX Runtime on the CPU (each network exported to ONNX in memory; ``threads`` intra-op threads).

    Architectures are built and timed interleaved in groups of ``chunk`` (bounding memory); with more than one
    group, the first ``anchors`` architectures are timed again with every later group, and each group is
    rescaled to the machine's typical speed over the run (:func:`carry_drift`; 0: none).  Warns
    (:class:`BusyMachineWarning`) when the measurement looks disturbed by load (:func:`busy_reason`) or the
    machine's speed moved between groups.
    """
    dev = runtime_device(runtime, device)
    clock = pick_clock(clock, dev, threads)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    anchors = list(archs[:min(anchors, chunk)]) if len(archs) > chunk else []
    groups = []
    gen = torch.Generator().manual_seed(seed)
    with pinned_threads(threads), torch.inference_mode():
        for start in range(0, len(archs), chunk):
            calls = []
            for arch in list(archs[start:start + chunk]) + (anchors if start else []):
                torch.manual_seed(seed)
                net = build(arch).eval().to(dev)
                x = torch.randn((batch, *arch.input_shape), generator=gen).to(dev)
                calls.append((lambda net=net, x=x: net(x)) if runtime == "torch"
                             else onnxruntime_call(net, x, threads))
            groups.append(time_calls(calls, rounds, warmup, min_sample_ms, seed + start, sync, clock, warm))
    out, ratios = carry_drift(groups, len(anchors))
    warn_if_busy(out)
    warn_if_drifted(ratios)
    return out


def carry_drift(groups: Sequence[Sequence[Timing]], anchors: int) -> tuple[list[Timing], np.ndarray]:
    """The timings of ``groups`` (the first starting with ``anchors`` anchor timings, every later one ending
    with them) in one list without the repeated anchors, each group divided by its drift ratio: the median
    over the anchors of their latency in that group / their median latency over all groups (the machine's
    typical speed, not the first group's); and those ratios, one per group.

    >>> first = [Timing.of([2.0]), Timing.of([4.0]), Timing.of([3.0])]
    >>> later = [Timing.of([6.6]), Timing.of([2.2]), Timing.of([4.4])]     # anchors 10% slower, appended
    >>> out, ratios = carry_drift([first, later, later], anchors=2)
    >>> [float(round(t.median_ms, 3)) for t in out], ratios.round(3).tolist()
    ([2.2, 4.4, 3.3, 6.6, 6.6], [0.909, 1.0, 1.0])
    """
    if not anchors or len(groups) < 2:
        return [t for g in groups for t in g], np.ones(len(groups))
    runs = np.array([[t.median_ms for t in g[:anchors]] for g in groups[:1]] +
                    [[t.median_ms for t in g[-anchors:]] for g in groups[1:]])
    ratios = np.median(runs / np.maximum(np.median(runs, 0), 1e-12), 1)
    out = [t.scaled(1.0 / ratios[0]) for t in groups[0]]
    for group, ratio in zip(groups[1:], ratios[1:]):
        out += [t.scaled(1.0 / ratio) for t in group[:-anchors]]
    return out, ratios


def warn_if_drifted(ratios: np.ndarray) -> None:
    """One :class:`BusyMachineWarning` when a group's drift ratio (:func:`carry_drift`) is further than
    :data:`CHUNK_DRIFT_WARN` from 1."""
    if len(ratios) and np.max(np.abs(ratios - 1.0)) > CHUNK_DRIFT_WARN:
        warnings.warn(f"the machine's speed moved while measuring (networks timed again with each group took "
                      f"{np.min(ratios):.0%} to {np.max(ratios):.0%} of their usual time): each group was "
                      f"rescaled by them; measure on a quieter machine to avoid it", BusyMachineWarning,
                      stacklevel=3)


RUNTIMES = ("torch", "onnxruntime")


def runtime_device(runtime: str, device: str = "auto") -> torch.device:
    """The torch device a ``runtime`` measures on: :func:`torch_device` for torch, the CPU for ONNX Runtime
    (whose ``device`` must be ``auto`` or ``cpu``)."""
    if runtime not in RUNTIMES:
        raise UnknownNameError("runtime", runtime, list(RUNTIMES))
    if runtime == "torch":
        return torch_device(device)
    if device not in ("auto", "cpu"):
        raise ParameterError("device", "cpu or auto with the onnxruntime runtime (it measures on the CPU)", device)
    return torch.device("cpu")


def onnxruntime_call(net: torch.nn.Module, x: torch.Tensor, threads: int | None = 1) -> Callable[[], object]:
    """An argument-free callable running ``net`` on ``x`` with ONNX Runtime's CPU provider: the network is
    exported to ONNX in memory and run by an ``InferenceSession`` with ``threads`` intra-op threads (None: 1).

    Raises :class:`~zeroshot.errors.MissingExtraError` when onnxruntime or onnx is not installed.
    """
    ort = require_onnxruntime()
    model = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():   # traced outside inference
        warnings.simplefilter("ignore", DeprecationWarning)      # mode, as zeroshot.export does (TorchScript)
        torch.onnx.export(net, (x.clone(),), model, dynamo=False, input_names=["input"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    return lambda: session.run(None, feed)


def require_onnxruntime():
    """The onnxruntime module, onnx checked too (the exporter needs it); raises
    :class:`~zeroshot.errors.MissingExtraError` when either is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        raise MissingExtraError(e.name or "onnxruntime", "measuring with ONNX Runtime", "onnxruntime") from None
    return onnxruntime


def call_overhead_ms(threads: int | None = 1, device: str = "auto", rounds: int = 31,
                     clock: str = "auto", runtime: str = "torch") -> float:
    """Fixed cost of one executor call (ms): ``2 t(one op) - t(two ops)`` on a one-element tensor."""
    nets = []
    for n in (1, 2):
        g = Graph(1, 1, 1)
        x = 0
        for _ in range(n):
            x = g.act(x, "relu")
        nets.append(g.finish(x))
    one, two = measure_archs(nets, threads=threads, device=device, rounds=rounds, clock=clock, runtime=runtime)
    return max(0.0, 2 * one.median_ms - two.median_ms)


def measure_kernels(rows: Sequence[dict], threads: int | None = 1, device: str = "auto", rounds: int = 9,
                    warmup: int = 2, min_sample_ms: float = 1.0, overhead_ms: float | None = None,
                    seed: int = 0, clock: str = "auto", runtime: str = "torch") -> list[Timing]:
    """Latency of kernel rows (see :func:`~zeroshot.estimator.sampling.kernel_arch`) run by ``runtime``, less
    the executor's fixed call cost."""
    if overhead_ms is None:
        overhead_ms = call_overhead_ms(threads, device, clock=clock, runtime=runtime)
    timings = measure_archs([kernel_arch(r) for r in rows], threads=threads, device=device, rounds=rounds,
                            warmup=warmup, min_sample_ms=min_sample_ms, seed=seed, clock=clock, runtime=runtime,
                            anchors=0)       # a profile's kernels: no anchors (its budget buys kernels)
    return [Timing(t.median_ms - overhead_ms, t.q1_ms - overhead_ms, t.q3_ms - overhead_ms, t.samples)
            for t in timings]


def at_resolution(arch: Arch, resolution: int) -> Arch:
    """``arch`` replayed on a ``resolution`` x ``resolution`` input (every shape inferred again, every
    op's geometry kept: see :func:`replay`; an upsample to a size scales that size like the input).

    Raises :class:`~zeroshot.errors.ParameterError` (``resolution``) when an op does not fit the new size
    (for example adds of unequal shapes, or an op left without output pixels).
    """
    if resolution < 1:
        raise ParameterError("resolution", "a positive number of pixels", resolution)
    g = Graph(arch.input_shape[0], resolution, resolution)
    for op in arch.ops:
        try:
            replay(g, op, size=upsample_size(op, arch.input_shape[1:], (resolution, resolution)))
        except ValueError as e:           # the graph refuses shapes that do not fit together
            raise ParameterError("resolution", f"a size every op fits (op {len(g.ops)}: {e})", resolution) from None
        out = g.ops[-1]
        if min(out.h_out, out.w_out) < 1:
            raise ParameterError("resolution", f"a size every op fits (op {len(g.ops) - 1} ({out.name}) has no "
                                 f"output pixels)", resolution)
    return g.finish(*arch.outputs, task=arch.task, **arch.meta)


def replay(g: Graph, op: ir.Op, c_out: int | None = None, groups: int | None = None,
           size: tuple[int, int] | None = None) -> int:
    """Append ``op`` (of another graph) to ``g`` reading the same tensor ids, every shape inferred again
    from its inputs in ``g``; returns the tensor it writes.  Every field of the op is kept (kernel, strides,
    padding, dilation, a transposed conv's output padding, bias, BN affine, upsample mode) except
    ``c_out`` / ``groups`` when given (convs, linear layers, shuffles) and an upsample's output ``size``
    (None: its scale factor).  A linear layer flattens whatever it reads.

    >>> g0 = Graph(3, 8, 8)
    >>> arch = g0.finish(g0.conv(0, 4, 3, kw=1, stride=2, pads=(1, 0, 0, 0), dilation=2))
    >>> g = Graph(3, 16, 16)
    >>> g.ops[replay(g, arch.ops[0]) - 1].kernel, g.shape(1)
    ((3, 1), (4, 7, 8))
    """
    x = op.inputs
    c_out = op.c_out if c_out is None else c_out
    groups = op.groups if groups is None else groups
    geometry = dict(kw=op.kw, stride_w=op.stride_w, pads=op.pads, dilation=op.dilation)
    if op.kind == ir.CONV:
        return g.conv(x[0], c_out, op.k, op.stride, groups, bool(op.flag), op.pad, **geometry)
    if op.kind in (ir.AVGPOOL, ir.MAXPOOL):
        return g.pool(x[0], op.k, op.stride, op.pad, bool(op.flag), "avg" if op.kind == ir.AVGPOOL else "max",
                      **geometry)
    if op.kind == ir.DECONV:
        return _replay_deconv(g, op, c_out, groups)
    if op.kind == ir.LINEAR:
        return g.linear(x[0], c_out, bool(op.flag), flatten=True)
    if op.kind == ir.BN:
        return g.bn(x[0], affine=not op.flag)
    if op.kind == ir.UPSAMPLE:
        return g.upsample(x[0], op.flag, size, mode=op.mode)
    if op.kind == ir.SHUFFLE:
        return g.shuffle(x[0], groups)
    if op.kind in (ir.ADD, ir.CONCAT):
        return (g.add if op.kind == ir.ADD else g.concat)(x)
    if op.kind == ir.MUL:
        return g.mul(*x)
    if op.kind == ir.ACT:
        return g.act(x[0], op.act)
    return {ir.GAP: g.gap, ir.ZERO: g.zero}[op.kind](x[0])


def _replay_deconv(g: Graph, op: ir.Op, c_out: int, groups: int) -> int:
    """A transposed conv replayed with its output padding (recovered from its output size) kept."""
    t, _, l, _ = op.padding
    return g.deconv(op.inputs[0], c_out, op.k, op.stride, groups, bool(op.flag), t, kw=op.kw,
                    stride_w=op.stride_w, pad_w=l, dilation=op.dilation, output_padding=op.output_padding)


def upsample_size(op: ir.Op, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The output size of upsample ``op`` on a network input resized from ``old_hw`` to ``new_hw``: None
    (its scale factor) when it scales exactly, else its output size scaled like the input.

    >>> g = Graph(1, 5, 5)
    >>> op = g.finish(g.upsample(0, 2, size=(9, 9))).ops[0]
    >>> upsample_size(op, (5, 5), (10, 10))
    (18, 18)
    """
    exact = op.h_out == op.h_in * op.flag and op.w_out == op.w_in * op.flag
    return None if exact else (op.h_out * new_hw[0] // old_hw[0], op.w_out * new_hw[1] // old_hw[1])
