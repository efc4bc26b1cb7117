"""The command line speaks to users: help that says what each command and option does (with its default), no
Python text in what it prints, the same flag meaning the same thing everywhere, messages on the right
stream, and the workflows of its commands chained together."""
import argparse
import json
import re

import pytest

from zeroshot.cli import build_parser, main
from zeroshot.proxies import PROXIES
from zeroshot.scoring import DEFAULT_PROXIES
from zeroshot.spaces import get_space

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def commands(parser=None, name="zeroshot"):
    """``(name, parser)`` of every subcommand (``zeroshot device profile`` too)."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield f"{name} {sub_name}", sub
                yield from commands(sub, f"{name} {sub_name}")


def options(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


COMMANDS = list(commands())
IDS = [name for name, _ in COMMANDS]


# ------------------------------------------------------------------------------------------ help
@pytest.mark.parametrize("name, parser", COMMANDS, ids=IDS)
def test_every_command_says_what_it_does(name, parser):
    assert parser.description and len(parser.description.split()) >= 8, f"{name} has no description"


@pytest.mark.parametrize("name, parser", COMMANDS, ids=IDS)
def test_every_option_says_what_it_does_and_its_default(name, parser):
    for action in options(parser):
        flag = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{name} {flag} has no help"
        if action.option_strings and action.default not in (None, False):
            assert "default" in action.help, f"{name} {flag} does not state its default {action.default!r}"


PYTHON_TEXT = [r"``", r":(func|mod|class|meth|data):", r"zeroshot/\w+\.py", r"strategies\.py", r"\bNone\b",
               r"\bTrue\b", r"\bFalse\b", r"\bzs\.", r"\w+Space\("]


@pytest.mark.parametrize("name, parser", COMMANDS, ids=IDS)
def test_help_has_no_python_text(name, parser):
    text = parser.format_help()
    for pattern in PYTHON_TEXT:
        assert not re.search(pattern, text), f"{name} --help shows {pattern}: {re.search(pattern, text)[0]!r}"


def test_screen_help_states_the_defaults_the_audit_missed():
    text = " ".join(dict(COMMANDS)["zeroshot screen"].format_help().split())
    assert "images per network proxy batch (default 16" in text
    assert "default entropy)" in text and "(default 20000)" in text
    assert "local (processes on this machine, the default)" in text
    assert "KiB" in text
    assert "seed of the sampled candidates" in text


def test_refine_budget_states_its_minimum():
    text = " ".join(dict(COMMANDS)["zeroshot refine"].format_help().split())
    assert "at least 50" in text


def test_score_proxies_points_to_the_proxies_command():
    assert "`zeroshot proxies`" in " ".join(dict(COMMANDS)["zeroshot score"].format_help().split())


# ------------------------------------------------------------------------------------------ proxies
def test_proxies_lists_every_proxy_with_kind_needs_and_direction(capsys):
    assert main(["proxies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "needs", "better", "description"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert set(rows) == set(PROXIES.names())
    p = PROXIES.get("ntk")
    assert rows["ntk"] == [p.kind, p.needs, "lower"]
    assert main(["proxies", "--kind", "topology"]) == 0
    assert all(line.split()[1] == "topology" for line in capsys.readouterr().out.splitlines()[1:])


# ------------------------------------------------------------------------------------------ flags
def test_abbreviated_flags_are_refused_by_the_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["score", "nb201", "--archs", "-", "--batch", "2"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "zeroshot score: error: unrecognized arguments: --batch 2" in err
    assert "see zeroshot score --help" in err


def test_measure_takes_the_common_spellings_and_keeps_its_own():
    parser = build_parser()
    new = parser.parse_args(["measure", "nb201", "--archs", "-", "--batch-size", "4", "--image-size", "16"])
    old = parser.parse_args(["measure", "nb201", "--archs", "-", "--batch", "4", "--resolution", "16"])
    assert (new.batch, new.resolution) == (old.batch, old.resolution) == (4, 16)


@pytest.mark.parametrize("flag", ["--image-size", "--resolution"])
def test_measure_errors_name_the_spelling_given(flag, tmp_path, capsys):
    archs = tmp_path / "a.txt"
    archs.write_text(NB201_ARCH + "\n")
    assert main(["measure", "nb201", "--archs", str(archs), flag, "2"]) == 2
    assert f"zeroshot measure: error: {flag} must be a size every op fits" in capsys.readouterr().err


def test_refine_proxies_takes_default_as_rewrite_does(monkeypatch):
    from zeroshot.commands import cmd_refine
    from zeroshot.scoring import resolve_proxies

    assert resolve_proxies("default") == list(DEFAULT_PROXIES)
    seen = {}

    def fake_refine(space, base, dims, device, budget, seed, proxies, resolution):
        seen["proxies"] = proxies
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_refine, "refine", fake_refine)
    assert main(["refine", "mbv2", "mobilenetv2", "--search", "fusion", "--proxies", "default"]) == 130
    assert seen["proxies"] == list(DEFAULT_PROXIES)


def test_search_device_names_a_cost_profile_and_says_where_the_torch_device_goes(tmp_path, capsys):
    oracle = tmp_path / "o.csv"
    oracle.write_text("arch,acc\n" + "".join(f"{a},{i}\n" for i, a in enumerate(get_space("nb201").sample(5))))
    assert main(["search", "nb201", "--strategy", "random", "--budget", "2", "--oracle", str(oracle),
                 "--column", "acc", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown device 'cuda'" in err and "--train-device cuda" in err


# ------------------------------------------------------------------------------------------ outputs
def test_rewrite_report_names_the_space_as_a_user_does(capsys):
    assert main(["rewrite", "mbv2", "mobilenetv2", "--apply", "snap:P=16", "--device", "mobile-npu-16"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("# mbv2 (P=16, 1000 classes, classify) on mobile-npu-16;"), first


def test_export_json_to_standard_output_and_binary_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "nb201", NB201_ARCH, "--format", "json", "-o", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["arch"] == NB201_ARCH and err == ""
    assert main(["export", "nb201", NB201_ARCH, "--format", "torch", "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert "--format torch is binary, only --format json writes to standard output" in err and "-o net.pt" in err
    assert list(tmp_path.iterdir()) == []                       # no file named '-'


def test_wrote_lines_go_to_standard_error(tmp_path, capsys):
    archs, cost, net = tmp_path / "a.txt", tmp_path / "cost.csv", tmp_path / "net.json"
    for args, path in ((["sample", "nb201", "-n", "3", "-o", str(archs)], archs),
                       (["estimate", "nb201", "--archs", str(archs), "-o", str(cost)], cost),
                       (["export", "nb201", NB201_ARCH, "--format", "json", "-o", str(net)], net)):
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"zeroshot {args[0]}: wrote {path}") and err.count("\n") == 1


def test_calibrate_reads_what_measure_writes_and_keeps_stdout_clean(tmp_path, capsys):
    archs = get_space("nb201").sample(8, seed=3)
    lat = tmp_path / "lat.csv"                      # the columns `zeroshot measure` writes
    lat.write_text("arch,latency_ms,noise\n" + "".join(f"{a},{1 + i / 4},0.0{i + 1}\n" for i, a in enumerate(archs)))
    assert main(["calibrate", "nb201", "--measurements", str(lat), "-o", str(tmp_path / "p.json")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"zeroshot calibrate: wrote {tmp_path / 'p.json'}: ")
    assert "column 'latency_ms'" in json.loads((tmp_path / "p.json").read_text())["description"]


def test_device_actions_name_themselves_in_errors(capsys):
    assert main(["device", "check", "mobile-npu-16"]) == 2
    assert capsys.readouterr().err.startswith("zeroshot device check: error: mobile-npu-16 is a ")


# ------------------------------------------------------------------------------------------ runs
@pytest.fixture
def small_run(tmp_path, capsys):
    """A 30-candidate mbv2 screen with the cheap stages only (no baseline, so every candidate passes)."""
    db = tmp_path / "run.db"
    assert main(["screen", "mbv2", "-n", "30", "--survivors", "0", "--baseline", "none", "--db", str(db)]) == 0
    capsys.readouterr()
    return db


def test_report_names_the_runs_it_holds_and_takes_last(small_run, tmp_path, capsys):
    assert main(["report", str(small_run), "-o", str(tmp_path / "r"), "--run", "9"]) == 2
    assert capsys.readouterr().err.strip() == (f"zeroshot report: error: {small_run} has no run 9; runs in this "
                                               f"database: 1 (screen)")
    pytest.importorskip("matplotlib")
    assert main(["report", str(small_run), "-o", str(tmp_path / "r"), "--run", "last"]) == 0
    assert capsys.readouterr().out.strip().endswith("index.html")


def test_patterns_picks_a_smaller_top_for_a_small_run_and_says_so(small_run, capsys):
    assert main(["patterns", str(small_run), "--by", "cheap"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("run 1: best 15 by cheap") and "comparing the best 15 (--top sets how many)" in err
    assert main(["patterns", str(small_run), "--by", "cheap", "--top", "20"]) == 2
    assert "lower --top to 15 or less" in capsys.readouterr().err
    assert main(["patterns", str(small_run), "--run", "9"]) == 2
    assert "runs in this database: 1 (screen)" in capsys.readouterr().err


def test_an_interrupted_screen_says_how_to_continue(tmp_path, monkeypatch, capsys):
    from zeroshot.commands import cmd_screen

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_screen, "screen", interrupted)
    db = str(tmp_path / "s.db")
    assert main(["screen", "nb201", "-n", "30", "--db", db]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("zeroshot screen: interrupted") and f"--db {db} --resume last" in err


def test_the_store_names_its_runs_for_any_missing_one(small_run):
    from zeroshot.errors import StoreError
    from zeroshot.store import ResultStore
    with ResultStore(str(small_run), readonly=True) as store:
        store.check_run(1)
        for ask in (lambda: store.check_run(7), lambda: store.run_config(7)):
            with pytest.raises(StoreError, match="has no run 7; runs in this database: 1 \\(screen\\)$"):
                ask()
