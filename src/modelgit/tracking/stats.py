"""Pure aggregates of usage: moments, rollups and log-spaced latency histograms (no I/O, no SQL).

A rollup keeps, per metric, the count, the sum and the sum of squares of the values it saw, so a
mean and a variance come out of any union of rollups without reading raw rows. Latency quantiles
come from a histogram whose buckets are ``[GAMMA**b, GAMMA**(b+1))`` milliseconds: each bucket is
4 % wide relative to its lower edge, so the bucket's geometric midpoint is within
``sqrt(GAMMA) - 1`` (1.98 %) of every value in it — that is the error bound of a quantile read
from it (the DDSketch idea, with fixed buckets so histograms of any rollups simply add).

>>> h = LatencyHistogram.of([10.0, 20.0, 30.0])
>>> round(h.quantile(0.5), 1)   # 20 ms, read back within 2 %
20.1
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

__all__ = [
    "GAMMA",
    "METRICS",
    "QUANTILE_RELATIVE_ERROR",
    "Aggregate",
    "LatencyHistogram",
    "Moments",
    "Rollup",
    "bucket_of",
    "bucket_value",
    "pack_histogram",
    "unpack_histogram",
]

# Relative bucket width: 4 % (≤ 5 % asked), about 59 buckets per decade of latency.
GAMMA = 1.04
_LOG_GAMMA = math.log(GAMMA)
# Latencies under 1 ns (0 included) share one bucket; a value of 0 ms is read back as 0.
MIN_LATENCY_MS = 1e-6
ZERO_BUCKET = math.floor(math.log(MIN_LATENCY_MS) / _LOG_GAMMA) - 1
QUANTILE_RELATIVE_ERROR = math.sqrt(GAMMA) - 1

# The metrics a rollup keeps moments of, in column order.
METRICS = ("quality", "latency_ms", "tokens", "satisfaction")


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket of a latency in milliseconds (``latency_ms >= 0``)."""
    if latency_ms < MIN_LATENCY_MS:
        return ZERO_BUCKET
    return math.floor(math.log(latency_ms) / _LOG_GAMMA)


def bucket_value(bucket: int) -> float:
    """The value that stands for a bucket: its geometric midpoint (0 for the zero bucket)."""
    if bucket <= ZERO_BUCKET:
        return 0.0
    return GAMMA ** (bucket + 0.5)


# A stored histogram: (bucket int32, count int64) pairs, little-endian, unpadded, by bucket; the
# packed rows of many rollups concatenate into one array numpy reads at once (HISTOGRAM_DTYPE).
_PAIR = struct.Struct("<iq")
HISTOGRAM_DTYPE = [("bucket", "<i4"), ("count", "<i8")]


def pack_histogram(counts: Mapping[int, int]) -> bytes:
    """``counts`` as stored (buckets with a zero count left out)."""
    items = sorted((b, c) for b, c in counts.items() if c)
    return struct.pack("<" + "iq" * len(items), *(v for pair in items for v in pair))


def unpack_histogram(data: bytes) -> dict[int, int]:
    return dict(_PAIR.iter_unpack(data))


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of one metric; ``a + b`` pools two groups."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def variance(self) -> float | None:
        """The sample variance (n - 1 in the denominator); None under two values. Clamped at 0
        because sum-of-squares arithmetic can end a hair below it for constant data."""
        if self.count < 2:
            return None
        return max(0.0, (self.total_sq - self.total * self.total / self.count) / (self.count - 1))


@dataclass(frozen=True, slots=True)
class Rollup:
    """What one (day, model, version, task, commit) saw: ``n`` requests and each metric's moments.
    ``task`` and ``commit`` are ``''`` when the requests carried none."""

    day: date
    model: str
    version: str
    task: str
    commit: str
    n: int
    quality: Moments
    latency_ms: Moments
    tokens: Moments
    satisfaction: Moments


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Counts per latency bucket (see :func:`bucket_of`); histograms of any groups add up."""

    counts: Mapping[int, int]

    @classmethod
    def of(cls, latencies: Iterable[float]) -> LatencyHistogram:
        return cls(dict(Counter(bucket_of(v) for v in latencies)))

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        merged = Counter(self.counts)
        merged.update(other.counts)
        return LatencyHistogram(dict(merged))

    @property
    def count(self) -> int:
        return sum(c for c in self.counts.values() if c > 0)

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 ≤ q ≤ 1) as the k-th smallest value, k = ceil(q·n) (numpy's
        ``inverted_cdf``), within :data:`QUANTILE_RELATIVE_ERROR` of the exact one; None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Iterable[float]) -> tuple[float | None, ...]:
        qs = tuple(qs)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"a quantile is between 0 and 1, not {q!r}")
        items = sorted((b, c) for b, c in self.counts.items() if c > 0)
        n = sum(c for _, c in items)
        if n == 0:
            return tuple(None for _ in qs)
        out: list[float | None] = []
        for q in qs:
            rank = max(1, math.ceil(q * n))
            seen = 0
            for bucket, count in items:
                seen += count
                if seen >= rank:
                    out.append(bucket_value(bucket))
                    break
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Rollups pooled over a group (``group`` maps the grouping columns to their values) with the
    group's merged latency histogram."""

    group: Mapping[str, object]
    n: int
    quality: Moments
    latency_ms: Moments
    tokens: Moments
    satisfaction: Moments
    latency: LatencyHistogram

    def metric(self, name: str) -> Moments:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; one of {', '.join(METRICS)}")
        return getattr(self, name)  # type: ignore[no-any-return]
