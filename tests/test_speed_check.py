"""Speed checks of measured devices: reference models kept by the profile, measured again, the device rescaled."""
import numpy as np
import pytest

from zeroshot.cli import main
from zeroshot.errors import DeviceError
from zeroshot.estimator.devices import load_device
from zeroshot.estimator.measured_device import POOLED, MeasuredDevice
from zeroshot.estimator.profiling import profile
from zeroshot.estimator.speed_check import REFERENCE_MODELS, SpeedCheck, rebuilt, speed_check
from zeroshot.spaces import get_space, to_table


@pytest.fixture(scope="module")
def nb201_device(tmp_path_factory):
    """A short profile of the registered nb201 space (its reference models rebuild as profiled)."""
    dev = profile([get_space("nb201")], budget_s=2, archs_per_space=4, calibration_archs=3, refine_rounds=1,
                  name="short")
    path = tmp_path_factory.mktemp("dev") / "short.json"
    dev.save(path)
    return dev, path


def test_profile_keeps_reference_models_with_their_latency(nb201_device):
    dev, path = nb201_device
    refs = load_device(str(path)).info["reference"]
    assert len(refs) == min(3, REFERENCE_MODELS) and {r["space"] for r in refs} == {"nb201"}
    assert [r["ms"] for r in refs] == pytest.approx(list(dev.calibration["measured_ms"][:len(refs)]))
    assert all(r["params"] > 0 for r in refs)


def test_speed_check_measures_the_references_against_the_profile(nb201_device):
    dev, _ = nb201_device
    check = speed_check(dev, rounds=3)
    assert check.ratios.shape == (3,) and np.all(np.isfinite(check.ratios)) and np.all(check.ratios > 0)
    # a device whose references took twice as long during the profile: this machine now runs at about half
    slow = MeasuredDevice(dev.name, dev.regressors, dev.corrections,
                          {**dev.info, "reference": [{**r, "ms": 2 * r["ms"]} for r in dev.info["reference"]]})
    assert speed_check(slow, rounds=3).ratio < 0.75


def test_rescale_multiplies_every_latency_by_the_ratio(nb201_device):
    dev, _ = nb201_device
    space = get_space("nb201")
    table = to_table([space.to_ir(a) for a in space.sample(4, seed=3)])
    now = SpeedCheck(np.array([1.2, 1.25, 1.3])).rescale(dev)
    for key in (POOLED, "nb201"):
        np.testing.assert_allclose(now.for_space(key).latency_ms(table), 1.25 * dev.for_space(key).latency_ms(table))
    assert now.info["speed_check_ratio"] == 1.25 and "speed_check_ratio" not in dev.info


def test_references_that_rebuild_otherwise_or_are_missing_raise():
    small = get_space("nb201", channels=4, cells=1, resolution=8)
    arch = small.sample(1, seed=0)[0]
    with pytest.raises(DeviceError, match="rebuilds with .* parameters, not the"):
        rebuilt([{"space": "nb201", "arch": arch, "params": 123, "ms": 1.0}])
    bare = MeasuredDevice("bare", {}, {}, {})
    with pytest.raises(DeviceError, match="keeps no reference models.*profile it again"):
        speed_check(bare)


def test_cli_device_check_writes_a_rescaled_device(nb201_device, tmp_path, capsys):
    dev, path = nb201_device
    out = tmp_path / "now.json"
    assert main(["device", "check", str(path), "--rounds", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    ratio = float(printed.split(" run at ")[1].split("x")[0])
    assert "3 reference networks" in printed
    table = to_table([get_space("nb201").to_ir(dev.info["reference"][0]["arch"])])
    np.testing.assert_allclose(load_device(str(out)).for_space("nb201").latency_ms(table),
                               ratio * dev.for_space("nb201").latency_ms(table), rtol=2e-3)


@pytest.mark.parametrize("argv, message", [
    (["mobile-npu-16"], "is a npu device: a speed check needs a measured device file"),
    (["missing.json"], "does not exist"),
    (["DEV", "-o", "now.txt"], "--output must be a .json file name"),
    (["DEV", "--rounds", "0"], "--rounds must be at least 1"),
])
def test_cli_device_check_bad_input_is_one_line(nb201_device, capsys, argv, message):
    _, path = nb201_device
    assert main(["device", "check", *[str(path) if a == "DEV" else a for a in argv]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1



def test_measure_times_the_references_with_the_networks(nb201_device, tmp_path, capsys):
    _, path = nb201_device
    archs = tmp_path / "a.txt"
    archs.write_text("\n".join(get_space("nb201").sample(2, seed=5)) + "\n")
    assert main(["measure", "nb201", "--archs", str(archs), "--rounds", "2", "--check-device", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 3 and out.startswith("arch,latency_ms,noise")      # only the networks asked for
    assert "3 reference networks ran at" in err and "x their latency during its profile" in err


@pytest.mark.parametrize("argv, message", [
    (["--threads", "2"], "was profiled with --threads 1, this measurement uses 2"),
    (["--batch", "4"], "was profiled with --batch 1, this measurement uses 4"),
])
def test_measure_check_device_needs_the_profile_settings(nb201_device, tmp_path, capsys, argv, message):
    _, path = nb201_device
    archs = tmp_path / "a.txt"
    archs.write_text(get_space("nb201").sample(1, seed=5)[0] + "\n")
    assert main(["measure", "nb201", "--archs", str(archs), "--check-device", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
