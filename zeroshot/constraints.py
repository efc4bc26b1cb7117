"""Device constraints over cost metrics: the one filter the screen and the search apply, with its diagnostics.

:class:`Constraints` takes the maxima as the Python parameters name them (``max_latency_ms``, ``max_params``,
``max_peak_kb``, ``max_model_bytes``; None: no limit), filters dicts of metric arrays (what
:class:`~zeroshot.estimator.estimate.Estimator` returns) into a mask, and counts what each constraint
removed over every call.  When nothing passes, :meth:`Constraints.infeasible` words the error: the tightest
constraint and how many candidates it removed, naming its parameter (the command line names its flag).

Example
-------
>>> import numpy as np
>>> c = Constraints(max_latency_ms=2.0, max_params=100)
>>> c.limits
{'latency_ms': 2.0, 'params': 100.0}
>>> c.mask({"latency_ms": np.array([1.0, 3.0, 1.5]), "params": np.array([50, 50, 500])}).tolist()
[True, False, False]
>>> c.removed, c.seen
({'latency_ms': 1, 'params': 1}, 3)
>>> tight = Constraints(max_latency_ms=0.5)
>>> _ = tight.mask({"latency_ms": np.array([1.0, 3.0])})
>>> raise tight.infeasible()
Traceback (most recent call last):
...
zeroshot.constraints.InfeasibleError: no candidate passes the constraints; the tightest is max_latency_ms 0.5, \
which removed 2 of 2 sampled candidates: relax max_latency_ms
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from .errors import ParameterError

__all__ = ["CONSTRAINT_PARAMS", "Constraints", "InfeasibleError"]

#: parameter -> (metric it bounds, factor from the parameter's unit to the metric's)
CONSTRAINT_PARAMS = {"max_latency_ms": ("latency_ms", 1.0), "max_params": ("params", 1.0),
                     "max_peak_kb": ("peak_activation_bytes", 1024.0), "max_model_bytes": ("model_bytes", 1.0)}


class InfeasibleError(ParameterError):
    """No candidate passes the constraints.  ``param`` is the tightest constraint's parameter, ``metric``
    the metric it bounds, ``removed`` of ``seen`` candidates the ones it removed."""

    def __init__(self, param: str, metric: str, limit: float, removed: int, seen: int,
                 what: str = "sampled candidates"):
        self.metric, self.limit, self.removed, self.seen, self.what = metric, limit, removed, seen, what
        super().__init__(param, f"above {limit:g}")

    @property
    def value(self) -> float:
        """The limit as the parameter gives it (``max_peak_kb`` in KiB; :attr:`limit` is in the metric's unit)."""
        return self.limit / CONSTRAINT_PARAMS[self.param][1]

    def message_for(self, name: str) -> str:
        """The message naming the constraint ``name`` (its parameter, or its flag on the command line) with the
        limit as that gives it.

        >>> e = InfeasibleError("max_peak_kb", "peak_activation_bytes", 1024.0 ** 2, 5, 5)
        >>> print(e.message_for("--max-peak-kb"))
        no candidate passes the constraints; the tightest is --max-peak-kb 1024, which removed 5 of 5 sampled \
candidates: relax --max-peak-kb
        """
        return (f"no candidate passes the constraints; the tightest is {name} {self.value:g}, which removed "
                f"{self.removed:,} of {self.seen:,} {self.what}: relax {name}")


class Constraints:
    """Maxima on cost metrics; :meth:`mask` filters and counts.

    ``exclusive``: count a candidate breaking several constraints only under the first it breaks (in the
    order of :data:`CONSTRAINT_PARAMS`), so the counts add up to the candidates removed; by default each
    constraint counts every candidate it would remove on its own."""

    def __init__(self, max_latency_ms: float | None = None, max_params: float | None = None,
                 max_peak_kb: float | None = None, max_model_bytes: float | None = None,
                 exclusive: bool = False):
        given = {"max_latency_ms": max_latency_ms, "max_params": max_params, "max_peak_kb": max_peak_kb,
                 "max_model_bytes": max_model_bytes}
        self.params: dict[str, str] = {}          # metric -> the parameter bounding it
        self.limits: dict[str, float] = {}        # metric -> maximum, in the metric's unit
        for param, value in given.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
                raise ParameterError(param, "a number or None", value)
            metric, factor = CONSTRAINT_PARAMS[param]
            self.params[metric] = param
            self.limits[metric] = float(value) * factor
        self.exclusive = exclusive
        self.removed = {metric: 0 for metric in self.limits}
        self.seen = 0

    @classmethod
    def from_config(cls, cfg, exclusive: bool = False) -> "Constraints":
        """The constraints of a config object (its ``max_*`` attributes; missing ones are no limit)."""
        return cls(**{p: getattr(cfg, p, None) for p in CONSTRAINT_PARAMS}, exclusive=exclusive)

    def __bool__(self) -> bool:
        return bool(self.limits)

    def __repr__(self) -> str:
        inner = ", ".join(f"{self.params[m]}={v / CONSTRAINT_PARAMS[self.params[m]][1]:g}"
                          for m, v in self.limits.items())
        return f"Constraints({inner})"

    def mask(self, metrics: dict) -> np.ndarray:
        """Boolean mask of the candidates within every limit (``metrics``: name -> array, one entry per
        candidate); adds what each constraint removed to :attr:`removed` and the candidates to :attr:`seen`."""
        n = len(next(iter(metrics.values()))) if metrics else 0
        ok = np.ones(n, dtype=bool)
        for metric, limit in self.limits.items():
            fails = np.asarray(metrics[metric]) > limit
            self.removed[metric] += int((fails & ok).sum() if self.exclusive else fails.sum())
            ok &= ~fails
        self.seen += n
        return ok

    def tightest(self) -> str | None:
        """The metric whose constraint removed the most candidates so far (None if none removed any)."""
        if not self.removed or max(self.removed.values()) == 0:
            return None
        return max(self.removed, key=self.removed.get)

    def infeasible(self, what: str = "sampled candidates") -> InfeasibleError | None:
        """The error to raise when nothing passed: names the tightest constraint's parameter; None when
        no constraint removed anything (nothing passed for another reason)."""
        metric = self.tightest()
        if metric is None:
            return None
        return InfeasibleError(self.params[metric], metric, self.limits[metric], self.removed[metric],
                               self.seen, what)
