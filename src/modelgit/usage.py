"""What each version did in production, per phase: the numbers ``modelgit usage`` prints and the
decisions of :mod:`modelgit.decisions` are made of.

A **phase** of a model starts at each commit (on the first-parent line of the ref) that changes its
traffic split or the status of a version: its arms and their shares are fixed inside one phase, so
its statistics are an experiment's; across phases they are not, and they are never pooled. Usage
is recorded with the commit that served it (:class:`modelgit.tracking.Tracker`), so each rollup
falls in the phase whose start is the newest ancestor of its commit. A rollup without a commit, or
with one this history does not hold (another branch, a rewritten history), is reported apart as
phase ``None`` and used by no decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from modelgit.gitstore import ZERO_SHA, GitRepo
from modelgit.snapshot import model_path, parse_model
from modelgit.spec import Model
from modelgit.stats import Interval, Moments, mean_interval

METRICS = ("quality", "satisfaction", "latency_ms", "tokens")


@dataclass(frozen=True)
class Phase:
    """From ``start`` (a commit) until the next phase's start: a fixed split and fixed statuses."""

    index: int
    start: str
    date: str
    subject: str
    split: dict[str, float]
    statuses: dict[str, str]
    active: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start, "date": self.date, "subject": self.subject,
                "split": self.split, "statuses": self.statuses, "active": self.active}


def _key(model: Model) -> tuple[Any, ...]:
    return (tuple(sorted(model.split().items())), tuple((v.version, v.status) for v in model.versions))


def phases(repo: GitRepo, model_id: str, ref: str = "HEAD") -> list[Phase]:
    """The model's phases on the first-parent line of ``ref``, oldest first. A commit that leaves
    the split and statuses as they were (a description, metrics) starts no phase; an invalid file
    starts none either (it never served)."""
    path = model_path(model_id)
    head = repo.resolve(ref)
    changes = list(reversed(repo.file_history(head, path)))  # oldest first
    blobs = repo.read_blobs(c.new_blob for c in changes if c.new_blob != ZERO_SHA)
    found: list[Phase] = []
    last: tuple[Any, ...] | None = None
    for change in changes:
        data = blobs.get(change.new_blob)
        model = parse_model(data, path, change.new_blob).spec if data is not None else None
        if model is None:
            continue
        key = _key(model)
        if key == last:
            continue
        last = key
        active = model.active
        found.append(Phase(len(found), change.commit, change.date, change.subject, model.split(),
                           {v.version: v.status for v in model.versions}, active.version if active else None))
    return found


class PhaseIndex:
    """Which phase a serving commit belongs to (memoised: a few ``merge-base`` calls per commit)."""

    def __init__(self, repo: GitRepo, found: Sequence[Phase]) -> None:
        self._repo = repo
        self.phases = list(found)
        self._memo: dict[str, int | None] = {}

    def of(self, commit: str) -> int | None:
        if not commit:
            return None
        if commit not in self._memo:
            self._memo[commit] = None
            for phase in reversed(self.phases):
                if phase.start == commit or self._repo.is_ancestor(phase.start, commit):
                    self._memo[commit] = phase.index
                    break
        return self._memo[commit]


@dataclass
class Arm:
    """One version (and task) in one phase: pooled moments of each metric, and the days seen."""

    version: str
    task: str
    n: int = 0
    metrics: dict[str, Moments] = field(default_factory=lambda: {m: Moments(0, 0.0, 0.0) for m in METRICS})
    first_day: date | None = None
    last_day: date | None = None

    @property
    def quality(self) -> Moments:
        return self.metrics["quality"]

    def add(self, rollup: Any) -> None:
        """Pool a tracker rollup or aggregate (anything with ``n`` and the four metrics' moments)."""
        self.n += int(rollup.n)
        for name in METRICS:
            self.metrics[name] = self.metrics[name] + as_moments(getattr(rollup, name))
        day = getattr(rollup, "day", None)
        if day is not None:
            self.first_day = day if self.first_day is None or day < self.first_day else self.first_day
            self.last_day = day if self.last_day is None or day > self.last_day else self.last_day


def as_moments(value: Any) -> Moments:
    """A tracker rollup's (count, total, total_sq) as :class:`modelgit.stats.Moments`."""
    if isinstance(value, Moments):
        return value
    count = getattr(value, "count", None)
    if count is None:
        count = value.n
    return Moments(int(count), float(value.total), float(value.total_sq))


def arms_by_phase(rollups: Iterable[Any], index: PhaseIndex) -> dict[int | None, dict[tuple[str, str], Arm]]:
    """Rollups (or aggregates grouped by version, task and commit) of one model, grouped by phase,
    then by (version, task); never pooled across phases."""
    grouped: dict[int | None, dict[tuple[str, str], Arm]] = {}
    for rollup in rollups:
        version, task, commit = _key_of(rollup)
        phase = index.of(commit)
        key = (version, task)
        arms = grouped.setdefault(phase, {})
        arm = arms.get(key)
        if arm is None:
            arm = arms[key] = Arm(version, task)
        arm.add(rollup)
    return grouped


def _key_of(rollup: Any) -> tuple[str, str, str]:
    group = getattr(rollup, "group", None)
    if group is not None:
        return str(group["version"]), str(group.get("task") or ""), str(group.get("commit") or "")
    return rollup.version, rollup.task or "", rollup.commit or ""


def _interval(m: Moments, alpha: float = 0.05) -> dict[str, Any] | None:
    if m.n == 0:
        return None
    found: Interval = mean_interval(m, alpha)
    return {"mean": m.mean, "n": m.n, "low": found.low if found.defined else None,
            "high": found.high if found.defined else None}


def arm_summary(arm: Arm, quantiles: dict[str, float | None] | None = None) -> dict[str, Any]:
    """What ``usage`` prints for one arm: n, means with 95 % intervals (fixed-horizon, for
    reading; decisions use anytime-valid ones), latency quantiles and tokens."""
    latency = arm.metrics["latency_ms"]
    return {
        "version": arm.version,
        "task": arm.task or None,
        "n": arm.n,
        "quality": _interval(arm.metrics["quality"]),
        "satisfaction": _interval(arm.metrics["satisfaction"]),
        "latency_ms": {"mean": latency.mean if latency.n else None,
                       "p50": (quantiles or {}).get("p50"), "p95": (quantiles or {}).get("p95")},
        "tokens": _interval(arm.metrics["tokens"]),
        "first_day": arm.first_day.isoformat() if arm.first_day else None,
        "last_day": arm.last_day.isoformat() if arm.last_day else None,
    }
