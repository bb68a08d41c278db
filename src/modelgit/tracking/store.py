"""The SQL side of usage tracking: engines, migrations, the batch writer and the aggregate reads.

One schema on SQLite and PostgreSQL through SQLAlchemy Core. A batch is written in one transaction
that inserts or updates raw events and adds its *deltas* to the rollups and latency histograms
(``INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n``), so rollups always equal what the raw
rows say, also while many processes write at once:

* SQLite: every write transaction starts with ``BEGIN IMMEDIATE`` (writers queue on the database
  lock, waiting up to ``busy_timeout``, instead of failing when a read turns into a write);
* PostgreSQL: rows with a request id are serialised per id with ``pg_advisory_xact_lock`` (taken
  in sorted order, so two batches never deadlock on them), and rollup keys are upserted in sorted
  order for the same reason. A deadlock or serialisation failure that still happens is retried.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from modelgit.errors import InvalidError, TransientError
from modelgit.tracking.stats import (
    HISTOGRAM_DTYPE,
    METRICS,
    Aggregate,
    LatencyHistogram,
    Moments,
    Rollup,
    bucket_of,
    pack_histogram,
    unpack_histogram,
)
from modelgit.tracking.urls import redact, sqlite_path

VERSION_TABLE = "modelgit_usage_alembic_version"
KEY = ("day", "model", "version", "task", "commit")
_MAX_TEXT = 200
_MAX_COMMIT = 64
_BUSY_TIMEOUT_MS = 30_000
# A batch's request ids are looked up this many at a time (SQLite allows 32,766 parameters).
_IN_CHUNK = 500
_RETRIES = 6
_SECONDS_PER_DAY = 86_400

metadata = sa.MetaData()


def _key_columns() -> list[sa.Column[Any]]:
    return [sa.Column("day", sa.Date, primary_key=True), sa.Column("model", sa.String(_MAX_TEXT), primary_key=True),
            sa.Column("version", sa.String(_MAX_TEXT), primary_key=True),
            sa.Column("task", sa.String(_MAX_TEXT), primary_key=True),
            sa.Column("commit", sa.String(_MAX_COMMIT), primary_key=True)]


# These mirror migrations/versions/*.py (the migrations own the schema; these are for queries).
events = sa.Table(
    "usage_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(_MAX_TEXT)), sa.Column("ts", sa.Float(53)),
    sa.Column("model", sa.String(_MAX_TEXT)), sa.Column("version", sa.String(_MAX_TEXT)),
    sa.Column("task", sa.String(_MAX_TEXT)), sa.Column("user", sa.String(_MAX_TEXT)),
    sa.Column("commit", sa.String(_MAX_COMMIT)), sa.Column("quality", sa.Float(53)),
    sa.Column("latency_ms", sa.Float(53)), sa.Column("tokens", sa.BigInteger), sa.Column("satisfaction", sa.Float(53)),
)
_MOMENT_COLUMNS = tuple(f"{m}_{s}" for m in METRICS for s in ("n", "sum", "sumsq"))
rollups = sa.Table(
    "usage_rollups", metadata, *_key_columns(), sa.Column("n", sa.BigInteger),
    *(sa.Column(name, sa.BigInteger if name.endswith("_n") else sa.Float(53)) for name in _MOMENT_COLUMNS),
)
latency_hist = sa.Table("usage_latency_hist", metadata, *_key_columns(), sa.Column("counts", sa.LargeBinary))
pending_feedback = sa.Table(
    "usage_pending_feedback", metadata, sa.Column("request_id", sa.String(_MAX_TEXT), primary_key=True),
    sa.Column("ts", sa.Float(53)), sa.Column("quality", sa.Float(53)), sa.Column("satisfaction", sa.Float(53)),
)

# The event columns a record carries, in the order of the queue's record tuples.
RECORD_FIELDS = ("model", "version", "quality", "latency_ms", "tokens", "satisfaction", "task", "user",
                 "request_id", "commit", "ts")
_EVENT_VALUES = ("ts", "model", "version", "task", "user", "commit", "quality", "latency_ms", "tokens", "satisfaction")


# -- engines and migrations ------------------------------------------------------------------------
def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own implicit BEGIN is
    # deferred, and a deferred transaction that reads and then writes fails at once with
    # "database is locked" when another process holds the write lock, ignoring busy_timeout).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")  # before WAL: switching may wait for a lock
    cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer, nor it them
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL keeps the file consistent
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("modelgit_write") else "BEGIN")


def create_engine(url: str) -> Engine:
    """An engine for a URL that :func:`modelgit.tracking.urls.check_url` accepted."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                            connect_args={"connect_timeout": 10})


# The newest migration's revision, so that opening an up-to-date database never imports Alembic
# (a third of a CLI command's start-up); tests/test_tracking.py checks it against the scripts.
HEAD_REVISION = "0001"


def head_revision() -> str:
    """The head revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_migrations_dir())).get_current_head() or ""


def _migrations_dir() -> Path:
    return Path(__file__).resolve().parent / "migrations"


def _current_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def migrate(engine: Engine, url: str) -> None:
    """Bring the schema to the newest migration; safe when several processes open at once: the
    check and the upgrade run in one transaction that holds SQLite's write lock (BEGIN IMMEDIATE)
    or, on PostgreSQL, a transaction-scoped advisory lock."""
    try:
        with engine.connect() as conn:
            if _current_revision(conn) == HEAD_REVISION:  # the common case: no lock, no Alembic
                return
    except sa.exc.DBAPIError as exc:
        raise _wrap(exc, url, "could not create or upgrade the usage tables") from exc
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    try:
        with engine.connect() as conn:
            conn.rollback()
            conn = conn.execution_options(modelgit_write=True)
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    # The (int, int) key space is apart from the bigint one used per request id.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(1836016500, 1)"))
                config = Config()
                config.set_main_option("script_location", str(_migrations_dir()))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
    except sa.exc.DBAPIError as exc:
        raise _wrap(exc, url, "could not create or upgrade the usage tables") from exc
    except CommandError as exc:  # e.g. a revision this modelgit does not know: written by a newer one
        raise InvalidError(f"tracking database {redact(url)}: {exc}",
                           hint="upgrade modelgit: a newer version has migrated this database") from exc


def _wrap(exc: sa.exc.DBAPIError, url: str, what: str) -> InvalidError:
    # The driver's first line says what went wrong (no URL, no statement, no parameters).
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    cls = TransientError if isinstance(exc, sa.exc.OperationalError) else InvalidError
    return cls(f"tracking database {redact(url)}: {what}: {detail}",
               hint="check the URL, that the server runs, and that the file is a SQLite database")


# -- validation (at flush, off the request path) -----------------------------------------------------
class Rejected(ValueError):
    """A queued record or feedback that cannot be stored (its reason is kept as the last error)."""


def _text(name: str, value: Any, *, required: bool, limit: int = _MAX_TEXT) -> str | None:
    if value is None:
        if required:
            raise Rejected(f"{name} is required")
        return None
    if type(value) is not str and not isinstance(value, str):  # the exact type first: ~5x faster than isinstance
        raise Rejected(f"{name} must be a string, not {type(value).__name__}")
    if (required and not value) or len(value) > limit:
        raise Rejected(f"{name} must have 1 to {limit} characters")
    # PostgreSQL's text cannot hold NUL, and a lone surrogate is not UTF-8 for either backend: one
    # such value would make the database refuse the whole batch, so it is refused here alone.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise Rejected(f"{name} is not valid Unicode text") from None
    elif "\x00" in value:
        raise Rejected(f"{name} contains a NUL character")
    return value


def _real(name: str, value: Any, *, minimum: float | None = None) -> float | None:
    if value is None:
        return None
    kind = type(value)
    # float and int first: the numbers.Real ABC check costs ~1 µs a value; bool is an int, not a number.
    if kind is not float and kind is not int and (kind is bool or not isinstance(value, numbers.Real)):
        raise Rejected(f"{name} must be a number, not {kind.__name__}")
    number = float(value)
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise Rejected(f"{name} must be a finite number" + (f" >= {minimum:g}" if minimum is not None else ""))
    return number


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    kind = type(value)
    if kind is not int and (kind is bool or not isinstance(value, numbers.Integral)):
        raise Rejected(f"{name} must be a non-negative integer")
    if value < 0:
        raise Rejected(f"{name} must be a non-negative integer")
    if value >= 2**63:
        raise Rejected(f"{name} is too large")
    return int(value)


# Timestamps from 1970 to the end of year 9999: a day outside them has no date to roll up under.
_MAX_TS = 253_402_300_799.0


def _timestamp(value: Any) -> float:
    if type(value) is float:
        ts = value
    elif isinstance(value, datetime):
        # A naive datetime is read as UTC: servers log in UTC, and local time would shift days.
        ts = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    else:
        real = _real("ts", value)
        if real is None:
            raise Rejected("ts is required")
        ts = real
    if not 0.0 <= ts <= _MAX_TS:  # also false for NaN
        raise Rejected("ts must be seconds since 1970-01-01 UTC, before the year 10000")
    return ts


def check_record(item: Sequence[Any]) -> dict[str, Any]:
    """A queued record tuple (in :data:`RECORD_FIELDS` order) as a row, or :class:`Rejected`."""
    model, version, quality, latency_ms, tokens, satisfaction, task, user, request_id, commit, ts = item
    return {
        "model": _text("model", model, required=True), "version": _text("version", version, required=True),
        "quality": _real("quality", quality), "latency_ms": _real("latency_ms", latency_ms, minimum=0.0),
        "tokens": _count("tokens", tokens), "satisfaction": _real("satisfaction", satisfaction),
        "task": _text("task", task, required=False) or "", "user": _text("user", user, required=False),
        "request_id": _text("request_id", request_id, required=False) or None,
        "commit": _text("commit", commit, required=False, limit=_MAX_COMMIT) or "", "ts": _timestamp(ts),
    }


def check_feedback(item: Sequence[Any]) -> dict[str, Any]:
    request_id, quality, satisfaction, ts = item
    row = {"request_id": _text("request_id", request_id, required=True), "quality": _real("quality", quality),
           "satisfaction": _real("satisfaction", satisfaction), "ts": _timestamp(ts)}
    return row


# -- the batch writer ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BatchResult:
    written: int
    rejected: int
    last_rejection: str | None


class _Deltas:
    """What a batch adds to the rollups and to their histograms (bucket → count), by rollup key."""

    __slots__ = ("_days", "hist", "rollups")

    def __init__(self) -> None:
        self.rollups: dict[tuple[Any, ...], list[float]] = {}
        self.hist: dict[tuple[Any, ...], dict[int, int]] = {}
        self._days: dict[int, date] = {}

    def add(self, row: dict[str, Any], sign: int) -> None:
        day_number = int(row["ts"] // _SECONDS_PER_DAY)
        day = self._days.get(day_number)
        if day is None:
            day = self._days[day_number] = datetime.fromtimestamp(day_number * _SECONDS_PER_DAY, UTC).date()
        key = (day, row["model"], row["version"], row["task"], row["commit"])
        acc = self.rollups.get(key)
        if acc is None:
            acc = self.rollups[key] = [0] * (1 + 3 * len(METRICS))
        acc[0] += sign
        for i, metric in enumerate(METRICS):
            value = row[metric]
            if value is not None:
                value = float(value)  # tokens too: an int's square could overflow SQLite's 64-bit integers
                acc[1 + 3 * i] += sign
                acc[2 + 3 * i] += sign * value
                acc[3 + 3 * i] += sign * value * value
        latency = row["latency_ms"]
        if latency is not None:
            counts = self.hist.get(key)
            if counts is None:
                counts = self.hist[key] = {}
            bucket = bucket_of(latency)
            counts[bucket] = counts.get(bucket, 0) + sign

    def rollup_rows(self) -> list[tuple[Any, ...]]:
        # Sorted: one lock order for every writer, so concurrent batches never deadlock on rollups.
        return [(*key, *self.rollups[key]) for key in sorted(self.rollups)]

    def hist_keys(self) -> list[tuple[Any, ...]]:
        return sorted(key for key, counts in self.hist.items() if any(counts.values()))


def _merge_record(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    # A retried record replaces the stored one, except that a value it leaves out (None) keeps the
    # stored value: a retry never erases an outcome that feedback attached in between.
    if old is None:
        return dict(new)
    merged = dict(old)
    for name in _EVENT_VALUES:
        if new[name] is not None:
            merged[name] = new[name]
    return merged


def _apply_feedback(row: dict[str, Any], feedback: dict[str, Any]) -> dict[str, Any]:
    merged = dict(row)
    for name in ("quality", "satisfaction"):
        if feedback[name] is not None:
            merged[name] = feedback[name]
    return merged


def _lock_key(request_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big", signed=True)


# Inserts and upserts go to the driver as SQL text with plain tuples: SQLAlchemy's per-row parameter
# processing cost ~20 µs a row, more than the database's own work. The SQL is the same on both
# backends (ON CONFLICT … DO UPDATE is SQLite ≥ 3.24 and PostgreSQL ≥ 9.5); only the placeholder
# differs. Identifiers are ours, never from input, and quoted ("user" and "commit" are keywords).
_EVENT_COLUMNS = ("request_id", *_EVENT_VALUES)
_event_tuple = operator.itemgetter(*_EVENT_COLUMNS)
_PENDING_COLUMNS = ("request_id", "ts", "quality", "satisfaction")
# PostgreSQL gets many rows per INSERT (psycopg's pipelined executemany costs ~0.3 ms a row);
# this bounds the parameters of one statement well under its 65,535.
_PG_PARAMETERS = 20_000
_PG_TYPES = {"ts": "float8", "model": "text", "version": "text", "task": "text", "user": "text", "commit": "text",
             "quality": "float8", "latency_ms": "float8", "tokens": "int8", "satisfaction": "float8", "id": "int8",
             "request_id": "text", "day": "date", "n": "int8", "counts": "bytea",
             **{c: "int8" if c.endswith("_n") else "float8" for c in _MOMENT_COLUMNS}}
_PG_CONVERT = {"float8": float, "int8": int, "text": str, "date": lambda v: v, "bytea": bytes}


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _marks(conn: Connection, count: int) -> str:
    return ", ".join(("?" if conn.dialect.name == "sqlite" else "%s") for _ in range(count))


def _pg_arrays(columns: Sequence[str], rows: list[tuple[Any, ...]]) -> tuple[str, tuple[list[Any], ...]]:
    """``unnest(%s::type[], …)`` and one list per column: a whole batch in one statement with as
    many parameters as columns (psycopg's pipelined executemany costs ~0.3 ms a row, and a VALUES
    list with one placeholder per value spends seconds in psycopg's query parser)."""
    arrays = []
    for i, column in enumerate(columns):
        convert = _PG_CONVERT[_PG_TYPES[column]]
        arrays.append([None if row[i] is None else convert(row[i]) for row in rows])
    return "unnest(" + ", ".join(f"%s::{_PG_TYPES[c]}[]" for c in columns) + ")", tuple(arrays)


def _insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]],
                 suffix: str = "") -> None:
    if not rows:
        return
    head = f"INSERT INTO {table} ({_quoted(columns)})"
    if conn.dialect.name == "sqlite":  # executemany of one prepared statement: SQLite's fastest path
        conn.exec_driver_sql(f"{head} VALUES ({_marks(conn, len(columns))}) {suffix}", rows)
        return
    unnest, arrays = _pg_arrays(columns, rows)
    conn.exec_driver_sql(f"{head} SELECT * FROM {unnest} {suffix}", arrays)


def _upsert(conn: Connection, table: str, keys: Sequence[str], adds: Sequence[str], rows: list[tuple[Any, ...]],
            *, replace: bool = False) -> None:
    """``rows`` hold the key columns then the ``adds`` columns, each key once; an existing row gets
    them added (or, with ``replace``, set)."""
    sets = ", ".join(f'"{c}" = ' + (f"excluded.\"{c}\"" if replace else f"{table}.\"{c}\" + excluded.\"{c}\"")
                     for c in adds)
    _insert_rows(conn, table, (*keys, *adds), rows, f"ON CONFLICT ({_quoted(keys)}) DO UPDATE SET {sets}")


def _day_param(conn: Connection, day: date) -> Any:
    # SQLAlchemy's Date on SQLite is an ISO string; passing text straight to the driver keeps it so.
    return day.isoformat() if conn.dialect.name == "sqlite" else day


def _select_in(conn: Connection, table: str, columns: Sequence[str], keys: list[str]) -> list[dict[str, Any]]:
    """Rows of ``table`` whose request_id is one of ``keys``."""
    found: list[dict[str, Any]] = []
    select = f"SELECT {_quoted(columns)} FROM {table} WHERE request_id"
    if conn.dialect.name == "postgresql":  # one array parameter instead of one per key
        chunks = [(f"{select} = ANY(%s)", ([*keys],))]
    else:
        chunks = [(f"{select} IN ({_marks(conn, len(part))})", tuple(part))
                  for part in (keys[i:i + _IN_CHUNK] for i in range(0, len(keys), _IN_CHUNK))]
    for sql, params in chunks:
        found.extend(dict(zip(columns, row, strict=True)) for row in conn.exec_driver_sql(sql, params))
    return found


def _write_once(conn: Connection, plain: list[dict[str, Any]], by_id: dict[str, list[tuple[str, dict[str, Any]]]]
                ) -> None:
    deltas = _Deltas()
    for row in plain:
        deltas.add(row, 1)
    inserts = list(plain)
    updates: list[tuple[Any, ...]] = []
    pending_upserts: list[tuple[Any, ...]] = []
    pending_deletes: list[str] = []
    if by_id:
        ids = sorted(by_id)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT count(pg_advisory_xact_lock(k)) FROM "
                                 "(SELECT unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY 1) AS locks"),
                         {"keys": sorted({_lock_key(i) for i in ids})})
        stored = {r["request_id"]: r for r in _select_in(conn, "usage_events", ("id", *_EVENT_COLUMNS), ids)}
        waiting = {r["request_id"]: r for r in _select_in(conn, "usage_pending_feedback", _PENDING_COLUMNS, ids)}
        for request_id in ids:
            old = stored.get(request_id)
            state = None if old is None else {k: old[k] for k in ("request_id", *_EVENT_VALUES)}
            pend = waiting.get(request_id)
            for kind, op in by_id[request_id]:
                if kind == "record":
                    state = _merge_record(state, op)
                    if pend is not None:  # feedback that came before its record applies now
                        state, pend = _apply_feedback(state, pend), None
                elif state is not None:
                    state = _apply_feedback(state, op)
                else:  # feedback for a request not seen yet: kept until its record arrives
                    pend = op if pend is None else {**_apply_feedback(pend, op), "ts": op["ts"]}
            if old is None and state is not None:
                inserts.append(state)
                deltas.add(state, 1)
            elif old is not None and state is not None and any(state[k] != old[k] for k in _EVENT_VALUES):
                deltas.add(old, -1)
                deltas.add(state, 1)
                updates.append((*(state[k] for k in _EVENT_VALUES), old["id"]))
            before = waiting.get(request_id)
            if pend is None and before is not None:
                pending_deletes.append(request_id)
            elif pend is not None and pend != before:
                pending_upserts.append(tuple(pend[k] for k in _PENDING_COLUMNS))
    if inserts:
        _insert_rows(conn, "usage_events", _EVENT_COLUMNS, list(map(_event_tuple, inserts)))
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    if updates and conn.dialect.name == "postgresql":
        unnest, arrays = _pg_arrays((*_EVENT_VALUES, "id"), updates)
        sets = ", ".join(f'"{c}" = v."{c}"' for c in _EVENT_VALUES)
        alias = f"v({_quoted((*_EVENT_VALUES, 'id'))})"
        conn.exec_driver_sql(f"UPDATE usage_events AS e SET {sets} FROM {unnest} AS {alias} WHERE e.id = v.id", arrays)
    elif updates:
        sets = ", ".join(f'"{c}" = {mark}' for c in _EVENT_VALUES)
        conn.exec_driver_sql(f"UPDATE usage_events SET {sets} WHERE id = {mark}", updates)
    if pending_deletes and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DELETE FROM usage_pending_feedback WHERE request_id = ANY(%s)", (pending_deletes,))
    elif pending_deletes:
        conn.exec_driver_sql("DELETE FROM usage_pending_feedback WHERE request_id = ?", [(i,) for i in pending_deletes])
    _upsert(conn, "usage_pending_feedback", ("request_id",), ("ts", "quality", "satisfaction"), pending_upserts,
            replace=True)
    _upsert(conn, "usage_rollups", KEY, ("n", *_MOMENT_COLUMNS),
            [(_day_param(conn, row[0]), *row[1:]) for row in deltas.rollup_rows()])
    _write_histograms(conn, deltas)


def _hist_lock_keys(keys: list[tuple[Any, ...]]) -> list[tuple[int, int]]:
    out = []
    for key in keys:
        digest = hashlib.blake2b("\x1f".join(map(str, key)).encode(), digest_size=8).digest()
        out.append((int.from_bytes(digest[:4], "big", signed=True), int.from_bytes(digest[4:], "big", signed=True)))
    return sorted(out)


def _write_histograms(conn: Connection, deltas: _Deltas) -> None:
    """Read, merge and rewrite the packed histogram of every rollup the batch touched. On
    PostgreSQL the rollup keys are locked first (advisory, in the (int, int) key space, sorted):
    a read-modify-write must not race another batch's, and a lock on a row that does not exist
    yet cannot be taken with FOR UPDATE. SQLite's write lock serialises batches already."""
    keys = deltas.hist_keys()
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        pairs = _hist_lock_keys(keys)
        conn.exec_driver_sql("SELECT count(pg_advisory_xact_lock(a, b)) FROM (SELECT * FROM "
                             "unnest(%s::int4[], %s::int4[]) AS k(a, b) ORDER BY a, b) AS locks",
                             ([a for a, _ in pairs], [b for _, b in pairs]))
        unnest, arrays = _pg_arrays(KEY, keys)
        found = conn.exec_driver_sql(f"SELECT {_quoted(KEY)}, h.counts FROM usage_latency_hist AS h "
                                     f"JOIN {unnest} AS k({_quoted(KEY)}) USING ({_quoted(KEY)})", arrays).all()
        stored = {tuple(r[:-1]): bytes(r[-1]) for r in found}
    else:
        stored = {}
        for start in range(0, len(keys), _IN_CHUNK):
            part = keys[start:start + _IN_CHUNK]
            rows = ", ".join(f"({_marks(conn, len(KEY))})" for _ in part)
            found = conn.exec_driver_sql(f"SELECT {_quoted(KEY)}, counts FROM usage_latency_hist WHERE "
                                         f"({_quoted(KEY)}) IN (VALUES {rows})",
                                         tuple(v for key in part for v in (key[0].isoformat(), *key[1:]))).all()
            stored.update({(date.fromisoformat(r[0]), *r[1:-1]): bytes(r[-1]) for r in found})
    rows_out = []
    for key in keys:
        merged = unpack_histogram(stored[key]) if key in stored else {}
        for bucket, delta in deltas.hist[key].items():
            merged[bucket] = merged.get(bucket, 0) + delta
        rows_out.append((_day_param(conn, key[0]), *key[1:], pack_histogram(merged)))
    _upsert(conn, "usage_latency_hist", KEY, ("counts",), rows_out, replace=True)


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("40001", "40P01", "23505", "55P03"):  # serialisation, deadlock, unique race, lock timeout
        return True
    return isinstance(exc, sa.exc.OperationalError) and "locked" in str(exc.orig).lower()


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached or is busy now (a connection refused
    or lost, a server shutting down, SQLite locked past busy_timeout, an I/O error) rather than
    that it refuses these rows: worth writing the same batch again later."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or ""
    if code:
        # 08: connection exception; 53: insufficient resources; 57P: operator intervention (shutdown)
        return code.startswith(("08", "53", "57P")) or code in ("40001", "40P01", "55P03")
    text = str(exc.orig).lower()
    if isinstance(exc, sa.exc.OperationalError):
        # psycopg reports a refused connection without a sqlstate; SQLite says "locked" or "I/O".
        return exc.orig.__class__.__module__.startswith("psycopg") or any(
            word in text for word in ("locked", "busy", "disk i/o", "unable to open"))
    return False


def write_batch(engine: Engine, items: Sequence[tuple[Any, ...]]) -> BatchResult:
    """Validate and write queued records (11-tuples) and feedbacks (4-tuples) in one transaction.
    Invalid items are counted, not written; a database error is raised after the retries."""
    plain: list[dict[str, Any]] = []
    by_id: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    rejected, last_rejection, accepted = 0, None, 0
    for item in items:
        try:
            if len(item) == len(RECORD_FIELDS):
                row = check_record(item)
                if row["request_id"] is None:
                    plain.append(row)
                else:
                    by_id.setdefault(row["request_id"], []).append(("record", row))
            else:
                row = check_feedback(item)
                by_id.setdefault(row["request_id"], []).append(("feedback", row))
            accepted += 1
        except Rejected as exc:
            rejected, last_rejection = rejected + 1, f"rejected: {exc}"
        except (TypeError, ValueError) as exc:  # a tuple of the wrong shape: a bug, but never fatal here
            rejected, last_rejection = rejected + 1, f"rejected: {type(exc).__name__}: {exc}"
    if accepted:
        for attempt in range(_RETRIES):
            try:
                with engine.connect() as conn:
                    conn = conn.execution_options(modelgit_write=True)
                    with conn.begin():
                        _write_once(conn, plain, by_id)
                break
            except sa.exc.DBAPIError as exc:
                if attempt == _RETRIES - 1 or not _retryable(exc):
                    raise
                time.sleep(0.02 * 2**attempt)
    return BatchResult(accepted, rejected, last_rejection)


def prune(engine: Engine, before_ts: float) -> int:
    """Delete raw events (and feedback still waiting for its record) older than ``before_ts``."""
    with engine.connect() as conn:
        conn = conn.execution_options(modelgit_write=True)
        with conn.begin():
            deleted = conn.execute(sa.delete(events).where(events.c.ts < before_ts)).rowcount
            conn.execute(sa.delete(pending_feedback).where(pending_feedback.c.ts < before_ts))
    return int(deleted or 0)


# -- reads ----------------------------------------------------------------------------------------------
def _filters(table: sa.Table, model: str | None, version: str | None, task: str | None, since: date | None,
             until: date | None, commits: Iterable[str] | None) -> list[Any]:
    where = []
    if model is not None:
        where.append(table.c.model == model)
    if version is not None:
        where.append(table.c.version == version)
    if task is not None:
        where.append(table.c.task == task)
    if since is not None:
        where.append(table.c.day >= since)
    if until is not None:
        where.append(table.c.day <= until)
    if commits is not None:
        where.append(table.c.commit.in_(list(commits)))
    return where


def _moments(row: Any, metric: str) -> Moments:
    return Moments(int(row[f"{metric}_n"] or 0), float(row[f"{metric}_sum"] or 0.0),
                   float(row[f"{metric}_sumsq"] or 0.0))


def read_rollups(engine: Engine, **filters: Any) -> list[Rollup]:
    query = (sa.select(rollups).where(rollups.c.n > 0, *_filters(rollups, **filters))
             .order_by(*(rollups.c[k] for k in KEY)))
    with engine.connect() as conn:
        return [Rollup(day=r["day"], model=r["model"], version=r["version"], task=r["task"], commit=r["commit"],
                       n=int(r["n"]), **{m: _moments(r, m) for m in METRICS})
                for r in conn.execute(query).mappings()]


def read_aggregates(engine: Engine, by: Sequence[str], **filters: Any) -> list[Aggregate]:
    """Rollups summed per group of ``by`` columns in SQL, with each group's summed histogram."""
    group = [rollups.c[k] for k in by]
    sums = [sa.func.sum(rollups.c[c]).label(c) for c in ("n", *_MOMENT_COLUMNS)]
    query = (sa.select(*group, *sums).where(rollups.c.n > 0, *_filters(rollups, **filters))
             .group_by(*group).order_by(*group))
    hquery = sa.select(*(latency_hist.c[k] for k in by), latency_hist.c.counts).where(
        *_filters(latency_hist, **filters))
    with engine.connect() as conn:
        totals = list(conn.execute(query).mappings())
        packed: dict[tuple[Any, ...], list[bytes]] = {}
        for r in conn.execute(hquery):
            packed.setdefault(tuple(r[:-1]), []).append(r[-1])
    hists = {key: _merge_packed(parts) for key, parts in packed.items()}
    out = []
    for r in totals:
        key = tuple(r[k] for k in by)
        if not r["n"]:
            continue
        out.append(Aggregate(group=dict(zip(by, key, strict=True)), n=int(r["n"]),
                             latency=LatencyHistogram(hists.get(key, {})), **{m: _moments(r, m) for m in METRICS}))
    return out


def _merge_packed(parts: list[bytes]) -> dict[int, int]:
    """The sum of packed histograms: one numpy read of all of them (21,600 rollups in ~20 ms)."""
    import numpy as np

    pairs = np.frombuffer(b"".join(parts), dtype=HISTOGRAM_DTYPE)
    if not len(pairs):
        return {}
    buckets = pairs["bucket"].astype(np.int64)
    low = int(buckets.min())
    sums = np.bincount(buckets - low, weights=pairs["count"], minlength=1)  # float64: exact below 2**53
    return {int(i) + low: int(sums[i]) for i in np.flatnonzero(sums)}


def count_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())
