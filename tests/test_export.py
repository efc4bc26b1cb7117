"""Export of a chosen architecture: IR JSON, loadable torch file, ONNX."""
import json
import subprocess
import sys

import pytest
import torch

from zeroshot.spaces import get_space, list_spaces
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.ir import arch_from_dict, arch_to_dict
from zeroshot.export import export, load_torch


@pytest.mark.parametrize("name", list_spaces())
def test_ir_json_round_trip(name):
    space = get_space(name)
    arch = space.to_ir(space.sample(1, seed=4)[0])
    back = arch_from_dict(json.loads(json.dumps(arch_to_dict(arch))))
    assert back.ops == arch.ops and back.outputs == arch.outputs and back.input_shape == arch.input_shape


def test_ir_json_rejects_garbage():
    with pytest.raises(ValueError, match="not a zeroshot IR"):
        arch_from_dict({"format": "x"})


def test_torch_export_reloads_same_function(tmp_path):
    space = get_space("nb201")
    arch = space.sample(1, seed=2)[0]
    path = tmp_path / "net.pt"
    export(space, arch, "torch", str(path), seed=5)
    net = load_torch(str(path))
    torch.manual_seed(5)
    ref = build(space.to_ir(arch)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    assert count_parameters(net) == space.to_ir(arch).params


def test_onnx_export(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx is an optional extra: pip install 'zeroshot-nas[onnx]'")
    space = get_space("nb201")
    path = tmp_path / "net.onnx"
    export(space, space.sample(1)[0], "onnx", str(path))
    onnx.checker.check_model(onnx.load(str(path)))


def test_cli_export_json_and_bad_input(tmp_path):
    arch = get_space("nb201").sample(1)[0]
    out = tmp_path / "a.json"
    ok = subprocess.run([sys.executable, "-m", "zeroshot", "export", "nb201", arch, "--format", "json", "-o",
                         str(out)], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(out.read_text())["arch"] == arch
    for args in (["nb201", "|bad|", "--format", "json", "-o", str(tmp_path / "b")],
                 ["nb201", arch, "--format", "tflite", "-o", str(tmp_path / "c")]):
        bad = subprocess.run([sys.executable, "-m", "zeroshot", "export", *args], capture_output=True, text=True)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_export_refuses_dash_as_a_path():
    from zeroshot.errors import ParameterError
    space = get_space("nb201")
    with pytest.raises(ParameterError, match="path must be a file path.*-o - writes JSON to stdout"):
        export(space, space.sample(1, seed=0)[0], "json", "-")
