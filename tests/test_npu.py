"""The analytic ``npu`` device: the seed's lane mechanisms, fusion, spills, batching, device files, CLI."""
import csv
import io
import json

import numpy as np
import pytest

from zeroshot.estimator.counts import BYTES_PER_ELEMENT
from zeroshot.estimator.devices import DeviceError, device_from_dict, list_devices, load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.estimator.kernel_table import decompose
from zeroshot.estimator.npu import NpuDevice
from zeroshot.spaces import Graph, get_space, to_table
from zeroshot.cli import main

PROFILES = list_devices()


def conv_net(c_in, c_out=64, hw=56, k=3):
    g = Graph(c_in, hw, hw)
    return g.finish(g.conv(0, c_out, k))


def ibn_block(c, expand, hw, fused):
    """MobileNetV2 inverted bottleneck (1x1 expand, 3x3 depthwise, 1x1 project) with a residual, or the
    fused IBN of EfficientNet-EdgeTPU (3x3 full conv expand, 1x1 project)."""
    g = Graph(c, hw, hw)
    if fused:
        t = g.act(g.bn(g.conv(0, c * expand, 3)), "relu6")
    else:
        t = g.act(g.bn(g.conv(0, c * expand, 1)), "relu6")
        t = g.act(g.bn(g.conv(t, c * expand, 3, groups=c * expand)), "relu6")
    return g.finish(g.add([0, g.bn(g.conv(t, c, 1))]))


def variant(name, **changes):
    return device_from_dict({**load_device(name).to_dict(), **changes})


def nb201_archs(n, seed=0):
    space = get_space("nb201")
    return space.irs(space.sample_distinct_codes(n, np.random.default_rng(seed)))


@pytest.mark.parametrize("name", PROFILES)
def test_one_channel_above_a_lane_multiple_costs_a_whole_lane_group(name):
    dev = load_device(name)
    for lanes, net in ((dev.lanes, lambda c: conv_net(c)), (dev.kernel_lanes, lambda c: conv_net(64, c))):
        lat = dev.latency_ms(to_table([net(c) for c in range(lanes - 1, 2 * lanes + 2)]))
        at_p, above, at_2p = lat[1], lat[2], lat[-2]
        assert lat[0] == at_p                                  # P-1 channels pad to P
        assert np.all(lat[2:-1] == above)                      # flat from P+1 to 2P
        assert lat[-1] > at_2p                                 # 2P+1 starts a third group
        assert above > 1.8 * at_p                              # a whole extra group, not 1/P of one


@pytest.mark.parametrize("name", ["edgetpu-like", "systolic-32", "mobile-npu-16"])
def test_depthwise_under_uses_lanes_so_fused_ibn_wins_early_and_loses_late(name):
    dev = load_device(name)
    early = [ibn_block(16, 4, 112, fused) for fused in (False, True)]   # narrow, high resolution
    late = [ibn_block(160, 6, 7, fused) for fused in (False, True)]     # wide, low resolution
    for pair in (early, late):
        assert pair[1].macs > 1.5 * pair[0].macs                        # fused always has more MACs
    ibn_e, fused_e, ibn_l, fused_l = dev.latency_ms(to_table(early + late))
    assert fused_e < ibn_e
    assert fused_l > 1.5 * ibn_l
    # Compute alone (free memory, no overhead) isolates the lanes: the early win holds while the depthwise
    # conv takes one tap per cycle on P lanes, and disappears when it takes all K*K taps per cycle.
    ideal = dict(sram_gbps=1e9, dram_gbps=1e9, overhead_us=0.0)
    for taps, fused_wins in ((1, True), (9, False)):
        ibn_e, fused_e = variant(name, tap_lanes=taps, **ideal).latency_ms(to_table(early))
        assert (fused_e < ibn_e) == fused_wins


def test_fusion_rules_change_kernel_counts_and_latency():
    archs = nb201_archs(20, seed=1)
    table = to_table(archs)
    n_ops = np.diff(table.ptr)
    rules = {"none": [], "bn": ["conv+bn"], "default": list(load_device("nvdla-large").fusion)}
    devices = {k: variant("nvdla-large", fusion=r) for k, r in rules.items()}
    kernels = {k: np.diff(decompose(table, d.fusion).ptr) for k, d in devices.items()}
    lat = {k: d.latency_ms(table) for k, d in devices.items()}
    assert np.array_equal(kernels["none"], n_ops)                       # no fusion: one kernel per op
    assert np.all(kernels["bn"] < kernels["none"]) and np.all(kernels["default"] <= kernels["bn"])
    assert np.all(lat["bn"] < lat["none"]) and np.all(lat["default"] <= lat["bn"])
    with pytest.raises(DeviceError, match="HEAD\\+FOLLOWER"):
        variant("nvdla-large", fusion=["conv+pool"])


def test_spill_when_live_set_exceeds_sram_adds_dram_traffic():
    net = conv_net(32, 32, hw=64, k=1)                       # live set: 2 x 32 x 64 x 64 + 1024 bytes (int8)
    live_kib = (2 * 32 * 64 * 64 + 32 * 32) / 1024
    slow_dram = dict(dram_gbps=0.5, sram_gbps=1000.0, overhead_us=0.0)
    fits, spills = (variant("systolic-32", sram_kib=s, **slow_dram).latency_ms(to_table([net]))[0]
                    for s in (live_kib, live_kib - 1))
    weights_only = 32 * 32 / 0.5e9 * 1e3
    assert fits == pytest.approx(max(weights_only, 64 * 64 / 800e6 * 1e3))     # compute: 4096 cycles
    assert spills == pytest.approx((2 * 32 * 64 * 64 + 32 * 32) / 0.5e9 * 1e3)
    assert spills > 10 * fits


@pytest.mark.parametrize("name", PROFILES)
def test_batch_equals_one_by_one(name):
    dev = load_device(name)
    archs = nb201_archs(6) + [ibn_block(24, 6, 28, f) for f in (False, True)] + [conv_net(17)]
    batch = dev.latency_ms(to_table(archs))
    single = np.concatenate([dev.latency_ms(to_table([a])) for a in archs])
    np.testing.assert_array_equal(batch, single)
    assert np.all(batch > 0)


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_round_trip_and_document_their_sources(name, tmp_path):
    dev = load_device(name)
    assert dev.name == name and len(dev.description) > 80
    path = tmp_path / "copy.json"
    dev.save(path)
    again = load_device(str(path))
    archs = to_table(nb201_archs(3))
    np.testing.assert_array_equal(again.latency_ms(archs), dev.latency_ms(archs))


def test_profiles_cover_the_parallelism_factors():
    assert {load_device(n).lanes for n in PROFILES} >= {8, 16, 32, 64}


GOOD = load_device("nvdla-small").to_dict()


@pytest.mark.parametrize("change, message", [
    ({"kind": "tpu"}, "unknown device kind 'tpu'; choose from calibrated, measured, npu"),
    ({"lanes": None}, "field 'lanes' .* must be a positive integer, got None"),
    ({"lanes": 0}, "field 'lanes' .* must be a positive integer, got 0"),
    ({"lanes": 8.5}, "must be a positive integer, got 8.5"),
    ({"pixel_lanes": True}, "must be a positive integer, got True"),
    ({"clock_mhz": "fast"}, "field 'clock_mhz' .* must be a positive number, got 'fast'"),
    ({"dram_gbps": -1}, "must be a positive number"),
    ({"overhead_us": -0.5}, "must be a non-negative number"),
    ({"dtype": "int4"}, "'dtype' must be one of fp32, fp16, int8, got 'int4'"),
    ({"dtype": ["int8"]}, "'dtype' must be one of fp32, fp16, int8, got \\['int8'\\]"),
    ({"sram_kib": float("nan")}, "'sram_kib' .* must be a positive number, got nan"),
    ({"fusion": "conv+bn"}, "'fusion' must be a list"),
    ({"fusion": ["conv+relu"]}, "fusion rule 'conv\\+relu' must be HEAD\\+FOLLOWER"),
    ({"lane": 8}, "unknown field\\(s\\) lane; known fields"),
    ({"name": ""}, "'name' must be a non-empty string"),
])
def test_bad_device_files_are_rejected_clearly(change, message, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(DeviceError, match=message) as err:
        load_device(str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "cannot read device file"),
    ("[1, 2]", "must hold a JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k not in ("lanes", "dram_gbps")}),
     "missing field\\(s\\) lanes, dram_gbps \\(lanes: P"),
])
def test_malformed_device_files_are_rejected_clearly(text, message, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DeviceError, match=message):
        load_device(str(path))


def test_model_bytes_scale_with_precision():
    space = get_space("nb201")
    codes = space.sample_distinct_codes(4, np.random.default_rng(0))
    archs = space.irs(codes)
    out = {p: Estimator(space, precision=p).evaluate(codes) for p in BYTES_PER_ELEMENT}
    for p, nbytes in BYTES_PER_ELEMENT.items():
        np.testing.assert_array_equal(out[p]["model_bytes"], nbytes * np.array([a.params for a in archs]))
        np.testing.assert_array_equal(out[p]["peak_activation_bytes"] * 4,
                                      out["fp32"]["peak_activation_bytes"] * nbytes)
    assert "latency_ms" not in out["fp32"]


def test_keyword_construction_matches_file():
    dev = NpuDevice("x", lanes=8, clock_mhz=500, sram_kib=128, sram_gbps=8, dram_gbps=4, overhead_us=5,
                    description=GOOD["description"])
    table = to_table(nb201_archs(3))
    np.testing.assert_array_equal(dev.latency_ms(table), load_device("nvdla-small").latency_ms(table))


def test_cli_device_list_show_and_estimate(tmp_path, capsys):
    assert main(["device", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PROFILES)
    assert main(["device", "show", "edgetpu-like"]) == 0
    shown = tmp_path / "mine.json"
    shown.write_text(capsys.readouterr().out)
    archs = tmp_path / "archs.txt"
    space = get_space("nb201")
    texts = space.sample(5, seed=3)
    archs.write_text("\n".join(texts) + "\n")
    assert main(["estimate", "nb201", "--archs", str(archs), "--device", str(shown), "--precision", "fp16"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["arch", "params", "macs", "peak_activation_bytes", "model_bytes", "latency_ms"]
    expected = load_device("edgetpu-like").latency_ms(to_table([space.to_ir(t) for t in texts]))
    np.testing.assert_allclose([float(r["latency_ms"]) for r in rows], expected, rtol=1e-5)
    assert [int(r["model_bytes"]) for r in rows] == [2 * int(r["params"]) for r in rows]


@pytest.mark.parametrize("args, message", [
    (["device", "show", "nope"], "unknown device 'nope'; choose from"),
    (["estimate", "nb201", "--archs", "-", "--device", "missing.json"], "device file missing.json does not exist"),
])
def test_cli_bad_device_is_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_architectures_without_kernels_cost_nothing_in_a_batch():
    empty = Graph(16, 8, 8).finish(0)                        # identity: no ops at all
    dev = load_device("nvdla-large")
    lat = dev.latency_ms(to_table([conv_net(8), empty, conv_net(8), empty]))
    assert lat[1] == lat[3] == 0 and lat[0] == lat[2] > 0


def test_grouped_convs_pad_each_group_to_the_lanes():
    dev = variant("systolic-32", sram_gbps=1e9, dram_gbps=1e9, overhead_us=0.0)     # compute alone, P = 32

    def grouped(groups):
        g = Graph(64, 28, 28)
        return g.finish(g.conv(0, 64, 3, groups=groups))

    nets = [grouped(gr) for gr in (1, 2, 4, 8)]
    dense, two, four, eight = dev.latency_ms(to_table(nets))
    assert two == dense / 2                   # 2 groups of 32 channels fill the lanes: half the MACs, half the time
    assert four == dense                      # 4 groups of 16 pad to 32 lanes: a quarter of the MACs, same time
    assert eight == 2 * dense and nets[3].macs == nets[0].macs / 8


def test_keyword_construction_is_validated_too():
    with pytest.raises(DeviceError, match="'pixel_lanes' .* must be a positive integer, got 0"):
        NpuDevice("x", lanes=8, clock_mhz=500, sram_kib=128, sram_gbps=8, dram_gbps=4, overhead_us=5,
                  pixel_lanes=0)


@pytest.mark.parametrize("name", PROFILES)
def test_bounds_and_lanes_leave_the_latency_unchanged(name):
    dev = load_device(name)
    table = to_table(nb201_archs(20) + [ibn_block(24, 6, 28, f) for f in (False, True)] + [conv_net(17)])
    kt = decompose(table, dev.fusion)
    costs = dev.kernel_costs(table, kt)
    np.testing.assert_array_equal(costs["latency_ms"], dev.kernel_latency_ms(kt))
    np.testing.assert_array_equal(kt.sum_per_arch(costs["latency_ms"]), dev.latency_ms(table))
    assert len(costs["bound"]) == len(costs["lane_utilisation"]) == len(kt.cols["type"])
