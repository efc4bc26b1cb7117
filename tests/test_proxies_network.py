"""Network proxies: kernels against numpy, proxies on tiny networks against independent (hand or plain
torch) computations, determinism across processes, the NaN / inf rule, shared passes == one by one,
isomorphic NB201 cells score alike."""
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import Graph
from zeroshot.spaces.nb201 import Nb201Space
from zeroshot.proxies import get_proxy, list_proxies
from zeroshot.proxies.compiled import count_distinct_rows, eigvalsh, hamming_gram, logdet, pack_signs
from zeroshot.proxies.network import NETWORK_PROXIES, NONFINITE, compute_network_proxies
from zeroshot.proxies.grasp import GRASP_BATCH, grasp_exact
from zeroshot.proxies.kinks import Frozen
from zeroshot.proxies.net import _gen
from zeroshot.proxies.passes import BATCH_PROXIES, LABEL_PROXIES, SWAP_SAMPLES, jacob_cov_score, zico_score
from zeroshot.proxies.structure import init_network, live_ops, thin_arch

TINY = Nb201Space(channels=4, cells=1, resolution=8)
CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)         # tiny networks: threads only add contention
    yield
    torch.set_num_threads(old)


def batch(n=16, c=3, h=8, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, h, generator=g), torch.randint(0, classes, (n,), generator=g)


def net_of(arch, seed=0):
    net = build(arch)
    init_network(net, arch, seed)
    return net.train()


def scored_layers(net):
    """The conv and linear modules: the layers whose weights the reference proxies score."""
    return [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def act_only(c=2, h=2, classes=3):
    """input -> relu -> classifier: the ReLU codes are the signs of the input itself."""
    g = Graph(c, h, h)
    return g.finish(g.classifier(g.act(0, "relu"), classes))


def conv_net(bn=False, c=3, h=4, classes=3):
    g = Graph(c, h, h)
    t = g.conv(0, 4, 3)
    t = g.act(g.bn(t) if bn else t, "relu")
    t = g.act(g.conv(t, 5, 3, bias=True), "relu")
    return g.finish(g.classifier(t, classes))


# ---------------------------------------------------------------- kernels

def test_pack_and_hamming_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 200)).astype(np.float32)
    x[0, :70] = 0.0                                       # 0 is not > 0
    codes = pack_signs(x)
    assert codes.shape == (9, 4)
    bits = (x > 0)
    assert int(codes[1, 0]) == sum(1 << j for j in range(64) if bits[1, j])
    expected = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_gram(codes), expected)
    out = np.ones((9, 9), np.int64)
    np.testing.assert_array_equal(hamming_gram(codes, out), expected + 1)   # accumulates


def test_count_distinct_rows_matches_unique():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 130)).astype(np.float32)
    x = base[rng.integers(0, 40, 500)]                   # 500 rows, at most 40 distinct
    x[::7, 129] = -x[::7, 129]                           # some differ in the last (padded) word only
    expect = len(np.unique(x > 0, axis=0))
    assert count_distinct_rows(pack_signs(x)) == expect
    assert count_distinct_rows(np.zeros((0, 1), np.uint64)) == 0


def test_eigvalsh_and_logdet_match_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(12, 12))
    sym = a + a.T
    np.testing.assert_allclose(eigvalsh(sym), np.linalg.eigvalsh(sym), rtol=1e-10, atol=1e-10)
    pd = a @ a.T + np.eye(12)
    assert logdet(pd) == pytest.approx(np.linalg.slogdet(pd)[1], rel=1e-10)
    assert logdet(sym) == pytest.approx(np.linalg.slogdet(sym)[1], rel=1e-10)   # indefinite: log|det|
    assert logdet(np.ones((3, 3))) == -math.inf
    assert math.isnan(logdet(np.array([[np.nan, 0.0], [0.0, 1.0]])))
    with pytest.raises(ValueError, match="square"):
        eigvalsh(np.ones((2, 3)))


# ---------------------------------------------------------------- proxies against hand computations

def test_naswot_is_logdet_of_code_kernel():
    arch = act_only(c=3, h=4)
    x, y = batch(10, c=3, h=4, classes=3)
    codes = (x.reshape(10, -1).numpy() > 0).astype(np.float64)
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T   # = units - Hamming distance
    got = compute_network_proxies(arch, ["naswot"], x, y)["naswot"]
    assert got == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-9)
    # 8 units, 10 samples: K is singular -> -inf, the worst value (with a warning)
    small = act_only(c=2, h=2)
    xs, ys = batch(10, c=2, h=2, classes=3)
    with pytest.warns(RuntimeWarning, match="naswot"):
        assert compute_network_proxies(small, ["naswot"], xs, ys)["naswot"] == -math.inf


def test_swap_counts_distinct_unit_patterns_of_16_samples():
    arch = act_only(c=3, h=4)
    x, y = batch(20, c=3, h=4, classes=3)
    patterns = (x[:16].reshape(16, -1).numpy() > 0).T
    got = compute_network_proxies(arch, ["swap"], x, y)["swap"]
    assert got == len(np.unique(patterns, axis=0))


def test_synflow_by_hand():
    g = Graph(1, 1, 1)
    t = g.act(g.bn(g.conv(0, 3, 1)), "relu")
    arch = g.finish(g.classifier(t, 2))
    net = net_of(arch)
    c = net.layers[0].weight.detach().double().abs().reshape(3)
    w = net.layers[-1].weight.detach().double().abs()                # (2, 3)
    # ones input, |W|, no BN: R = sum_j sum_i w_ji c_i + |b_j|; conv and linear terms are equal
    expect = math.log(2 * float((w * c[None, :]).sum()))
    x, y = batch(4, c=1, h=1, classes=2)
    assert compute_network_proxies(arch, ["synflow"], x, y)["synflow"] == pytest.approx(expect, rel=1e-12)


def test_gradient_proxies_match_plain_torch():
    arch = conv_net(bn=True)
    x, y = batch(12, c=3, h=4, classes=3)
    got = compute_network_proxies(arch, ["grad_norm", "snip", "fisher", "grasp", "jacob_cov"], x, y)
    net = net_of(arch)
    convs = scored_layers(net)
    acts = []

    def keep(mod, inp, out):
        out.retain_grad()
        acts.append(out)

    for m in convs:
        m.register_forward_hook(keep)
    xi = x.clone().requires_grad_(True)
    out = net(xi)
    loss = F.cross_entropy(out, y)
    loss.backward(retain_graph=True)
    assert got["grad_norm"] == pytest.approx(sum(float(m.weight.grad.norm()) for m in convs), rel=1e-5)
    assert got["snip"] == pytest.approx(sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in convs), rel=1e-5)
    fisher = sum(float((0.5 * (a.detach() * a.grad).flatten(2).sum(2).pow(2).mean(0)).sum()) if a.ndim == 4 else
                 float((0.5 * (a.detach() * a.grad).pow(2).mean(0)).sum()) for a in acts)
    assert got["fisher"] == pytest.approx(fisher, rel=1e-5)
    # GraSP as in the reference: z = sum(g.detach() * g_with_graph), score = -sum(W * dz/dW); ours is a
    # forward difference of gradients (a deliberate difference): float32, relative step 1e-2
    ws = [m.weight for m in convs]
    gw = [m.weight.grad.detach().clone() for m in convs]
    gf = torch.autograd.grad(F.cross_entropy(net(x), y), ws, create_graph=True)
    hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(gw, gf)), ws)
    assert got["grasp"] == pytest.approx(-sum(float((w.detach() * h).sum()) for w, h in zip(ws, hg)), rel=1e-2)
    xi.grad = None
    net.zero_grad()
    out2 = net(xi)
    out2.backward(torch.ones_like(out2))
    jac = xi.grad.reshape(12, -1).double().numpy()
    v = np.linalg.eigvalsh(np.corrcoef(jac)) + 1e-5
    assert got["jacob_cov"] == pytest.approx(-np.sum(np.log(v) + 1 / v), rel=1e-6)


def maxpool_net():
    g = Graph(3, 8, 8)
    t = g.pool(g.act(g.bn(g.conv(0, 6, 3)), "relu6"), 3, 2, 1, kind="max")
    return g.finish(g.classifier(g.act(g.bn(g.conv(t, 8, 3)), "relu"), 4))


@pytest.mark.parametrize("make", [lambda: TINY.to_ir(CELL), lambda: mobile_block_net(), maxpool_net],
                         ids=["nb201", "mobile", "maxpool"])
@pytest.mark.parametrize("n", [GRASP_BATCH, GRASP_BATCH + 8], ids=["forward", "central"])
def test_grasp_finite_difference_close_to_double_backward(make, n):
    # the finite differences (kinks frozen: ReLU, ReLU6, h-swish, max pool) against the reference's exact
    # Hessian-gradient product on the same network and the images grasp reads: the batch pass's forward
    # difference up to GRASP_BATCH images, the central difference on the first GRASP_BATCH of more
    arch = make()
    x, y = batch(n, c=3, h=arch.input_shape[1], classes=arch.ops[-1].c_out)
    exact = grasp_exact(arch, x[:GRASP_BATCH], y[:GRASP_BATCH], seed=1)
    assert compute_network_proxies(arch, ["grasp"], x, y, seed=1)["grasp"] == pytest.approx(exact, rel=3e-2)


def test_grasp_reads_only_the_first_images_of_a_larger_batch():
    arch = TINY.to_ir(CELL)
    x, y = batch(GRASP_BATCH + 24, c=3, h=arch.input_shape[1], classes=arch.ops[-1].c_out)
    x2 = x.clone()
    x2[GRASP_BATCH:] = torch.randn_like(x2[GRASP_BATCH:])
    a = compute_network_proxies(arch, ["grasp", "snip"], x, y, seed=1)
    b = compute_network_proxies(arch, ["grasp", "snip"], x2, y, seed=1)
    assert a["grasp"] == b["grasp"]
    assert a["snip"] != b["snip"]                      # the other proxies read the whole batch


@pytest.mark.parametrize("act", ["relu", "relu6", "hswish"])
def test_frozen_activation_equals_the_activation_at_its_input(act):
    g = Graph(2, 4, 4)
    arch = g.finish(g.act(0, act))
    op = arch.ops[0]
    x0 = torch.linspace(-8, 8, 2 * 2 * 4 * 4).reshape(2, 2, 4, 4)
    layer = build(arch).layers[0]
    frozen = Frozen(op, x0)
    torch.testing.assert_close(frozen(x0), layer(x0))
    # a nearby input keeps x0's pieces: exactly linear (relu, relu6) or quadratic (hswish) in it
    x1 = x0 + 0.5
    expect = {"relu": x1 * (x0 > 0), "relu6": x1 * ((x0 > 0) & (x0 < 6)) + 6.0 * (x0 >= 6),
              "hswish": x1 * ((x1 + 3) * ((x0 > -3) & (x0 < 3)) + 6.0 * (x0 >= 3)) / 6}[act]
    torch.testing.assert_close(frozen(x1), expect)


def test_zico_by_hand():
    g = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 5.0]])   # std (1, 0, 1), mean|g| (2, 2, 4)
    assert zico_score([g]) == pytest.approx(math.log(2 / 1 + 4 / 1))
    assert zico_score([np.zeros((2, 4))]) == 0.0        # all-zero std: layer skipped, no -inf


def test_jacob_cov_formula():
    jac = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0], [1.0, 1.0, 2.0]])
    v = np.linalg.eigvalsh(np.corrcoef(jac)) + 1e-5
    assert jacob_cov_score(jac) == pytest.approx(-np.sum(np.log(v) + 1 / v))
    assert math.isnan(jacob_cov_score(np.ones((3, 4))))   # constant rows: NaN correlations


def strided_net(h):
    """BN-free: a strided 3x3 conv, an unpadded 5x5 conv, a 1x1 conv (ntk's per-offset products)."""
    g = Graph(3, h, h)
    t = g.act(g.conv(0, 4, 3, stride=2), "relu")
    t = g.act(g.conv(t, 6, 5, pad=0), "relu")
    return g.finish(g.classifier(g.act(g.conv(t, 5, 1), "relu"), 3))


def bn_free_run(n, h=4, make=conv_net):
    """A BN-free conv net (independent samples), a batch of ``n``, its scored weights and logits."""
    arch = make(bn=False, h=h) if make is conv_net else make(h)
    x, y = batch(n, c=3, h=h, classes=3)
    net = net_of(arch)
    return arch, x, y, [m.weight for m in scored_layers(net)], net(x)


@pytest.mark.parametrize("h, make", [(4, conv_net), (9, conv_net), (11, strided_net), (21, strided_net)],
                         ids=["16px", "81px", "strided-small", "strided-large"])   # per-offset products / grouped
def test_ntk_matches_per_sample_backward_without_bn(h, make):
    arch, x, y, ws, out = bn_free_run(6, h, make)
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(out[n].sum(), ws, retain_graph=True)])
            for n in range(6)]
    j = torch.stack(rows).double()
    w = np.linalg.eigvalsh((j @ j.T).numpy())
    got = compute_network_proxies(arch, ["ntk"], x, y)["ntk"]
    assert got == pytest.approx(w[-1] / w[0], rel=1e-4)


def test_zico_halves_without_bn_match_two_backwards():
    # without BN the samples are independent, so splitting one backward per sample is exact
    arch, x, y, ws, out = bn_free_run(12)
    g1 = torch.autograd.grad(F.cross_entropy(out[:6], y[:6]), ws, retain_graph=True)
    g2 = torch.autograd.grad(F.cross_entropy(out[6:], y[6:]), ws)
    expect = zico_score([torch.stack([a.reshape(-1), b.reshape(-1)]).double().numpy() for a, b in zip(g1, g2)])
    assert compute_network_proxies(arch, ["zico"], x, y)["zico"] == pytest.approx(expect, rel=1e-5)


def test_zen_by_hand_without_bn():
    arch = conv_net(bn=False)
    x, y = batch(8, c=3, h=4, classes=3)
    net = build(arch)
    init_network(net, arch, 0, "gaussian")
    g = _gen(0, "zen")
    z = torch.randn(16, 3, 4, 4, generator=g)
    z2 = z + 0.01 * torch.randn(16, 3, 4, 4, generator=g)
    body = torch.nn.Sequential(*list(net.layers)[:4])          # conv, relu, conv, relu: before the pool
    with torch.no_grad():
        diff = (body(z) - body(z2)).abs().flatten(1).sum(1).mean()
    assert compute_network_proxies(arch, ["zen"], x, y)["zen"] == pytest.approx(math.log(float(diff)), rel=1e-5)


def test_meco_by_hand():
    # an activation-only network: one layer, the ReLU of one Gaussian image
    a = act_only(c=3, h=4)
    x, _ = batch(8, c=3, h=4, classes=3)
    img = torch.randn(1, 3, 4, 4, generator=_gen(0, "meco"))[0].clamp(min=0).reshape(3, -1).double().numpy()
    with np.errstate(all="ignore"):
        corr = np.corrcoef(img)
    corr[~np.isfinite(corr)] = 0
    assert compute_network_proxies(a, ["meco"], x, None)["meco"] == pytest.approx(np.linalg.eigvalsh(corr)[0], abs=1e-9)


def test_linear_regions_bounded_and_seeded():
    arch = TINY.to_ir(CELL)
    x, y = batch()
    v0 = compute_network_proxies(arch, ["linear_regions"], x, y, seed=0)["linear_regions"]
    v0b = compute_network_proxies(arch, ["linear_regions"], x, y, seed=0)["linear_regions"]
    assert v0 == v0b and 1 <= v0 <= 1000


# ---------------------------------------------------------------- engine properties

def test_registry_lists_exactly_the_network_proxies_the_engine_computes():
    """The registry's network proxies are those the shared passes compute (every one of them, nothing
    else), and those it says need labels are the ones the label passes serve."""
    registered = list_proxies("network")
    x, y = batch()
    assert sorted(compute_network_proxies(TINY.to_ir(CELL), registered, x, y)) == registered
    assert registered == sorted(NETWORK_PROXIES) and BATCH_PROXIES <= set(registered)
    assert {n for n in registered if get_proxy(n).needs == "labels"} == LABEL_PROXIES
    assert get_proxy("ntk").higher_is_better is False and get_proxy("naswot").higher_is_better is True
    with pytest.raises(KeyError, match="choose from"):
        get_proxy("nswot")


def test_shared_suite_equals_one_by_one():
    arch = TINY.to_ir(CELL)
    x, y = batch()
    together = compute_network_proxies(arch, NETWORK_PROXIES, x, y, seed=3)
    for name in NETWORK_PROXIES:
        alone = get_proxy(name).fn(arch, x, y, seed=3)
        assert alone == pytest.approx(together[name], rel=1e-6), name


ISOMORPHIC = [
    # nodes 1 and 2 swapped
    ("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|",
     "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"),
    # dead edges (their conv modules still exist) vs a cell cut off by 'none'
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|none~2|",
     "|none~0|+|none~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|"),
]


@pytest.mark.parametrize("a,b", ISOMORPHIC)
def test_isomorphic_cells_score_alike(a, b):
    x, y = batch()
    va = compute_network_proxies(TINY.to_ir(a), NETWORK_PROXIES, x, y)
    vb = compute_network_proxies(TINY.to_ir(b), NETWORK_PROXIES, x, y)
    for name in NETWORK_PROXIES:
        assert va[name] == pytest.approx(vb[name], rel=1e-5), name
    assert live_ops(TINY.to_ir(a)).sum() == live_ops(TINY.to_ir(b)).sum()


def test_nonfinite_values_become_worst_with_a_warning():
    g = Graph(3, 4, 4)
    dead = g.zero(g.act(0, "relu"))                 # the classifier sees zeros: constant logits
    arch = g.finish(g.classifier(dead, 3))
    x, y = batch(8, c=3, h=4, classes=3)
    before = dict(NONFINITE)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        v = compute_network_proxies(arch, ["jacob_cov", "ntk", "synflow"], x, y)
    assert v == {"jacob_cov": -math.inf, "ntk": math.inf, "synflow": -math.inf}
    assert NONFINITE["ntk"] == before.get("ntk", 0) + 1


def test_bad_input_messages():
    arch = TINY.to_ir(CELL)
    x, y = batch()
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(3, 8, 8\)"):
        compute_network_proxies(arch, ["snip"], x[:, :2], y)
    with pytest.raises(ValueError, match="labels in 0..9"):
        compute_network_proxies(arch, ["snip"], x, y + 10)
    with pytest.raises(ValueError, match="not a network proxy"):
        compute_network_proxies(arch, ["params"], x, y)


SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from zeroshot.spaces.nb201 import Nb201Space
from zeroshot.proxies.network import compute_network_proxies, NETWORK_PROXIES
g = torch.Generator().manual_seed(0)
x = torch.randn(16, 3, 8, 8, generator=g); y = torch.randint(0, 10, (16,), generator=g)
arch = Nb201Space(channels=4, cells=1, resolution=8).to_ir(sys.argv[1])
print(json.dumps(compute_network_proxies(arch, NETWORK_PROXIES, x, y, seed=7)))
"""


def test_deterministic_across_processes():
    run = subprocess.run([sys.executable, "-c", SCRIPT, CELL], capture_output=True, text=True, check=True)
    x, y = batch()
    here = compute_network_proxies(TINY.to_ir(CELL), NETWORK_PROXIES, x, y, seed=7)
    assert json.loads(run.stdout) == here
    other = compute_network_proxies(TINY.to_ir(CELL), NETWORK_PROXIES, x, y, seed=8)
    assert other["snip"] != here["snip"]


def test_meco_is_zero_when_channels_exceed_pixels():
    # 5 channels of 4 pixels: the correlation matrix has rank <= 3, its smallest eigenvalue is 0
    x, _ = batch(4, c=5, h=2, classes=3)
    assert compute_network_proxies(act_only(c=5, h=2), ["meco"], x)["meco"] == 0.0


def mobile_block_net():
    """Depthwise conv, squeeze-excitation gate, channel shuffle and concat: the ops of mobile spaces."""
    g = Graph(3, 8, 8)
    t = g.act(g.bn(g.conv(0, 8, 3)), "hswish")
    d = g.conv(t, 8, 3, groups=8)
    s = g.act(g.conv(g.act(g.conv(g.gap(d), 2, 1), "relu"), 8, 1), "sigmoid")
    u = g.concat([g.shuffle(g.mul(d, s), 2), t])
    return g.finish(g.classifier(u, 3))


def test_mobile_ops_run_and_thin_copy_keeps_the_head():
    arch = mobile_block_net()
    x, y = batch(SWAP_SAMPLES, c=3, h=8, classes=3)
    v = compute_network_proxies(arch, NETWORK_PROXIES, x, y)
    assert set(v) == set(NETWORK_PROXIES) and all(math.isfinite(f) for f in v.values())
    thin = thin_arch(arch, 8, 2)
    assert thin.ops[0].c_out == 1 and thin.ops[-1].c_out == 3 and thin.input_shape == (3, 2, 2)


def test_swap_warns_when_the_batch_is_smaller_than_its_samples():
    arch = conv_net(bn=True)
    x, y = batch(SWAP_SAMPLES - 1, c=3, h=4, classes=3)
    with pytest.warns(UserWarning, match=f"swap reads {SWAP_SAMPLES} samples but the batch has {SWAP_SAMPLES - 1}"):
        compute_network_proxies(arch, ["swap"], x, y)
    x, y = batch(SWAP_SAMPLES, c=3, h=4, classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        compute_network_proxies(arch, ["swap", "naswot"], x, y)
