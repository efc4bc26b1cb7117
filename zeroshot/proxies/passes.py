"""The shared batch pass of the network proxies: every requested proxy of :data:`BATCH_PROXIES` from one
forward and at most two backwards of the batch.

The forward runs in train mode, default init.  While it runs, the codes of every live activation's input
(``> 0``) are bit-packed: their Hamming Gram matrix (naswot) and the per-unit patterns of the first 16
samples (swap, and swap_layers counted per layer); meco_batch reads a few channels of every live conv / BN /
activation / pool output (:func:`~zeroshot.proxies.meco.meco_layer`).  Backwards on the same graph:

- cross-entropy: one backward (``autograd.grad``) -> grad_norm, snip, fisher (tensor hooks on conv and
  linear outputs) and zico (the two half-batch gradients are split from the per-sample contributions
  of that backward, :mod:`~zeroshot.proxies.weight_grads`);
- all-ones cotangent on the logits: the input Jacobian (jacob_cov) and, from the same backward, the
  per-sample gradients of every conv / linear weight (ntk; only their Gram is formed).

The other proxies run passes of their own, each only when requested: grasp (on at most 16 images, a finite
difference of gradients; with 16 images or fewer it reuses this pass's gradients and kinks), meco and
meco_full, zen, synflow and linear_regions, each in the module of its name.

Deliberate differences from the reference implementations (one network, one batch, shared passes):
zico's two batches are the two halves of one forward and backward (BN statistics over the whole batch);
ntk's per-sample gradients come from one backward and so treat BN's batch statistics as constants (the
reference runs one backward per sample, which also differentiates through the statistics); zen uses
each BN's batch variance (running variance with momentum 1) and keeps residual links; meco looks at the
outputs of the live conv / BN / activation / pool ops; grasp reads at most 16 images and its Hessian
product is a finite difference (:mod:`~zeroshot.proxies.grasp`).

The network is built once: the batch pass and grasp leave its weights as they came, meco reads it, zen
re-initialises it last.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch
from torch import nn

from zeroshot.spaces.ir import ACT, Arch

from .compiled import count_distinct_rows, eigvalsh, hamming_gram, logdet, pack_signs
from .grasp import GRASP_BATCH, _grasp_central, _grasp_fd
from .kinks import Frozen, _kinked_ops
from .meco import meco_layer, meco_leaves
from .net import _logits, _loss_grad, _weight_ops, _weights
from .structure import live_ops
from .weight_grads import _per_sample_gram, _weight_grad

__all__ = ["BATCH_PROXIES", "JACOB_K", "LABEL_PROXIES", "SWAP_SAMPLES", "batch_pass", "jacob_cov_score",
           "zico_score"]

LABEL_PROXIES = frozenset({"grad_norm", "snip", "grasp", "fisher", "zico"})
BATCH_PROXIES = LABEL_PROXIES | {"naswot", "swap", "swap_layers", "meco_batch", "jacob_cov", "ntk"}
SWAP_SAMPLES = 16
JACOB_K = 1e-5


def batch_pass(arch: Arch, net: nn.Module, want: set, x: torch.Tensor, y: torch.Tensor | None) -> dict:
    """The proxies of :data:`BATCH_PROXIES` in ``want``, from one forward of ``x`` through ``net`` (default
    init, train mode; its weights are left as they came) and its backwards; grasp from its own passes
    over the first :data:`~zeroshot.proxies.grasp.GRASP_BATCH` images."""
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
