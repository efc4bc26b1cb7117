"""The compiled kernels number IR op kinds, activations and layouts as the Python side does: each exports
the codes it reads, checked here against their single definition."""
import importlib

import pytest

from zeroshot.spaces import ir


@pytest.mark.parametrize("module", ["zeroshot.estimator._counts", "zeroshot._topology", "zeroshot.estimator._folding"])
def test_op_kinds_match_the_ir(module):
    kinds = importlib.import_module(module).KINDS
    assert kinds and kinds == {name: ir.KIND_NAMES.index(name) for name in kinds}


def test_activation_codes_match_the_ir():
    from zeroshot._topology import ACTS
    assert ACTS == {name: ir.ACT_CODES[name] for name in ACTS}


def test_segment_column_kinds_cover_every_reduction():
    from zeroshot.estimator._segments import COLUMN_KINDS
    from zeroshot.estimator.segmented import REDUCTIONS
    assert set(REDUCTIONS) <= set(COLUMN_KINDS) and len(set(COLUMN_KINDS.values())) == len(COLUMN_KINDS)
