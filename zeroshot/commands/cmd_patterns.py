"""``zeroshot patterns DB [--run N|last] [--by METRIC] [--top K] [--ascending]``: design choices the best
candidates of a screen or search share, each with the rewrite that applies it (see :mod:`zeroshot.patterns`).

Example: ``zeroshot patterns zeroshot-mbv2.db --by score --top 20``, then
``zeroshot rewrite mbv2 mobilenetv2 --apply <the specs>``.
"""
import os

from zeroshot.spaces import get_space

from ..checks import check_int
from ..errors import InputError, StoreError
from ..patterns import mine
from ..store import ResultStore


def register(sub):
    p = sub.add_parser("patterns", help="mine the choices the best candidates of a run share, as rewrites")
    p.add_argument("db", help="SQLite results file of a screen or search")
    p.add_argument("--run", dest="run_id", default="last", help="run id, or last (default)")
    p.add_argument("--by", default="score", help="metric ranking the candidates (default score)")
    p.add_argument("--top", type=int, default=20, help="how many best candidates (default 20)")
    p.add_argument("--ascending", action="store_true", help="lower is better (latency_ms, params, ...)")
    p.set_defaults(run=run)


def run(args):
    check_int("top", args.top, least=1)
    if not os.path.exists(args.db):
        raise InputError(f"no results file {args.db}; run `zeroshot screen` or `zeroshot search` with --db first")
    with ResultStore(args.db, readonly=True) as store:
        space = get_space(store.space, **store.space_options)
        run_id = max(store.runs() or [0]) if args.run_id == "last" else _int(args.run_id)
        if run_id not in store.runs():
            raise StoreError(f"{args.db} has no run {args.run_id}; runs: {store.runs() or 'none'}")
        best = [r["arch"] for r in store.top(run_id, args.by, args.top, descending=not args.ascending)]
        everyone = [r[0] for r in store.stream(run_id, ("arch",), has=args.by)]
    if len(everyone) < 2 * args.top:
        raise InputError(f"run {run_id} has {len(everyone)} candidates with {args.by}; patterns need at least twice "
                        f"--top ({args.top}); lower --top")
    rules = mine(space, best, everyone)
    print(f"run {run_id}: best {len(best)} by {args.by} ({'lower' if args.ascending else 'higher'} is better) "
          f"against all {len(everyone)}")
    for r in rules:
        print(f"- {r['rule']}: {100 * r['best']:.0f}% of the best, {100 * r['all']:.0f}% of all"
              if r["spec"] is None or not r["spec"].startswith("depth") else f"- {r['rule']}")
    specs = [r["spec"] for r in rules if r["spec"]]
    print(f"apply: {','.join(specs)}" if specs else "apply: (no pattern a rewrite can impose)")
    return 0


def _int(text: str) -> int:
    if not text.isdigit():
        raise InputError(f"--run must be a run id (a number) or last, got {text!r}")
    return int(text)
