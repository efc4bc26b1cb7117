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
(IQR / median).

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
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from zeroshot.errors import ParameterError, UnknownNameError
from zeroshot.spaces import ir
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import Arch, Graph

from .sampling import kernel_arch

__all__ = ["CLOCKS", "Timing", "at_resolution", "call_overhead_ms", "measure_archs", "measure_kernels",
           "pick_clock", "pinned_threads", "time_calls", "torch_device"]


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

    @classmethod
    def of(cls, samples_ms) -> "Timing":
        """The timing of a list of samples (ms)."""
        q1, med, q3 = np.percentile(np.asarray(samples_ms, float), [25, 50, 75])
        return cls(float(med), float(q1), float(q3), len(samples_ms))


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


def measure_archs(archs: Sequence[Arch], threads: int | None = 1, batch: int = 1, device: str = "auto",
                  rounds: int = 15, warmup: int = 2, min_sample_ms: float = 1.0, chunk: int = 32,
                  seed: int = 0, clock: str = "auto", warm: int = 1) -> list[Timing]:
    """End-to-end latency of each architecture (torch, eval mode, batch ``batch``).

    Architectures are built and timed interleaved in groups of ``chunk`` (bounding memory).
    """
    dev = torch_device(device)
    clock = pick_clock(clock, dev, threads)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    out: list[Timing] = []
    gen = torch.Generator().manual_seed(seed)
    with pinned_threads(threads), torch.inference_mode():
        for start in range(0, len(archs), chunk):
            calls = []
            for arch in archs[start:start + chunk]:
                torch.manual_seed(seed)
                net = build(arch).eval().to(dev)
                x = torch.randn((batch, *arch.input_shape), generator=gen).to(dev)
                calls.append(lambda net=net, x=x: net(x))
            out += time_calls(calls, rounds, warmup, min_sample_ms, seed + start, sync, clock, warm)
    return out


def call_overhead_ms(threads: int | None = 1, device: str = "auto", rounds: int = 31,
                     clock: str = "auto") -> float:
    """Fixed cost of one executor call (ms): ``2 t(one op) - t(two ops)`` on a one-element tensor."""
    nets = []
    for n in (1, 2):
        g = Graph(1, 1, 1)
        x = 0
        for _ in range(n):
            x = g.act(x, "relu")
        nets.append(g.finish(x))
    one, two = measure_archs(nets, threads=threads, device=device, rounds=rounds, clock=clock)
    return max(0.0, 2 * one.median_ms - two.median_ms)


def measure_kernels(rows: Sequence[dict], threads: int | None = 1, device: str = "auto", rounds: int = 9,
                    warmup: int = 2, min_sample_ms: float = 1.0, overhead_ms: float | None = None,
                    seed: int = 0, clock: str = "auto") -> list[Timing]:
    """Latency of kernel rows (see :func:`~zeroshot.estimator.sampling.kernel_arch`), less the executor's fixed
    call cost."""
    if overhead_ms is None:
        overhead_ms = call_overhead_ms(threads, device, clock=clock)
    timings = measure_archs([kernel_arch(r) for r in rows], threads=threads, device=device, rounds=rounds,
                            warmup=warmup, min_sample_ms=min_sample_ms, seed=seed, clock=clock)
    return [Timing(t.median_ms - overhead_ms, t.q1_ms - overhead_ms, t.q3_ms - overhead_ms, t.samples)
            for t in timings]


def at_resolution(arch: Arch, resolution: int) -> Arch:
    """``arch`` replayed on a ``resolution`` x ``resolution`` input (every shape inferred again).

    Raises :class:`~zeroshot.errors.ParameterError` (``resolution``) when an op does not fit the new size
    (for example adds of unequal shapes, or an op left without output pixels).
    """
    if resolution < 1:
        raise ParameterError("resolution", "a positive number of pixels", resolution)
    g = Graph(arch.input_shape[0], resolution, resolution)
    for op in arch.ops:
        try:
            _replay(g, op)
        except ValueError as e:           # the graph refuses shapes that do not fit together
            raise ParameterError("resolution", f"a size every op fits (op {len(g.ops)}: {e})", resolution) from None
        out = g.ops[-1]
        if min(out.h_out, out.w_out) < 1:
            raise ParameterError("resolution", f"a size every op fits (op {len(g.ops) - 1} ({out.name}) has no "
                                 f"output pixels)", resolution)
    return g.finish(*arch.outputs, task=arch.task, **arch.meta)


def _replay(g: Graph, op) -> None:
    """Add ``op`` (of another graph) to ``g``, its shapes inferred from its inputs in ``g``."""
    x = op.inputs
    if op.kind == ir.CONV:
        g.conv(x[0], op.c_out, op.k, op.stride, op.groups, bool(op.flag), op.pad)
    elif op.kind in (ir.AVGPOOL, ir.MAXPOOL):
        g.pool(x[0], op.k, op.stride, op.pad, bool(op.flag), "avg" if op.kind == ir.AVGPOOL else "max")
    elif op.kind == ir.LINEAR:
        g.linear(x[0], op.c_out, bool(op.flag))
    elif op.kind in (ir.ADD, ir.CONCAT):
        (g.add if op.kind == ir.ADD else g.concat)(x)
    elif op.kind == ir.MUL:
        g.mul(*x)
    elif op.kind == ir.ACT:
        g.act(x[0], op.act)
    elif op.kind == ir.UPSAMPLE:
        g.upsample(x[0], op.flag)
    elif op.kind == ir.SHUFFLE:
        g.shuffle(x[0], op.groups)
    else:
        {ir.BN: g.bn, ir.GAP: g.gap, ir.ZERO: g.zero}[op.kind](x[0])
