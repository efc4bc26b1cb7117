"""Real training of an architecture: SGD or AdamW with a cosine schedule, seeded and resumable.

Recipe (NAS-Bench-201's, scaled): cross-entropy; SGD with Nesterov momentum 0.9, weight decay 5e-4 and
learning rate 0.1 x batch/256, or AdamW with weight decay 0.05 and 2e-3 x batch/256 (linear scaling rule);
the rate follows a cosine from its peak to 0 over the whole run (``epochs`` x steps per epoch, or
``max_steps`` when smaller: the tiny-budget mode).  Images (inputs at least 8x8) are augmented in torch:
random crop with zero padding of 1/8 of the side (4 pixels at 32x32), then a horizontal flip with
probability 1/2; segmentation data (a label per pixel, ``y`` of shape (N, H, W), an LR-ASPP-style
network) is not augmented and its accuracy is per pixel.  A seeded fraction of the data
(``val_fraction``) is held out; the reported accuracy is the best validation accuracy over epochs and
the returned model carries those weights.  ``patience`` stops after that many epochs without a better
validation accuracy.

Determinism: initialisation, shuffling and augmentation all come from ``seed`` (a private
``torch.Generator``), so a run is repeatable on a device.  ``checkpoint``: a file rewritten atomically
after every epoch (weights, optimiser, schedule, generator state, history); a run given an existing
checkpoint of the same architecture, data and settings resumes after its last finished epoch and ends
exactly as an uninterrupted run would.

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.batches import synthetic_data
>>> space = get_space("nb201")
>>> arch = space.to_ir(space.sample(1, seed=0)[0])
>>> result = train(arch, synthetic_data(32, (3, 32, 32), 10), TrainConfig(epochs=3, max_steps=2), quiet=True)
>>> result.steps
2
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zeroshot.estimator.timing import torch_device
from zeroshot.spaces import get_space
from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import Arch, arch_to_dict

from .atomic import check_writable, open_atomically, writing
from .batches import Data
from .training_sets import load_dataset, split
from .checks import check_int, check_seed
from .errors import InputError, ParameterError
from .progress import progress

__all__ = ["DEVICES", "EVAL_BATCH", "OPTIMIZERS", "TrainConfig", "TrainResult", "augment", "evaluate",
           "train", "train_job"]

#: optimiser name -> (base learning rate at batch 256, default weight decay)
OPTIMIZERS = {"sgd": (0.1, 5e-4), "adamw": (2e-3, 0.05)}
DEVICES = ("cpu", "cuda", "auto")
EVAL_BATCH = 256


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None                 # None: the optimiser's base rate x batch_size / 256
    weight_decay: float | None = None       # None: the optimiser's default
    momentum: float = 0.9
    val_fraction: float = 0.1
    augment: bool = True
    patience: int | None = None
    max_steps: int | None = None
    seed: int = 0
    device: str = "cpu"                     # cpu, cuda, or auto (cuda when present)

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError("optimizer", f"one of {', '.join(OPTIMIZERS)}", self.optimizer)
        if self.device not in DEVICES:
            raise ParameterError("device", f"one of {', '.join(DEVICES)} for training", self.device)
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name), 1, "at least 1")
        check_seed(self.seed)
        for name in ("patience", "max_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ParameterError(name, "at least 1 (or unset)", getattr(self, name))
        if self.lr is not None and not self.lr > 0:
            raise ParameterError("lr", "positive", self.lr)
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ParameterError("weight_decay", "at least 0 (or unset)", self.weight_decay)

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else OPTIMIZERS[self.optimizer][0] * self.batch_size / 256


@dataclass
class TrainResult:
    val_accuracy: float             # best validation accuracy over epochs, percent
    best_epoch: int
    epochs: int                     # epochs run
    steps: int
    train_loss: float               # mean loss of the last epoch
    val_loss: float                 # at the best epoch
    seconds: float
    stopped_early: bool
    device: str
    history: list = field(default_factory=list)
    model: torch.nn.Module | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        """The scalar results (what the results database stores)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)
                if isinstance(getattr(self, f.name), (int, float))}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding (1/8 of the side) and horizontal flip, per sample, from ``gen``."""
    n, _, h, w = x.shape
    ph, pw = max(1, h // 8), max(1, w // 8)
    oy = torch.randint(0, 2 * ph + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pw + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (oy[:, None] + torch.arange(h)).to(x.device)
    cols = ox[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(x.device)
    padded = F.pad(x, (pw, pw, ph, ph))
    return padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)
                  [None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]


def _optimizer(net: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    wd = cfg.weight_decay if cfg.weight_decay is not None else OPTIMIZERS[cfg.optimizer][1]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=cfg.peak_lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=wd)
    return torch.optim.AdamW(net.parameters(), lr=cfg.peak_lr, weight_decay=wd)


def _fingerprint(arch: Arch, data: Data, cfg: TrainConfig) -> str:
    settings = {k: v for k, v in asdict(cfg).items() if k != "device"}
    h = hashlib.sha256(json.dumps({"arch": arch_to_dict(arch), "config": settings}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(data.x).tobytes())
    h.update(np.ascontiguousarray(data.y).tobytes())
    return h.hexdigest()


@torch.no_grad()
def evaluate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in percent) of ``net`` in eval mode; per pixel when ``y`` holds a
    label per pixel (segmentation)."""
    net.eval()
    loss = correct = 0.0
    for s in range(0, len(x), EVAL_BATCH):
        out = net(x[s:s + EVAL_BATCH])
        loss += float(F.cross_entropy(out, y[s:s + EVAL_BATCH], reduction="sum"))
        correct += float((out.argmax(1) == y[s:s + EVAL_BATCH]).sum())
    return loss / y.numel(), 100.0 * correct / y.numel()


def train(arch: Arch, data: Data, cfg: TrainConfig, checkpoint: str | None = None,
          on_epoch: Callable[[dict], None] | None = None, quiet: bool = False) -> TrainResult:
    """Train ``arch`` on ``data`` (see the module docstring); ``on_epoch(record)`` after each epoch."""
    cfg.validate()
    if arch.task not in ("classify", "segment") or len(arch.outputs) != 1:
        raise InputError(f"training supports classification and segmentation networks with one output; this "
                         f"one is a {arch.task} network with {len(arch.outputs)} outputs")
    dev = torch_device(cfg.device)
    t0 = time.perf_counter()
    train_set, val_set = split(data, cfg.val_fraction, cfg.seed)
    xt, yt = torch.from_numpy(train_set.x).to(dev), torch.from_numpy(train_set.y).to(dev)
    xv, yv = torch.from_numpy(val_set.x).to(dev), torch.from_numpy(val_set.y).to(dev)
    images = cfg.augment and min(xt.shape[2:]) >= 8 and yt.ndim == 1      # per-pixel labels: no crop / flip
    torch.manual_seed(cfg.seed)
    net = build(arch).to(dev)
    opt = _optimizer(net, cfg)
    per_epoch = math.ceil(len(xt) / cfg.batch_size)
    total = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.epochs * per_epoch, cfg.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(cfg.seed)
    key = _fingerprint(arch, data, cfg) if checkpoint else None
    state = _resume(checkpoint, key, dev, net, opt, sched, gen)
    bar = progress(total=total, initial=state["step"], desc="train", unit="step", disable=quiet)
    while not state["done"] and state["epoch"] < cfg.epochs and state["step"] < total:
        perm = torch.randperm(len(xt), generator=gen).to(dev)
        losses = []
        net.train()
        for b in range(per_epoch):
            if state["step"] >= total:
                break
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            losses.append(_step(net, opt, sched, augment(xt[idx], gen) if images else xt[idx], yt[idx]))
            state["step"] += 1
            bar.update(1)
        val_loss, val_acc = evaluate(net, xv, yv)
        record = {"epoch": state["epoch"] + 1, "step": state["step"], "train_loss": float(np.mean(losses)),
                  "val_loss": val_loss, "val_accuracy": val_acc, "lr": float(sched.get_last_lr()[0])}
        _end_epoch(state, record, net, cfg.patience)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{val_acc:.1f}")
        if checkpoint:
            _save(checkpoint, {"fingerprint": key, "model": net.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "generator": gen.get_state(), "state": state})
        if on_epoch:
            on_epoch(record)
    bar.close()
    return _result(state, net, dev, t0)


def _resume(checkpoint: str | None, key: str | None, dev, net, opt, sched, gen) -> dict:
    """The training state: a fresh one, or the one ``checkpoint`` holds (loaded into ``net``, the optimizer,
    scheduler and generator) when it exists and was written for the same ``key``."""
    saved = _load_checkpoint(checkpoint, dev) if checkpoint else None
    if saved is None:
        return {"epoch": 0, "step": 0, "history": [], "best": None, "bad": 0, "done": False}
    if saved.get("fingerprint") != key:
        raise ParameterError("checkpoint", "a checkpoint of this architecture, data and settings", checkpoint,
                             fix="it was written for others: delete it or pass another checkpoint")
    net.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    gen.set_state(saved["generator"])
    return saved["state"]


def _load_checkpoint(path: str, dev) -> dict | None:
    """What the checkpoint ``path`` holds (None where there is none yet), once it is known to be writable:
    an error naming it when it cannot be written or holds no checkpoint."""
    with _writing_checkpoint(path):
        check_writable(path)                        # before any epoch is trained
    if not os.path.exists(path):
        return None
    try:
        saved = torch.load(path, map_location=dev, weights_only=True)     # tensors and plain values only
    except Exception as e:      # noqa: BLE001  a file torch.save did not write fails in many ways (unpickler
        saved = e               # stack, zip reader, ...); only the parse is inside: refused below like any object
    if not isinstance(saved, dict):
        raise ParameterError("checkpoint", "a checkpoint written by zeroshot train", path,
                             fix=f"it holds no checkpoint ({type(saved).__name__}): delete it or pass another path")
    return saved


def _step(net: nn.Module, opt, sched, xb: torch.Tensor, yb: torch.Tensor) -> float:
    """One optimisation step on a batch; its loss."""
    loss = F.cross_entropy(net(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def _end_epoch(state: dict, record: dict, net: nn.Module, patience: int | None) -> None:
    """Record an epoch in ``state``: its history, the best weights so far, early stopping's count."""
    state["history"].append(record)
    best = state["best"]
    if best is None or record["val_accuracy"] > best["val_accuracy"]:
        state["best"] = dict(record, weights={k: v.detach().clone() for k, v in net.state_dict().items()})
        state["bad"] = 0
    else:
        state["bad"] += 1
    state["epoch"] += 1
    state["done"] = patience is not None and state["bad"] >= patience


def _result(state: dict, net: nn.Module, dev, t0: float) -> TrainResult:
    """The run's result, ``net`` holding its best weights, in eval mode."""
    best = state["best"]
    net.load_state_dict(best["weights"])
    net.eval()
    return TrainResult(val_accuracy=best["val_accuracy"], best_epoch=best["epoch"], epochs=state["epoch"],
                       steps=state["step"], train_loss=state["history"][-1]["train_loss"],
                       val_loss=best["val_loss"], seconds=time.perf_counter() - t0,
                       stopped_early=state["done"], device=str(dev), history=list(state["history"]), model=net)


def _save(path: str, obj: dict) -> None:
    """Write the checkpoint ``path`` atomically."""
    with _writing_checkpoint(path), open_atomically(path, "wb") as f:
        torch.save(obj, f)


def _writing_checkpoint(path: str):
    """:func:`~zeroshot.atomic.writing` for a checkpoint path."""
    return writing(path, "checkpoint", "pass a file in a folder that can be written")


# ------------------------------------------------------------------ one training as a backend task
_DATA: dict = {}


def train_job(job: dict) -> dict:
    """Train one architecture described by plain values (a local or Ray task): ``space``,
    ``space_options``, ``arch`` (encoding), ``data`` (path) and ``config`` (:class:`TrainConfig` fields).
    Returns :meth:`TrainResult.metrics`; the data set is loaded once per worker."""

    space = get_space(job["space"], **job["space_options"])
    arch = space.to_ir(job["arch"])
    key = (job["data"], arch.input_shape)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_dataset(job["data"], arch.input_shape, arch.tensor_shape(arch.outputs[0])[0])
    return train(arch, _DATA[key], TrainConfig(**job["config"]), quiet=True).metrics()
