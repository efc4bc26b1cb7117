"""Export a chosen architecture: its IR as JSON, a loadable PyTorch file, or ONNX.

The torch file holds the builder spec (the IR as JSON, the space and the encoding) and the state dict;
:func:`load_torch` rebuilds the module from it without needing the space.  ONNX needs the optional ``onnx``
extra.

Example
-------
>>> import os, tempfile
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
>>> export(space, space.sample(1)[0], "torch", path)
>>> type(load_torch(path)).__name__
'GraphNet'
"""
from __future__ import annotations

import json
import os

import torch

from zeroshot.spaces import SearchSpace
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import arch_from_dict, arch_to_dict

from .atomic import open_atomically, writing
from .checks import check_seed
from .errors import MissingExtraError, ParameterError

__all__ = ["FORMATS", "TORCH_FORMAT", "export", "load_torch"]

FORMATS = ("torch", "onnx", "json")
TORCH_FORMAT = "zeroshot-torch-1"


def export(space: SearchSpace, arch: str, fmt: str, path: str, seed: int = 0) -> None:
    """Write ``arch`` (an encoding of ``space``) to ``path`` in ``fmt``, atomically (an
    :class:`~zeroshot.errors.InputError` naming ``path`` when it cannot be written)."""
    if fmt not in FORMATS:
        raise ParameterError("format", f"one of {', '.join(FORMATS)}", fmt)
    if os.fspath(path) == "-":
        raise ParameterError("path", "a file path", "-", fix="the command line's -o - writes JSON to stdout")
    check_seed(seed)
    ir = space.to_ir(arch)
    spec = {"space": space.name, "arch": space.format(space.parse(arch)), "ir": arch_to_dict(ir)}
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise MissingExtraError("onnx", "export to ONNX") from None
    with writing(path), open_atomically(path, "w" if fmt == "json" else "wb") as f:
        _write(f, fmt, spec, ir, seed)


def _write(f, fmt: str, spec: dict, ir, seed: int) -> None:
    """The export of ``fmt`` into the open file ``f``."""
    if fmt == "json":
        json.dump(spec, f, indent=1)
        f.write("\n")
        return
    torch.manual_seed(seed)
    net = build(ir).eval()
    if fmt == "torch":
        torch.save({"format": TORCH_FORMAT, **spec, "state_dict": net.state_dict()}, f)
        return
    c, h, w = ir.input_shape
    torch.onnx.export(net, (torch.zeros(1, c, h, w),), f, dynamo=False, input_names=["input"])


def load_torch(path: str) -> torch.nn.Module:
    """The module saved by :func:`export` with ``fmt="torch"``, weights loaded, in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != TORCH_FORMAT:
        raise ValueError(f"{path} is not a zeroshot torch export (expected format {TORCH_FORMAT})")
    net = build(arch_from_dict(blob["ir"]))
    net.load_state_dict(blob["state_dict"])
    return net.eval()
