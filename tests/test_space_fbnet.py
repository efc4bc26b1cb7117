"""The FBNet space: encodings, sampling, variation operators, the HW-NAS-Bench skeleton, exact params."""
import csv

import numpy as np
import pytest
import torch

from conftest import need_shared
from zeroshot.errors import ParameterError
from zeroshot.spaces import EncodingError, get_space, list_spaces
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.fbnet import CONFIGS, LAYERS, OPS, FbnetSpace
from zeroshot.spaces.ir import ACT, ADD, BN, CONV, GAP, LINEAR, SHUFFLE, Graph


@pytest.fixture(scope="module")
def space():
    return get_space("fbnet")


def test_registered_with_exact_size_and_description(space):
    assert "fbnet" in list_spaces()
    assert LAYERS == 22 and len(OPS) == 9
    assert space.size == 9 ** 22
    assert "cifar100" in space.description and "imagenet" in get_space("fbnet", config="imagenet").description


def test_bad_config_and_classes_are_rejected():
    with pytest.raises(ParameterError, match="config must be one of cifar100, imagenet, got 'cifar10'"):
        FbnetSpace(config="cifar10")
    with pytest.raises(ValueError, match="positive"):
        FbnetSpace(classes=0)


# Distinct seeded sampling and the generic round trip are covered for every space in test_spaces.py.
def test_encoding_is_op_names_separated_by_single_spaces(space):
    for text in space.sample(50, seed=0):
        assert text.split(" ") == text.split() and len(text.split()) == LAYERS
        assert all(op in OPS for op in text.split())
    codes = np.arange(LAYERS) % len(OPS)
    assert space.format(codes) == " ".join(OPS[c] for c in codes)
    assert np.array_equal(space.parse("  " + space.format(codes).replace(" ", "\t") + " \n"), codes)


def test_every_shared_latency_row_parses_and_round_trips(space):
    path = need_shared("hw/fbnet_latency.csv")
    with open(path, newline="") as f:
        names = [row["op_names"] for row in csv.DictReader(f)]
    assert len(names) == 5000
    texts, codes = space.parse_many(names)
    assert texts == names
    assert codes.shape == (5000, LAYERS)
    assert set(np.unique(codes)) == set(range(len(OPS)))     # every op occurs somewhere


def test_mutate_changes_exactly_one_layer(space):
    rng = np.random.default_rng(0)
    for codes in space.sample_codes(100, rng):
        child = space.mutate_codes(codes, rng)
        assert np.count_nonzero(child != codes) == 1
        assert child.min() >= 0 and child.max() < len(OPS)
    text = space.sample(1, seed=1)[0]
    assert sum(a != b for a, b in zip(text.split(), space.mutate(text, seed=2).split())) == 1


def test_crossover_takes_each_layer_from_a_parent(space):
    rng = np.random.default_rng(1)
    a, b = space.sample_codes(2, rng)
    children = [space.crossover_codes(a, b, rng) for _ in range(50)]
    for child in children:
        assert np.all((child == a) | (child == b))
    differ = a != b
    assert any(np.any(c[differ] == a[differ]) and np.any(c[differ] == b[differ]) for c in children)


@pytest.mark.parametrize("text, message", [
    (" ".join(["k3_e1"] * 21), "expected 22 layer operations separated by spaces, got 21"),
    (" ".join(["k3_e1"] * 23), "expected 22 layer operations separated by spaces, got 23"),
    ("", "got 0"),
    (" ".join(["k3_e1"] * 4 + ["k7_e6"] + ["skip"] * 17),
     "unknown operation 'k7_e6' at layer 5 of 22; choose from k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, "
     "k5_e1_g2, k5_e3, k5_e6, skip"),
    (" ".join(["skip"] * 21 + ["K3_E1"]), "unknown operation 'K3_E1' at layer 22 of 22"),
])
def test_malformed_encodings_are_rejected(space, text, message):
    with pytest.raises(EncodingError, match=message.replace("(", r"\(")):
        space.parse(text)


def test_parse_many_names_the_line(space):
    good = space.sample(1, seed=0)[0]
    with pytest.raises(EncodingError, match="line 3: unknown operation 'bogus' at layer 1"):
        space.parse_many([good, "# comment", "bogus" + good[good.index(" "):]])


def test_bad_codes_are_rejected(space):
    with pytest.raises(EncodingError, match="22 integers in 0..8"):
        space.build_ir(np.full(LAYERS, 9))
    with pytest.raises(EncodingError, match="22 integers"):
        space.build_ir(np.zeros(21, np.int64))


@pytest.mark.parametrize("config, classes, size, final", [("cifar100", None, 32, 4), ("imagenet", 7, 224, 7)])
def test_both_configs_build_and_forward(config, classes, size, final):
    space = FbnetSpace(config=config, classes=classes)
    n_classes = classes or CONFIGS[config].classes
    arch = space.to_ir(space.sample(1, seed=5)[0])
    assert arch.input_shape == (3, size, size)
    head = [op for op in arch.ops if op.kind == CONV][-1]
    assert head.c_out == CONFIGS[config].head_channels and head.h_out == final
    net = build(arch).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, size, size))
    assert out.shape == (1, n_classes)


def test_analytic_params_equal_torch_params_imagenet():
    # The default config is checked on 200 random archs in test_spaces.py; here the other config.
    s = get_space("fbnet", config="imagenet", classes=10)
    for c in s.sample_distinct_codes(100, np.random.default_rng(11)):
        arch = s.build_ir(c)
        assert arch.params == count_parameters(build(arch)), s.format(c)


def test_all_skip_params_by_hand(space):
    # Stem 3->16 conv3x3+BN; every stage's first skip is a 1x1 conv+BN when the width changes (the
    # first stage keeps 16 and is an identity); head 352->1504 1x1 conv+BN; linear 1504->100 with bias.
    widths = [16, 16, 24, 32, 64, 112, 184, 352]
    expected = 3 * 16 * 9 + 32
    expected += sum(a * b + 2 * b for a, b in zip(widths[1:], widths[2:]))
    expected += 352 * 1504 + 2 * 1504 + 1504 * 100 + 100
    arch = space.to_ir(" ".join(["skip"] * LAYERS))
    assert arch.params == expected == 780660
    assert [op.kind for op in arch.ops] == [CONV, BN, ACT] * 8 + [GAP, LINEAR]
    assert [op.stride for op in arch.ops if op.kind == CONV] == [1, 1, 2, 2, 1, 2, 1, 1]


def test_block_structure(space):
    # layer 2 (stage 2: 16 -> 24 channels, stride 1) is grouped; layer 3 keeps 24 channels: residual.
    ops = ["skip", "k5_e1_g2", "k3_e6"] + ["skip"] * 19
    arch = space.to_ir(" ".join(ops))
    convs = [op for op in arch.ops if op.kind == CONV]
    expand, dw, project = convs[1:4]
    assert (expand.k, expand.groups, expand.c_in, expand.c_out) == (1, 2, 16, 16)    # e1 keeps expand
    assert (dw.k, dw.groups, dw.stride) == (5, 16, 1)
    assert (project.groups, project.c_out) == (2, 24)
    shuffles = [op for op in arch.ops if op.kind == SHUFFLE]
    assert len(shuffles) == 1 and shuffles[0].groups == 2 and shuffles[0].c_out == 16
    assert sum(op.kind == ADD for op in arch.ops) == 1                             # only the k3_e6 layer
    assert convs[4].c_out == 24 * 6 and convs[5].groups == 144


def test_shuffle_interleaves_the_groups():
    g = Graph(6, 1, 1)
    arch = g.finish(g.shuffle(0, 2))
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert build(arch)(x).flatten().tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
