"""NAS-Bench-Macro declared as a :class:`~zeroshot.spaces.macro.MacroSpace` (the skeleton of
``../shared/data/README.md``), and its 8-digit strings as encodings of that space.

Digits per layer: 0 identity, 1 MBConv k3 e3, 2 MBConv k5 e6; stages of [2, 3, 3] layers at 64, 128, 256
channels, each starting with stride 2 (its identity a 1x1 conv stride 2 + BN); ReLU, no SE, no conv bias;
stem 3x3 conv 3->32 stride 1, head 1x1 conv to 1280, 10 classes, 32x32 input.

>>> import numpy as np
>>> space = nasbench_macro()
>>> every = np.concatenate(list(space.enumerate_codes()))
>>> space.size, len(every), len(np.unique(space.canonical_codes(every), axis=0))
(6561, 6561, 3969)
>>> encoding("00000012")
'r32 | c64 skip skip | c128 skip skip skip | c256 skip i3e3 i5e6'
"""
from zeroshot.spaces.macro import MacroSpace, Stage, ibn, skip

__all__ = ["DIGITS", "encoding", "nasbench_macro"]

#: the block of each digit
DIGITS = (skip(), ibn(3, 3), ibn(5, 6))


def nasbench_macro() -> MacroSpace:
    """The NAS-Bench-Macro space: 3**8 = 6,561 digit strings, 3,969 distinct networks."""
    stages = [Stage(2, width, depth, DIGITS) for width, depth in ((64, 2), (128, 3), (256, 3))]
    return MacroSpace(stages, resolutions=32, stem=32, stem_stride=1, head=1280, classes=10, act="relu",
                      parallelism=1, name="nasbench-macro")


def encoding(digits: str) -> str:
    """The space's encoding of an 8-digit NAS-Bench-Macro string."""
    tokens = [DIGITS[int(d)].token for d in digits]
    return f"r32 | c64 {' '.join(tokens[:2])} | c128 {' '.join(tokens[2:5])} | c256 {' '.join(tokens[5:])}"
