"""Usage tracking: which model versions serve, how well and how fast — the evidence for decisions.

>>> from modelgit.tracking import Tracker
>>> with Tracker("sqlite:////tmp/usage.sqlite") as tracker:             # doctest: +SKIP
...     tracker.record("calling_score", "v2.0", latency_ms=12.5, request_id="r-1")
...     tracker.feedback("r-1", quality=0.9)
...     tracker.flush()
...     [(a.group["version"], a.n, a.latency.quantile(0.95)) for a in tracker.aggregates()]
[('v2.0', 1, 12.7...)]

The URL helpers and the pure aggregates import without SQLAlchemy; :class:`Tracker` imports it
(and opens the database) when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelgit.tracking.stats import (
    QUANTILE_RELATIVE_ERROR,
    Aggregate,
    LatencyHistogram,
    Moments,
    Rollup,
)
from modelgit.tracking.urls import ENV_VAR, check_url, redact, resolve_url

if TYPE_CHECKING:
    from modelgit.tracking.tracker import Tracker, TrackerStats

__all__ = [
    "ENV_VAR",
    "QUANTILE_RELATIVE_ERROR",
    "Aggregate",
    "LatencyHistogram",
    "Moments",
    "Rollup",
    "Tracker",
    "TrackerStats",
    "check_url",
    "redact",
    "resolve_url",
]


def __getattr__(name: str) -> Any:
    # SQLAlchemy costs ~100 ms to import: only when a tracker is asked for.
    if name in ("Tracker", "TrackerStats"):
        from modelgit.tracking import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module 'modelgit.tracking' has no attribute {name!r}")
