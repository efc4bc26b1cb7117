"""Topology proxies (zeroshot._topology) against hand-computed values, and NB201 isomorphism keys."""
import itertools
import math

import numpy as np
import pytest

from zeroshot.spaces import Graph, get_space, to_table
from zeroshot.spaces.nb201 import iso_key
from zeroshot.proxies import get_proxy, list_proxies
from zeroshot.proxies.topology import topology_features


def _tiny(dead_branch: bool = True):
    """conv3x3(3->4) bn relu -> [identity + conv1x1(4->4)] -> add -> gap -> linear(4->3); optionally a
    3x3 conv that nothing reads."""
    g = Graph(3, 8, 8)
    t = g.act(g.bn(g.conv(0, 4, k=3)), "relu")
    if dead_branch:
        g.conv(t, 4, k=3)
    t = g.add([t, g.conv(t, 4, k=1)])
    return g.finish(g.classifier(t, 3))


def _features(archs):
    return topology_features(to_table(archs))


def test_tiny_graph_by_hand():
    f = _features([_tiny()])
    assert f["params"][0] == 108 + 8 + 144 + 16 + 15           # conv3, bn, dead conv3, conv1, linear
    assert f["live_params"][0] == 108 + 8 + 16 + 15
    assert f["live_macs"][0] == 108 * 64 + 16 * 64 + 12
    assert f["paths"][0] == 2
    assert f["depth"][0] == 3                                  # conv3, conv1, linear
    assert f["shortest"][0] == 2                               # conv3, (skip), linear
    assert f["merges"][0] == 1 and f["convs"][0] == 2
    # second moments: 27 after the 3x3 conv, /2 through ReLU, x(1 + 4) at the add, x4 through the linear
    assert f["entropy"][0] == pytest.approx(math.log(27 / 2 * 5 * 4))


def test_chain_entropy_is_mae_det_sum():
    g = Graph(3, 16, 16)
    t = 0
    for c, k in ((8, 3), (16, 5), (16, 1)):
        t = g.act(g.bn(g.conv(t, c, k=k)), "relu")
    t = g.pool(t, 3, 1, 1)
    f = _features([g.finish(t)])
    expected = math.log(3 * 9) + math.log(8 * 25) + math.log(16 * 1) - 3 * math.log(2) - math.log(9)
    assert f["entropy"][0] == pytest.approx(expected)
    assert f["depth"][0] == f["shortest"][0] == 3 and f["paths"][0] == 1


def test_cut_network_ranks_last():
    g = Graph(3, 8, 8)
    t = g.zero(g.conv(0, 4, k=3))
    f = _features([g.finish(g.classifier(t, 2))])
    assert f["paths"][0] == 0 and f["live_params"][0] == 0
    for name in ("entropy", "depth", "shortest"):
        assert f[name][0] == -np.inf


def test_gate_with_a_zero_factor_carries_nothing():
    g = Graph(3, 8, 8)
    t = g.conv(0, 4, k=1)
    f = _features([g.finish(g.mul(t, g.zero(t)))])
    assert f["paths"][0] == 0


def test_batch_equals_one_by_one():
    space = get_space("nb201")
    codes = space.sample_distinct_codes(12, np.random.default_rng(3))
    archs = [_tiny(False)] + space.irs(codes) + [_tiny(True)]
    batch = _features(archs)
    for i, arch in enumerate(archs):
        one = _features([arch])
        for name in batch:
            assert batch[name][i] == one[name][0], (name, i)


def test_nb201_published_counts_and_paths():
    space = get_space("nb201")
    full = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    # the 3x3 conv into node 1 is never read: its 243,040 parameters are dead
    dead = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    f = _features([space.to_ir(full), space.to_ir(dead)])
    assert f["params"].tolist() == [73306 + 6 * 243040, 73306 + 243040]
    assert f["live_params"].tolist() == [73306 + 6 * 243040, 73306]
    # 4 paths per cell, 2 per reduction block; 3 convs per cell on the longest path
    assert f["paths"][0] == 4 ** 15 * 2 ** 2
    assert f["depth"][0] == 1 + 15 * 3 + 2 * 2 + 1
    assert f["shortest"][0] == 1 + 15 + 2 + 1


def test_registry_has_the_topology_proxies():
    names = set(list_proxies("topology"))
    assert {"params", "macs", "live_params", "live_macs", "entropy", "paths", "depth", "shortest",
            "merges", "convs"} <= names
    assert get_proxy("entropy").needs == "nothing"
    assert {n: get_proxy(n).chain for n in ("params", "paths", "live_macs")} == \
        {"params": "sum", "paths": "product", "live_macs": "live_sum"}
    assert get_proxy("meco").chain is None                      # network proxies are not split into segments


def test_a_chain_rule_outside_the_known_ones_is_refused():
    from zeroshot.errors import ParameterError
    from zeroshot.proxies import register_proxy
    with pytest.raises(ParameterError, match="chain.*one of sum, product, live_sum"):
        register_proxy("mean_width", needs="nothing", higher_is_better=True, kind="topology",
                       description="mean width", chain="mean")


def test_nb201_has_6466_isomorphism_classes():
    keys = {iso_key(c) for c in itertools.product(range(5), repeat=6)}
    assert len(keys) == 6466


def test_isomorphic_cells_get_equal_scores():
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    codes = space.sample_distinct_codes(60, rng)
    canon = space.canonical_codes(codes)
    assert [iso_key(c) for c in canon] == [iso_key(c) for c in codes]
    # every member of the classes of the sampled cells
    wanted = {iso_key(c) for c in codes}
    members = [c for c in itertools.product(range(5), repeat=6) if iso_key(c) in wanted]
    members = np.array(members[:400])
    f = _features(space.irs(members))
    keys = [iso_key(c) for c in members]
    assert len(set(keys)) < len(keys)                         # some classes have several members here
    for name in ("live_params", "live_macs", "entropy", "paths", "depth", "shortest", "merges", "convs"):
        by_key = {}
        for k, v in zip(keys, f[name]):
            assert by_key.setdefault(k, v) == pytest.approx(v), name
