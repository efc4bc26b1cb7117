"""Topology-only proxies (no torch): computed from the op table for a whole batch."""
from __future__ import annotations

import numpy as np

from estimator.counts import table_counts

from . import register_proxy


@register_proxy("params", needs="nothing", higher_is_better=True, kind="topology",
                description="number of parameters")
def params(table) -> np.ndarray:
    return table_counts(table)["params"].astype(np.float64)
