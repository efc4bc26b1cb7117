"""``zeroshot measure SPACE --archs FILE`` (or ``--model FILE.py:FUNC --input C,H,W`` for your own torch
networks): latency of architectures measured with torch on this machine.

Prints CSV ``arch,latency_ms,noise`` (median over interleaved rounds; noise = relative inter-quartile
range).  Batch 1, one thread and the thread's CPU time by default (see :mod:`zeroshot.estimator.timing`);
``--runtime onnxruntime`` runs each network exported to ONNX with ONNX Runtime on the CPU;
``--check-device FILE.json`` times a measured device's reference networks with them and prints how fast this
machine runs against that device's profile (:mod:`zeroshot.estimator.speed_check`).
"""
import sys

from zeroshot.api import measure
from zeroshot.cli import (Spelled, add_space_args, flag_used, models_from_args, read_archs, space_from_args,
                          write_text, wrote)
from zeroshot.errors import InputError, ParameterError
from zeroshot.estimator.devices import load_device
from zeroshot.estimator.timing import at_resolution
from zeroshot.table import Table


def register(sub):
    p = sub.add_parser("measure", help="measure latency of architectures with torch on this machine (CSV)",
                       description="Measure the latency of architectures on this machine with torch (or ONNX "
                                   "Runtime) and print CSV arch,latency_ms,noise: the median over interleaved "
                                   "rounds in ms, and the relative inter-quartile range.  The CSV is what "
                                   "`zeroshot calibrate --measurements` reads.")
    add_space_args(p, archs=True, models=True, image_size=False)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--image-size", "--resolution", dest="resolution", type=int, metavar="PX", action=Spelled,
                   help="input side in pixels the networks run at (default: each network's own)")
    p.add_argument("--batch-size", "--batch", dest="batch", type=int, default=1, metavar="N", action=Spelled,
                   help="images per timed forward pass (default 1)")
    p.add_argument("--rounds", type=int, default=15, help="timed rounds per architecture (default 15)")
    p.add_argument("--device", default="auto",
                   help="torch device: auto (CUDA when present, the default), cpu or cuda")
    p.add_argument("--clock", default="auto", choices=("auto", "wall", "thread"),
                   help="what is timed: thread (the thread's CPU time), wall (wall-clock time) or auto (the "
                        "default: thread for one thread on the CPU, wall otherwise)")
    p.add_argument("--runtime", default="torch",
                   help="what runs the networks: torch (default) or onnxruntime (on the CPU, needs onnxruntime)")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs and timing order (default 0)")
    p.add_argument("--check-device", metavar="FILE.json",
                   help="a measured device: time its reference networks interleaved with these and say how fast "
                        "this machine runs against its profile (warns past 5%%; default: none)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the CSV to this file instead of standard output ('-': standard output)")
    p.set_defaults(run=run)


def checked_device(args):
    """The measured device of ``--check-device`` and its reference networks, checked to be measured as it was
    profiled (threads, batch 1, runtime)."""
    from zeroshot.estimator.measured_device import MeasuredDevice
    from zeroshot.estimator.speed_check import rebuilt, references

    dev = load_device(args.check_device)
    if not isinstance(dev, MeasuredDevice):
        raise InputError(f"{args.check_device} is a {dev.kind} device: --check-device needs a measured device "
                         "file (zeroshot device profile -o FILE.json)")
    info = dev.info
    batch = flag_used(args, "batch", "--batch-size")
    for flag, now, then in (("--threads", args.threads, info.get("threads", 1)), (batch, args.batch, 1),
                            ("--runtime", args.runtime, info.get("runtime", "torch"))):
        if now != then:
            raise InputError(f"{args.check_device} was profiled with {flag} {then}, this measurement uses {now}: "
                             f"measure with {flag} {then} to compare with it")
    refs = references(dev)
    return refs, rebuilt(refs)


def report_check(args, refs, ms) -> None:

    from zeroshot.estimator.speed_check import SpeedCheck

    check = SpeedCheck.of(refs, ms)
    print(f"zeroshot measure: speed check: {args.check_device}'s {len(refs)} reference networks ran at "
          f"{check.ratio:.3f}x their latency during its profile (interleaved with these networks)", file=sys.stderr)
    if check.drifted():
        print(f"zeroshot measure: warning: {check.warning(args.check_device)}", file=sys.stderr)


def run(args):

    archs = models_from_args(args)
    if archs is None:
        space = space_from_args(args)
        texts, codes = read_archs(space, args.archs)
        archs = space.irs(codes)
    else:
        texts = [a.meta["name"] for a in archs]
    if args.resolution is not None:
        try:
            archs = [at_resolution(a, args.resolution) for a in archs]
        except ParameterError as e:      # the flag as given: --image-size, or its other name --resolution
            raise InputError(e.message_for(flag_used(args, "resolution", "--image-size"))) from None
    refs, ref_archs = checked_device(args) if args.check_device else ([], [])
    try:
        table = measure(archs + ref_archs, threads=args.threads, batch=args.batch, rounds=args.rounds,
                        device=args.device, clock=args.clock, seed=args.seed, runtime=args.runtime)
    except ParameterError as e:      # the batch flag as given: --batch-size, or its other name --batch
        if e.param != "batch":
            raise
        raise InputError(e.message_for(flag_used(args, "batch", "--batch-size"))) from None
    if refs:
        report_check(args, refs, table["latency_ms"][len(archs):])
        table = Table({c: table[c][:len(archs)] for c in table.columns})
    write_text(Table({"arch": texts, "latency_ms": table["latency_ms"], "noise": table["noise"]}).to_csv(),
               args.output)
    if args.output not in (None, "-"):
        wrote(args, args.output)
