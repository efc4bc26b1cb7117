"""The default score, rank aggregation, the data loader and ``zeroshot score`` (fast: few small archs)."""
import csv
import io
import warnings

import numpy as np
import pytest

import zeroshot as zs
from zeroshot.spaces import get_space
from zeroshot.cli import main
from zeroshot.batches import load_data, synthetic_data, validate
from zeroshot.errors import Error
from zeroshot.proxies.compiled import NARROW_BITS, count_distinct_rows, pack_signs
from zeroshot.scoring import DEFAULT_PROXIES, compute_proxies, rank_aggregate

CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
         "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|",
         "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]


@pytest.fixture
def archs(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(CELLS) + "\n")
    return str(path)


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------------ rank aggregation
def test_rank_aggregate_by_hand_and_directions():
    v = {"params": np.array([1.0, 3.0, 2.0]), "depth": np.array([3.0, 2.0, 1.0])}
    expected = np.log([1 / 3, 3 / 3, 2 / 3]) + np.log([3 / 3, 2 / 3, 1 / 3])
    np.testing.assert_allclose(rank_aggregate(v), expected)


def test_undefined_values_rank_worst():
    s = rank_aggregate({"entropy": np.array([np.nan, -np.inf, 1.0, 0.5])})
    assert np.argmax(s) == 2 and s[0] == s[1] < s[3]


# ------------------------------------------------------------------ data
def test_uint8_images_are_standardised_per_channel():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 5, 5, 3), dtype=np.uint8)
    d = validate(x, np.arange(6) % 3, shape=(3, 5, 5), classes=3)
    assert d.x.shape == (6, 3, 5, 5) and d.x.dtype == np.float32
    np.testing.assert_allclose(d.x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(d.x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    ref = (x[1, 2, 3, 0] / 255 - (x[..., 0] / 255).mean()) / (x[..., 0] / 255).std()
    assert d.x[1, 0, 2, 3] == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("x, y, classes, message", [
    (np.zeros((4, 32, 32), np.uint8), np.zeros(4, int), 10, "(N, H, W, C) uint8"),
    (np.zeros((4, 3, 32, 32), np.float32), np.zeros(4, int), 10, "(C, H, W) = (3, 16, 16)"),
    (np.zeros((4, 16, 16, 3), np.uint8), np.zeros(3, int), 10, "one label per image"),
    (np.zeros((4, 16, 16, 3), np.uint8), np.array([0, 1, 2, 12]), 10, "classes must be at least 13"),
    (np.full((4, 3, 16, 16), np.nan, np.float32), np.zeros(4, int), 10, "NaN"),
])
def test_bad_data_is_refused_with_a_fix(x, y, classes, message):
    with pytest.raises(Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(x, y, shape=(3, 16, 16), classes=classes)


def test_load_npz_and_synthetic_are_deterministic(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((2, 4, 4, 3), np.uint8), y=np.array([0, 1]))
    d = load_data(str(path), (3, 4, 4), 2)
    assert not d.synthetic and d.y.tolist() == [0, 1]
    np.savez(tmp_path / "nox.npz", y=np.array([0, 1]))
    with pytest.raises(Error, match="missing x"):
        load_data(str(tmp_path / "nox.npz"))
    a, b = synthetic_data(3, (3, 4, 4), 5, seed=7), synthetic_data(3, (3, 4, 4), 5, seed=7)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and a.synthetic


# ------------------------------------------------------------------ command line
def test_score_topology_proxies(archs, capsys):
    rc, out, _ = _run(["score", "nb201", "--archs", archs, "--proxies", "live_params,depth"], capsys)
    rows = _csv(out)
    assert rc == 0 and list(rows[0]) == ["arch", "score", "live_params", "depth"]
    assert [r["arch"] for r in rows] == CELLS
    assert float(rows[0]["live_params"]) > float(rows[1]["live_params"]) > 0
    assert rows[2]["depth"] == "-inf"                           # no input->output path
    scores = [float(r["score"]) for r in rows]
    assert scores[0] == max(scores) and scores[2] == min(scores)


@pytest.mark.parametrize("extra, message", [
    (["--proxies", "params,nosuch"], "unknown proxy 'nosuch'; choose from"),
    (["--proxies", ","], "--proxies must be at least one proxy name"),
    (["--batch-size", "1"], "--batch-size must be at least 2"),
])
def test_bad_cli_input_is_one_line_exit_2(archs, capsys, extra, message):
    rc, out, err = _run(["score", "nb201", "--archs", archs] + extra, capsys)
    assert rc == 2 and out == "" and message in err and err.count("\n") == 1


def test_data_that_does_not_fit_the_network(archs, tmp_path, capsys):
    bad_shape = tmp_path / "shape.npz"
    np.savez(bad_shape, x=np.zeros((4, 28, 28, 1), np.uint8), y=np.zeros(4, int))
    rc, _, err = _run(["score", "nb201", "--archs", archs, "--data", str(bad_shape)], capsys)
    assert rc == 2 and "(3, 32, 32)" in err and err.count("\n") == 1
    labels = tmp_path / "labels.npz"
    np.savez(labels, x=np.zeros((4, 32, 32, 3), np.uint8), y=np.array([0, 1, 2, 3]))
    rc, _, err = _run(["score", "nb201", "--archs", archs, "--data", str(labels), "--classes", "3",
                       "--proxies", "params"], capsys)
    assert rc == 2 and "--classes must be at least 4" in err



# ------------------------------------------------------------------ network proxies through the score
def test_network_proxies_run_once_per_isomorphism_class(monkeypatch):
    import zeroshot.proxies.network as network

    calls = []
    real = network.compute_network_proxies

    def counting(arch, names, *a, **k):
        calls.append(arch)
        return real(arch, names, *a, **k)

    monkeypatch.setattr(network, "compute_network_proxies", counting)
    space = get_space("nb201", channels=4, cells=1)
    twins = ["|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
             "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
             "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"]
    codes = np.array([space.parse(c) for c in twins])
    out = compute_proxies(space, codes, ["naswot", "live_params"], batch_size=8)
    assert len(calls) == 2                                  # the first two cells are isomorphic
    assert out["naswot"][0] == out["naswot"][1] != out["naswot"][2]


def test_default_score_cli(tmp_path, capsys):
    path = tmp_path / "two.txt"
    path.write_text(CELLS[2] + "\n" + CELLS[1] + "\n")
    rc, out, err = _run(["score", "nb201", "--archs", str(path), "--batch-size", "4"], capsys)
    rows = _csv(out)
    assert rc == 0 and list(rows[0]) == ["arch", "score", *DEFAULT_PROXIES]
    assert "no --data" in err                                # synthetic input is announced
    warned = [line for line in err.splitlines() if "swap reads 16 samples but the batch has 4" in line]
    assert warned and warned[0].startswith("zeroshot score: warning: ")   # one line, no source excerpt
    assert "UserWarning" not in err and "compute_network_proxies(" not in err
    assert float(rows[0]["score"]) < float(rows[1]["score"])  # the cut network ranks last


def test_score_cli_image_size_matches_imagenet16_data(tmp_path, capsys):
    """ImageNet16-120 style data (16 x 16 images, 120 classes) needs nb201 built at 16 px: said, then done."""
    rng = np.random.default_rng(0)
    data = tmp_path / "in16.npz"
    np.savez(data, x=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8), y=rng.integers(0, 120, 8))
    path = tmp_path / "two.txt"
    path.write_text(CELLS[0] + "\n" + CELLS[1] + "\n")
    base = ["score", "nb201", "--archs", str(path), "--data", str(data), "--classes", "120", "--batch-size", "8",
            "--proxies", "naswot,jacob_cov"]
    rc, out, err = _run(base, capsys)
    assert rc == 2 and out == "" and "(3, 32, 32)" in err and "--image-size" in err
    np.savez(data, x=rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8), y=[3])
    rc, out, err = _run(base + ["--image-size", "16"], capsys)
    assert rc == 2 and out == "" and "--data must be at least 2 images" in err and len(err.strip().splitlines()) == 1
    np.savez(data, x=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8), y=rng.integers(0, 120, 8))
    rc, out, err = _run(base + ["--image-size", "16"], capsys)
    rows = _csv(out)
    assert rc == 0 and len(rows) == 2 and all(np.isfinite(float(r["naswot"])) for r in rows)


def test_score_is_deterministic_for_a_seed():
    space = get_space("nb201", channels=4, cells=1)
    archs = space.sample(4, seed=1)
    a, b, c = (zs.score(archs, space=space, seed=seed, batch_size=8) for seed in (5, 5, 6))
    assert all(np.array_equal(a[n], b[n]) for n in a.columns if n != "arch")
    assert not np.array_equal(a["meco"], c["meco"])


@pytest.mark.parametrize("samples", [1, 16, NARROW_BITS, NARROW_BITS + 1, 64, 65])
def test_distinct_patterns_narrow_and_wide_paths_agree_with_unique(samples):
    """swap's count: the bitmap path (one word of at most NARROW_BITS bits) and the hash path."""
    rng = np.random.default_rng(samples)
    units = rng.standard_normal((5000, samples)).astype(np.float32)
    units[:2000] = units[:1] * (rng.random((2000, 1)) + 0.5)                 # many repeated patterns
    units[:, :samples // 2] = np.abs(units[:, :samples // 2]) * (samples % 2 * 2 - 1)     # biased columns
    expect = len(np.unique(units > 0, axis=0))
    assert count_distinct_rows(pack_signs(units)) == expect
    assert count_distinct_rows(pack_signs(units[:1])) == 1


def test_linear_regions_near_its_cap_on_most_networks_warns():
    from zeroshot.proxies.linear_regions import LR_SAMPLES
    from zeroshot.scoring import _warn_at_cap
    with pytest.warns(RuntimeWarning, match="linear_regions is within 2% of its cap .* on 2 of 3 networks"):
        _warn_at_cap(np.array([LR_SAMPLES - 3, LR_SAMPLES, 504.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_at_cap(np.array([LR_SAMPLES - 3, 504.0, 700.0]))         # a minority: no warning
