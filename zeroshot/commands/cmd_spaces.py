"""``zeroshot spaces``: the built-in spaces with their sizes and defaults."""
from zeroshot.spaces import get_space, list_spaces


def register(sub):
    p = sub.add_parser("spaces", help="list the built-in search spaces with their sizes",
                       description="List the built-in search spaces: name, number of architectures and a "
                                   "description.  Every command that takes SPACE takes one of these names.")
    p.set_defaults(run=run)


def run(args):
    rows = []
    for name in list_spaces():
        space = get_space(name)
        rows.append((name, f"{space.size:,}" if space.size < 10**12 else f"{space.size:.3e}",
                     space.description))
    width = max(len(r[1]) for r in rows)
    print(f"{'space':8} {'size':>{width}}  description")
    for name, size, desc in rows:
        print(f"{name:8} {size:>{width}}  {desc}")
