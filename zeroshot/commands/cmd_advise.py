"""``zeroshot advise SPACE ARCH --device D [--apply N [-o FILE]] [--max-params N] [--max-peak-kb KB]``, or
``zeroshot advise --model FILE.py:FUNC --input C,H,W --device D ...`` for your own torch network.

Lists the design moves for the network (snap widths to the device's lanes, fuse inverted bottlenecks,
depthwise -> standard convs, a depth multiplier; width multipliers and the activation peak under a memory
budget), each with its estimated latency on the device, ranked by latency gained, then every block's own
fusion estimate and the channel counts that waste lanes.  ``--apply N`` makes move N of the list and
prints its before / after report; ``-o FILE`` writes the new network (``.pt``: a torch file that
:func:`zeroshot.export.load_torch` loads; another name: the IR as JSON).  ARCH is an encoding or a
baseline name (``zeroshot baseline SPACE``).

Example: ``zeroshot advise mbv2 mobilenetv2 --task detect --device mobile-npu-16 --apply 1``
"""
import argparse
import json

import torch

from zeroshot.advice import Advice, advise
from zeroshot.errors import InputError, ParameterError
from zeroshot.export import TORCH_FORMAT
from zeroshot.spaces.ir import Arch, arch_to_dict

from ..atomic import open_atomically, writing
from ..cli import add_space_args, models_from_args, space_from_args, write_text, wrote
from .cmd_rewrite import resolve_arch

#: what ``zeroshot advise --help`` says first
DESCRIPTION = """List the design moves for a network on a device (snap widths to the device's lanes, fuse inverted
bottlenecks, depthwise -> standard convs, a depth multiplier; width multipliers and the activation peak under
--max-params / --max-peak-kb), each with its estimated latency, ranked by latency gained; then every block's
own fusion estimate and the channel counts that waste lanes.  --apply N makes move N of the list and prints
its before / after report; -o FILE writes the new network.  ARCH is an encoding or a baseline name
(`zeroshot baseline SPACE` lists them); --model FILE.py:FUNC --input C,H,W advises on your own torch network.

Example: zeroshot advise mbv2 mobilenetv2 --task detect --device mobile-npu-16 --apply 1"""


def register(sub):
    p = sub.add_parser("advise", help="the design moves for a network on a device, ranked by latency gained",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_space_args(p, models=True)
    p.add_argument("arch", nargs="?", help="an encoding (quoted) or a baseline name, like mobilenetv2")
    p.add_argument("--device", required=True, metavar="NAME_OR_FILE",
                   help="device to estimate latency on: a built-in name (see `zeroshot device list`) or a device "
                        ".json (required)")
    p.add_argument("--apply", type=int, metavar="N",
                   help="make move N of the list (1 = the first) and report before / after (default: list only)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="with --apply: write the new network to FILE (.pt: a torch file with its IR and weights, as "
                        "`zeroshot export --format torch` writes; any other name: the IR as JSON; default: none)")
    p.add_argument("--max-params", type=int, metavar="N",
                   help="parameter budget the width moves aim at (default: none)")
    p.add_argument("--max-peak-kb", type=float, metavar="KB",
                   help="peak activation memory budget in KiB, fp32 (default: none)")
    p.set_defaults(run=run)


def network(args) -> Arch:
    """The network the command advises on: the ``--model`` network, or the space's encoding or baseline, as IR."""
    models = models_from_args(args)
    if models is not None:
        if len(models) != 1:
            raise ParameterError("model", "a function returning the one network to advise on",
                                 f"{len(models)} networks")
        return models[0]
    if args.arch is None:
        raise InputError("name the network: SPACE ARCH (an encoding or a baseline name, like mobilenetv2), or "
                         "--model FILE.py:FUNC --input C,H,W")
    space = space_from_args(args)
    return space.to_ir(resolve_arch(space, args.arch))


def run(args):
    if args.output and args.apply is None:
        raise ParameterError("output", "given with --apply N (the network a move makes)", args.output)
    advice = advise(network(args), device=args.device, max_params=args.max_params, max_peak_kb=args.max_peak_kb)
    print(advice)
    if args.apply is not None:
        apply(advice, args.apply, args.output, args)
    return 0


def apply(advice: Advice, n: int, output: str | None, args) -> None:
    """Make move ``n`` (1-based, as listed), print its report and write it to ``output`` when given (said on
    standard error: ``args``, the command's)."""
    if not 1 <= n <= len(advice):
        raise ParameterError("apply", f"a move number 1..{len(advice)} of the list above" if len(advice)
                             else "a move number, but no move applies to this network", n)
    done = advice.apply(n - 1)
    print(done)
    if output is None:
        return
    ir = arch_to_dict(done.arch)
    if output.endswith(".pt"):
        with writing(output), open_atomically(output, "wb") as f:
            torch.save({"format": TORCH_FORMAT, "space": None, "arch": done.move.title, "ir": ir,
                        "state_dict": done.module.state_dict()}, f)
    else:
        write_text(json.dumps(ir, indent=1) + "\n", output)
    wrote(args, output)
