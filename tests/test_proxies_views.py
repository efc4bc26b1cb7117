"""meco_batch, meco_full and swap_layers: by hand on small tensors and networks, NaN-free where meco is not, not
saturated where swap is."""
import math
import warnings

import numpy as np
import pytest
import torch

from zeroshot.proxies.compiled import count_distinct_rows, pack_signs
from zeroshot.proxies.network import compute_network_proxies
from zeroshot.proxies.meco import MECO_CHANNELS, MECO_POSITIONS, meco, meco_layer
from zeroshot.proxies.net import _gen, network
from zeroshot.proxies.passes import SWAP_SAMPLES
from zeroshot.proxies.structure import live_ops
from zeroshot.spaces import get_space
from zeroshot.spaces.ir import ACT, BN, Graph


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    yield


def gaussian(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def one_by_one_net():
    """A stride-4 conv to 1x1 maps, then BN / ReLU / 1x1 conv at 1x1: meco's batch-one BN is undefined."""
    g = Graph(3, 4, 4)
    t = g.act(g.bn(g.conv(0, 8, 3, stride=4, pad=1)), "relu")
    t = g.act(g.bn(g.conv(t, 16, 1)), "relu")
    return g.finish(g.classifier(t, 3))


def by_hand(val: torch.Tensor, stride: int = 1) -> float:
    c = val.shape[1]
    idx = np.round(np.linspace(0, c - 1, min(c, MECO_CHANNELS))).astype(int)
    fea = val.numpy()[:, idx].transpose(1, 0, 2, 3).reshape(len(idx), -1)[:, ::stride].astype(np.float64)
    return c / len(idx) * float(np.linalg.eigvalsh(np.corrcoef(fea))[0])


def test_meco_layer_by_hand_channels_sampled_and_weighted():
    val = gaussian((3, 20, 5, 5))
    assert meco_layer(val) == pytest.approx(by_hand(val), rel=1e-9)
    assert 0 < meco_layer(val) < 20 / MECO_CHANNELS           # lambda_min of a correlation is below 1


def test_meco_layer_strides_positions_down_to_its_bound():
    val = gaussian((64, 4, 16, 16))                            # 16,384 positions: every 4th is read
    assert 64 * 16 * 16 // 4 == MECO_POSITIONS
    assert meco_layer(val) == pytest.approx(by_hand(val, 4), rel=1e-9)
    assert meco_layer(val) != pytest.approx(by_hand(val, 1), rel=1e-6)


def test_meco_layer_sees_one_by_one_maps_and_is_zero_below_its_channels():
    val = gaussian((16, 32, 1, 1))
    assert meco_layer(val) > 0.05                               # 16 positions > 8 sampled channels
    assert meco_layer(val[:4]) == pytest.approx(0, abs=1e-9)   # 4 positions, 8 channels: rank-deficient


@pytest.mark.parametrize("n", [2, 16])
def test_meco_batch_is_finite_where_meco_is_nan(n):
    arch = one_by_one_net()
    x = gaussian((n, 3, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no non-finite warning for meco_batch
        got = compute_network_proxies(arch, ["meco_batch"], x, seed=0)["meco_batch"]
    assert math.isfinite(got)


def se_net(gate_bn: bool):
    """A 4x4 stage with a squeeze-excite gate (global pool, 1x1 conv, [BN at 1x1,] sigmoid) feeding 4x4 convs."""
    g = Graph(3, 8, 8)
    x = g.act(g.bn(g.conv(0, 8, 3, stride=2, pad=1)), "relu")
    gate = g.conv(g.gap(x), 8, 1)
    gate = g.act(g.bn(gate) if gate_bn else gate, "sigmoid")
    t = g.act(g.bn(g.conv(g.mul(x, gate), 16, 3, pad=1)), "relu")
    return g.finish(g.classifier(t, 3))


@pytest.mark.parametrize("arch", [one_by_one_net(), se_net(True)], ids=["one-by-one", "se-gate-bn"])
def test_meco_is_finite_where_a_batch_one_bn_sees_one_value_per_channel(arch):
    x = gaussian((16, 3) + arch.input_shape[1:])
    net = network(arch, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no non-finite warning, no numpy warning
        got = compute_network_proxies(arch, ["meco", "meco_full"], x, seed=0)
    assert all(math.isfinite(v) for v in got.values())
    bns = [m for m in network(arch, 0).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.training for m in bns)                 # modes as built
    assert len(list(net.modules())) == len(list(network(arch, 0).modules()))


def test_meco_passes_a_one_value_bn_through():
    """BN over 1x1 maps uses its initial running statistics (an identity at init): meco is that of the same
    network, same weights, with that BN replaced by an identity."""
    arch = se_net(True)
    gate_bn = [i for i, op in enumerate(arch.ops) if op.kind == BN and op.h_out == 1]
    assert len(gate_bn) == 1
    net = network(arch, 0)
    got = meco(arch, net, 0, full=False)[0]
    net.layers[gate_bn[0]] = torch.nn.Identity()
    assert got > 0.01
    assert got == pytest.approx(meco(arch, net, 0, full=False)[0], rel=1e-4)


def test_meco_batch_is_deterministic_and_reads_the_batch():
    arch = one_by_one_net()
    x = gaussian((16, 3, 4, 4))
    a = compute_network_proxies(arch, ["meco_batch"], x, seed=0)["meco_batch"]
    assert compute_network_proxies(arch, ["meco_batch"], x.clone(), seed=0)["meco_batch"] == a
    assert compute_network_proxies(arch, ["meco_batch"], gaussian((16, 3, 4, 4), 1), seed=0)["meco_batch"] != a


def activation_inputs(arch, x, seed=0):
    """The (distinct) input tensor of every live activation, from a plain forward of the default-init net."""
    live = live_ops(arch)
    wanted = {op.inputs[0] for i, op in enumerate(arch.ops) if live[i] and op.kind == ACT}
    seen = {}
    net = network(arch, seed)
    net.tap = lambda t, val: seen.setdefault(t, val.detach()) if t in wanted else None
    with torch.no_grad():
        net(x)
    return list(seen.values())


def test_swap_layers_sums_the_distinct_patterns_of_each_layer():
    arch = one_by_one_net()
    x = gaussian((20, 3, 4, 4))
    got = compute_network_proxies(arch, ["swap", "swap_layers"], x, seed=0)
    per_layer = [count_distinct_rows(pack_signs(v.reshape(20, -1)[:SWAP_SAMPLES].T.contiguous().numpy()))
                 for v in activation_inputs(arch, x)]
    assert len(per_layer) == 2 and got["swap_layers"] == sum(per_layer)
    assert got["swap"] <= got["swap_layers"]


def test_swap_layers_is_not_saturated_where_swap_is():
    space = get_space("mbv2")
    arch = space.to_ir(next(a for a in space.sample(4, seed=0) if a.startswith("r224")))
    x = gaussian((16, *arch.input_shape))
    got = compute_network_proxies(arch, ["swap", "swap_layers"], x, seed=0)
    units = [v[0].numel() for v in activation_inputs(arch, x)]
    assert got["swap"] >= 0.99 * 2 ** SWAP_SAMPLES                      # one 2^16 bound for ~10^6 units
    assert got["swap_layers"] < 0.8 * sum(min(u, 2 ** SWAP_SAMPLES) for u in units)


def relu_maps(c, h):
    """input (c channels, h x h) -> relu -> classifier: meco reads the relu's output, the input's positives."""
    g = Graph(c, h, h)
    return g.finish(g.classifier(g.act(0, "relu"), 3))


def test_meco_full_adds_the_unweighted_eight_channel_term_where_meco_is_blind():
    arch = relu_maps(16, 3)                                      # 16 channels >= 9 pixels: meco's term is 0
    x = gaussian((4, 16, 3, 3))
    got = compute_network_proxies(arch, ["meco", "meco_full"], x, seed=0)
    assert got["meco"] == 0.0
    img = torch.randn(1, 16, 3, 3, generator=_gen(0, "meco")).clamp(min=0)
    assert got["meco_full"] == pytest.approx(by_hand(img) * MECO_CHANNELS / 16, rel=1e-9)
    assert 0 < got["meco_full"] < 1                              # one layer: at most 1, as meco's terms


def test_meco_full_is_meco_where_every_layer_has_more_pixels_than_channels():
    arch = relu_maps(3, 4)
    x = gaussian((4, 3, 4, 4))
    got = compute_network_proxies(arch, ["meco", "meco_full"], x, seed=0)
    assert got["meco_full"] == got["meco"] > 0
