"""``zeroshot report DB -o DIR [--run N|last]``: Pareto plot, funnel counts and an HTML page of a screen."""
from zeroshot.cli import parse_run
from zeroshot.report import write_report


def register(sub):
    p = sub.add_parser("report", help="write a Pareto plot, funnel counts and an HTML page of a screen",
                       description="Write pareto.png (score against latency, the shortlist and the baseline "
                                   "marked), funnel.png (candidates per stage) and index.html of a screen into a "
                                   "folder, and print the page's path.  Needs the optional matplotlib package.")
    p.add_argument("db", help="results database written by `zeroshot screen`")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder to write into (created if missing)")
    p.add_argument("--run", dest="run_id", default="last", metavar="N|last",
                   help="screen run number, or last (the default: the database's last screen)")
    p.set_defaults(run=run, output_is_folder=True)


def run(args):
    print(write_report(args.db, args.output, parse_run(args.run_id)))
