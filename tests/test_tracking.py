"""modelgit.tracking against real SQLite files and a real PostgreSQL server.

Expected values come from numpy over the same generated data, never from the tracker's own output.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from modelgit.errors import InvalidError, UsageError
from modelgit.tracking import (
    QUANTILE_RELATIVE_ERROR,
    LatencyHistogram,
    Moments,
    Tracker,
    check_url,
    resolve_url,
)
from modelgit.tracking.stats import METRICS, bucket_of

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()
DAY = 86_400.0
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh tracking database: a SQLite file in tmp_path, or a new database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/usage.sqlite"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t{os.getpid()}_{next(_names)}")


@pytest.fixture
def tracker(url: str) -> Iterator[Tracker]:
    # A long interval: the tests flush themselves, so nothing is written behind their back.
    with Tracker(url, flush_interval=3600) as t:
        yield t


def generate(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {
        "version": rng.choice(["v1", "v2", "v3"], n),
        "task": rng.choice(["", "chat", "code"], n),
        "commit": rng.choice(["", "a" * 40], n),
        "quality": rng.uniform(0, 1, n),
        "latency_ms": rng.lognormal(3.0, 0.8, n),
        "tokens": rng.integers(1, 4000, n),
        "satisfaction": rng.integers(1, 6, n).astype(float),
        "ts": T0 + rng.uniform(0, 3 * DAY, n),
    }
    # Some metrics left out, as real traffic leaves them out.
    data["has_quality"] = rng.uniform(size=n) < 0.7
    data["has_latency"] = rng.uniform(size=n) < 0.9
    return data


def record_all(t: Tracker, data: dict[str, np.ndarray], ids: list[str] | None = None,
               indices: np.ndarray | range | None = None) -> None:
    for i in range(len(data["ts"])) if indices is None else indices:
        t.record("m", str(data["version"][i]), task=str(data["task"][i]) or None,
                 commit=str(data["commit"][i]) or None,
                 quality=float(data["quality"][i]) if data["has_quality"][i] else None,
                 latency_ms=float(data["latency_ms"][i]) if data["has_latency"][i] else None,
                 tokens=int(data["tokens"][i]), satisfaction=float(data["satisfaction"][i]),
                 ts=float(data["ts"][i]), request_id=None if ids is None else ids[i])


def expected_groups(data: dict[str, np.ndarray], keep: np.ndarray | None = None) -> dict[tuple[str, str], dict]:
    """Per (version, task): n and each metric's count/sum/sum of squares, by numpy."""
    keep = np.ones(len(data["ts"]), bool) if keep is None else keep
    out = {}
    for version in np.unique(data["version"]):
        for task in np.unique(data["task"]):
            sel = keep & (data["version"] == version) & (data["task"] == task)
            if not sel.any():
                continue
            group = {"n": int(sel.sum())}
            for metric in METRICS:
                mask = sel.copy()
                if metric == "quality":
                    mask &= data["has_quality"]
                if metric == "latency_ms":
                    mask &= data["has_latency"]
                values = data[metric][mask].astype(float)
                group[metric] = (int(mask.sum()), float(values.sum()), float((values**2).sum()))
            out[(str(version), str(task))] = group
    return out


def assert_aggregates_match(t: Tracker, expected: dict[tuple[str, str], dict]) -> None:
    got = {(a.group["version"], a.group["task"]): a for a in t.aggregates("m", by=("version", "task"))}
    assert set(got) == set(expected)
    for key, want in expected.items():
        agg = got[key]
        assert agg.n == want["n"], key
        for metric in METRICS:
            moments = agg.metric(metric)
            count, total, total_sq = want[metric]
            assert moments.count == count, (key, metric)
            assert moments.total == pytest.approx(total, rel=1e-9), (key, metric)
            assert moments.total_sq == pytest.approx(total_sq, rel=1e-9), (key, metric)


# -- record → flush → rows, rollups and quantiles ----------------------------------------------------------
def test_record_flush_rows_rollups_and_quantiles(tracker: Tracker) -> None:
    data = generate(3000)
    record_all(tracker, data)
    tracker.flush()
    assert tracker.count_events() == 3000
    assert tracker.stats.written == 3000 and tracker.stats.rejected == 0 and tracker.stats.last_error is None
    assert_aggregates_match(tracker, expected_groups(data))
    # Daily rollups: one per (day, version, task, commit) seen, and their n add up to the rows.
    rollups = tracker.rollups("m")
    days = {datetime.fromtimestamp(float(ts), UTC).date() for ts in data["ts"]}
    assert {r.day for r in rollups} == days
    keys = {(datetime.fromtimestamp(float(data["ts"][i]), UTC).date(), str(data["version"][i]),
             str(data["task"][i]), str(data["commit"][i])) for i in range(3000)}
    assert {(r.day, r.version, r.task, r.commit) for r in rollups} == keys
    assert sum(r.n for r in rollups) == 3000
    # Quantiles from the merged histograms vs numpy's k-th smallest value, per version and overall.
    for version in ("v1", "v2", None):
        sel = data["has_latency"] & ((data["version"] == version) if version else True)
        exact = np.quantile(data["latency_ms"][sel], [0.5, 0.95, 0.99], method="inverted_cdf")
        got = tracker.latency_quantiles("m", version=version, qs=(0.5, 0.95, 0.99))
        for g, e in zip(got, exact, strict=True):
            assert abs(g - e) <= QUANTILE_RELATIVE_ERROR * e * (1 + 1e-9)
    # Filters: a day, a task, a commit.
    first = min(days)
    assert sum(r.n for r in tracker.rollups("m", since=first, until=first)) == sum(
        datetime.fromtimestamp(float(ts), UTC).date() == first for ts in data["ts"])
    assert sum(r.n for r in tracker.rollups("m", task="")) == int((data["task"] == "").sum())
    assert sum(r.n for r in tracker.rollups("m", commits=[""])) == int((data["commit"] == "").sum())
    assert tracker.rollups("other") == []


def test_histogram_quantiles_within_bound_of_numpy() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.lognormal(2, 1.5, 20_000), [0.0, 0.0, 1e-9, 5e5]])
    hist = LatencyHistogram.of(values.tolist())
    qs = np.linspace(0, 1, 101)
    exact = np.quantile(values, qs, method="inverted_cdf")
    for q, e, g in zip(qs, exact, hist.quantiles(qs.tolist()), strict=True):
        assert abs(g - e) <= QUANTILE_RELATIVE_ERROR * e * (1 + 1e-9), q
    # Histograms of parts add up to the histogram of the whole.
    parts = LatencyHistogram.of(values[:100].tolist()) + LatencyHistogram.of(values[100:].tolist())
    assert dict(parts.counts) == dict(hist.counts)
    assert LatencyHistogram({}).quantile(0.5) is None
    # Buckets are at most 5 % wide relative to their lower edge.
    assert bucket_of(100.0) != bucket_of(100.0 * 1.05)


def test_packed_histograms_round_trip_and_merge() -> None:
    from modelgit.tracking.stats import pack_histogram, unpack_histogram
    from modelgit.tracking.store import _merge_packed

    a = {-353: 2, 0: 5, 97: 1, 400: 2**40}
    b = {0: 1, 97: 0, 12: 3}
    assert unpack_histogram(pack_histogram(a)) == a
    assert unpack_histogram(pack_histogram(b)) == {0: 1, 12: 3}  # zero counts are not stored
    assert _merge_packed([pack_histogram(a), pack_histogram(b), b""]) == {-353: 2, 0: 6, 12: 3, 97: 1, 400: 2**40}
    assert _merge_packed([]) == {}


def test_moments_mean_and_variance_match_numpy() -> None:
    values = np.random.default_rng(3).normal(5, 2, 1000)
    m = Moments(len(values), float(values.sum()), float((values**2).sum()))
    assert m.mean == pytest.approx(values.mean())
    assert m.variance == pytest.approx(values.var(ddof=1))
    assert Moments().mean is None and Moments(1, 2.0, 4.0).variance is None
    assert (m + Moments(1, 1.0, 1.0)).count == 1001


# -- idempotency and feedback ----------------------------------------------------------------------------
def test_retries_and_feedback_never_double_count(tracker: Tracker) -> None:
    n = 1500
    data = generate(n, seed=2)
    ids = [f"req-{i}" for i in range(n)]
    rng = np.random.default_rng(5)
    # Every request recorded once, a third retried once or twice, some retries in a later flush.
    record_all(tracker, data, ids)
    retried = rng.choice(n, 500, replace=False)
    record_all(tracker, data, ids, retried[:250])
    tracker.flush()
    record_all(tracker, data, ids, retried)
    # Feedback for a random subset, some twice (the last wins), before and after a flush.
    final_quality = np.where(data["has_quality"], data["quality"], np.nan)
    final_satisfaction = data["satisfaction"].copy()
    for round_ in range(2):
        chosen = rng.choice(n, 400, replace=False)
        new_quality = rng.uniform(0, 1, 400)
        for i, q in zip(chosen, new_quality, strict=True):
            tracker.feedback(ids[i], quality=float(q), satisfaction=float(round_ + 1))
        final_quality[chosen] = new_quality
        final_satisfaction[chosen] = round_ + 1
        if round_ == 0:
            tracker.flush()
    tracker.flush()
    assert tracker.count_events() == n
    stats = tracker.stats
    assert stats.written == n + 250 + 500 + 800 and stats.rejected == 0 and stats.failed == 0
    expected = dict(data, quality=np.nan_to_num(final_quality), has_quality=~np.isnan(final_quality),
                    satisfaction=final_satisfaction)
    assert_aggregates_match(tracker, expected_groups(expected))


def test_feedback_before_its_record_is_kept_and_applied(tracker: Tracker, url: str) -> None:
    tracker.feedback("late", quality=0.25)
    tracker.feedback("late", satisfaction=4.0)
    tracker.flush()
    assert tracker.count_events() == 0 and tracker.rollups() == []
    # The record arrives later, through another tracker (another replica): the feedback applies.
    with Tracker(url, flush_interval=3600) as other:
        other.record("m", "v1", quality=0.9, latency_ms=10.0, request_id="late", ts=T0)
    [rollup] = tracker.rollups()
    assert rollup.n == 1
    assert rollup.quality == Moments(1, 0.25, 0.0625)
    assert rollup.satisfaction == Moments(1, 4.0, 16.0)
    # Feedback after the record updates it; the pending feedback is not applied twice.
    tracker.feedback("late", quality=0.5)
    tracker.record("m", "v1", latency_ms=10.0, request_id="late", ts=T0)  # a retry without quality keeps it
    tracker.flush()
    [rollup] = tracker.rollups()
    assert (rollup.n, rollup.quality, rollup.latency_ms) == (1, Moments(1, 0.5, 0.25), Moments(1, 10.0, 100.0))


def test_a_retry_that_moves_a_request_moves_its_rollup(tracker: Tracker) -> None:
    tracker.record("m", "v1", quality=1.0, latency_ms=5.0, request_id="r", ts=T0)
    tracker.flush()
    tracker.record("m", "v2", quality=1.0, latency_ms=50.0, request_id="r", ts=T0 + DAY)
    tracker.flush()
    [rollup] = tracker.rollups()
    assert (rollup.version, rollup.day, rollup.n) == ("v2", date(2026, 3, 2), 1)
    assert tracker.latency_quantiles(qs=(0.5,))[0] == pytest.approx(50.0, rel=QUANTILE_RELATIVE_ERROR)
    assert tracker.latency_quantiles(version="v1") == (None, None)


# -- the queue ---------------------------------------------------------------------------------------------
def test_full_queue_counts_and_drops_and_never_blocks(url: str) -> None:
    t = Tracker(url, queue_size=10, flush_interval=3600)
    for i in range(15):
        t.record("m", "v1", latency_ms=float(i))
    assert (t.stats.recorded, t.stats.dropped, t.stats.queued) == (10, 5, 10)
    t.close()
    assert (t.stats.written, t.stats.queued) == (10, 0)
    t.record("m", "v1")  # after close: dropped, not raised
    assert t.stats.dropped == 6
    with Tracker(url) as again:
        assert again.count_events() == 10


def test_bad_values_are_rejected_at_flush_and_the_writer_goes_on(tracker: Tracker) -> None:
    tracker.record("m", "v1", quality="high")  # type: ignore[arg-type]
    tracker.record("m", "v1", latency_ms=-1.0)
    tracker.record("m", "v1", tokens=True)  # type: ignore[arg-type]
    tracker.record("m", "v1", quality=math.nan)
    tracker.record("", "v1")
    tracker.record("m" * 201, "v1")
    tracker.record("m", "v1", ts="yesterday")  # type: ignore[arg-type]
    tracker.record("m", "v1", ts=1e20)
    tracker.record("m", "v1", ts=-1.0)
    tracker.record("m\x00", "v1")  # PostgreSQL's text cannot hold it: one such row must not sink the batch
    tracker.record("m", "v\ud800")  # not UTF-8
    tracker.record("m", "v1", task="x", user=5)  # type: ignore[arg-type]
    tracker.feedback(None, quality=1.0)  # type: ignore[arg-type]
    tracker.record("m", "v1", quality=np.float32(0.5), tokens=np.int64(3))  # numpy scalars are numbers
    tracker.flush()
    stats = tracker.stats
    assert (stats.rejected, stats.written, stats.failed) == (13, 1, 0)
    assert stats.last_error == "rejected: request_id is required"
    assert tracker.count_events() == 1


def test_a_failed_write_is_counted_and_kept_not_swallowed(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/usage.sqlite"
    with Tracker(url, flush_interval=3600) as t:
        with sqlite3.connect(tmp_path / "usage.sqlite") as raw:
            raw.execute("DROP TABLE usage_rollups")
        t.record("m", "v1", latency_ms=1.0)
        t.record("m", "v1", latency_ms=2.0)
        t.flush()
        stats = t.stats
        assert (stats.failed, stats.written) == (2, 0)
        assert stats.last_error.startswith("write failed (2 lost): OperationalError: no such table: usage_rollups")


def test_an_unavailable_database_defers_the_batch_instead_of_losing_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import sqlalchemy as sa

    from modelgit.tracking import store

    real_write = store.write_batch
    outages = [sa.exc.OperationalError("INSERT …", (), sqlite3.OperationalError("database is locked"))]

    def flaky(engine: object, items: list) -> object:  # the database is busy once, then back
        if outages:
            raise outages.pop()
        return real_write(engine, items)

    monkeypatch.setattr(store, "write_batch", flaky)
    with Tracker(f"sqlite:///{tmp_path}/usage.sqlite", flush_interval=3600) as t:
        for i in range(3):
            t.record("m", "v1", latency_ms=float(i))
        t.flush()
        stats = t.stats
        assert (stats.written, stats.failed, stats.queued) == (0, 0, 3)
        assert stats.last_error == "write deferred (3 queued again): OperationalError: database is locked"
        t.flush()
        assert (t.stats.written, t.stats.queued, t.count_events()) == (3, 0, 3)


def test_a_postgresql_restart_loses_nothing() -> None:
    from pg_support import SKIP_REASON, PgServer, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip(SKIP_REASON)
    with PgServer.start() as server:  # its own server: this test stops it
        url = server.create_database("restart")
        with Tracker(url, flush_interval=3600) as t:
            t.record("m", "v1", latency_ms=1.0)
            t.flush()
            server.pause()
            for i in range(10):
                t.record("m", "v1", latency_ms=float(i), request_id=f"r{i}")
            t.flush()
            stats = t.stats
            assert (stats.written, stats.failed, stats.queued) == (1, 0, 10)
            assert stats.last_error.startswith("write deferred (10 queued again): OperationalError: ")
            server.resume()
            t.flush()
            assert (t.stats.written, t.stats.failed, t.stats.queued) == (11, 0, 0)
            assert t.count_events() == 11


def test_writer_thread_flushes_on_its_own(url: str) -> None:
    with Tracker(url, flush_interval=0.05) as t:
        t.record("m", "v1")
        for _ in range(200):
            if t.stats.written:
                break
            threading.Event().wait(0.05)
        assert t.stats.written == 1


def test_a_full_batch_wakes_the_writer(url: str) -> None:
    with Tracker(url, flush_interval=3600, batch_size=50) as t:
        for _ in range(50):
            t.record("m", "v1")
        for _ in range(200):
            if t.stats.written == 50:
                break
            threading.Event().wait(0.05)
        assert t.stats.written == 50


# -- exit, collection and retention -----------------------------------------------------------------------
def test_rows_are_written_at_interpreter_exit_without_close(url: str) -> None:
    code = textwrap.dedent(f"""
        from modelgit.tracking import Tracker
        t = Tracker({url!r}, flush_interval=3600)
        for i in range(500):
            t.record("m", "v1", latency_ms=float(i), request_id=f"r{{i}}")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
    with Tracker(url) as t:
        assert t.count_events() == 500
        assert sum(r.n for r in t.rollups()) == 500


def _writers() -> int:
    return sum(th.name == "modelgit-tracking-writer" for th in threading.enumerate())


def test_a_collected_tracker_is_flushed_and_closed(url: str) -> None:
    before = _writers()
    t = Tracker(url, flush_interval=3600)
    for _ in range(20):
        t.record("m", "v1")
    assert _writers() == before + 1
    del t
    gc.collect()
    assert _writers() == before  # its writer thread ended: nothing keeps a tracker alive
    with Tracker(url) as again:
        assert again.count_events() == 20


def test_retention_prunes_raw_rows_and_keeps_rollups(url: str) -> None:
    with Tracker(url, retention_days=7, flush_interval=3600) as t:
        now = T0 + 30 * DAY
        for age_days in (40, 20, 8, 6, 1):
            t.record("m", "v1", quality=1.0, ts=now - age_days * DAY, request_id=f"r{age_days}")
        t.feedback("never-recorded", quality=1.0, ts=now - 10 * DAY)
        t.flush()
        assert t.prune(now=now) == 3
        assert t.count_events() == 2
        assert sum(r.n for r in t.rollups()) == 5
    with Tracker(url) as no_retention:
        assert no_retention.prune() == 0


# -- many writers --------------------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, threading
    from modelgit.tracking import Tracker
    url, proc, threads, per_thread = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    t = Tracker(url, flush_interval=0.05, batch_size=500)
    def work(th):
        for i in range(per_thread):
            # A tenth of the requests are shared by every process: retries from other replicas.
            rid = f"shared-{i}" if i % 10 == 0 else f"p{proc}-t{th}-{i}"
            t.record("m", f"v{i % 3}", quality=(i % 7) / 7, latency_ms=1.0 + i % 100, request_id=rid)
            if i % 10 == 5:
                t.feedback(f"shared-{i - 5}", quality=0.5)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    [x.start() for x in ts]
    [x.join() for x in ts]
    t.close()
    s = t.stats
    assert s.dropped == s.rejected == s.failed == 0, s
    print(s.written)
""")


def test_concurrent_processes_lose_nothing(url: str) -> None:
    procs, threads, per_thread = 4, 2, 1500
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # All open the (new) database at once: the migration runs once, the others wait for it.
    running = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(p), str(threads), str(per_thread)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for p in range(procs)]
    for proc in running:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    shared = per_thread // 10
    unique = procs * threads * (per_thread - shared) + shared
    with Tracker(url) as t:
        assert t.count_events() == unique
        aggregates = {a.group["version"]: a for a in t.aggregates("m", by=("version",))}
        assert sum(a.n for a in aggregates.values()) == unique
        # The shared requests' quality: 0.5 after any feedback, else its record's value; either way
        # the rollups equal a sum over the stored rows, which we recompute from the raw table.
        import sqlalchemy as sa

        from modelgit.tracking import store

        with t._engine.connect() as conn:
            rows = conn.execute(sa.select(store.events.c.version, store.events.c.quality)).all()
        for version, agg in aggregates.items():
            qualities = np.array([q for v, q in rows if v == version and q is not None])
            assert agg.quality.count == len(qualities)
            assert agg.quality.total == pytest.approx(qualities.sum(), rel=1e-9)


# -- URLs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    "", "usage.sqlite", "mysql://root:hunter2@db/usage", "http://example.com/x", "sqlite://", "sqlite:///",
    "sqlite:///:memory:", "sqlite://host/usage.sqlite", "sqlite:///a.sqlite?mode=ro&uri=true",
    "sqlite:///a%2e.sqlite", "sqlite:///a\nb.sqlite", "sqlite:///a b.sqlite",
    "postgresql://u:hunter2@db:port/usage", "postgresql://u:hunter2@db:5432/", "postgresql://u:hunter2@/usage",
    "postgresql+psycopg2://u:hunter2@db/usage", "postgresql+psycopg://u:hunter2@db/usage?passfile=/etc/shadow",
    "postgresql://u:hunter2@db/usage#frag", "x" * 5000,
])
def test_hostile_urls_are_refused_without_showing_a_password(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        check_url(bad)
    assert "hunter2" not in info.value.render()
    with pytest.raises(UsageError):
        Tracker(bad)


def test_url_normalisation_and_the_redacted_message() -> None:
    assert check_url("postgresql://u:p@db:5433/usage?sslmode=require") == (
        "postgresql+psycopg://u:p@db:5433/usage?sslmode=require")
    assert check_url("sqlite:///rel/usage.sqlite") == "sqlite:///rel/usage.sqlite"
    with pytest.raises(UsageError) as info:
        check_url("mysql://root:hunter2@db/usage")
    assert info.value.message == "tracking URL mysql://root:***@db/usage: scheme 'mysql' is not supported " \
                                 "(sqlite or postgresql)"


def test_not_a_database_is_an_invalid_error(tmp_path: Path) -> None:
    (tmp_path / "usage.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(InvalidError) as info:
        Tracker(f"sqlite:///{tmp_path}/usage.sqlite")
    assert "file is not a database" in info.value.message


def test_an_unreachable_server_is_a_transient_error_without_the_password() -> None:
    from modelgit.errors import TransientError

    with pytest.raises(TransientError) as info:
        Tracker("postgresql://u:hunter2@127.0.0.1:1/usage")
    assert "hunter2" not in info.value.render()
    assert info.value.message.startswith("tracking database postgresql+psycopg://u:***@127.0.0.1:1/usage: "
                                         "could not create or upgrade the usage tables: ")


def test_a_database_from_a_newer_modelgit_is_refused(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/usage.sqlite"
    Tracker(url).close()
    with sqlite3.connect(tmp_path / "usage.sqlite") as raw:
        raw.execute("UPDATE modelgit_usage_alembic_version SET version_num = '9999'")
    with pytest.raises(InvalidError) as info:
        Tracker(url)
    assert "9999" in info.value.message and info.value.hint.startswith("upgrade modelgit")


def test_no_url_means_the_environment_or_the_git_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELGIT_TRACKING_URL", raising=False)
    with pytest.raises(UsageError) as info:
        Tracker()
    assert info.value.message == "no tracking URL"
    (tmp_path / ".git").mkdir()
    with Tracker() as t:
        assert t.url == f"sqlite:///{tmp_path}/.git/modelgit/usage.sqlite"
    monkeypatch.setenv("MODELGIT_TRACKING_URL", f"sqlite:///{tmp_path}/env.sqlite")
    with Tracker() as t:
        assert t.url == f"sqlite:///{tmp_path}/env.sqlite"


def test_resolve_url_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    cache = repo / ".git" / "modelgit"
    monkeypatch.chdir(tmp_path)
    env = {"MODELGIT_TRACKING_URL": "postgresql://u@envdb/usage"}
    assert resolve_url("sqlite:///flag.sqlite", "sqlite:///yaml.sqlite", cache, environ=env) == (
        f"sqlite:///{tmp_path}/flag.sqlite")
    assert resolve_url(None, "sqlite:///yaml.sqlite", cache, environ=env) == "postgresql+psycopg://u@envdb/usage"
    assert resolve_url(None, "sqlite:///data/yaml.sqlite", cache, environ={}) == f"sqlite:///{repo}/data/yaml.sqlite"
    assert resolve_url(None, "sqlite:////abs/yaml.sqlite", cache, environ={}) == "sqlite:////abs/yaml.sqlite"
    assert resolve_url(None, None, cache, environ={}) == f"sqlite:///{cache}/usage.sqlite"
    assert resolve_url(None, None, cache, environ={"MODELGIT_TRACKING_URL": ""}) == f"sqlite:///{cache}/usage.sqlite"
    with pytest.raises(UsageError):
        resolve_url(None, "redis://cache", cache, environ={})


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/usage.sqlite"
    for options in ({"retention_days": 0}, {"queue_size": 0}, {"flush_interval": 0}, {"retention_days": True}):
        with pytest.raises(UsageError):
            Tracker(url, **options)
    with Tracker(url) as t, pytest.raises(UsageError):
        t.aggregates(by=("user",))


def test_importing_the_package_does_not_import_sqlalchemy() -> None:
    code = "import sys, modelgit, modelgit.tracking; print('sqlalchemy' in sys.modules, 'alembic' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_head_revision_constant_is_the_migrations_head() -> None:
    # Opening an up-to-date database compares with the constant, so it must follow the scripts.
    from modelgit.tracking import store

    assert store.head_revision() == store.HEAD_REVISION
