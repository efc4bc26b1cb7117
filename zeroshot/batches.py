"""Input batches for the network proxies: an NPZ file of images and labels, or documented synthetic input.

File format: an ``.npz`` with ``x`` and ``y``.  ``x`` is either ``(N, H, W, C)`` uint8 images (as stored
by most datasets) or ``(N, C, H, W)`` floating point arrays; ``y`` is ``(N,)`` integer class labels.

Normalisation: uint8 images are scaled to [0, 1] and then standardised per channel with the mean and
standard deviation of the file's own images (so no dataset statistics need to be known); float arrays are
taken as already normalised and used as they are.  The result is always float32 ``(N, C, H, W)``.

Synthetic input (no file): ``x`` drawn i.i.d. from N(0, 1) and ``y`` uniform over the classes, both from
``numpy.random.default_rng(seed)``, so proxies that need data are reproducible for a seed.

Example
-------
>>> d = synthetic_data(4, (3, 8, 8), classes=10, seed=0)
>>> d.x.shape, d.x.dtype.name, d.y.tolist(), d.synthetic
((4, 3, 8, 8), 'float32', [9, 5, 8, 1], True)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError, ParameterError

__all__ = ["Data", "load_data", "resize", "synthetic_data", "validate"]


@dataclass(frozen=True)
class Data:
    """A batch: ``x`` float32 (N, C, H, W), ``y`` int64 (N,), and whether it is synthetic."""

    x: np.ndarray
    y: np.ndarray
    synthetic: bool = False

    def __len__(self) -> int:
        return len(self.x)


def synthetic_data(n: int, shape: tuple[int, int, int], classes: int, seed: int = 0) -> Data:
    """``n`` seeded Gaussian inputs of ``shape`` (C, H, W) with uniform random labels in ``0..classes-1``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    y = rng.integers(0, classes, size=n, dtype=np.int64)
    return Data(x, y, synthetic=True)


def load_data(path: str, shape: tuple[int, int, int] | None = None, classes: int | None = None) -> Data:
    """Load and validate an NPZ batch (see the module docstring).

    ``shape`` (C, H, W) is the network input the images must match; ``classes`` the number of outputs
    every label must fit.  Raises :class:`~zeroshot.errors.DataError` (or, for ``classes``,
    :class:`~zeroshot.errors.ParameterError`) saying what was expected and how to fix it.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise DataError(f"{path}: expected arrays 'x' and 'y' in the NPZ, missing {', '.join(missing)}"
                                f" (found {', '.join(f.files) or 'none'})")
            x, y = f["x"], f["y"]
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as an NPZ file with 'x' and 'y': {e}") from None
    return validate(x, y, shape, classes, source=path)


def validate(x: np.ndarray, y: np.ndarray, shape: tuple[int, int, int] | None = None,
             classes: int | None = None, source: str = "data") -> Data:
    """Check and normalise raw arrays into a :class:`Data` (the rules of :func:`load_data`)."""
    if x.ndim != 4:
        raise DataError(f"{source}: x must be (N, H, W, C) uint8 or (N, C, H, W) float, got shape {x.shape}")
    layout = "(N, H, W, C) uint8" if x.dtype == np.uint8 else "(N, C, H, W) float"
    if x.dtype == np.uint8:
        x = x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        std = x.std(axis=(0, 2, 3), keepdims=True)
        x = (x - mean) / np.where(std > 0, std, 1.0)
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{source}: x holds NaN or infinite values; clean the data")
    else:
        raise DataError(f"{source}: x must be uint8 (N, H, W, C) images or float (N, C, H, W), "
                        f"got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise DataError(f"{source}: the network takes inputs of shape (C, H, W) = {tuple(shape)}, the data "
                        f"gives {tuple(x.shape[1:])} (after reading it as {layout}); resize the images, or "
                        f"build the space for that input (its resolution option, where the space takes one)")
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise DataError(f"{source}: y must be one label per image, shape ({len(x)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(f"{source}: labels must be >= 0, got {int(y.min())}")
    if classes is not None and len(y) and y.max() >= classes:
        raise ParameterError("classes", f"at least {int(y.max()) + 1} (the labels of {source} go up to "
                             f"{int(y.max())})", classes)
    return Data(x, y)


def resize(data: Data, size: tuple[int, int]) -> Data:
    """``data`` resampled to ``size`` (H, W) with bilinear interpolation (antialiased when shrinking), for
    networks whose input resolution differs from the images' (mbv2 candidates at 160 to 224 pixels)."""
    if tuple(data.x.shape[2:]) == tuple(size):
        return data
    import torch
    from torch.nn import functional as F
    x = F.interpolate(torch.from_numpy(data.x), size=tuple(size), mode="bilinear", align_corners=False,
                      antialias=size[0] < data.x.shape[2])
    return Data(np.ascontiguousarray(x.numpy()), data.y, data.synthetic)
