"""Shared fixtures: the shared reference data (skipped with a reason where absent)."""
import pytest

from zeroshot.spaces.shared_data import shared_data


def need_shared(relative: str):
    """Path of a shared data file, or skip the test saying which file is missing."""
    path = shared_data(relative)
    if path is None:
        pytest.skip(f"../shared/data/{relative} is absent (set ZEROSHOT_SHARED_DATA to its folder)")
    return path


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small networks on a shared machine), restored afterwards."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
