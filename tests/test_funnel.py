"""The screening funnel: determinism across backends, resume after SIGKILL, constraints, store, report."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from zeroshot.spaces import get_space
from zeroshot.spaces.mbv2 import MOBILENETV2
from zeroshot.backends import LocalBackend
from zeroshot.commands.cmd_screen import print_summary
from zeroshot.errors import UserError
from zeroshot.funnel import SCORED, ScreenConfig, pareto_front, proxy_codes, run_screen
from zeroshot.score import DEFAULT_PROXIES
from zeroshot.store import ResultStore, StoreError


def rows_of(db, run_id=1):
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute("SELECT * FROM candidates WHERE run_id = ? ORDER BY arch", (run_id,))]
    con.close()
    for r in out:
        r.pop("run_id")
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
    assert a["counts"]["scored"] == 3 and a["shortlist"] == b["shortlist"]
    assert rows_of(tmp_path / "a.db") == rows_of(tmp_path / "b.db")
    scored = [r for r in rows_of(tmp_path / "a.db") if r["stage"] >= SCORED]
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
    with pytest.raises(UserError, match=r"--proxy-scale must be in \(0, 1\], got 1.5"):
        run_screen(ScreenConfig(space="mbv2", n=10, proxy_scale=1.5), "unused.db", quiet=True)
    for batch in (0, 1):                 # 0 once fell back to the default batch, 1 failed in a worker
        with pytest.raises(UserError, match=f"--batch-size must be at least 2 .*, got {batch}"):
            run_screen(ScreenConfig(space="nb201", n=10, batch_size=batch), "unused.db", quiet=True)


def test_constraints_filter_and_impossible_ones_name_the_tightest(tmp_path):
    cfg = ScreenConfig(space="nb201", n=1000, chunk=500, survivors=0, top=3, max_params=400_000)
    summary = run_screen(cfg, str(tmp_path / "c.db"), quiet=True)
    rows = rows_of(tmp_path / "c.db")
    assert all((r["params"] <= 400_000) == (r["stage"] >= 2) for r in rows)
    assert summary["counts"]["passed"] < summary["counts"]["sampled"]
    cfg = ScreenConfig(space="nb201", n=500, survivors=0, max_params=10, max_latency_ms=1e9)
    with pytest.raises(UserError, match=r"tightest is params <= 10, which removed \d+"):
        run_screen(cfg, str(tmp_path / "d.db"), quiet=True)


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


def test_sigkill_mid_run_then_resume_loses_nothing(tmp_path):
    db = str(tmp_path / "k.db")
    args = [sys.executable, "-m", "zeroshot", "screen", "nb201", "-n", "6000", "--chunk", "300",
            "--survivors", "0", "--top", "3", "--db", db, "--seed", "1", "--workers", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:       # kill once a few chunks are in
        time.sleep(0.2)
        if os.path.exists(db):
            try:
                con = sqlite3.connect(db)
                done = con.execute("SELECT count(*) FROM chunks WHERE stage = 2").fetchone()[0]
                con.close()
            except sqlite3.Error:
                continue
            if done >= 3:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= done < 20, "the run finished before it could be killed; make it longer"
    partial = rows_of(db)
    assert len({r["arch"] for r in partial}) == len(partial)          # no duplicates
    assert all(r["params"] is not None and r["latency_ms"] is not None for r in partial)   # no half rows
    out = subprocess.run(args + ["--resume", "last", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    fresh = str(tmp_path / "fresh.db")
    subprocess.run([a if a != db else fresh for a in args], check=True, capture_output=True, timeout=300)
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


def test_a_batch_smaller_than_swaps_samples_is_said_once(tmp_path):
    cfg = ScreenConfig(space="nb201", n=200, survivors=2, top=1, batch_size=4)
    with pytest.warns(UserWarning) as got:
        run_screen(cfg, str(tmp_path / "s.db"), quiet=True)
    said = [w for w in got if "swap reads 16 samples" in str(w.message)]
    assert len(said) == 1 and "--batch-size 4" in str(said[0].message)
