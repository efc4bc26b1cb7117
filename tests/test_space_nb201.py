"""NAS-Bench-201 against the published facts in ../shared/data."""
import csv

import numpy as np
import pytest
from conftest import need_shared

from zeroshot.estimator.counts import analytic_counts
from zeroshot.spaces import EncodingError, get_space
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.nb201 import official_codes

INDEX1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_param_formula_from_the_shared_readme():
    space = get_space("nb201")
    for text in space.sample(50, seed=0):
        ops = text.replace("+", "").strip("|").split("|")
        n3 = sum(o.startswith("nor_conv_3x3") for o in ops)
        n1 = sum(o.startswith("nor_conv_1x1") for o in ops)
        assert space.to_ir(text).params == 73306 + 243040 * n3 + 28000 * n1


def test_all_param_counts_equal_published_column():
    path = need_shared("nb201/nb201_cifar10.csv")
    space = get_space("nb201")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625
    texts, codes = space.parse_many(r["arch_str"] for r in rows)
    assert texts == [r["arch_str"] for r in rows]
    params = analytic_counts(space.irs(codes))["params"]
    published = np.array([round(float(r["params_M"]) * 1e6) for r in rows])
    assert np.array_equal(params, published)


def test_official_order_enumeration():
    path = need_shared("nb201/nb201_cifar10.csv")
    space = get_space("nb201")
    listed = list(space.enumerate())
    assert len(listed) == len(set(listed)) == 15625
    assert listed[1] == INDEX1
    with open(path, newline="") as f:
        best = max(csv.DictReader(f), key=lambda r: float(r["test_acc"]))
    assert (best["index"], round(float(best["test_acc"]), 2)) == ("6111", 94.37)   # published fact
    assert listed[6111] == best["arch_str"]
    assert np.array_equal(np.concatenate(list(space.enumerate_codes(order="official"))), official_codes(path))


def test_canonical_enumeration_covers_the_space():
    space = get_space("nb201")
    codes = np.concatenate(list(space.enumerate_codes(order="canonical")))
    assert len(np.unique(codes, axis=0)) == 15625


def test_classes_change_the_head_only():
    a = get_space("nb201", classes=100).to_ir(INDEX1)
    b = get_space("nb201").to_ir(INDEX1)
    assert a.params - b.params == 90 * 64 + 90
    assert count_parameters(build(a)) == a.params


@pytest.mark.parametrize("bad, words", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 nodes"),
    ("|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "unknown operation"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "must read node 0"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "2 input edge"),
])
def test_malformed_strings_say_what_is_wrong(bad, words):
    with pytest.raises(EncodingError, match=words):
        get_space("nb201").parse(bad)
