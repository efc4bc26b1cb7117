"""``zeroshot measure SPACE --archs FILE``: latency of architectures measured with torch on this machine.

Prints CSV ``arch,latency_ms,noise`` (median over interleaved rounds; noise = relative inter-quartile
range).  Batch 1, one thread and the thread's CPU time by default (see :mod:`zeroshot.estimator.timing`).
"""
from zeroshot.cli import add_space_args, read_archs, space_from_args, write_csv
from zeroshot.errors import InputError, ParameterError


def register(sub):
    p = sub.add_parser("measure", help="measure latency of architectures with torch on this machine (CSV)")
    add_space_args(p, archs=True)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--resolution", type=int, help="input resolution (default: each architecture's own)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--rounds", type=int, default=15, help="timed rounds per architecture (default 15)")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda")
    p.add_argument("--clock", default="auto", choices=("auto", "wall", "thread"),
                   help="auto: the thread's CPU time for one CPU thread, wall time otherwise")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs and timing order (default 0)")
    p.add_argument("-o", "--output", help="write the CSV to this file instead of standard output")
    p.set_defaults(run=run)


def run(args):
    from zeroshot.estimator.timing import at_resolution, measure_archs, pick_clock, torch_device

    space = space_from_args(args)
    texts, codes = read_archs(space, args.archs)
    for name in ("threads", "batch", "rounds"):
        if getattr(args, name) < 1:
            raise ParameterError(name, "a positive count", getattr(args, name))
    pick_clock(args.clock, torch_device(args.device), args.threads)          # checked before measuring
    archs = space.irs(codes)
    if args.resolution is not None:
        try:
            archs = [at_resolution(a, args.resolution) for a in archs]
        except ParameterError as e:      # this command's --resolution (elsewhere the flag is --image-size)
            raise InputError(e.message_for("--resolution")) from None
    timings = measure_archs(archs, threads=args.threads, batch=args.batch, device=args.device,
                            rounds=args.rounds, seed=args.seed, clock=args.clock)
    write_csv(["arch", "latency_ms", "noise"],
              ([t, f"{m.median_ms:.4f}", f"{m.noise:.4f}"] for t, m in zip(texts, timings)), args.output)
