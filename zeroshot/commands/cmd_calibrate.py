"""``zeroshot calibrate SPACE --measurements CSV [--column NAME] -o DEVICE.json``: fit a device from
whole-model latencies of a few architectures (``calibrated`` kind; use it with ``--device DEVICE.json``).

The CSV has an architecture column (``arch``; also ``arch_str`` or ``op_names``) and latencies in ms;
without ``--column`` the column ``latency_ms`` is used where there is one (what ``zeroshot measure`` writes),
else the one numeric column other than the architecture and index columns.  With
``--model FILE.py:FUNC --input C,H,W`` (your own networks) the architecture column holds the networks' names
as ``zeroshot estimate --model`` prints them, and the device predicts any network.
"""
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from zeroshot.cli import add_space_args, models_from_args, space_from_args, write_text, wrote
from zeroshot.errors import DataError, ParameterError
from zeroshot.api import calibrate
from zeroshot.estimator.latency_csv import latency_column, numeric_columns, read_latency_csv


#: the latency column ``zeroshot measure`` writes, used without --column where present
LATENCY_COLUMN = "latency_ms"


def register(sub):
    p = sub.add_parser("calibrate", help="fit a device from measured whole-model latencies (JSON)",
                       description="Fit a `calibrated` device from the measured whole-model latencies of a few "
                                   "architectures (for example the CSV `zeroshot measure` writes); use it with "
                                   "--device DEVICE.json.  The fit's summary goes to standard error.")
    add_space_args(p, models=True)
    p.add_argument("--measurements", required=True, metavar="CSV",
                   help="CSV with an architecture column (arch, arch_str or op_names) and a latency column in ms "
                        "(required)")
    p.add_argument("--column", metavar="NAME",
                   help=f"the latency column (default: {LATENCY_COLUMN} where there is one, else the only numeric "
                        "column)")
    p.add_argument("--name", help="device name (default: the output file's name without .json)")
    p.add_argument("-o", "--output", required=True, metavar="DEVICE.json", help="device file to write (required)")
    p.set_defaults(run=run)


def run(args):
    models = models_from_args(args)
    space = space_from_args(args) if models is None else None
    texts, raw = read_latency_csv(args.measurements, space)
    column = _pick_column(raw, args.column, args.measurements)
    latency = latency_column(raw, column, args.measurements)
    archs = texts if models is None else _by_name(models, texts, args.measurements)
    try:
        device = calibrate(archs, latency, space=space, name=args.name or Path(args.output).stem)
    except ParameterError as e:
        if e.param not in ("archs", "latency_ms"):
            raise
        what = "the latencies" if e.param == "latency_ms" else "the architectures"
        raise DataError(f"{args.measurements}: {e.message_for(what)}") from None
    device.description += f"; column {column!r} of {Path(args.measurements).name}"
    write_text(json.dumps(device.to_dict(), indent=2) + "\n", args.output)
    fit = device.predict(space, archs)
    rho = spearmanr(fit, latency).statistic if np.ptp(fit) > 0 and np.ptp(latency) > 0 else float("nan")
    err = np.median(np.abs(fit / latency - 1)) * 100
    wrote(args, args.output, f"{device.summary()}; on the measurements: rho {rho:.3f}, median error {err:.1f}%")


def _by_name(models, names, path) -> list:
    """The ``--model`` networks in the order the measurements name them."""
    by_name = {a.meta["name"]: a for a in models}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(f"{path}: no --model network named {missing[0]!r}; the networks are "
                        f"{', '.join(by_name)}")
    return [by_name[n] for n in names]


def _pick_column(raw, column, path) -> str:
    numeric = numeric_columns(raw)
    if column is not None:
        if column not in raw:
            what = "is the architecture column" if column == "arch" else "is not a column"
            raise ParameterError("column", f"a latency column of {path}", None,
                                 f"{column!r} {what}; latency columns: {', '.join(numeric) or '(none)'}")
        return column
    if LATENCY_COLUMN in numeric:
        return LATENCY_COLUMN
    if len(numeric) != 1:
        what = f"{len(numeric)} numeric columns ({', '.join(numeric)})" if numeric else "no numeric column"
        raise DataError(f"{path}: expected one latency column besides the architecture, found {what}; "
                        f"choose one with --column NAME")
    return numeric[0]

