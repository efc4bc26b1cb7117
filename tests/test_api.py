"""The public Python API: the contract's snippet runs, its numbers equal the command line's, errors are typed."""
import csv
import io

import numpy as np
import pytest
from conftest import need_shared

import zeroshot as zs
from zeroshot.cli import main
from zeroshot.errors import Error, ParameterError, UnknownNameError
from zeroshot.searching import SearchConfig

IMAGES = "images/cifar10_test_846.npz"
ORACLE = "nb201/nb201_cifar10.csv"


def cli(capsys, *argv) -> list[dict]:
    """Rows of the CSV a command prints."""
    assert main(list(argv)) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_lists_and_spaces():
    assert {"nb201", "fbnet", "mbv2"} <= set(zs.list_spaces())
    assert "mobile-npu-16" in zs.list_devices()
    assert {"meco", "swap", "synflow"} <= set(zs.list_proxies())
    assert {"random", "evolution", "prefiltered", "zeroshot"} <= set(zs.list_strategies())
    space = zs.get_space("mbv2", P=16)
    archs = space.sample(100, seed=0)
    assert len(set(archs)) == 100 and all(isinstance(a, str) for a in archs)
    assert archs == space.sample(100, seed=0) and archs != space.sample(100, seed=1)
    with pytest.raises(UnknownNameError, match="unknown space 'nosuch'; choose from fbnet, mbv2, nb201"):
        zs.get_space("nosuch")


def test_estimate_is_a_table_in_input_order_equal_to_the_cli(tmp_path, capsys):
    archs = zs.get_space("mbv2").sample(20, seed=3)
    t = zs.estimate(archs, space="mbv2", device="mobile-npu-16", precision="int8")
    assert t.columns == ["arch", "params", "macs", "peak_activation_bytes", "model_bytes", "latency_ms"]
    assert len(t) == 20 and list(t["arch"]) == archs and t["latency_ms"].dtype == np.float64
    assert (t["model_bytes"] == t["params"]).all()           # int8: one byte per weight
    rows = list(t)
    assert rows[5] == t.row(5) and rows[5]["arch"] == archs[5] and isinstance(rows[5]["params"], int)
    reversed_t = zs.estimate(archs[::-1], space="mbv2", device="mobile-npu-16", precision="int8")
    assert np.array_equal(reversed_t["latency_ms"], t["latency_ms"][::-1])
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(archs) + "\n")
    printed = cli(capsys, "estimate", "mbv2", "--archs", str(path), "--device", "mobile-npu-16",
                  "--precision", "int8")
    assert printed == list(csv.DictReader(io.StringIO(t.to_csv())))
    t.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == t.to_csv()


def test_ir_archs_cost_as_their_encodings():
    space = zs.get_space("nb201")
    archs = space.sample(12, seed=0)
    by_text = zs.estimate(archs, space=space, device="edgetpu-like")
    by_ir = zs.estimate([space.to_ir(a) for a in archs], device="edgetpu-like")
    for c in ("params", "macs", "peak_activation_bytes", "model_bytes"):
        assert np.array_equal(by_ir[c], by_text[c]), c
    np.testing.assert_allclose(by_ir["latency_ms"], by_text["latency_ms"], rtol=1e-9)
    assert list(by_ir["arch"]) == [f"arch[{i}]" for i in range(12)]
    mixed = zs.estimate([archs[0], space.to_ir(archs[1])], space="nb201")
    assert list(mixed["params"]) == list(by_text["params"][:2])


def test_score_with_data_equals_the_cli_and_takes_arrays(tmp_path, capsys, one_torch_thread):
    npz = need_shared(IMAGES)
    archs = zs.get_space("nb201").sample(6, seed=1)
    s = zs.score(archs, space="nb201", data=str(npz), seed=0, proxies=["naswot", "synflow"], batch_size=16)
    assert s.columns == ["arch", "score", "naswot", "synflow"] and list(s["arch"]) == archs
    assert np.isfinite(s["score"]).all() and s["score"].max() <= 0
    with np.load(npz) as f:
        pair = (f["x"], f["y"])
    s2 = zs.score(archs, space="nb201", data=pair, seed=0, proxies="naswot,synflow", batch_size=16)
    np.testing.assert_array_equal(s2["naswot"], s["naswot"])
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(archs) + "\n")
    printed = cli(capsys, "score", "nb201", "--archs", str(path), "--data", str(npz), "--proxies", "naswot,synflow",
                  "--batch-size", "16")
    assert printed == list(csv.DictReader(io.StringIO(s.to_csv())))


def test_score_of_ir_archs_equals_the_encodings(one_torch_thread):
    space = zs.get_space("nb201")
    archs = space.sample(4, seed=2)
    names = ["synflow", "entropy"]
    by_text = zs.score(archs, space=space, proxies=names, seed=0, batch_size=8)
    by_ir = zs.score([space.to_ir(a) for a in archs], proxies=names, seed=0, batch_size=8)
    for n in ["score", *names]:
        np.testing.assert_allclose(by_ir[n], by_text[n], rtol=1e-6)


def test_calibrate_gives_a_device_usable_by_estimate():
    space = zs.get_space("nb201")
    archs = space.sample(30, seed=0)
    truth = zs.estimate(archs, space=space, device="edgetpu-like")["latency_ms"]
    device = zs.calibrate(archs[:12], truth[:12], space="nb201")
    predicted = zs.estimate(archs[12:], space="nb201", device=device)["latency_ms"]
    assert predicted.shape == (18,) and np.isfinite(predicted).all()
    assert np.corrcoef(predicted, truth[12:])[0, 1] > 0.8


def test_screen_in_memory():
    r = zs.screen("nb201", device="mobile-npu-16", n=1500, survivors=0, top=5, seed=0)
    assert len(r.shortlist) == 5 and r.db is None
    assert 1400 < r.counts["sampled"] <= 1500 and len(r.pareto) >= 1     # duplicates are dropped
    assert {"arch", "latency_ms"} <= set(r.shortlist.columns)


def test_search_with_an_oracle():
    oracle = need_shared(ORACLE)
    b = zs.search("nb201", strategy="evolution", budget=8, oracle=str(oracle), column="test_acc", seed=0)
    assert len(b.trajectory) == 8 and b.best["accuracy"] == max(b.trajectory["accuracy"])


@pytest.mark.parametrize("call, param", [
    (lambda: zs.estimate(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]), "space"),
    (lambda: zs.estimate([], space="nb201"), "archs"),
    (lambda: zs.estimate([3.5], space="nb201"), "archs"),
    (lambda: zs.estimate(zs.get_space("nb201").sample(1), space="nb201", device=7), "device"),
    (lambda: zs.score(zs.get_space("nb201").sample(2), space="nb201", batch_size=1), "batch_size"),
    (lambda: zs.score(zs.get_space("nb201").sample(2), space="nb201", proxies=[]), "proxies"),
    (lambda: zs.score(zs.get_space("nb201").sample(2), space="nb201", data=42), "data"),
    (lambda: zs.estimate(5), "archs"),
    (lambda: zs.score(zs.get_space("nb201").sample(2), space="nb201", batch_size="8"), "batch_size"),
    (lambda: zs.score(zs.get_space("nb201").sample(2), space="nb201", seed=-1), "seed"),
    (lambda: zs.score(zs.get_space("nb201").sample(2), space="nb201", seed="a"), "seed"),
    (lambda: zs.measure(zs.get_space("nb201").sample(1), space="nb201", rounds="3"), "rounds"),
    (lambda: zs.calibrate(zs.get_space("nb201").sample(4), "abcd", space="nb201"), "latency_ms"),
    (lambda: zs.get_space("nb201").sample(2, seed=-1), "seed"),
    (lambda: zs.get_space("nb201").mutate(zs.get_space("nb201").sample(1)[0], seed=-3), "seed"),
    (lambda: zs.screen("nb201", n=50, survivors=0, seed=-1), "seed"),
])
def test_bad_parameters_are_typed_and_named(call, param):
    with pytest.raises(ParameterError) as e:
        call()
    assert e.value.param == param and isinstance(e.value, (Error, ValueError))


def test_a_search_config_refuses_a_negative_seed():
    with pytest.raises(ParameterError) as e:
        SearchConfig(space="nb201", strategy="random", budget=4, seed=-1).check()
    assert e.value.param == "seed"


def test_unknown_names_list_the_choices():
    archs = zs.get_space("nb201").sample(1)
    with pytest.raises(UnknownNameError, match="choose from .*mobile-npu-16"):
        zs.estimate(archs, space="nb201", device="nosuch")
    with pytest.raises(UnknownNameError, match="unknown proxy 'nosuch'"):
        zs.score(archs, space="nb201", proxies=["nosuch"])
    with pytest.raises(UnknownNameError, match="unknown column 'nosuch'; choose from arch"):
        zs.estimate(archs, space="nb201")["nosuch"]


def test_table_rules(tmp_path):
    with pytest.raises(Error, match="one length"):
        zs.Table({"a": [1, 2], "b": [1]})
    t = zs.Table.from_rows([{"arch": "x", "v": 1.0}, {"arch": "y", "v": 2.5, "w": 3}])
    assert t.columns == ["arch", "v", "w"] and t.row(0)["w"] is None
    pd = pytest.importorskip("pandas", reason="pandas is an optional extra")
    frame = t.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame["v"]) == [1.0, 2.5]
