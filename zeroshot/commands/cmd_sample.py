"""``zeroshot sample SPACE -n N --seed S`` / ``--all``: distinct architectures, one encoding per line."""
from zeroshot.cli import add_space_args, space_from_args, write_text, wrote
from zeroshot.errors import InputError


def register(sub):
    p = sub.add_parser("sample", help="print distinct architectures of a space, one encoding per line",
                       description="Print distinct architectures of a space drawn at random (-n N) or all of them "
                                   "(--all), one encoding per line: the input of --archs FILE of estimate, score "
                                   "and measure.  Example: zeroshot sample nb201 -n 20 -o cells.txt")
    add_space_args(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-n", type=int, help="number of distinct architectures (this or --all is required)")
    g.add_argument("--all", action="store_true", help="enumerate the whole space (nb201: official index order)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draw (default 0)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to this file instead of standard output ('-': standard output)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    if args.all:
        try:
            lines = list(space.enumerate())
        except NotImplementedError as e:
            raise InputError(f"{e}; use -n N to sample") from None
    else:
        lines = space.sample(args.n, seed=args.seed)
    write_text("".join(line + "\n" for line in lines), args.output)
    if args.output not in (None, "-"):
        wrote(args, args.output, f"{len(lines):,} architectures")
