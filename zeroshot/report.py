"""Report of a finished screen: a Pareto plot of score vs latency with the shortlist and the baseline marked
(the score relative to the baseline's where the screen had one), the funnel's per-stage counts, and an HTML
page linking them that says what each shortlisted network changes from the baseline.  Plots need the
optional matplotlib extra.

Example
-------
>>> import os, tempfile
>>> from zeroshot.funnel import screen
>>> folder = tempfile.mkdtemp()
>>> _ = screen("nb201", n=300, survivors=0, top=3, db=os.path.join(folder, "screen.db"))
>>> page = write_report(os.path.join(folder, "screen.db"), os.path.join(folder, "report"))
>>> page.name, sorted(p.name for p in page.parent.iterdir())
('index.html', ['funnel.png', 'index.html', 'pareto.png'])
"""
from __future__ import annotations

import html
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError, MissingExtraError
from .pareto import pareto_front
from .store import ResultStore

__all__ = ["differences", "write_report"]

#: screen stage -> its label in the report
STAGE_LABELS = {"sampled": "sampled", "passed": "passed constraints", "survived": "survived cheap screen",
                "scored": "network proxies", "shortlisted": "shortlisted"}


def write_report(db: str, out_dir: str, run_id: int | None = None, max_points: int = 20000) -> Path:
    """Write ``pareto.png``, ``funnel.png`` and ``index.html`` of screen ``run_id`` (default: the last) of
    the results database ``db`` into ``out_dir``; returns the HTML path.  Plots at most ``max_points``
    candidates (a seeded subsample, the front and the shortlist kept whole)."""
    run = _read_run(db, run_id)                 # the database's errors first, then the optional extra's
    plt = _pyplot()
    points = _plotted(run["points"], max_points)
    out = _folder(out_dir)
    note = _unfinished(run)
    if note:
        warnings.warn(f"{db}: {note}", stacklevel=2)
    _plot_pareto(plt, out / "pareto.png", points, run)
    _plot_funnel(plt, out / "funnel.png", run["counts"])
    shortlist = sorted((r for r in run["listed"] if r["top"]), key=lambda r: (-r["s"], r["arch"]))
    (out / "index.html").write_text(_page(db, run, shortlist or run["summary"].get("closest", [])))
    return out / "index.html"


def _folder(out_dir: str) -> Path:
    """The folder ``out_dir``, created if missing (an InputError naming it when it cannot be)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"cannot write the report into {out_dir}: it is a file; name a folder") from None
    except OSError as e:
        raise InputError(f"cannot write the report into {out_dir}: {e.strerror}") from None
    return out


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("matplotlib", "zeroshot report", extra="plot") from None
    return plt


def _read_run(db: str, run_id: int | None) -> dict:
    """What the report shows of a screen: its config, summary and stage counts; ``points``, the candidates
    plotted as arrays (``s``: the default score where network proxies ran, else the cheap score;
    ``latency_ms``; ``top``: on the shortlist; ``shortlisted``), read without formatting an encoding; and
    ``listed``, the rows of the shortlisted stage with their encodings (a few)."""
    with ResultStore(db, readonly=True) as store:
        run_id = store.last_run("screen") if run_id is None else run_id
        store.check_run(run_id)
        if store.run_kind(run_id) != "screen":
            raise InputError(f"run {run_id} of {db} is a {store.run_kind(run_id)} run; a report shows a screen")
        counts = store.counts(run_id)
        scored = "score" in store.metrics() and counts["scored"] > 0
        metric, stage = ("score", "scored") if scored else ("cheap", "passed")
        top = ("top",) if "top" in store.metrics() else ()          # none when nothing was ever shortlisted
        columns = store.arrays(run_id, (metric, "latency_ms", "stage", *top), stage, has=metric)
        listed = store.candidates(run_id, "shortlisted", has=metric, columns=(
            "arch", metric, "latency_ms", "params", "peak_activation_bytes", *top))
        shortlisted = columns["stage"] >= store.stages(run_id).index("shortlisted") + 1
        run = {"run_id": run_id, "space": store.space, "config": store.run_config(run_id),
               "status": store.run_status(run_id), "summary": store.run_summary(run_id), "scored": scored,
               "counts": {STAGE_LABELS[s]: n for s, n in counts.items()}}
    run["baseline"] = run["summary"].get("baseline")
    for r in run["summary"].get("closest", []):
        r["s"], r["peak_activation_bytes"] = r["score"], r["peak_kb"] * 1024
    for r in listed:
        r["s"], r["top"] = r.pop(metric), bool(r["top"]) if scored else True
    run["listed"] = listed
    run["points"] = {"s": columns[metric], "latency_ms": columns["latency_ms"], "shortlisted": shortlisted,
                     "top": columns.get("top", np.zeros(len(shortlisted))) == 1 if scored else shortlisted}
    return run


def _unfinished(run: dict) -> str:
    """A note that the run has not finished (a screen still running, or stopped by an error), or nothing."""
    if run["status"] == "done":
        return ""
    return (f"run {run['run_id']} has not finished (status {run['status']!r}: still running, or stopped by an "
            f"error); the report shows what it wrote")


def _device_name(cfg: dict) -> str:
    """The device of a screen's config: its name, or the name in its description (a device object's)."""
    return str(cfg["device"]["name"] if isinstance(cfg["device"], dict) else cfg["device"])


def _plotted(points: dict, max_points: int) -> dict:
    """At most ``max_points`` of the ``points`` and the front and shortlist: a seeded subsample keeps the plot
    readable."""
    s, lat = points["s"], points["latency_ms"]
    if len(s) <= max_points:
        return points
    keep = np.union1d(np.random.default_rng(0).choice(len(s), max_points, replace=False), pareto_front(s, lat))
    keep = np.union1d(keep, np.flatnonzero(points["shortlisted"]))
    return {k: v[keep] for k, v in points.items()}


def _plot_pareto(plt, path: Path, points: dict, run: dict) -> None:
    base = run["baseline"]
    s = points["s"] - (base["score"] if base else 0.0)
    lat, top = points["latency_ms"], points["top"]
    front = pareto_front(s, lat)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter(lat, s, s=6, c="0.7", label=f"candidates ({len(s):,})")
    ax.plot(lat[front], s[front], "-o", ms=3, c="tab:blue", label="Pareto front")
    ax.scatter(lat[top], s[top], s=40, facecolors="none", edgecolors="tab:red", linewidths=1.5,
               label=f"shortlist top {int(top.sum())}")
    if base:
        ax.scatter([base["latency_ms"]], [0.0], marker="*", s=160, c="tab:orange", edgecolors="k", zorder=3,
                   label="baseline")
        ax.axhline(0.0, c="tab:orange", lw=0.8, ls="--")
        ax.axvline(base["latency_ms"], c="tab:orange", lw=0.8, ls="--")
    ax.set_xlabel(f"latency on {_device_name(run['config'])} (ms)")
    ax.set_ylabel(_score_label(run))
    ax.set_title(f"{run['space']}: run {run['run_id']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _score_name(run: dict) -> str:
    return "default score (rank aggregate)" if run["scored"] else f"cheap score ({run['config']['cheap']})"


def _score_label(run: dict) -> str:
    """The score axis: relative to the baseline's where the screen had one (above 0: ranked above it)."""
    name = _score_name(run)
    return f"{name} minus the baseline's (> 0: above the baseline)" if run["baseline"] else name


def differences(space, arch: str, baseline: str) -> str:
    """What ``arch`` changes from ``baseline`` (encodings of ``space``), new value first and the baseline's
    in brackets, in a space whose codes decode into stages (mbv2: input resolution, stem, each stage's
    depth, width, fused blocks, kernels and expansions, head); elsewhere only whether they differ.

    >>> from zeroshot.spaces import get_space
    >>> from zeroshot.spaces.mbv2 import MOBILENETV2
    >>> differences(get_space("mbv2"), MOBILENETV2.replace("r224", "r192").replace("i3e6c24 i3e6c24",
    ...             "f3e6c24"), MOBILENETV2)
    'input 192 px (224); stage 2: depth 1 (2), fused 1 (0)'
    """
    if not hasattr(space, "decode"):
        return "same network" if arch == baseline else "a different encoding"
    (res, stem, head, stages), (b_res, b_stem, b_head, b_stages) = (space.decode(space.parse(a))
                                                                    for a in (arch, baseline))
    parts = [f"{name} {v}{unit} ({b})" for name, v, b, unit in (("input", res, b_res, " px"),
                                                                ("stem", stem, b_stem, "")) if v != b]
    for i, (blocks, base) in enumerate(zip(stages, b_stages), 1):
        changed = [f"{name} {fn(blocks)} ({fn(base)})" for name, fn in _STAGE_FEATURES if fn(blocks) != fn(base)]
        parts += [f"stage {i}: " + ", ".join(changed)] if changed else []
    parts += [f"head {head} ({b_head})"] if head != b_head else []
    return "; ".join(parts) or "same network"


#: what :func:`differences` compares in a stage of ``(type, kernel, expansion, channels)`` blocks
_STAGE_FEATURES = (("depth", len), ("width", lambda b: b[-1][3]), ("fused", lambda b: sum(t for t, *_ in b)),
                   ("kernels", lambda b: "/".join(map(str, sorted({k for _, k, _, _ in b})))),
                   ("expansions", lambda b: "/".join(map(str, sorted({e for _, _, e, _ in b})))))


def _plot_funnel(plt, path: Path, counts: dict) -> None:
    fig, ax = plt.subplots(figsize=(7, 3), dpi=120)
    names, values = list(counts), list(counts.values())
    ax.barh(names[::-1], values[::-1], color="tab:blue")
    ax.set_xscale("log")
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel("candidates reaching the stage (log scale)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _page(db: str, run: dict, shortlist: list[dict]) -> str:
    cfg, space, run_id, base = run["config"], run["space"], run["run_id"], run["baseline"]
    changes = _changes(run, shortlist)
    cells = "".join(f"<tr><td><code>{html.escape(r['arch'])}</code></td><td>{r['s']:.4g}</td>"
                    f"<td>{r['latency_ms']:.3f}</td><td>{int(r['params']):,}</td>"
                    f"<td>{r['peak_activation_bytes'] / 1024:.1f}</td>{c}</tr>" for r, c in zip(shortlist, changes))
    funnel = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in run["counts"].items())
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in run["summary"].get("timings_s", {}).items())
    note = f"\n<p><b>{html.escape(_unfinished(run))}</b></p>" if _unfinished(run) else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>zeroshot {space} run {run_id}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}
</style></head><body><h1>Screen of {space}, run {run_id}</h1>{note}
<p>Device <b>{html.escape(_device_name(cfg))}</b>, seed {cfg['seed']}, database <code>{html.escape(db)}</code>.
{html.escape(timings)}</p>{_baseline_section(run)}
<h2>Funnel</h2><img src="funnel.png" alt="funnel counts"><table>{funnel}</table>
<h2>Score vs latency</h2><img src="pareto.png" alt="Pareto plot">
<h2>Shortlist</h2>{_nothing_beats(run)}
<table><tr><th>arch</th><th>score</th><th>latency ms</th><th>params</th><th>peak KB</th>
{"<th>changes from the baseline</th>" if base else ""}</tr>
{cells}</table></body></html>
"""


def _baseline_section(run: dict) -> str:
    """The baseline the screen compared with, or nothing."""
    base = run["baseline"]
    if not base:
        return ""
    return (f"\n<h2>Baseline</h2><p><code>{html.escape(base['arch'])}</code>: score {base['score']:.4g} "
            f"({_score_name(run)}), {base['latency_ms']:.3f} ms, {base['params']:,} params, "
            f"{base['peak_kb']:.1f} KB peak activations. The shortlist holds networks faster than it, scored at or "
            f"above {run['summary']['min_score']:.4g}, within the constraints.</p>")


def _nothing_beats(run: dict) -> str:
    """The line saying that nothing beats the baseline (the table then holds the closest), or nothing."""
    if run["baseline"] and not run["summary"]["shortlist"]:
        return "<p><b>Nothing beats the baseline</b>; the closest by score:</p>"
    return ""


def _changes(run: dict, shortlist: list[dict]) -> list[str]:
    """A cell per shortlisted row: what it changes from the baseline (none without one)."""
    if not run["baseline"]:
        return [""] * len(shortlist)
    if str(run["config"].get("baseline")).startswith("model:"):
        return ["<td>(the baseline is a network outside the space)</td>"] * len(shortlist)
    from zeroshot.spaces import get_space
    space = get_space(run["space"], **run["config"].get("space_options", {}))
    return [f"<td>{html.escape(differences(space, r['arch'], run['baseline']['arch']))}</td>" for r in shortlist]
