"""Measurement with torch, kernel sampling and the ``measured`` device kind (tiny networks only)."""
import json
import warnings

import numpy as np
import pytest
import torch

from zeroshot.estimator.devices import DeviceError, load_device
from zeroshot.estimator.kernel_table import KT, decompose
from zeroshot.estimator.estimate import Estimator
from zeroshot.estimator.kernel_table import KERNEL_TYPES
from zeroshot.estimator.measured_device import (FEATURES, PER_UNIT, POOLED, MeasuredDevice, feature_matrix,
                                                corrected_ms, fit_regressor, launched, model_terms, weight_mb,
                                                written_mb)
from zeroshot.estimator.profiling import fit_correction, profile
from zeroshot.estimator.timing import (BUSY_NOISE, BusyMachineWarning, Timing, at_resolution, busy_reason,
                                       carry_drift, measure_archs, measure_kernels, pick_clock, pinned_threads,
                                       time_calls, torch_device, warn_if_busy, warn_if_drifted)
from zeroshot.errors import ParameterError
from zeroshot.estimator.sampling import KernelPool, canonical, kernel_arch, kernel_rows, neighbours
from zeroshot.spaces import get_space, to_table
from zeroshot.cli import main

TINY = dict(channels=4, cells=1, resolution=8)


def test_timing_statistics():
    t = Timing.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert t.median_ms == 3.0 and t.samples == 5
    assert t.noise == pytest.approx((4.0 - 2.0) / 3.0)


def test_busy_reason_from_sample_spread_and_load():
    rng = np.random.default_rng(0)
    quiet = [Timing.of(1.0 + 0.01 * rng.standard_normal(15)) for _ in range(20)]
    # under load a fifth to half of the samples take twice as long: the spread of every item widens
    loaded = [Timing.of(np.where(rng.random(15) < 0.4, 2.0, 1.0) + 0.01 * rng.standard_normal(15))
              for _ in range(20)]
    assert busy_reason([t.noise for t in quiet], load=0.8, cores=2) is None
    reason = busy_reason([t.noise for t in loaded], load=0.8, cores=2)
    assert reason is not None and "median noise" in reason and "load" not in reason
    assert busy_reason([t.noise for t in quiet], load=2.5, cores=2) == "load average 2.5 on 2 cores"
    assert busy_reason([t.noise for t in quiet], load=2.0, cores=2) is None       # our own process counts
    # one noisy item among quiet ones is not a busy machine
    assert busy_reason([BUSY_NOISE * 3] + [t.noise for t in quiet], load=0.0, cores=2) is None
    assert busy_reason([], load=0.0, cores=1) is None


def test_one_busy_warning_per_measurement(monkeypatch, recwarn):
    import zeroshot.estimator.timing as timing
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    warn_if_busy([Timing.of([1.0, 1.0, 1.01])] * 5)
    busy = [w for w in recwarn if issubclass(w.category, BusyMachineWarning)]
    assert len(busy) == 1 and "load average 9.0 on 2 cores" in str(busy[0].message)
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    recwarn.clear()
    warn_if_busy([Timing.of([1.0, 1.0, 1.01])] * 5)
    assert not [w for w in recwarn if issubclass(w.category, BusyMachineWarning)]


def test_time_calls_orders_work_and_pins_threads():
    before = torch.get_num_threads()
    with pinned_threads(1):
        assert torch.get_num_threads() == 1
        small, large = time_calls([lambda: sum(range(2000)), lambda: sum(range(40000))], rounds=5,
                                  min_sample_ms=0.2, clock="thread")
    assert torch.get_num_threads() == before
    assert large.median_ms > 4 * small.median_ms > 0
    with pytest.raises(ParameterError, match="threads must be a positive count, got 0"):
        with pinned_threads(0):
            pass


def test_torch_device_and_clock_errors_name_the_parameter():
    assert torch_device("cpu").type == "cpu"
    with pytest.raises(ParameterError, match="device must be a torch device") as info:
        torch_device("tpu-ish")
    assert info.value.param == "device"
    with pytest.raises(ParameterError, match="clock must be wall or auto unless") as info:
        pick_clock("thread", torch.device("cpu"), threads=2)
    assert info.value.param == "clock" and pick_clock("auto", torch.device("cpu"), 1) == "thread"


def test_every_sample_follows_untimed_warm_calls():
    import time

    calls = []
    timing, = time_calls([lambda: (calls.append(1), time.sleep(0.002))], rounds=3, warmup=2, min_sample_ms=1.0,
                         warm=1)
    assert len(calls) == 2 + 3 * (1 + 1) and timing.median_ms >= 2.0    # warm-ups, then per round 1 + 1


@pytest.mark.parametrize("name, options", [("nb201", {}), ("fbnet", {}), ("mbv2", {})])
def test_one_kernel_networks_decompose_back_to_their_row(name, options):
    space = get_space(name, **options)
    kt = decompose(to_table([space.to_ir(s) for s in space.sample(3, seed=2)]))
    rows = {tuple(r.values()): r for r in kernel_rows(kt)}.values()
    for row in rows:
        assert canonical(row) == row


def test_neighbours_keep_shape_and_redraw_channels():
    rng = np.random.default_rng(0)
    pool = KernelPool.from_spaces([get_space("fbnet")], archs_per_space=5, seed=0)
    assert pool.counts.sum() >= len(pool) > 0
    for row in pool.draw(40, rng):
        for n in neighbours(row, 3, rng):
            assert (n["h_in"], n["k"], n["stride"], n["type"]) == (row["h_in"], row["k"], row["stride"], row["type"])
            assert 0.5 * row["c_in"] - 2 <= n["c_in"] < 1.2 * row["c_in"] + 2
            if n["type"] == KT["dwconv"]:
                assert n["groups"] == n["c_in"] == n["c_out"]
    drawn = pool.draw(len(pool) + 5, rng)
    assert len({tuple(r.values()) for r in drawn}) == len(pool)


def test_at_resolution_replays_the_architecture():
    space = get_space("mbv2")
    arch = space.to_ir(space.sample(1, seed=3)[0])
    assert at_resolution(arch, arch.input_shape[1]).ops == arch.ops
    small = at_resolution(arch, 96)
    assert small.input_shape == (3, 96, 96) and small.params == arch.params and small.macs < arch.macs
    nb = get_space("nb201")
    with pytest.raises(ParameterError, match="no output pixels") as info:     # its 2x2 pools need 2 pixels
        at_resolution(nb.to_ir(nb.sample(1)[0]), 2)
    assert info.value.param == "resolution"


def test_measure_archs_and_kernels_tiny():
    space = get_space("nb201", **TINY)
    archs = [space.to_ir(s) for s in space.sample(2, seed=0)]
    timings = measure_archs(archs, rounds=3)
    assert len(timings) == 2 and all(t.median_ms > 0 and t.samples == 3 for t in timings)
    rows = kernel_rows(decompose(to_table(archs)))[:4]
    kt = measure_kernels(rows, rounds=3, overhead_ms=0.0)
    assert all(t.median_ms > 0 for t in kt)
    assert kernel_arch(rows[0]).input_shape == (rows[0]["c_in"], rows[0]["h_in"], rows[0]["w_in"])


def test_measure_archs_in_groups_returns_one_timing_per_network_without_the_anchors():
    space = get_space("nb201", **TINY)
    archs = [space.to_ir(s) for s in space.sample(5, seed=1)]
    for anchors in (2, 0):
        timings = measure_archs(archs, rounds=3, chunk=2, anchors=anchors)
        assert len(timings) == 5 and all(t.median_ms > 0 for t in timings)


def test_carry_drift_rescales_later_groups_by_their_anchors_only():
    first = [Timing.of([1.0]), Timing.of([2.0]), Timing.of([5.0])]
    slower = [Timing.of([10.0, 12.0, 14.0]), Timing.of([1.3]), Timing.of([2.6])]      # 30% slower
    faster = [Timing.of([4.0]), Timing.of([0.8]), Timing.of([1.8])]                    # 20%, 10% faster
    out, ratios = carry_drift([first, slower, faster], anchors=2)
    assert ratios == pytest.approx([1.0, 1.3, 0.85])       # against each anchor's median over groups
    assert [t.median_ms for t in out] == pytest.approx([1.0, 2.0, 5.0, 12.0 / 1.3, 4.0 / 0.85])
    assert out[3].q1_ms == pytest.approx(11.0 / 1.3) and out[3].samples == 3
    a = [Timing.of([1.1]), Timing.of([2.2]), Timing.of([3.0])]
    b = [Timing.of([5.0]), Timing.of([1.0]), Timing.of([2.0])]
    out, ratios = carry_drift([a, b, b], anchors=2)     # the first group slow: it is rescaled, not the others
    assert ratios == pytest.approx([1.1, 1.0, 1.0]) and out[2].median_ms == pytest.approx(3.0 / 1.1)
    plain, none = carry_drift([first, slower], anchors=0)
    assert [t.median_ms for t in plain] == [1.0, 2.0, 5.0, 12.0, 1.3, 2.6] and list(none) == [1.0, 1.0]


def test_drift_between_groups_warns_past_five_percent():
    with pytest.warns(BusyMachineWarning, match=r"speed moved while measuring .* took 98% to 108% of their usual"):
        warn_if_drifted(np.array([0.98, 1.08]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_drifted(np.array([0.98, 1.03]))
        warn_if_drifted(np.ones(0))


@pytest.fixture(scope="module")
def tiny_device(tmp_path_factory):
    space = get_space("nb201", **TINY)
    dev = profile([space], budget_s=2, archs_per_space=6, calibration_archs=3, refine_rounds=1, name="tiny")
    path = tmp_path_factory.mktemp("dev") / "tiny.json"
    dev.save(path)
    return space, dev, path


def test_profile_predicts_and_round_trips(tiny_device):
    space, dev, path = tiny_device
    table = to_table([space.to_ir(s) for s in space.sample(5, seed=9)])
    assert set(dev.corrections) == {POOLED, "nb201"} and dev.info["calibration_models"] == 3
    pred = dev.for_space("nb201").latency_ms(table)
    assert pred.shape == (5,) and np.all(pred > 0)
    assert dev.info["kernels_measured"] > 0 and dev.info["clock"] == "thread"
    assert path.with_suffix(".joblib").exists()
    loaded = load_device(str(path))
    assert isinstance(loaded, MeasuredDevice)
    np.testing.assert_allclose(loaded.for_space("nb201").latency_ms(table), pred)
    assert loaded.corrections == dev.corrections
    assert loaded.to_dict()["model_file"] == "tiny.joblib"


def test_written_bytes_and_segmented_estimate_match_whole_architectures():
    space = get_space("mbv2")
    codes = space.sample_distinct_codes(6, np.random.default_rng(4))
    table = to_table(space.irs(codes))
    kt = decompose(table)
    ops = np.add.reduceat(table.cols["c_out"] * table.cols["h_out"] * table.cols["w_out"], table.ptr[:-1])
    np.testing.assert_allclose(kt.sum_per_arch(written_mb(kt)), ops * 4 / 1e6)
    # regressors of a made-up machine: log latency from MACs and elements
    x = feature_matrix(kt.cols)
    y = 1e-6 * (x[:, FEATURES.index("macs")] + 50 * x[:, FEATURES.index("out_elems")]) + 1e-3
    regs = {KERNEL_TYPES[t]: fit_regressor(x[kt.cols["type"] == t], y[kt.cols["type"] == t])
            for t in np.unique(kt.cols["type"])}
    dev = MeasuredDevice("made-up", regs, {POOLED: {"scale": 1.1, "ms_per_mb": 0.01, "intercept_ms": 0.7},
                                           "mbv2": {"scale": 0.9, "ms_per_mb": 0.0, "ms_per_kernel": 0.02,
                                                    "intercept_ms": 2.0}})
    whole = dev.for_space("mbv2").latency_ms(table)
    np.testing.assert_allclose(Estimator(space, dev).evaluate(codes)["latency_ms"], whole, rtol=1e-9)
    np.testing.assert_allclose(whole, 0.9 * kt.sum_per_arch(dev.raw_kernel_ms(kt)) + 0.02 * np.diff(kt.ptr) + 2.0)
    # used directly, or for a space it was not calibrated on, the device applies the pooled correction
    pooled = kt.sum_per_arch(dev.kernel_latency_ms(kt)) + 0.7
    np.testing.assert_allclose(dev.latency_ms(table), pooled)
    np.testing.assert_allclose(dev.for_space("fbnet").latency_ms(table), pooled)
    assert dev.for_space("mbv2").correction["intercept_ms"] == 2.0 and dev.correction["intercept_ms"] == 0.7


def test_per_kernel_and_weight_costs_are_fitted_and_zero_kernels_launch_nothing():
    cells = get_space("nb201", channels=4, cells=1, resolution=8)
    kt = decompose(to_table([cells.to_ir(t) for t in cells.sample(20, seed=3)]))
    assert (model_terms(kt)[:, PER_UNIT.index("ms_per_kernel")] < np.diff(kt.ptr)).any()   # `none` ops launch nothing
    space = get_space("mbv2")        # weights and MACs apart: resolutions and widths vary
    kt = decompose(to_table([space.to_ir(t) for t in space.sample(60, seed=3)]))
    raw = kt.sum_per_arch(kt.cols["macs"] * 1e-6 + 0.05 * launched(kt))
    terms = model_terms(kt)
    kernels, weights = terms[:, PER_UNIT.index("ms_per_kernel")], terms[:, PER_UNIT.index("ms_per_weight_mb")]
    np.testing.assert_allclose(weights, kt.sum_per_arch(weight_mb(kt)))
    # whole models pay 10 us more per kernel than alone, and 0.2 ms per MB of weights read from memory
    measured = 1.2 * raw + 0.01 * kernels + 0.2 * weights + 0.3
    c = fit_correction(raw, terms, measured)
    assert c["scale"] == pytest.approx(1.2, rel=1e-6) and c["ms_per_kernel"] == pytest.approx(0.01, rel=1e-4)
    assert c["ms_per_weight_mb"] == pytest.approx(0.2, rel=1e-4) and c["intercept_ms"] == pytest.approx(0.3, rel=1e-4)
    assert c["ms_per_mb"] == pytest.approx(0.0, abs=1e-9)
    without = fit_correction(raw, terms, measured, fitted=("ms_per_mb", "ms_per_kernel"))     # an earlier form
    assert without["ms_per_weight_mb"] == 0.0
    assert corrected_ms(c, raw, terms) == pytest.approx(measured, rel=1e-6)
    assert np.abs(corrected_ms(without, raw, terms) / measured - 1).max() > 1e-3    # it cannot fit the weights' cost


def test_device_file_without_the_newer_terms_reads_them_as_zero(tiny_device, tmp_path):
    space, dev, path = tiny_device
    table = to_table([space.to_ir(s) for s in space.sample(5, seed=9)])
    d = json.loads(path.read_text())
    for c in d["corrections"].values():
        c.pop("ms_per_kernel"), c.pop("ms_per_weight_mb")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(d))
    (tmp_path / d["model_file"]).write_bytes((path.parent / d["model_file"]).read_bytes())
    loaded = load_device(str(old))
    assert all(c["ms_per_kernel"] == c["ms_per_weight_mb"] == 0.0 for c in loaded.corrections.values())
    before = MeasuredDevice("before", dev.regressors, {k: {**c, "ms_per_kernel": 0.0, "ms_per_weight_mb": 0.0}
                                                       for k, c in dev.corrections.items()})
    np.testing.assert_allclose(loaded.latency_ms(table), before.latency_ms(table))


def test_regressor_extrapolates_to_larger_kernels():
    # latency linear in MACs and elements: a forest alone would cap large kernels at the largest it saw
    rng = np.random.default_rng(0)
    x = np.zeros((400, len(FEATURES)))
    for f in ("macs", "in_elems", "out_elems", "weight_elems"):
        x[:, FEATURES.index(f)] = rng.uniform(1e5, 1e7, 400) * (1e2 if f == "macs" else 1)
    y = 2e-9 * x[:, FEATURES.index("macs")] + 1e-7 * x[:, FEATURES.index("out_elems")] + 0.01
    small = x[:, FEATURES.index("macs")] < 5e8
    reg = fit_regressor(x[small], y[small])
    pred = np.exp(reg.predict(x[~small]))
    assert np.all(np.abs(pred / y[~small] - 1) < 0.10)
    assert np.all(np.isfinite(reg.oob_prediction_))


def test_other_sklearn_version_is_refused(tiny_device, tmp_path):
    _, _, path = tiny_device
    d = json.loads(path.read_text())
    d["sklearn_version"] = "0.24.2"
    other = tmp_path / "old.json"
    other.write_text(json.dumps(d))
    (tmp_path / d["model_file"]).write_bytes(path.with_suffix(".joblib").read_bytes())
    with pytest.raises(DeviceError, match=r"scikit-learn 0\.24\.2 .*retrain with `zeroshot device profile"):
        load_device(str(other))


def test_device_without_per_space_corrections_is_refused(tiny_device, tmp_path):
    _, _, path = tiny_device
    d = json.loads(path.read_text())
    d["correction"] = d.pop("corrections")[POOLED]            # the format before per-space corrections
    old = tmp_path / "flat.json"
    old.write_text(json.dumps(d))
    (tmp_path / d["model_file"]).write_bytes(path.with_suffix(".joblib").read_bytes())
    with pytest.raises(DeviceError, match="no per-space corrections.*retrain with"):
        load_device(str(old))
    for bad, message in (([1.0], "'corrections' must map space names"), ({"nb201": None}, "must map space"),
                         ({"nb201": {"scale": "x"}}, "could not convert")):
        d["corrections"] = bad
        old.write_text(json.dumps(d))
        with pytest.raises(DeviceError, match=message):
            load_device(str(old))


def test_changed_or_missing_model_file_is_refused(tiny_device, tmp_path):
    _, _, path = tiny_device
    copy = tmp_path / "copy.json"
    copy.write_text(path.read_text())
    with pytest.raises(DeviceError, match="missing"):
        load_device(str(copy))
    (tmp_path / "tiny.joblib").write_bytes(b"not a model")
    with pytest.raises(DeviceError, match="SHA-256 differs"):
        load_device(str(copy))


def test_unprofiled_kernel_type_is_refused(tiny_device):
    _, dev, _ = tiny_device
    fb = get_space("fbnet")
    with pytest.raises(DeviceError, match="profiled without 'dwconv'"):
        dev.latency_ms(to_table([fb.to_ir(fb.sample(1)[0])]))


def test_cli_measure_and_profile_errors(tmp_path, capsys):
    archs = tmp_path / "a.txt"
    archs.write_text("\n".join(get_space("nb201").sample(2, seed=1)) + "\n")
    assert main(["measure", "nb201", "--archs", str(archs), "--rounds", "2", "--resolution", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "arch,latency_ms,noise" and len(lines) == 3
    assert float(lines[1].split(",")[1]) > 0
    capsys.readouterr()
    for argv, message in ((["--threads", "0"], "--threads must be a positive count, got 0"),
                          (["--threads", "2", "--clock", "thread"], "--clock must be wall or auto"),
                          (["--resolution", "2"], "--resolution must be a size every op fits"),
                          (["--device", "tpu-ish"], "--device must be a torch device")):
        assert main(["measure", "nb201", "--archs", str(archs)] + argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert main(["device", "profile", "-o", str(tmp_path / "x.txt")]) == 2
    assert "--output must be a .json file" in capsys.readouterr().err
    assert main(["device", "profile", "-o", str(tmp_path / "x.json"), "--budget-s", "0"]) == 2
    assert "--budget-s must be" in capsys.readouterr().err
    assert main(["device", "profile", "-o", str(tmp_path / "x.json"), "--spaces", "nope"]) == 2
    assert "unknown space 'nope'" in capsys.readouterr().err


def test_profile_warns_once_when_busy(monkeypatch, recwarn):
    import zeroshot.estimator.timing as timing
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    profile([get_space("nb201", **TINY)], budget_s=1, archs_per_space=4, calibration_archs=2, refine_rounds=1)
    busy = [w for w in recwarn if issubclass(w.category, BusyMachineWarning)]
    assert len(busy) == 1 and "while profiling" in str(busy[0].message)
