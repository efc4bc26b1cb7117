"""ONNX Runtime beside torch: ``runtime="onnxruntime"`` in measure_archs, profile and the measure / device
profile commands (tests that run networks skip where onnxruntime is not installed)."""
import importlib.util
import sys

import numpy as np
import pytest
import torch

from zeroshot.cli import main
from zeroshot.errors import MissingExtraError, ParameterError, UnknownNameError
from zeroshot.estimator.kernel_table import decompose
from zeroshot.estimator.sampling import kernel_rows
from zeroshot.estimator.timing import (measure_archs, measure_kernels, onnxruntime_call, require_onnxruntime,
                                       runtime_device)
from zeroshot.spaces import get_space, to_table
from zeroshot.spaces.builder import build

TINY = dict(channels=4, cells=1, resolution=8)
needs_onnxruntime = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")),
                                       reason="onnx or onnxruntime is not installed (pip install onnx onnxruntime)")


def tiny_archs(n=2):
    space = get_space("nb201", **TINY)
    return [space.to_ir(a) for a in space.sample(n, seed=3)]


def test_runtime_and_device_are_checked():
    assert runtime_device("onnxruntime", "auto").type == "cpu"
    assert runtime_device("onnxruntime", "cpu").type == "cpu"
    with pytest.raises(UnknownNameError, match="unknown runtime 'tvm'"):
        runtime_device("tvm")
    with pytest.raises(ParameterError, match="device must be cpu or auto with the onnxruntime runtime"):
        runtime_device("onnxruntime", "cuda")


def test_missing_onnxruntime_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)          # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"zeroshot-nas\[onnxruntime\]"):
        require_onnxruntime()
    archs = tmp_path / "a.txt"
    archs.write_text(get_space("nb201").sample(1, seed=1)[0] + "\n")
    assert main(["measure", "nb201", "--archs", str(archs), "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs the optional package onnxruntime" in err and len(err.splitlines()) == 1
    assert main(["device", "profile", "-o", str(tmp_path / "x.json"), "--runtime", "onnxruntime"]) == 2
    assert "needs the optional package onnxruntime" in capsys.readouterr().err
    assert main(["measure", "nb201", "--archs", str(archs), "--runtime", "tvm"]) == 2
    assert "unknown runtime 'tvm'" in capsys.readouterr().err


@needs_onnxruntime
def test_onnxruntime_runs_the_same_network():
    arch = tiny_archs(1)[0]
    torch.manual_seed(0)
    net = build(arch).eval()
    x = torch.randn(2, *arch.input_shape)
    with torch.inference_mode():
        expected = net(x).numpy()
        got = onnxruntime_call(net, x)()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@needs_onnxruntime
def test_measure_with_onnxruntime(tmp_path, capsys):
    timings = measure_archs(tiny_archs(), rounds=3, runtime="onnxruntime")
    assert len(timings) == 2 and all(t.median_ms > 0 and t.samples == 3 and t.noise >= 0 for t in timings)
    rows = kernel_rows(decompose(to_table(tiny_archs())))[:3]
    assert all(t.median_ms > 0 for t in measure_kernels(rows, rounds=3, runtime="onnxruntime", overhead_ms=0.0))
    archs = tmp_path / "a.txt"
    archs.write_text("\n".join(get_space("nb201").sample(2, seed=1)) + "\n")
    assert main(["measure", "nb201", "--archs", str(archs), "--rounds", "2", "--resolution", "16",
                 "--runtime", "onnxruntime"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "arch,latency_ms,noise" and len(lines) == 3 and float(lines[1].split(",")[1]) > 0


@needs_onnxruntime
def test_profile_with_onnxruntime():
    from zeroshot.estimator.profiling import profile
    space = get_space("nb201", **TINY)
    dev = profile([space], budget_s=2, archs_per_space=6, calibration_archs=3, refine_rounds=1, name="tiny",
                  runtime="onnxruntime")
    assert dev.info["runtime"] == "onnxruntime" and dev.info["kernels_measured"] > 0
    assert len(dev.samples) == dev.info["kernels_measured"]
