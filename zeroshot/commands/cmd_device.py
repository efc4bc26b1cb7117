"""``zeroshot device list`` / ``zeroshot device show NAME_OR_FILE``: the device models;
``zeroshot device profile -o FILE.json``: measure this machine into a ``measured`` device;
``zeroshot device check FILE.json [-o NOW.json]``: is this machine as fast now as when it was profiled?

Each action is a pair ``(add_parser, run)`` in :data:`ACTIONS`; a new action (``device profile``) is one
more function pair and one more entry.
"""
import json
import sys
from pathlib import Path

from zeroshot.estimator.devices import list_devices, load_device
from zeroshot.atomic import writing
from zeroshot.cli import wrote
from zeroshot.errors import InputError, ParameterError
from zeroshot.spaces import get_space, list_spaces


def add_list(sub):
    return sub.add_parser("list", help="the built-in device profiles, one per line",
                          description="List the built-in device profiles, one per line: name, kind and summary.  "
                                      "Any command's --device takes one of these names or a device .json file.")


def run_list(args):
    devices = [load_device(name) for name in list_devices()]
    width = max(len(d.name) for d in devices)
    print(f"{'name':{width}}  {'kind':8} summary")
    for d in devices:
        print(f"{d.name:{width}}  {d.kind:8} {d.summary()}")


def add_show(sub):
    p = sub.add_parser("show", help="print a device's JSON (a built-in name or a .json file)",
                       description="Print a device's settings as JSON: a built-in profile (see `zeroshot device "
                                   "list`) or a device .json file (for example one `zeroshot calibrate` or "
                                   "`zeroshot device profile` wrote).")
    p.add_argument("name", metavar="NAME_OR_FILE",
                   help="a built-in device name (see `zeroshot device list`) or a device .json file")
    return p


def run_show(args):
    print(json.dumps(load_device(args.name).to_dict(), indent=2))


def add_profile(sub):
    p = sub.add_parser("profile", help="measure this machine with torch and write a `measured` device",
                       description="Measure this machine's kernels with torch (or ONNX Runtime) and write a "
                                   "`measured` device that predicts any network's latency here; use it with "
                                   "--device FILE.json.  Progress and the summary go to standard error.")
    p.add_argument("-o", "--output", required=True, metavar="FILE.json",
                   help="device file to write (its regressors go to FILE.joblib beside it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--budget-s", type=float, default=600,
                   help="time budget of the kernel measurements in seconds (default 600); the calibration "
                        "models' rounds come on top (a fixed time per space)")
    p.add_argument("--spaces", help="comma-separated spaces whose layers to sample (default: all)")
    p.add_argument("--device", default="auto",
                   help="torch device to measure on: auto (CUDA when present, the default), cpu or cuda")
    p.add_argument("--runtime", default="torch",
                   help="what runs the networks: torch (default) or onnxruntime (on the CPU, needs onnxruntime)")
    p.add_argument("--name", help="device name (default: the file name without .json)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampled networks and layers, the timing order and the fit (default 0)")
    return p


def run_profile(args):

    from zeroshot.estimator.timing import require_onnxruntime, runtime_device
    from zeroshot.estimator.profiling import profile

    out = Path(args.output)
    if out.suffix != ".json":
        raise ParameterError("output", "a .json file name", args.output)
    if args.threads < 1:
        raise ParameterError("threads", "at least 1", args.threads)
    if args.budget_s <= 0:
        raise ParameterError("budget_s", "a positive number of seconds", args.budget_s)
    runtime_device(args.runtime, args.device)   # checked before measuring
    if args.runtime == "onnxruntime":
        require_onnxruntime()
    names = args.spaces.split(",") if args.spaces else list_spaces()
    spaces = [get_space(n.strip()) for n in names]
    log = (lambda s: print(f"zeroshot device profile: {s}", file=sys.stderr)) if sys.stderr.isatty() else None
    dev = profile(spaces, budget_s=args.budget_s, threads=args.threads, device=args.device, seed=args.seed,
                  name=args.name or out.stem, log=log, runtime=args.runtime)
    with writing(out):
        dev.save(out)
    i = dev.info
    wrote(args, f"{out} and {out.with_suffix('.joblib').name}",
          f"{i['kernels_measured']} kernels in {i['profile_seconds']:.0f} s; calibration models within 10% (own "
          f"space's correction): "
          f"{', '.join(f'{k} {v:.0%}' for k, v in i['calibration_within_10pct_per_space'].items())}")


def add_check(sub):
    p = sub.add_parser("check", help="measure a `measured` device's reference networks now: does this machine "
                                     "run as fast as when it was profiled?",
                       description="Time a `measured` device's reference networks on this machine now and print how "
                                   "fast they run against the profile (a warning on standard error past 5%%); "
                                   "-o writes the device rescaled to today's speed.")
    p.add_argument("device", metavar="FILE.json", help="a device file written by `zeroshot device profile`")
    p.add_argument("-o", "--output", metavar="NOW.json",
                   help="write the device rescaled to today's speed to this .json file (default: none)")
    p.add_argument("--rounds", type=int, default=15,
                   help="interleaved timing rounds of the reference networks (default 15)")
    return p


def run_check(args):

    from zeroshot.estimator.measured_device import MeasuredDevice
    from zeroshot.estimator.speed_check import speed_check

    if args.rounds < 1:
        raise ParameterError("rounds", "at least 1", args.rounds)
    if args.output and Path(args.output).suffix != ".json":
        raise ParameterError("output", "a .json file name", args.output)
    dev = load_device(args.device)
    if not isinstance(dev, MeasuredDevice):
        raise InputError(f"{args.device} is a {dev.kind} device: a speed check needs a measured device file "
                         "(zeroshot device profile -o FILE.json)")
    check = speed_check(dev, rounds=args.rounds)
    print(f"{len(check.ratios)} reference networks run at {check.ratio:.3f}x their latency during the profile "
          f"(per network {check.ratios.min():.3f}-{check.ratios.max():.3f})")
    if check.drifted():
        print(f"zeroshot device check: warning: {check.warning(args.device)}", file=sys.stderr)
    if args.output:
        with writing(args.output):
            check.rescale(dev).save(Path(args.output))
        wrote(args, args.output)


ACTIONS = {"list": (add_list, run_list), "show": (add_show, run_show), "profile": (add_profile, run_profile),
           "check": (add_check, run_check)}


def register(sub):
    p = sub.add_parser("device", help="list, show, profile and check device models (latency estimation)",
                       description="The device models that estimate latency: list the built-in ones, show one, "
                                   "profile this machine into a `measured` device, or check that this machine "
                                   "still runs as fast as when it was profiled.")
    actions = p.add_subparsers(dest="device_action", metavar="ACTION", required=True)
    for add, run in ACTIONS.values():
        add(actions).set_defaults(run=run)
