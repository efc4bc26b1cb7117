"""A small synthetic segmentation task built from real CIFAR-10 images, and a search evaluator that trains on it.

A benchmark fixture (of ``design_segmentation.py``), not part of the library: import it with ``benchmarks/``
on ``sys.path`` (a benchmark script's own folder).

No segmentation data set ships with the project, so :func:`pasted_objects` builds one whose per-pixel
labels are known by construction: each ``size`` x ``size`` canvas has a background (a different CIFAR-10
image upsampled to the canvas, so smoother than the object) and one object (a CIFAR-10 image rescaled to
3/8..5/8 of the canvas side, pasted at a random place through a random elliptical mask).  Pixels inside the
mask are labelled with the object's superclass (1 = vehicle: airplane, automobile, ship, truck; 2 = animal),
pixels outside 0 (background).  Three labels keep the task learnable in a few CPU epochs while still asking
for both a shape (where is the object) and a content decision (what is it).  It is a proxy task: it
measures how well a network learns dense labels from little data at low resolution, not Pascal VOC mIoU.

:class:`SegmentationEvaluator` is an evaluator for :func:`zeroshot.searching.run_search`: each architecture
is trained (:func:`zeroshot.train.train`, no augmentation) on canvases resampled to its input resolution
(images bilinear, labels nearest), and scored on held-out canvases made from other images, its logits
upsampled to the canvas size: ``accuracy`` is the mean IoU over the three labels in percent, with the
pixel accuracy beside it.

Example
-------
>>> import numpy as np
>>> imgs = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
>>> d = pasted_objects(imgs, np.arange(20) % 10, n=6, size=32, seed=0)
>>> d.x.shape, d.y.shape, sorted(np.unique(d.y).tolist())
((6, 3, 32, 32), (6, 32, 32), [0, 1, 2])
>>> float(mean_iou(d.y, d.y, 3))
100.0
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from zeroshot.spaces.curation import MOBILENETV2_RAW
from zeroshot.spaces.mbv2 import Mbv2Space

from zeroshot.batches import Data
from zeroshot.errors import DataError, ParameterError

__all__ = ["CIFAR_FILE", "LABELS", "SegmentationEvaluator", "at_resolution", "cifar_task", "mean_iou",
           "pasted_objects", "predict", "superclass", "toy_space"]

CIFAR_FILE = "images/cifar10_test_846.npz"
VEHICLES = (0, 1, 8, 9)            # CIFAR-10 airplane, automobile, ship, truck
LABELS = ("background", "vehicle", "animal")


def superclass(y: np.ndarray) -> np.ndarray:
    """CIFAR-10 class -> 1 (vehicle) or 2 (animal)."""
    return np.where(np.isin(y, VEHICLES), 1, 2).astype(np.int64)


def _resample(x: np.ndarray, size: int) -> np.ndarray:
    """(N, C, h, w) float32 -> (N, C, size, size), bilinear (antialiased when shrinking)."""
    if x.shape[-1] == size:
        return x
    t = F.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < x.shape[-1])
    return np.ascontiguousarray(t.numpy())


def pasted_objects(images: np.ndarray, classes: np.ndarray, n: int, size: int = 64, seed: int = 0) -> Data:
    """``n`` canvases from ``images`` ((N, 32, 32, 3) uint8) with CIFAR-10 ``classes`` (see the module
    docstring); ``x`` float32 (n, 3, size, size) in [0, 1] (8-bit values), ``y`` int64 (n, size, size) in
    0..2."""
    if len(images) < 2:
        raise ParameterError("images", "at least 2 images (an object and a background)", len(images))
    rng = np.random.default_rng(seed)
    src = images.transpose(0, 3, 1, 2).astype(np.float32)
    canvas = np.empty((n, 3, size, size), np.float32)
    labels = np.zeros((n, size, size), np.int64)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for i in range(n):
        obj, bg = rng.choice(len(images), 2, replace=False)
        canvas[i] = _resample(src[bg:bg + 1], size)[0]
        side = int(rng.integers(3 * size // 8, 5 * size // 8 + 1))
        top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
        patch = _resample(src[obj:obj + 1], side)[0]
        ry, rx = side / 2 * rng.uniform(0.7, 1.0, 2)
        inside = ((yy[:side, :side] - side / 2) / ry) ** 2 + ((xx[:side, :side] - side / 2) / rx) ** 2 <= 1
        window = canvas[i, :, top:top + side, left:left + side]
        window[:, inside] = patch[:, inside]
        labels[i, top:top + side, left:left + side][inside] = superclass(classes[obj:obj + 1])[0]
    return Data(np.clip(canvas, 0, 255).round() / 255.0, labels)


def cifar_task(path, n_train: int = 800, n_test: int = 256, size: int = 64, held_out: int = 246,
               seed: int = 0) -> tuple[Data, Data]:
    """(train, test) canvases from the CIFAR-10 NPZ at ``path``: the last ``held_out`` images make the
    test canvases only, the others the training canvases only; both standardised per channel with the
    training canvases' mean and standard deviation."""
    with np.load(path) as f:
        x, y = f["x"], f["y"].astype(np.int64)
    if len(x) <= held_out + 1:
        raise DataError(f"{path} has {len(x)} images; the task holds out {held_out} and needs more")
    train = pasted_objects(x[:-held_out], y[:-held_out], n_train, size, seed)
    test = pasted_objects(x[-held_out:], y[-held_out:], n_test, size, seed + 1)
    mean = train.x.mean(axis=(0, 2, 3), keepdims=True)
    std = train.x.std(axis=(0, 2, 3), keepdims=True)
    return tuple(Data(((d.x - mean) / std).astype(np.float32), d.y) for d in (train, test))


def at_resolution(data: Data, size: int) -> Data:
    """Canvases resampled to ``size``: images bilinear, labels nearest."""
    if data.x.shape[-1] == size:
        return data
    y = F.interpolate(torch.from_numpy(data.y)[:, None].float(), size=(size, size), mode="nearest")
    return Data(_resample(data.x, size), y[:, 0].long().numpy(), data.synthetic)


def mean_iou(pred: np.ndarray, y: np.ndarray, classes: int) -> float:
    """Mean over the labels present in ``y`` or ``pred`` of intersection / union, in percent."""
    ious = []
    for c in range(classes):
        p, t = pred == c, y == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return 100.0 * float(np.mean(ious))


@torch.no_grad()
def predict(net: torch.nn.Module, x: np.ndarray, size: int, batch: int = 256) -> np.ndarray:
    """Labels at ``size`` x ``size``: the logits of ``net`` on ``x`` upsampled (bilinear), argmax."""
    net.eval()
    out = []
    for s in range(0, len(x), batch):
        logits = net(torch.from_numpy(x[s:s + batch]))
        out.append(F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False).argmax(1))
    return torch.cat(out).numpy()


class SegmentationEvaluator:
    """Trains each architecture of ``space`` on ``train`` and scores it on ``test`` (module docstring).
    ``config``: :class:`~zeroshot.train.TrainConfig` fields; ``augment`` is off for dense labels.
    ``admit``: optional ``encodings -> bool mask``; the search skips refused architectures like infeasible
    ones (for example a latency cap at another resolution than the trained one)."""

    def __init__(self, space, train: Data, test: Data, config: dict, admit=None):
        from zeroshot.train import TrainConfig
        self.space, self.train_data, self.test = space, train, test
        self.config = TrainConfig(**config)
        self.config.validate()
        self.classes = int(max(train.y.max(), test.y.max())) + 1
        self._cache: dict[int, Data] = {}
        self.results: dict[str, dict] = {}         # encoding -> its metrics (the search keeps accuracy only)
        self.admit = admit

    def covers(self, archs: Sequence[str]) -> np.ndarray:
        return np.ones(len(archs), dtype=bool) if self.admit is None else np.asarray(self.admit(archs), bool)

    def __call__(self, archs: Sequence[str]) -> list[dict]:
        from zeroshot.train import train
        out = []
        for a in archs:
            arch = self.space.to_ir(a)
            res = arch.input_shape[-1]
            if res not in self._cache:
                self._cache[res] = at_resolution(self.train_data, res)
            r = train(arch, self._cache[res], self.config, quiet=True)
            size = self.test.x.shape[-1]
            pred = predict(r.model, at_resolution(self.test, res).x, size)
            out.append({"accuracy": mean_iou(pred, self.test.y, self.classes),
                        "pixel_accuracy": 100.0 * float((pred == self.test.y).mean()),
                        "val_pixel_accuracy": r.val_accuracy, "train_seconds": r.seconds})
            self.results[a] = out[-1]
        return out


#: The mbv2 raw space at the toy task's scale: MobileNetV2's stages, channel multipliers 0.35..1 and
#: input (= output) resolutions 32, 48, 64 (1/16 to 1/8 of LR-ASPP's 512).
TOY_RAW = replace(MOBILENETV2_RAW, multipliers=(0.35, 0.5, 0.75, 1.0), resolutions=(32, 48, 64),
                  resolution_step=16)


def toy_space(parallelism: int = 16):
    """The mbv2 segmentation space of :data:`TOY_RAW` with the task's three labels."""
    return Mbv2Space(parallelism, classes=len(LABELS), task="segment", raw=TOY_RAW)
