"""The public API's inputs (``import zeroshot as zs``): what it takes and how it refuses the rest, with the
project's typed errors at the boundary; tables that write exactly what they hold; names reachable as
documented."""
import csv
import io
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
import torch

import zeroshot as zs
from zeroshot.errors import InputError, ParameterError, UnknownNameError
from zeroshot.registry import Registry


def fresh_python(code: str) -> str:
    """The output of ``code`` run by a new interpreter (nothing imported or registered yet)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- registries: a taken name, in either order
@pytest.fixture
def colours(tmp_path, monkeypatch):
    """A registry (module ``reg``) whose built-ins are modules ``red`` and ``blue``, each registering its
    colour; the module names are fresh for each test."""
    uid = uuid.uuid4().hex[:8]
    names = {k: f"{k}_{uid}" for k in ("reg", "red", "blue")}
    (tmp_path / f"{names['reg']}.py").write_text(
        f"from zeroshot.registry import Registry\nCOLOURS = Registry('colour', builtins=({names['red']!r}, "
        f"{names['blue']!r}))\n")
    for colour, value in (("red", 1), ("blue", 2)):
        (tmp_path / f"{names[colour]}.py").write_text(
            f"from {names['reg']} import COLOURS\nCOLOURS.add({colour!r}, {value})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for name in names.values():
        sys.modules.pop(name, None)


def test_a_built_in_name_is_refused_before_the_built_ins_load(colours):
    registry = __import__(colours["reg"]).COLOURS
    with pytest.raises(ParameterError, match="colour 'red' is already registered: pass replace=True") as e:
        registry.add("red", 9)
    assert e.value.param == "name"
    assert registry.names() == ["blue", "red"] and registry.get("red") == 1      # the registry still reads
    registry.add("red", 9, replace=True)
    assert registry.get("red") == 9


def test_a_built_in_module_imported_first_registers_without_loading_the_others(colours):
    __import__(colours["red"])
    assert colours["blue"] not in sys.modules                  # the others stay unimported (torch, for proxies)
    assert __import__(colours["reg"]).COLOURS.names() == ["blue", "red"]


def test_a_taken_name_after_loading_is_a_parameter_error():
    registry = Registry("colour")
    registry.add("red", 1)
    with pytest.raises(ParameterError, match="colour 'red' is already registered"):
        registry.add("red", 2)
    with pytest.raises(ParameterError) as e:
        registry.add("", 3)
    assert e.value.param == "name"


def test_register_space_under_a_built_in_name_is_refused_in_a_fresh_process():
    printed = fresh_python("""
        import zeroshot as zs
        from zeroshot.spaces.macro import MacroSpace, Stage, ibn
        space = MacroSpace([Stage(1, 16, 1, (ibn(3, 1),))], resolutions=(64,), stem=16, head=64, classes=10)
        try:
            zs.register_space(space, name="mbv2")
        except zs.errors.ParameterError as e:
            print(type(e).__name__, e.param)
        print(zs.list_spaces(), type(zs.get_space("mbv2")).__name__)
    """)
    assert printed.splitlines() == ["ParameterError name", "['fbnet', 'mbv2', 'nb201'] Mbv2Space"]


def test_register_space_refuses_what_is_not_a_space():
    for bad in (None, 3, "mine"):
        with pytest.raises(ParameterError) as e:
            zs.register_space(bad, name="mine")
        assert e.value.param == "space"
    assert "mine" not in zs.list_spaces()


# ---------------------------------------------------------------- the package's names
def test_documented_submodules_are_attributes_of_a_fresh_import():
    printed = fresh_python("""
        import zeroshot as zs
        print(zs.errors.ParameterError.__name__, zs.spaces.__name__, zs.estimator.__name__)
        try:
            zs.no_such_module
        except AttributeError as e:
            print(e)
    """)
    assert printed.splitlines() == ["ParameterError zeroshot.spaces zeroshot.estimator",
                                    "module 'zeroshot' has no attribute 'no_such_module'"]


@pytest.mark.parametrize("name", ["Error", "Table", "calibrate", "estimate", "get_space", "list_spaces",
                                  "measure", "score"])
def test_public_name_has_an_example_in_its_own_docstring(name):
    assert ">>> " in getattr(zs, name).__doc__


# ---------------------------------------------------------------- spaces refuse what is not an encoding
@pytest.mark.parametrize("call, param", [
    (lambda s, a: s.parse(None), "text"),
    (lambda s, a: s.parse(3), "text"),
    (lambda s, a: s.mutate(None), "arch"),
    (lambda s, a: s.crossover(a, None), "b"),
    (lambda s, a: s.crossover(7, a), "a"),
    (lambda s, a: s.to_ir(None), "arch"),
    (lambda s, a: s.to_ir(s.parse(a)[:-1]), "arch"),
    (lambda s, a: s.to_ir(s.parse(a) + 0.5), "arch"),
])
@pytest.mark.parametrize("name", ["nb201", "mbv2", "fbnet"])
def test_space_methods_refuse_what_is_not_an_encoding(name, call, param):
    space = zs.get_space(name)
    with pytest.raises(ParameterError) as e:
        call(space, space.sample(1, seed=0)[0])
    assert e.value.param == param and repr(name) in str(e.value)


def test_a_code_vector_of_any_integer_type_lowers_as_its_encoding():
    space = zs.get_space("nb201")
    arch = space.sample(1, seed=0)[0]
    assert space.to_ir(space.parse(arch).astype(np.int32)).params == space.to_ir(arch).params


# ---------------------------------------------------------------- score and calibrate
ARCHS = zs.get_space("nb201").sample(3, seed=0)


@pytest.mark.parametrize("proxies, got", [([None], "NoneType"), (3, "int"), (["synflow", 4], "int")])
def test_score_refuses_proxies_that_are_not_names(proxies, got):
    with pytest.raises(ParameterError, match=f"proxies must be None, proxy names .* got '{got}'"):
        zs.score(ARCHS, space="nb201", proxies=proxies)


def test_score_takes_proxy_names_in_any_iterable():
    by_list = zs.score(ARCHS, space="nb201", proxies=["live_macs", "paths"])
    by_tuple = zs.score(ARCHS, space="nb201", proxies=("live_macs", "paths"))
    by_text = zs.score(ARCHS, space="nb201", proxies="live_macs, paths")
    assert by_list.to_csv() == by_tuple.to_csv() == by_text.to_csv()
    assert (by_list["score"] <= 0).all() and by_list["score"].max() == 0      # log-rank sums: 0 is the best


@pytest.fixture(scope="module")
def measured():
    archs = zs.get_space("nb201").sample(12, seed=0)
    return archs, 3 * zs.estimate(archs, space="nb201", device="edgetpu-like")["latency_ms"]


@pytest.mark.parametrize("option", ["P", "nosie"])
def test_calibrate_refuses_an_option_the_fit_does_not_take_naming_those_it_takes(measured, option):
    archs, latency = measured
    with pytest.raises(ParameterError) as e:
        zs.calibrate(archs, latency, space="nb201", **{option: 16})
    assert e.value.param == option
    assert "prior, variances, noise, robust_z, similarity" in str(e.value) and "zs.get_space" in str(e.value)


def test_calibrate_takes_latencies_as_a_tensor(measured):
    archs, latency = measured
    by_array = zs.calibrate(archs, latency, space="nb201", noise=0.01)
    by_tensor = zs.calibrate(archs, torch.tensor(latency, requires_grad=True), space="nb201", noise=0.01)
    predicted = [zs.estimate(archs, space="nb201", device=d)["latency_ms"] for d in (by_array, by_tensor)]
    np.testing.assert_array_equal(predicted[0], predicted[1])


# ---------------------------------------------------------------- tables
@pytest.mark.parametrize("columns", [None, [1, 2], "arch", [{"arch": "a"}]])
def test_a_table_refuses_what_is_not_a_mapping_of_columns(columns):
    with pytest.raises(ParameterError) as e:
        zs.Table(columns)
    assert e.value.param == "columns"


@pytest.mark.parametrize("rows", [None, [1, 2], {"arch": ["a"]}, [{"arch": "a"}, "b"]])
def test_from_rows_refuses_what_is_not_rows(rows):
    with pytest.raises(ParameterError) as e:
        zs.Table.from_rows(rows)
    assert e.value.param == "rows"


def test_an_empty_table_keeps_the_columns_it_is_given():
    t = zs.Table.from_rows([], columns=["arch", "score"])
    assert len(t) == 0 and list(t["arch"]) == [] and t.to_csv() == "arch,score\n"


def test_csv_writes_floats_exactly(tmp_path):
    values = [2723060000.0, 0.1 + 0.2, 1e-300, 123456789.123456789, float("inf"), 2.0 ** 60]
    t = zs.Table({"arch": [f"a{i}" for i in range(len(values))], "macs": values,
                  "params": np.array([2 ** 40 + 1] * len(values), dtype=np.int64)})
    t.to_csv(tmp_path / "t.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert [float(r["macs"]) for r in rows] == values
    assert {int(r["params"]) for r in rows} == {2 ** 40 + 1}


def test_csv_to_a_missing_folder_names_the_target(tmp_path):
    target = tmp_path / "missing" / "x.csv"
    with pytest.raises(InputError, match=f"cannot write the table {target}: No such file"):
        zs.Table({"a": [1]}).to_csv(target)
    with pytest.raises(ParameterError) as e:
        zs.Table({"a": [1]}).to_csv(3)
    assert e.value.param == "path"


def test_an_unknown_or_unhashable_column_lists_the_columns():
    t = zs.Table({"arch": ["a"], "score": [0.0]})
    for name in ("nope", ["arch"]):
        with pytest.raises(UnknownNameError, match="choose from arch, score"):
            t[name]


def test_the_repr_shows_shape_names_and_the_first_rows_cut_short():
    long = "r224 s16 | " * 20
    t = zs.Table({"arch": [long] * 8, "macs": [136994400.0] * 8, "latency_ms": [0.584914375] * 8})
    lines = repr(t).splitlines()
    assert lines[0] == "Table: 8 rows x 3 columns"
    assert lines[1].split() == ["arch", "macs", "latency_ms"]
    assert len(lines) == 2 + 5 + 1 and lines[-1].strip() == "... 3 more rows"
    assert lines[2].split("  ")[1].endswith("...") and "136994400" in lines[2] and "0.584914" in lines[2]
    assert max(map(len, lines)) < 60
    assert repr(zs.Table({})) == "Table: 0 rows x 0 columns"


# ---------------------------------------------------------------- devices, screens and searches
@pytest.mark.parametrize("device", [None, 3, torch.nn.ReLU()])
def test_a_device_that_is_no_name_path_or_object_is_refused(device):
    with pytest.raises(ParameterError, match="device must be a device name"):
        zs.load_device(device)


def test_devices_and_networks_show_a_short_repr():
    assert repr(zs.load_device("mobile-npu-16")).startswith("NpuDevice('mobile-npu-16': P=16")
    mbv2 = zs.get_space("mbv2")
    text = repr(mbv2.to_ir(mbv2.sample(1, seed=0)[0]))
    assert text.startswith("Arch(") and "params" in text and len(text) < 200


def test_an_unknown_proxy_kind_lists_the_kinds():
    with pytest.raises(UnknownNameError, match="choose from network, topology"):
        zs.list_proxies("foo")


@pytest.mark.parametrize("n", [1e3, 2.5, 0])
def test_a_screen_takes_a_whole_number_of_candidates(n):
    with pytest.raises(ParameterError, match="n must be a positive number of candidates"):
        zs.screen("nb201", n=n, quiet=True)


def test_a_screen_gives_exact_counts_and_columns_even_when_nothing_is_shortlisted():
    got = zs.screen("mbv2", n=2000, survivors=0, top=3, baseline=None, min_score=None, quiet=True)
    assert got.shortlist["params"].dtype == np.int64 and got.shortlist["macs"].dtype == np.int64
    cost = zs.estimate(list(got.shortlist["arch"]), space="mbv2")
    assert list(got.shortlist["macs"]) == list(cost["macs"])
    empty = zs.screen("mbv2", n=100, survivors=0, quiet=True)       # none of 100 beats MobileNetV2
    assert len(empty.shortlist) == 0 and {"arch", "params", "latency_ms", "score"} <= set(empty.shortlist.columns)
    assert empty.shortlist.to_csv().startswith("run_id,arch,")


def test_a_search_refuses_no_space_and_a_log_that_is_not_a_function():
    with pytest.raises(ParameterError, match="space must be a space name"):
        zs.search(None, strategy="random", budget=2)
    with pytest.raises(ParameterError, match="log must be a function"):
        zs.search("nb201", strategy="random", budget=2, log=3)


def test_a_device_calibrated_on_a_space_warns_when_it_prices_other_networks():
    nb201 = zs.get_space("nb201")
    archs = nb201.sample(12, seed=0)
    device = zs.calibrate(archs, np.linspace(1.0, 3.0, 12), space="nb201")
    mbv2 = zs.get_space("mbv2")
    with pytest.warns(UserWarning, match="calibrated on nb201 architectures"):
        zs.estimate([mbv2.to_ir(mbv2.sample(1, seed=0)[0])], device=device)
