"""``zeroshot proxies``: the registered zero-shot proxies, one per line, with what each needs."""
from zeroshot.proxies import PROXIES
from zeroshot.scoring import DEFAULT_PROXIES

#: what each ``needs`` value means, for the description
NEEDS = "nothing: the topology alone; random: a random input; images: real images; labels: images and labels"


def register(sub):
    p = sub.add_parser("proxies", help="list the zero-shot proxies: kind, what each needs, direction",
                       description="List the zero-shot proxies that --proxies and --cheap take: name, kind "
                                   "(topology: from the op graph, no torch; network: on a built torch network), "
                                   f"what it needs ({NEEDS}; without --data, seeded synthetic input stands in), "
                                   "which direction is better, and what it computes.  The default score aggregates "
                                   f"{', '.join(DEFAULT_PROXIES)}.")
    p.add_argument("--kind", choices=("topology", "network"),
                   help="only proxies of this kind (default: every one)")
    p.set_defaults(run=run)


def run(args):
    rows = [(name, p.kind, p.needs, "higher" if p.higher_is_better else "lower", p.description)
            for name, p in PROXIES.items() if args.kind is None or p.kind == args.kind]
    header = ("name", "kind", "needs", "better", "description")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    for row in [header] + rows:
        print("  ".join(f"{v:{w}}" for v, w in zip(row, widths)) + "  " + row[4])
