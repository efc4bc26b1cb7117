"""Build of the ``zeroshot`` package: one import namespace over the repository's top-level folders.

Folder -> package (``PACKAGE_DIR``): ``zeroshot/`` is ``zeroshot``, ``spaces/`` is ``zeroshot.spaces``,
``estimator/`` is ``zeroshot.estimator``; their sub-folders follow.  Every ``ext/<name>.pyx`` is compiled
as the module named in ``EXTENSIONS``.  Metadata, dependencies and package data are in pyproject.toml.
"""
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

PACKAGE_DIR = {"zeroshot": "zeroshot", "zeroshot.spaces": "spaces", "zeroshot.estimator": "estimator"}

# compiled module -> Cython source
EXTENSIONS = {
    "zeroshot.estimator._counts": "ext/_counts.pyx",
    "zeroshot.estimator._segments": "ext/_segments.pyx",
    "zeroshot._binary": "ext/_binary.pyx",
    "zeroshot._linalg": "ext/_linalg.pyx",
    "zeroshot.estimator._npu": "ext/_npu.pyx",
    "zeroshot._topology": "ext/_topology.pyx",
    "zeroshot.estimator._folding": "ext/_folding.pyx",
    "zeroshot.spaces._mbv2": "ext/_mbv2.pyx",
}


def packages() -> list[str]:
    """Every package under the mapped folders (a folder with an ``__init__.py``), by its import name."""
    names = []
    for name, folder in PACKAGE_DIR.items():
        names.append(name)
        names.extend(f"{name}.{sub}" for sub in find_packages(folder))
    return names


setup(
    package_dir=PACKAGE_DIR,
    packages=packages(),
    ext_modules=cythonize(
        [Extension(name, [src], extra_compile_args=["-O3"]) for name, src in EXTENSIONS.items()],
        compiler_directives={"language_level": 3},
    ),
)
