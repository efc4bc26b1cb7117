"""The command-line contract: outputs, and bad input refused with one line and exit status 2."""
import csv
import io
import json
import subprocess
import sys

import pytest

from zeroshot.spaces import list_spaces
from zeroshot.cli import main
from zeroshot.store import ResultStore


def run(args, stdin=""):
    p = subprocess.run([sys.executable, "-m", "zeroshot", *args], input=stdin, capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_spaces_lists_every_space_with_its_size(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in list_spaces():
        assert name in out
    assert "15,625" in out


@pytest.mark.parametrize("name", list_spaces())
def test_sample_then_estimate(name, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    assert main(["sample", name, "-n", "7", "--seed", "5", "-o", str(archs)]) == 0
    lines = archs.read_text().splitlines()
    assert len(lines) == len(set(lines)) == 7
    assert main(["estimate", name, "--archs", str(archs)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["arch"] for r in rows] == lines
    assert list(rows[0])[:4] == ["arch", "params", "macs", "peak_activation_bytes"]
    assert all(int(r["params"]) > 0 and int(r["macs"]) > 0 for r in rows)


def test_sample_all_nb201_through_a_pipe():
    code, out, err = run(["sample", "nb201", "--all"])
    assert code == 0
    assert len(out.splitlines()) == 15625 == len(set(out.splitlines()))


def test_estimate_reads_stdin():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    code, out, _ = run(["estimate", "nb201", "--archs", "-"], stdin=arch + "\n")
    assert code == 0 and out.splitlines()[1].startswith(arch + ",802426,")


@pytest.mark.parametrize("args, stdin, words", [
    (["estimate", "nb201", "--archs", "-"], "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n|bad~0|\n",
     "line 2:"),
    (["estimate", "nb201", "--archs", "/no/such/file"], "", "cannot read /no/such/file"),
    (["estimate", "nb201", "--archs", "-"], "\n# only a comment\n", "no architectures"),
    (["sample", "nosuch", "-n", "3"], "", "unknown space 'nosuch'; choose from"),
    (["sample", "nb201", "-n", "20000"], "", "only 15625"),
    (["sample", "nb201", "-n", "-1"], "", "non-negative"),
    (["sample", "nb201", "-n", "2", "-P", "16"], "", "does not take --parallelism"),
    (["sample", "mbv2", "-n", "2", "--image-size", "16"], "", "does not take --image-size; it takes --parallelism"),
    (["sample", "nb201", "-n", "2", "--image-size", "0"], "", "must be positive"),
    (["sample", "nb201", "-n", "2", "--image-size", "7"], "", "multiple of 4"),
    (["sample", "nb201", "-n", "2", "--image-size", "100000"], "", "--image-size must be at most 4096 pixels"),
    (["measure", "nb201", "--archs", "-", "--batch", str(10 ** 9)], "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n",
     "--batch must be a batch whose activations fit in half of this machine's"),
    (["export", "mbv2", "nosuch", "--format", "json", "-o", "x.json"], "", "or name a baseline of mbv2: mobilenetv2"),
    (["estimate", "nb201"], "", "--archs must be a file of encodings"),
    (["measure", "nb201"], "", "--archs must be a file of encodings"),
    (["sample", "nb201", "-n", "2", "--seed", "-1"], "", "--seed must be an integer from 0 to 2^63 - 1"),
    (["export", "nb201", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--format", "json", "-o", "x.json",
      "--seed", str(2 ** 64)], "", "--seed must be an integer from 0 to 2^63 - 1"),
    (["estimate", "nb201", "--archs", "-", "--input", "3,32,32"], "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n",
     "--input is the input shape of --model networks"),
    (["baseline", "nosuch"], "", "unknown space 'nosuch'; choose from"),
    (["refine", "mbv2", "mobilenetv2", "--search", "fusion", "--budget", "20"], "", "--budget must be at least 50"),
    (["search", "nb201", "--strategy", "random", "--budget", "2", "--oracle", "o.csv", "--column", "acc",
      "--backend", "nosuch"], "", "unknown backend 'nosuch'; choose from local, ray"),
    (["search", "nb201", "--strategy", "random", "--budget", "2", "--oracle", "o.csv", "--column", "acc",
      "--workers", "0"], "", "--workers must be an integer >= 1, got 0"),
    (["search", "nb201", "--strategy", "random", "--budget", "2", "--weight-decay", "-1"], "",
     "--weight-decay must be at least 0"),
    (["search", "nb201", "--strategy", "random", "--budget", "2", "--train-batch-size", "0"], "",
     "--train-batch-size must be at least 1, got 0"),
])
def test_bad_input_one_line_exit_2(args, stdin, words):
    code, out, err = run(args, stdin)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert words in err


def test_screen_builds_the_space_of_every_space_flag(tmp_path, capsys):
    """--image-size reaches the screen's configuration (and so its workers and database), not only the check."""
    peak = {}
    for size in ("32", "16"):
        db = str(tmp_path / f"s{size}.db")
        assert main(["screen", "nb201", "--image-size", size, "-n", "20", "--survivors", "0", "--db", db,
                     "--json"]) == 0
        capsys.readouterr()
        store = ResultStore(db, space="nb201", space_options={"resolution": int(size)})   # refuses other options
        peak[size] = max(r["peak_activation_bytes"] for r in store.candidates(1))
        store.close()
    assert peak["16"] < peak["32"]


@pytest.mark.parametrize("args, words", [
    (["--survivors", "-1"], "zeroshot screen: error: --survivors must be an integer >= 0, got -1"),
    (["--chunk", "0"], "--chunk must be an integer >= 1, got 0"),
    (["--proxy-scale", "2"], "--proxy-scale must be in (0, 1], got 2.0"),
    (["--cheap", "synflow"], "--cheap must be a topology proxy (no network), got 'synflow'"),
    (["--max-params", "10"], "the tightest is --max-params 10, which removed 40 of 40 sampled candidates: "
                             "relax --max-params"),
    (["--max-peak-kb", "1"], "the tightest is --max-peak-kb 1, which removed 40 of 40 sampled candidates"),
    (["--resume", "x"], "--resume must be a run id or 'last', got 'x'"),
    (["--resume", "last"], "has no screen run"),
    (["--scored", "0"], "--scored must be a number of survivors, at least 1, or 'all', got 0"),
    (["--scored", "many"], "--scored must be a number of survivors or 'all', got 'many'"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 2^63 - 1, got -1"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_screen_bad_input_names_the_flag(args, words, tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["screen", "nb201", "-n", "40", "--survivors", "0", "--db", db, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and words in captured.err


def test_export_takes_a_baseline_name(tmp_path, capsys):
    out = tmp_path / "mb.json"
    assert main(["export", "mbv2", "mobilenetv2", "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["arch"].startswith("r224 s32 | i3e1c16 |")


def test_screen_json_is_strict_json_without_a_baseline(tmp_path, capsys):
    """No score floor (nb201 has no baseline) is null, not -Infinity, which strict parsers refuse."""
    assert main(["screen", "nb201", "-n", "40", "--survivors", "0", "--db", str(tmp_path / "s.db"), "--json"]) == 0
    text = capsys.readouterr().out
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))
    assert summary["min_score"] is None and summary["shortlist"]


def test_report_of_a_missing_database_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.db"), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"zeroshot report: error: {tmp_path / 'none.db'} does not exist"
    assert not (tmp_path / "out").exists()


def test_nothing_half_written_on_error(tmp_path):
    target = tmp_path / "out.csv"
    archs = tmp_path / "archs.txt"
    archs.write_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\nnot an arch\n")
    code, _, err = run(["estimate", "nb201", "--archs", str(archs), "-o", str(target)])
    assert code == 2 and "line 2" in err
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["archs.txt"]     # no temp file left behind
