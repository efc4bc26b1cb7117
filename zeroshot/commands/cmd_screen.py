"""``zeroshot screen SPACE``: the funnel from millions of candidates to a shortlist worth training (a thin
layer over :func:`zeroshot.funnel.screen`)."""
import argparse
import json
import math
import sys
from dataclasses import fields

import numpy as np

from zeroshot.backends import get_backend
from zeroshot.cli import add_space_args, cost_device_hint, models_from_args, space_from_args, space_options
from zeroshot.errors import Error, InputError, ParameterError
from zeroshot.funnel import DEFAULT_BASELINE, ScreenConfig, brief_row, screen

DEFAULTS = {f.name: f.default for f in fields(ScreenConfig) if not callable(f.default)}


def register(sub):
    p = sub.add_parser("screen", help="screen a space against a device budget; print the shortlist",
                       description="Screen a search space for a device: sample candidates, cost them on the device "
                                   "and drop those over the budget (by default the baseline's latency, parameters "
                                   "and peak memory), keep the best --survivors by a cheap topology score, score "
                                   "--scored of them with network proxies, and print the shortlist of those that "
                                   "beat the baseline.  Results go to --db; an interrupted run continues with "
                                   "--resume last.  Example: zeroshot screen mbv2 -n 20000 --top 5")
    add_space_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-n", type=int, default=DEFAULTS["n"], help="candidates to sample (default %(default)s)")
    g.add_argument("--all", action="store_true", help="enumerate the whole space instead of sampling")
    p.add_argument("--device", default=DEFAULTS["device"], metavar="NAME_OR_FILE",
                   help="hardware cost profile of the latency: a built-in name (see `zeroshot device list`) or a "
                        "device .json (default %(default)s)")
    p.add_argument("--baseline", default=DEFAULTS["baseline"], metavar="NAME|ENCODING|none",
                   help=f"the network to beat: a baseline of the space (`zeroshot baseline SPACE`) or an encoding; "
                        f"default: the space's {DEFAULT_BASELINE} for its task where it has one (mbv2; nb201 and "
                        f"fbnet have none: no baseline)")
    p.add_argument("--model", metavar="FILE.py:FUNC",
                   help="a torch network as the baseline instead (with --input): costed and scored as an IR")
    p.add_argument("--input", metavar="C,H,W", help="input shape of the --model network, e.g. 3,224,224")
    p.add_argument("--max-latency-ms", type=float, metavar="MS",
                   help="drop candidates slower than this on the device, in ms (default: faster than the "
                        "baseline; none without one)")
    p.add_argument("--max-params", type=float, metavar="N",
                   help="drop candidates with more parameters (default: the baseline's; none without one)")
    p.add_argument("--max-peak-kb", type=float, metavar="KB",
                   help="drop candidates whose peak activation memory is larger, in KiB at --precision (default: "
                        "the baseline's; none without one)")
    p.add_argument("--min-score", default=DEFAULTS["min_score"], metavar="baseline|VALUE|none",
                   help="shortlist only networks scored at or above this (default: the baseline's score)")
    p.add_argument("--max-model-bytes", type=float, metavar="BYTES",
                   help="drop candidates whose weights are larger, in bytes at --precision (default: none)")
    p.add_argument("--precision", default=DEFAULTS["precision"],
                   help="bytes per weight and activation: fp32, fp16 or int8 (default fp32)")
    p.add_argument("--survivors", type=int, default=DEFAULTS["survivors"],
                   help="candidates kept by the cheap score (default %(default)s; 0: stop after the cheap screen, "
                        "no torch)")
    p.add_argument("--scored", default=str(DEFAULTS["scored"]), metavar="N|all",
                   help="of the survivors, how many get network proxies: the largest input side first (mbv2), ties "
                        "by the cheap score (default %(default)s; all: every one)")
    p.add_argument("--top", type=int, default=DEFAULTS["top"], help="shortlist size (default %(default)s)")
    p.add_argument("--cheap", default=DEFAULTS["cheap"], metavar="PROXY",
                   help="topology proxy of the cheap screen (see `zeroshot proxies --kind topology`; default "
                        "%(default)s)")
    p.add_argument("--data", metavar="NPZ",
                   help="NPZ of images (x) and labels (y) for the network proxies (default: seeded synthetic input)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], metavar="N",
                   help="images per network proxy batch (default %(default)s: swap reads 16 samples and meco one "
                        "input, so a larger batch only costs time)")
    p.add_argument("--proxy-scale", type=float, default=DEFAULTS["proxy_scale"],
                   help="input side of the network proxies relative to each candidate's (mbv2; default "
                        "%(default)s, 1 = full resolution)")
    p.add_argument("--chunk", type=int, default=DEFAULTS["chunk"], metavar="N",
                   help="candidates sampled, costed and written to --db at a time; an interrupted run loses at "
                        "most one chunk (default %(default)s)")
    p.add_argument("--db", metavar="FILE", help="SQLite results file (default zeroshot-SPACE.db)")
    p.add_argument("--resume", metavar="RUN|last",
                   help="continue run RUN of --db (last: its last screen) with the settings it was started with "
                        "(default: start a new run)")
    p.add_argument("--backend", default="local",
                   help="where the workers run: local (processes on this machine, the default) or ray (a Ray "
                        "cluster)")
    p.add_argument("--address", help="Ray cluster address (with --backend ray; default: Ray's own lookup)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: up to 2)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                   help="seed of the sampled candidates and of the network proxies' weights and synthetic input "
                        "(default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (default: a table)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args).name
    db = args.db or f"zeroshot-{space}.db"
    resume = int(args.resume) if args.resume is not None and args.resume.isdigit() else args.resume
    options = {name: getattr(args, name) for name in ("chunk", "precision", "cheap", "data", "batch_size",
                                                       "proxy_scale")}
    settings = dict(min_score=min_score(args.min_score), baseline=baseline(args), scored=scored(args.scored),
                    backend=get_backend(args.backend, args.workers, args.address))
    args.interrupted_note = (f"; what it computed is kept in {db}: zeroshot screen {space} --db {db} --resume last "
                             "continues it")
    try:
        result = screen(space, device=args.device, n=None if args.all else args.n, all=args.all,
                        max_latency_ms=args.max_latency_ms, max_params=args.max_params,
                        max_peak_kb=args.max_peak_kb, max_model_bytes=args.max_model_bytes,
                        survivors=args.survivors, top=args.top, seed=args.seed, db=db,
                        space_options=space_options(args), resume=resume, quiet=args.json, **settings, **options)
    except Error as e:
        raise cost_device_hint(e, args.device) from None
    if args.json:
        json.dump(_strict(result.summary), sys.stdout, indent=2, allow_nan=False)
        print()
        return
    print_summary(result.summary, db)


def baseline(args: argparse.Namespace):
    """``--baseline``, or the one ``--model`` network (its IR) in its place."""
    if args.model is None:
        return None if args.baseline == "none" else args.baseline
    if args.baseline != DEFAULTS["baseline"]:
        raise InputError("give either --baseline or --model, not both")
    irs = models_from_args(argparse.Namespace(model=args.model, input=args.input, space=None))
    if len(irs) != 1:
        raise ParameterError("model", "one network as the baseline", f"{len(irs)} networks")
    return irs[0]


def scored(text: str) -> int | None:
    """``--scored``: a number of survivors, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ParameterError("scored", "a number of survivors or 'all'", text) from None
    if n < 1:
        raise ParameterError("scored", "a number of survivors, at least 1, or 'all'", n)
    return n


def min_score(text: str) -> str | float | None:
    """``--min-score``: ``baseline``, ``none`` or a number."""
    if text in ("baseline", "none"):
        return None if text == "none" else text
    try:
        return float(text)
    except ValueError:
        raise ParameterError("min_score", "'baseline', a number or 'none'", text) from None


def print_summary(summary: dict, db: str) -> None:
    c, t = summary["counts"], summary["timings_s"]
    print(f"run {summary['run_id']} in {db}: " + ", ".join(f"{k} {v:,}" for k, v in c.items()) +
          "  (" + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()) + ")")
    baseline = summary.get("baseline")
    rows = summary["shortlist"] if baseline else [brief_row(r) for r in summary["rows"]]
    if baseline and not rows:
        rows = summary["closest"]
        print(f"nothing beats the baseline: no candidate within the constraints scores at or above "
              f"{summary['min_score']:.4g}; the closest by score:")
    if not rows:
        return
    print_rows(rows, baseline)
    for name, value in summary.get("constant_proxies", {}).items():
        print(f"note: {name} is {value:g} for every scored candidate ({c['scored']:,}), so it does not rank them; "
              "the score's order comes from the other proxies")


def print_rows(rows: list[dict], baseline: dict | None) -> None:
    """The table: the baseline first (marked), then each row with its change against it."""
    shown = ([dict(baseline, arch=f"{baseline['arch']}  (baseline)")] if baseline else []) + rows
    width = max(len(r["arch"]) for r in shown)
    changes = f"  {'latency':>8}  {'params':>8}  {'peak':>8}  {'score':>7}" if baseline else ""
    print(f"{'arch':{width}}  {'score':>9}  {'latency_ms':>10}  {'params':>10}  {'peak_kb':>9}{changes}")
    for r in shown:
        change = "".join(f"  {r[k]:+7.1f}%" for k in ("latency_pct", "params_pct", "peak_pct")) + \
            f"  {r['score_vs_baseline']:+7.3f}" if "latency_pct" in r else ""
        print(f"{r['arch']:{width}}  {r['score']:9.4g}  {r['latency_ms']:10.3f}  {int(r['params']):10,}  "
              f"{r['peak_kb']:9.1f}{change}")


def _strict(value):
    """``value`` (the summary) as strict JSON takes it: numpy scalars as numbers, NaN and infinities (no
    score floor: ``min_score`` -inf) as null.

    >>> _strict({"min_score": float("-inf"), "rows": [np.float64(1.5), np.int64(2)]})
    {'min_score': None, 'rows': [1.5, 2]}
    """
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
