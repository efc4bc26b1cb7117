"""Baseline-relative screening: the baseline goes through the stages, is scored in the survivors' batch, and
sets the constraints and the score floor that are not given."""
import argparse
import json

import numpy as np
import pytest

from zeroshot.api import estimate, score
from zeroshot.cli import main, models_from_args
from zeroshot.funnel import ScreenConfig, proxy_codes, run_screen, screen
from zeroshot.proxies.topology import topology_features
from zeroshot.scoring import DEFAULT_PROXIES, compute_proxies, rank_aggregate
from zeroshot.spaces import get_space, to_table
from zeroshot.spaces.baselines import get_baseline
from zeroshot.store import ResultStore

CHEAP = dict(n=400, chunk=200, survivors=0, top=3, seed=0)        # about 60 of 400 mbv2 candidates beat it
SCORED = dict(n=400, chunk=200, survivors=5, top=3, seed=0, proxy_scale=0.25)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("scored") / "s.db")
    return db, run_screen(ScreenConfig(space="mbv2", **SCORED), db, quiet=True)


def test_the_default_baseline_is_mobilenetv2_for_the_task_and_nb201_has_none():
    r = screen("mbv2", space_options={"task": "detect"}, **CHEAP)
    assert r.summary["baseline"]["arch"] == get_baseline("mbv2", "mobilenetv2", task="detect")
    assert screen("nb201", n=300, survivors=0, top=3).summary["baseline"] is None


def test_the_baseline_is_scored_in_the_survivors_batch(scored):
    db, summary = scored
    with ResultStore(db) as store:
        rows = store.candidates(summary["run_id"], "scored")
    assert len(rows) == 5
    space = get_space("mbv2")
    base = summary["baseline"]
    codes = proxy_codes(space, space.parse(base["arch"])[None], SCORED["proxy_scale"])
    own = compute_proxies(space, codes, DEFAULT_PROXIES, seed=SCORED["seed"], batch_size=16)
    batch = {n: np.append([r[n] for r in rows], own[n]) for n in DEFAULT_PROXIES}
    score = rank_aggregate(batch)
    assert base["score"] == pytest.approx(score[-1])
    assert [r["score"] for r in rows] == pytest.approx(score[:-1].tolist())
    alone = rank_aggregate({n: v[:-1] for n, v in batch.items()})         # without it the scores differ
    assert not np.allclose(alone, score[:-1])


def test_the_default_constraints_and_score_floor_come_from_the_baseline(scored):
    db, summary = scored
    base = summary["baseline"]
    assert summary["constraints"] == {"latency_ms": np.nextafter(base["latency_ms"], 0),
                                      "params": base["params"], "peak_activation_bytes": base["peak_kb"] * 1024}
    assert summary["min_score"] == base["score"]
    assert summary["shortlist"]
    for row in summary["shortlist"]:
        assert row["latency_ms"] < base["latency_ms"] and row["params"] <= base["params"]
        assert row["peak_kb"] <= base["peak_kb"] and row["score"] >= base["score"]
        assert row["latency_pct"] == pytest.approx(100 * (row["latency_ms"] / base["latency_ms"] - 1))
        assert row["score_vs_baseline"] == pytest.approx(row["score"] - base["score"])
    with ResultStore(db) as store:
        passed = store.candidates(summary["run_id"], "passed")
    assert max(r["latency_ms"] for r in passed) < base["latency_ms"]


@pytest.mark.parametrize("param, metric, value", [("max_latency_ms", "latency_ms", 1.1),
                                                  ("max_params", "params", 3e6),
                                                  ("max_peak_kb", "peak_activation_bytes", 6000)])
def test_each_constraint_overrides_the_baselines(param, metric, value):
    r = screen("mbv2", **{param: value}, min_score=None, **CHEAP)
    base = r.summary["baseline"]
    expected = {"latency_ms": np.nextafter(base["latency_ms"], 0), "params": base["params"],
                "peak_activation_bytes": base["peak_kb"] * 1024}
    expected[metric] = value * (1024 if param == "max_peak_kb" else 1)        # the others stay the baseline's
    assert r.summary["constraints"] == expected
    assert len(r.shortlist) and (r.shortlist[metric] <= expected[metric]).all()


def test_min_score_none_a_value_and_nothing_beats_the_baseline():
    default = screen("mbv2", **CHEAP).summary
    floor = default["baseline"]["score"]
    ranked = screen("mbv2", min_score=None, **dict(CHEAP, top=100)).summary["shortlist"]
    assert default["shortlist"] == [r for r in ranked if r["score"] >= floor][:3]
    assert min(r["score"] for r in ranked) < floor                     # the floor removed some
    free = screen("mbv2", min_score="none", **CHEAP).summary
    assert free["min_score"] == -np.inf and free["shortlist"] == ranked[:3]
    value = screen("mbv2", min_score=ranked[1]["score"], **CHEAP).summary
    assert value["shortlist"] == ranked[:2]
    high = screen("mbv2", min_score=1e9, **CHEAP).summary
    assert high["shortlist"] == [] and high["counts"]["shortlisted"] == 0
    assert [r["arch"] for r in high["closest"]] == [r["arch"] for r in free["shortlist"]]
    with pytest.raises(ValueError, match="min_score must be 'baseline', a number or None"):
        screen("mbv2", min_score="high", **CHEAP)


def test_a_baseline_by_encoding_or_none():
    space = get_space("mbv2")
    other = space.sample(1, seed=7)[0]
    r = screen("mbv2", baseline=other, **CHEAP)
    assert r.summary["baseline"]["arch"] == other
    assert all(row["arch"] != other for row in r.summary["shortlist"])
    none = screen("mbv2", baseline=None, **CHEAP).summary
    assert none["baseline"] is None and none["constraints"] == {} and len(none["shortlist"]) == 3


def test_cli_prints_the_baseline_its_changes_and_json_fields(tmp_path, capsys):
    args = ["screen", "mbv2", "-n", "400", "--chunk", "200", "--survivors", "0", "--top", "3"]
    assert main(args + ["--db", str(tmp_path / "a.db"), "--min-score", "none"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith(get_baseline("mbv2", "mobilenetv2") + "  (baseline)") and "%" not in out[2]
    assert out[1].split()[-4:] == ["latency", "params", "peak", "score"] and out[3].count("%") == 3
    assert main(args + ["--db", str(tmp_path / "b.db"), "--json", "--min-score", "none"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for row in [summary["baseline"]] + summary["shortlist"]:
        assert {"arch", "score", "latency_ms", "params", "peak_kb"} <= set(row)
    assert {"latency_pct", "params_pct", "peak_pct", "score_vs_baseline"} <= set(summary["shortlist"][0])
    assert main(args + ["--db", str(tmp_path / "c.db"), "--min-score", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "nothing beats the baseline" in out and "the closest by score" in out and "(baseline)" in out


@pytest.mark.parametrize("flag, value, message", [
    ("--min-score", "high", "--min-score must be 'baseline', a number or 'none', got 'high'"),
    ("--baseline", "resnet50", "--baseline must be a baseline of mbv2 (mobilenetv2) or an encoding of the space")])
def test_cli_bad_baseline_input_is_one_line_and_exit_2(flag, value, message, tmp_path, capsys):
    assert main(["screen", "mbv2", "-n", "10", flag, value, "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_report_marks_the_baseline_and_scores_relative_to_it(scored, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from zeroshot import report
    db, summary = scored
    labels, marks = [], []
    real = report._plot_pareto

    def spy(plt, path, rows, run):
        labels.append(report._score_label(run))
        marks.append(run["baseline"])
        real(plt, path, rows, run)
    monkeypatch.setattr(report, "_plot_pareto", spy)
    page = report.write_report(db, str(tmp_path / "r")).read_text()
    assert labels == ["default score (rank aggregate) minus the baseline's (> 0: above the baseline)"]
    assert marks[0]["arch"] == summary["baseline"]["arch"]
    assert "<h2>Baseline</h2>" in page and "changes from the baseline" in page
    space = get_space("mbv2")
    for row in summary["shortlist"]:
        assert f"<td>{report.differences(space, row['arch'], summary['baseline']['arch'])}</td>" in page


def test_differences_name_what_changed():
    from zeroshot.report import differences
    space = get_space("mbv2")
    base = get_baseline("mbv2", "mobilenetv2")
    assert differences(space, base, base) == "same network"
    wider = base.replace("i3e6c320", "f5e4c384").replace("h1280", "h1024")
    assert differences(space, wider, base) == ("stage 7: width 384 (320), fused 1 (0), kernels 5 (3), "
                                               "expansions 4 (6); head 1024 (1280)")


MODEL = '''import torch.nn as nn
def big():
    return nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU6(),
                         nn.Conv2d(64, 256, 3, 2, 1), nn.BatchNorm2d(256), nn.ReLU6(),
                         nn.Conv2d(256, 1024, 3, 2, 1), nn.BatchNorm2d(1024), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))
'''


def test_a_torch_network_as_the_baseline_goes_through_estimate_and_score(tmp_path, capsys):
    (tmp_path / "net.py").write_text(MODEL)
    model = f"{tmp_path / 'net.py'}:big"
    db = str(tmp_path / "m.db")
    args = ["screen", "mbv2", "-n", "400", "--chunk", "200", "--top", "3", "--proxy-scale", "0.25"]
    assert main(args + ["--survivors", "4", "--model", model, "--input", "3,224,224", "--db", db, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ir = models_from_args(argparse.Namespace(model=model, input="3,224,224", space=None))[0]
    cost = estimate([ir], device="mobile-npu-16").row(0)
    base = summary["baseline"]
    assert base["arch"] == "big" and base["latency_ms"] == pytest.approx(cost["latency_ms"])
    assert summary["constraints"]["params"] == cost["params"]
    own = score([ir], proxies=DEFAULT_PROXIES, seed=0, batch_size=16)
    with ResultStore(db) as store:
        rows = store.candidates(summary["run_id"], "scored")
    batch = rank_aggregate({n: np.append([r[n] for r in rows], own[n][0]) for n in DEFAULT_PROXIES})
    assert base["score"] == pytest.approx(batch[-1])
    # cheap stages only: the network's cheap score is its whole-network value, the candidates' floor
    assert main(args + ["--survivors", "0", "--model", model, "--input", "3,224,224", "--db", db, "--json"]) == 0
    cheap = json.loads(capsys.readouterr().out)
    entropy = topology_features(to_table([ir]))["entropy"][0]
    assert cheap["baseline"]["arch"] == "big" and cheap["baseline"]["score"] == pytest.approx(entropy, rel=1e-12)
    assert all(r["score"] >= entropy for r in cheap["shortlist"])
    assert main(args + ["--baseline", "none", "--model", model, "--input", "3,224,224", "--db", db]) == 2
    assert "either --baseline or --model" in capsys.readouterr().err
