"""``zeroshot report DB -o DIR``: Pareto plot, funnel counts and an HTML page of a screen."""
from zeroshot.report import write_report


def register(sub):
    p = sub.add_parser("report", help="write a Pareto plot, funnel counts and an HTML page of a screen")
    p.add_argument("db", help="results database written by `zeroshot screen`")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--run", dest="run_id", type=int, help="run number (default: the last screen)")
    p.set_defaults(run=run, output_is_folder=True)


def run(args):
    print(write_report(args.db, args.output, args.run_id))
