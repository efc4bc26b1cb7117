"""``zeroshot score SPACE --archs FILE``: zero-shot scores of architectures as CSV ``arch,score,<proxy>...``.

Without ``--proxies`` the default score (:mod:`zeroshot.score`) and the proxies it aggregates; with it,
the rank aggregate of the listed proxies.  ``--data`` takes an NPZ of images and labels
(:mod:`zeroshot.batches`); without it, proxies that need data see seeded synthetic input.
"""
import sys

from zeroshot.cli import add_space_args, read_archs, space_from_args, write_csv
from zeroshot.batches import load_data
from zeroshot.errors import UserError
from zeroshot.proxies import get_proxy
from zeroshot.score import DEFAULT_PROXIES, needs_data, resolve_proxies, score


def register(sub):
    p = sub.add_parser("score", help="zero-shot proxies and the default score of architectures (CSV)")
    add_space_args(p, archs=True)
    p.add_argument("--proxies", help="comma-separated proxies (see the registry); default: the default "
                                     f"score's {','.join(DEFAULT_PROXIES)}")
    p.add_argument("--data", metavar="NPZ", help="images 'x' and labels 'y' for the proxies that need data")
    p.add_argument("--batch-size", type=int, help="images per network proxy batch (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed of initialisation and synthetic input")
    p.add_argument("-o", "--output", help="write the CSV to this file instead of standard output")
    p.set_defaults(run=run)


def run(args):
    names = resolve_proxies(args.proxies.split(",")) if args.proxies is not None else list(DEFAULT_PROXIES)
    if args.batch_size is not None and args.batch_size < 2:
        raise UserError(f"--batch-size must be at least 2 (batch statistics), got {args.batch_size}")
    space = space_from_args(args)
    texts, codes = read_archs(space, args.archs)
    data = None
    if args.data is not None:
        arch = space.build_ir(codes[0])
        data = load_data(args.data, arch.input_shape, arch.tensor_shape(arch.outputs[0])[0])
        if len(data) < 2 and any(get_proxy(n).kind == "network" for n in names):
            raise UserError(f"{args.data} holds {len(data)} image; network proxies need at least 2 (batch "
                            "statistics)")
        if args.batch_size is not None and args.batch_size > len(data):
            raise UserError(f"--batch-size {args.batch_size} exceeds the {len(data)} images in {args.data}")
    elif needs_data(names):
        users = [n for n in names if get_proxy(n).needs in ("images", "labels")]
        verb = "sees" if len(users) == 1 else "see"
        print(f"zeroshot score: note: no --data; {', '.join(users)} {verb} seeded Gaussian input with random labels",
              file=sys.stderr)
    scores, values = score(space, codes, data, args.seed, args.batch_size, names, progress=True)
    rows = ([t, f"{scores[i]:.6g}"] + [f"{values[n][i]:.6g}" for n in names] for i, t in enumerate(texts))
    write_csv(["arch", "score"] + names, rows, args.output)
