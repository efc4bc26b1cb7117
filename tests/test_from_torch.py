"""zs.from_torch: torch networks -> IR, exact counts, the builder's round trip, one-line errors."""
import csv
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import zeroshot as zs
from zeroshot.errors import InputError, ParameterError, UnsupportedLayerError
from zeroshot.estimator.counts import analytic_counts
from zeroshot.estimator.kernel_table import KERNEL_TYPES, decompose
from zeroshot.proxies.topology import topology_features
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import arch_from_dict, arch_to_dict, to_table
from zeroshot.spaces.shared_data import shared_data
from zeroshot.spaces.tracing import from_torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # the models are fixtures
from torch_models import MODELS, hook_macs, macro_net  # noqa: E402

torch.set_num_threads(1)


def _shapes(out):
    out = list(out.values()) if isinstance(out, dict) else out
    return [tuple(o.shape) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _check_exact(model, shape, layout=False):
    """Counts equal torch's; the built network's outputs have the model's shapes (``layout``: the same
    elements, the model reshaping its raw maps)."""
    arch = from_torch(model, shape)
    counts = analytic_counts([arch])
    params = sum(p.numel() for p in model.parameters())
    assert arch.params == params == int(counts["params"][0])
    assert arch.macs == hook_macs(model, shape) == int(counts["macs"][0])
    x = torch.randn(2, *shape)
    with torch.no_grad():
        built, ref = _shapes(build(arch).eval()(x)), _shapes(model.eval()(x))
    if layout:
        built, ref = (sum(torch.Size(s).numel() for s in shapes) for shapes in (built, ref))
    assert built == ref
    return arch


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_style_models_are_exact(name):
    ctor, shape = MODELS[name]
    arch = _check_exact(ctor(), shape)
    expected = {"ssdlite_mobilenet_v2": ("detect", 12), "lraspp_mobilenet_v3": ("segment", 1)}
    assert (arch.task, len(arch.outputs)) == expected.get(name, ("classify", 1))


class Geometry(nn.Module):
    """Every conv / pool geometry and free op the front end promises."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, (1, 7), stride=(1, 2), padding=(0, 3), bias=True)
        self.b = nn.Conv2d(8, 8, 4, padding="same", dilation=2, groups=4)
        self.c = nn.Conv2d(8, 16, 3, padding=2, dilation=2)
        self.pad = nn.ZeroPad2d(0)
        self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.avg = nn.AvgPool2d((2, 3), stride=(2, 1), padding=(1, 1), count_include_pad=False)
        self.bn = nn.BatchNorm2d(8, affine=False)
        self.drop = nn.Dropout2d(0.1)
        self.fc = nn.Linear(8 * 3 * 5, 10)

    def forward(self, x):
        x = F.gelu(self.a(x))
        x = torch.tanh(self.b(x)) + F.silu(x) * 0.5
        x = self.up(nn.functional.relu6(self.c(x), inplace=False))
        x = self.drop(self.bn(F.interpolate(x, scale_factor=0.5, mode="nearest")))
        x = self.avg(self.pool(x.sigmoid()))
        x = F.adaptive_avg_pool2d(x, (3, 5))
        return self.fc(x.reshape(x.shape[0], -1) - 1)


def test_every_geometry_round_trips():
    arch = _check_exact(Geometry(), (3, 32, 40))
    names = {op.name for op in arch.ops}
    assert {"conv", "deconv", "maxpool", "avgpool", "upsample", "linear"} <= names
    assert {op.act for op in arch.ops if op.act} == {"gelu", "tanh", "silu", "relu6", "sigmoid"}
    assert arch_from_dict(arch_to_dict(arch)) == arch


def test_new_kinds_reach_every_consumer():
    arch = from_torch(Geometry(), (3, 32, 40))
    table = to_table([arch])
    kt = decompose(table)
    deconv = next(op for op in arch.ops if op.name == "deconv")
    # a transposed conv is a conv kernel carrying its own MACs
    assert deconv.macs in kt.cols["macs"][kt.cols["type"] == KERNEL_TYPES.index("conv")].tolist()
    assert int(kt.cols["macs"].sum()) == arch.macs
    feats = topology_features(table)
    assert feats["params"][0] == arch.params and np.isfinite(feats["entropy"][0])
    assert feats["convs"][0] == feats["depth"][0] - 1 == sum(op.name in ("conv", "deconv") for op in arch.ops)


def test_functional_se_with_linear_gate_and_cat():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, 2, 1)
            self.left, self.right = nn.Conv2d(16, 8, 1), nn.Conv2d(16, 8, 3, padding=1)
            self.fc1, self.fc2 = nn.Linear(16, 4), nn.Linear(4, 16)

        def forward(self, x):
            x = self.stem(x).relu_()
            x = torch.cat([self.left(x), self.right(x)], dim=1)
            b, c, _, _ = x.size()
            s = F.hardsigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
            x = x * s.view(b, c, 1, 1)
            x += x
            return {"logits": torch.flatten(F.adaptive_max_pool2d(x, 1), 1)}

    arch = _check_exact(Net(), (3, 16, 16), layout=True)
    assert [op.name for op in arch.ops].count("mul") == 1 and arch.ops[1].act == "relu"


class Conv2dSame(nn.Conv2d):
    """timm-style: a Conv2d subclass padding itself in forward (TF "same")."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        ph = max((-(-ih // self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - ih, 0)
        pw = max((-(-iw // self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def test_subclassed_conv_is_counted_from_its_output():
    net = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.Hardswish())
    arch = _check_exact(net, (3, 15, 15))
    assert (arch.ops[0].h_out, arch.ops[0].w_out) == (8, 8)


def test_explicit_padding_folds_into_the_conv_or_pool_reading_it():
    class TFStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.pad, self.conv = nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 8, 3, 2)

        def forward(self, x):
            return F.max_pool2d(F.pad(self.conv(self.pad(x)), [1, 1, 0, 2]), 2)

    arch = _check_exact(TFStyle(), (3, 16, 16))
    assert [op.name for op in arch.ops] == ["conv", "maxpool"] and arch.ops[0].padding == (0, 1, 0, 1)
    with pytest.raises(UnsupportedLayerError, match=r"^1 \(ReLU\) is not supported on an explicitly padded"):
        from_torch(nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), (3, 8, 8))


def test_layout_changes_feed_linear_and_outputs():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(3, 8, 3, 4, 1)

        def forward(self, x):      # a torchvision SSD-style head: permute, reshape, cat over anchors
            outs = [h(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4) for h in (self.a, self.b)]
            return torch.cat(outs, dim=1)

    arch = _check_exact(Head(), (3, 16, 16), layout=True)
    assert len(arch.outputs) == 2 and arch.task == "detect"


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Sequential(nn.Identity(), nn.Identity(),
                                                                                 nn.Identity(), nn.LSTM(8, 8)))

    def forward(self, x):
        return self.features(x)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.LayerNorm([8, 6, 6]))

    def forward(self, x):
        return self.block(x)


class Matmul(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = Attn()

    def forward(self, x):
        return self.attn(x)


class Attn(nn.Module):
    def forward(self, x):
        return torch.matmul(x, x)


class Slicing(nn.Module):
    def forward(self, x):
        return F.relu(x[:, :2])


@pytest.mark.parametrize("model, message, fix", [
    (Recurrent(), "features.2.3 (LSTM) is not supported", "docs/spaces.md"),
    (Custom(), "block.1 (LayerNorm) is not supported", "docs/spaces.md"),
    (Matmul(), "attn (matmul) is not supported", "docs/spaces.md"),
    (Slicing(), "forward (tensor indexing or slicing) is not supported", ".view(N, C, 1, 1)"),
])
def test_unsupported_layer_is_one_line_naming_path_type_and_what_to_do(model, message, fix):
    with pytest.raises(UnsupportedLayerError) as err:
        from_torch(model, (3, 8, 8))
    text = str(err.value)
    assert text.startswith(message + "; ") and fix in text.split("; ", 1)[1] and "\n" not in text
    assert isinstance(err.value, InputError)


def test_rejected_input_shape_and_bad_arguments_are_one_line():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    with pytest.raises(ParameterError) as err:
        from_torch(net, (3, 16, 16))
    text = str(err.value)
    assert text.startswith("input_shape must be a shape Sequential accepts, got (3, 16, 16); torch says:")
    assert "\n" not in text and "mat1 and mat2" in text
    with pytest.raises(ParameterError, match="input_shape must be three positive integers"):
        from_torch(net, (8, 8))
    with pytest.raises(ParameterError, match="module must be a torch.nn.Module"):
        from_torch("resnet", (3, 8, 8))


def test_untraceable_forward_is_one_line():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(InputError) as err:
        from_torch(Branchy(), (3, 8, 8))
    assert "cannot be traced by torch.fx" in str(err.value) and "\n" not in str(err.value)


def test_training_mode_is_restored_and_public_name():
    net = MODELS["mobilenet_v3_small"][0]()
    net.train()
    arch = zs.from_torch(net, input_shape=(3, 64, 64))
    assert net.training and all(m.training for m in net.modules())
    assert arch.meta["model"] == "MobileNetV3"


def _macro_rows():
    path = shared_data("macro/nas_bench_macro_cifar10_unique.csv")
    if path is None:
        pytest.skip("shared NAS-Bench-Macro file absent (../shared/data/macro)")
    with open(path) as f:
        return list(csv.DictReader(f))


def test_nas_bench_macro_counts_match_the_file():
    """A seeded sample of the file's rows (all of them: benchmarks/from_torch.py)."""
    rows = random.Random(0).sample(_macro_rows(), 200)
    for row in rows:
        arch = from_torch(macro_net(row["arch"]), (3, 32, 32))
        assert (arch.params, arch.macs) == (int(row["params"]), int(row["flops_macs"])), row["arch"]


def test_hand_written_hard_swish_folds_its_numbers():
    class HSigmoid(nn.Module):
        def forward(self, x):
            return F.relu6(x + 3.0, inplace=True) / 6.0

    class HSwish(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = HSigmoid()

        def forward(self, x):
            return x * self.gate(x)

    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), HSwish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    arch = _check_exact(net, (3, 16, 16))
    assert [op.name for op in arch.ops] == ["conv", "act", "mul", "gap", "linear"] and arch.ops[1].act == "relu6"


@pytest.mark.parametrize("layer, shape", [(nn.Conv2d(3, 8, 3), (3, 8, 8)), (nn.ConvTranspose2d(3, 4, 2, 2), (3, 5, 5)),
                                          (nn.MaxPool2d(2, ceil_mode=True), (2, 5, 5))])
def test_a_supported_layer_alone_is_a_one_layer_network(layer, shape):
    arch = from_torch(layer, shape)
    assert len(arch.ops) == 1 and arch.meta["model"] == type(layer).__name__
    assert arch.params == sum(p.numel() for p in layer.parameters())
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert build(arch)(x).shape == layer(x).shape
    if arch.params:
        with pytest.raises(ParameterError, match=f"must be a shape {type(layer).__name__} accepts"):
            from_torch(layer, (1, 9, 9))
