"""Report of a finished screen: a Pareto plot of score vs latency with the shortlist marked, the funnel's
per-stage counts, and an HTML page linking them.  Plots need the optional matplotlib extra.

Example
-------
>>> # write_report("zeroshot-mbv2.db", "report/")      # doctest: +SKIP
"""
from __future__ import annotations

import html
import sqlite3
from pathlib import Path

import numpy as np

from .errors import UserError
from .funnel import PASSED, SAMPLED, SCORED, SHORTLISTED, STAGE_NAMES, SURVIVED, pareto_front
from .store import ResultStore, StoreError


def _space_of(db: str) -> str:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        row = con.execute("SELECT value FROM meta WHERE key = 'space'").fetchone()
        con.close()
    except sqlite3.Error:
        row = None
    if row is None:
        raise UserError(f"{db} is not a zeroshot results database")
    return row[0]


def write_report(db: str, out_dir: str, run_id: int | None = None, max_points: int = 20000) -> Path:
    """Write ``pareto.png``, ``funnel.png`` and ``index.html`` into ``out_dir``; returns the HTML path."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("zeroshot report draws with the optional matplotlib extra: "
                        "pip install 'zeroshot[plot]'") from None
    if not Path(db).exists():
        raise UserError(f"{db} does not exist")
    space = _space_of(db)
    store = ResultStore(db, space=space)
    try:
        run_id = store.last_run() if run_id is None else run_id
        cfg = store.run_config(run_id)
    except StoreError as e:
        raise UserError(str(e)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {STAGE_NAMES[s]: store.count(run_id, s) for s in (SAMPLED, PASSED, SURVIVED, SCORED, SHORTLISTED)}
    scored = "score" in store.metrics() and counts[STAGE_NAMES[SCORED]] > 0
    metric, stage = ("score", SCORED) if scored else ("cheap", PASSED)
    rows = store.candidates(run_id, f'stage >= ? AND "{metric}" IS NOT NULL', (stage,),
                            f'arch, "{metric}" AS s, latency_ms, params, peak_activation_bytes, stage, top',
                            order="arch")
    if len(rows) > max_points:          # a seeded subsample keeps the plot readable; the front is kept whole
        rng = np.random.default_rng(0)
        s = np.array([r["s"] for r in rows])
        lat = np.array([r["latency_ms"] for r in rows])
        keep = np.union1d(rng.choice(len(rows), max_points, replace=False), pareto_front(s, lat))
        keep = np.union1d(keep, [i for i, r in enumerate(rows) if r["stage"] >= SHORTLISTED])
        rows = [rows[i] for i in keep]
    s = np.array([r["s"] for r in rows])
    lat = np.array([r["latency_ms"] for r in rows])
    short = np.array([r["stage"] >= SHORTLISTED for r in rows])
    top = np.array([bool(r["top"]) for r in rows]) if scored else short
    front = pareto_front(s, lat)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter(lat, s, s=6, c="0.7", label=f"candidates ({len(rows):,})")
    ax.plot(lat[front], s[front], "-o", ms=3, c="tab:blue", label="Pareto front")
    ax.scatter(lat[top], s[top], s=40, facecolors="none", edgecolors="tab:red", linewidths=1.5,
               label=f"shortlist top {int(top.sum())}")
    ax.set_xlabel(f"latency on {cfg['device']} (ms)")
    ax.set_ylabel("default score (rank aggregate)" if scored else f"cheap score ({cfg['cheap']})")
    ax.set_title(f"{space}: run {run_id}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pareto.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3), dpi=120)
    names, values = list(counts), list(counts.values())
    ax.barh(names[::-1], values[::-1], color="tab:blue")
    ax.set_xscale("log")
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel("candidates reaching the stage (log scale)")
    fig.tight_layout()
    fig.savefig(out / "funnel.png")
    plt.close(fig)

    shortlist = sorted((r for r in rows if r["top"] or (not scored and r["stage"] >= SHORTLISTED)),
                       key=lambda r: -r["s"])
    summary = store.run_summary(run_id)
    store.close()
    cells = "".join(f"<tr><td><code>{html.escape(r['arch'])}</code></td><td>{r['s']:.4g}</td>"
                    f"<td>{r['latency_ms']:.3f}</td><td>{int(r['params']):,}</td>"
                    f"<td>{r['peak_activation_bytes'] / 1024:.1f}</td></tr>" for r in shortlist)
    funnel = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in counts.items())
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in summary.get("timings_s", {}).items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>zeroshot {space} run {run_id}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}
</style></head><body><h1>Screen of {space}, run {run_id}</h1>
<p>Device <b>{html.escape(str(cfg['device']))}</b>, seed {cfg['seed']}, database <code>{html.escape(db)}</code>.
{html.escape(timings)}</p>
<h2>Funnel</h2><img src="funnel.png" alt="funnel counts"><table>{funnel}</table>
<h2>Score vs latency</h2><img src="pareto.png" alt="Pareto plot">
<h2>Shortlist</h2><table><tr><th>arch</th><th>score</th><th>latency ms</th><th>params</th><th>peak KB</th></tr>
{cells}</table></body></html>
"""
    (out / "index.html").write_text(page)
    return out / "index.html"
