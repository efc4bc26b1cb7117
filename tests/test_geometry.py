"""Every consumer on the geometry the IR holds beyond square kernels, one stride, symmetric padding and no
dilation: proxies (against plain autograd where they compute gradients themselves), replays at another
resolution or width, one-kernel networks, a trailing flatten without a linear layer."""
import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import zeroshot as zs
from zeroshot.errors import InputError
from zeroshot.estimator.kernel_table import KT, decompose
from zeroshot.estimator.sampling import canonical, kernel_arch, kernel_rows
from zeroshot.estimator.timing import at_resolution
from zeroshot.proxies import get_proxy, list_proxies
from zeroshot.proxies.network import compute_network_proxies
from zeroshot.proxies.grasp import grasp_exact
from zeroshot.proxies.kinks import Frozen
from zeroshot.proxies.weight_grads import _per_sample_gram, _weight_grad
from zeroshot.proxies.structure import thin_arch
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import Arch, Graph, to_table


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class Geo(nn.Module):
    """A 1x3 conv with a (1, 2) stride, dilation 2 in groups, BN without affine, a ceil-mode max pool, an
    even kernel with "same" (asymmetric) padding, a hard-sigmoid gate, a transposed conv, a ceil-mode
    average pool, silu / gelu / tanh, a flattened linear layer."""

    def __init__(self, side=16):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, (1, 3), stride=(1, 2), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, dilation=2, padding=2, groups=2)
        self.bn2 = nn.BatchNorm2d(8, affine=False)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.c3 = nn.Conv2d(8, 16, 3, padding="same")
        self.c4 = nn.Conv2d(16, 16, 2, padding="same")
        self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
        self.avg = nn.AvgPool2d(3, 2, ceil_mode=True)
        self.head = nn.Linear(8 * (side // 2) ** 2, 10)

    def forward(self, x):
        x = F.silu(self.bn1(self.c1(x)))
        x = F.gelu(self.bn2(self.c2(x)))
        x = torch.tanh(self.c3(self.pool(x)))
        x = self.c4(x) * F.hardsigmoid(x)
        return self.head(torch.flatten(self.avg(self.up(x)), 1))


def geo_arch(side=16):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # torch's note on "same" with an even kernel
        return zs.from_torch(Geo(side), (3, side, 2 * side))


def test_the_fixture_holds_every_geometry():
    ops = geo_arch().ops
    assert any(op.kw and op.stride_w for op in ops)
    assert any(op.dilation == 2 for op in ops)
    assert {op.name for op in ops if op.pads} >= {"conv", "maxpool", "avgpool"}
    assert any(op.name == "deconv" for op in ops) and any(op.name == "bn" and op.flag for op in ops)
    assert {op.act for op in ops if op.act} == {"silu", "gelu", "tanh", "hsigmoid"}


@pytest.mark.parametrize("n", [8, 20])       # grasp's forward difference (<= 16 images), central one (> 16)
def test_every_proxy_is_finite_and_deterministic(n):
    arch = geo_arch()
    x = torch.randn(n, *arch.input_shape, generator=torch.Generator().manual_seed(0))
    names = list_proxies("network")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)                # swap on fewer than 16 images
        warnings.simplefilter("error", RuntimeWarning)              # no value replaced by the NaN rule
        first = compute_network_proxies(arch, names, x, seed=3)
        again = compute_network_proxies(arch, names, x, seed=3)
    assert first == again and all(math.isfinite(v) for v in first.values()), first
    alone = {name: get_proxy(name).fn(arch, x, None, 3) for name in ("grasp", "ntk", "zico", "linear_regions")}
    assert alone == {k: first[k] for k in alone}
    table = to_table([arch])
    for name in list_proxies("topology"):
        assert np.isfinite(get_proxy(name).fn(table)).all(), name


def test_network_weights_are_canonical_behind_asymmetric_padding():
    arch = geo_arch()
    x = torch.randn(4, *arch.input_shape)
    a, b = (compute_network_proxies(arch, ["snip"], x, seed=s)["snip"] for s in (1, 2))
    torch.manual_seed(99)                     # the global generator does not reach any weight
    assert compute_network_proxies(arch, ["snip"], x, seed=1)["snip"] == a != b


def _convs():
    """(op, torch functional of (input, weight)) for convs of every geometry and transposed convs; small
    outputs take the per-offset products, larger ones the grouped-convolution trick."""
    cases = []
    for side in (4, 12):
        g = Graph(4, side, side + 2)
        specs = [dict(k=1, kw=3, stride=1, stride_w=2), dict(k=3, dilation=2, pad=2),
                 dict(k=2, pads=(0, 1, 0, 1)), dict(k=3, stride=2, pads=(1, 0, 2, 1)),
                 dict(k=3, groups=2, kw=1, pads=(1, 1, 0, 0), dilation=2)]
        for spec in specs:
            t = g.conv(0, 6, **spec)
            cases.append(g.ops[t - 1])
        t = g.deconv(0, 6, 3, stride=2, pad=1, output_padding=(1, 0), kw=2, pad_w=0)
        cases.append(g.ops[t - 1])
        t = g.deconv(0, 6, 2, stride=2, groups=2, dilation=2)
        cases.append(g.ops[t - 1])
    return cases


@pytest.mark.parametrize("op", _convs(), ids=lambda op: f"{op.name}{op.kernel}{op.strides}{op.padding}")
def test_weight_gradients_match_autograd(op):
    layer = build(Arch((op,), (op.c_in, op.h_in, op.w_in), (1,))).layers[0].double()
    a = torch.randn(3, op.c_in, op.h_in, op.w_in, dtype=torch.float64)
    d = torch.randn(3, op.c_out, op.h_out, op.w_out, dtype=torch.float64)
    weight = (layer[-1] if isinstance(layer, nn.Sequential) else layer).weight
    per = torch.stack([torch.autograd.grad(layer(a[i:i + 1]), weight, d[i:i + 1])[0].ravel() for i in range(3)])
    assert torch.allclose(_weight_grad(op, a, d).ravel(), per.sum(0))
    assert torch.allclose(_per_sample_gram(op, a, d), per @ per.T)


@pytest.mark.parametrize("spec", [dict(k=3, stride=2, pads=(0, 1, 0, 1)), dict(k=3, kw=2, stride=2, stride_w=1,
                                                                              dilation=2, pad=1)])
def test_frozen_max_pool_is_the_pool_at_its_input(spec):
    g = Graph(2, 9, 8)
    arch = g.finish(g.pool(0, kind="max", **spec))
    x0 = torch.randn(2, 2, 9, 8)
    frozen, pool = Frozen(arch.ops[0], x0), build(arch).layers[0]
    assert torch.equal(frozen(x0), pool(x0))
    x = torch.randn(2, 2, 9, 8, requires_grad=True)
    (frozen(x) ** 2).sum().backward()             # the argmax is frozen: the gradient of a gather
    assert x.grad.count_nonzero() <= frozen(x).numel()


def test_frozen_hard_sigmoid_is_the_activation_at_its_input():
    g = Graph(1, 4, 4)
    op = g.finish(g.act(0, "hsigmoid")).ops[0]
    x0 = torch.linspace(-5, 5, 16).view(1, 1, 4, 4)
    assert torch.allclose(Frozen(op, x0)(x0), F.hardsigmoid(x0))


def test_replays_keep_every_geometry():
    arch = geo_arch(16)
    g = Graph(3, 16, 16)
    t = g.conv(0, 8, 1, kw=3, stride=1, stride_w=2, pads=(0, 0, 1, 1))
    t = g.deconv(g.pool(t, 3, 2, pads=(0, 1, 0, 1), kind="max"), 8, 3, stride=2, pad=1, output_padding=(1, 1))
    square = g.finish(g.linear(g.act(g.bn(t, affine=False), "silu"), 10, flatten=True))
    assert at_resolution(square, 16).ops == square.ops
    big = at_resolution(square, 32)
    assert [op.kernel for op in big.ops] == [op.kernel for op in square.ops]
    assert build(big)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    thin = thin_arch(arch, 8, 8)
    assert [(op.kind, op.kernel, op.strides, op.dilation, op.flag) for op in thin.ops] == \
        [(op.kind, op.kernel, op.strides, op.dilation, op.flag) for op in arch.ops]
    assert build(thin)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_one_kernel_networks_rebuild_every_conv_row():
    """A 1x3 conv with a (1, 2) stride, a dilated grouped conv, an even kernel padded asymmetrically and a
    transposed conv: each row comes back whole from its one-kernel network."""
    rows = kernel_rows(decompose(to_table([geo_arch()])))
    rows = [r for r in rows if r["weight_elems"] and r["type"] != KT["linear"]]
    assert len(rows) == 5
    kinds = []
    for row in rows:
        op = kernel_arch(row).ops[0]
        kinds.append(op.name)
        assert op.weights == row["weight_elems"] and canonical(row) == row, row
    assert kinds.count("deconv") == 1


def test_trailing_flatten_without_linear_layer():
    net = nn.Sequential(nn.Conv2d(3, 10, 3, 2), nn.BatchNorm2d(10), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    arch = zs.from_torch(net, (3, 8, 8))
    assert arch.task == "classify" and arch.params == sum(p.numel() for p in net.parameters())
    x = torch.randn(4, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = compute_network_proxies(arch, ["snip", "grasp", "fisher", "zico", "ntk"], x, seed=0)
    assert all(math.isfinite(v) for v in out.values())


def test_label_proxies_need_a_classifier_and_the_others_score_any_network():
    seg = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 2, 2))

    class Det(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.box, self.cls = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 4, 1), nn.Conv2d(8, 3, (1, 3))

        def forward(self, x):
            x = F.relu(self.body(x))
            return self.box(x), self.cls(x)

    x = torch.randn(4, 3, 8, 8)
    for net in (seg, Det()):
        arch = zs.from_torch(net, (3, 8, 8))
        with pytest.raises(InputError, match=f"^snip, grasp need a classifier's labels: this {arch.task} network"):
            compute_network_proxies(arch, ["naswot", "snip", "grasp"], x)
        free = [n for n in list_proxies("network") if get_proxy(n).needs != "labels"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)                # swap on fewer than 16 images
            warnings.simplefilter("error", RuntimeWarning)              # no value replaced by the NaN rule
            out = compute_network_proxies(arch, free, x, seed=0)
        assert all(math.isfinite(v) for v in out.values()), out


def test_grasp_differences_follow_the_exact_product_through_every_geometry():
    """The frozen kinks (a ceil-mode max pool among them) keep the finite differences on the exact double
    backward (torch has no double backward of hardsigmoid: a ReLU gate stands in for it here)."""
    arch = geo_arch()
    arch = dataclasses.replace(arch, ops=tuple(dataclasses.replace(op, act="relu") if op.act == "hsigmoid" else op
                                               for op in arch.ops))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, *arch.input_shape, generator=g), torch.randint(0, 10, (24,), generator=g)
    forward = compute_network_proxies(arch, ["grasp"], x[:8], y[:8], seed=1)["grasp"]
    central = compute_network_proxies(arch, ["grasp"], x, y, seed=1)["grasp"]
    assert forward == pytest.approx(grasp_exact(arch, x[:8], y[:8], 1), rel=0.05)
    assert central == pytest.approx(grasp_exact(arch, x[:16], y[:16], 1), rel=1e-3)
