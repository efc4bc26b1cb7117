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

from zeroshot.backends import LocalBackend
from zeroshot.errors import UserError
from zeroshot.funnel import ScreenConfig, pareto_front, run_screen
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


def test_same_results_whatever_the_worker_count(tmp_path):
    cfg = ScreenConfig(space="nb201", n=3000, chunk=700, survivors=0, top=5, seed=3)
    a = run_screen(cfg, str(tmp_path / "a.db"), backend=LocalBackend(1), quiet=True)
    b = run_screen(cfg, str(tmp_path / "b.db"), backend=LocalBackend(2), quiet=True)
    assert a["shortlist"] == b["shortlist"]
    assert rows_of(tmp_path / "a.db") == rows_of(tmp_path / "b.db")
    assert a["counts"]["sampled"] == len(rows_of(tmp_path / "a.db")) < 3000      # de-duplicated


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
