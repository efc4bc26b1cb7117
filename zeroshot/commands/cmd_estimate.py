"""``zeroshot estimate SPACE --archs FILE``: exact params, MACs and peak activation memory as CSV."""
from estimator.counts import analytic_counts
from zeroshot.cli import add_space_args, read_archs, space_from_args, write_csv


def register(sub):
    p = sub.add_parser("estimate", help="analytic cost of architectures (CSV)")
    add_space_args(p, archs=True)
    p.add_argument("-o", "--output", help="write the CSV to this file instead of standard output")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    texts, codes = read_archs(space, args.archs)
    counts = analytic_counts(space.irs(codes))
    columns = ["params", "macs", "peak_activation_bytes"]
    rows = ([t] + [int(counts[c][i]) for c in columns] for i, t in enumerate(texts))
    write_csv(["arch"] + columns, rows, args.output)
