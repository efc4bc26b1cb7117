"""Task heads of the mbv2 space: detection (SSDLite) and segmentation (LR-ASPP) against torch references."""
import numpy as np
import pytest
import torch
from torch import nn

from zeroshot.errors import ParameterError
from zeroshot.estimator.counts import analytic_counts
from zeroshot.spaces import get_space
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.mbv2 import LRASPP_CHANNELS, MOBILENETV2, SSD_ANCHORS, SSD_EXTRAS
from zeroshot.cli import main


def _cbr(c_in, c_out, k=1, stride=1, groups=1, act=nn.ReLU6):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), act())


def ssdlite_reference(c16: int, c32: int, classes: int) -> nn.Module:
    """SSDLite head written out in torch (torchvision's ssdlite layout): extras and per-map heads."""
    extras, c, maps = [], c32, [c16, c32]
    for out in SSD_EXTRAS:
        extras.append(nn.Sequential(_cbr(c, out // 2), _cbr(out // 2, out // 2, 3, 2, out // 2),
                                    _cbr(out // 2, out)))
        c = out
        maps.append(out)
    heads = [nn.Sequential(_cbr(m, m, 3, 1, m), nn.Conv2d(m, SSD_ANCHORS * w, 1))
             for m in maps for w in (classes, 4)]
    return nn.ModuleList(extras + heads)


def lraspp_reference(low: int, high: int, classes: int) -> nn.Module:
    return nn.ModuleList([_cbr(high, LRASPP_CHANNELS, act=nn.ReLU),
                          nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, LRASPP_CHANNELS, 1, bias=False),
                                        nn.Sigmoid()),
                          nn.Conv2d(low, classes, 1), nn.Conv2d(LRASPP_CHANNELS, classes, 1)])


def backbone_params(text: str) -> int:
    """Parameters of the network without its classifier (the linear layer after the pooling)."""
    return get_space("mbv2", classes=1).to_ir(text).params - (1280 + 1)


@pytest.mark.parametrize("task, classes, reference", [
    ("detect", 91, lambda: ssdlite_reference(96, 1280, 91)),
    ("segment", 21, lambda: lraspp_reference(32, 1280, 21)),
])
def test_head_params_equal_an_independent_torch_head(task, classes, reference):
    space = get_space("mbv2", task=task)
    assert space.classes == classes
    arch = space.to_ir(MOBILENETV2)
    assert arch.task == task
    assert arch.params == count_parameters(build(arch))
    assert arch.params - backbone_params(MOBILENETV2) == count_parameters(reference())


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_sampled_networks_params_and_counts(task):
    space = get_space("mbv2", task=task, classes=5)
    archs = space.irs(space.sample_distinct_codes(12, np.random.default_rng(3)))
    counts = analytic_counts(archs)
    for arch, p in zip(archs, counts["params"]):
        assert p == arch.params == count_parameters(build(arch))
    assert counts["macs"].tolist() == [a.macs for a in archs]


@pytest.mark.parametrize("res", [160, 200])
def test_detection_outputs(res, one_torch_thread):
    space = get_space("mbv2", task="detect", classes=3)
    arch = space.to_ir(MOBILENETV2.replace("r224", f"r{res}"))
    assert len(arch.outputs) == 2 * (2 + len(SSD_EXTRAS))
    with torch.no_grad():
        outs = build(arch).eval()(torch.zeros(1, 3, res, res))
    assert len(outs) == len(arch.outputs)
    sizes = [o.shape[-1] for o in outs[::2]]
    assert sizes[0] == -(-res // 16) and sizes[1] == -(-res // 32) and sizes == sorted(sizes, reverse=True)
    for o, t in zip(outs, arch.outputs):
        assert tuple(o.shape[1:]) == arch.tensor_shape(t)
    assert [o.shape[1] for o in outs[:2]] == [SSD_ANCHORS * 3, SSD_ANCHORS * 4]


@pytest.mark.parametrize("res", [160, 200])       # 200: stride-8 and stride-32 maps not an exact x4
def test_segmentation_output_is_input_sized(res, one_torch_thread):
    space = get_space("mbv2", task="segment", classes=4)
    arch = space.to_ir(MOBILENETV2.replace("r224", f"r{res}"))
    with torch.no_grad():
        out = build(arch).eval()(torch.zeros(1, 3, res, res))
    assert tuple(out.shape) == (1, 4, res, res) == (1, *arch.tensor_shape(arch.outputs[0]))


def test_dense_heads_have_no_segment_chain():
    codes = get_space("mbv2").sample_codes(2, np.random.default_rng(0))
    assert get_space("mbv2").segment_keys(codes).shape[0] == 2
    for task in ("detect", "segment"):
        with pytest.raises(NotImplementedError):
            get_space("mbv2", task=task).segment_keys(codes)


def test_unknown_task_is_refused():
    with pytest.raises(ParameterError, match="task must be one of classify, detect, segment, got 'pose'") as info:
        get_space("mbv2", task="pose")
    assert info.value.param == "task"


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_cli_sample_and_estimate_with_a_task(task, tmp_path, capsys):
    archs = tmp_path / "a.txt"
    assert main(["sample", "mbv2", "-n", "2", "--task", task]) == 0
    archs.write_text(capsys.readouterr().out)
    assert main(["estimate", "mbv2", "--task", task, "--archs", str(archs), "--device", "mobile-npu-16"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 3 and rows[0].endswith("latency_ms")
    space = get_space("mbv2", task=task)
    first = rows[1].rsplit(",", 5)
    assert int(first[1]) == space.to_ir(first[0]).params


def test_cli_screen_with_a_task(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["screen", "mbv2", "--task", "detect", "-n", "30", "--survivors", "0", "--top", "3",
                 "--baseline", "none", "--db", db, "--json"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    space = get_space("mbv2", task="detect")
    assert len(out["shortlist"]) == 3
    row = out["rows"][0]
    assert row["params"] == space.to_ir(row["arch"]).params
