"""``zeroshot search SPACE --strategy S --budget B``: multi-shot search under device constraints.

Prints one line per evaluation (the trajectory), the Pareto front of (accuracy, latency) and, last, a line
``best <encoding> accuracy <A> latency_ms <L>``.  With ``--oracle CSV --column NAME`` the accuracies are
looked up (benchmarking searchers); without, each candidate is trained for real on ``--data`` and its
validation accuracy is used.  ``--device`` names the hardware cost profile of the latency constraint
(as in ``screen``); the torch device of real training is ``--train-device``.  ``--backend ray`` runs the
trainings as Ray tasks, one GPU each where the cluster has GPUs.  A thin layer over
:func:`zeroshot.searching.search`.
"""
import sys
from dataclasses import fields

from zeroshot.backends import BACKENDS, get_backend
from zeroshot.checks import check_int
from zeroshot.cli import add_space_args, cost_device_hint, space_options
from zeroshot.commands.cmd_train import add_train_args, train_config_from_args
from zeroshot.errors import Error
from zeroshot.searching import SearchConfig, print_line, search
from zeroshot.strategies import describe, list_strategies

DEFAULTS = {f.name: f.default for f in fields(SearchConfig) if not callable(f.default)}


def register(sub):
    p = sub.add_parser("search", help="search a space (random, evolution, prefiltered, zeroshot); print the best",
                       description="Search a space under device constraints with a strategy (--strategy), "
                                   "evaluating --budget candidates: trained for real on --data, or looked up in "
                                   "--oracle.  Prints one line per evaluation, the Pareto front of accuracy "
                                   "against latency and last a line `best ENCODING accuracy A latency_ms L`.  "
                                   "--device is the hardware cost profile of the latency; the torch device of "
                                   "training is --train-device.  The strategies and their settings: "
                                   "docs/search.md.")
    add_space_args(p)
    p.add_argument("--strategy", required=True, metavar="NAME",
                   help="one of " + ", ".join(f"{n} ({describe(n)})" for n in list_strategies()) +
                        "; see docs/search.md")
    p.add_argument("--budget", type=int, required=True, metavar="N",
                   help="evaluations: trainings, or oracle lookups with --oracle")
    p.add_argument("--oracle", metavar="CSV",
                   help="look accuracies up in this CSV (column arch or arch_str) instead of training (default: "
                        "train each candidate on --data)")
    p.add_argument("--column", help="the oracle's accuracy column (required with --oracle)")
    p.add_argument("--data", metavar="NPZ|DIR", help="images for the proxies, and the training set without "
                                                     "--oracle (default: seeded synthetic input for the proxies)")
    p.add_argument("--device", default=DEFAULTS["device"], metavar="NAME_OR_FILE",
                   help="hardware cost profile of the latency: a built-in name (see `zeroshot device list`) or a "
                        "device .json (default %(default)s; the torch device of training is --train-device)")
    p.add_argument("--max-latency-ms", type=float, metavar="MS",
                   help="candidates slower on --device, in ms, are never trained (default: none)")
    p.add_argument("--max-params", type=float, metavar="N",
                   help="candidates with more parameters are never trained (default: none)")
    p.add_argument("--proxies", metavar="NAMES",
                   help="comma-separated proxies of the pre-filter (see `zeroshot proxies`; default: the default "
                        "score's)")
    p.add_argument("--cheap", default=DEFAULTS["cheap"], metavar="PROXY",
                   help="topology proxy that picks which candidates get the network proxies (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], metavar="N",
                   help="images per network proxy batch (default %(default)s)")
    p.add_argument("--population", type=int, default=DEFAULTS["population"], metavar="N",
                   help="evolution's population; prefiltered and zeroshot: how many of the warm-up's best by "
                        "score start it (default: the strategy's own, 10 for evolution, 5 for prefiltered and "
                        "zeroshot)")
    p.add_argument("--sample", type=int, default=DEFAULTS["sample"], metavar="N",
                   help="tournament size: members of the population drawn to pick each parent, at most "
                        "--population (default %(default)s)")
    p.add_argument("--children", type=int, default=DEFAULTS["children"], metavar="N",
                   help="prefiltered and zeroshot: mutants each parent proposes, of which the pre-filter picks "
                        "one (default %(default)s)")
    p.add_argument("--pool", type=int, default=DEFAULTS["pool"], metavar="N",
                   help="prefiltered and zeroshot: random feasible candidates of the warm-up, ranked by score "
                        "(default %(default)s)")
    p.add_argument("--tournament", type=int, default=DEFAULTS["tournament"],
                   help="pre-filter: each kept candidate the best by score of this many drawn by the seed "
                        "(default %(default)s; 0: the best by score)")
    p.add_argument("--cheap-tournament", type=int, default=DEFAULTS["cheap_tournament"],
                   help="pre-filter: each candidate given network proxies the best by --cheap of this many drawn "
                        "by the seed (default %(default)s; 0: the best by --cheap)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                   help="seed of the whole run: sampling, mutations, the proxies' weights and image batch "
                        "(default %(default)s)")
    p.add_argument("--db", metavar="FILE", help="SQLite results file (default: none, nothing recorded)")
    p.add_argument("--backend", default="local",
                   help="where trainings run: local (this machine, the default) or ray (a Ray cluster)")
    p.add_argument("--address", help="Ray cluster address (with --backend ray; default: Ray's own lookup)")
    p.add_argument("--workers", type=int, metavar="N", help="trainings at a time (default 1)")
    add_train_args(p, device_flag="--train-device")
    p.set_defaults(run=run)


def run(args):
    workers = check_int("workers", 1 if args.workers is None else args.workers, 1)    # unset: one at a time
    BACKENDS.get(args.backend)                  # checked with an oracle too, where no training runs
    backend = None if args.oracle else get_backend(args.backend, workers, args.address)
    settings = {name: getattr(args, name) for name in ("max_latency_ms", "max_params", "cheap", "batch_size",
                                                      "population", "sample", "children", "pool",
                                                      "tournament", "cheap_tournament")}
    if args.proxies:
        settings["proxies"] = args.proxies.split(",")
    train = vars(train_config_from_args(args, "--train-device"))
    try:
        result = search(args.space, strategy=args.strategy, budget=args.budget, oracle=args.oracle,
                        column=args.column, data=args.data, seed=args.seed, device=args.device, db=args.db,
                        space_options=space_options(args), train=train, backend=backend, log=print_line,
                        parallel=workers, **settings)
    except Error as e:
        raise cost_device_hint(e, args.device, "--train-device") from None
    if args.data is None and result.scored:
        print("zeroshot search: note: no --data; proxies that need images saw seeded synthetic input",
              file=sys.stderr)
    print(f"front ({len(result.front)} of {result.evaluations} evaluated, accuracy vs latency on {args.device}):")
    for r in result.front:
        print(f"  {r['accuracy']:7.3f}  {r['latency_ms']:9.4f} ms  {r['arch']}")
    print(f"best {result.arch} accuracy {result.accuracy:.3f} latency_ms {result.latency_ms:.4f}")
