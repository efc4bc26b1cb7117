"""The screening funnel: determinism across backends, resume after SIGKILL, constraints, store, report."""
import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from zeroshot.spaces import get_space
from zeroshot.spaces.mbv2 import MOBILENETV2
from zeroshot.backends import LocalBackend
from zeroshot.cli import main
from zeroshot.commands.cmd_screen import print_summary
from zeroshot.constraints import Constraints, InfeasibleError
from zeroshot.errors import InputError, ParameterError, UnknownNameError
from zeroshot.estimator.devices import load_device
from zeroshot.funnel import ScreenConfig, ScreenResult, chunk_codes, proxy_codes, run_screen, screen
from zeroshot.pareto import pareto_front, pareto_stream
from zeroshot.scoring import DEFAULT_PROXIES
from zeroshot.store import STAGES, ResultStore, StoreError
from zeroshot.table import Table


def rows_of(db, run_id=1):
    """Every candidate of the run, by encoding, as the store reads it (rows and blocks alike)."""
    with ResultStore(str(db)) as store:
        out = store.candidates(run_id)
    for r in out:
        assert r.pop("run_id") == run_id
    return out


def test_pareto_front_by_hand():
    score = np.array([1.0, 2.0, 0.5, 3.0, 2.5])
    lat = np.array([1.0, 2.0, 0.5, 4.0, 4.5])
    assert sorted(pareto_front(score, lat).tolist()) == [0, 1, 2, 3]


def test_pareto_front_equals_the_definition_with_ties_nan_and_inf():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(0, 40))
        score = rng.integers(0, 4, n).astype(float)
        lat = rng.integers(0, 4, n).astype(float)
        score[rng.random(n) < 0.15] = (np.nan, np.inf, -np.inf)[trial % 3]
        # the definition: by increasing latency (higher score first), keep a point scoring strictly more than
        # every point before it; NaN never
        expect, best = [], -np.inf
        for i in np.lexsort((-score, lat)):
            if score[i] > best:
                expect.append(i)
                best = score[i]
        assert pareto_front(score, lat).tolist() == expect
        walked = [(i, score[i]) for i in np.lexsort((-score, lat))]     # the same walk, streamed
        assert list(pareto_stream(walked)) == expect


@pytest.mark.parametrize("space", ["nb201", "mbv2"])
def test_same_results_whatever_the_worker_count(tmp_path, space):
    cfg = ScreenConfig(space=space, n=3000, chunk=700, survivors=0, top=5, seed=3)
    a = run_screen(cfg, str(tmp_path / "a.db"), backend=LocalBackend(1), quiet=True)
    b = run_screen(cfg, str(tmp_path / "b.db"), backend=LocalBackend(2), quiet=True)
    assert a["shortlist"] == b["shortlist"]
    assert rows_of(tmp_path / "a.db") == rows_of(tmp_path / "b.db")
    if space == "nb201":
        assert a["counts"]["sampled"] == len(rows_of(tmp_path / "a.db")) < 3000      # de-duplicated


def test_network_proxies_are_identical_whatever_the_worker_count(tmp_path):
    cfg = ScreenConfig(space="mbv2", n=300, chunk=100, survivors=3, top=2, seed=5, proxy_scale=0.25)
    a = run_screen(cfg, str(tmp_path / "a.db"), backend=LocalBackend(1), quiet=True)
    b = run_screen(cfg, str(tmp_path / "b.db"), backend=LocalBackend(2), quiet=True)
    assert a["counts"]["scored"] == 3 and a["shortlist"] == b["shortlist"] and a["baseline"] == b["baseline"]
    assert rows_of(tmp_path / "a.db") == rows_of(tmp_path / "b.db")
    with ResultStore(str(tmp_path / "a.db"), space="mbv2") as store:
        scored = store.candidates(a["run_id"], "scored")
    for name in DEFAULT_PROXIES:          # the summary names exactly the proxies that took one value
        values = {r[name] for r in scored}
        assert (name in a["constant_proxies"]) == (len(values) == 1)


def test_screen_notes_a_proxy_that_does_not_rank(capsys):
    summary = {"run_id": 1, "counts": {"scored": 200}, "timings_s": {}, "rows": [
        {"arch": "a", "score": 1.0, "latency_ms": 2.0, "params": 3, "peak_activation_bytes": 1024}],
        "constant_proxies": {"swap": 65536.0}}
    print_summary(summary, "x.db")
    assert "note: swap is 65536 for every scored candidate (200), so it does not rank them" in capsys.readouterr().out


def test_local_workers_get_num_cpus_threads_and_the_caller_keeps_its_environment():
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    got = list(LocalBackend(2).map(os.getenv, ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"],
                                   resources={"num_cpus": 1}))
    assert got == ["1", "1"]
    assert os.environ.get("OPENBLAS_NUM_THREADS") == before


def _keys_by_hand(space, code):
    """mbv2 segment keys from the decoded architecture (the layout documented in spaces/mbv2.py)."""
    res, stem, head, stages = space.decode(code)
    h, c, keys = (res - 1) // 2 + 1, stem, [(res << 17) | stem]
    for blocks, stride, slots in zip(stages, space.curated.strides, space.curated.slots):
        for j in range(slots):
            if j >= len(blocks):
                keys.append(-1)
                continue
            typ, k, e, c_out = blocks[j]
            s = stride if j == 0 else 1
            keys.append((1 << 61) | (typ << 60) | (k << 56) | (e << 49) | (c << 32) | (c_out << 15) | (s << 13) | h)
            h, c = (h - 1) // s + 1, c_out
    return keys + [(2 << 61) | (c << 30) | (head << 13) | h]


def test_mbv2_sampling_is_curated_and_segment_keys_match_the_decoded_blocks():
    space = get_space("mbv2")
    codes = space.sample_codes(300, np.random.default_rng(4))
    assert space.contains(codes).all()
    assert np.array_equal(codes, space.sample_codes(300, np.random.default_rng(4)))
    rows = np.vstack([codes, space.parse(MOBILENETV2)])                 # a non-curated member too
    keys = space.segment_keys(rows)
    assert keys.tolist() == [_keys_by_hand(space, r) for r in rows]
    assert keys[-1].tolist() == space.segment_keys(rows[-1]).ravel().tolist()


def test_proxy_scale_shrinks_mbv2_inputs_only():
    mbv2 = get_space("mbv2")
    codes = mbv2.sample_codes(50, np.random.default_rng(1))
    scaled = proxy_codes(mbv2, codes, 0.75)
    assert sorted(set(scaled[:, 0].tolist())) == [120, 144, 168]
    assert np.array_equal(scaled[:, 1:], codes[:, 1:]) and codes[:, 0].min() >= 160       # input untouched
    assert proxy_codes(mbv2, codes, 0.01)[:, 0].min() == 32
    nb201 = get_space("nb201")
    cells = nb201.sample_codes(5, np.random.default_rng(1))
    assert proxy_codes(nb201, cells, 0.5) is cells
    with pytest.raises(ParameterError, match=r"^proxy_scale must be in \(0, 1\], got 1.5$"):
        run_screen(ScreenConfig(space="mbv2", n=10, proxy_scale=1.5), quiet=True)
    for batch in (0, 1):                 # 0 once fell back to the default batch, 1 failed in a worker
        with pytest.raises(ParameterError, match=f"^batch_size must be at least 2 .*, got {batch}$"):
            run_screen(ScreenConfig(space="nb201", n=10, batch_size=batch), quiet=True)


def test_constraints_filter_and_impossible_ones_name_the_tightest(tmp_path):
    cfg = ScreenConfig(space="nb201", n=1000, chunk=500, survivors=0, top=3, max_params=400_000)
    summary = run_screen(cfg, str(tmp_path / "c.db"), quiet=True)
    rows = rows_of(tmp_path / "c.db")
    assert all((r["params"] <= 400_000) == (r["stage"] >= 2) for r in rows)
    assert summary["counts"]["passed"] < summary["counts"]["sampled"]
    cfg = ScreenConfig(space="nb201", n=500, survivors=0, max_params=10, max_latency_ms=1e9)
    with pytest.raises(InfeasibleError, match=r"tightest is max_params 10, which removed 500 of 500 sampled "
                                              r"candidates: relax max_params$") as got:
        run_screen(cfg, str(tmp_path / "d.db"), quiet=True)
    assert got.value.param == "max_params"
    assert got.value.message_for("--max-params").endswith("relax --max-params")     # what the CLI prints


def test_database_of_another_space_or_newer_schema_is_refused(tmp_path):
    db = str(tmp_path / "x.db")
    ResultStore(db, space="nb201").close()
    with pytest.raises(StoreError, match="space 'nb201', not 'fbnet'"):
        ResultStore(db, space="fbnet")
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer zeroshot"):
        ResultStore(db, space="nb201")


# The screen run by the command line, SIGKILLed by itself inside the transaction of its KILL_AT-th cost chunk:
# after that chunk's block and completion marker are inserted, before they are committed.  No timing is involved.
KILL_AT = 4
_KILLED_SCREEN = f"""
import os, signal, sys
from zeroshot.cli import main
from zeroshot.store import ResultStore

write_codes, transaction, chunks = ResultStore.write_codes, ResultStore._tx, []

def counted_write_codes(self, run_id, chunk, *args, **kwargs):
    chunks.append(chunk)
    return write_codes(self, run_id, chunk, *args, **kwargs)

def killing_tx(self):
    tx = transaction(self)

    class Killing:
        def __enter__(self):
            tx.__enter__()

        def __exit__(self, *exc):
            if len(chunks) == {KILL_AT}:
                os.kill(os.getpid(), signal.SIGKILL)
            return tx.__exit__(*exc)
    return Killing()

ResultStore.write_codes, ResultStore._tx = counted_write_codes, killing_tx
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_chunk_then_resume_loses_nothing(tmp_path):
    db = str(tmp_path / "k.db")
    args = ["screen", "nb201", "-n", "3000", "--chunk", "300", "--survivors", "0", "--top", "3", "--db", db,
            "--seed", "1", "--workers", "1"]
    killed = subprocess.run([sys.executable, "-c", _KILLED_SCREEN, *args], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr
    cfg = ScreenConfig(space="nb201", n=3000, chunk=300, survivors=0, top=3, seed=1)
    space = get_space("nb201")
    committed = {space.format(c) for i in range(KILL_AT - 1) for c in chunk_codes(cfg, space, i)}
    partial = rows_of(db)
    assert len({r["arch"] for r in partial}) == len(partial)          # no duplicates
    assert {r["arch"] for r in partial} == committed                   # the chunk in flight left nothing
    assert all(r["params"] is not None and r["latency_ms"] is not None for r in partial)   # no half rows
    with ResultStore(db, space="nb201") as store:
        assert store.done_chunks(1, "passed") == set(range(KILL_AT - 1))
    out = subprocess.run([sys.executable, "-m", "zeroshot", *args, "--resume", "last", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    fresh = str(tmp_path / "fresh.db")
    subprocess.run([sys.executable, "-m", "zeroshot", *[a if a != db else fresh for a in args]], check=True,
                   capture_output=True, timeout=300)
    assert rows_of(db) == rows_of(fresh)
    assert json.loads(out.stdout)["run_id"] == 1


def test_ray_backend_gives_identical_results(tmp_path):
    pytest.importorskip("ray", reason="ray is an optional extra: pip install 'zeroshot[ray]'")
    from zeroshot.backends import RayBackend
    cfg = ScreenConfig(space="nb201", n=1500, chunk=500, survivors=0, top=5, seed=2)
    ray_backend = RayBackend(workers=2)
    try:
        a = run_screen(cfg, str(tmp_path / "r.db"), backend=ray_backend, quiet=True)
    finally:
        ray_backend.ray.shutdown()
    b = run_screen(cfg, str(tmp_path / "l.db"), backend=LocalBackend(1), quiet=True)
    assert a["shortlist"] == b["shortlist"]
    assert rows_of(tmp_path / "r.db") == rows_of(tmp_path / "l.db")


def test_report_writes_png_and_html(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the optional matplotlib extra")
    from zeroshot.report import write_report
    db = str(tmp_path / "p.db")
    run_screen(ScreenConfig(space="nb201", n=800, survivors=0, top=4), db, quiet=True)
    page = write_report(db, str(tmp_path / "rep"))
    html = page.read_text()
    assert "pareto.png" in html and "funnel.png" in html and html.count("<code>|") == 4
    for png in ("pareto.png", "funnel.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG"


def test_a_report_where_nothing_was_ever_shortlisted_lists_the_closest(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the optional matplotlib extra")
    from zeroshot.report import write_report
    db = str(tmp_path / "none.db")
    summary = run_screen(ScreenConfig(space="mbv2", n=300, survivors=0, top=3, min_score=1e9), db, quiet=True)
    assert summary["shortlist"] == [] and len(summary["closest"]) == 3
    page = write_report(db, str(tmp_path / "rep")).read_text()
    assert "Nothing beats the baseline" in page and all(r["arch"] in page for r in summary["closest"])


def test_a_batch_smaller_than_swaps_samples_is_said_once(tmp_path):
    cfg = ScreenConfig(space="nb201", n=200, survivors=2, top=1, batch_size=4)
    with pytest.warns(UserWarning) as got:
        run_screen(cfg, str(tmp_path / "s.db"), quiet=True)
    said = [w for w in got if "swap reads 16 samples" in str(w.message)]
    assert len(said) == 1 and str(said[0].message).startswith("batch_size=4: ")


# ------------------------------------------------------------------ the Python entry point
def test_screen_in_memory_equals_a_screen_into_a_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = dict(n=1500, chunk=500, survivors=0, top=4, seed=2, max_params=600_000)
    r = screen("nb201", **options)
    assert isinstance(r, ScreenResult) and r.db is None and list(tmp_path.iterdir()) == []    # nothing written
    db = str(tmp_path / "s.db")
    summary = run_screen(ScreenConfig(space="nb201", **options), db, quiet=True)
    assert r.summary["shortlist"] == summary["shortlist"] and r.counts == summary["counts"]
    assert list(r.counts) == ["sampled", "passed", "survived", "shortlisted"]
    assert isinstance(r.shortlist, Table)
    assert list(r.shortlist["arch"]) == [row["arch"] for row in summary["shortlist"]]
    assert (r.shortlist["params"] <= 600_000).all() and (np.diff(r.shortlist["score"]) <= 0).all()
    passed = [row for row in rows_of(db) if row["stage"] >= 2]
    front = pareto_front(np.array([p["cheap"] for p in passed]), np.array([p["latency_ms"] for p in passed]))
    assert list(r.pareto["arch"]) == [passed[i]["arch"] for i in front]
    assert np.array_equal(r.pareto["score"], r.pareto["cheap"])
    device = load_device("mobile-npu-16")                  # a device object screens as its name does
    same = screen("nb201", device=device, **options)
    assert same.summary["shortlist"] == r.summary["shortlist"] and same.counts == r.counts


@pytest.mark.parametrize("options, param, words", [
    (dict(n=0), "n", "n must be a positive number of candidates (an integer: 100_000, not 1e5), got 0"),
    (dict(survivors=-1), "survivors", "survivors must be an integer >= 0, got -1"),
    (dict(top=0), "top", "top must be an integer >= 1, got 0"),
    (dict(chunk=0), "chunk", "chunk must be an integer >= 1, got 0"),
    (dict(scored=0), "scored",
     "scored must be an integer >= 1, or None (every one of the best survivors; all on the command line), got 0"),
    (dict(proxy_scale=0.0), "proxy_scale", "proxy_scale must be in (0, 1], got 0.0"),
    (dict(batch_size=1), "batch_size", "batch_size must be at least 2 images"),
    (dict(precision="fp8"), "precision", "precision must be one of fp32, fp16, int8, got 'fp8'"),
    (dict(max_params="big"), "max_params", "max_params must be a number or None, got 'big'"),
    (dict(cheap="synflow"), "cheap", "cheap must be a topology proxy (no network), got 'synflow'"),
    (dict(resume="last"), "db", "db must be the database of the run to resume"),
])
def test_screen_names_the_parameter_it_refuses(options, param, words):
    with pytest.raises(ParameterError) as got:
        screen("nb201", **{"n": 10, **options})
    assert got.value.param == param and str(got.value).startswith(words)


def test_stage_4_scores_the_best_survivors_with_the_largest_inputs(tmp_path):
    space = get_space("mbv2")
    cfg = ScreenConfig(space="mbv2", n=400, chunk=200, survivors=8, scored=3, top=2, seed=3, proxy_scale=0.25)
    summary = run_screen(cfg, str(tmp_path / "s.db"), quiet=True)
    with ResultStore(str(tmp_path / "s.db"), space="mbv2") as store:
        best = [r["arch"] for r in store.top(summary["run_id"], "cheap", 8, min_stage="passed")]
        scored = {r["arch"] for r in store.candidates(summary["run_id"], "scored")}
    side = {a: int(space.parse(a)[space.resolution_column]) for a in best}
    expect = sorted(best, key=lambda a: -side[a])[:3]          # stable: the cheap score's order in a side
    assert len(set(side.values())) > 1 and summary["counts"]["scored"] == 3 and scored == set(expect)
    everyone = run_screen(ScreenConfig(**{**cfg.__dict__, "scored": None}), str(tmp_path / "a.db"), quiet=True)
    assert everyone["counts"]["scored"] == 8


@pytest.mark.parametrize("scored, expect", [("2", 2), ("all", 3)])
def test_cli_scored_takes_a_number_or_all(scored, expect, tmp_path, capsys):
    args = ["screen", "nb201", "-n", "300", "--survivors", "3", "--scored", scored, "--db", str(tmp_path / "s.db")]
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["scored"] == expect
    assert main(args[:6] + ["--scored", "most", "--db", str(tmp_path / "t.db")]) == 2
    assert capsys.readouterr().err.strip() == "zeroshot screen: error: --scored must be a number of survivors or " \
                                              "'all', got 'most'"


def test_a_run_from_before_scored_resumes_scoring_every_best_survivor(tmp_path):
    db = str(tmp_path / "old.db")
    cfg = ScreenConfig(space="mbv2", n=300, chunk=100, survivors=4, scored=2, top=2, seed=5, proxy_scale=0.25)
    with ResultStore(db, space="mbv2") as store:
        old = {k: v for k, v in cfg.__dict__.items() if k != "scored"}
        store.new_run(old, kind="screen")                        # as written before scored existed
    summary = run_screen(cfg, db, resume="last", quiet=True)
    assert summary["counts"]["scored"] == 4


def test_screen_refuses_unknown_keywords_and_resumes_only_screens(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument.*survivor;.*takes .*survivors"):
        screen("nb201", survivor=3)
    db = str(tmp_path / "r.db")
    with ResultStore(db, space="nb201") as store:
        search_run = store.new_run({}, kind="search")
    for resume, words in ((search_run, f"run {search_run} of {db} is a search run"), ("x", "got 'x'")):
        with pytest.raises(ParameterError, match=words) as got:
            screen("nb201", n=10, survivors=0, db=db, resume=resume)
        assert got.value.param == "resume"
    first = screen("nb201", n=300, survivors=0, top=2, db=db)
    again = screen("nb201", n=300, survivors=0, top=2, db=db, resume="last")
    assert again.run_id == first.run_id and again.summary["shortlist"] == first.summary["shortlist"]


# ------------------------------------------------------------------ the store
def test_store_closes_however_the_block_ends(tmp_path, monkeypatch):
    db = str(tmp_path / "c.db")
    with pytest.raises(RuntimeError, match="boom"):
        with ResultStore(db, space="nb201") as store:
            run = store.new_run({})
            raise RuntimeError("boom")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.runs()
    with ResultStore(db, space="nb201") as store:            # a write that fails leaves nothing behind
        with pytest.raises(StoreError, match="cannot be a column"):
            store.write_chunk(run, 0, [("a", "passed", {"score": 1.0}), ("b", "passed", {"zz bad": 2.0})])
        assert store.count(run) == 0 and store.done_chunks(run, "passed") == set()
        assert store.write_chunk(run, 0, [("a", "passed", {"score": 1.0})]) == 1     # its column added again
    closed = []
    close = ResultStore.close
    monkeypatch.setattr(ResultStore, "close", lambda self: closed.append(self.path) or close(self))
    with pytest.raises(InfeasibleError):                        # the funnel's store too
        run_screen(ScreenConfig(space="nb201", n=50, survivors=0, max_params=1), db, quiet=True)
    assert closed == [db]


def test_stages_belong_to_the_kind_of_run():
    with ResultStore(":memory:", space="nb201") as store:
        screen_run, search_run = store.new_run({}, kind="screen"), store.new_run({}, kind="search")
        store.write_chunk(screen_run, 0, [("a", "passed", {"x": 1.0}), ("b", "sampled", {"x": 0.5})],
                          stage_marker="passed")
        store.write_chunk(search_run, 0, [("a", "evaluated", {"x": 2.0})], stage_marker="evaluated")
        assert store.counts(screen_run) == {"sampled": 2, "passed": 1, "survived": 0, "scored": 0, "shortlisted": 0}
        assert store.counts(search_run) == {"scored": 1, "evaluated": 1}
        assert store.done_chunks(screen_run, "passed") == {0} == store.done_chunks(search_run, "evaluated")
        assert store.done_chunks(screen_run, "scored") == set()
        with pytest.raises(StoreError, match="a search run has no stage 'passed'; its stages: scored, evaluated"):
            store.count(search_run, "passed")
        with pytest.raises(StoreError, match="a screen run has no stage 'evaluated'"):
            store.write_chunk(screen_run, 1, [("c", "evaluated", {})])
        with pytest.raises(UnknownNameError, match="unknown run kind 'nope'; choose from screen, search, train"):
            store.new_run({}, kind="nope")
        # the number stored is the stage's position in its kind's stages: the layout of earlier databases
        stored = dict(store.db.execute("SELECT run_id, max(stage) FROM candidates GROUP BY run_id").fetchall())
        assert stored == {screen_run: STAGES["screen"].index("passed") + 1,
                          search_run: STAGES["search"].index("evaluated") + 1}
        assert store.runs("search") == [search_run] and store.last_run("screen") == screen_run


def test_store_answers_without_sql_from_callers():
    with ResultStore(":memory:") as store:                    # in memory, for any space
        run = store.new_run({})
        store.write_chunk(run, 0, [("a", "passed", {"s": 3.0, "lat": 3.0}), ("b", "passed", {"s": 1.0, "lat": 1.0}),
                                   ("c", "passed", {"s": 2.0, "lat": 4.0}), ("d", "sampled", {"s": 9.0, "lat": 0.5}),
                                   ("e", "passed", {"lat": 0.1})])
        assert [r["arch"] for r in store.top(run, "s", 2, "passed")] == ["a", "c"]
        assert [r["arch"] for r in store.top(run, "s", 2, descending=False)] == ["b", "c"]
        assert store.front(run, "s", "lat", "passed") == ["b", "a"]
        assert store.front(run, "s", "lat") == ["d"]
        assert sorted(store.stream(run, ["arch", "s"], "passed", has="s")) == [("a", 3.0), ("b", 1.0), ("c", 2.0)]
        assert store.candidates(run, "passed", columns=["arch"]) == [{"arch": a} for a in "abce"]
        with pytest.raises(StoreError, match="no metric 'nope'"):
            store.top(run, "nope", 1)


def _same_candidates_two_ways(store, codes, metrics, passed, chunk=40):
    """Two screen runs of ``store`` holding the same candidates: one written as blocks of ``chunk`` codes,
    one as rows (the encodings, the first writer of a repeat winning, as the blocks do)."""
    blocks, rows = store.new_run({}), store.new_run({})
    space = get_space("nb201")
    for i, s in enumerate(range(0, len(codes), chunk)):
        part = slice(s, s + chunk)
        store.write_codes(blocks, i, codes[part], {k: v[part] for k, v in metrics.items()},
                          {"passed": passed[part]}, stage_marker="passed")
        store.write_chunk(rows, i, [(space.format(c), "passed" if ok else "sampled", {k: v[j] for k, v in
                                     metrics.items()}) for j, (c, ok) in enumerate(zip(codes[part], passed[part]),
                                                                                    s)],
                          stage_marker="passed", update=False)
    return blocks, rows


def _answers(store, run):
    """Everything the store's readers say of a run (its run id left out)."""
    columns = ["arch", "stage", "cheap", "latency_ms", "params"]
    return {"candidates": [{k: v for k, v in r.items() if k != "run_id"} for r in store.candidates(run)],
            "passed": store.candidates(run, "passed", has="cheap", columns=columns),
            "top": store.top(run, "cheap", 7, "passed", columns=columns),
            "top_all": [{k: v for k, v in r.items() if k != "run_id"} for r in store.top(run, "params", 9)],
            "bottom": store.top(run, "latency_ms", 5, descending=False, columns=["arch", "latency_ms"]),
            "front": store.front(run, "cheap", "latency_ms", "passed"), "front_all": store.front(run, "cheap"),
            "front_params": store.front(run, "cheap", "params", "survived"),
            "stream": sorted(store.stream(run, ("arch", "cheap", "stage"), "passed"), key=str),
            "counts": store.counts(run), "done": store.done_chunks(run, "passed")}


def test_blocks_and_rows_give_the_same_answers():
    rng = np.random.default_rng(7)
    space = get_space("nb201")
    codes = space.sample_codes(300, rng)                      # 15,625 cells: repeats in and across chunks
    codes = np.vstack([codes, codes[:50]])
    metrics = {"cheap": np.round(rng.normal(size=len(codes)), 1),               # ties, and missing values
               "latency_ms": rng.integers(1, 6, len(codes)).astype(float),
               "params": rng.integers(1000, 1010, len(codes)).astype(float)}
    metrics["cheap"][rng.random(len(codes)) < 0.1] = np.nan
    passed = metrics["latency_ms"] < 5
    with ResultStore(":memory:", space="nb201") as store:
        blocks, rows = _same_candidates_two_ways(store, codes, metrics, passed)
        assert store.count(blocks) == len({tuple(c) for c in codes.tolist()}) < len(codes)
        assert _answers(store, blocks) == _answers(store, rows)
        # a later stage writes some of them again as rows: they move there with their metrics
        survivors = [r["arch"] for r in store.top(rows, "cheap", 12, "passed")] + [space.format(codes[0])]
        for run in (blocks, rows):
            store.write_chunk(run, -1, [(a, "survived", {"cheap_front": float(i % 2), "cheap": 9.0 + i})
                                        for i, a in enumerate(survivors)], stage_marker="survived")
            store.write_chunk(run, -2, [(survivors[0], "shortlisted", {"top": 1.0}),
                                        (space.format(codes[1]), "passed", {"top": 0.0})], update=False)
        assert _answers(store, blocks) == _answers(store, rows)
        assert store.candidates(blocks, "survived") == [dict(r, run_id=blocks) for r in
                                                        store.candidates(rows, "survived")]
        assert store.counts(blocks)["survived"] == len(set(survivors))


def test_arrays_are_the_columns_stream_gives_without_formatting_an_encoding(monkeypatch):
    rng = np.random.default_rng(5)
    space = get_space("nb201")
    codes = space.sample_codes(200, rng)
    metrics = {"cheap": rng.normal(size=len(codes)), "params": rng.integers(1, 9, len(codes)).astype(float)}
    metrics["cheap"][rng.random(len(codes)) < 0.2] = np.nan
    with ResultStore(":memory:", space="nb201") as store:
        blocks, rows = _same_candidates_two_ways(store, codes, metrics, metrics["params"] > 3)
        for run in (blocks, rows):
            store.write_chunk(run, -1, [(space.format(codes[0]), "shortlisted", {"top": 1.0})],
                              stage_marker="shortlisted")
            expect = np.array(list(store.stream(run, ("cheap", "stage", "top"), "passed", has="cheap")), dtype=float)
            monkeypatch.setattr(type(space), "format", lambda *a: pytest.fail("an encoding was formatted"))
            got = store.arrays(run, ("cheap", "stage", "top"), "passed", has="cheap")
            monkeypatch.undo()
            assert len(expect) > 50 and not np.isnan(got["cheap"]).any()
            for j, name in enumerate(("cheap", "stage", "top")):
                np.testing.assert_array_equal(got[name], expect[:, j])
        with pytest.raises(StoreError, match="candidates\\(\\) gives encodings"):
            store.arrays(blocks, ("arch", "cheap"))


def test_a_report_formats_only_the_encodings_it_lists(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plots need the optional matplotlib extra")
    from zeroshot.report import write_report
    db = str(tmp_path / "big.db")
    run_screen(ScreenConfig(space="nb201", n=3000, survivors=0, top=4), db, quiet=True)
    space_type, formatted = type(get_space("nb201")), []
    real = space_type.format
    monkeypatch.setattr(space_type, "format", lambda self, c: formatted.append(1) or real(self, c))
    page = write_report(db, str(tmp_path / "rep"), max_points=500).read_text()
    assert page.count("<code>|") == 4 and len(formatted) <= 4


def test_a_hash_collision_never_drops_a_candidate(monkeypatch):
    import zeroshot.code_blocks as code_blocks
    monkeypatch.setattr(code_blocks, "code_hashes", lambda codes: np.zeros(len(codes), np.uint64))
    space = get_space("nb201")
    codes = space.sample_codes(200, np.random.default_rng(3))
    distinct = {tuple(c) for c in codes.tolist()}
    with ResultStore(":memory:", space="nb201") as store:
        run = store.new_run({})
        added = [store.write_codes(run, i, codes[s:s + 60], {"x": np.arange(s, s + 60, dtype=float)[:len(
            codes[s:s + 60])]}) for i, s in enumerate(range(0, len(codes), 60))]
        assert sum(added) == store.count(run) == len(distinct)
        stored = {tuple(space.parse(r["arch"]).tolist()) for r in store.candidates(run)}
        assert stored == distinct
        first = store.candidates(run, columns=["arch", "x"])              # each keeps its first writing
        expect = {}
        for j, c in enumerate(codes.tolist()):
            expect.setdefault(space.format(np.array(c)), float(j))
        assert {r["arch"]: r["x"] for r in first} == expect


def test_a_schema_1_database_is_read_and_written(tmp_path):
    db = str(tmp_path / "old.db")
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO meta VALUES ('schema_version', '1'), ('space', 'nb201'), ('space_options', '{}');
        CREATE TABLE runs (run_id INTEGER PRIMARY KEY, created REAL, kind TEXT, config TEXT, status TEXT,
                           summary TEXT);
        CREATE TABLE chunks (run_id INTEGER, chunk INTEGER, stage INTEGER, n INTEGER,
                             PRIMARY KEY (run_id, chunk, stage));
        CREATE TABLE candidates (run_id INTEGER, arch TEXT, stage INTEGER, "cheap" REAL,
                                 PRIMARY KEY (run_id, arch));
        INSERT INTO runs VALUES (1, 0, 'screen', '{}', 'done', '{}');
        INSERT INTO candidates VALUES (1, 'a', 2, 1.0), (1, 'b', 1, 2.0);
    """)
    con.commit()
    con.close()
    with ResultStore(db, space="nb201") as store:
        assert store.counts(1)["passed"] == 1 and store.top(1, "cheap", 1)[0]["arch"] == "b"
        run = store.new_run({})
        assert store.write_codes(run, 0, get_space("nb201").sample_codes(5, np.random.default_rng(0)),
                                 {"cheap": np.arange(5.0)}) >= 1
    with ResultStore(db) as store:
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"


def test_a_database_that_is_missing_or_not_zeroshots_is_refused(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(str(tmp_path / "missing.db"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="is not a zeroshot results database"):
        ResultStore(str(junk))
    with pytest.raises(StoreError, match="has no screen run"):
        with ResultStore(str(tmp_path / "empty.db"), space="nb201") as store:
            store.last_run("screen")


# ------------------------------------------------------------------ the constraint service
def test_constraints_count_what_each_removes_and_word_the_tightest():
    metrics = {"latency_ms": np.array([1.0, 5.0, 5.0, 0.5]), "params": np.array([10, 10, 900, 900]),
               "peak_activation_bytes": np.array([0, 0, 0, 4096]), "model_bytes": np.zeros(4)}
    each = Constraints(max_latency_ms=2, max_params=100, max_peak_kb=2)
    assert each.limits == {"latency_ms": 2.0, "params": 100.0, "peak_activation_bytes": 2048.0}
    assert each.mask(metrics).tolist() == [True, False, False, False]
    assert each.removed == {"latency_ms": 2, "params": 2, "peak_activation_bytes": 1} and each.seen == 4
    first = Constraints(max_latency_ms=2, max_params=100, max_peak_kb=2, exclusive=True)
    first.mask(metrics)
    assert first.removed == {"latency_ms": 2, "params": 1, "peak_activation_bytes": 0}      # adds up to 3
    none = Constraints(max_params=1)
    none.mask({"params": np.array([5.0, 7.0])})
    none.mask({"params": np.array([9.0])})
    err = none.infeasible()
    assert isinstance(err, InfeasibleError) and isinstance(err, InputError) and err.param == "max_params"
    assert str(err) == ("no candidate passes the constraints; the tightest is max_params 1, which removed 3 of 3 "
                        "sampled candidates: relax max_params")
    assert Constraints(max_params=10).infeasible() is None                 # nothing removed: no such error
    assert not Constraints() and repr(Constraints(max_peak_kb=2)) == "Constraints(max_peak_kb=2)"

    class SearchLike:                                                    # a config with some of the maxima
        max_latency_ms, max_params = 3.0, None
    assert Constraints.from_config(SearchLike()).limits == {"latency_ms": 3.0}


def test_stage_4_scores_a_detection_network_on_its_backbone_view(tmp_path):
    import math

    from zeroshot.refine import proxy_view
    from zeroshot.scoring import compute_proxies
    cfg = ScreenConfig(space="mbv2", space_options={"task": "detect"}, n=200, chunk=100, survivors=2, scored=2,
                       top=1, seed=5, proxy_scale=0.25)
    a = run_screen(cfg, str(tmp_path / "a.db"), quiet=True)
    with ResultStore(str(tmp_path / "a.db"), space="mbv2") as store:
        scored = store.candidates(a["run_id"], "scored")
    assert scored and all(math.isfinite(r["meco"]) for r in scored)     # the whole SSDLite network: NaN
    space = get_space("mbv2", task="detect")
    view, _ = proxy_view(space)
    codes = proxy_codes(space, np.array([space.parse(scored[0]["arch"])]), 0.25)
    direct = compute_proxies(view, codes, DEFAULT_PROXIES, seed=5, batch_size=cfg.batch_size)
    expected = {n: float(direct[n][0]) for n in DEFAULT_PROXIES}
    assert {n: scored[0][n] for n in DEFAULT_PROXIES} == pytest.approx(expected)
