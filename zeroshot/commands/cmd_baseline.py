"""``zeroshot baseline SPACE NAME [--task T]``: print a reference network's encoding.

Example: ``zeroshot baseline mbv2 mobilenetv2 --task detect``; ``zeroshot baseline mbv2`` lists the names.
"""
from zeroshot.spaces.baselines import get_baseline, list_baselines

from ..cli import space_from_args
from ..errors import InputError


def register(sub):
    p = sub.add_parser("baseline", help="print a reference baseline's encoding (for example MobileNetV2)",
                       description="Print the encoding of a reference network of a space (for example mbv2's "
                                   "mobilenetv2), or list the space's baselines when no name is given.  Commands "
                                   "that take an encoding take these names too.")
    p.add_argument("space", help="search space name (see `zeroshot spaces`)")
    p.add_argument("name", nargs="?", help="baseline name (default: list the space's baselines)")
    p.add_argument("--task", help="task head: classify (the default), detect or segment (mbv2)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)              # validates space and task
    if args.name is None:
        names = list_baselines(args.space)
        if not names:
            raise InputError(f"space {args.space!r} has no baselines")
        print("\n".join(names))
        return 0
    text = get_baseline(args.space, args.name, args.task or "classify")
    print(space.format(space.parse(text)))
    return 0
