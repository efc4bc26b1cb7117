"""Users' own networks from Python files: ``FILE.py:FUNC`` names a function returning a torch module or a
list of them (what the command line's ``--model`` takes), and ``C,H,W`` input shapes (``--input``).

Every way this can go wrong (no such file, a file that does not import, no such function, a function that
fails or returns something else) is one :class:`~zeroshot.errors.InputError` line naming the file and
the function.

Example
-------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "nets.py")
>>> _ = open(path, "w").write("import torch\\ndef tiny():\\n    return torch.nn.Conv2d(3, 8, 3)\\n")
>>> [(name, type(m).__name__) for name, m in load_models(path + ":tiny")]
[('tiny', 'Conv2d')]
>>> parse_input_shape("3,224,224")
(3, 224, 224)
"""
from __future__ import annotations

import importlib.util
import os
import sys

from .errors import InputError, ParameterError

__all__ = ["load_models", "parse_input_shape"]


def load_models(spec: str) -> list[tuple[str, object]]:
    """``(name, module)`` pairs of the networks ``FILE.py:FUNC`` returns (one module or a list of them);
    names are ``FUNC`` for one module, ``FUNC[i]`` for a list."""
    path, func = _split_spec(spec)
    module = _import_file(path)
    fn = getattr(module, func, None)
    if not callable(fn):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        raise InputError(f"{path} has no function {func!r}; it defines {', '.join(defined) or 'none'}")
    try:
        got = fn()
    except (Exception, SystemExit) as e:        # the user's code: any failure is reported as theirs, in one line
        raise InputError(f"{path}:{func}() failed: {type(e).__name__}: {_first_line(e)}") from None
    return _as_modules(got, f"{path}:{func}()", func)


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``C,H,W`` (for example ``3,224,224``) as a tuple of three positive ints."""
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ParameterError("input", "C,H,W: three positive integers like 3,224,224", text)
    return shape


def _split_spec(spec: str) -> tuple[str, str]:
    path, sep, func = str(spec).rpartition(":")
    expected = "FILE.py:FUNC, a Python file and the function in it that returns the network(s)"
    if not sep or not path or not func.isidentifier():
        raise ParameterError("model", expected, spec)
    if not path.endswith(".py"):
        raise ParameterError("model", expected, spec, fix=f"{path} is not a .py file")
    if not os.path.isfile(path):
        raise InputError(f"no model file {path}")
    return path, func


def _import_file(path: str):
    name = f"zeroshot_user_model_{abs(hash(os.path.abspath(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))      # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:        # the user's file: whatever it raises, it does not import
        raise InputError(f"{path} does not import: {type(e).__name__}: {_first_line(e)}") from None
    finally:
        sys.path.pop(0)
    return module


def _as_modules(got, where: str, func: str) -> list[tuple[str, object]]:
    import torch
    if isinstance(got, torch.nn.Module):
        return [(func, got)]
    if isinstance(got, (list, tuple)) and got and all(isinstance(m, torch.nn.Module) for m in got):
        return [(f"{func}[{i}]", m) for i, m in enumerate(got)]
    raise InputError(f"{where} must return a torch.nn.Module or a non-empty list of them, got "
                     f"{type(got).__name__}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
