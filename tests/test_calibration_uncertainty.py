"""Prediction intervals of calibrated devices: the posterior's algebra, its file form, the API and the CLI."""
import json

import numpy as np
import pytest
from scipy import sparse

import zeroshot as zs
from zeroshot.cli import main
from zeroshot.errors import DeviceError, ParameterError
from zeroshot.estimator.calibrated_device import MIN_FLOOR_MS, CalibratedDevice, calibrate
from zeroshot.estimator.calibration_features import (N_COLS, arch_features, column_index, predict_features,
                                                     table_features)
from zeroshot.estimator.calibration_fit import PRIOR_DOF, calibrate_features, fit_posterior
from zeroshot.estimator.calibration_posterior import Posterior, z_of_level
from zeroshot.estimator.calibration_prior import load_prior
from zeroshot.estimator.devices import load_device
from zeroshot.spaces import get_space, to_table


@pytest.fixture(scope="module")
def noisy_device():
    """300 nb201 networks on a device mixed from two sources, 4% Gaussian measurement noise."""
    space = get_space("nb201")
    archs = space.sample(300, seed=11)
    features = arch_features(space, archs)
    prior = load_prior().subset("nb201")
    truth = predict_features(features, 2.0 * prior.intercepts[3] + prior.intercepts[7],
                             2.0 * prior.thetas[3] + prior.thetas[7]) * 5.0
    measured = truth * (1 + 0.04 * np.random.default_rng(0).standard_normal(len(truth)))
    return space, archs, features, prior, measured


def test_posterior_variance_is_the_quadratic_form_of_its_covariance():
    rng = np.random.default_rng(1)
    cols = np.array([0, 5, 17, 30])                 # the intercept and three features (columns 4, 16, 29)
    n = N_COLS + 1
    diag, plus, minus = np.zeros(n), np.zeros((n, 3)), np.zeros((n, 2))
    diag[cols] = rng.random(4)
    plus[cols] = rng.standard_normal((4, 3))
    minus[cols] = 0.3 * rng.standard_normal((4, 2))
    dense = np.diag(diag[cols]) + plus[cols] @ plus[cols].T - minus[cols] @ minus[cols].T
    post = Posterior.build(diag, plus, minus, noise_ms2=0.5)
    assert sorted(post.columns) == list(cols)
    x = rng.standard_normal((6, 3))
    features = sparse.csr_matrix((x.ravel(), (np.repeat(np.arange(6), 3), np.tile(cols[1:] - 1, 6))),
                                 shape=(6, N_COLS))
    xs = np.column_stack([np.ones(6), x])
    expected = np.maximum(np.einsum("ij,jk,ik->i", xs, dense, xs), 0)
    assert np.allclose(post.variance_ms2(features), expected, rtol=1e-9, atol=1e-12)
    lo, hi = post.interval_ms(np.full(6, 10.0), features, level=0.9)
    assert np.allclose((hi - lo) / 2, z_of_level(0.9) * np.sqrt(expected + 0.5))
    back = Posterior.from_dict(json.loads(json.dumps(post.to_dict())), "test")
    assert np.allclose(back.variance_ms2(features), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.2, 1.5, True, "0.8", None])
def test_levels_outside_0_1_are_refused(level):
    with pytest.raises(ParameterError, match="interval must be a coverage level strictly between 0 and 1"):
        z_of_level(level)


def test_intervals_hold_the_prediction_and_widen_with_the_level(noisy_device):
    space, archs, features, prior, measured = noisy_device
    device = calibrate(archs[:20], measured[:20], space=space, prior=prior)
    table = to_table([space.to_ir(a) for a in archs[100:]])
    point = device.latency_ms(table)
    lo, hi = device.interval_ms(table, 0.8)
    assert lo.shape == hi.shape == point.shape == (200,)
    assert np.all(lo <= point) and np.all(point <= hi) and np.all(lo >= MIN_FLOOR_MS) and np.all(hi > lo)
    lo9, hi9 = device.interval_ms(table, 0.95)
    assert np.all(lo9 <= lo) and np.all(hi9 >= hi) and np.any(hi9 > hi)


def test_widths_shrink_with_more_measurements(noisy_device):
    space, archs, features, prior, measured = noisy_device
    held = features[200:]
    widths = []
    for k in (10, 40, 160):          # noise and local variance fixed: only the data changes
        post = fit_posterior(features[:k], measured[:k], prior, variances={"local": 0.1}, noise=1e-3,
                             robust_z=np.inf).posterior
        widths.append(np.median(np.sqrt(post.variance_ms2(held))))
    assert widths[0] > widths[1] > widths[2], widths


def test_coverage_where_the_model_holds(noisy_device):
    """A device in the prior's span with Gaussian noise: the 80% intervals hold about 80% of new
    measurements (not 30%, not all)."""
    space, archs, features, prior, measured = noisy_device
    fit = fit_posterior(features[:40], measured[:40], prior)
    mean = predict_features(features[100:], fit.intercept_ms, fit.theta)
    lo, hi = fit.posterior.interval_ms(mean, features[100:], 0.8)
    coverage = np.mean((measured[100:] >= lo) & (measured[100:] <= hi))
    assert 0.6 <= coverage <= 0.95, coverage


def _coverage_at_10(features, measured, prior, gaussian=False):
    """Mean share of held-out measurements inside the 50/80/95% intervals over 12 draws of 10 measured
    networks (of the first 100), and the fits' degrees of freedom."""
    inside, dofs = [], []
    for seed in range(12):
        idx = np.random.default_rng(seed).choice(100, 10, replace=False)
        fit = fit_posterior(features[idx], measured[idx], prior)
        post = fit.posterior
        z = np.abs(measured[100:] - predict_features(features[100:], fit.intercept_ms, fit.theta)) \
            / post.sd_ms(features[100:])
        inside.append([np.mean(z <= z_of_level(lv, None if gaussian else post.dof)) for lv in (0.5, 0.8, 0.95)])
        dofs.append(post.dof)
    return np.mean(inside, 0), np.array(dofs)


def test_student_t_intervals_hold_their_level_at_k10_where_gaussian_ones_fall_short(noisy_device):
    """Known 4% noise, 10 measured networks: the Student-t intervals hold about their level (the Gaussian
    ones of the same posterior hold 87% at 95%: the noise picked from 10 points is optimistic)."""
    space, archs, features, prior, measured = noisy_device
    cover, dofs = _coverage_at_10(features, measured, prior)
    assert 0.40 <= cover[0] <= 0.60 and 0.74 <= cover[1] <= 0.86 and 0.91 <= cover[2] <= 0.99, cover
    assert np.all((PRIOR_DOF < dofs) & (dofs <= 10 + PRIOR_DOF)), dofs
    gaussian, _ = _coverage_at_10(features, measured, prior, gaussian=True)
    assert gaussian[2] < 0.90 and np.all(gaussian < cover), gaussian


def test_degrees_of_freedom_grow_with_the_noise_share(noisy_device):
    """Measurements the fit nearly interpolates leave few residual degrees of freedom; noisy ones, most."""
    space, archs, features, prior, measured = noisy_device
    truth = measured / (1 + 0.04 * np.random.default_rng(0).standard_normal(len(measured)))
    noisy = truth * (1 + 0.2 * np.random.default_rng(1).standard_normal(len(truth)))
    clean, loud = (np.median(_coverage_at_10(features, y, prior)[1]) for y in (truth, noisy))
    assert clean + 2 < loud, (clean, loud)


def test_student_t_leaves_the_point_prediction_and_centres_the_interval(noisy_device):
    space, archs, features, prior, measured = noisy_device
    fit = fit_posterior(features[:10], measured[:10], prior)
    intercept, theta = calibrate_features(features[:10], measured[:10], prior)
    assert fit.intercept_ms == intercept and np.array_equal(fit.theta, theta)
    mean = predict_features(features[100:], intercept, theta)
    lo, hi = fit.posterior.interval_ms(mean, features[100:], 0.8)
    half = z_of_level(0.8, fit.posterior.dof) * fit.posterior.sd_ms(features[100:])
    assert np.allclose(hi - mean, half) and np.allclose(mean - lo, half)
    assert z_of_level(0.8, fit.posterior.dof) > z_of_level(0.8)


def test_a_posterior_without_dof_keeps_the_gaussian_intervals_of_old_files(noisy_device, tmp_path):
    space, archs, features, prior, measured = noisy_device
    device = calibrate(archs[:12], measured[:12], space=space, prior=prior, name="dev")
    old = device.to_dict()
    del old["posterior"]["dof"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    gaussian = load_device(str(path))
    assert gaussian.posterior.dof is None
    table = to_table([space.to_ir(a) for a in archs[50:60]])
    point = device.latency_ms(table)
    sd = device.posterior.sd_ms(table_features(table, device.fusion))
    assert np.allclose(gaussian.interval_ms(table, 0.8)[1] - point, z_of_level(0.8) * sd)
    assert np.allclose(device.interval_ms(table, 0.8)[1] - point, z_of_level(0.8, device.posterior.dof) * sd)
    for dof, message in ((0.0, "inconsistent posterior"), (float("inf"), "inconsistent posterior"),
                         ("x", "malformed posterior"), ([3], "malformed posterior")):
        path.write_text(json.dumps({**old, "posterior": {**old["posterior"], "dof": dof}}))
        with pytest.raises(DeviceError, match=message):
            load_device(str(path))


def test_intervals_survive_saving_and_an_old_file_has_none(noisy_device, tmp_path):
    space, archs, features, prior, measured = noisy_device
    device = calibrate(archs[:12], measured[:12], space=space, prior=prior, name="dev")
    path = tmp_path / "dev.json"
    device.save(path)
    loaded = load_device(str(path))
    got, want = loaded.predict_interval(space, archs[50:60]), device.predict_interval(space, archs[50:60])
    assert np.allclose(got, want, rtol=1e-5)
    old = json.loads(path.read_text())
    del old["posterior"]
    path.write_text(json.dumps(old))
    with pytest.raises(DeviceError, match="no posterior .* recalibrate"):
        load_device(str(path)).predict_interval(space, archs[:2])
    for change, message in (({"columns": ["all.conv.k3.flops"]}, "unknown value 'flops'"),
                            ({"diag": [1.0, 2.0]}, "inconsistent posterior"),
                            ({"noise_ms2": -1.0}, "inconsistent posterior"),
                            ({"factors": "x"}, "malformed posterior")):
        bad = {**device.to_dict(), "posterior": {**device.posterior.to_dict(), **change}}
        path.write_text(json.dumps(bad))
        with pytest.raises(DeviceError, match=message):
            load_device(str(path))


def test_estimate_adds_interval_columns(noisy_device):
    space, archs, features, prior, measured = noisy_device
    device = calibrate(archs[:15], measured[:15], space=space, prior=prior)
    t = zs.estimate(archs[20:30], space="nb201", device=device, interval=0.8)
    assert t.columns[-3:] == ["latency_ms", "latency_lo_ms", "latency_hi_ms"]
    assert np.all(t["latency_lo_ms"] <= t["latency_ms"]) and np.all(t["latency_ms"] <= t["latency_hi_ms"])
    assert zs.estimate(archs[20:30], space="nb201", device=device).columns[-1] == "latency_ms"   # as before
    ir = zs.estimate([space.to_ir(a) for a in archs[20:23]], device=device, interval=0.8)
    assert np.allclose(ir["latency_hi_ms"], t["latency_hi_ms"][:3])
    with pytest.raises(ParameterError, match="interval must be given with a calibrated device"):
        zs.estimate(archs[:2], space="nb201", device="mobile-npu-16", interval=0.8)
    with pytest.raises(ParameterError, match="interval must be given with a calibrated device"):
        zs.estimate(archs[:2], space="nb201", interval=0.8)
    with pytest.raises(ParameterError, match="per_layer"):
        zs.estimate(archs[:2], space="nb201", device=device, interval=0.8, per_layer=True)


def test_cli_estimate_interval(noisy_device, tmp_path, capsys):
    space, archs, features, prior, measured = noisy_device
    dev = str(tmp_path / "dev.json")
    calibrate(archs[:12], measured[:12], space=space, prior=prior).save(dev)
    (tmp_path / "archs.txt").write_text("\n".join(archs[40:45]) + "\n")
    args = ["estimate", "nb201", "--archs", str(tmp_path / "archs.txt"), "--device", dev]
    assert main(args + ["--interval", "0.8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split(",")
    rows = np.array([[float(v) for v in line.split(",")[header.index("latency_ms"):]] for line in lines[1:]])
    assert header[-2:] == ["latency_lo_ms", "latency_hi_ms"] and rows.shape == (5, 3)
    assert np.all(rows[:, 1] <= rows[:, 0]) and np.all(rows[:, 0] <= rows[:, 2])
    assert main(args + ["--interval", "80"]) == 2
    assert "--interval must be a coverage level" in capsys.readouterr().err
    assert main(args[:-1] + ["mobile-npu-16", "--interval", "0.8"]) == 2
    assert "--interval must be given with a calibrated device" in capsys.readouterr().err


def test_a_hand_made_device_without_posterior_refuses_intervals():
    theta = np.zeros(N_COLS)
    theta[column_index("all.conv.k3.n")] = 1.0
    space = get_space("nb201")
    with pytest.raises(DeviceError, match="recalibrate it with `zeroshot calibrate`"):
        CalibratedDevice("d", 1.0, theta, space="nb201").predict_interval(space, space.sample(2, seed=0))
