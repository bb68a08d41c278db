"""The usage tracker: ``record()`` on the request path, a writer thread off it.

>>> with Tracker("sqlite:////tmp/usage.sqlite") as tracker:          # doctest: +SKIP
...     tracker.record("calling_score", "v2.0", latency_ms=12.5, request_id="r-1", commit=sha)
...     tracker.feedback("r-1", quality=0.9)
...     tracker.flush()
...     [(a.group["version"], a.n, a.quality.mean) for a in tracker.aggregates("calling_score")]
[('v2.0', 1, 0.9)]

``record()`` appends one tuple to a deque (a few hundred nanoseconds) and returns; it never blocks
and never raises for a bad value. A daemon thread writes batches at least every ``flush_interval``
seconds, and sooner when a batch fills. When the queue is full the record is counted as dropped.
Values are checked when a batch is written: a bad record is counted as rejected, with its reason in
``stats.last_error``. ``close()`` (or the end of a ``with`` block, the tracker being collected, or
interpreter exit) writes what is still queued.

Request ids make writes idempotent: a record whose request id is stored already updates that row
(a retry never counts twice), and ``feedback()`` sets the outcome of a stored request; rollups are
corrected by the difference. Feedback for a request id not stored yet is kept in the database
(``usage_pending_feedback``, so another replica's record finds it) and applied when the record
arrives; ``prune()`` deletes it after the retention period like a raw row. A retry or feedback
for a request whose raw row was pruned cannot correct the rollups any more: it is stored as new.

One tracker per process: after ``os.fork()`` the child has no writer thread and shares the
parent's connections, so open a new tracker in the child.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from modelgit.errors import UsageError
from modelgit.tracking import store
from modelgit.tracking.stats import Aggregate, Rollup
from modelgit.tracking.urls import ENV_VAR, check_url, redact, resolve_url

__all__ = ["Tracker", "TrackerStats"]

log = logging.getLogger("modelgit.tracking")
# The logging HOWTO's advice for libraries: a failed write is logged for hosts that configure
# logging, and Python's last-resort handler does not print it to stderr for those that do not.
log.addHandler(logging.NullHandler())
_BATCH_SIZE = 5_000
_time = time.time


@dataclass(frozen=True, slots=True)
class TrackerStats:
    """Counts since the tracker opened. ``recorded`` counts records and feedbacks accepted into the
    queue; each ends as ``written``, ``rejected`` (a bad value), ``failed`` (the database refused
    the batch after retries) or is still ``queued``. ``dropped`` were refused because the queue was
    full or the tracker closed. ``last_error`` is the newest rejection or write failure."""

    recorded: int
    written: int
    dropped: int
    rejected: int
    failed: int
    queued: int
    last_error: str | None


class _Core:
    """The state the writer thread shares with the tracker. The thread holds this, not the
    tracker, so a tracker nobody references is collected (and then flushed and closed)."""

    def __init__(self, url: str, engine: Any, queue: deque[tuple[Any, ...]], flush_interval: float,
                 batch_size: int) -> None:
        self.url = url
        self.engine = engine
        self.queue = queue
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.wake = threading.Event()
        self.stopping = False
        self.write_lock = threading.Lock()  # one writer at a time: the thread, flush() or close()
        self.count_lock = threading.Lock()
        self.taken = self.written = self.rejected = self.failed = self.dropped = 0
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None

    def drain(self, *, final: bool = False) -> None:
        """Write everything queued now, a batch at a time. Never raises: a failure is counted. When
        the database is unreachable for a while, the batch goes back to the head of the queue for
        the next interval (the queue's bound then drops new records rather than growing memory);
        the ``final`` drain at close counts it as failed instead of waiting for ever."""
        with self.write_lock:
            queue, popleft = self.queue, self.queue.popleft
            while queue:
                batch = []
                try:
                    for _ in range(self.batch_size):
                        batch.append(popleft())
                except IndexError:
                    pass
                if not self._write(batch, final=final):
                    queue.extendleft(reversed(batch))
                    return

    def _write(self, batch: list[tuple[Any, ...]], *, final: bool) -> bool:
        """False when the batch should be written again later (not counted yet)."""
        try:
            result = store.write_batch(self.engine, batch)
        except Exception as exc:  # the database refused: count and keep the reason, keep serving
            reason = f"{type(exc).__name__}: " + _first_line(exc, self.url)
            if not final and store.is_unavailable(exc):
                with self.count_lock:
                    self.last_error = f"write deferred ({len(batch)} queued again): {reason}"
                log.warning("tracking %s", self.last_error)
                return False
            message = f"write failed ({len(batch)} lost): {reason}"
            with self.count_lock:
                self.taken += len(batch)
                self.failed += len(batch)
                self.last_error = message
            log.error("tracking %s", message)
            return True
        with self.count_lock:
            self.taken += len(batch)
            self.written += result.written
            self.rejected += result.rejected
            if result.last_rejection:
                self.last_error = result.last_rejection
        return True

    def run(self) -> None:
        while not self.stopping:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            if self.stopping:
                break
            self.drain()

    def shutdown(self) -> None:
        """Stop the thread, write what is queued and release the connections (once)."""
        self.stopping = True
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()
        self.drain(final=True)
        self.engine.dispose()


def _first_line(exc: BaseException, url: str) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = text[0] if text else ""
    # A driver may quote its connection string; never let a password through.
    password = _password(url)
    return line.replace(password, "***") if password else line


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


class Tracker:
    """Records usage of model versions into SQLite or PostgreSQL, off the request path.

    ``url`` is a tracking URL (see :func:`modelgit.tracking.resolve_url`); None means
    ``$MODELGIT_TRACKING_URL``, else ``.git/modelgit/usage.sqlite`` under the current directory
    when it is a git work tree's root. The schema is created or upgraded on open.
    """

    def __init__(self, url: str | None = None, *, retention_days: int | None = None, queue_size: int = 100_000,
                 flush_interval: float = 1.0, batch_size: int = _BATCH_SIZE) -> None:
        if url is None:
            git_dir = Path.cwd() / ".git"
            if not git_dir.is_dir() and not _env_url():
                raise UsageError("no tracking URL", hint=f"pass one, or set {ENV_VAR}")
            url = resolve_url(None, None, git_dir / "modelgit")
        else:
            url = check_url(url)
        if retention_days is not None and (isinstance(retention_days, bool) or not isinstance(retention_days, int)
                                           or retention_days < 1):
            raise UsageError(f"retention_days must be a whole number of days >= 1, not {retention_days!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise UsageError(f"queue_size must be an integer >= 1, not {queue_size!r}")
        if not (isinstance(flush_interval, int | float) and 0 < flush_interval < float("inf")):
            raise UsageError(f"flush_interval must be a positive number of seconds, not {flush_interval!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be an integer >= 1, not {batch_size!r}")
        self.url = url
        self.retention_days = retention_days
        engine = store.create_engine(url)
        try:
            store.migrate(engine, url)
        except BaseException:
            engine.dispose()
            raise
        self._queue: deque[tuple[Any, ...]] = deque()
        self._limit = queue_size
        # record() wakes the writer when the queue reaches a full batch; checked with == so the
        # request path pays one comparison, not a call, for it.
        self._wake_at = min(batch_size, queue_size)
        self._core = _Core(url, engine, self._queue, float(flush_interval), batch_size)
        self._wake = self._core.wake
        thread = threading.Thread(target=self._core.run, name="modelgit-tracking-writer", daemon=True)
        self._core.thread = thread
        # Runs close's work when the tracker is collected, or at interpreter exit (atexit) — whichever
        # comes first — and holds no reference to the tracker itself.
        self._finalizer = weakref.finalize(self, self._core.shutdown)
        thread.start()

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> Tracker:
        """The same as ``Tracker(url, **options)``; reads well in a ``with`` statement."""
        return cls(url, **options)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Tracker({redact(self.url)!r})"

    # -- the request path ---------------------------------------------------------------------------
    def record(self, model: str, version: str, *, quality: float | None = None, latency_ms: float | None = None,
               tokens: int | None = None, satisfaction: float | None = None, task: str | None = None,
               user: str | None = None, request_id: str | None = None, commit: str | None = None,
               ts: float | datetime | None = None) -> None:
        """Queue one request's usage; never blocks, never raises for a value (checked when written).
        ``ts`` is seconds since the epoch or a datetime (naive means UTC), now when left out."""
        queue = self._queue
        size = len(queue)
        if size >= self._limit:
            self._drop()
            return
        queue.append((model, version, quality, latency_ms, tokens, satisfaction, task, user, request_id, commit,
                      _time() if ts is None else ts))
        if size == self._wake_at - 1:
            self._wake.set()

    def feedback(self, request_id: str, *, quality: float | None = None, satisfaction: float | None = None,
                 ts: float | datetime | None = None) -> None:
        """Queue the outcome of a request: sets quality and/or satisfaction of its record (again
        and again: the last one wins); kept until the record arrives when it is not stored yet."""
        queue = self._queue
        if len(queue) >= self._limit:
            self._drop()
            return
        queue.append((request_id, quality, satisfaction, _time() if ts is None else ts))
        if len(queue) >= self._wake_at:
            self._wake.set()

    def _drop(self) -> None:
        with self._core.count_lock:
            self._core.dropped += 1

    # -- off the request path -----------------------------------------------------------------------
    @property
    def stats(self) -> TrackerStats:
        core = self._core
        with core.count_lock:
            queued = len(self._queue)
            return TrackerStats(recorded=core.taken + queued, written=core.written, dropped=core.dropped,
                                rejected=core.rejected, failed=core.failed, queued=queued,
                                last_error=core.last_error)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def flush(self) -> None:
        """Write everything queued so far, in this thread, before returning."""
        if self.closed:
            return
        self._core.drain()

    def close(self) -> None:
        """Write what is queued and stop the writer. Later records are counted as dropped."""
        self._limit = -1
        self._finalizer()

    def prune(self, now: float | datetime | None = None) -> int:
        """Delete raw events older than ``retention_days`` before ``now``; rollups stay. Returns how
        many events went (0 without a retention setting)."""
        if self.retention_days is None:
            return 0
        now_ts = _time() if now is None else store._timestamp(now)
        return store.prune(self._engine, now_ts - self.retention_days * 86_400)

    def rollups(self, model: str | None = None, *, version: str | None = None, task: str | None = None,
                since: date | None = None, until: date | None = None,
                commits: Iterable[str] | None = None) -> list[Rollup]:
        """Daily rollups in (day, model, version, task, commit) order, filtered; ``task=''`` and
        ``commits=['']`` select what carried none."""
        return store.read_rollups(self._engine, **_filters(model, version, task, since, until, commits))

    def aggregates(self, model: str | None = None, *, by: Sequence[str] = ("model", "version"),
                   version: str | None = None, task: str | None = None, since: date | None = None,
                   until: date | None = None, commits: Iterable[str] | None = None) -> list[Aggregate]:
        """Rollups pooled per group of ``by`` columns (any of day, model, version, task, commit),
        summed in the database, each with its merged latency histogram for p50/p95."""
        by = tuple(by)
        if not by or any(column not in store.KEY for column in by) or len(set(by)) != len(by):
            raise UsageError(f"cannot group by {by!r}", hint=f"group by distinct columns of {', '.join(store.KEY)}")
        return store.read_aggregates(self._engine, by, **_filters(model, version, task, since, until, commits))

    def latency_quantiles(self, model: str | None = None, *, qs: Sequence[float] = (0.5, 0.95),
                          version: str | None = None, task: str | None = None, since: date | None = None,
                          until: date | None = None, commits: Iterable[str] | None = None
                          ) -> tuple[float | None, ...]:
        """Latency quantiles (ms) of everything the filters select, from the merged histograms;
        each within :data:`~modelgit.tracking.stats.QUANTILE_RELATIVE_ERROR` of the exact one."""
        groups = store.read_aggregates(self._engine, ("model",), **_filters(model, version, task, since, until,
                                                                            commits))
        if not groups:
            return tuple(None for _ in qs)
        total = groups[0].latency
        for group in groups[1:]:
            total = total + group.latency
        return total.quantiles(qs)

    def count_events(self) -> int:
        """How many raw events are stored (a scan: for tests and benchmarks, not for reports)."""
        return store.count_events(self._engine)

    @property
    def _engine(self) -> Any:
        if self.closed:
            raise UsageError("the tracker is closed")
        return self._core.engine


def _env_url() -> str | None:
    import os

    return os.environ.get(ENV_VAR) or None


def _filters(model: str | None, version: str | None, task: str | None, since: date | None, until: date | None,
             commits: Iterable[str] | None) -> dict[str, Any]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
            raise UsageError(f"{name} must be a date, not {value!r}")
    if isinstance(commits, str):
        raise UsageError("commits is a list of commit shas, not one string")
    return {"model": model, "version": version, "task": task, "since": since, "until": until,
            "commits": None if commits is None else list(commits)}

