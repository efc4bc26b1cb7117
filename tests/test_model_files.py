"""Users' network files (``--model FILE.py:FUNC``): every failure is one typed line naming the file."""
import pytest

from zeroshot.errors import InputError, ParameterError
from zeroshot.model_files import load_models, parse_input_shape

NETS = """
import torch
from torch import nn

def one():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())

def two():
    return [one(), nn.Conv2d(3, 4, 1)]

def nothing():
    return 42

def broken():
    raise RuntimeError("no weights here\\nsecond line")
"""


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return str(path)


def test_one_module_or_a_list(nets):
    assert [n for n, _ in load_models(nets + ":one")] == ["one"]
    got = load_models(nets + ":two")
    assert [n for n, _ in got] == ["two[0]", "two[1]"] and type(got[1][1]).__name__ == "Conv2d"


@pytest.mark.parametrize("suffix, words", [
    (":nothing", "must return a torch.nn.Module or a non-empty list of them, got int"),
    (":broken", "failed: RuntimeError: no weights here"),
    (":missing", "has no function 'missing'; it defines broken, nothing, one, two"),
])
def test_bad_functions_are_one_line(nets, suffix, words):
    with pytest.raises(InputError) as e:
        load_models(nets + suffix)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_bad_files_and_specs(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(InputError, match="bad.py does not import: ModuleNotFoundError"):
        load_models(f"{bad}:f")
    with pytest.raises(InputError, match="no model file"):
        load_models(f"{tmp_path}/none.py:f")
    with pytest.raises(ParameterError) as e:
        load_models("nets.py")
    assert e.value.param == "model"


@pytest.mark.parametrize("text, shape", [("3,224,224", (3, 224, 224)), ("1x28x28", (1, 28, 28))])
def test_input_shapes(text, shape):
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["3,224", "a,b,c", "3,0,4", ""])
def test_bad_input_shapes(text):
    with pytest.raises(ParameterError) as e:
        parse_input_shape(text)
    assert e.value.param == "input"
