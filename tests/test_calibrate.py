"""Few-shot calibration: parameter recovery, the ``calibrated`` device kind, folding, and the CLI."""
import json
import re

import numpy as np
import pytest
from scipy import sparse

from zeroshot.errors import ParameterError, UnknownNameError
from zeroshot.estimator.calibrated_device import FLOOR_FRACTION, MIN_FLOOR_MS, CalibratedDevice, calibrate
from zeroshot.estimator.calibration_features import (N_COLS, arch_features, column_index, column_name,
                                                     predict_features)
from zeroshot.estimator.calibration_fit import ROBUST_Z, calibrate_features
from zeroshot.estimator.calibration_prior import (Prior, build_prior, device_kind, fit_source, load_prior,
                                                  measured_datasets)
from zeroshot.estimator.devices import DeviceError, load_device
from zeroshot.estimator.folding import live_ops
from zeroshot.spaces import get_space, to_table
from zeroshot.cli import main


@pytest.fixture(scope="module")
def nb201():
    space = get_space("nb201")
    archs = space.sample(120, seed=3)
    return space, archs, arch_features(space, archs)


def test_measured_devices_join_the_prior_without_costing_the_npu_family_on_them(tmp_path, nb201):
    space, archs, features = nb201
    source = load_prior().subset("nb201").source(0)
    y = predict_features(features, *source) * 4.0
    path = tmp_path / "cpu_sources_nb201.csv"
    path.write_text("arch,local_cpu_torch_ms\n" + "".join(f"{a},{v}\n" for a, v in zip(archs, y)))
    prior = build_prior([], path=None, npu=(), measured=measured_datasets([path]))
    assert prior.labels == ["nb201/local_cpu_torch_ms"] and device_kind(prior.labels[0]) == "cpu"
    fitted = predict_features(features, *prior.source(0)) * y.mean()
    assert np.corrcoef(fitted, y)[0, 1] > 0.999


def test_without_local_drops_only_the_sources_measured_on_the_project_machine():
    prior = Prior(["nb201/gold_6226_ms", "nb201/local_cpu_torch_ms", "fbnet/local_cpu_ort_ms", "fbnet/npu-x"],
                  np.zeros(4), np.zeros((4, N_COLS)))
    assert prior.without_local().labels == ["nb201/gold_6226_ms", "fbnet/npu-x"]


def test_measured_csv_named_for_no_space_is_refused(tmp_path):
    path = tmp_path / "cpu_sources_resnet.csv"
    path.write_text("arch,x_ms\na,1\n")
    with pytest.raises(UnknownNameError, match="resnet"):
        measured_datasets([path])


def test_prior_rebuild_refuses_a_missing_measured_csv_in_one_line(tmp_path, capsys):
    from zeroshot.estimator import calibration_prior

    with pytest.raises(SystemExit) as info:
        calibration_prior.main(["--measured", str(tmp_path / "gone_nb201.csv")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "cannot read" in err and "gone_nb201.csv" in err


def test_fit_source_recovers_identifiable_parameters():
    rng = np.random.default_rng(0)
    cols = np.array([column_index(n) for n in ("all.conv.k3.macs", "all.add.k1.n", "live.pool.k3.mem",
                                                   "all.conv.k1.n.h16")])
    x = rng.random((80, len(cols))) * rng.integers(1, 100, len(cols))
    features = sparse.csr_matrix((x.ravel(), (np.repeat(np.arange(80), len(cols)), np.tile(cols, 80))),
                                 shape=(80, N_COLS))
    theta = np.zeros(N_COLS)
    theta[cols] = [2e-3, 0.0, 0.5, 7.0]
    y = 0.3 + predict_features(features, 0.0, theta)
    b, fitted = fit_source(features, y)           # normalised to mean latency 1
    assert np.allclose(fitted * y.mean(), theta, atol=1e-9)
    assert b * y.mean() == pytest.approx(0.3, abs=1e-8)


def test_calibration_recovers_a_device_in_the_sources_span(nb201):
    space, archs, features = nb201
    prior = load_prior().subset("nb201")
    assert len(prior.labels) >= 2
    # a device made from two source devices' parameters (known), at a scale of its own
    b = 3.0 * prior.intercepts[0] + 0.5 * prior.intercepts[1]
    theta = 3.0 * prior.thetas[0] + 0.5 * prior.thetas[1]
    y = predict_features(features, b, theta) * 7.0
    intercept, fitted = calibrate_features(features[:10], y[:10], prior)
    pred = predict_features(features[10:], intercept, fitted)
    assert np.median(np.abs(pred / y[10:] - 1)) < 0.02
    assert np.corrcoef(pred, y[10:])[0, 1] > 0.99


def test_refinement_leaves_the_span_with_more_samples(nb201):
    space, archs, features = nb201
    prior = load_prior().subset("nb201")
    # a device where only 3x3 convolutions cost: not a combination of the sources
    theta = np.zeros(N_COLS)
    theta[column_index("all.conv.k3.macs")] = 1e-6
    y = predict_features(features, 0.2, theta)
    err = {}
    for hyper in ({}, {"variances": {"local": 0.0}}):
        b, fitted = calibrate_features(features[:100], y[:100], prior, **hyper)
        err[bool(hyper)] = np.mean(np.abs(predict_features(features[100:], b, fitted) / y[100:] - 1))
    assert err[False] < 0.5 * err[True]
    assert err[False] < 0.06


def test_device_save_load_predicts_the_same(nb201, tmp_path):
    space, archs, features = nb201
    device = calibrate(archs[:12], np.linspace(5, 9, 12), space=space, name="dev")
    path = tmp_path / "dev.json"
    device.save(path)
    loaded = load_device(str(path))
    assert loaded.kind == "calibrated" and loaded.measurements == 12
    table = to_table([space.to_ir(a) for a in archs])
    assert np.allclose(loaded.latency_ms(table), device.latency_ms(table), rtol=1e-5)
    # the per-kernel path (device) and the feature path (fitting) agree
    assert np.allclose(device.latency_ms(table), predict_features(features, device.intercept_ms,
                                                                      device.theta), rtol=1e-9)


def test_device_file_errors(tmp_path):
    good = CalibratedDevice("d", 1.0, np.zeros(N_COLS)).to_dict()
    for change, message in (({"feature_version": 0}, "recalibrate"),
                            ({"theta": {"all.conv.k3.flops": 1.0}}, "unknown value 'flops'"),
                            ({"theta": {"all.conv.k3.macs": float("nan")}}, "finite"),
                            ({"floor_ms": float("nan")}, "floor_ms must be a finite"),
                            ({"floor_ms": None}, "calibrated device 'd': float"),
                            ({"theta": [1.0]}, "'theta' must map feature names"),
                            ({"theta": {"all.conv.k3.macs": None}}, "must be a number, got None")):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(DeviceError, match=message):
            load_device(str(path))


def test_signed_parameters_load_for_a_device_but_not_for_a_prior(tmp_path):
    theta = np.zeros(N_COLS)
    theta[column_index("all.conv.k3.macs")] = -1e-6     # a source combination may weigh one negatively
    theta[column_index("all.conv.k3.n")] = 2.0
    path = tmp_path / "signed.json"
    path.write_text(json.dumps(CalibratedDevice("d", 1.0, theta).to_dict()))
    assert np.array_equal(load_device(str(path)).theta, theta)
    prior = Prior(["nb201/x"], np.array([0.1]), theta[None]).to_dict()
    with pytest.raises(DeviceError, match="non-negative"):
        Prior.from_dict(prior)


def test_predictions_are_floored_at_a_share_of_the_fastest_measurement(nb201, tmp_path):
    space, archs, features = nb201
    measured = np.linspace(4.0, 9.0, 12)
    device = calibrate(archs[:12], measured, space=space, name="dev")
    assert device.floor_ms == pytest.approx(FLOOR_FRACTION * 4.0)
    table = to_table([space.to_ir(a) for a in archs])
    raw = predict_features(features, device.intercept_ms, device.theta)
    # a device whose negative overhead drives the linear model below zero for some architectures
    device.intercept_ms -= np.median(raw)
    raw = raw - np.median(raw)
    assert np.any(raw < 0)
    got = device.latency_ms(table)
    assert np.all(got >= device.floor_ms) and np.all(got > 0)
    assert np.allclose(got, np.maximum(raw, device.floor_ms), rtol=1e-9)
    path = tmp_path / "dev.json"
    device.save(path)
    assert np.allclose(load_device(str(path)).latency_ms(table), got, rtol=1e-5)
    # a file written before the floor existed still predicts positive latencies
    d = json.loads(path.read_text())
    del d["floor_ms"]
    path.write_text(json.dumps(d))
    assert np.all(load_device(str(path)).latency_ms(table) >= MIN_FLOOR_MS)


def test_unknown_prior_component_is_named(nb201):
    space, archs, features = nb201
    with pytest.raises(UnknownNameError, match="unknown prior component 'sorces'; choose from intercept, local, "
                                               "primitives, scale, sources"):
        calibrate_features(features[:10], np.linspace(1.0, 2.0, 10), load_prior().subset("nb201"),
                           variances={"sorces": 1.0})


def test_calibrate_takes_encodings_or_ir_and_gives_a_device_for_the_estimator(nb201):
    from zeroshot.estimator.estimate import Estimator
    space, archs, features = nb201
    latency = np.linspace(4.0, 9.0, 12)
    by_name = calibrate(archs[:12], latency, space="nb201", name="dev")
    by_ir = calibrate([space.to_ir(a) for a in archs[:12]], latency, space=space, name="dev")
    assert np.array_equal(by_name.theta, by_ir.theta) and by_name.intercept_ms == by_ir.intercept_ms
    assert by_name.space == "nb201" and by_name.measurements == 12
    codes = np.array([space.parse(a) for a in archs[12:40]])
    got = Estimator(space, by_name).evaluate(codes)["latency_ms"]        # a device object, not a name
    assert np.allclose(got, by_name.predict(space, archs[12:40]), rtol=1e-5)
    assert np.array_equal(by_name.predict("nb201", archs[12:40]), by_name.predict(space, archs[12:40]))
    lo, hi = by_name.predict_interval("nb201", archs[12:40], 0.8)
    assert np.all(lo <= hi) and len(lo) == 28


@pytest.mark.parametrize("change, param, message", [
    ({"archs": [3] * 12}, "archs", "got 'int'"),
    ({"n": 2}, "archs", "at least 3 measured architectures"),
    ({"latency_ms": np.ones(5)}, "latency_ms", "one latency per architecture (12), got 5"),
    ({"latency_ms": -np.ones(12)}, "latency_ms", "positive milliseconds up to 1e+07 (check the unit), got -1.0"),
    ({"latency_ms": np.r_[1e300, np.ones(11)]}, "latency_ms", "up to 1e+07 (check the unit), got 1e+300"),
    ({"latency_ms": np.full(12, 5.0)}, "latency_ms", "different across the architectures (a fit ranks them), got '12 times 5'"),
    ({"latency_ms": "abcd"}, "latency_ms", "a sequence of milliseconds"),
    ({"same": True}, "archs", "at least 3 distinct ones (equal architectures, or isomorphic cells, count once), "
                              "got '12 measurements of 1'"),
    ({"space": 201}, "space", "a space name or a SearchSpace"),
])
def test_calibrate_names_the_bad_parameter(nb201, change, param, message):
    space, archs, features = nb201
    n = change.get("n", 12)
    kwargs = {"archs": [archs[0]] * n if change.get("same") else archs[:n], "latency_ms": np.linspace(4.0, 9.0, n),
              "space": space}
    kwargs.update((k, v) for k, v in change.items() if k not in ("n", "same"))
    with pytest.raises(ParameterError, match=re.escape(message)) as info:
        calibrate(**kwargs)
    assert info.value.param == param


def test_calibrate_refuses_an_unknown_space(nb201):
    space, archs, features = nb201
    with pytest.raises(UnknownNameError, match="nb301"):
        calibrate(archs[:12], np.ones(12), space="nb301")


def test_robust_round_discounts_a_corrupted_measurement(nb201):
    space, archs, features = nb201
    prior = load_prior().subset("nb201")
    y = predict_features(features, *prior.source(0)) * 5.0
    measured = y[:20].copy()
    measured[3] *= 4.0                                     # one measurement taken under heavy load
    err = {}
    for z in (ROBUST_Z, np.inf):
        b, theta = calibrate_features(features[:20], measured, prior, robust_z=z)
        err[z] = np.median(np.abs(predict_features(features[20:], b, theta) / y[20:] - 1))
    assert err[ROBUST_Z] < 0.5 * err[np.inf]
    assert err[ROBUST_Z] < 0.08


def test_column_names_round_trip():
    cols = np.random.default_rng(1).choice(N_COLS, 500, replace=False)
    assert all(column_index(column_name(c)) == c for c in cols)


def test_folding_removes_constant_and_dead_ops():
    space = get_space("nb201")
    constant = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"
    dead_branch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|skip_connect~2|"
    plain = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    irs = [space.to_ir(a) for a in (constant, dead_branch, plain)]
    live = live_ops(to_table(irs))
    ptr = np.cumsum([0] + [len(ir.ops) for ir in irs])
    assert not live[ptr[0]:ptr[1]].any()
    assert 0 < live[ptr[1]:ptr[2]].sum() < ptr[2] - ptr[1]       # node 1's conv is never read
    assert live[ptr[2]:ptr[3]].all()


# ------------------------------------------------------------------------------------------ CLI
def _csv(tmp_path, rows, header="arch,latency_ms"):
    path = tmp_path / "m.csv"
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


def test_cli_calibrate_writes_a_device(tmp_path, capsys):
    space = get_space("nb201")
    archs = space.sample(10, seed=0)
    path = _csv(tmp_path, [(i, a, 5 + i) for i, a in enumerate(archs)], "index,arch_str,ms")
    out = str(tmp_path / "dev.json")
    assert main(["calibrate", "nb201", "--measurements", path, "-o", out]) == 0
    device = load_device(out)
    assert device.kind == "calibrated" and device.name == "dev"
    assert np.all(device.predict(space, archs) > 0)


@pytest.mark.parametrize("rows, extra, message", [
    ([("|bad|", 1.0)], [], "row 2"),
    ([("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|", "fast")], [], "row 2"),
    ([("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|", -2)], [], "positive"),
    ([], ["--column", "nope"], "'nope' is not a column"),
    ([], ["--column", "arch"], "'arch' is the architecture column"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, rows, extra, message):
    good = get_space("nb201").sample(4, seed=1)
    path = _csv(tmp_path, rows + [(a, 3.0) for a in good])
    assert main(["calibrate", "nb201", "--measurements", path, "-o", str(tmp_path / "d.json")] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d.json").exists()


def test_cli_ambiguous_column_lists_them(tmp_path, capsys):
    archs = get_space("nb201").sample(4, seed=2)
    path = _csv(tmp_path, [(a, 1.0, 2.0) for a in archs], "arch,gpu_ms,cpu_ms")
    assert main(["calibrate", "nb201", "--measurements", path, "-o", str(tmp_path / "d.json")]) == 2
    assert "gpu_ms, cpu_ms" in capsys.readouterr().err


def test_cli_estimate_uses_a_calibrated_device(tmp_path, capsys):
    space = get_space("nb201")
    archs = space.sample(10, seed=4) + ["|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"]
    path = _csv(tmp_path, [(a, 2 + i) for i, a in enumerate(archs)])
    dev = str(tmp_path / "dev.json")
    assert main(["calibrate", "nb201", "--measurements", path, "-o", dev]) == 0
    (tmp_path / "archs.txt").write_text("\n".join(archs) + "\n")
    capsys.readouterr()
    assert main(["estimate", "nb201", "--archs", str(tmp_path / "archs.txt"), "--device", dev]) == 0
    lines = capsys.readouterr().out.splitlines()
    col = lines[0].split(",").index("latency_ms")
    got = np.array([float(line.split(",")[col]) for line in lines[1:]])
    assert np.allclose(got, load_device(dev).predict(space, archs), rtol=1e-5)
    mbv2 = tmp_path / "mbv2.txt"                 # a device calibrated on nb201 cannot cost mbv2 networks
    mbv2.write_text(get_space("mbv2").sample(1, seed=0)[0] + "\n")
    assert main(["estimate", "mbv2", "--archs", str(mbv2), "--device", dev]) == 2
    assert "calibrated on nb201 architectures, not mbv2" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ sources that span hardware
def test_sampled_accelerators_are_deterministic_valid_and_disjoint_by_stream():
    from zeroshot.estimator.synthetic_devices import sample_npu_devices
    prior, test = sample_npu_devices(12, stream="prior"), sample_npu_devices(12, stream="test")
    assert [d.to_dict() for d in prior] == [d.to_dict() for d in sample_npu_devices(12, stream="prior")]
    assert sample_npu_devices(2, stream="test", start=5)[0].to_dict() == test[5].to_dict()
    params = lambda d: {k: v for k, v in d.to_dict().items() if k not in ("name", "description")}  # noqa: E731
    assert not any(params(a) == params(b) for a in prior for b in test)
    # the family varies every mechanism of the npu model, not one scale
    for field in ("lanes", "kernel_lanes", "pixel_lanes", "tap_lanes", "sram_kib", "overhead_us"):
        assert len({getattr(d, field) for d in prior + test}) > 2, field
    assert len({d.fusion for d in prior + test}) > 1
    assert all(4 <= d.lanes <= 128 and d.clock_mhz > 0 for d in prior + test)
    with pytest.raises(UnknownNameError, match="unknown device stream 'train'; choose from prior, test"):
        sample_npu_devices(1, stream="train")


def test_device_kinds_and_leaving_a_kind_out():
    from zeroshot.estimator.calibration_prior import device_kind
    assert [device_kind(f"nb201/{d}") for d in ("1080ti_32_ms", "gold_6226_ms", "samsung_a50_ms", "raspi4_ms",
                                                "npu-prior-07", "npu-edgetpu-like", "tpu_v9")] == \
        ["gpu", "cpu", "phone", "pi", "npu", "npu", "other"]
    prior = load_prior()
    kinds = {device_kind(lab) for lab in prior.labels}
    assert {"gpu", "cpu", "phone", "pi", "npu"} <= kinds          # the shipped prior spans hardware kinds
    rest = prior.without_kinds({"npu", "gpu"})
    assert rest.labels and {device_kind(lab) for lab in rest.labels} == kinds - {"npu", "gpu"}
    i = prior.labels.index(rest.labels[0])
    assert np.array_equal(rest.thetas[0], prior.thetas[i]) and rest.intercepts[0] == prior.intercepts[i]


def test_build_prior_adds_the_analytic_accelerators(nb201, tmp_path):
    from zeroshot.estimator.calibration_prior import build_prior
    from zeroshot.estimator.synthetic_devices import sample_npu_devices
    space, archs, features = nb201
    measured = {"slow_ms": np.linspace(1.0, 3.0, len(archs))}
    npu = sample_npu_devices(2, stream="test")
    built = build_prior([(space, archs, measured)], path=tmp_path / "p.json", npu=npu)
    assert built.labels == ["nb201/slow_ms", "nb201/npu-test-00", "nb201/npu-test-01"]
    assert load_prior(tmp_path / "p.json").labels == built.labels
    # an accelerator's source reproduces its analytic latencies on the architectures it was fitted to
    y = npu[0].latency_ms(to_table([space.to_ir(a) for a in archs]))
    pred = predict_features(features, *built.source(1)) * y.mean()
    assert np.corrcoef(pred, y)[0, 1] > 0.99


def test_calibration_ranks_an_unseen_accelerator(nb201):
    from scipy.stats import spearmanr
    from zeroshot.estimator.synthetic_devices import sample_npu_devices, with_noise
    space, archs, features = nb201
    table = to_table([space.to_ir(a) for a in archs])
    for t, device in enumerate(sample_npu_devices(3, stream="test")):     # never a source of the prior
        y = with_noise(device.latency_ms(table), 0.03, seed=t)
        fitted = calibrate(archs[:10], y[:10], space=space)
        assert spearmanr(fitted.predict(space, archs[10:]), y[10:]).statistic > 0.9, device.name
