"""Bad files and paths on the command line: refused with one line and exit status 2 (no traceback), leaving
the user's files as they were and no output behind; files written atomically keep the umask's mode."""
import os
import sqlite3

import numpy as np
import pytest
import torch

from zeroshot.atomic import check_writable, open_atomically, write_text_atomically
from zeroshot.cli import main
from zeroshot.errors import ParameterError
from zeroshot.funnel import screen
from zeroshot.spaces import get_space
from zeroshot.train import _load_checkpoint

ARCH = get_space("nb201").sample(1, seed=0)[0]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder of bad files: empty, binary, text, a plain .npy, a damaged zip, a directory, a
    model file not ending in .py, and good ones (encodings, a small NPZ of 32x32 images)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "garbage.bin").write_bytes(bytes(range(256)) * 4)       # 0x80..0xff: not UTF-8
    (tmp_path / "garbage.txt").write_text("hello world\n")
    (tmp_path / "fakezip.npz").write_bytes(b"PK\x03\x04" + b"junk" * 50)
    (tmp_path / "adir").mkdir()
    (tmp_path / "m.txt").write_text("import torch\ndef f():\n    return torch.nn.Conv2d(3, 8, 3)\n")
    (tmp_path / "one.txt").write_text(ARCH + "\n")
    np.save(tmp_path / "arr.npy", np.zeros(3))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d32.npz", x=rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), y=np.arange(20) % 10)
    return tmp_path


def refused(args, capsys) -> str:
    """The one stderr line of a command refused with exit status 2."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


NOT_NPZ = "not an NPZ archive of arrays 'x' and 'y'"


@pytest.mark.parametrize("args, words", [
    # --data: what numpy makes of files that are no NPZ archive
    (["score", "nb201", "--archs", "one.txt", "--data", "empty.txt"], NOT_NPZ),
    (["score", "nb201", "--archs", "one.txt", "--data", "arr.npy"], "a single array (a .npy file)"),
    (["score", "nb201", "--archs", "one.txt", "--data", "fakezip.npz"], NOT_NPZ),
    (["score", "nb201", "--archs", "one.txt", "--data", "garbage.txt"], NOT_NPZ),
    (["score", "nb201", "--archs", "one.txt", "--data", "garbage.bin"], NOT_NPZ),
    # binary files where text is read
    (["estimate", "nb201", "--archs", "garbage.bin"], "garbage.bin is not UTF-8 text"),
    (["calibrate", "nb201", "--measurements", "garbage.bin", "-o", "x.json"], "garbage.bin is not UTF-8 text"),
    (["search", "nb201", "--strategy", "random", "--budget", "5", "--oracle", "garbage.bin", "--column", "acc"],
     "oracle garbage.bin is not UTF-8 text"),
    # outputs that cannot be written
    (["export", "nb201", ARCH, "--format", "torch", "-o", "nodir/e.pt"], "cannot write nodir/e.pt"),
    (["export", "nb201", ARCH, "--format", "torch", "-o", "adir"], "cannot write adir: Is a directory"),
    (["export", "nb201", ARCH, "--format", "json", "-o", "nodir/e.json"], "cannot write nodir/e.json"),
    (["screen", "nb201", "-n", "5", "--db", "adir"], "adir is a directory"),
    (["screen", "nb201", "-n", "5", "--db", "nodir/s.db"], "cannot open nodir/s.db"),
    (["train", "nb201", ARCH, "--data", "d32.npz", "--max-steps", "1", "--db", "nodir/t.db"],
     "cannot open nodir/t.db"),
    (["train", "nb201", ARCH, "--data", "d32.npz", "--max-steps", "1", "--checkpoint", "nodir/c.pt"],
     "cannot write checkpoint nodir/c.pt"),
    (["train", "nb201", ARCH, "--data", "d32.npz", "--max-steps", "1", "--checkpoint", "adir"],
     "cannot write checkpoint adir"),
    # files that exist but are not what they should be
    (["train", "nb201", ARCH, "--data", "d32.npz", "--max-steps", "1", "--checkpoint", "garbage.bin"],
     "--checkpoint must be a checkpoint written by zeroshot train, got 'garbage.bin'"),
    (["train", "nb201", ARCH, "--data", "d32.npz", "--max-steps", "1", "--checkpoint", "empty.txt"],
     "--checkpoint must be a checkpoint written by zeroshot train, got 'empty.txt'"),
    (["report", "adir", "-o", "rep"], "adir is a directory"),
    (["patterns", "adir"], "adir is a directory"),
    (["estimate", "--model", "m.txt:f", "--input", "3,32,32"], "m.txt is not a .py file"),
    (["patterns", "x.db", "--top", "-1"], "--top must be an integer >= 1, got -1"),
])
def test_bad_file_or_path_is_one_line(folder, capsys, args, words):
    before = sorted(p.name for p in folder.iterdir())
    assert words in refused(args, capsys)
    after = sorted(p.name for p in folder.iterdir())
    assert after == before or set(after) - set(before) <= {"zeroshot-nb201.db"}    # train's run record


@pytest.mark.parametrize("command", [["report", "e.db", "-o", "rep"], ["patterns", "e.db"]])
@pytest.mark.parametrize("content", [b"", b"hello world\n" * 100])
def test_a_database_that_is_not_one_is_refused_untouched(folder, capsys, command, content):
    (folder / "e.db").write_bytes(content)
    assert "e.db is not a zeroshot results database" in refused(command, capsys)
    assert (folder / "e.db").read_bytes() == content and not (folder / "rep").exists()


def test_resume_of_a_missing_database_creates_none(folder, capsys):
    assert "new.db has no screen run" in refused(["screen", "nb201", "-n", "5", "--db", "new.db", "--resume",
                                                  "last"], capsys)
    assert not [p for p in folder.iterdir() if p.name.startswith("new.db")]


def test_report_output_that_is_a_file_or_cannot_be_made(folder, capsys):
    screen("nb201", n=100, survivors=0, top=3, db="s.db", quiet=True)
    assert "cannot write the report into garbage.txt: it is a file" in refused(
        ["report", "s.db", "-o", "garbage.txt"], capsys)
    assert "cannot write the report into empty.txt/rep" in refused(["report", "s.db", "-o", "empty.txt/rep"], capsys)


def test_report_says_a_run_did_not_finish(folder, capsys):
    pytest.importorskip("matplotlib")
    screen("nb201", n=100, survivors=0, top=3, db="s.db", quiet=True)
    with sqlite3.connect("s.db") as con:                  # as a screen killed mid-way leaves it
        con.execute("UPDATE runs SET status = 'running'")
    con.close()
    assert main(["report", "s.db", "-o", "rep"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: s.db: run 1 has not finished (status 'running'" in err
    assert "run 1 has not finished" in (folder / "rep" / "index.html").read_text()


# ------------------------------------------------------------------ zeroshot.atomic
def test_atomic_files_get_the_mode_open_gives(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomically("a\n", tmp_path / "t.txt")
        with open_atomically(tmp_path / "b.bin", "wb") as f:
            f.write(b"\0")
        open(tmp_path / "plain.txt", "w").close()
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"t.txt": 0o640, "b.bin": 0o640, "plain.txt": 0o640}


def test_atomic_write_leaves_nothing_on_error_and_checks_before_work(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(ZeroDivisionError):
        with open_atomically(tmp_path / "keep.txt") as f:
            f.write("half")
            1 / 0
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"] and (tmp_path / "keep.txt").read_text() == "old"
    for bad, error in ((tmp_path, IsADirectoryError), (tmp_path / "no" / "x", FileNotFoundError)):
        with pytest.raises(error):
            check_writable(bad)
        with pytest.raises(error):
            with open_atomically(bad):
                pytest.fail("the block runs only when the path can be written")
    check_writable(tmp_path / "new.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("header", [b"", b"\x80\x02", b"PK\x03\x04"], ids=["bytes", "pickle", "zip"])
def test_a_checkpoint_of_random_bytes_is_refused_in_one_error(tmp_path, header):
    """Files torch.save did not write fail to load in many ways (unpickler stack, zip reader): each one is the
    same typed error, and nothing in them runs (tensors and plain values only are unpickled)."""
    rng = np.random.default_rng(len(header))
    for i in range(10):
        path = tmp_path / f"c{i}.pt"
        path.write_bytes(header + rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8).tobytes())
        with pytest.raises(ParameterError, match="a checkpoint written by zeroshot train"):
            _load_checkpoint(str(path), torch.device("cpu"))


def test_reading_a_database_leaves_no_side_files(folder, capsys):
    """report and patterns read a finished screen's database and leave only it (SQLite's -wal / -shm go)."""
    screen("nb201", n=100, survivors=0, top=3, db="s.db", quiet=True)
    before = sorted(p.name for p in folder.iterdir())
    assert main(["report", "s.db", "-o", "rep"]) == 0
    main(["patterns", "s.db"])
    capsys.readouterr()
    assert sorted(p.name for p in folder.iterdir() if p.name != "rep") == before
    assert "s.db" in before and not [name for name in before if name.startswith("s.db-")]
