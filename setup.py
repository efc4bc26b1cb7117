"""Build of the Cython extensions: every ``ext/<name>.pyx`` becomes ``<package>.<name>``."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# compiled module -> (package that uses it, source)
EXTENSIONS = {
    "estimator._counts": "ext/_counts.pyx",
    "estimator._segments": "ext/_segments.pyx",
    "zeroshot._binary": "ext/_binary.pyx",
    "zeroshot._linalg": "ext/_linalg.pyx",
    "estimator._npu": "ext/_npu.pyx",
    "zeroshot._topology": "ext/_topology.pyx",
    "estimator._folding": "ext/_folding.pyx",
    "spaces._mbv2": "ext/_mbv2.pyx",
}

setup(
    ext_modules=cythonize(
        [Extension(name, [src], include_dirs=[np.get_include()], extra_compile_args=["-O3"])
         for name, src in EXTENSIONS.items()],
        compiler_directives={"language_level": 3},
    ),
)
