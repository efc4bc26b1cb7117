"""``zeroshot search SPACE --strategy S --budget B``: multi-shot search under device constraints.

Prints one line per evaluation (the trajectory), the Pareto front of (accuracy, latency) and, last, a line
``best <encoding> accuracy <A> latency_ms <L>``.  With ``--oracle CSV --column NAME`` the accuracies are
looked up (benchmarking searchers); without, each candidate is trained for real on ``--data`` and its
validation accuracy is used.  ``--device`` names the hardware cost profile of the latency constraint
(as in ``screen``); the torch device of real training is ``--train-device``.  ``--backend ray`` runs the
trainings as Ray tasks, one GPU each where the cluster has GPUs.
"""
import sys
from dataclasses import fields

import numpy as np

from zeroshot.estimator.devices import DeviceError
from zeroshot.backends import get_backend
from zeroshot.cli import add_space_args, space_from_args, space_options
from zeroshot.commands.cmd_train import add_train_args, train_config_from_args
from zeroshot.errors import UserError
from zeroshot.score import resolve_proxies
from zeroshot.search import OracleEvaluator, SearchConfig, TrainingEvaluator, print_line, run_search
from zeroshot.store import StoreError
from zeroshot.strategies import list_strategies

DEFAULTS = {f.name: f.default for f in fields(SearchConfig) if not callable(f.default)}


def register(sub):
    p = sub.add_parser("search", help="search a space (random, evolution, prefiltered, zeroshot); print the best")
    add_space_args(p)
    p.add_argument("--strategy", required=True, help=f"one of {', '.join(list_strategies())}")
    p.add_argument("--budget", type=int, required=True, help="evaluations (trainings or oracle lookups)")
    p.add_argument("--oracle", metavar="CSV", help="look accuracies up in this CSV (column arch or arch_str)")
    p.add_argument("--column", help="the oracle's accuracy column")
    p.add_argument("--data", metavar="NPZ|DIR", help="images for the proxies, and the training set without "
                                                     "--oracle")
    p.add_argument("--device", default=DEFAULTS["device"],
                   help="hardware cost profile of the latency (default %(default)s; see `zeroshot device list`)")
    p.add_argument("--max-latency-ms", type=float, help="candidates slower on --device are never trained")
    p.add_argument("--max-params", type=float, help="candidates with more parameters are never trained")
    p.add_argument("--proxies", help="comma-separated proxies of the pre-filter (default: the default score's)")
    p.add_argument("--cheap", default=DEFAULTS["cheap"],
                   help="topology proxy that picks which candidates get the network proxies (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="images per proxy batch")
    for name in ("population", "sample", "children", "pool"):
        p.add_argument(f"--{name}", type=int, default=DEFAULTS[name],
                       help="strategy setting (default %(default)s; see zeroshot/strategies.py)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--db", help="SQLite results file (default: none, nothing recorded)")
    p.add_argument("--backend", default="local", help="where trainings run: local or ray")
    p.add_argument("--address", help="Ray cluster address (with --backend ray)")
    p.add_argument("--workers", type=int, help="trainings at a time (default 1 locally)")
    add_train_args(p, device_flag="--train-device")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    options = space_options(args)
    proxies = tuple(resolve_proxies(args.proxies.split(","))) if args.proxies else DEFAULTS["proxies"]
    workers = args.workers or 1
    cfg = SearchConfig(space=space.name, strategy=args.strategy, budget=args.budget, space_options=options,
                       seed=args.seed, device=args.device, max_latency_ms=args.max_latency_ms,
                       max_params=args.max_params, proxies=proxies, data=args.data, batch_size=args.batch_size,
                       population=args.population, sample=args.sample, children=args.children, pool=args.pool,
                       cheap=args.cheap,
                       parallel=workers, oracle=args.oracle, column=args.column,
                       train=vars(train_config_from_args(args)))
    data = None
    if args.data:
        from zeroshot.training_sets import load_dataset
        arch = space.build_ir(space.sample_codes(1, np.random.default_rng(0))[0])
        data = load_dataset(args.data, arch.input_shape, arch.tensor_shape(arch.outputs[0])[0])
    if args.oracle:
        evaluator = OracleEvaluator(args.oracle, args.column, space)
    else:
        evaluator = TrainingEvaluator(cfg, get_backend(args.backend, workers, args.address))
    try:
        result = run_search(cfg, evaluator, db=args.db, data=data, log=print_line)
    except (StoreError, DeviceError, KeyError) as e:
        raise UserError(e.args[0]) from None
    if data is None and result["scored"]:
        print("note: no --data; proxies that need images saw seeded synthetic input", file=sys.stderr)
    print(f"front ({len(result['front'])} of {result['evaluations']} evaluated, accuracy vs latency on {args.device}):")
    for r in result["front"]:
        print(f"  {r['accuracy']:7.3f}  {r['latency_ms']:9.4f} ms  {r['arch']}")
    b = result["best"]
    print(f"best {b['arch']} accuracy {b['accuracy']:.3f} latency_ms {b['latency_ms']:.4f}")
