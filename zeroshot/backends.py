"""Where chunks of work run: in this process, in local worker processes, or as Ray tasks.

Every backend maps a picklable function over task arguments and yields results in task order, so a run's
results are identical for a seed whatever the backend and worker count.  Backends are registered by name in
:data:`BACKENDS` (``local``, ``ray``); Ray is an optional extra (``pip install ray``), and asking for it without
it installed says so.

Example
-------
>>> list(get_backend("local", workers=1).map(abs, [-1, 2]))
[1, 2]
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from .checks import check_int
from .errors import MissingExtraError, ParameterError
from .registry import Registry

__all__ = ["BACKENDS", "LocalBackend", "RayBackend", "get_backend"]

#: where work runs, by name: classes taking ``(workers=None, address=None)``
BACKENDS: Registry[type] = Registry("backend")


@BACKENDS.register("local")
class LocalBackend:
    """``workers`` processes (1: in this process).  ``init(*init_args)`` runs once in each worker.
    Of ``resources`` (Ray's per-task resources, e.g. ``{"num_gpus": 1}``) only ``num_cpus`` counts locally:
    the threads of each worker's BLAS / OpenMP pools.  Those pools are sized when the libraries load, so such
    workers are started fresh (spawned) rather than forked with this process's pools; without ``num_cpus``
    they are forked and inherit what this process built (caches)."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        if address is not None:
            raise ParameterError("address", "unset with the local backend (an address names a Ray cluster)", address,
                                 fix="use the ray backend for a cluster")
        self.workers = workers or min(os.cpu_count() or 1, 2)

    def map(self, fn: Callable, items: Iterable, init: Callable | None = None,
            init_args: tuple = (), resources: dict | None = None) -> Iterator:
        if self.workers <= 1:
            if init:
                init(*init_args)
            yield from map(fn, items)
            return
        threads = (resources or {}).get("num_cpus")
        context, env = None, {}
        if threads:
            context = multiprocessing.get_context("spawn")
            env = {k: str(int(threads)) for k in _THREAD_VARIABLES}
        with _environment(env), _started_pool(self.workers, context, init, init_args) as pool:
            # At most two tasks per worker in flight: results never pile up while the caller consumes them,
            # so memory stays flat however many chunks there are.
            pending: deque = deque()
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


@contextmanager
def _started_pool(workers: int, context, init: Callable | None, init_args: tuple):
    """A process pool whose workers ignore Ctrl-C (SIGINT): they are started while this process ignores
    it, and a Python started with SIGINT ignored keeps it so.  The interrupt reaches this process alone,
    which then cancels what is queued and terminates the workers instead of waiting for their tasks (an
    interrupted screen or search stops at once, without a traceback from each worker)."""
    main = threading.current_thread() is threading.main_thread()      # only the main thread sets handlers
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init, initargs=init_args)
        started = [pool.submit(int) for _ in range(workers)]     # each submit starts a worker until all run
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    try:
        for f in started:
            f.result()
        yield pool
    except BaseException:
        for process in list((pool._processes or {}).values()):     # the executor has no public handle on them
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _environment(env: dict):
    """``os.environ`` updated with ``env`` inside the block (what spawned workers start with)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@BACKENDS.register("ray")
class RayBackend:
    """The same tasks as Ray tasks on a cluster (``address``) or a local Ray instance."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise MissingExtraError("ray", "the ray backend") from None
        self.ray = ray
        if not ray.is_initialized():
            kwargs = {"address": address} if address else {"num_cpus": workers or os.cpu_count()}
            ray.init(ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, **kwargs)

    def map(self, fn: Callable, items: Iterable, init: Callable | None = None,
            init_args: tuple = (), resources: dict | None = None) -> Iterator:
        ray = self.ray

        def run(item):
            if init:
                init(*init_args)        # idempotent: workers cache what it builds
            return fn(item)

        task = ray.remote(**resources)(run) if resources else ray.remote(run)
        refs = [task.remote(item) for item in items]
        for ref in refs:
            yield ray.get(ref)


def get_backend(name: str, workers: int | None = None, address: str | None = None):
    """The backend registered as ``name`` (:data:`BACKENDS`; an UnknownNameError listing them otherwise) with
    ``workers`` (None: its default) and, for Ray, a cluster ``address``."""
    cls = BACKENDS.get(name)
    if workers is not None:
        check_int("workers", workers, 1, "at least 1 (or unset: the backend's default)")
    return cls(workers, address)
