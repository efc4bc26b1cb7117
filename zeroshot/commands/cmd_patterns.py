"""``zeroshot patterns DB [--run N|last] [--by METRIC] [--top K] [--ascending]``: design choices the best
candidates of a screen or search share, each with the rewrite that applies it (see :mod:`zeroshot.patterns`).

Example: ``zeroshot patterns zeroshot-mbv2.db --by score --top 20``, then
``zeroshot rewrite mbv2 mobilenetv2 --apply <the specs>``.
"""
import os
import sys

from zeroshot.spaces import get_space

from ..checks import check_int
from ..cli import parse_run
from ..errors import InputError
from ..patterns import mine
from ..store import ResultStore

#: --top when not given (fewer when the run has fewer than twice as many candidates)
TOP = 20


def register(sub):
    p = sub.add_parser("patterns", help="mine the choices the best candidates of a run share, as rewrites",
                       description="Mine the design choices the best candidates of a screen or search run share "
                                   "(mbv2-style spaces), each with the rewrite that applies it: the best --top by "
                                   "--by against every candidate of the run that has --by.  Example: zeroshot "
                                   "patterns zeroshot-mbv2.db --top 20, then zeroshot rewrite mbv2 mobilenetv2 "
                                   "--apply SPECS with the specs of its last line.")
    p.add_argument("db", help="SQLite results file of a screen or search")
    p.add_argument("--run", dest="run_id", default="last", metavar="N|last",
                   help="run number, or last (the default: the database's last run)")
    p.add_argument("--by", default="score",
                   help="metric ranking the candidates (default score; cheap: the cheap score, which every "
                        "candidate that passed the constraints has)")
    p.add_argument("--top", type=int, metavar="K",
                   help=f"how many best candidates (default {TOP}, or half the run's candidates with --by when "
                        "it has fewer than twice that)")
    p.add_argument("--ascending", action="store_true",
                   help="lower is better (latency_ms, params, ...; default: higher is better)")
    p.set_defaults(run=run)


def run(args):
    if args.top is not None:
        check_int("top", args.top, least=1)
    if not os.path.exists(args.db):
        raise InputError(f"no results file {args.db}; run `zeroshot screen` or `zeroshot search` with --db first")
    with ResultStore(args.db, readonly=True) as store:
        space = get_space(store.space, **store.space_options)
        run_id = parse_run(args.run_id)
        run_id = max(store.runs() or [0]) if run_id is None else run_id
        store.check_run(run_id)
        everyone = [r[0] for r in store.stream(run_id, ("arch",), has=args.by)]
        top = _top(args, run_id, len(everyone))
        best = [r["arch"] for r in store.top(run_id, args.by, top, descending=not args.ascending)]
    rules = mine(space, best, everyone)
    print(f"run {run_id}: best {len(best)} by {args.by} ({'lower' if args.ascending else 'higher'} is better) "
          f"against all {len(everyone)}")
    for r in rules:
        print(f"- {r['rule']}: {100 * r['best']:.0f}% of the best, {100 * r['all']:.0f}% of all"
              if r["spec"] is None or not r["spec"].startswith("depth") else f"- {r['rule']}")
    specs = [r["spec"] for r in rules if r["spec"]]
    print(f"apply: {','.join(specs)}" if specs else "apply: (no pattern a rewrite can impose)")
    return 0


def _top(args, run_id: int, n: int) -> int:
    """``--top``, or when not given :data:`TOP`, or half of the ``n`` candidates when fewer than twice
    :data:`TOP` (said on standard error); patterns compare the best with at least twice as many."""
    other = "" if args.by == "cheap" else "; or rank by the cheap score, which every candidate has: --by cheap"
    if args.top is not None:
        if n < 2 * args.top:
            raise InputError(f"run {run_id} has {n} candidates with {args.by}; patterns need at least twice --top "
                             f"({args.top}): lower --top to {n // 2} or less{other}" if n >= 4 else
                             f"run {run_id} has {n} candidates with {args.by}; patterns need at least 4{other}")
        return args.top
    if n >= 2 * TOP:
        return TOP
    if n < 4:
        raise InputError(f"run {run_id} has {n} candidates with {args.by}; patterns need at least 4{other}")
    print(f"zeroshot patterns: note: run {run_id} has {n} candidates with {args.by}, fewer than twice {TOP}: "
          f"comparing the best {n // 2} (--top sets how many)", file=sys.stderr)
    return n // 2
