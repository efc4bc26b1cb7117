"""The architecture IR every other part consumes.

An :class:`Arch` is a list of :class:`Op` in execution order.  Tensor 0 is the network input; op ``i``
writes tensor ``i + 1`` and reads the tensors listed in ``Op.inputs``.  Every op carries its shapes, so
counts, costs and builders never need torch to infer them.

Example
-------
>>> g = Graph(3, 32, 32)
>>> t = g.conv(0, 16, k=3, stride=2)
>>> t = g.act(g.bn(t), "relu6")
>>> arch = g.finish(g.classifier(t, 10))
>>> arch.ops[0].h_out, arch.ops[-1].c_out
(16, 10)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

__all__ = ["ACT", "ACTIVATIONS", "ACT_CODES", "ADD", "AVGPOOL", "BN", "CONCAT", "CONV", "DECONV", "GAP", "IR_FORMAT",
           "KIND_NAMES", "LINEAR", "MAXPOOL", "MUL", "SHUFFLE", "TABLE_FIELDS", "TASKS", "UPSAMPLE", "UPSAMPLE_MODES",
           "ZERO", "Arch", "Graph", "Op", "OpTable", "arch_from_dict", "arch_to_dict", "to_table"]

# Op kinds.  The integer values are part of the op-table contract shared with the Cython kernels
# (ext/*.pyx): never renumber, only append.
CONV, BN, ACT, ADD, MUL, AVGPOOL, GAP, LINEAR, ZERO, UPSAMPLE, CONCAT, MAXPOOL, SHUFFLE, DECONV = range(14)
KIND_NAMES = ("conv", "bn", "act", "add", "mul", "avgpool", "gap", "linear", "zero", "upsample",
              "concat", "maxpool", "shuffle", "deconv")
ACTIVATIONS = ("relu", "relu6", "hswish", "sigmoid", "hsigmoid", "silu", "gelu", "tanh")
UPSAMPLE_MODES = ("bilinear", "nearest")
TASKS = ("classify", "detect", "segment")


@dataclass(frozen=True)
class Op:
    """One operation with its shapes.

    ``k``/``stride``/``pad`` describe convolutions and pools; ``groups`` convolutions and channel
    shuffles; ``act`` names the activation of an ``act`` op; ``flag`` is op specific (conv and deconv:
    has bias; bn: no affine parameters; avgpool: count_include_pad; upsample: scale factor).  Input and
    output tensors are ``(c, h, w)``; ``gap`` and ``linear`` output ``(c, 1, 1)``; a ``linear`` reading a
    ``(c, h, w)`` tensor flattens it (``c_in = c * h * w``).

    Geometry beyond square and symmetric: ``kw`` / ``stride_w`` are the kernel width and width stride
    when they differ from ``k`` / ``stride`` (0: the same); ``pads`` is ``(top, bottom, left, right)`` when
    the padding is not ``pad`` on every side; ``dilation`` spreads the taps of convolutions and max pools;
    ``mode`` is an upsample's interpolation (``""``: bilinear).  A ``deconv`` is a transposed convolution:
    its ``pads`` and output size follow ``torch.nn.ConvTranspose2d``.
    """

    kind: int
    inputs: tuple[int, ...]
    c_in: int
    c_out: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int
    k: int = 1
    stride: int = 1
    pad: int = 0
    groups: int = 1
    act: str = ""
    flag: int = 0
    kw: int = 0
    stride_w: int = 0
    pads: tuple[int, ...] = ()
    dilation: int = 1
    mode: str = ""

    @property
    def name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def kernel(self) -> tuple[int, int]:
        """Kernel (height, width)."""
        return self.k, self.kw or self.k

    @property
    def strides(self) -> tuple[int, int]:
        """Stride (height, width)."""
        return self.stride, self.stride_w or self.stride

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """Padding (top, bottom, left, right)."""
        return self.pads or (self.pad,) * 4

    @property
    def output_padding(self) -> tuple[int, int]:
        """A transposed convolution's output padding (height, width), recovered from its output size."""
        (kh, kw), (sh, sw), (t, _, l, _) = self.kernel, self.strides, self.padding
        return (self.h_out - ((self.h_in - 1) * sh - 2 * t + self.dilation * (kh - 1) + 1),
                self.w_out - ((self.w_in - 1) * sw - 2 * l + self.dilation * (kw - 1) + 1))

    @property
    def weights(self) -> int:
        """Weight elements of a convolution, transposed convolution or linear layer (no bias)."""
        if self.kind in (CONV, DECONV):
            kh, kw = self.kernel
            return self.c_out * (self.c_in // self.groups) * kh * kw
        return self.c_in * self.c_out if self.kind == LINEAR else 0

    @property
    def params(self) -> int:
        """Exact number of learnable parameters (BN: weight and bias unless ``flag``)."""
        if self.kind in (CONV, DECONV, LINEAR):
            return self.weights + (self.c_out if self.flag else 0)
        if self.kind == BN:
            return 0 if self.flag else 2 * self.c_out
        return 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions and linear layers (BN, activations, adds, pools: 0).

        A convolution makes ``weights`` MACs per output position (dilation spreads the taps, it adds
        none); a transposed convolution ``weights`` per *input* position (each input element is scattered
        through the whole kernel, outputs cropped by its padding included)."""
        if self.kind == CONV:
            return self.weights * self.h_out * self.w_out
        if self.kind == DECONV:
            return self.weights * self.h_in * self.w_in
        return self.weights


@dataclass(frozen=True)
class Arch:
    """A whole network: ops in execution order, the input shape, the output tensors and the task."""

    ops: tuple[Op, ...]
    input_shape: tuple[int, int, int]
    outputs: tuple[int, ...]
    task: str = "classify"
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    def tensor_shape(self, t: int) -> tuple[int, int, int]:
        if t == 0:
            return self.input_shape
        op = self.ops[t - 1]
        return op.c_out, op.h_out, op.w_out

    def __repr__(self) -> str:               # the ops themselves are in ``ops`` (thousands of characters)
        return (f"Arch({len(self.ops)} ops, input {self.input_shape}, outputs {self.outputs}, task {self.task!r}, "
                f"{self.params:,} params, {self.macs:,} MACs)")


def _conv_out(size: int, k: int, stride: int, pad: int, pad_end: int | None = None, dilation: int = 1) -> int:
    return (size + pad + (pad if pad_end is None else pad_end) - dilation * (k - 1) - 1) // stride + 1


def _geometry(k: int, stride: int, pad: int | None, kw: int, stride_w: int, pads: Sequence[int]) -> dict:
    """The geometry fields of a windowed op (square / symmetric stored the short way)."""
    if pad is None and not pads:
        pad, pw = k // 2, (kw or k) // 2
        pads = (pad, pad, pw, pw)
    pads = tuple(int(p) for p in pads) or (pad,) * 4
    return dict(k=int(k), stride=int(stride), pad=pads[0], kw=0 if kw in (0, k) else int(kw),
                stride_w=0 if stride_w in (0, stride) else int(stride_w),
                pads=() if len(set(pads)) == 1 else pads)


class Graph:
    """Incremental builder of an :class:`Arch` that infers every shape.

    Each method appends one op and returns the id of the tensor it writes.
    """

    def __init__(self, c: int, h: int, w: int):
        self.input_shape = (int(c), int(h), int(w))
        self.ops: list[Op] = []

    def shape(self, t: int) -> tuple[int, int, int]:
        if t == 0:
            return self.input_shape
        op = self.ops[t - 1]
        return op.c_out, op.h_out, op.w_out

    def _push(self, **kw) -> int:
        self.ops.append(Op(**kw))
        return len(self.ops)

    def _window(self, kind: int, x: int, c_out: int, dilation: int, **geometry) -> int:
        """A conv or pool of ``geometry`` (see :func:`_geometry`) on ``x``, its output shape inferred."""
        c, h, w = self.shape(x)
        op = Op(kind=kind, inputs=(x,), c_in=c, c_out=int(c_out), h_in=h, w_in=w, h_out=0, w_out=0,
                dilation=int(dilation), **geometry)
        (kh, kw), (sh, sw), (t, b, l, r) = op.kernel, op.strides, op.padding
        self.ops.append(replace(op, h_out=_conv_out(h, kh, sh, t, b, op.dilation),
                                w_out=_conv_out(w, kw, sw, l, r, op.dilation)))
        return len(self.ops)

    def conv(self, x: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = False,
             pad: int | None = None, *, kw: int = 0, stride_w: int = 0, pads: Sequence[int] = (),
             dilation: int = 1) -> int:
        """A convolution; ``kw``, ``stride_w``, ``pads`` (top, bottom, left, right) and ``dilation`` for
        non-square kernels or strides, asymmetric padding and dilated taps."""
        c = self.shape(x)[0]
        if c % groups or c_out % groups:
            raise ValueError(f"conv groups={groups} must divide c_in={c} and c_out={c_out}")
        return self._window(CONV, x, c_out, dilation, groups=int(groups), flag=int(bias),
                            **_geometry(k, stride, pad, kw, stride_w, pads))

    def deconv(self, x: int, c_out: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False,
               pad: int = 0, *, kw: int = 0, stride_w: int = 0, pad_w: int | None = None, dilation: int = 1,
               output_padding: tuple[int, int] = (0, 0)) -> int:
        """A transposed convolution (``torch.nn.ConvTranspose2d``'s arguments and output size)."""
        c, h, w = self.shape(x)
        if c % groups or c_out % groups:
            raise ValueError(f"deconv groups={groups} must divide c_in={c} and c_out={c_out}")
        pw = pad if pad_w is None else pad_w
        g = _geometry(k, stride, pad, kw, stride_w, (pad, pad, pw, pw))
        kh, kw = k, kw or k
        sh, sw = stride, stride_w or stride
        return self._push(kind=DECONV, inputs=(x,), c_in=c, c_out=int(c_out), h_in=h, w_in=w,
                          h_out=(h - 1) * sh - 2 * pad + dilation * (kh - 1) + output_padding[0] + 1,
                          w_out=(w - 1) * sw - 2 * pw + dilation * (kw - 1) + output_padding[1] + 1,
                          groups=int(groups), flag=int(bias), dilation=int(dilation), **g)

    def _same(self, kind: int, x: int, **kw) -> int:
        c, h, w = self.shape(x)
        return self._push(kind=kind, inputs=(x,), c_in=c, c_out=c, h_in=h, w_in=w, h_out=h, w_out=w, **kw)

    def bn(self, x: int, affine: bool = True) -> int:
        return self._same(BN, x, flag=int(not affine))

    def act(self, x: int, act: str) -> int:
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
        return self._same(ACT, x, act=act)

    def zero(self, x: int) -> int:
        """A tensor of zeros shaped like ``x`` (NAS-Bench-201's 'none' reaching a node alone)."""
        return self._same(ZERO, x)

    def add(self, xs: Sequence[int]) -> int:
        xs = tuple(xs)
        if len(xs) == 1:
            return xs[0]
        shapes = {self.shape(x) for x in xs}
        if len(shapes) != 1:
            raise ValueError(f"add needs equal shapes, got {sorted(shapes)}")
        c, h, w = shapes.pop()
        return self._push(kind=ADD, inputs=xs, c_in=c, c_out=c, h_in=h, w_in=w, h_out=h, w_out=w)

    def mul(self, x: int, gate: int) -> int:
        """``x * gate`` with ``gate`` of shape (c, 1, 1) or like ``x``."""
        c, h, w = self.shape(x)
        if self.shape(gate)[0] != c:
            raise ValueError("mul gate must have the channels of its input")
        return self._push(kind=MUL, inputs=(x, gate), c_in=c, c_out=c, h_in=h, w_in=w, h_out=h, w_out=w)

    def pool(self, x: int, k: int, stride: int, pad: int = 0, count_include_pad: bool = True,
             kind: str = "avg", *, kw: int = 0, stride_w: int = 0, pads: Sequence[int] = (),
             dilation: int = 1) -> int:
        """An average or max pool (``kw``, ``stride_w``, ``pads``, ``dilation`` as :meth:`conv`)."""
        return self._window(AVGPOOL if kind == "avg" else MAXPOOL, x, self.shape(x)[0], dilation,
                            flag=int(count_include_pad), **_geometry(k, stride, pad, kw, stride_w, pads))

    def shuffle(self, x: int, groups: int) -> int:
        """ShuffleNet channel shuffle: ``(g, c/g)`` channel order transposed to ``(c/g, g)``."""
        if self.shape(x)[0] % groups:
            raise ValueError(f"shuffle groups={groups} must divide the {self.shape(x)[0]} channels")
        return self._same(SHUFFLE, x, groups=groups)

    def gap(self, x: int) -> int:
        c, h, w = self.shape(x)
        return self._push(kind=GAP, inputs=(x,), c_in=c, c_out=c, h_in=h, w_in=w, h_out=1, w_out=1)

    def linear(self, x: int, c_out: int, bias: bool = True, flatten: bool = False) -> int:
        """A linear layer on a pooled ``(c, 1, 1)`` input, or on any input flattened when ``flatten``."""
        c, h, w = self.shape(x)
        if (h, w) != (1, 1) and not flatten:
            raise ValueError(f"linear needs a pooled (c, 1, 1) input, got {(c, h, w)}")
        return self._push(kind=LINEAR, inputs=(x,), c_in=c * h * w, c_out=int(c_out), h_in=1, w_in=1,
                          h_out=1, w_out=1, flag=int(bias))

    def upsample(self, x: int, scale: int, size: tuple[int, int] | None = None, mode: str = "") -> int:
        """Upsampling by ``scale`` (the flag), or to ``size`` (h, w) when given (dense heads matching a
        feature map whose size is not an exact multiple); ``mode``: ``""`` (bilinear) or
        :data:`UPSAMPLE_MODES`."""
        if mode and mode not in UPSAMPLE_MODES:
            raise ValueError(f"unknown upsample mode {mode!r}; choose from {', '.join(UPSAMPLE_MODES)}")
        c, h, w = self.shape(x)
        h_out, w_out = (h * scale, w * scale) if size is None else map(int, size)
        return self._push(kind=UPSAMPLE, inputs=(x,), c_in=c, c_out=c, h_in=h, w_in=w, h_out=h_out,
                          w_out=w_out, flag=int(scale), mode="" if mode == "bilinear" else mode)

    def concat(self, xs: Sequence[int]) -> int:
        xs = tuple(xs)
        hw = {self.shape(x)[1:] for x in xs}
        if len(hw) != 1:
            raise ValueError(f"concat needs equal spatial sizes, got {sorted(hw)}")
        h, w = hw.pop()
        c = sum(self.shape(x)[0] for x in xs)
        return self._push(kind=CONCAT, inputs=xs, c_in=c, c_out=c, h_in=h, w_in=w, h_out=h, w_out=w)

    def classifier(self, x: int, classes: int) -> int:
        """Global average pool and a linear layer."""
        return self.linear(self.gap(x), classes)

    def finish(self, *outputs: int, task: str = "classify", **meta) -> Arch:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        return Arch(tuple(self.ops), self.input_shape, tuple(outputs), task, meta)


# ---------------------------------------------------------------------------------------------------
# Flat op table: the C-ready form of a batch of architectures (CSR layout).

TABLE_FIELDS = ("kind", "c_in", "c_out", "h_in", "w_in", "h_out", "w_out", "k", "stride", "groups",
                "flag", "act", "src", "n_readers", "last_use", "kw")
ACT_CODES = {"": 0, "relu": 1, "relu6": 2, "hswish": 3, "sigmoid": 4, "hsigmoid": 5, "silu": 6, "gelu": 7,
             "tanh": 8}


@dataclass
class OpTable:
    """A batch of architectures as contiguous int64 columns.

    ``ptr[a]:ptr[a+1]`` are the rows of architecture ``a``; ``last_use[r]`` is the local index of the
    last op that reads row ``r``'s output (the row's own index when nothing reads it, ``n_ops`` when it
    is a network output); ``src[r]`` the local index of the op writing row ``r``'s first input (-1: the
    network input); ``n_readers[r]`` how many ops read row ``r``'s output (outputs count one more);
    ``act[r]`` the activation code of :data:`ACT_CODES`; ``kw[r]`` the kernel width (``k`` when square).
    ``in_size[a]`` / ``in_last[a]`` describe tensor 0, the network input.
    ``edges[edge_ptr[r]:edge_ptr[r+1]]`` are the local indices of the ops writing every input of row
    ``r``, in order (-1: the network input).
    """

    ptr: np.ndarray
    cols: dict
    in_size: np.ndarray
    in_last: np.ndarray
    edge_ptr: np.ndarray = None
    edges: np.ndarray = None

    def __len__(self) -> int:
        return len(self.ptr) - 1


def to_table(archs: Sequence[Arch]) -> OpTable:
    """Flatten architectures into an :class:`OpTable` (one pass, validated)."""
    n = len(archs)
    ptr = np.zeros(n + 1, dtype=np.int64)
    for a, arch in enumerate(archs):
        ptr[a + 1] = ptr[a] + len(arch.ops)
    total = int(ptr[-1])
    cols = {f: np.empty(total, dtype=np.int64) for f in TABLE_FIELDS}
    in_size = np.empty(n, dtype=np.int64)
    in_last = np.empty(n, dtype=np.int64)
    edge_ptr = np.zeros(total + 1, dtype=np.int64)
    edges = np.fromiter((t - 1 for arch in archs for op in arch.ops for t in op.inputs), dtype=np.int64)
    np.cumsum([len(op.inputs) for arch in archs for op in arch.ops], out=edge_ptr[1:])
    row = 0
    for a, arch in enumerate(archs):
        n_ops = len(arch.ops)
        last = list(range(-1, n_ops))          # last[t] for tensor t (tensor t is written by op t-1)
        readers = [0] * (n_ops + 1)
        for i, op in enumerate(arch.ops):
            for t in op.inputs:
                last[t] = i
                readers[t] += 1
        for t in arch.outputs:
            last[t] = n_ops
            readers[t] += 1
        c, h, w = arch.input_shape
        in_size[a] = c * h * w
        in_last[a] = max(last[0], 0)
        for i, op in enumerate(arch.ops):
            r = row + i
            cols["kind"][r] = op.kind
            cols["c_in"][r] = op.c_in
            cols["c_out"][r] = op.c_out
            cols["h_in"][r] = op.h_in
            cols["w_in"][r] = op.w_in
            cols["h_out"][r] = op.h_out
            cols["w_out"][r] = op.w_out
            cols["k"][r] = op.k
            cols["stride"][r] = op.stride
            cols["groups"][r] = op.groups
            cols["flag"][r] = op.flag
            cols["act"][r] = ACT_CODES[op.act]
            cols["src"][r] = op.inputs[0] - 1
            cols["n_readers"][r] = readers[i + 1]
            cols["last_use"][r] = last[i + 1]
            cols["kw"][r] = op.kw or op.k
        row += n_ops
    return OpTable(ptr, cols, in_size, in_last, edge_ptr, edges)


# ---------------------------------------------------------------------------------------------------
# JSON form of the IR (export, builder specs).

IR_FORMAT = "zeroshot-ir-1"


_OPTIONAL = {"kw": 0, "stride_w": 0, "pads": (), "dilation": 1, "mode": ""}   # written only when set


def arch_to_dict(arch: Arch) -> dict:
    """A JSON-serialisable description of ``arch`` that :func:`arch_from_dict` reads back."""
    return {"format": IR_FORMAT, "input_shape": list(arch.input_shape), "outputs": list(arch.outputs),
            "task": arch.task, "meta": dict(arch.meta),
            "ops": [dict(kind=KIND_NAMES[op.kind], inputs=list(op.inputs), c_in=op.c_in, c_out=op.c_out,
                         h_in=op.h_in, w_in=op.w_in, h_out=op.h_out, w_out=op.w_out, k=op.k, stride=op.stride,
                         pad=op.pad, groups=op.groups, act=op.act, flag=op.flag,
                         **{f: list(v) if f == "pads" else v for f, d in _OPTIONAL.items()
                            if (v := getattr(op, f)) != d}) for op in arch.ops]}


def arch_from_dict(d: dict) -> Arch:
    """The :class:`Arch` of :func:`arch_to_dict`'s output; ``ValueError`` naming the problem otherwise."""
    if d.get("format") != IR_FORMAT:
        raise ValueError(f"not a zeroshot IR (format {d.get('format')!r}, expected {IR_FORMAT!r})")
    ops = []
    for i, o in enumerate(d["ops"]):
        if o.get("kind") not in KIND_NAMES:
            raise ValueError(f"op {i}: unknown kind {o.get('kind')!r}; choose from {', '.join(KIND_NAMES)}")
        if any(not 0 <= t <= i for t in o["inputs"]):
            raise ValueError(f"op {i} reads a tensor that is not written before it: {o['inputs']}")
        ops.append(Op(**{**o, "kind": KIND_NAMES.index(o["kind"]), "inputs": tuple(o["inputs"]),
                         "pads": tuple(o.get("pads", ()))}))
    return Arch(tuple(ops), tuple(d["input_shape"]), tuple(d["outputs"]), d.get("task", "classify"),
                d.get("meta", {}))
