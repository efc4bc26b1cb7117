"""Training sets: an NPZ of images and labels (:mod:`zeroshot.batches`) or a folder of class subfolders.

Image folder layout: ``ROOT/<class name>/<image file>``, class labels in sorted folder-name order.  Images
are read with Pillow (an optional dependency; without it the error says how to install it), converted to
RGB (or grey for a 1-channel network), resized to the network's input and normalised like an NPZ
(:func:`zeroshot.batches.validate`).  :func:`split` makes the seeded train / validation split.

Example
-------
>>> from zeroshot.batches import synthetic_data
>>> d = synthetic_data(10, (3, 8, 8), classes=2, seed=0)
>>> train, val = split(d, 0.2, seed=0)
>>> len(train), len(val)
(8, 2)
"""
from __future__ import annotations

import os

import numpy as np

from .batches import Data, load_data, validate
from .errors import DataError, ParameterError

__all__ = ["IMAGE_SUFFIXES", "load_dataset", "load_image_folder", "split"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def load_dataset(path: str, shape: tuple[int, int, int], classes: int | None = None) -> Data:
    """An NPZ file or an image folder, validated against the network's input ``shape`` and ``classes``."""
    if os.path.isdir(path):
        return load_image_folder(path, shape, classes)
    if not os.path.exists(path):
        raise ParameterError("data", "an NPZ with x and y, or a folder of class subfolders of images", path,
                             "there is no such file or folder")
    return load_data(path, shape, classes)


def load_image_folder(root: str, shape: tuple[int, int, int], classes: int | None = None) -> Data:
    """The images of ``ROOT/<class name>/`` (see the module docstring) resized to ``shape`` (C, H, W)."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"reading the image folder {root} needs Pillow (pip install pillow); or convert it "
                        f"to an NPZ with arrays x (N, H, W, C uint8) and y (N,)") from None
    c, h, w = shape
    if c not in (1, 3):
        raise DataError(f"image folders hold grey or RGB images; the network takes {c} channels: use an NPZ")
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not names:
        raise DataError(f"{root}: expected one subfolder of images per class, found none")
    xs, ys = [], []
    for label, name in enumerate(names):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            if not f.lower().endswith(IMAGE_SUFFIXES):
                continue
            try:
                with Image.open(os.path.join(folder, f)) as im:
                    im = im.convert("RGB" if c == 3 else "L").resize((w, h), Image.BILINEAR)
                    xs.append(np.asarray(im, dtype=np.uint8).reshape(h, w, c))
            except OSError as e:
                raise DataError(f"cannot read image {os.path.join(folder, f)}: {e}") from None
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class subfolders")
    return validate(np.stack(xs), np.array(ys, dtype=np.int64), shape, classes, source=root)


def split(data: Data, val_fraction: float, seed: int) -> tuple[Data, Data]:
    """Seeded random split into (train, validation); the validation part has at least one sample."""
    n = len(data)
    if not 0.0 < val_fraction < 1.0:
        raise ParameterError("val_fraction", "between 0 and 1 (exclusive)", val_fraction)
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise DataError(f"{n} samples are too few for a train / validation split; give more data")
    order = np.random.default_rng(seed).permutation(n)
    tr, va = order[n_val:], order[:n_val]
    return Data(data.x[tr], data.y[tr], data.synthetic), Data(data.x[va], data.y[va], data.synthetic)
