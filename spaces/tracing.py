"""torch.nn.Module -> IR :class:`~zeroshot.spaces.ir.Arch`: any supported network, counted exactly.

:func:`from_torch` traces the module with ``torch.fx`` and runs the traced graph once on zeros of the input
shape, turning every node into IR ops as it goes (the shapes come from the run, and every op's shape is
checked against torch's).  Supported: ``Conv2d`` (any kernel, stride, padding including ``"same"``,
dilation, groups, bias), ``ConvTranspose2d``, ``BatchNorm2d``, ``Linear``, ReLU / ReLU6 / SiLU / Hardswish
/ Hardsigmoid / Sigmoid / GELU / Tanh (modules, functions or tensor methods, in place or not), max / average
/ adaptive average pooling (adaptive: global, or output sizes that divide the input), ``+`` / ``-`` /
``*`` between feature maps (squeeze-excite gates broadcast over H, W), ``cat`` over channels, flatten /
view / reshape before a linear layer, mean over H, W, ``interpolate`` / ``Upsample`` (nearest, bilinear),
explicit padding (``F.pad``, ``ZeroPad2d``) read by a conv or pool (it becomes theirs), and, at no cost, dropout, identity, layout changes and arithmetic with a Python number (``x + 3``,
``x / 6``: folded into the neighbouring op).  Anything else raises
:class:`~zeroshot.errors.UnsupportedLayerError` naming the layer's path and type.

Counting conventions (those of :class:`~zeroshot.spaces.ir.Op`): parameters are ``sum(p.numel())`` of the
modules called (a module called twice counts twice); MACs are those of convolutions (per output position,
dilation adds none), transposed convolutions (per input position) and linear layers.

Example
-------
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.Hardswish(),
...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> arch = from_torch(net, input_shape=(3, 32, 32))
>>> [op.name for op in arch.ops]
['conv', 'bn', 'act', 'gap', 'linear']
>>> arch.params == sum(p.numel() for p in net.parameters()), arch.macs
(True, 48680)
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import fx, nn
from torch.fx.operator_schemas import normalize_function
from torch.nn import functional as F

from zeroshot.errors import InputError, ParameterError, UnsupportedLayerError

from .base import MAX_RESOLUTION
from .ir import UPSAMPLE_MODES, Arch, Graph

__all__ = ["from_torch"]


@dataclass(frozen=True)
class _View:
    """IR tensor ``t`` seen through a reshape (flattened features, permuted layouts)."""

    t: int


@dataclass(frozen=True)
class _Pad:
    """IR tensor ``t`` behind an explicit padding ``(top, bottom, left, right)``: the conv or pool that
    reads it takes the padding as its own."""

    t: int
    pads: tuple[int, int, int, int]


@dataclass(frozen=True)
class _Bundle:
    """Reshaped IR tensors concatenated together (a detection head's outputs): valid only as an output."""

    ts: tuple[int, ...]


_ACT_MODULES = ((nn.ReLU6, "relu6"), (nn.ReLU, "relu"), (nn.SiLU, "silu"), (nn.Hardswish, "hswish"),
                (nn.Hardsigmoid, "hsigmoid"), (nn.Sigmoid, "sigmoid"), (nn.GELU, "gelu"), (nn.Tanh, "tanh"))
_ACT_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.relu_: "relu", torch.relu_: "relu", F.relu6: "relu6",
                  F.silu: "silu", F.hardswish: "hswish", F.hardsigmoid: "hsigmoid", torch.sigmoid: "sigmoid",
                  F.sigmoid: "sigmoid", F.gelu: "gelu", torch.tanh: "tanh", F.tanh: "tanh"}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
                "tanh": "tanh", "tanh_": "tanh"}
_BINARY = {operator.add: "add", operator.iadd: "add", torch.add: "add", "add": "add", "add_": "add",
           operator.sub: "sub", operator.isub: "sub", torch.sub: "sub", "sub": "sub", "sub_": "sub",
           operator.mul: "mul", operator.imul: "mul", torch.mul: "mul", "mul": "mul", "mul_": "mul",
           operator.truediv: "div", operator.itruediv: "div", torch.div: "div", "div": "div", "div_": "div"}
_IN_PLACE = {operator.iadd, operator.isub, operator.imul, operator.itruediv}
_LAYOUT = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute, torch.transpose,
           "flatten", "view", "reshape", "squeeze", "unsqueeze", "permute", "transpose", "contiguous",
           "view_as", "reshape_as"}
_REORDER = {torch.permute, torch.transpose, "permute", "transpose"}
_FREE = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout)
_FREE_FUNCTIONS = {F.dropout, F.dropout2d, F.alpha_dropout, "clone", "detach", "float"}
#: what a refused layer's error adds: where the supported ones are listed
SUPPORTED = "use the layers and functions docs/spaces.md lists under 'Your own network'"
_POOL_FUNCTIONS = {F.max_pool2d: "max", F.avg_pool2d: "avg"}
_ADAPTIVE_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_ADAPTIVE = {nn.AdaptiveAvgPool2d: "avg", nn.AdaptiveMaxPool2d: "max", F.adaptive_avg_pool2d: "avg",
             F.adaptive_max_pool2d: "max"}
_MODULES = (*(cls for cls, _ in _ACT_MODULES), *_FREE, *_ADAPTIVE_MODULES, nn.Conv2d, nn.ConvTranspose2d,
            nn.BatchNorm2d, nn.BatchNorm1d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Unflatten,
            nn.Upsample, nn.ConstantPad2d)


def from_torch(module: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> Arch:
    """The IR :class:`~zeroshot.spaces.ir.Arch` of ``module`` on inputs of ``input_shape`` (C, H, W).

    Raises :class:`~zeroshot.errors.UnsupportedLayerError` for a layer the IR cannot describe exactly
    and :class:`~zeroshot.errors.ParameterError` for an input shape the model rejects (torch's complaint
    in one line).  Several outputs (a tuple, list or dict) make a ``detect`` network, one spatial output a
    ``segment`` one, otherwise ``classify``.  A supported layer alone is a one-layer network.

    >>> from_torch(nn.Conv2d(3, 8, (1, 3), stride=(1, 2)), (3, 8, 8)).ops[0].kernel
    (1, 3)
    """
    if not isinstance(module, nn.Module):
        raise ParameterError("module", "a torch.nn.Module", type(module).__name__)
    shape = _input_shape(input_shape)
    x = _zeros(module, shape)
    # a supported layer alone is traced as a network of that one layer (fx would trace its forward's calls)
    net = nn.Sequential(module) if isinstance(module, _MODULES) else module
    training = {m: m.training for m in net.modules()}
    net.eval()
    try:
        with torch.no_grad():
            gm = _trace(net)
            _check_modules(gm)
            _probe(module, x, shape)
            return _Converter(gm, shape, type(module).__name__).convert(x)
    finally:
        for m, mode in training.items():
            m.training = mode


def _input_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if (len(shape) != 3 or min(shape) < 1 or any(v != s for v, s in zip(input_shape, shape))
            or max(shape[1:]) > MAX_RESOLUTION):
        raise ParameterError("input_shape", f"three positive integers (C, H, W), H and W at most {MAX_RESOLUTION}", input_shape)
    return shape


def _zeros(module: nn.Module, shape: tuple[int, int, int]) -> torch.Tensor:
    """Zeros of ``shape`` (batch 1) on the module's device, in its floating dtype."""
    p = next((p for p in module.parameters() if p.is_floating_point()), None)
    return torch.zeros(1, *shape) if p is None else torch.zeros(1, *shape, dtype=p.dtype, device=p.device)


def _probe(module: nn.Module, x: torch.Tensor, shape: tuple[int, int, int]) -> None:
    """Run the model once: an input shape it rejects is the user's error, worded as torch's in one line."""
    try:
        module(x)
    except Exception as e:          # whatever the user's model raises on this shape
        why = " ".join(str(e).split()) or type(e).__name__
        raise ParameterError("input_shape", f"a shape {type(module).__name__} accepts", shape,
                             f"torch says: {why[:300]}") from None


class _Tracer(fx.Tracer):
    """torch.nn layers are leaves, and so are user subclasses of the supported ones (a ``Conv2d`` computing
    its own "same" padding is counted from its weights and torch's output shape)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _MODULES) or super().is_leaf_module(m, qualname)


def _trace(module: nn.Module) -> fx.GraphModule:
    """The fx graph of ``module`` (torch.nn layers are leaves), or one line saying why it cannot be traced."""
    try:
        return fx.GraphModule(module, _Tracer().trace(module))
    except Exception as e:          # fx's complaint about the user's forward (control flow on values ...)
        why = " ".join(str(e).split())[:300]
        raise InputError(f"{type(module).__name__} cannot be traced by torch.fx ({type(e).__name__}: {why}); "
                         "from_torch needs a forward without Python control flow on tensors (on their values or "
                         "shapes)") from None


def _check_modules(gm: fx.GraphModule) -> None:
    """Unsupported layers first (before running the model, which they may break)."""
    modules = dict(gm.named_modules())
    for n in gm.graph.nodes:
        if n.op == "call_module" and not isinstance(modules[n.target], _MODULES):
            raise UnsupportedLayerError(n.target, type(modules[n.target]).__name__, fix=SUPPORTED)


def _where(n: fx.Node, kind: str, fix: str | None = None) -> UnsupportedLayerError:
    """The error for node ``n``: the module path that calls it, ``kind`` and what to do instead."""
    stack = n.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else "forward"
    return UnsupportedLayerError(path, kind, fix=fix)


def _name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


class _Converter(fx.Interpreter):
    """Runs the traced graph on real tensors and appends the IR op(s) of every node to a :class:`Graph`."""

    def __init__(self, gm: fx.GraphModule, shape: tuple[int, int, int], model: str):
        super().__init__(gm)
        self.model = model
        self.modules = dict(gm.named_modules())
        self.g = Graph(*shape)
        self.ir: dict[fx.Node, object] = {}

    def convert(self, x: torch.Tensor) -> Arch:
        """Run every node in order (not ``Interpreter.run``, which adds the node to any error's text)."""
        self.args_iter, self.env = iter([x]), {}
        for n in self.graph.nodes:
            self.env[n] = self.run_node(n)
        return self.arch

    def run_node(self, n: fx.Node):
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            out = getattr(self, n.op)(n.target, args, kwargs)
        if n.op == "placeholder":
            self.ir[n] = 0 if not self.ir else None
        elif n.op == "output":
            self._finish(n)
        elif n.target is operator.getitem:
            self.ir[n] = self._getitem(n, out)
        elif n.op == "get_attr" or not _is_tensor(out):
            self.ir[n] = None
        else:
            self.ir[n] = self._op(n, args, kwargs, out)
            self._check(n, self.ir[n], out)
        return out

    def _getitem(self, n: fx.Node, out):
        """An item of a sequence of IR values (a submodule returning a tuple); slicing a feature map is
        not supported."""
        src, i = self.value(n.args[0]), n.args[1]
        if isinstance(src, (tuple, list)) and isinstance(i, int):
            return src[i]
        if src is not None and isinstance(out, torch.Tensor):
            raise _where(n, "tensor indexing or slicing",
                         "broadcast a gate with .view(N, C, 1, 1) or .unsqueeze(-1) instead of [:, :, None, None]; "
                         "slices and channel splits of feature maps have no IR op")
        return None

    # -- values ---------------------------------------------------------------------------------------
    def value(self, a):
        """The IR value of an argument: a tensor id, a :class:`_View`, a :class:`_Bundle`, a sequence of
        them, or ``None`` (constants, sizes, parameters: not computed from the input)."""
        if isinstance(a, fx.Node):
            return self.ir[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self.value(v) for v in a)
        return None

    def tensor(self, n: fx.Node, a, kind: str) -> int:
        """The IR tensor of a feature-map argument ``a`` of node ``n`` (``kind`` names ``n`` in errors)."""
        v = self.value(a)
        if isinstance(v, int):
            return v
        why = ("on a reshaped tensor" if isinstance(v, (_View, _Bundle)) else
               "on an explicitly padded tensor (only a conv or pool may read one)" if isinstance(v, _Pad) else
               "on a tensor not computed from the input")
        raise UnsupportedLayerError(_where(n, kind).path, kind, f" {why}")

    def padded(self, n: fx.Node, a, kind: str, pads: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """The IR tensor a conv or pool reads and its padding ``pads`` plus any explicit one before it."""
        v = self.value(a)
        if isinstance(v, _Pad):
            return v.t, tuple(p + q for p, q in zip(pads, v.pads))
        return self.tensor(n, a, kind), pads

    def _pad(self, n: fx.Node, pad: Sequence[int]) -> _Pad:
        """``F.pad`` / ``nn.ZeroPad2d`` / ``nn.ConstantPad2d``: (left, right, top, bottom), non-negative."""
        x = self.value(n.args[0])
        base = x if isinstance(x, _Pad) else _Pad(self.tensor(n, n.args[0], "pad"), (0, 0, 0, 0))
        if len(pad) != 4 or min(pad) < 0:
            raise _where(n, f"pad {tuple(pad)} (only H, W padding, no cropping)")
        left, right, top, bottom = pad
        return _Pad(base.t, tuple(p + q for p, q in zip(base.pads, (top, bottom, left, right))))

    def _check(self, n: fx.Node, v, out: torch.Tensor) -> None:
        """Every op's IR shape must be torch's (no silent wrong count)."""
        t = v.t if isinstance(v, _View) else v
        if not isinstance(t, int):
            return
        c, h, w = self.g.shape(t)
        if (out.numel() != c * h * w) or (isinstance(v, int) and tuple(out.shape[1:]) != (c, h, w)):
            err = _where(n, self._kind(n))
            raise UnsupportedLayerError(err.path, err.kind, f": torch gives {tuple(out.shape[1:])}, the IR "
                                        f"{(c, h, w)}")

    def _kind(self, n: fx.Node) -> str:
        return type(self.modules[n.target]).__name__ if n.op == "call_module" else _name(n.target)

    # -- nodes ----------------------------------------------------------------------------------------
    def _op(self, n: fx.Node, args, kwargs, out: torch.Tensor):
        if n.op == "call_module":
            v = self._module(n, self.modules[n.target], out)
        else:
            v = self._function(n, n.target, args, kwargs, out)
        if n.args and (kwargs.get("inplace") or getattr(self.modules.get(n.target), "inplace", False)
                       or n.target in _IN_PLACE or (n.op == "call_method" and n.target.endswith("_"))):
            if isinstance(n.args[0], fx.Node):
                self.ir[n.args[0]] = v          # later readers of the argument see the op's result
        return v

    def _module(self, n: fx.Node, m: nn.Module, out: torch.Tensor):
        g, x = self.g, n.args[0]
        act = next((name for cls, name in _ACT_MODULES if isinstance(m, cls)), None)
        if act:
            return self._unary(n, x, lambda t: g.act(t, act))
        if isinstance(m, _FREE):
            return self.value(x)
        if isinstance(m, nn.Conv2d):
            return self._conv(n, m, out)
        if isinstance(m, nn.ConvTranspose2d):
            return self._deconv(n, m, out)
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            return self._unary(n, x, lambda t: g.bn(t, affine=m.affine))
        if isinstance(m, nn.Linear):
            return self._linear(n, m, out)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return self._pool(n, "max" if isinstance(m, nn.MaxPool2d) else "avg", vars(m), out)
        if type(m) in _ADAPTIVE:
            return self._adaptive(n, _ADAPTIVE[type(m)], out)
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            return self._layout(n, x, out, reorder=False)
        if isinstance(m, nn.Upsample):
            return self._upsample(n, m.mode, out)
        if isinstance(m, nn.ConstantPad2d):
            return self._pad(n, m.padding)
        raise UnsupportedLayerError(n.target, type(m).__name__, fix=SUPPORTED)

    def _function(self, n: fx.Node, fn, args, kwargs, out: torch.Tensor):
        g = self.g
        if fn in _ACT_FUNCTIONS or fn in _ACT_METHODS:
            act = _ACT_FUNCTIONS.get(fn) or _ACT_METHODS[fn]
            return self._unary(n, n.args[0], lambda t: g.act(t, act))
        if fn in _FREE_FUNCTIONS:
            return self.value(n.args[0])
        if fn in _BINARY:
            return self._binary(n, _BINARY[fn], args, kwargs)
        if fn in _LAYOUT:
            return self._layout(n, n.args[0], out, reorder=fn in _REORDER)
        if fn in (torch.cat, torch.concat):
            return self._cat(n, _kwargs(fn, args, kwargs).get("dim", 0), out)
        if fn in (torch.mean, "mean"):
            return self._mean(n, out)
        if fn in _POOL_FUNCTIONS:
            return self._pool(n, _POOL_FUNCTIONS[fn], _kwargs(fn, args, kwargs), out)
        if fn in _ADAPTIVE:
            return self._adaptive(n, _ADAPTIVE[fn], out)
        if fn is F.pad:
            return self._pad(n, _kwargs(fn, args, kwargs)["pad"])
        if fn is F.interpolate:
            return self._upsample(n, _kwargs(fn, args, kwargs)["mode"], out)
        raise _where(n, _name(fn), SUPPORTED)

    # -- op families ----------------------------------------------------------------------------------
    def _unary(self, n: fx.Node, a, make):
        """An elementwise op on a feature map or on a view of one (the view is kept)."""
        v = self.value(a)
        if isinstance(v, _View):
            return _View(make(v.t))
        return make(self.tensor(n, a, self._kind(n)))

    def _conv(self, n: fx.Node, m: nn.Conv2d, out: torch.Tensor) -> int:
        (kh, kw), (sh, sw), dilation = m.kernel_size, m.stride, _square(n, "Conv2d", m.dilation)
        x, pads = self.padded(n, n.args[0], "Conv2d", _pads(m.padding, (kh, kw), m.dilation))
        pads = _ceil_pads(self.g.shape(x), out, (kh, kw), (sh, sw), pads, dilation)
        return self.g.conv(x, m.out_channels, kh, sh, m.groups, m.bias is not None, kw=kw, stride_w=sw,
                           pads=pads, dilation=dilation)

    def _deconv(self, n: fx.Node, m: nn.ConvTranspose2d, out: torch.Tensor) -> int:
        x = self.tensor(n, n.args[0], "ConvTranspose2d")
        (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
        d = _square(n, "ConvTranspose2d", m.dilation)
        _, h, w = self.g.shape(x)
        extra = (out.shape[2] - ((h - 1) * sh - 2 * ph + d * (kh - 1) + 1),
                 out.shape[3] - ((w - 1) * sw - 2 * pw + d * (kw - 1) + 1))
        return self.g.deconv(x, m.out_channels, kh, sh, m.groups, m.bias is not None, ph, kw=kw, stride_w=sw,
                             pad_w=pw, dilation=d, output_padding=extra)

    def _linear(self, n: fx.Node, m: nn.Linear, out: torch.Tensor) -> _View:
        v = self.value(n.args[0])
        if not isinstance(v, _View) or out.dim() != 2:
            raise UnsupportedLayerError(n.target, "Linear", " on a tensor that is not flattened (N, features)")
        return _View(self.g.linear(v.t, m.out_features, m.bias is not None, flatten=True))

    def _pool(self, n: fx.Node, kind: str, spec: dict, out: torch.Tensor) -> int:
        name = f"{kind}_pool2d"
        if spec.get("return_indices") or spec.get("divisor_override"):
            raise _where(n, f"{name} with return_indices or divisor_override")
        k = _pair(spec["kernel_size"])
        s = _pair(spec.get("stride") or spec["kernel_size"])
        d = _square(n, name, _pair(spec.get("dilation", 1)))
        p = _pair(spec.get("padding", 0))
        x, pads = self.padded(n, n.args[0], name, (p[0], p[0], p[1], p[1]))
        pads = _ceil_pads(self.g.shape(x), out, k, s, pads, d)
        return self.g.pool(x, k[0], s[0], count_include_pad=spec.get("count_include_pad", True), kind=kind,
                           kw=k[1], stride_w=s[1], pads=pads, dilation=d)

    def _adaptive(self, n: fx.Node, kind: str, out: torch.Tensor) -> int:
        x = self.tensor(n, n.args[0], f"adaptive_{kind}_pool2d")
        _, h, w = self.g.shape(x)
        ho, wo = out.shape[2:]
        if kind == "avg" and (ho, wo) == (1, 1):
            return self.g.gap(x)
        if h % ho or w % wo:
            raise _where(n, f"adaptive_{kind}_pool2d to {ho}x{wo} of {h}x{w}")
        return self.g.pool(x, h // ho, h // ho, kind=kind, kw=w // wo, stride_w=w // wo)

    def _upsample(self, n: fx.Node, mode: str, out: torch.Tensor) -> int:
        x = self.tensor(n, n.args[0], "interpolate")
        if mode not in UPSAMPLE_MODES:
            raise _where(n, f"interpolate mode {mode!r}")
        h = self.g.shape(x)[1]
        return self.g.upsample(x, max(1, round(out.shape[2] / h)), size=out.shape[2:], mode=mode)

    def _binary(self, n: fx.Node, op: str, args, kwargs):
        """``a (+ - * /) b``: free with a number, an add or a gate between feature maps (or their views)."""
        a, b = n.args[:2] if len(n.args) > 1 else (n.args[0], n.kwargs["other"])
        real = args[:2] if len(args) > 1 else (args[0], kwargs["other"])
        if not isinstance(real[0], torch.Tensor):
            return self.value(b)                                     # with a Python number: folded
        if not isinstance(real[1], torch.Tensor):
            return self.value(a)
        va, vb = self.value(a), self.value(b)
        if op == "div" or None in (va, vb):
            raise (_where(n, f"{op} of two tensors") if op == "div" else
                   _where(n, f"{op} with a constant tensor", "normalise inputs outside the model (a constant "
                          "tensor, such as a mean / std buffer, has no IR op)"))
        if isinstance(va, _View) and isinstance(vb, _View):
            return _View(self._merge(n, op, va.t, vb.t))
        return self._merge(n, op, self.tensor(n, a, op), self.tensor(n, b, op))

    def _merge(self, n: fx.Node, op: str, a: int, b: int) -> int:
        sa, sb = self.g.shape(a), self.g.shape(b)
        if op == "mul" and sa != sb and sa[1:] == (1, 1):
            a, b, sa, sb = b, a, sb, sa                      # the gate second
        if sa == sb:
            return self.g.mul(a, b) if op == "mul" else self.g.add([a, b])
        if op == "mul" and sb == (sa[0], 1, 1):
            return self.g.mul(a, b)
        raise _where(n, f"{op} broadcasting {sa} with {sb}")

    def _layout(self, n: fx.Node, a, out: torch.Tensor, reorder: bool):
        """Reshapes: back to the IR tensor when torch's shape is its own, else a :class:`_View` of it."""
        v = self.value(a)
        if isinstance(v, _Bundle) or v is None:
            return v
        t = v.t if isinstance(v, _View) else self.tensor(n, a, _name(n.target))
        return t if not reorder and tuple(out.shape) == (1, *self.g.shape(t)) else _View(t)

    def _cat(self, n: fx.Node, dim: int, out: torch.Tensor):
        parts = self.value(n.args[0] if n.args else n.kwargs["tensors"])
        if all(isinstance(p, int) for p in parts) and dim in (1, -3) and out.dim() == 4:
            return self.g.concat(parts)
        if all(isinstance(p, _View) and self.g.shape(p.t)[1:] == (1, 1) for p in parts) and dim in (1, -1):
            return _View(self.g.concat([p.t for p in parts]))
        if None in parts:
            raise _where(n, "cat with a constant tensor")
        return _Bundle(tuple(t for p in parts for t in _ids(p)))

    def _mean(self, n: fx.Node, out: torch.Tensor):
        x = self.tensor(n, n.args[0], "mean")
        dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
        dims = {d % 4 for d in ((dims,) if isinstance(dims, int) else dims or ())}
        if dims != {2, 3}:
            raise _where(n, "mean over dimensions other than H, W")
        t = self.g.gap(x)
        return t if out.dim() == 4 else _View(t)

    def _finish(self, n: fx.Node) -> None:
        outputs = tuple(_ids(self.value(_flat_outputs(n.args[0]))))
        if not outputs:
            raise InputError("the model returns no tensor computed from its input")
        shape = self.g.shape(outputs[0])
        task = "detect" if len(outputs) > 1 else "segment" if shape[1:] != (1, 1) else "classify"
        self.arch = self.g.finish(*outputs, task=task, source="torch",
                                  model=self.model)


def _is_tensor(out) -> bool:
    return isinstance(out, torch.Tensor) or (isinstance(out, (tuple, list)) and out
                                             and all(isinstance(o, torch.Tensor) for o in out))


def _ids(v):
    """The IR tensor ids of an output value, in order."""
    if isinstance(v, int):
        yield v
    elif isinstance(v, _View):
        yield v.t
    elif isinstance(v, _Bundle):
        yield from v.ts
    elif isinstance(v, (tuple, list)):
        for p in v:
            yield from _ids(p)


def _flat_outputs(out):
    """A model's output structure (tensors, tuples, lists, dicts) as one flat list."""
    if isinstance(out, dict):
        return [o for v in out.values() for o in _flat_outputs(v)]
    if isinstance(out, (tuple, list)):
        return [o for v in out for o in _flat_outputs(v)]
    return [out]


def _kwargs(fn, args, kwargs) -> dict:
    """Every argument of a torch function call by name (defaults filled in)."""
    return normalize_function(fn, tuple(args), kwargs, normalize_to_only_use_kwargs=True).kwargs


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _square(n: fx.Node, kind: str, dilation) -> int:
    dh, dw = _pair(dilation)
    if dh != dw:
        raise _where(n, f"{kind} with dilation {dh}x{dw}")
    return dh


def _pads(padding, kernel: tuple[int, int], dilation) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a conv's ``padding``: numbers, pairs, ``"valid"`` or ``"same"``
    (torch puts the odd element of an even total at the bottom / right)."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        th, tw = ((k - 1) * d for k, d in zip(kernel, _pair(dilation)))
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(padding)
    return ph, ph, pw, pw


def _ceil_pads(shape, out: torch.Tensor, kernel, stride, pads, dilation: int) -> tuple[int, int, int, int]:
    """``pads`` grown at the bottom / right when torch's output is larger (pools with ``ceil_mode``)."""
    t, b, l, r = pads
    need = [(o - 1) * s + dilation * (k - 1) + 1 - (size + p0 + p1)
            for o, s, k, size, p0, p1 in zip(out.shape[2:], stride, kernel, shape[1:], (t, l), (b, r))]
    return t, b + max(0, need[0]), l, r + max(0, need[1])
