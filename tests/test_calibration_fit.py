"""The few-shot fit's mechanisms: a kernel-count direction in the prior."""
import numpy as np
import pytest
from scipy.stats import spearmanr

from zeroshot.estimator.calibration_features import K_BUCKETS, N_COLS, arch_features, column_index, predict_features
from zeroshot.estimator.calibration_fit import calibrate_features
from zeroshot.estimator.calibration_prior import load_prior
from zeroshot.estimator.kernel_table import KERNEL_TYPES
from zeroshot.spaces import get_space


def _theta(value: str, cost: float) -> np.ndarray:
    """``cost`` per unit of ``value`` (n, ops, macs, mem) of every kernel left after folding."""
    theta = np.zeros(N_COLS)
    for t in KERNEL_TYPES:
        for kb in range(K_BUCKETS):
            theta[column_index(f"live.{t}.k{kb}.{value}")] = cost
    return theta


@pytest.fixture(scope="module")
def fbnet():
    space = get_space("fbnet")
    return arch_features(space, space.sample(300, seed=3))


def test_a_launch_bound_device_unlike_every_source_is_ranked_from_10_measurements(fbnet):
    """Most of its latency is a fixed cost per kernel (a GPU at batch 1), and no source of the prior is a
    GPU: the prior's kernel-count direction lets 10 measurements find it (without it: mean rho 0.93)."""
    y = predict_features(fbnet, 0.2, _theta("n", 0.01) + _theta("macs", 3e-10))
    prior = load_prior().subset("fbnet").without_kinds({"gpu"})
    rho = []
    for seed in range(5):
        idx = np.random.default_rng(seed).choice(len(y), 10, replace=False)
        rest = np.setdiff1d(np.arange(len(y)), idx)
        b, theta = calibrate_features(fbnet[idx], y[idx], prior)
        rho.append(spearmanr(predict_features(fbnet[rest], b, theta), y[rest]).statistic)
    assert np.mean(rho) >= 0.96, rho

