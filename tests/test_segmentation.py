"""The synthetic segmentation task (benchmarks/segmentation_task.py) and training segmentation networks."""
import sys
from pathlib import Path

import numpy as np
import pytest

from zeroshot.errors import InputError
from zeroshot.spaces import get_space
from zeroshot.spaces.mbv2 import MOBILENETV2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # the task is a benchmark fixture
import segmentation_task  # noqa: E402
from segmentation_task import (SegmentationEvaluator, at_resolution, mean_iou, pasted_objects,  # noqa: E402
                               superclass, toy_space)


def test_the_module_examples_run():
    import doctest
    result = doctest.testmod(segmentation_task)
    assert result.attempted > 0 and result.failed == 0


def _images(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


def test_labels_mark_exactly_the_pasted_pixels():
    imgs, classes = _images()
    imgs[:] = (10 + 20 * np.arange(len(imgs)))[:, None, None, None]     # one flat, distinct value per image
    d = pasted_objects(imgs, classes, n=5, size=32, seed=1)
    assert d.x.shape == (5, 3, 32, 32) and d.y.shape == (5, 32, 32)
    for x, y in zip(d.x, d.y):
        fg = np.unique(y[y > 0])
        assert len(fg) == 1 and 0.05 < (y > 0).mean() < 0.4        # one object, an ellipse of 3/8..5/8 side
        obj, bg = np.unique(x[:, y > 0]), np.unique(x[:, y == 0])     # the object's image exactly where labelled
        assert len(obj) == len(bg) == 1 and obj[0] != bg[0]
        i = int(round(obj[0] * 255 - 10)) // 20                       # the pasted image: its superclass
        assert superclass(classes[i:i + 1])[0] == fg[0]
    assert superclass(np.array([0, 1, 2, 8, 9, 3])).tolist() == [1, 1, 2, 1, 1, 2]
    again = pasted_objects(*_images(), n=5, size=32, seed=1)
    assert np.array_equal(again.y, pasted_objects(*_images(), n=5, size=32, seed=1).y)       # seeded


def test_mean_iou_and_resolution():
    y = np.zeros((1, 4, 4), np.int64)
    y[0, :2] = 1
    pred = y.copy()
    pred[0, 0, 0] = 0
    assert mean_iou(pred, y, 2) == pytest.approx(100 * (8 / 9 + 7 / 8) / 2)        # background, object
    d = pasted_objects(*_images(), n=2, size=32, seed=0)
    small = at_resolution(d, 16)
    assert small.x.shape[-1] == 16 and set(np.unique(small.y)) <= set(np.unique(d.y))


def test_segmentation_networks_train_and_detection_ones_are_refused(one_torch_thread):
    space = toy_space()
    d = pasted_objects(*_images(), n=12, size=32, seed=0)
    ev = SegmentationEvaluator(space, d, d, dict(epochs=1, max_steps=2, batch_size=4, optimizer="adamw", seed=0),
                               admit=lambda archs: [a.startswith("r32") for a in archs])
    arch = space.format(space.parse(MOBILENETV2.replace("r224", "r32")))
    (m,) = ev([arch])
    assert 0 <= m["accuracy"] <= 100 and 0 <= m["pixel_accuracy"] <= 100 and ev.results[arch] == m
    assert ev.covers([arch, arch.replace("r32", "r64", 1)]).tolist() == [True, False]
    from zeroshot.train import TrainConfig, train
    det = get_space("mbv2", task="detect")
    with pytest.raises(InputError, match="classification and segmentation"):
        train(det.to_ir(MOBILENETV2), d, TrainConfig(epochs=1))
