"""Smoke test of an installed wheel, run from outside the source tree by .ci/run.

Usage: python smoke_wheel.py SOURCE_ROOT WHEEL

Checks that the wheel holds only the ``zeroshot`` package (and its dist-info), that every module of the
source tree (the folders and Cython sources named in setup.py) imports from the installed package, that
the version is single-sourced, and that the command line runs on a packaged device profile.
"""
import ast
import importlib
import importlib.metadata
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DIST = "zeroshot-nas"


def setup_constants(root: Path) -> dict:
    """``PACKAGE_DIR`` and ``EXTENSIONS`` as setup.py declares them (read, not imported)."""
    found = {}
    for node in ast.parse((root / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("PACKAGE_DIR", "EXTENSIONS"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def source_modules(root: Path) -> list[str]:
    """Import names of every module in the source tree: .py files under the mapped folders, compiled ones."""
    consts = setup_constants(root)
    names = list(consts["EXTENSIONS"])
    for package, folder in consts["PACKAGE_DIR"].items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            names.append(".".join([package, *parts]))
    return sorted(set(names))


def check_wheel_top_level(wheel: Path) -> None:
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    expected = {"zeroshot", f"{DIST.replace('-', '_')}-{importlib.metadata.version(DIST)}.dist-info"}
    assert top == expected, f"the wheel installs {sorted(top)}; expected only {sorted(expected)}"


def check_imports(root: Path) -> int:
    modules = source_modules(root)
    for name in modules:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        where = Path(module.__file__).resolve()
        assert root.resolve() not in where.parents, f"{name} was imported from the source tree ({where})"
    return len(modules)


def run(*args: str, cwd: str) -> str:
    return subprocess.run(["zeroshot", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def check_cli() -> None:
    with tempfile.TemporaryDirectory() as cwd:
        assert "mbv2" in run("spaces", cwd=cwd)
        Path(cwd, "archs.txt").write_text(run("sample", "mbv2", "-n", "5", "--seed", "0", cwd=cwd))
        csv = run("estimate", "mbv2", "--archs", "archs.txt", "--device", "mobile-npu-16", cwd=cwd).splitlines()
        assert csv[0].endswith(",latency_ms") and len(csv) == 6, csv


def main() -> None:
    root, wheel = Path(sys.argv[1]), Path(sys.argv[2])
    import zeroshot
    assert zeroshot.__version__ == importlib.metadata.version(DIST), "the version is not single-sourced"
    check_wheel_top_level(wheel)
    n = check_imports(root)
    check_cli()
    print(f"wheel smoke test: {wheel.name}: top level ok, {n} modules import from site-packages, CLI ok")


if __name__ == "__main__":
    main()
