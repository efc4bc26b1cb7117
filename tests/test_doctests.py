"""Every docstring example of the package runs (doctest), module by module."""
import doctest
import importlib
import pkgutil

import pytest

import zeroshot
import zeroshot.estimator
import zeroshot.spaces


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
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (run " \
                               f"python -m doctest -v on it to see them)"
