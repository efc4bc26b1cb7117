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

import torch

from zeroshot.spaces import SearchSpace
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import arch_from_dict, arch_to_dict

from .errors import MissingExtraError, ParameterError

__all__ = ["FORMATS", "TORCH_FORMAT", "export", "load_torch"]

FORMATS = ("torch", "onnx", "json")
TORCH_FORMAT = "zeroshot-torch-1"


def export(space: SearchSpace, arch: str, fmt: str, path: str, seed: int = 0) -> None:
    """Write ``arch`` (an encoding of ``space``) to ``path`` in ``fmt``."""
    if fmt not in FORMATS:
        raise ParameterError("format", f"one of {', '.join(FORMATS)}", fmt)
    ir = space.to_ir(arch)
    spec = {"space": space.name, "arch": space.format(space.parse(arch)), "ir": arch_to_dict(ir)}
    if fmt == "json":
        with open(path, "w") as f:
            json.dump(spec, f, indent=1)
            f.write("\n")
        return
    torch.manual_seed(seed)
    net = build(ir).eval()
    if fmt == "torch":
        torch.save({"format": TORCH_FORMAT, **spec, "state_dict": net.state_dict()}, path)
        return
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise MissingExtraError("onnx", "export to ONNX") from None
    c, h, w = ir.input_shape
    torch.onnx.export(net, (torch.zeros(1, c, h, w),), path, dynamo=False, input_names=["input"])


def load_torch(path: str) -> torch.nn.Module:
    """The module saved by :func:`export` with ``fmt="torch"``, weights loaded, in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != TORCH_FORMAT:
        raise ValueError(f"{path} is not a zeroshot torch export (expected format {TORCH_FORMAT})")
    net = build(arch_from_dict(blob["ir"]))
    net.load_state_dict(blob["state_dict"])
    return net.eval()
