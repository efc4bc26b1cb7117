"""The decision rule of benchmarks/score_protocol.py, on made-up development figures."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import score_protocol as sp  # noqa: E402
from zeroshot.scoring import CANDIDATES  # noqa: E402

OLD, TWO, THREE = ("meco", "swap"), ("meco", "swap_layers"), ("meco", "meco_batch", "swap_layers")


def figures(nb201: dict, macro: dict, rest: float = 0.0):
    return ({c: nb201.get(c, rest) for c in CANDIDATES}, {c: macro.get(c, rest) for c in CANDIDATES})


def test_the_best_mean_wins_when_nothing_is_close():
    chosen, _, rows = sp.choose(*figures({OLD: 0.90, TWO: 0.90}, {OLD: 0.80, TWO: 0.85}))
    assert chosen == TWO and len(rows) == len(CANDIDATES)


def test_a_candidate_below_the_nb201_floor_cannot_win():
    chosen, _, _ = sp.choose(*figures({OLD: 0.90, TWO: 0.90 - sp.NB201_SLACK - 0.001}, {OLD: 0.80, TWO: 0.99}))
    assert chosen == OLD


def test_within_the_margin_the_fewest_proxies_then_the_earliest_listed():
    assert CANDIDATES.index(OLD) < CANDIDATES.index(TWO)
    nb201, macro = {OLD: 0.90, TWO: 0.90, THREE: 0.90}, {OLD: 0.80, TWO: 0.802, THREE: 0.81}
    assert sp.choose(*figures(nb201, macro))[0] == OLD          # all three within WITHIN of THREE's mean
    macro[THREE] = 0.80 + 4 * sp.WITHIN                          # now THREE leads by more than WITHIN
    assert sp.choose(*figures(nb201, macro))[0] == THREE


def test_swap_layers_stays_within_the_cap_of_its_layer_units():
    import torch
    from zeroshot.proxies.network import compute_network_proxies
    from zeroshot.spaces import get_space
    space = get_space("nb201", resolution=8)
    arch = space.to_ir(space.sample(1, seed=0)[0])
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    got = compute_network_proxies(arch, ["swap_layers"], x, seed=0)["swap_layers"]
    units = sp.layer_units(arch)
    assert len(units) > 1 and 0 < got <= sum(min(u, 2 ** 16) for u in units)


def test_ceiling_is_the_mean_pairwise_spearman_of_the_seeds():
    import numpy as np
    seeds = np.array([[1, 3, 2], [2, 1, 3], [3, 2, 1.0]])
    assert sp.ceiling(seeds) == pytest.approx(np.mean([-0.5, -0.5, -0.5]))


def test_a_candidate_with_a_proxy_at_its_cap_cannot_win():
    nb201, macro = {OLD: 0.90, TWO: 0.90}, {OLD: 0.90, TWO: 0.80}
    assert sp.choose(*figures(nb201, macro))[0] == OLD
    chosen, _, rows = sp.choose(*figures(nb201, macro), saturated=frozenset({"swap"}))
    assert chosen == TWO and any("swap at its cap" in r for r in rows)


def test_saturated_proxies_are_those_over_the_limit_at_either_scale():
    over, under = sp.SATURATED_MAX + 0.01, sp.SATURATED_MAX
    mbv2 = {1.0: {"at_cap": {"swap": over, "swap_layers": 0.0}}, 0.75: {"at_cap": {"swap": under, "swap_layers": under}}}
    assert sp.saturated_proxies(mbv2) == {"swap"}
