"""zs.advise and the IR moves it is made of: each move found on MobileNetV2 and not where it does not apply,
ranking by gain, applied moves that build and estimate to the advice's "after", the mbv2 rewrites' equals on
the IR, typed errors, the command."""
import dataclasses

import numpy as np
import pytest
import torch

import zeroshot as zs
from zeroshot.advice import advise
from zeroshot.cli import main
from zeroshot.errors import ParameterError
from zeroshot.estimator.counts import analytic_counts
from zeroshot.spaces import get_space, moves as mv
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.ir import CONV, LINEAR, Graph
from zeroshot.spaces.mbv2 import MOBILENETV2
from zeroshot.spaces.rewrites import apply_rewrites

DEVICE = "mobile-npu-16"


@pytest.fixture(scope="module")
def mbv2():
    return get_space("mbv2").to_ir(MOBILENETV2)


@pytest.fixture(scope="module")
def advice(mbv2):
    return advise(mbv2, device=DEVICE, max_params=1_857_582, max_peak_kb=4986)


def se_net():
    """A MobileNetV3-style network: hswish, inverted bottlenecks with squeeze-excite gates, widths off P."""
    g = Graph(3, 64, 64)
    x = g.act(g.bn(g.conv(0, 20, 3, stride=2)), "hswish")
    for c_out, e, stride in ((20, 3, 1), (40, 4, 2), (40, 4, 1), (72, 3, 2)):
        c_in = g.shape(x)[0]
        h = g.act(g.bn(g.conv(x, c_in * e, 1)), "hswish")
        h = g.act(g.bn(g.conv(h, c_in * e, 3, stride=stride, groups=c_in * e)), "hswish")
        s = g.act(g.conv(g.act(g.conv(g.gap(h), max(8, c_in * e // 4), 1, bias=True), "relu"), c_in * e, 1,
                         bias=True), "hsigmoid")
        y = g.bn(g.conv(g.mul(h, s), c_out, 1))
        x = g.add([x, y]) if stride == 1 and c_in == c_out else y
    return g.finish(g.classifier(g.act(g.bn(g.conv(x, 100, 1)), "hswish"), 10))


def plain_net():
    """Plain convs, widths multiples of 16, no depthwise conv, no residual: nothing to advise."""
    g = Graph(3, 32, 32)
    x = g.act(g.bn(g.conv(0, 16, 3, stride=2)), "relu")
    x = g.act(g.bn(g.conv(x, 32, 3, stride=2)), "relu")
    return g.finish(g.classifier(x, 10))


# ------------------------------------------------------------------------------------------ patterns
def test_blocks_stages_and_groups_on_mobilenetv2(mbv2):
    blocks = mv.find_blocks(mbv2)
    assert len(blocks) == 17 and blocks[0].expand is None and all(b.expand for b in blocks[1:])
    assert [len(s) for s in mv.stages(mbv2)] == [1, 2, 3, 2, 2]          # stage depths 2, 3, 4, 3, 3
    assert [u.ops for u in mv.residuals(mbv2)] == [b.ops for b in blocks if b.add is not None]
    widths = {g.channels for g in mv.channel_groups(mbv2)}
    assert {16, 24, 32, 64, 96, 160, 320, 1280} <= widths and 1000 not in widths      # the classifier is fixed


def test_squeeze_excite_blocks_are_found_and_resized_together():
    arch = se_net()
    blocks = mv.find_blocks(arch)
    assert len(blocks) == 4 and all(b.se and b.expand for b in blocks)
    assert [b.add is not None for b in blocks] == [True, False, True, False]
    snapped = mv.resize(arch, lambda c: mv.snap_width(c, 16))
    assert all(g.channels % 16 == 0 for g in mv.channel_groups(snapped))
    for new in (snapped, mv.fuse(arch, blocks), mv.drop_blocks(arch, [blocks[2]])):
        net = build(new)
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 10) and count_parameters(net) == new.params


def test_peak_tensors_add_up_to_the_estimators_peak(mbv2):
    for arch in (mbv2, se_net(), get_space("mbv2", task="detect").to_ir(MOBILENETV2)):
        _, tensors = mv.peak_tensors(arch)
        total = sum(int(np.prod(arch.tensor_shape(t))) for t in tensors) * 4
        assert total == analytic_counts([arch])["peak_activation_bytes"][0]


# ------------------------------------------------------------------------------------------ mbv2 rewrites
@pytest.mark.parametrize("P", [8, 16])
def test_snap_on_the_ir_is_the_snap_rewrite(mbv2, P):
    space = get_space("mbv2")
    codes, _ = apply_rewrites(space, space.parse(MOBILENETV2), f"snap:P={P}")
    assert mv.resize(mbv2, lambda c: mv.snap_width(c, P)).ops == space.to_ir(codes).ops


@pytest.mark.parametrize("m", [0.35, 0.75, 1.4])
def test_width_on_the_ir_is_the_width_rewrite(mbv2, m):
    space = get_space("mbv2")
    codes, _ = apply_rewrites(space, space.parse(MOBILENETV2), f"width:m={m}")
    groups = mv.channel_groups(mbv2)
    if m < 1:                                     # MobileNetV2 keeps its 1280-wide head below 1
        groups = [g for g in groups if g.channels != 1280]
    assert mv.resize(mbv2, lambda c: mv.scale_width(c, m), groups).ops == space.to_ir(codes).ops


@pytest.mark.parametrize("m", [0.25, 0.5, 0.75])
def test_depth_on_the_ir_is_the_depth_rewrite(mbv2, m):
    space = get_space("mbv2")
    codes, _ = apply_rewrites(space, space.parse(MOBILENETV2), f"depth:m={m}")
    gone = [u for run in mv.stages(mbv2) for u in run[mv.scaled_depth(len(run) + 1, m) - 1:]]
    assert mv.drop_blocks(mbv2, gone).ops == space.to_ir(codes).ops


@pytest.mark.parametrize("task", ["classify", "detect"])
def test_fuse_on_the_ir_is_the_fuse_rewrite(task):
    space = get_space("mbv2", task=task)
    for codes in [space.parse(MOBILENETV2), *space.sample_codes(10, np.random.default_rng(0))]:
        arch = space.to_ir(codes)
        fused, _ = apply_rewrites(space, codes, "fuse:stages=1-4")
        n = sum(b[0] == 0 for st in space.decode(codes)[3][:4] for b in st)     # the IBNs of stages 1-4
        assert mv.fuse(arch, mv.find_blocks(arch)[:n]).ops == space.to_ir(fused).ops


# ------------------------------------------------------------------------------------------ advice
def test_each_move_is_found_on_mobilenetv2(advice):
    kinds = {m.kind for m in advice.moves}
    assert {"fuse", "snap", "snap-down", "depth", "width"} <= kinds
    assert list(advice.lanes["channels"]) == [24] and list(advice.lanes["wasted_lanes"]) == [8]
    assert len(advice.blocks) == 17 and len(advice.depthwise) == 1          # the e=1 block's dw conv
    # early narrow high-resolution blocks pay, late wide ones do not (docs/design.md, case study 4)
    change = advice.blocks["change_pct"]
    assert change[1] < 0 and (change[-6:] > 0).all()
    assert {m.title for m in advice.moves if m.kind == "fuse"} >= {f"fuse {advice.blocks['where'][1]}"}
    assert list(advice.peak["shape"]) == ["96x112x112", "96x112x112"]
    assert advice.table["fits"].dtype == bool and advice.table["fits"].any()


def test_moves_are_ranked_by_latency_gained(advice):
    gain = advice.table["gain_ms"]
    assert len(gain) >= 5 and (np.diff(gain) <= 0).all()
    assert np.allclose(gain, advice.before["latency_ms"] - advice.table["latency_ms"])


def test_apply_builds_each_move_and_estimates_to_the_advice(advice, mbv2):
    for i, move in enumerate(advice.moves):
        done = advice.apply(i)
        assert done.arch is move.arch and count_parameters(done.module) == done.arch.params
        t = zs.estimate(done.arch, device=DEVICE)
        assert t["latency_ms"][0] == advice.table["latency_ms"][i] == done.report["latency_ms"][1]
        assert t["params"][0] == advice.table["params"][i]
        assert done.report["latency_ms"][0] == advice.before["latency_ms"]
    assert build(advice.apply(0).arch)(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_moves_not_found_where_they_do_not_apply():
    space = get_space("mbv2")
    fused, _ = apply_rewrites(space, space.parse(MOBILENETV2), "fuse:stages=1-7,snap:P=16")
    a = advise(space.format(fused), space="mbv2", device=DEVICE)
    assert not {"fuse", "dw2conv", "snap", "snap-down", "width"} & {m.kind for m in a.moves}
    assert len(a.blocks) == len(a.depthwise) == len(a.lanes) == 0
    plain = advise(plain_net(), device=DEVICE)
    assert len(plain) == 0 and "no move applies" in str(plain)
    with pytest.raises(ParameterError, match="index"):
        plain.apply(0)


@pytest.mark.parametrize("given", ["graphnet", "torch"])
def test_unchanged_layers_keep_the_weights_of_a_torch_network(given):
    torch.manual_seed(0)
    net = build(se_net()) if given == "graphnet" else mobilenet(se=True)
    modules = ([m for m in net.layers if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear))]
               if given == "graphnet" else
               [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear))])
    for m in modules:                          # "trained": weights and statistics no fresh layer has
        torch.nn.init.uniform_(m.weight, 2, 3)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.5)
    a = advise(net, device=DEVICE, input_shape=None if given == "graphnet" else (3, 96, 96))
    done = a.apply(next(i for i, m in enumerate(a.moves) if m.kind == "fuse"))
    before, from_ops = a.arch, done.arch.meta["from_ops"]
    kept = fresh = 0
    for op, layer, i in zip(done.arch.ops, done.module.layers, from_ops):
        if op.kind in (CONV, LINEAR):
            same = dataclasses.replace(op, inputs=()) == dataclasses.replace(before.ops[i], inputs=())
            assert bool((layer.weight >= 2).all()) == same
            kept, fresh = kept + same, fresh + (not same)
    assert kept > 10 and fresh >= 1


def test_errors_are_typed_and_name_the_parameter(mbv2):
    cases = [(dict(device=None), "device"), (dict(device=DEVICE, max_params=0), "max_params"),
             (dict(device=DEVICE, max_peak_kb="1"), "max_peak_kb"),
             (dict(device=DEVICE, input_shape=(3, 224, 224)), "input_shape")]
    for kwargs, param in cases:
        with pytest.raises(ParameterError) as e:
            advise(mbv2, **kwargs)
        assert e.value.param == param
    with pytest.raises(ParameterError) as e:
        advise(3.5, device=DEVICE)
    assert e.value.param == "model"
    with pytest.raises(ParameterError) as e:
        advise(torch.nn.Conv2d(3, 8, 3), device=DEVICE)
    assert e.value.param == "input_shape"
    with pytest.raises(ParameterError) as e:
        advise(mbv2, device=DEVICE).apply(99)
    assert e.value.param == "index"


# ------------------------------------------------------------------------------------------ command
def test_command_lists_applies_and_writes(tmp_path, capsys):
    out = tmp_path / "net.pt"
    assert main(["advise", "mbv2", "mobilenetv2", "--device", DEVICE, "--apply", "1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# on {DEVICE}: 1.246 ms") and "applied: " in text and "fusing each" in text
    from zeroshot.export import load_torch
    assert load_torch(str(out))(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("argv, flag", [(["--apply", "0"], "--apply"), (["-o", "x.json"], "--output"),
                                        (["--max-params", "-1"], "--max-params")])
def test_command_bad_input_is_one_line_exit_2(argv, flag, capsys):
    assert main(["advise", "mbv2", "mobilenetv2", "--device", DEVICE, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]


def test_snap_down_never_widens_and_snap_fills_the_lanes(mbv2):
    a = advise(mbv2, device="nvdla-large")                                     # P = 64, above several widths
    down, up = (next(m for m in a.moves if m.kind == k) for k in ("snap-down", "snap"))
    assert all(n.c_out <= o.c_out for o, n in zip(mbv2.ops, down.arch.ops))
    assert any(n.c_out < o.c_out for o, n in zip(mbv2.ops, down.arch.ops))
    assert all(g.channels % 64 == 0 for g in mv.channel_groups(up.arch))


# ------------------------------------------------------------------------------------------ torch models
class _IBN(torch.nn.Module):
    """torchvision's InvertedResidual / MobileNetV3 block: optional expansion, SE gate (scale * x) and act."""

    def __init__(self, c_in, hidden, c_out, k, stride, se=False, act=torch.nn.ReLU6):
        super().__init__()
        layers = [] if hidden == c_in else [torch.nn.Conv2d(c_in, hidden, 1, bias=False),
                                            torch.nn.BatchNorm2d(hidden), act()]
        layers += [torch.nn.Conv2d(hidden, hidden, k, stride, k // 2, groups=hidden, bias=False),
                   torch.nn.BatchNorm2d(hidden), act()]
        self.pre = torch.nn.Sequential(*layers)
        self.se = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(hidden, hidden // 4, 1),
                                      torch.nn.ReLU(), torch.nn.Conv2d(hidden // 4, hidden, 1),
                                      torch.nn.Hardsigmoid()) if se else None
        self.post = torch.nn.Sequential(torch.nn.Conv2d(hidden, c_out, 1, bias=False), torch.nn.BatchNorm2d(c_out))
        self.res = stride == 1 and c_in == c_out

    def forward(self, x):
        h = self.pre(x)
        if self.se is not None:
            h = self.se(h) * h
        y = self.post(h)
        return x + y if self.res else y


def mobilenet(se: bool):
    """A small torchvision-style MobileNetV2 (se=False, ReLU6) or V3 (se=True, hardswish, widths off 16)."""
    act = torch.nn.Hardswish if se else torch.nn.ReLU6
    blocks = [(16, 16, 16, 3, 1), (16, 64, 24, 3, 2), (24, 72, 24, 3, 1), (24, 72, 40, 5, 2), (40, 120, 40, 5, 1),
              (40, 240, 80, 3, 2), (80, 200, 80, 3, 1)]
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(16), act(),
        *[_IBN(*b, se=se and i % 2 == 0, act=act) for i, b in enumerate(blocks)],
        torch.nn.Conv2d(80, 480, 1, bias=False), torch.nn.BatchNorm2d(480), act(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(480, 100))


@pytest.mark.parametrize("se", [False, True])
def test_torch_models_get_advice_and_applied_moves_run(se):
    model = mobilenet(se)
    a = advise(model, device=DEVICE, input_shape=(3, 96, 96), max_peak_kb=100)
    kinds = {m.kind for m in a.moves}
    assert {"snap", "depth", "width"} <= kinds and len(a.lanes)
    assert len(a.blocks) == (6 if se else 7)              # a gated block without expansion is not fused
    assert sum(b.se != () for b in mv.find_blocks(a.arch)) == (4 if se else 0)
    for i in range(len(a)):
        done = a.apply(i)
        out = done.module.eval()(torch.zeros(1, 3, 96, 96))
        assert out.shape == (1, 100) and count_parameters(done.module) == done.arch.params


class _Basic(torch.nn.Module):
    """torchvision's ResNet BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.branch = torch.nn.Sequential(
            torch.nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), torch.nn.BatchNorm2d(c_out), torch.nn.ReLU(),
            torch.nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(c_out))
        self.down = None if stride == 1 and c_in == c_out else torch.nn.Sequential(
            torch.nn.Conv2d(c_in, c_out, 1, stride, bias=False), torch.nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.branch(x) + (x if self.down is None else self.down(x)))


def test_a_resnet_gets_depth_and_snap_but_no_depthwise_move():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 24, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(24),
                                torch.nn.ReLU(), _Basic(24, 24, 1), _Basic(24, 40, 2), _Basic(40, 40, 1),
                                _Basic(40, 40, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(40, 10))
    a = advise(model, device=DEVICE, input_shape=(3, 64, 64))
    assert {m.kind for m in a.moves} == {"depth", "snap", "snap-down"} and len(a.blocks) == len(a.depthwise) == 0
    assert [len(run) for run in mv.stages(a.arch)] == [1, 2]        # the downsample block is not removable
    depth = next(m for m in a.moves if m.title.startswith("depth multiplier 0.5"))
    assert len(depth.arch.ops) == len(a.arch.ops) - 2 * 7           # two units of conv, bn, relu, conv, bn, add, relu
    assert build(depth.arch)(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_command_takes_a_model_file(tmp_path, capsys):
    path = tmp_path / "nets.py"
    path.write_text("import torch\n\ndef net():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 24, 3, 2, 1), "
                    "torch.nn.BatchNorm2d(24), torch.nn.ReLU6(), torch.nn.Conv2d(24, 24, 3, 1, 1, groups=24), "
                    "torch.nn.BatchNorm2d(24), torch.nn.ReLU6(), torch.nn.Conv2d(24, 40, 1), torch.nn.BatchNorm2d(40))"
                    "\n\ndef nets():\n    return [net(), net()]\n")
    assert main(["advise", "--model", f"{path}:net", "--input", "3,64,64", "--device", DEVICE, "--apply", "1"]) == 0
    text = capsys.readouterr().out
    assert "snap-down: widths down to a multiple of P=16 (24->16)" in text and "applied: snap-down" in text
    assert main(["advise", "--model", f"{path}:nets", "--input", "3,64,64", "--device", DEVICE]) == 2
    assert "--model must be a function returning the one network" in capsys.readouterr().err
