"""Per-kernel breakdown: rows add up to the model's latency on every device kind, lanes, bounds, bad inputs."""
import numpy as np
import pytest

from zeroshot.errors import ParameterError
from zeroshot.estimator.breakdown import COLUMNS, breakdown
from zeroshot.estimator.calibrated_device import CalibratedDevice, calibrate
from zeroshot.estimator.calibration_features import arch_features, predict_features
from zeroshot.estimator.calibration_prior import load_prior
from zeroshot.estimator.devices import UnknownDeviceError, device_from_dict, list_devices, load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.estimator.kernel_table import KERNEL_TYPES, decompose
from zeroshot.estimator.measured_device import POOLED, FEATURES, MeasuredDevice, feature_matrix, fit_regressor
from zeroshot.spaces import Graph, get_space, list_spaces, to_table

PROFILES = list_devices()
SPACES = list_spaces()


def sample(space_name, n, seed=0):
    space = get_space(space_name)
    codes = space.sample_distinct_codes(n, np.random.default_rng(seed))
    return space, codes, space.irs(codes)


def variant(name, **changes):
    return device_from_dict({**load_device(name).to_dict(), **changes})


def conv_net(c_in, c_out, hw=56, k=3):
    g = Graph(c_in, hw, hw)
    return g.finish(g.act(g.bn(g.conv(0, c_out, k)), "relu"))


def check_rows(rows, arch, device):
    """The rows' invariants: add up to the model's latency, cover every op once, carry its MACs."""
    assert rows.columns == list(COLUMNS)
    latency = device.latency_ms(to_table([arch]))[0]
    np.testing.assert_allclose(rows["latency_ms"].sum(), latency, rtol=1e-9, atol=1e-12)
    kernels = np.array([k is not None for k in rows["kernel"]])
    assert list(rows["kernel"][kernels]) == list(range(kernels.sum()))
    assert kernels.sum() == len(decompose(to_table([arch]), device.fusion).cols["type"])
    ops = [int(i) for text in rows["ops"][kernels] for span in text.split(",")
           for i in (range(int(span.split("-")[0]), int(span.split("-")[-1]) + 1))]
    assert sorted(ops) == list(range(len(arch.ops)))
    assert rows["macs"].sum() == arch.macs
    if latency:
        np.testing.assert_allclose(rows["share"].sum(), 1.0, rtol=1e-9)
    return latency


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", PROFILES)
def test_rows_add_up_to_the_estimators_latency(space_name, name):
    space, codes, archs = sample(space_name, 25, seed=1)
    device = load_device(name)
    sums = [check_rows(breakdown(a, device), a, device) for a in archs]
    np.testing.assert_allclose(sums, Estimator(space, device).evaluate(codes)["latency_ms"], rtol=1e-9)


@pytest.mark.parametrize("name", PROFILES)
def test_npu_kernels_are_bound_by_a_term_of_the_model_and_have_no_model_row(name):
    _, _, archs = sample("mbv2", 3, seed=2)
    for arch in archs:
        rows = breakdown(arch, name, precision="int8")
        assert set(rows["bound"]) <= {"compute", "sram", "dram", "overhead", "folded"}
        assert all(k is not None for k in rows["kernel"])            # npu: no per-model overhead row
        util = rows["lane_utilisation"]
        assert np.all((util > 0) & (util <= 1))


def test_a_conv_of_17_channels_on_16_lanes_uses_two_groups_at_17_of_32():
    dev = load_device("mobile-npu-16")
    assert dev.lanes == dev.kernel_lanes == 16
    rows = {c: breakdown(conv_net(64, c), dev, precision="int8") for c in (16, 17, 32)}
    util = {c: float(r["lane_utilisation"][0]) for c, r in rows.items()}
    ms = {c: float(r["latency_ms"][0]) for c, r in rows.items()}
    assert util == {16: 1.0, 17: 17 / 32, 32: 1.0}
    assert all(r["bound"][0] == "compute" for r in rows.values())
    assert ms[17] >= 0.95 * ms[32]                   # nearly as much as 32 channels (here: the same)
    assert ms[17] > 1.8 * ms[16]                     # a whole second lane group for one channel
    assert rows[17]["macs"][0] * 32 == rows[32]["macs"][0] * 17    # while doing 17/32 of the work
    # the input side pads too: 24 input channels on 16 lanes use 24/32 of them
    assert float(breakdown(conv_net(24, 16), dev)["lane_utilisation"][0]) == 24 / 32


def test_lane_utilisation_follows_the_padding_of_each_kernel_type():
    dev = load_device("systolic-32")                                 # P = 32
    g = Graph(48, 14, 14)
    t = g.conv(0, 48, 3, groups=48)                                  # depthwise: 48 of 64 lanes
    t = g.conv(t, 64, 3, groups=4)                                   # groups of 12 -> 16: 12*16 of 32*32
    arch = g.finish(g.linear(g.gap(t), 40))                          # linear: 64*40 of 64*64
    rows = breakdown(arch, dev)
    assert list(rows["type"]) == ["dwconv", "gconv", "gap", "linear"]
    assert rows["shape"][1] == "48->64 k3 s1 g4 14x14"
    np.testing.assert_array_equal(rows["lane_utilisation"], [48 / 64, 12 * 16 / (32 * 32), 64 / 64, 40 / 64])


def test_bound_names_the_term_that_wins():
    net = conv_net(32, 32, hw=64, k=1)
    ideal = dict(sram_gbps=1e9, dram_gbps=1e9, overhead_us=0.0)
    cases = {"compute": ideal, "sram": {**ideal, "sram_gbps": 0.01}, "dram": {**ideal, "dram_gbps": 0.001},
             "overhead": {**ideal, "overhead_us": 1e6}}
    for bound, changes in cases.items():
        rows = breakdown(net, variant("systolic-32", **changes))
        assert rows["bound"][0] == bound, (bound, list(rows))


def test_zero_kernels_are_folded_and_cost_nothing():
    space = get_space("nb201")
    arch = space.to_ir("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    rows = breakdown(arch, "nvdla-large")
    folded = rows["bound"] == "folded"
    assert folded.any() and set(rows["type"][folded]) == {"zero"}
    assert np.all(rows["latency_ms"][folded] == 0) and np.all(np.isnan(rows["lane_utilisation"][folded]))


def test_bytes_moved_are_weights_and_activations_at_the_precision():
    net = conv_net(16, 32, hw=8, k=3)
    moved = {p: breakdown(net, "nvdla-small", precision=p)["bytes_moved"][0] for p in ("fp32", "fp16", "int8")}
    elems = 16 * 8 * 8 + 32 * 8 * 8 + 32 * 16 * 9
    assert moved == {"fp32": 4 * elems, "fp16": 2 * elems, "int8": elems}


@pytest.fixture(scope="module")
def calibrated():
    space = get_space("nb201")
    archs = space.sample(12, seed=0)
    latency = predict_features(arch_features(space, archs), *load_prior().source(0))
    return space, calibrate(archs, latency, space="nb201", name="twin")


def test_calibrated_rows_are_fitted_and_end_with_the_intercept(calibrated):
    space, device = calibrated
    codes = space.sample_distinct_codes(20, np.random.default_rng(5))
    sums = []
    for arch in space.irs(codes):
        rows = breakdown(arch, device)
        sums.append(check_rows(rows, arch, device))
        assert rows["kernel"][-1] is None and rows["type"][-1] == rows["bound"][-1] == "overhead"
        assert rows["latency_ms"][-1] == device.intercept_ms
        assert set(rows["bound"][:-1]) == {"fitted"} and np.all(np.isnan(rows["lane_utilisation"]))
    np.testing.assert_allclose(sums, Estimator(space, device).evaluate(codes)["latency_ms"], rtol=1e-9)


def test_a_floored_calibrated_prediction_shows_the_floor(calibrated):
    space, fitted = calibrated
    device = CalibratedDevice("floored", fitted.intercept_ms, fitted.theta, space="nb201", floor_ms=1e3)
    arch = space.to_ir(space.sample(1, seed=2)[0])
    rows = breakdown(arch, device)
    assert list(rows["type"][-2:]) == ["overhead", "floor"]
    assert check_rows(rows, arch, device) == 1e3
    assert rows["latency_ms"][-1] == 1e3 - rows["latency_ms"][:-1].sum()


def test_measured_rows_are_measured_and_end_with_the_per_model_intercept():
    space = get_space("nb201", channels=4, cells=1, resolution=8)
    archs = [space.to_ir(a) for a in space.sample(6, seed=0)]
    kt = decompose(to_table(archs))
    x, types = feature_matrix(kt.cols), kt.cols["type"]
    y_ms = 1e-6 * x[:, FEATURES.index("macs")] + 1e-3
    regs = {KERNEL_TYPES[t]: fit_regressor(x[types == t], y_ms[types == t]) for t in set(types.tolist())}
    device = MeasuredDevice("toy", regs, {POOLED: {"scale": 1.2, "ms_per_mb": 0.5, "intercept_ms": 0.25}})
    for arch in archs:
        rows = breakdown(arch, device)
        check_rows(rows, arch, device)
        assert list(rows[c][-1] for c in ("type", "bound", "latency_ms")) == ["overhead", "overhead", 0.25]
        assert set(rows["bound"][:-1]) <= {"measured", "folded"} and "measured" in set(rows["bound"])


def test_an_architecture_without_ops_has_no_rows():
    rows = breakdown(Graph(16, 8, 8).finish(0), "mobile-npu-16")
    assert len(rows) == 0 and rows.columns == list(COLUMNS)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(arch="|nor_conv_3x3~0|", device="mobile-npu-16"), ParameterError, "arch must be an IR Arch"),
    (dict(device="mobile-npu-16", precision="int4"), ParameterError, "precision must be one of fp32"),
    (dict(device="tpu"), UnknownDeviceError, "unknown device 'tpu'; choose from"),
    (dict(device=None), ParameterError, "device must be a device name .*, got 'NoneType'"),
])
def test_bad_inputs_are_named(kwargs, error, message):
    kwargs.setdefault("arch", conv_net(8, 8))
    with pytest.raises(error, match=message):
        breakdown(**kwargs)
