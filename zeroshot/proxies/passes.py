"""Shared-pass engine of the network proxies: every requested proxy from as few passes as possible.

Passes (each runs only when a requested proxy needs it; ``B`` is the batch size):

* **batch pass**: one forward of the real batch in train mode, default init.  While it runs, the codes
  of every live activation's input (``> 0``) are bit-packed: their Hamming Gram matrix (naswot) and the
  per-unit patterns of the first 16 samples (swap).  Backwards on the same graph:

  The same forward also feeds meco_batch (a few channels of every live conv / BN / activation / pool
  output, correlated over the positions of every image) and swap_layers (swap's patterns counted per layer).

  - cross-entropy: one backward (``autograd.grad``) -> grad_norm, snip, fisher (tensor hooks on conv and
    linear outputs) and zico (the two half-batch gradients are split from the per-sample contributions
    of that backward);
  - all-ones cotangent on the logits: the input Jacobian (jacob_cov) and, from the same backward, the
    per-sample gradients of every conv / linear weight (ntk; only their Gram is formed).

* **grasp**: on the first :data:`GRASP_BATCH` = 16 images of a larger batch, passes of its own: a no-grad
  forward that freezes the activations' kinks, then two forward+backward passes at the weights scaled by
  ``1 +- 1e-2`` (:func:`_grasp_central`, a central difference of gradients instead of the reference's
  double backward; at batch 64 about 0.6 of a forward+backward of the batch).  With 16 images or fewer
  it shares the batch pass's gradients and kinks and adds one forward+backward at the weights scaled by
  ``1 + 1e-2`` (:func:`_grasp_fd`, a forward difference).
* **synflow**: float64 copy, BN removed, ``|W|``, an all-ones input of batch 1.
* **zen**: the network re-initialised with N(0, 1) weights, two no-grad forwards of a Gaussian batch of
  16 (``x``, ``x + 0.01 e``).
* **meco** (and meco_full): one no-grad forward of one Gaussian image through the default-init network
  (a BN over 1x1 maps, one value per channel, normalises with its initial running statistics).
* **linear_regions**: a thin copy (channels / 8) on 1,000 random small crops of the batch, no grad.

Deliberate differences from the reference implementations (one network, one batch, shared passes):
zico's two batches are the two halves of one forward and backward (BN statistics over the whole batch);
ntk's per-sample gradients come from one backward and so treat BN's batch statistics as constants (the
reference runs one backward per sample, which also differentiates through the statistics); zen uses
each BN's batch variance (running variance with momentum 1) and keeps residual links; meco looks at the
outputs of the live conv / BN / activation / pool ops; grasp reads at most 16 images (its BN statistics
are those of the 16) and its Hessian product is a finite difference (float32; against the exact double
backward on the same images: benchmarks/results/proxies_naslib.md).  On 150 NB201 development cells
at batch 64 (none of them benchmark cells; a one-off check), grasp on 16 images ranked the cells like the
exact grasp on all 64 with Spearman 0.769 (two weight seeds of grasp itself agree at 0.462,
benchmarks/results/proxies_seed_noise.md) and like the exact product on its 16 images with 1.000 (on
200 NASLib cells, benchmarks/results/proxies_naslib.md: 0.985); its
Spearman against validation accuracy was 0.346, the exact grasp's on all 64 images 0.339.

The network is built once: the batch pass and grasp leave its weights as they came, meco reads it, zen
re-initialises it last.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import ACT, BN, CONV, DECONV, GAP, LINEAR, MAXPOOL, Arch, Op

from .compiled import count_distinct_rows, eigvalsh, hamming_gram, logdet, pack_signs
from .structure import init_network, live_ops, thin_arch, weighted_layer

__all__ = ["BATCH_PROXIES", "FD_STEP", "Frozen", "GRASP_BATCH", "JACOB_K", "LABEL_PROXIES", "LR_DIVISOR",
           "LR_SAMPLES", "MECO_CHANNELS", "MECO_POSITIONS", "SHIFT_PIXELS", "SWAP_SAMPLES", "ZEN_BATCH", "ZEN_EPS",
           "batch_pass", "grasp_exact", "jacob_cov_score", "linear_regions", "meco", "meco_layer", "meco_leaves",
           "network", "stream_seed", "synflow", "zen", "zico_score"]

LABEL_PROXIES = frozenset({"grad_norm", "snip", "grasp", "fisher", "zico"})
BATCH_PROXIES = LABEL_PROXIES | {"naswot", "swap", "swap_layers", "meco_batch", "jacob_cov", "ntk"}
SWAP_SAMPLES = 16
MECO_CHANNELS = 8       # meco_batch: channels per layer (MeCo_opt's n = 8), evenly spaced
MECO_POSITIONS = 4096   # meco_batch: at most this many positions (image x pixel) per layer, evenly strided
GRASP_BATCH = 16        # grasp reads the first 16 images of the batch (see the module docstring)
JACOB_K = 1e-5
ZEN_EPS = 0.01
ZEN_BATCH = 16          # Zen-NAS's default batch size
LR_SAMPLES = 1000
LR_DIVISOR = 8
SHIFT_PIXELS = 64      # per-sample conv gradients: one product per kernel offset up to this many pixels
FD_STEP = 1e-2         # grasp: relative step of the finite difference (see _grasp_fd)


def stream_seed(seed: int, stream: str) -> int:
    """Seed of one named random stream (inputs, crops, labels) derived from the user's seed."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{stream}".encode(), digest_size=7).digest(), "little")


def _gen(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream))


def network(arch: Arch, seed: int) -> nn.Module:
    """``arch`` built with the default init from ``seed`` (canonical op seeds), in train mode."""
    net = build(arch)
    init_network(net, arch, seed)
    return net.train()


def _weight_ops(arch: Arch, live: np.ndarray) -> list[int]:
    """The live convs, transposed convs and linear layers: the ops whose weights proxies score."""
    return [i for i, op in enumerate(arch.ops) if live[i] and op.kind in (CONV, DECONV, LINEAR)]


def _weights(net: nn.Module, ops: list[int]) -> list[torch.Tensor]:
    """The weight tensors of ``net``'s ops ``ops`` (behind an asymmetric op's padding too)."""
    return [weighted_layer(net.layers[i]).weight for i in ops]


def _logits(out):
    """A classifier's output as (N, classes): a network ending in a global pool without a linear layer
    (a trailing flatten) builds to (N, C, 1, 1); other outputs (a tuple of a detector's) as they are."""
    return out.flatten(1) if torch.is_tensor(out) and out.dim() == 4 and out.shape[2:] == (1, 1) else out


def batch_pass(arch: Arch, net: nn.Module, want: set, x: torch.Tensor, y: torch.Tensor | None) -> dict:
    """The proxies of :data:`BATCH_PROXIES` in ``want``, from one forward of ``x`` through ``net`` (default
    init, train mode; its weights are left as they came) and its backwards; grasp from its own passes
    over the first :data:`GRASP_BATCH` images."""
    want = set(want) & BATCH_PROXIES
    if "grasp" in want and x.shape[0] > GRASP_BATCH:
        out = batch_pass(arch, net, want - {"grasp"}, x, y) if want - {"grasp"} else {}
        out["grasp"] = _grasp_central(arch, net, x[:GRASP_BATCH], y[:GRASP_BATCH])
        return out
    live = live_ops(arch)
    wops = _weight_ops(arch, live)
    weights = _weights(net, wops)
    taps = _Taps(arch, net, want, live, wops, x.shape[0])
    ones = bool(want & {"jacob_cov", "ntk"})           # the all-ones backward to the input
    x_in = x.detach().clone().requires_grad_(ones)
    net.tap = taps
    logits = _logits(net(x_in))
    net.tap = None
    out: dict[str, float] = {}
    if want & LABEL_PROXIES:
        taps.phase = "ce"
        g = _loss_grad(logits, y, weights, retain_graph=ones)
        taps.phase = None
        out.update(_label_proxies(arch, wops, weights, g, taps))
    if ones:
        out.update(_ones_proxies(arch, wops, x_in, logits, taps))
    del logits
    if "grasp" in want:
        out["grasp"] = _grasp_fd(net, weights, g, x, y, taps.frozen)
    out.update(taps.activation_proxies())
    return out


class _Taps:
    """What the batch pass's forward taps (``net.tap``) and backwards hook for the proxies in ``want``:
    the sign codes of live activations' inputs (naswot's Gram, swap's patterns), meco_batch's layer terms,
    the inputs of weight ops (zico, ntk), the frozen kinks (grasp) and, per backward ``phase``, the
    gradients reaching weight-op outputs (fisher, zico, ntk)."""

    def __init__(self, arch: Arch, net: nn.Module, want: set, live: np.ndarray, wops: list[int], b: int):
        ops = self.ops = arch.ops
        self.want, self.b = want, b
        self.codes_of = Counter(ops[i].inputs[0] for i, op in enumerate(ops) if live[i] and op.kind == ACT)
        self.kept_inputs = {ops[i].inputs[0] for i in wops} if want & {"zico", "ntk"} else set()
        self.hooked = {i + 1 for i in wops} if want & {"fisher", "zico", "ntk"} else set()
        self.kinks = _kinked_ops(arch, live) if "grasp" in want else {}
        self.leaves = meco_leaves(arch, net) if "meco_batch" in want else set()
        self.phase: str | None = None
        self.frozen: dict[int, nn.Module] = {}
        self.deltas: dict[str, dict[int, torch.Tensor]] = {"ce": {}, "ones": {}}
        self.fisher_s: dict[int, torch.Tensor] = {}
        self.kept: dict[int, torch.Tensor] = {}
        self.gram = np.zeros((b, b), np.int64)
        self.units = 0
        self.swap_codes: list[np.ndarray] = []
        self.meco_terms: list[float] = []

    def __call__(self, t: int, val: torch.Tensor) -> None:
        if t in self.codes_of:
            flat = val.detach().reshape(self.b, -1)
            if "naswot" in self.want:
                self.gram += self.codes_of[t] * hamming_gram(pack_signs(flat.numpy()))
                self.units += self.codes_of[t] * flat.shape[1]
            if self.want & {"swap", "swap_layers"}:
                self.swap_codes.append(pack_signs(flat[:SWAP_SAMPLES].T.contiguous().numpy()))
        if t in self.leaves:
            self.meco_terms.append(meco_layer(val.detach()))
        if t in self.kept_inputs:
            self.kept[t] = val.detach()
        for i in self.kinks.get(t, ()):
            self.frozen[i] = Frozen(self.ops[i], val.detach())
        if t in self.hooked and val.requires_grad:
            val.register_hook(self._grad_hook(t - 1, val.detach()))

    def _grad_hook(self, i: int, act: torch.Tensor):
        def hook(grad):
            if self.phase is not None:
                self.deltas[self.phase][i] = grad.detach()
                if self.phase == "ce" and "fisher" in self.want:
                    self.fisher_s[i] = (act * grad.detach()).sum((2, 3)).double()
        return hook

    def activation_proxies(self) -> dict[str, float]:
        """naswot, swap, swap_layers and meco_batch (those wanted) from what the forward recorded."""
        out = {}
        if "naswot" in self.want:
            out["naswot"] = logdet(self.units - self.gram.astype(np.float64))
        if "swap" in self.want:
            out["swap"] = float(count_distinct_rows(np.concatenate(self.swap_codes)) if self.swap_codes else 0)
        if "swap_layers" in self.want:
            out["swap_layers"] = float(sum(count_distinct_rows(c) for c in self.swap_codes))
        if "meco_batch" in self.want:
            out["meco_batch"] = float(sum(self.meco_terms))
        return out


def _label_proxies(arch: Arch, wops: list[int], weights: list[torch.Tensor], g: list[torch.Tensor],
                   taps: _Taps) -> dict[str, float]:
    """grad_norm, snip, fisher and zico (those wanted) from the cross-entropy gradients ``g``."""
    out = {}
    if "grad_norm" in taps.want:
        out["grad_norm"] = sum(float(gi.double().norm()) for gi in g)
    if "snip" in taps.want:
        out["snip"] = sum(float((w.detach().double() * gi.double()).abs().sum()) for w, gi in zip(weights, g))
    if "fisher" in taps.want:
        out["fisher"] = float(sum((0.5 * s.pow(2).mean(0)).sum() for s in taps.fisher_s.values()))
    if "zico" in taps.want:
        out["zico"] = zico_score(_half_gradients(arch, wops, taps.kept, taps.deltas["ce"], g, taps.b))
    return out


def _ones_proxies(arch: Arch, wops: list[int], x_in: torch.Tensor, logits, taps: _Taps) -> dict[str, float]:
    """jacob_cov and ntk (those wanted) from one backward of an all-ones cotangent on the logits."""
    taps.phase = "ones"
    outs = logits if isinstance(logits, tuple) else (logits,)
    (jac,) = torch.autograd.grad(outs, [x_in], grad_outputs=[torch.ones_like(o) for o in outs])
    taps.phase = None
    out = {}
    if "jacob_cov" in taps.want:
        out["jacob_cov"] = jacob_cov_score(jac.reshape(taps.b, -1).double().numpy())
    if "ntk" in taps.want:
        out["ntk"] = _ntk(arch, wops, taps.kept, taps.deltas["ones"], taps.b)
    return out


def _loss_grad(logits, y, weights, **kw) -> list[torch.Tensor]:
    """Gradients of the cross-entropy loss wrt ``weights`` (zeros for a weight it does not reach)."""
    if not weights:
        return []
    g = torch.autograd.grad(F.cross_entropy(logits, y), weights, allow_unused=True, **kw)
    return [torch.zeros_like(w) if gi is None else gi for w, gi in zip(weights, g)]


def _kinked_ops(arch: Arch, live: np.ndarray) -> dict[int, list[int]]:
    """Input tensor -> the live ops reading it whose derivative jumps (ReLU-like activations, max pools)."""
    out: dict[int, list[int]] = {}
    for i, op in enumerate(arch.ops):
        if live[i] and (op.kind == MAXPOOL or (op.kind == ACT and op.act in _CLAMPS)):
            out.setdefault(op.inputs[0], []).append(i)
    return out


_CLAMPS = {"relu": (0.0, math.inf), "relu6": (0.0, 6.0), "hswish": (3.0, 6.0),     # clamp(x + shift, 0, top)
           "hsigmoid": (3.0, 6.0)}


class Frozen(nn.Module):
    """A ReLU-like activation or a max pool with its pieces frozen as they were for the input ``x0``: the
    linear branch that an exact (double-backward) Hessian differentiates, for which a finite difference
    of gradients sees no kink.  ``relu = clamp(x, 0, inf)``, ``relu6 = clamp(x, 0, 6)``,
    ``hswish = x * clamp(x + 3, 0, 6) / 6``, ``hsigmoid = clamp(x + 3, 0, 6) / 6``; a max pool keeps its
    argmax (any kernel, strides, dilation; asymmetric padding, ceil mode's included, as -inf)."""

    def __init__(self, op, x0: torch.Tensor):
        super().__init__()
        self.op = op
        if op.kind == MAXPOOL:
            self.idx = F.max_pool2d(self._padded(x0), op.kernel, op.strides, self._pad, op.dilation,
                                    return_indices=True)[1]
            return
        shift, top = _CLAMPS[op.act]
        z = x0 + shift if shift else x0
        self.mid = z > 0                                    # boolean masks: the pieces of the clamp
        self.high = None
        if math.isfinite(top):
            self.mid &= z < top
            self.high = (z >= top) * top

    @property
    def _pad(self) -> int | tuple[int, int]:
        """The padding max_pool2d applies itself: the op's when symmetric, else none (see _padded)."""
        t, b, l, r = self.op.padding
        return (t, l) if (t, l) == (b, r) else 0

    def _padded(self, x):
        t, b, l, r = self.op.padding
        return x if self._pad != 0 else F.pad(x, (l, r, t, b), value=-math.inf)

    def forward(self, x):
        if self.op.kind == MAXPOOL:
            return self._padded(x).flatten(2).gather(2, self.idx.flatten(2)).view(self.idx.shape)
        shift, top = _CLAMPS[self.op.act]
        c = (x + shift) * self.mid if shift else x * self.mid
        if self.high is not None:
            c = c + self.high
        if self.op.act == "hsigmoid":
            return c / top
        return x * c / top if self.op.act == "hswish" else c


def _grasp_fd(net, weights, g, x, y, frozen) -> float:
    """GraSP's ``-sum W * (H g)``, computed as ``-sum g * (H W)`` (``H`` is symmetric) with ``H W`` a
    forward difference of gradients along the weights themselves, ``(grad L((1 + e) w) - grad L(w)) / e``:
    one more forward and backward of the batch through ``net`` with the ``frozen`` kinks (op index ->
    :class:`Frozen`: the branch the exact Hessian differentiates, so no ReLU flips inside the step); ``g``:
    the batch pass's gradients.  Used when the batch has at most :data:`GRASP_BATCH` images (the batch
    pass's gradients and kinks are then grasp's own); larger batches take :func:`_grasp_central`.

    ``e = FD_STEP = 1e-2``: every weight moves by the same relative step.  float32 rounding of the two
    gradients limits small steps (GraSP is a small difference of large terms on mobile networks: at
    ``e = 1e-3`` the error there was 36%), curvature limits large ones (NB201 cells: 1.6% at ``1e-3``,
    15% at ``1e-2``, errors of one sign that keep the order); ``1e-2`` gave the best rank agreement with
    the exact double backward over both (40 NB201 cells at 64 images, 12 MobileNetV2 nets at 64 px, none
    of them benchmark cells).  On 16 images NB201 cells are more curved: on 100 development cells the
    forward difference ranked like the exact product with Spearman 0.84 (relative error median 4%, up to
    15x), the central difference 1.000 (median 0.06%).

    Not a closed form: a conv followed by batch-statistics BN is scale-invariant, so ``H[:, l] w_l = -g_l``
    and only the other layers would need the difference; but BN's ``eps`` breaks the invariance by about
    1e-5 of the gradients, and on mobile networks grasp is a 1e-3 difference of two terms (~1e3 each)
    divided by the step, so that 1e-5 becomes an O(1) error.  Scaling every weight differentiates the
    network as it is, eps included.
    """
    if not weights:
        return 0.0
    (g2,) = _scaled_grads(net, weights, (1.0 + FD_STEP,), x, y, frozen)
    return -sum(float((a.double() * (b2.double() - a.double())).sum()) for a, b2 in zip(g, g2)) / FD_STEP


def _grasp_central(arch: Arch, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """GraSP from passes of its own over ``x`` (the first :data:`GRASP_BATCH` images of a larger batch):
    a no-grad forward that freezes the kinks, then the gradients ``g+`` and ``g-`` at the weights scaled
    by ``1 +- FD_STEP``; ``H W = (g+ - g-) / 2e`` and ``g = (g+ + g-) / 2``, both with errors of order
    ``e^2`` (on 100 NB201 development cells at 16 images: Spearman 1.000 with the exact double backward,
    relative error median 0.06%; 12 MobileNetV2 nets at 64 px: 0.979, median 2%)."""
    live = live_ops(arch)
    weights = _weights(net, _weight_ops(arch, live))
    if not weights:
        return 0.0
    kinks = _kinked_ops(arch, live)
    frozen: dict[int, nn.Module] = {}

    def tap(t, val):
        for i in kinks.get(t, ()):
            frozen[i] = Frozen(arch.ops[i], val)

    net.tap = tap
    try:
        with torch.no_grad():
            net(x)
    finally:
        net.tap = None
    gp, gm = _scaled_grads(net, weights, (1.0 + FD_STEP, 1.0 - FD_STEP), x, y, frozen)
    return -sum(float(((a.double() + b.double()) * (a.double() - b.double())).sum())
                for a, b in zip(gp, gm)) / (4 * FD_STEP)


def _scaled_grads(net, weights, scales, x, y, frozen) -> list[list[torch.Tensor]]:
    """Loss gradients of ``net`` on ``x`` with every weight scaled by each of ``scales`` in turn and the
    ``frozen`` kinks in place; weights and layers are restored exactly."""
    saved = [w.detach().clone() for w in weights]
    layers = {i: net.layers[i] for i in frozen}
    for i, f in frozen.items():
        net.layers[i] = f
    out = []
    try:
        for scale in scales:
            with torch.no_grad():
                for w, w0 in zip(weights, saved):
                    torch.mul(w0, scale, out=w)
            out.append(_loss_grad(_logits(net(x)), y, weights))
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, saved):
                w.copy_(w0)
        for i, layer in layers.items():
            net.layers[i] = layer
    return out


def grasp_exact(arch: Arch, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    """GraSP with the exact Hessian-gradient product (a double backward, about 3 forward+backward
    passes), as the reference implementations compute it: the check of the finite difference that
    :func:`batch_pass` uses (tests, benchmarks/proxies_naslib.py).  torch has no double backward of
    ``hardsigmoid``: on a network with a hard-sigmoid activation it raises torch's RuntimeError."""
    net = network(arch, seed)
    weights = _weights(net, _weight_ops(arch, live_ops(arch)))
    if not weights:
        return 0.0
    g = _loss_grad(_logits(net(x)), y, weights, create_graph=True)
    z = sum((gi.detach() * gi).sum() for gi in g if gi.requires_grad)
    hg = torch.autograd.grad(z, weights, allow_unused=True) if torch.is_tensor(z) else [None] * len(weights)
    return -sum(float((w.detach().double() * h.double()).sum()) for w, h in zip(weights, hg) if h is not None)


def _window(op: Op, a: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """A conv's input and the geometry arguments of torch's convolution functions: the op's padding
    when symmetric, else ``a`` zero-padded (top, bottom, left, right) and no padding."""
    t, b, l, r = op.padding
    geometry = dict(stride=op.strides, dilation=op.dilation, groups=op.groups)
    if (t, l) == (b, r):
        return a, dict(geometry, padding=(t, l))
    return F.pad(a, (l, r, t, b)), dict(geometry, padding=0)


def _conv_weight(op: Op, a: torch.Tensor, d: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Weight gradient of conv / transposed conv ``op`` from its input ``a`` and output gradient ``d``
    (the batch folded into ``groups`` more groups for per-sample gradients: the grouped-convolution
    trick).  A transposed conv is the adjoint of the conv with the same weight: its weight gradient is
    that conv's with input and output gradient exchanged."""
    kh, kw = op.kernel
    if op.kind == DECONV:
        shape = (a.shape[1], op.c_out // op.groups, kh, kw)
        _, geometry = _window(op, d)
        return torch.nn.grad.conv2d_weight(d, shape, a, **dict(geometry, groups=op.groups * groups))
    a, geometry = _window(op, a)
    shape = (d.shape[1], op.c_in // op.groups, kh, kw)
    return torch.nn.grad.conv2d_weight(a, shape, d, **dict(geometry, groups=op.groups * groups))


def _weight_grad(op: Op, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Gradient of a conv / transposed conv / linear weight summed over the batch, from its input ``a``
    and output gradient ``d``."""
    if op.kind == LINEAR:
        return d.reshape(d.shape[0], -1).T @ a.reshape(a.shape[0], -1)
    return _conv_weight(op, a, d)


def _per_sample_gram(op: Op, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``J J^T`` for the per-sample gradients ``J`` (rows) of a conv / linear weight, from its input ``a``
    and output gradient ``d`` (float32, ``(B, B)``).  A linear layer's in closed form, ``(d d^T) * (a a^T)``;
    an ungrouped conv with at most :data:`SHIFT_PIXELS` output pixels: one batched product per kernel offset
    of the padded channels-last input (:func:`_shift_gram`); other convs and transposed convs: the
    grouped-convolution trick (batch as groups)."""
    b = a.shape[0]
    if op.kind == LINEAR:
        a, d = a.reshape(b, -1), d.reshape(b, -1)
        return (d @ d.T) * (a @ a.T)
    if op.kind == CONV and op.groups == 1 and op.h_out * op.w_out <= SHIFT_PIXELS:
        return _shift_gram(op, a, d)
    per = _conv_weight(op, a.reshape(1, -1, *a.shape[2:]), d.reshape(1, -1, *d.shape[2:]), b).reshape(b, -1)
    return per @ per.T


def _shift_gram(op: Op, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """:func:`_per_sample_gram` of an ungrouped conv: per kernel offset ``(u, v)``, the output gradient
    times the input pixels that offset reads (strided, dilated); the rows' entries then come in
    (offset, c_out, c_in) order, which the Gram does not see."""
    b = a.shape[0]
    t, bottom, l, r = op.padding
    (kh, kw), (sh, sw), dil = op.kernel, op.strides, op.dilation
    ap = F.pad(a, (l, r, t, bottom)).permute(0, 2, 3, 1).contiguous()          # (B, H + t + b, W + l + r, C_in)
    df = d.flatten(2)                                                          # (B, C_out, pixels)
    per = a.new_empty(kh * kw, b, op.c_out, op.c_in)
    for u in range(kh):
        for v in range(kw):
            patch = ap[:, u * dil:u * dil + sh * (op.h_out - 1) + 1:sh, v * dil:v * dil + sw * (op.w_out - 1) + 1:sw]
            torch.bmm(df, patch.reshape(b, -1, op.c_in), out=per[u * kw + v])
    per = per.view(kh * kw, b, -1)
    return torch.bmm(per, per.transpose(1, 2)).sum(0)


def _half_gradients(arch, wops, kept, deltas, full, b) -> list[np.ndarray]:
    """Per layer ``(2, weights)``: the mean gradients of the two halves of the batch, split from the
    per-sample contributions of one backward of the full-batch loss."""
    h = b // 2
    per_layer = []
    for i, g in zip(wops, full):
        op = arch.ops[i]
        if i in deltas:
            part = _weight_grad(op, kept[op.inputs[0]][:h], deltas[i][:h]).reshape(g.shape)
        else:
            part = torch.zeros_like(g)
        g1 = part.double() * (b / h)
        g2 = (g.double() - part.double()) * (b / (b - h))
        per_layer.append(torch.stack([g1.ravel(), g2.ravel()]).numpy())
    return per_layer


def zico_score(per_layer: list[np.ndarray]) -> float:
    """ZiCo from per-layer ``(batches, weights)`` gradients: sum over layers of
    ``log(sum(mean|g| / std(g)))`` over weights with non-zero std (layers with an empty sum skipped)."""
    total = 0.0
    for g in per_layer:
        std = g.std(axis=0)
        nz = std > 0
        s = float((np.abs(g).mean(axis=0)[nz] / std[nz]).sum())
        if s > 0:
            total += math.log(s)
    return total


def jacob_cov_score(jac: np.ndarray) -> float:
    """``-sum(log(l + k) + 1 / (l + k))`` over the eigenvalues ``l`` of the correlation matrix of the
    per-sample Jacobians (rows), ``k = 1e-5``; NaN when a row is constant or an eigenvalue <= -k."""
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
        v = eigvalsh(corr) + JACOB_K
        return float(-np.sum(np.log(v) + 1.0 / v)) if (v > 0).all() else float("nan")


def _ntk(arch, wops, kept, deltas, b) -> float:
    """Condition number of the per-sample-gradient Gram matrix (logit sums, conv / linear weights);
    ``inf`` when it is singular."""
    gram = torch.zeros(b, b, dtype=torch.float64)
    for i in wops:
        if i in deltas:
            op = arch.ops[i]
            gram += _per_sample_gram(op, kept[op.inputs[0]], deltas[i]).double()   # float32 per layer
    w = eigvalsh(gram.numpy())
    if not np.isfinite(w).all() or w[0] <= 0:
        return float("inf")
    return float(w[-1] / w[0])


def synflow(arch: Arch, seed: int) -> float:
    """``log sum |W * dR/dW|`` with ``R`` the sum of the outputs of the float64, BN-free, ``|W|``
    network on an all-ones input (``-inf`` when the sum is 0)."""
    net = build(arch)
    init_network(net, arch, seed)
    for i, op in enumerate(arch.ops):
        if op.kind == BN:
            net.layers[i] = nn.Identity()
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = _weights(net, _weight_ops(arch, live_ops(arch)))
    out = net(torch.ones(1, *arch.input_shape, dtype=torch.float64))
    r = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    grads = torch.autograd.grad(r, weights, allow_unused=True) if weights else []
    s = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)
    return math.log(s) if s > 0 else float("-inf")


def zen(arch: Arch, net: nn.Module, seed: int, batch: int = ZEN_BATCH) -> float:
    """Zen-score: ``log(mean_b |f(x) - f(x + 0.01 e)|_1) + sum_BN log sqrt(mean batch variance)`` with
    N(0, 1) weights and a Gaussian batch ``x`` of 16; ``f``: the features before the last global pool.
    ``net`` (a built ``arch``) is re-initialised in place."""
    init_network(net, arch, seed, "gaussian")
    live = live_ops(arch)
    gaps = [i for i, op in enumerate(arch.ops) if op.kind == GAP]
    feat_t = arch.ops[gaps[-1]].inputs[0] if gaps else arch.outputs[0]
    bns = [net.layers[i] for i, op in enumerate(arch.ops) if live[i] and op.kind == BN]
    for bn in bns:
        bn.momentum = 1.0                  # running variance := the batch's (unbiased) variance
    feats = []

    def tap(t, val):
        if t == feat_t:
            feats.append(val)

    g = _gen(seed, "zen")
    x = torch.randn(batch, *arch.input_shape, generator=g)
    x2 = x + ZEN_EPS * torch.randn(batch, *arch.input_shape, generator=g)
    net.tap = tap
    with torch.no_grad():
        net(x)
        variances = [float(bn.running_var.double().mean()) for bn in bns]
        net(x2)
    net.tap = None
    log_bn = sum(0.5 * math.log(v) if v > 0 else float("-inf") for v in variances)
    diff = float((feats[0].double() - feats[1].double()).abs().flatten(1).sum(1).mean())
    return (math.log(diff) if diff > 0 else float("-inf")) + log_bn


def meco_leaves(arch: Arch, net: nn.Module) -> set[int]:
    """The tensors meco and meco_batch read: the outputs of the live conv / BN / activation / pool ops."""
    live = live_ops(arch)
    return {i + 1 for i, layer in enumerate(net.layers) if live[i] and not isinstance(layer, nn.Identity)
            and arch.ops[i].kind != LINEAR}


def _correlation(fea: np.ndarray) -> np.ndarray:
    """The correlation matrix of the rows of ``fea``, NaN / inf entries (a constant row, a single column)
    set to 0, without numpy's warnings about them."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        corr = np.atleast_2d(np.corrcoef(fea))
    corr[~np.isfinite(corr)] = 0.0
    return corr


def meco_layer(val: torch.Tensor, weighted: bool = True) -> float:
    """One layer's term of meco_batch: ``(C / n) * lambda_min`` of the correlation matrix of ``n = min(C, 8)``
    evenly spaced channels of ``val`` (``(B, C, H, W)``), each channel's values over the ``B * H * W``
    positions of the batch (evenly strided down to at most :data:`MECO_POSITIONS`); NaN / inf entries of
    the correlation (a constant channel) set to 0, as meco does.  The ``C / n`` weight is MeCo_opt's: the
    sampled channels stand for all ``C``; ``weighted=False`` drops it (meco_full's terms, at most 1 each, as
    meco's).  With fewer positions than sampled channels the term is 0.

    >>> abs(meco_layer(torch.eye(4).reshape(4, 4, 1, 1))) < 1e-9      # 4 channels over 4 positions: rank 3
    True
    >>> x = torch.randn(16, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> 0.9 < meco_layer(x) <= 1.0            # two independent channels: lambda_min close to 1, weight 1
    True
    """
    c = val.shape[1]
    idx = torch.linspace(0, c - 1, min(c, MECO_CHANNELS)).round().long()
    fea = val.index_select(1, idx).transpose(0, 1).reshape(len(idx), -1)
    fea = fea[:, ::-(-fea.shape[1] // MECO_POSITIONS)].double().numpy()
    corr = _correlation(fea)
    return (c / len(idx) if weighted else 1.0) * float(eigvalsh(corr)[0])


def meco(arch: Arch, net: nn.Module, seed: int, full: bool = True) -> tuple[float, float]:
    """MeCo: sum over the outputs of live conv / BN / activation / pool ops, for one Gaussian image, of
    the smallest eigenvalue of the channel correlation matrix (NaN / inf entries set to 0; 0 when the
    layer has at least as many channels as pixels); ``net``: ``arch`` built with the default init.

    Returns ``(meco, meco_full)``: meco_full adds, for each layer where meco's term is 0 (``C >= H*W``),
    the unweighted :func:`meco_layer` of the same image (MeCo_opt's 8 sampled channels), so that the deep,
    narrow-map layers count too (computed only with ``full``; otherwise meco_full is returned as NaN).  A BN
    that sees one value per channel (a 1x1 map of the one image: small inputs, heads after a global pool)
    has no batch statistics: it normalises with its initial running ones (mean 0, variance 1), as
    :func:`_without_batch_statistics` sets."""
    leaf = meco_leaves(arch, net)
    total = [0.0, 0.0]

    def tap(t, val):
        if t not in leaf:
            return
        if val.shape[1] < val[0].numel() // val.shape[1]:
            fea = val[0].detach().double().reshape(val.shape[1], -1).numpy()
            total[0] += float(eigvalsh(_correlation(fea))[0])
        elif full:
            # with C >= H*W channels the correlation matrix has rank <= H*W - 1 < C: its smallest
            # eigenvalue is exactly 0, no eigen-solver needed (deep layers of wide networks)
            total[1] += meco_layer(val[:1].detach(), weighted=False)

    net.tap = tap
    try:
        with torch.no_grad(), _without_batch_statistics(arch, net):
            net(torch.randn(1, *arch.input_shape, generator=_gen(seed, "meco")))
    finally:
        net.tap = None
    return total[0], total[0] + total[1] if full else float("nan")


@contextmanager
def _without_batch_statistics(arch: Arch, net: nn.Module):
    """Within the block, the BN layers of ``net`` over 1x1 maps (one value per channel in a batch of one,
    where train mode has no statistics to take) run in eval mode with their initial running statistics
    (mean 0, variance 1); their mode and statistics are restored on exit.

    >>> from zeroshot.spaces.ir import Graph
    >>> g = Graph(4, 1, 1); arch = g.finish(g.bn(0))
    >>> net = network(arch, 0); x = torch.randn(1, 4, 1, 1)
    >>> with _without_batch_statistics(arch, net):
    ...     y = net(x)
    >>> bool(torch.allclose(y, x, atol=1e-4)), net.layers[0].training
    (True, True)
    """
    norms = [m for m, op in zip(net.layers, arch.ops) if op.h_out * op.w_out == 1 and isinstance(m, nn.BatchNorm2d)]
    saved = [(m.training, m.running_mean, m.running_var) for m in norms]
    for m in norms:
        m.eval()
        m.running_mean, m.running_var = torch.zeros_like(m.running_mean), torch.ones_like(m.running_var)
    try:
        yield
    finally:
        for m, (mode, mean, var) in zip(norms, saved):
            m.train(mode)
            m.running_mean, m.running_var = mean, var


def linear_regions(arch: Arch, x: torch.Tensor, seed: int) -> float:
    """Distinct activation patterns of a thin copy (channels / 8) over 1,000 random crops of ``x`` (the
    smallest crop of side ``H / 8``, ``H / 4``, ... that every shape of the thin copy fits)."""
    h = arch.input_shape[1]
    thin = None
    for size in sorted({max(1, h // d) for d in (8, 4, 2, 1)}):
        try:
            thin = thin_arch(arch, LR_DIVISOR, size)
            break
        except ValueError:
            continue
    if thin is None:
        return float("nan")
    g = _gen(seed, "linear_regions")
    n, (_, hh, ww) = LR_SAMPLES, x.shape[1:]
    idx = torch.randint(x.shape[0], (n,), generator=g)
    i0 = torch.randint(hh - size + 1, (n,), generator=g)
    j0 = torch.randint(ww - size + 1, (n,), generator=g)
    crops = torch.stack([x[k, :, a:a + size, c:c + size] for k, a, c in zip(idx.tolist(), i0.tolist(), j0.tolist())])
    net = network(thin, seed)
    live = live_ops(thin)
    acts = {op.inputs[0] for i, op in enumerate(thin.ops) if live[i] and op.kind == ACT}
    blocks = []

    def tap(t, val):
        if t in acts:
            blocks.append(pack_signs(val.reshape(n, -1).numpy()))

    net.tap = tap
    with torch.no_grad():
        net(crops)
    return float(count_distinct_rows(np.concatenate(blocks, axis=1))) if blocks else 1.0
