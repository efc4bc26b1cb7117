"""The local backend: results in task order, workers that leave Ctrl-C to the caller, and a stop that does
not wait for the workers' running tasks."""
import signal
import time

import pytest

from zeroshot.backends import BACKENDS, LocalBackend, get_backend
from zeroshot.errors import ParameterError, UnknownNameError


@pytest.mark.parametrize("resources", [None, {"num_cpus": 1}], ids=["forked", "spawned"])
def test_workers_ignore_sigint(resources):
    before = signal.getsignal(signal.SIGINT)
    handlers = list(LocalBackend(2).map(signal.getsignal, [signal.SIGINT] * 4, resources=resources))
    assert handlers == [signal.SIG_IGN] * 4
    assert signal.getsignal(signal.SIGINT) == before                     # restored here


def test_results_come_in_task_order():
    assert list(get_backend("local", workers=2).map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]


def test_an_interrupted_caller_ends_the_workers_without_waiting():
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        for _ in LocalBackend(2).map(time.sleep, [0, 60, 60, 60]):
            raise KeyboardInterrupt                       # Ctrl-C while the others sleep a minute
    assert time.perf_counter() - t0 < 20


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_registered_backend_maps_in_task_order(name):
    if name == "ray":
        pytest.importorskip("ray", reason="the ray backend needs the optional ray package")
    backend = get_backend(name, workers=1)
    try:
        assert list(backend.map(abs, [-2, 1, -3])) == [2, 1, 3]
    finally:
        if name == "ray":
            backend.ray.shutdown()


def test_an_unknown_backend_or_a_cluster_address_for_the_local_one_is_refused():
    with pytest.raises(UnknownNameError, match="unknown backend 'slurm'; choose from local, ray"):
        get_backend("slurm")
    with pytest.raises(ParameterError, match="address must be unset with the local backend"):
        get_backend("local", address="10.0.0.1:6379")
