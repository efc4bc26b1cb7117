"""Every docstring example of the package runs (doctest), module by module."""
import doctest
import importlib
import pkgutil

import pytest

import zeroshot
import zeroshot.estimator
import zeroshot.spaces
from zeroshot.spaces import SPACES


def package_modules() -> list[str]:
    """Every module of the ``zeroshot`` namespace (its mapped folders walked one by one), but ``__main__``."""
    names = set()
    for package in (zeroshot, zeroshot.spaces, zeroshot.estimator):
        names.add(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            names.add(info.name)
    return sorted(n for n in names if not n.endswith("__main__"))


def test_the_walk_finds_every_part():
    names = package_modules()
    for expected in ("zeroshot.api", "zeroshot.spaces.mbv2", "zeroshot.estimator.npu", "zeroshot.proxies.network",
                     "zeroshot.commands.cmd_screen"):
        assert expected in names


@pytest.mark.parametrize("name", package_modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)                 # examples that write files write them here
    SPACES.names()                              # examples that register a space register it for themselves
    monkeypatch.setattr(SPACES, "_items", dict(SPACES._items))
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (run " \
                               f"python -m doctest -v on it to see them)"


@pytest.mark.parametrize("name", package_modules())
def test_public_names_are_documented(name):
    """Every module declares ``__all__``; every function and class in it has a docstring."""
    module = importlib.import_module(name)
    if name.startswith("zeroshot.commands") or name.rsplit(".", 1)[-1].startswith("_"):
        return          # commands document themselves through --help; compiled modules through their wrappers
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    undocumented = [n for n in module.__all__ if callable(getattr(module, n)) and not getattr(module, n).__doc__]
    assert not undocumented, f"{name}: no docstring for {', '.join(undocumented)}"
