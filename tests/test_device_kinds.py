"""Every registered device kind (analytic npu, calibrated, measured) survives its JSON round trip: the same
class and latencies from the saved file (and from its dict, except a measured device, whose regressors live in
a model file beside it); parameters are stored to 8 significant digits."""
import json

import numpy as np
import pytest

from zeroshot.estimator.calibrated_device import CalibratedDevice
from zeroshot.estimator.calibration_features import N_COLS
from zeroshot.estimator.devices import KINDS, device_from_dict, load_device
from zeroshot.estimator.kernel_table import KERNEL_TYPES, decompose
from zeroshot.estimator.measured_device import FEATURES, POOLED, MeasuredDevice, feature_matrix, fit_regressor
from zeroshot.spaces import get_space, to_table


@pytest.fixture(scope="module")
def nb201_table():
    space = get_space("nb201")
    return to_table(space.irs(space.sample_distinct_codes(6, np.random.default_rng(0))))


def _measured(table) -> MeasuredDevice:
    kt = decompose(table)
    x, types = feature_matrix(kt.cols), kt.cols["type"]
    y_ms = 1e-6 * x[:, FEATURES.index("macs")] + 1e-3
    regs = {KERNEL_TYPES[t]: fit_regressor(x[types == t], y_ms[types == t]) for t in set(types.tolist())}
    return MeasuredDevice("toy", regs, {POOLED: {"scale": 1.2, "ms_per_mb": 0.5, "intercept_ms": 0.25}})


EXAMPLES = {
    "npu": lambda table: load_device("mobile-npu-16"),
    "calibrated": lambda table: CalibratedDevice("twin", 0.5, np.random.default_rng(1).uniform(0, 1e-3, N_COLS),
                                                 space="nb201"),
    "measured": _measured,
}


def test_every_kind_has_an_example_here():
    assert sorted(EXAMPLES) == sorted(KINDS.names())


@pytest.mark.parametrize("kind", KINDS.names())
def test_every_device_kind_round_trips_through_json(kind, nb201_table, tmp_path):
    device = EXAMPLES[kind](nb201_table)
    assert device.kind == kind
    device.save(tmp_path / "d.json")
    copies = [load_device(str(tmp_path / "d.json"))]
    if kind != "measured":
        copies.append(device_from_dict(json.loads(json.dumps(device.to_dict()))))
    want = device.latency_ms(nb201_table)
    assert np.all(want > 0)
    for other in copies:
        assert type(other) is type(device)
        np.testing.assert_allclose(other.latency_ms(nb201_table), want, rtol=1e-8)
