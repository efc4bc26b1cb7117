"""Typed errors of the data readers (zeroshot.batches, zeroshot.training_sets): DataError for the data,
ParameterError naming the parameter, and the command line's flag for it."""
import numpy as np
import pytest

from zeroshot.batches import load_data, synthetic_data, validate
from zeroshot.cli import error_line
from zeroshot.errors import DataError, ParameterError
from zeroshot.training_sets import load_dataset, split


def test_labels_beyond_the_classes_name_the_classes_parameter():
    x, y = np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 2, 12])
    with pytest.raises(ParameterError, match=r"classes must be at least 13 \(the labels of data go up to 12\), "
                                             r"got 10") as info:
        validate(x, y, shape=(3, 8, 8), classes=10)
    assert info.value.param == "classes"
    assert error_line(info.value).startswith("--classes must be at least 13")
    assert validate(x, y, shape=(3, 8, 8), classes=13).y.tolist() == [0, 1, 2, 12]


def test_bad_files_and_arrays_are_data_errors(tmp_path):
    np.savez(tmp_path / "noy.npz", x=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="missing y"):
        load_data(str(tmp_path / "noy.npz"))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match="junk.npz is not an NPZ archive"):
        load_data(str(tmp_path / "junk.npz"))
    with pytest.raises(DataError, match=r"the network takes inputs of shape \(C, H, W\) = \(1, 8, 8\)") as info:
        validate(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, int), shape=(1, 8, 8))
    assert "--" not in str(info.value)          # a library message names no command-line flag


def test_square_images_of_another_size_name_the_resolution():
    with pytest.raises(ParameterError, match=r"resolution must be 4 to take the images of data.*got 8; the network "
                                             r"takes inputs of shape \(C, H, W\) = \(3, 8, 8\)") as info:
        validate(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, int), shape=(3, 8, 8))
    assert "--" not in str(info.value)
    assert error_line(info.value).startswith("--image-size must be 4")


def test_missing_data_and_bad_split_name_their_parameters(tmp_path):
    with pytest.raises(ParameterError, match="no such file or folder") as info:
        load_dataset(str(tmp_path / "missing.npz"), (3, 8, 8))
    assert info.value.param == "data"
    d = synthetic_data(10, (3, 4, 4), classes=2, seed=0)
    with pytest.raises(ParameterError, match="val_fraction must be between 0 and 1") as info:
        split(d, 1.0, seed=0)
    assert error_line(info.value).startswith("--val-fraction must be")
    with pytest.raises(DataError, match="too few"):
        split(synthetic_data(1, (3, 4, 4), classes=2), 0.5, seed=0)
