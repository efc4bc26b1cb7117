"""``zeroshot score SPACE --archs FILE`` (or ``--model FILE.py:FUNC --input C,H,W`` for your own torch
networks): zero-shot scores of architectures as CSV ``arch,score,<proxy>...``.

Without ``--proxies`` the default score (:mod:`zeroshot.scoring`) and the proxies it aggregates; with it,
the rank aggregate of the listed proxies.  ``--data`` takes an NPZ of images and labels
(:mod:`zeroshot.batches`); without it, proxies that need data see seeded synthetic input.
"""
import sys

from zeroshot.api import Archs, proxy_names, score
from zeroshot.checks import check_batch_size, check_seed
from zeroshot.cli import (add_space_args, models_from_args, read_archs, space_from_args,
                          write_text, wrote)
from zeroshot.scoring import DEFAULT_PROXIES, data_proxies


def register(sub):
    p = sub.add_parser("score", help="zero-shot proxies and the default score of architectures (CSV)",
                       description="Score architectures at initialisation with zero-shot proxies and print CSV "
                                   "arch,score,PROXY...: the default score and the proxies it aggregates, or the "
                                   "rank aggregate of --proxies.  Without --data, proxies that need images see "
                                   "seeded synthetic input.  Example: zeroshot score nb201 --archs cells.txt")
    add_space_args(p, archs=True, models=True)
    p.add_argument("--proxies", metavar="NAMES",
                   help="comma-separated proxies, aggregated by rank (see `zeroshot proxies` for the names); "
                        f"default: the default score's {','.join(DEFAULT_PROXIES)}")
    p.add_argument("--data", metavar="NPZ",
                   help="NPZ of images 'x' and labels 'y' for the proxies that need data (default: seeded "
                        "synthetic input)")
    p.add_argument("--batch-size", type=int, metavar="N", help="images per network proxy batch (default 64)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the networks' initial weights and the synthetic input (default 0)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the CSV to this file instead of standard output ('-': standard output)")
    p.set_defaults(run=run)


def run(args):
    names = proxy_names(args.proxies)
    if args.batch_size is not None:
        check_batch_size(args.batch_size)
    check_seed(args.seed)
    models = models_from_args(args)
    space = space_from_args(args) if models is None else None
    archs = models if models is not None else Archs(*read_archs(space, args.archs), space=space)
    if args.data is None:
        _note_synthetic(names)
    table = score(archs, space=space, data=args.data, seed=args.seed, proxies=names, batch_size=args.batch_size,
                  progress=True)
    write_text(table.to_csv(), args.output)
    if args.output not in (None, "-"):
        wrote(args, args.output)


def _note_synthetic(names):
    users = data_proxies(names)
    if users:
        verb = "sees" if len(users) == 1 else "see"
        print(f"zeroshot score: note: no --data; {', '.join(users)} {verb} seeded Gaussian input with random labels",
              file=sys.stderr)
