"""Run every benchmark script in this folder with its defaults, one after another (``make bench``).

Each script writes its own table under ``benchmarks/results/``; this runner only sequences them and
reports each one's exit status and wall time.  Several take many minutes (the whole set takes hours on
2 cores); pick some with ``--only``.

Usage::

    python benchmarks/run_all.py                         # all of them
    python benchmarks/run_all.py --list                  # their names and first docstring lines
    python benchmarks/run_all.py --only counts_speed,funnel_speed
"""
import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"common", "run_all"}


def scripts() -> dict[str, Path]:
    """Benchmark name -> script path."""
    return {p.stem: p for p in sorted(HERE.glob("*.py")) if p.stem not in NOT_BENCHMARKS}


def summary(path: Path) -> str:
    """The first paragraph of the script's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    found = scripts()
    if args.list:
        for name, path in found.items():
            print(f"{name:28s} {summary(path)}")
        return 0
    names = list(found) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in found]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(found)}")
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(found[name])], cwd=HERE.parent)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
