"""Declared macro spaces (spaces/macro.py): encoding, sampling, variation, enumeration, redundancy, IR and
torch module, registration by name and the entry points; NAS-Bench-Macro declared against its file."""
import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import zeroshot as zs
from conftest import need_shared
from zeroshot.cli import main
from zeroshot.errors import InputError, ParameterError
from zeroshot.estimator.counts import analytic_counts
from zeroshot.estimator.devices import load_device
from zeroshot.estimator.segmented import SegmentedEvaluator, count_metrics, latency_metric
from zeroshot.funnel import cheap_metrics
from zeroshot.proxies import get_proxy
from zeroshot.spaces import SPACES, EncodingError, SpaceOptionError, get_space, to_table
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.ir import MUL
from zeroshot.spaces.macro import MacroSpace, Stage, choices, custom, fused, ibn, skip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # the declaration is a fixture
from nasbench_macro import encoding, nasbench_macro  # noqa: E402

MACRO_CSV = "macro/nas_bench_macro_cifar10_unique.csv"


def double_conv(g, x, c_out, stride):
    """A user block: 3x3 conv (the stride) + BN + ReLU twice."""
    t = g.act(g.bn(g.conv(x, c_out, 3, stride=stride)), "relu")
    return g.act(g.bn(g.conv(t, c_out, 3)), "relu")


def small_space(first=(ibn(3, 6), custom("dconv", double_conv)), **kw) -> MacroSpace:
    """Every kind of choice: resolutions, widths, depths, first-slot choices, IBN / fused / SE / skip /
    custom blocks."""
    blocks = (ibn(3, 3), fused(3, 1), ibn(5, 6, se=True), skip())
    return MacroSpace([Stage(1, 16, 1, (ibn(3, 1),)),
                       Stage(2, (24, 40), (1, 2, 3), blocks, first=first),
                       Stage(2, 64, (1, 2), (fused(3, 4, se=True), skip()))],
                      **{"resolutions": (64, 96), "stem": 16, "head": 256, "classes": 10, **kw})


@pytest.fixture(scope="module")
def space():
    return small_space()


@pytest.fixture(scope="module")
def every(space):
    return np.concatenate(list(space.enumerate_codes(chunk=1000)))


@pytest.fixture
def registry(monkeypatch):
    """The space registry, restored after the test (registrations from user code stay out of others)."""
    SPACES.names()
    monkeypatch.setattr(SPACES, "_items", dict(SPACES._items))
    return SPACES


# ---------------------------------------------------------------- declaration
def test_widths_snap_to_multiples_of_p(space):
    assert space.stages[1].widths == (32, 48) and space.stem == 16 and space.head == 256
    assert small_space(parallelism=32).stages[1].widths == (32, 64)      # 32 lost over 10% of 40
    assert small_space(parallelism=1).stages[1].widths == (24, 40)


def test_size_counts_every_choice(space, every):
    # 2 resolutions x stage 2: 2 widths x 2 first x (1 + 4 + 16) x stage 3: 2 first x (1 + 2)
    assert space.size == 2 * (2 * 2 * (1 + 4 + 16)) * (2 * (1 + 2)) == len(every)
    assert len(np.unique(every, axis=0)) == len(every)


@pytest.mark.parametrize("kw, param", [({"act": "swishy"}, "act"), ({"skip_act": "nope"}, "skip_act"),
                                       ({"parallelism": 0}, "parallelism"), ({"classes": 0}, "classes"),
                                       ({"resolutions": ()}, "resolutions")])
def test_bad_options_name_their_parameter(kw, param):
    with pytest.raises(ParameterError) as err:
        small_space(**kw)
    assert err.value.param == param


def test_bad_stages_and_blocks_are_refused():
    with pytest.raises(ParameterError, match="stage 1 blocks must be distinct block choices"):
        MacroSpace([Stage(1, 16, 1, (ibn(3, 6), ibn(3, 6)))])
    with pytest.raises(ParameterError, match="stage 1 stride must be 1..4"):
        MacroSpace([Stage(5, 16, 1, (ibn(),))])
    with pytest.raises(ParameterError, match="stage 1 blocks must be a non-empty tuple of Block"):
        MacroSpace([Stage(1, 16, 1, ibn())])
    with pytest.raises(ParameterError, match="stage 2 depths must be a positive integer or a non-empty sequence"):
        MacroSpace([Stage(1, 16, 1, (ibn(),)), Stage(1, 16, (0, 1), (ibn(),))])
    with pytest.raises(ParameterError, match="stages must be a sequence of Stage"):
        MacroSpace([(1, 16, 1)])
    with pytest.raises(ParameterError, match="k must be a positive odd kernel size"):
        ibn(4, 6)
    with pytest.raises(ParameterError, match="name must be a word"):
        custom("i3e6", double_conv)
    with pytest.raises(ParameterError, match="kinds must be"):
        choices(("ibn", "conv"))


# ---------------------------------------------------------------- encoding
def test_encodings_round_trip(space, every):
    for codes in every[::7]:
        text = space.format(codes)
        assert np.array_equal(space.parse(text), codes) and space.format(space.parse(text)) == text
    assert space.format(every[0]).startswith("r64 | c16 i3e1 | c32 i3e6 | c64 f3e4se")


@pytest.mark.parametrize("text, message", [
    ("r64 | c16 i3e1 | c32 i3e6", "expected 4 fields separated by '|'"),
    ("r65 | c16 i3e1 | c32 i3e6 | c64 skip", "bad resolution 'r65': choose from r64, r96"),
    ("r64 | c16 i3e1 | c24 i3e6 | c64 skip", "stage 2 must start with its width, one of c32, c48"),
    ("r64 | c16 i3e1 | c32 | c64 skip", "stage 2 has 0 blocks; its depth is one of 1, 2, 3"),
    ("r64 | c16 i3e1 | c32 skip | c64 skip", "stage 2 block 1: 'skip' is not a choice there; choose from i3e6, dconv"),
    ("r64 | c16 i3e1 | c32 dconv dconv | c64 skip", "stage 2 block 2: 'dconv' is not a choice there"),
])
def test_bad_encodings_say_what_is_wrong(space, text, message):
    with pytest.raises(EncodingError, match=message.replace("|", r"\|").replace("(", r"\(")):
        space.parse(text)


def test_codes_outside_the_space_are_refused(space, every):
    bad = every[0].copy()
    bad[2] = 3                                        # stage 1 depth 3: not an option
    with pytest.raises(EncodingError, match="stage 1"):
        space.build_ir(bad)
    with pytest.raises(EncodingError, match="codes have"):
        space.format(every[0][:-1])


# ---------------------------------------------------------------- sampling, variation
def test_sampling_is_seeded_distinct_and_in_the_space(space):
    a = space.sample(100, seed=1)
    assert a == space.sample(100, seed=1) != space.sample(100, seed=2) and len(set(a)) == 100
    rows = space.sample_codes(2000, np.random.default_rng(0))
    decoded = [space.decode(r) for r in rows]
    assert {res for res, _ in decoded} == {64, 96}
    assert {len(stages[1][1]) for _, stages in decoded} == {1, 2, 3}
    assert {stages[1][0] for _, stages in decoded} == {32, 48}


def test_mutation_changes_one_choice_within_the_space(space):
    rng = np.random.default_rng(0)
    for codes in space.sample_codes(200, rng):
        child = space.mutate_codes(codes, rng)
        space.decode(child)
        assert not np.array_equal(child, codes)
        depths = [[len(blocks) for _, blocks in space.decode(c)[1]] for c in (codes, child)]
        if depths[0] == depths[1]:                    # a new depth also draws or drops slots
            assert np.count_nonzero(child != codes) == 1
    one = MacroSpace([Stage(1, 16, 1, (ibn(),))], resolutions=32)
    with pytest.raises(InputError, match="single architecture"):
        one.mutate(one.sample(1)[0])


def test_crossover_takes_each_choice_from_a_parent(space):
    rng = np.random.default_rng(0)
    pairs = space.sample_codes(400, rng).reshape(200, 2, -1)
    mixed = 0
    for a, b in pairs:
        child = space.crossover_codes(a, b, rng)
        res, stages = space.decode(child)
        (ra, sa), (rb, sb) = space.decode(a), space.decode(b)
        assert res in (ra, rb)
        for (w, blocks), (wa, ba), (wb, bb) in zip(stages, sa, sb):
            assert w in (wa, wb) and len(blocks) in (len(ba), len(bb))
            deep = ba if len(blocks) == len(ba) else bb
            shared = min(len(ba), len(bb))
            assert all(x in (ba[j], bb[j]) for j, x in enumerate(blocks[:shared]))
            assert blocks[shared:] == deep[shared:]
        mixed += not (np.array_equal(child, a) or np.array_equal(child, b))
        assert np.array_equal(space.crossover_codes(a, a, rng), a)
    assert mixed > 50


# ---------------------------------------------------------------- redundancy
def test_canonical_classes_are_exactly_the_identical_networks(space, every):
    canonical = space.canonical_codes(every)
    assert np.array_equal(space.canonical_codes(canonical), canonical)             # a fixed point
    for c in canonical[::11]:
        space.decode(c)                                                            # in the space
    irs = [space.build_ir(c) for c in every]
    by_network = {}
    for arch, key in zip(irs, map(bytes, canonical)):
        by_network.setdefault((arch.ops, arch.input_shape), set()).add(key)
    assert all(len(keys) == 1 for keys in by_network.values())                      # same network, same class
    assert len(by_network) == len(np.unique(canonical, axis=0)) < len(every)        # and classes differ


# ---------------------------------------------------------------- IR and torch
def test_the_torch_module_has_the_counted_parameters_and_macs(space, one_torch_thread):
    for text in space.sample(6, seed=0) + ["r64 | c16 i3e1 | c48 dconv skip i5e6se | c64 f3e4se skip"]:
        arch = space.to_ir(text)
        net = build(arch).eval()
        macs = []
        hook = lambda m, i, o: macs.append(o.numel() * m.weight[0].numel())       # noqa: E731
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.register_forward_hook(hook)
        out = net(torch.zeros(1, 3, arch.input_shape[1], arch.input_shape[2]))
        assert out.shape == (1, 10)
        assert count_parameters(net) == arch.params and sum(macs) == arch.macs, text
    se = space.to_ir("r64 | c16 i3e1 | c48 i3e6 i5e6se | c64 skip")
    assert sum(op.kind == MUL for op in se.ops) == 1


def test_a_custom_block_that_breaks_its_contract_is_named():
    bad = custom("half", lambda g, x, c, s: g.conv(x, c // 2, 1, stride=s))
    sp = MacroSpace([Stage(2, 32, 1, (bad,))], resolutions=32)
    with pytest.raises(InputError, match="custom block 'half' must return .* c_out=32"):
        sp.to_ir(sp.sample(1)[0])


def segmented_space() -> MacroSpace:
    blocks = (ibn(3, 3), fused(3, 1), fused(5, 6), skip())
    return MacroSpace([Stage(1, 16, 1, (ibn(3, 1),)), Stage(2, (24, 40), (1, 2, 3), blocks, first=(ibn(3, 6), skip())),
                       Stage(2, 64, (1, 2), blocks)], resolutions=(64, 96), stem=16, head=256, classes=10,
                      skip_act="relu")


@pytest.mark.parametrize("declared", [segmented_space, nasbench_macro], ids=["small", "nasbench-macro"])
def test_segments_give_the_whole_networks_counts_latency_and_cheap_score(declared):
    space = declared()
    codes = space.sample_distinct_codes(300, np.random.default_rng(0))
    codes[::3, 0] = 47                                # a proxy-scaled input side (not a declared one)
    table = to_table(space.irs(codes))
    got = SegmentedEvaluator(space, {**count_metrics(), **cheap_metrics("entropy")}).evaluate(codes)
    for name, want in analytic_counts(space.irs(codes)).items():
        assert np.array_equal(got[name], want), name
    assert np.allclose(got["cheap"], get_proxy("entropy").fn(table), rtol=1e-9)
    device = load_device("mobile-npu-16")
    seg = SegmentedEvaluator(space, {"latency_ms": latency_metric(device)}).evaluate(codes)["latency_ms"]
    assert np.allclose(seg, device.latency_ms(table), rtol=1e-9)


@pytest.mark.parametrize("first", [(ibn(3, 6), custom("dconv", double_conv)), (ibn(3, 6), ibn(3, 6, se=True))],
                         ids=["custom", "squeeze-excite"])
def test_custom_and_squeeze_excite_blocks_are_evaluated_whole(first):
    space = small_space(first=first)
    with pytest.raises(NotImplementedError, match="custom or squeeze-excite blocks"):
        space.segment_keys(space.sample_codes(2, np.random.default_rng(0)))
    assert not SegmentedEvaluator(space, count_metrics()).segmented


# ---------------------------------------------------------------- NAS-Bench-Macro
def test_nasbench_macro_size_and_canonical_networks():
    space = nasbench_macro()
    every = np.concatenate(list(space.enumerate_codes()))
    assert space.size == len(every) == 3 ** 8
    assert len(np.unique(space.canonical_codes(every), axis=0)) == 3969
    assert space.canonical_codes(space.parse(encoding("10102000")))[0].tolist() == \
        space.parse(encoding("10120000")).tolist()
    path = need_shared(MACRO_CSV)
    with open(path, newline="") as f:
        file_archs = {encoding(r["arch"]) for r in csv.DictReader(f)}
    assert file_archs == {space.format(c) for c in space.canonical_codes(every)}


def test_nasbench_macro_counts_equal_the_file():
    """A seeded sample of the file's rows (all of them: benchmarks/macro_space.py)."""
    path = need_shared(MACRO_CSV)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    picked = [rows[i] for i in np.random.default_rng(0).choice(len(rows), 300, replace=False)]
    space = nasbench_macro()
    counts = analytic_counts([space.to_ir(encoding(r["arch"])) for r in picked])
    assert counts["params"].tolist() == [int(r["params"]) for r in picked]
    assert counts["macs"].tolist() == [int(r["flops_macs"]) for r in picked]


# ---------------------------------------------------------------- registration and the entry points
def test_registered_by_name_for_get_space(registry):
    mine = small_space(name="declared").register("mine")
    assert get_space("mine") is mine and mine.name == "mine" and "mine" in zs.list_spaces()
    with pytest.raises(SpaceOptionError, match="space 'mine' does not take P; it takes no options"):
        get_space("mine", P=16)
    with pytest.raises(ValueError, match="space 'mine' is already registered"):
        small_space().register("mine")
    assert small_space().register("mine", replace=True) is get_space("mine")


def test_estimate_and_score_take_a_declared_space(registry, one_torch_thread):
    space = small_space().register("mine")
    archs = space.sample(4, seed=0)
    by_name, by_object = zs.estimate(archs, space="mine", device="mobile-npu-16"), zs.estimate(archs, space=space)
    assert by_name["params"].tolist() == by_object["params"].tolist() == [space.to_ir(a).params for a in archs]
    assert (by_name["latency_ms"] > 0).all()
    s = zs.score(archs, space="mine", seed=0, proxies=None)
    assert len(s) == 4 and np.isfinite(s["score"]).all()


def test_screen_runs_a_declared_space_whole(registry, one_torch_thread):
    """Sampled and enumerated (the space has a custom block: no segments, each network evaluated whole)."""
    space = small_space().register("mine")
    r = zs.screen("mine", device="mobile-npu-16", n=300, survivors=4, top=3, seed=0, quiet=True)
    assert len(r.shortlist) == 3 and 0 < r.counts["sampled"] <= 300 and r.counts["scored"] == 4
    for arch, params in zip(r.shortlist["arch"], r.shortlist["params"]):
        assert space.to_ir(arch).params == params
    whole = zs.screen("mine", n=None, all=True, survivors=0, top=2, quiet=True)
    assert whole.counts["sampled"] == space.size


def test_search_a_declared_space_with_an_oracle(tmp_path):
    path = need_shared(MACRO_CSV)
    oracle = tmp_path / "oracle.csv"
    with open(path, newline="") as f, open(oracle, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["arch", "mean_test_acc"])
        writer.writerows((encoding(r["arch"]), r["mean_test_acc"]) for r in csv.DictReader(f))
    result = zs.search(nasbench_macro(), strategy="random", budget=8, oracle=str(oracle), column="mean_test_acc",
                       seed=0)
    assert result.evaluations == 8 and result.best["arch"] in oracle.read_text()


def test_the_command_line_reaches_a_space_registered_in_its_process(registry, tmp_path, capsys):
    small_space().register("mine")
    archs = tmp_path / "archs.txt"
    assert main(["sample", "mine", "-n", "5", "--seed", "0", "-o", str(archs)]) == 0
    assert main(["estimate", "mine", "--archs", str(archs)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 6
