"""Segmented batch evaluation equals whole-network evaluation, for every space that has segments."""
import numpy as np
import pytest

from zeroshot.estimator.counts import analytic_counts
from zeroshot.estimator.devices import list_devices, load_device
from zeroshot.estimator.segmented import SegmentedEvaluator, count_metrics, latency_metric
from zeroshot.spaces import get_space, list_spaces, to_table


def segmented_spaces():
    out = []
    for name in list_spaces():
        space = get_space(name)
        try:
            space.segment_keys(space.sample_codes(1, np.random.default_rng(0)))
        except NotImplementedError:
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("name", segmented_spaces())
def test_segments_give_the_exact_counts(name):
    space = get_space(name)
    codes = space.sample_distinct_codes(60, np.random.default_rng(11))
    ev = SegmentedEvaluator(space, count_metrics())
    assert ev.segmented
    got = ev.evaluate(codes)
    want = analytic_counts(space.irs(codes))
    for k in want:
        assert np.array_equal(got[k], want[k]), k
    again = ev.evaluate(codes[::-1])                  # served from the cache, same numbers
    assert np.array_equal(again["params"], want["params"][::-1])


@pytest.mark.parametrize("name", segmented_spaces())
def test_segment_latency_matches_whole_network(name):
    space = get_space(name)
    codes = space.sample_distinct_codes(min(space.size, 2000), np.random.default_rng(5))
    table = to_table(space.irs(codes))
    for name in list_devices():
        device = load_device(name)
        if device.kind != "npu":
            continue
        seg = SegmentedEvaluator(space, {"latency_ms": latency_metric(device)}).evaluate(codes)["latency_ms"]
        assert np.allclose(seg, device.latency_ms(table), rtol=1e-9), name   # fusion across boundaries too


def _topology_proxies():
    from zeroshot.proxies import list_proxies
    return list_proxies("topology")


@pytest.mark.parametrize("proxy", _topology_proxies())
@pytest.mark.parametrize("name", segmented_spaces())
def test_segment_cheap_score_equals_whole_network(name, proxy):
    """The funnel's cheap score over a chain of segments is the whole network's value (a product proxy's
    logarithm), including identity segments and NB201 networks no input path reaches (dead: 9 of these 400 cells);
    lowered whole (a space without segments), the same."""
    from zeroshot.funnel import cheap_metrics
    from zeroshot.proxies import get_proxy
    space = get_space(name)
    codes = space.sample_distinct_codes(400 if name == "nb201" else 60, np.random.default_rng(1))
    seg = SegmentedEvaluator(space, cheap_metrics(proxy)).evaluate(codes)["cheap"]
    unsegmented = SegmentedEvaluator(space, cheap_metrics(proxy))
    unsegmented.segmented = False
    assert np.allclose(unsegmented.evaluate(codes)["cheap"], seg, rtol=1e-9, atol=0)
    p = get_proxy(proxy)
    whole = np.asarray(p.fn(to_table(space.irs(codes))), dtype=np.float64)
    if p.chain == "product":
        with np.errstate(divide="ignore"):
            whole = np.log(whole)
    whole = whole if p.higher_is_better else -whole
    assert np.array_equal(np.isinf(seg), np.isinf(whole)) and not np.isnan(seg).any()
    assert np.allclose(seg[np.isfinite(seg)], whole[np.isfinite(whole)], rtol=1e-9, atol=0)
