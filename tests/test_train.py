"""Real training: the loss decreases on a separable set, resume equals an uninterrupted run, seeds,
augmentation, image folders, the CLI and its bad input."""

import numpy as np
import pytest
import torch

from zeroshot.spaces import get_space
from zeroshot.cli import main
from zeroshot.batches import Data
from zeroshot.training_sets import load_dataset, split
from zeroshot.errors import Error, ParameterError
from zeroshot.store import ResultStore
from zeroshot.train import TrainConfig, augment, train

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
TINY = dict(classes=2, channels=4, cells=1, resolution=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def space():
    return get_space("nb201", **TINY)


def separable(n=160, seed=0):
    """Two classes whose images differ by the sign of their mean (noise 0.5)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 3, 8, 8)) * 0.5 + np.where(y == 0, 1.0, -1.0)[:, None, None, None]
    return Data(x.astype(np.float32), y.astype(np.int64))


def test_loss_decreases_and_learns_a_separable_set(space):
    r = train(space.to_ir(ARCH), separable(), TrainConfig(epochs=4, batch_size=32, augment=False), quiet=True)
    losses = [h["train_loss"] for h in r.history]
    assert losses[-1] < 0.7 * losses[0]
    assert r.val_accuracy >= 90.0
    assert r.steps == 4 * 5 and r.epochs == 4 and not r.stopped_early
    assert r.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)          # cosine to zero
    assert r.model is not None and not r.model.training


def test_same_seed_same_run_other_seed_other_run(space):
    cfg = TrainConfig(epochs=1, batch_size=32, max_steps=3)
    a = train(space.to_ir(ARCH), separable(), cfg, quiet=True)
    b = train(space.to_ir(ARCH), separable(), cfg, quiet=True)
    c = train(space.to_ir(ARCH), separable(), TrainConfig(epochs=1, batch_size=32, max_steps=3, seed=1), quiet=True)
    assert a.history == b.history
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert a.history != c.history


def test_resume_from_checkpoint_equals_uninterrupted(space, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=48, optimizer="adamw")
    data = separable(120)
    full = train(space.to_ir(ARCH), data, cfg, quiet=True)
    ckpt = str(tmp_path / "run.ckpt")

    def crash(rec):
        if rec["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(space.to_ir(ARCH), data, cfg, checkpoint=ckpt, on_epoch=crash, quiet=True)
    seen = []
    resumed = train(space.to_ir(ARCH), data, cfg, checkpoint=ckpt, on_epoch=seen.append, quiet=True)
    assert [r["epoch"] for r in seen] == [3]                        # only the missing epoch ran
    assert resumed.history == full.history
    for p, q in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(p, q)
    # a checkpoint of other settings is refused, not silently resumed
    with pytest.raises(ParameterError, match="it was written for others"):
        train(space.to_ir(ARCH), data, TrainConfig(epochs=4, batch_size=48), checkpoint=ckpt, quiet=True)


def test_max_steps_and_early_stop(space):
    r = train(space.to_ir(ARCH), separable(), TrainConfig(epochs=50, batch_size=32, max_steps=7), quiet=True)
    assert r.steps == 7 and r.epochs == 2
    # a validation accuracy that cannot improve (labels are noise) stops after `patience` epochs
    d = separable(64)
    noise = Data(d.x, np.random.default_rng(1).integers(0, 2, 64))
    r = train(space.to_ir(ARCH), noise, TrainConfig(epochs=40, batch_size=64, patience=1, lr=1e-6), quiet=True)
    assert r.stopped_early and r.epochs < 40


def test_augment_keeps_shape_and_content():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    y = augment(x, g)
    assert y.shape == x.shape
    # every output row is a (possibly flipped, shifted) piece of the input or zero padding
    values = set(x.flatten().tolist()) | {0.0}
    assert set(y.flatten().tolist()) <= values
    assert torch.equal(augment(x, torch.Generator().manual_seed(3)), augment(x, torch.Generator().manual_seed(3)))


def test_split_is_seeded_and_disjoint():
    d = separable(50)
    tr, va = split(d, 0.2, seed=0)
    assert len(tr) == 40 and len(va) == 10
    tr2, _ = split(d, 0.2, seed=0)
    assert np.array_equal(tr.x, tr2.x)
    with pytest.raises(Error, match="between 0 and 1"):
        split(d, 1.0, seed=0)


def test_image_folder(tmp_path):
    try:
        from PIL import Image
    except ImportError:
        with pytest.raises(Error, match="Pillow"):
            (tmp_path / "a").mkdir()
            load_dataset(str(tmp_path), (3, 8, 8), 2)
        return
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    d = load_dataset(str(tmp_path), (3, 8, 8), 2)
    assert d.x.shape == (6, 3, 8, 8) and d.y.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(Error, match="classes must be at least 2"):
        load_dataset(str(tmp_path), (3, 8, 8), 1)


def test_bad_config_is_a_user_error(space):
    for cfg, msg in ((TrainConfig(optimizer="adam"), "optimizer must be one of sgd, adamw, got 'adam'"),
                     (TrainConfig(epochs=0), "epochs must be at least 1"),
                     (TrainConfig(device="tpu"), "cpu, cuda, auto")):
        with pytest.raises(ParameterError, match=msg):
            train(space.to_ir(ARCH), separable(), cfg, quiet=True)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            train(space.to_ir(ARCH), separable(), TrainConfig(device="cuda"), quiet=True)


def cifar_like_npz(path, n=24, size=32, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), y=rng.integers(0, 2, n))
    return str(path)


def test_cli_train_records_epochs(tmp_path, capsys):
    npz = cifar_like_npz(tmp_path / "d.npz")
    db = str(tmp_path / "r.db")
    assert main(["train", "nb201", ARCH, "--data", npz, "--epochs", "2", "--max-steps", "1", "--db", db,
                 "--train-batch-size", "8", "--classes", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("epoch   1") and out[-1].startswith("trained " + ARCH) and len(out) == 2
    store = ResultStore(db, space="nb201", space_options={"classes": 2})
    run = store.runs()[-1]
    rows = store.candidates(run)
    assert len(rows) == 1 and rows[0]["arch"] == ARCH and rows[0]["stage"] == 2 and rows[0]["steps"] == 1
    assert store.run_summary(run)["history"][0]["epoch"] == 1
    store.close()


@pytest.mark.parametrize("argv, message", [
    (["train", "nb201", ARCH, "--data", "missing.npz"], "no such file or folder"),
    (["train", "nb201", "|bad|", "--data", "missing.npz"], "expected 3 nodes"),
    (["train", "nb201", ARCH, "--data", "missing.npz", "--optimizer", "adam"], "--optimizer must be one of sgd, adamw"),
    (["train", "nb201", ARCH, "--data", "small.npz", "--classes", "2"], "(3, 32, 32)"),
    (["train", "nb201", ARCH, "--data", "d.npz"], None),
])
def test_cli_bad_input_one_line_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cifar_like_npz(tmp_path / "small.npz", size=8)
    cifar_like_npz(tmp_path / "d.npz")
    if message is None:          # a device that is not a torch device
        argv = argv + ["--device", "mobile-npu-16"]
        message = "invalid choice"
    try:
        status = main(argv)
    except SystemExit as e:              # argparse's own one-line errors
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not (tmp_path / "zeroshot-nb201.db").exists()
