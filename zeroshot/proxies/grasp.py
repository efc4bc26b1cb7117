"""GraSP, ``-sum W * (H g)``, from finite differences of gradients on the first :data:`GRASP_BATCH`
images, and the exact double backward that checks them.

On a larger batch grasp runs passes of its own over the first 16 images: a no-grad forward that freezes
the activations' kinks (:mod:`~zeroshot.proxies.kinks`), then two forward+backward passes at the weights
scaled by ``1 +- 1e-2`` (:func:`_grasp_central`, a central difference of gradients instead of the
reference's double backward; at batch 64 about 0.6 of a forward+backward of the batch).  With 16 images or
fewer it shares the batch pass's gradients and kinks and adds one forward+backward at the weights scaled by
``1 + 1e-2`` (:func:`_grasp_fd`, a forward difference).

Its BN statistics are those of the 16 images and its Hessian product is float32 (against the exact double
backward on the same images: benchmarks/results/proxies_naslib.md).  On 150 NB201 development cells at
batch 64 (none of them benchmark cells; a one-off check), grasp on 16 images ranked the cells like the exact
grasp on all 64 with Spearman 0.769 (two weight seeds of grasp itself agree at 0.462,
benchmarks/results/proxies_seed_noise.md) and like the exact product on its 16 images with 1.000 (on 200
NASLib cells, benchmarks/results/proxies_naslib.md: 0.985); its Spearman against validation accuracy was
0.346, the exact grasp's on all 64 images 0.339.
"""
from __future__ import annotations

import torch
from torch import nn

from zeroshot.spaces.ir import Arch

from .kinks import Frozen, _kinked_ops
from .net import _logits, _loss_grad, _weight_ops, _weights, network
from .structure import live_ops

__all__ = ["FD_STEP", "GRASP_BATCH", "grasp_exact"]

GRASP_BATCH = 16        # grasp reads the first 16 images of the batch (see the module docstring)
FD_STEP = 1e-2         # grasp: relative step of the finite difference (see _grasp_fd)


def _grasp_fd(net, weights, g, x, y, frozen) -> float:
    """GraSP's ``-sum W * (H g)``, computed as ``-sum g * (H W)`` (``H`` is symmetric) with ``H W`` a
    forward difference of gradients along the weights themselves, ``(grad L((1 + e) w) - grad L(w)) / e``:
    one more forward and backward of the batch through ``net`` with the ``frozen`` kinks (op index ->
    :class:`~zeroshot.proxies.kinks.Frozen`: the branch the exact Hessian differentiates, so no ReLU flips
    inside the step); ``g``: the batch pass's gradients.  Used when the batch has at most
    :data:`GRASP_BATCH` images (the batch pass's gradients and kinks are then grasp's own); larger batches
    take :func:`_grasp_central`.

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
    :func:`~zeroshot.proxies.passes.batch_pass` uses (tests, benchmarks/proxies_naslib.py).  torch has no
    double backward of ``hardsigmoid``: on a network with a hard-sigmoid activation it raises torch's
    RuntimeError."""
    net = network(arch, seed)
    weights = _weights(net, _weight_ops(arch, live_ops(arch)))
    if not weights:
        return 0.0
    g = _loss_grad(_logits(net(x)), y, weights, create_graph=True)
    z = sum((gi.detach() * gi).sum() for gi in g if gi.requires_grad)
    hg = torch.autograd.grad(z, weights, allow_unused=True) if torch.is_tensor(z) else [None] * len(weights)
    return -sum(float((w.detach().double() * h.double()).sum()) for w, h in zip(weights, hg) if h is not None)
