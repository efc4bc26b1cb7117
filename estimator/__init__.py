"""Hardware cost of architectures: exact analytic counts, device models and latency estimators."""
from .counts import analytic_counts

__all__ = ["analytic_counts"]
