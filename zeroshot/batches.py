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

import zipfile
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


def load_data(path: str, shape: tuple[int, int, int] | None = None, classes: int | None = None,
              input_param: str = "resolution") -> Data:
    """Load and validate an NPZ batch (see the module docstring).

    ``shape`` (C, H, W) is the network input the images must match; ``classes`` the number of outputs
    every label must fit; ``input_param`` the parameter that sets the input side, named when square images
    of another side come (a space's ``resolution``, or ``input_shape`` of a network of one's own).  Raises :class:`~zeroshot.errors.DataError` (or, for ``classes``,
    :class:`~zeroshot.errors.ParameterError`) saying what was expected and how to fix it.
    """
    x, y = _read_npz(path)
    return validate(x, y, shape, classes, source=path, input_param=input_param)


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y`` of the NPZ file ``path``: a :class:`~zeroshot.errors.DataError` for a file that
    cannot be read, is no NPZ archive or lacks them."""
    expected = "an NPZ archive of arrays 'x' and 'y'; write one with np.savez(FILE, x=images, y=labels)"
    try:
        f = np.load(path, allow_pickle=False)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    except EOFError:
        raise DataError(f"{path} is empty, not {expected}") from None
    except (ValueError, zipfile.BadZipFile):        # neither a zip nor a .npy (numpy: "pickled data"), a damaged zip
        raise DataError(f"{path} is not {expected}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array (a .npy file), not {expected}")
    with f:
        missing = [k for k in ("x", "y") if k not in f.files]
        if missing:
            raise DataError(f"{path}: expected arrays 'x' and 'y' in the NPZ, missing {', '.join(missing)}"
                            f" (found {', '.join(f.files) or 'none'})")
        try:
            return f["x"], f["y"]
        except zipfile.BadZipFile as e:             # a damaged member
            raise DataError(f"{path} is a damaged NPZ archive ({e}); write it again") from None
        except ValueError:                          # an object array: numpy would have to unpickle it
            raise DataError(f"{path}: x and y must be arrays of numbers, not of Python objects; convert them "
                            f"before np.savez") from None


def validate(x: np.ndarray, y: np.ndarray, shape: tuple[int, int, int] | None = None,
             classes: int | None = None, source: str = "data", input_param: str = "resolution") -> Data:
    """Check and normalise raw arrays into a :class:`Data` (the rules of :func:`load_data`)."""
    x, layout = _normalised_images(x, source)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        _refuse_shape(tuple(x.shape[1:]), tuple(shape), layout, source, input_param)
    return Data(x, _checked_labels(y, len(x), classes, source))


def _normalised_images(x: np.ndarray, source: str) -> tuple[np.ndarray, str]:
    """Images as normalised float32 (N, C, H, W), and the layout they were read as."""
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
    return np.ascontiguousarray(x, dtype=np.float32), layout


def _refuse_shape(data: tuple, network: tuple, layout: str, source: str, input_param: str) -> None:
    """Images that do not fit the network: square images of its channels name ``input_param`` (the space's
    ``resolution``, or ``input_shape``: :class:`ParameterError`), anything else is a :class:`DataError`."""
    shapes = (f"the network takes inputs of shape (C, H, W) = {network}, the data gives {data} (after reading "
              f"it as {layout})")
    if input_param == "input_shape" and data[0] == network[0]:
        raise ParameterError("input_shape", f"{data} to take the images of {source}", network,
                             f"{shapes}; otherwise resize the images")
    if data[0] == network[0] and data[1] == data[2] and network[1] == network[2]:
        raise ParameterError("resolution", f"{data[1]} to take the images of {source}, where the space has that "
                             f"option", network[1], f"{shapes}; otherwise resize the images")
    raise DataError(f"{source}: {shapes}; resize the images, or build the space for that input")


def _checked_labels(y, n: int, classes: int | None, source: str) -> np.ndarray:
    """One integer label >= 0 per image, each below ``classes`` (when given), as int64."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{source}: y must be one label per image, shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(f"{source}: labels must be >= 0, got {int(y.min())}")
    if classes is not None and len(y) and y.max() >= classes:
        raise ParameterError("classes", f"at least {int(y.max()) + 1} (the labels of {source} go up to "
                             f"{int(y.max())})", classes)
    return y


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
