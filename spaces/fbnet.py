"""FBNet: 22 searchable layers x 9 operations = 9**22 networks on the FBNetV1 skeleton.

Encoding: the 22 operation names in layer order separated by single spaces, as in the ``op_names``
column of ``../shared/data/hw/fbnet_latency.csv`` (parsing accepts any whitespace between the names).
Codes: the 22 choices, each an index into :data:`OPS`.

Configurations (:data:`CONFIGS`): ``cifar100`` (default; HW-NAS-Bench's, on which the shared latencies
were measured: 32x32 input, stem stride 1, stage strides 1,1,2,2,1,2,1, head 1504, 100 classes) and
``imagenet`` (224x224, stem stride 2, strides 1,2,2,2,1,2,1, head 1984, 1000 classes).  Both: stem 3x3 conv
to 16 + BN + ReLU; stages of widths 16,24,32,64,112,184,352 with 1,4,4,4,4,4,1 layers, the stage stride
on its first layer; head 1x1 conv + BN + ReLU, global average pool, linear (with bias).

Block semantics, checked against HW-NAS-Bench's PyTorch model (GATECH-EIC/HW-NAS-Bench,
``hw_nas_bench_api/fbnet_models/model_infer.py``: ``ConvBlock``, ``Skip``, ``FBNet_Infer``):

- ``kK_eE[_g2]``: 1x1 expand conv to ``c_in * E`` channels (kept for E = 1; groups 2 for ``_g2``) + BN
  + ReLU; for ``_g2`` a channel shuffle with 2 groups; KxK depthwise conv (the layer's stride, padding
  K // 2) + BN + ReLU; 1x1 project conv (groups 2 for ``_g2``) + BN; residual add when the stride is 1
  and ``c_in == c_out``.  No conv has a bias.
- ``skip``: identity when the stride is 1 and ``c_in == c_out``, otherwise a 1x1 conv (the layer's
  stride, no bias) + BN + ReLU.

Deliberate differences: none in structure or parameters.  HW-NAS-Bench applies ReLU and the residual add
in place; the IR has no in-place ops, so peak activation memory counts them as new tensors.  The torch
module from :func:`zeroshot.spaces.builder.build` keeps PyTorch's default initialisation, not HW-NAS-Bench's
``init_params`` (Kaiming-normal fan-out convs, linear weights N(0, 0.001)).

Example
-------
>>> space = FbnetSpace()
>>> arch = space.sample(1, seed=0)[0]
>>> len(arch.split()), space.to_ir(arch).ops[-1].c_out
(22, 100)
>>> FbnetSpace(config="imagenet").to_ir(arch).input_shape
(3, 224, 224)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from zeroshot.errors import ParameterError

from . import register_space
from .base import EncodingError, ProductSpace
from .ir import Arch, Graph

__all__ = ["CONFIGS", "DEPTHS", "FbnetConfig", "FbnetSpace", "LAYERS", "OPS", "STEM_CHANNELS", "WIDTHS"]

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
# (kernel, expansion, groups) of each IBN operation; ``skip`` has none.
_IBN = {op: (int(op[1]), int(op[4]), 2 if op.endswith("_g2") else 1) for op in OPS if op != "skip"}

STEM_CHANNELS = 16
WIDTHS = (16, 24, 32, 64, 112, 184, 352)
DEPTHS = (1, 4, 4, 4, 4, 4, 1)
LAYERS = sum(DEPTHS)


class FbnetConfig(NamedTuple):
    resolution: int
    stem_stride: int
    strides: tuple[int, ...]
    head_channels: int
    classes: int


CONFIGS = {
    "cifar100": FbnetConfig(32, 1, (1, 1, 2, 2, 1, 2, 1), 1504, 100),
    "imagenet": FbnetConfig(224, 2, (1, 2, 2, 2, 1, 2, 1), 1984, 1000),
}


@register_space
class FbnetSpace(ProductSpace):
    """The FBNet space of HW-NAS-Bench (see the module docstring); ``config`` cifar100 or imagenet."""

    name = "fbnet"
    code_length = LAYERS

    def __init__(self, config: str = "cifar100", classes: int | None = None):
        if config not in CONFIGS:
            raise ParameterError("config", f"one of {', '.join(CONFIGS)}", config)
        self.config = config
        self.cfg = CONFIGS[config]
        self.classes = self.cfg.classes if classes is None else int(classes)
        if self.classes < 1:
            raise ParameterError("classes", "a positive count", classes)
        res = self.cfg.resolution
        self.description = (f"FBNet, {LAYERS} layers x {len(OPS)} ops (HW-NAS-Bench blocks), {config} "
                            f"config ({res}x{res} input, {self.classes} classes)")
        self.cards = np.full(LAYERS, len(OPS), dtype=np.int64)

    def parse(self, text: str) -> np.ndarray:
        names = text.split()
        if len(names) != LAYERS:
            raise EncodingError(f"expected {LAYERS} layer operations separated by spaces, got {len(names)} "
                                f"in {text.strip()!r}; each one of {', '.join(OPS)}")
        codes = np.empty(LAYERS, dtype=np.int64)
        for i, op in enumerate(names):
            if op not in _OP_INDEX:
                raise EncodingError(f"unknown operation {op!r} at layer {i + 1} of {LAYERS}; "
                                    f"choose from {', '.join(OPS)}")
            codes[i] = _OP_INDEX[op]
        return codes

    def format(self, codes) -> str:
        return " ".join(OPS[int(c)] for c in codes)

    def build_ir(self, codes) -> Arch:
        codes = [int(c) for c in codes]
        if len(codes) != LAYERS or not all(0 <= c < len(OPS) for c in codes):
            raise EncodingError(f"fbnet codes are {LAYERS} integers in 0..{len(OPS) - 1}, got {codes}")
        cfg = self.cfg
        g = Graph(3, cfg.resolution, cfg.resolution)
        t = _conv_bn_relu(g, 0, STEM_CHANNELS, 3, cfg.stem_stride)
        layer = 0
        for width, depth, stride in zip(WIDTHS, DEPTHS, cfg.strides):
            for i in range(depth):
                t = _layer(g, t, OPS[codes[layer]], width, stride if i == 0 else 1)
                layer += 1
        t = _conv_bn_relu(g, t, cfg.head_channels, 1, 1)
        return g.finish(g.classifier(t, self.classes), space=self.name)

    # Segments: the stem (key 0), layer ``i`` with op ``o`` (key 1 + 9 i + o; an identity skip has no
    # ops), the head (key 1 + 9 * 22).
    def segment_keys(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, LAYERS)
        layers = 1 + len(OPS) * np.arange(LAYERS) + codes
        n = len(codes)
        return np.hstack([np.zeros((n, 1), np.int64), layers, np.full((n, 1), 1 + len(OPS) * LAYERS)])

    def segment_ir(self, key: int) -> Arch:
        cfg, key = self.cfg, int(key)
        if key == 0:
            g = Graph(3, cfg.resolution, cfg.resolution)
            return g.finish(_conv_bn_relu(g, 0, STEM_CHANNELS, 3, cfg.stem_stride), space=self.name)
        slots = self._slots()
        if key == 1 + len(OPS) * LAYERS:
            c, h = WIDTHS[-1], slots[-1][3]
            g = Graph(c, h, h)
            return g.finish(g.classifier(_conv_bn_relu(g, 0, cfg.head_channels, 1, 1), self.classes),
                            space=self.name)
        layer, op = divmod(key - 1, len(OPS))
        c_in, c_out, stride, h = slots[layer]
        g = Graph(c_in, h, h)
        return g.finish(_layer(g, 0, OPS[op], c_out, stride), space=self.name)

    def _slots(self) -> list[tuple[int, int, int, int]]:
        """(c_in, c_out, stride, input size) of each searchable layer, and of the head last."""
        h = (self.cfg.resolution + 2 - 3) // self.cfg.stem_stride + 1
        c, out = STEM_CHANNELS, []
        for width, depth, stride in zip(WIDTHS, DEPTHS, self.cfg.strides):
            for i in range(depth):
                s = stride if i == 0 else 1
                out.append((c, width, s, h))
                c, h = width, (h + 2 * 1 - 3) // s + 1 if s > 1 else h
        out.append((c, c, 1, h))
        return out

    def __repr__(self) -> str:
        return f"FbnetSpace(config={self.config!r}, classes={self.classes})"


def _conv_bn_relu(g: Graph, x: int, c_out: int, k: int, stride: int, groups: int = 1) -> int:
    return g.act(g.bn(g.conv(x, c_out, k, stride=stride, groups=groups)), "relu")


def _layer(g: Graph, x: int, op: str, c_out: int, stride: int) -> int:
    c_in = g.shape(x)[0]
    keeps_shape = stride == 1 and c_in == c_out
    if op == "skip":
        return x if keeps_shape else _conv_bn_relu(g, x, c_out, 1, stride)
    k, e, groups = _IBN[op]
    hidden = c_in * e
    t = _conv_bn_relu(g, x, hidden, 1, 1, groups)
    if groups > 1:
        t = g.shuffle(t, groups)
    t = _conv_bn_relu(g, t, hidden, k, stride, hidden)
    t = g.bn(g.conv(t, c_out, 1, groups=groups))
    return g.add([t, x]) if keeps_shape else t
