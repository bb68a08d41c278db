"""Benchmark usage tracking: the request path, sustained writes, and aggregates over 10 M rows.

    python benchmarks/bench_tracking.py [--rows-per-thread N] [--represented 10000000] [--no-pg]

1. ``Tracker.record()`` on the request path (target ≤ 2 µs median), next to a bare
   ``deque.append`` of a tuple measured in the same run: 41 repeats of 20,000 calls each, the
   median per-call time of the repeats. The writer thread is idle (a long flush interval) and the
   queue is emptied between repeats with ``deque.clear()``, so this is the cost a request pays, not
   the writer's competition for the GIL (which the sustained run below includes).
2. Sustained rows/s into SQLite and into PostgreSQL from 4 processes x 4 threads, each thread
   recording as fast as it can (half the rows with a request id, the idempotent path), then
   ``close()``; rows/s = rows / (last close() returned - first record()), and the rows are counted
   afterwards: nothing may be lost, dropped, rejected or failed.
3. Per-version aggregates (n, mean quality with its variance, latency p50/p95) from rollups that
   represent 10 M recorded rows (target ≤ 1 s). The rollups are bulk-loaded, not recorded: 20 models
   x 4 versions x 3 tasks x 90 days = 21,600 daily rollups of ~463 rows each, whose moments and
   latency histograms numpy computes from 10 M really drawn values (quality ~ Beta(8, 2), latency ~
   lognormal(ln 40 ms, 0.5)), inserted straight into ``usage_rollups`` and ``usage_latency_hist`` (one
   packed histogram per rollup, ~64 non-empty buckets each).
   Timed: ``Tracker.aggregates(model)`` for one model, and ``Tracker.aggregates()`` for all 20.

PostgreSQL runs on a throwaway server from tests/pg_support.py (fsync on, as in production); the
PostgreSQL parts are skipped, with the reason, when its binaries are absent. Nothing is asserted
about time: the figures are printed with their targets.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # pg_support
try:
    import modelgit  # noqa: F401  (installed, e.g. editable)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from modelgit.tracking import Tracker  # noqa: E402
from modelgit.tracking.stats import GAMMA, pack_histogram  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"


# -- 1. the request path --------------------------------------------------------------------------------
def bench_record(url: str, calls: int = 20_000, repeats: int = 41) -> dict[str, float]:
    tracker = Tracker(url, flush_interval=3600, queue_size=10 * calls, batch_size=10 * calls)
    queue = tracker._queue
    record = tracker.record
    ids = [f"req-{i}" for i in range(calls)]

    def run_record() -> float:
        start = time.perf_counter_ns()
        for rid in ids:
            record("calling_score", "v2.0", latency_ms=12.5, request_id=rid, commit=SHA)
        return (time.perf_counter_ns() - start) / calls

    baseline_queue: deque[tuple[object, ...]] = deque()
    append = baseline_queue.append

    def run_append() -> float:
        start = time.perf_counter_ns()
        for rid in ids:
            append(("calling_score", "v2.0", rid))
        return (time.perf_counter_ns() - start) / calls

    record_ns, append_ns = [], []
    gc.disable()  # a collection in the middle of one repeat would measure the collector
    try:
        for _ in range(repeats):
            record_ns.append(run_record())
            queue.clear()
            append_ns.append(run_append())
            baseline_queue.clear()
    finally:
        gc.enable()
    assert tracker.stats.dropped == 0
    tracker.close()
    return {"record_ns": statistics.median(record_ns), "append_ns": statistics.median(append_ns)}


# -- 2. sustained writes from 4 processes x 4 threads ----------------------------------------------------
WRITER = textwrap.dedent("""
    import json, sys, threading, time
    from modelgit.tracking import Tracker
    url, proc, threads, per_thread = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    tracker = Tracker(url, queue_size=threads * per_thread)  # room for all: the run measures the store
    record = tracker.record
    go = threading.Barrier(threads + 1)
    def work(th):
        go.wait()
        for i in range(per_thread):
            record("model-%d" % (i % 20), "v%d" % (i % 4), quality=(i % 10) / 10, latency_ms=5.0 + i % 300,
                   tokens=i % 2000, task="chat", commit="%040d" % (i % 3),
                   request_id="p%d-t%d-%d" % (proc, th, i) if i % 2 else None)
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    [w.start() for w in workers]
    go.wait()
    start = time.time()
    [w.join() for w in workers]
    tracker.close()
    end = time.time()
    s = tracker.stats
    print(json.dumps({"start": start, "end": end, "written": s.written, "dropped": s.dropped,
                      "rejected": s.rejected, "failed": s.failed, "last_error": s.last_error}))
""")


def bench_sustained(url: str, procs: int, threads: int, per_thread: int) -> dict[str, float]:
    Tracker(url).close()  # create the schema first: the run measures writes, not the migration
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    running = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(p), str(threads), str(per_thread)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for p in range(procs)]
    results = []
    for proc in running:
        out, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"writer failed: {err}")
        results.append(json.loads(out))
    expected = procs * threads * per_thread
    with Tracker(url) as tracker:
        stored = tracker.count_events()
        in_rollups = sum(a.n for a in tracker.aggregates(by=("model",)))
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    lost = sum(r["dropped"] + r["rejected"] + r["failed"] for r in results)
    return {"rows": expected, "stored": stored, "in_rollups": in_rollups, "lost": lost, "seconds": seconds,
            "rows_per_s": expected / seconds}


# -- 3. aggregates over rollups that represent 10 M rows ----------------------------------------------------
def synthetic_rollups(represented: int, seed: int = 0) -> tuple[list[tuple], list[tuple]]:
    from datetime import date, timedelta

    rng = np.random.default_rng(seed)
    models, versions, tasks, days = 20, 4, 3, 90
    groups = models * versions * tasks * days
    sizes = rng.multinomial(represented, np.full(groups, 1 / groups))
    rollup_rows, hist_rows = [], []
    log_gamma = math.log(GAMMA)
    g = 0
    for m in range(models):
        for v in range(versions):
            for t in range(tasks):
                for d in range(days):
                    n = int(sizes[g])
                    g += 1
                    quality = rng.beta(8, 2, n)
                    latency = rng.lognormal(math.log(40), 0.5, n)
                    tokens = rng.integers(50, 2000, n).astype(float)
                    key = (date(2026, 1, 1) + timedelta(days=d), f"model-{m:02d}", f"v{v}", f"task-{t}", SHA)
                    moments = []
                    for values in (quality, latency, tokens):
                        moments += [n, float(values.sum()), float((values * values).sum())]
                    rollup_rows.append((*key, n, *moments, 0, 0.0, 0.0))
                    buckets, counts = np.unique(np.floor(np.log(latency) / log_gamma).astype(int), return_counts=True)
                    hist_rows.append((*key, pack_histogram(dict(zip(buckets.tolist(), counts.tolist(), strict=True)))))
    return rollup_rows, hist_rows


ROLLUP_COLUMNS = ('day, model, version, task, "commit", n, quality_n, quality_sum, quality_sumsq, latency_ms_n, '
                  "latency_ms_sum, latency_ms_sumsq, tokens_n, tokens_sum, tokens_sumsq, satisfaction_n, "
                  "satisfaction_sum, satisfaction_sumsq")
HIST_COLUMNS = 'day, model, version, task, "commit", counts'


def bulk_load(url: str, rollup_rows: list[tuple], hist_rows: list[tuple]) -> None:
    Tracker(url).close()  # the schema, by the migrations
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            rows = [(r[0].isoformat(), *r[1:]) for r in rollup_rows]
            conn.executemany(f"INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) VALUES ({', '.join('?' * 18)})", rows)
            conn.executemany(f"INSERT INTO usage_latency_hist ({HIST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                             [(r[0].isoformat(), *r[1:]) for r in hist_rows])
            conn.execute("ANALYZE")
    else:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            with conn.cursor() as cur:
                with cur.copy(f"COPY usage_rollups ({ROLLUP_COLUMNS}) FROM STDIN") as copy:
                    for row in rollup_rows:
                        copy.write_row(row)
                with cur.copy(f"COPY usage_latency_hist ({HIST_COLUMNS}) FROM STDIN") as copy:
                    for row in hist_rows:
                        copy.write_row(row)
            conn.execute("ANALYZE")


def bench_aggregates(url: str, represented: int, repeats: int = 7) -> dict[str, float]:
    with Tracker(url) as tracker:
        def one_model() -> list[tuple]:
            return [(a.group["version"], a.n, a.quality.mean, a.quality.variance, *a.latency.quantiles((0.5, 0.95)))
                    for a in tracker.aggregates("model-07")]

        def all_models() -> list[tuple]:
            return [(a.group["model"], a.group["version"], a.n, a.quality.mean,
                     *a.latency.quantiles((0.5, 0.95))) for a in tracker.aggregates()]

        timings = {}
        for name, fn in (("one_model", one_model), ("all_models", all_models)):
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                result = fn()
                runs.append(time.perf_counter() - start)
            timings[name] = statistics.median(runs)
            timings[f"{name}_groups"] = len(result)
        timings["n_total"] = sum(a.n for a in tracker.aggregates(by=("model",)))
        timings["sample"] = one_model()[0]
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows-per-thread", type=int, default=25_000)
    parser.add_argument("--represented", type=int, default=10_000_000)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    server = None
    if not args.no_pg:
        from pg_support import PgServer, find_bin_dir

        if find_bin_dir() is None:
            print("PostgreSQL: skipped (no server binaries; `make services` installs them)")
        else:
            server = PgServer.start(fsync=True, max_connections=200)
    try:
        r = bench_record(f"sqlite:///{workdir}/record.sqlite")
        print("== record() on the request path (median per call of 41 x 20,000 calls)")
        print(f"record(): {r['record_ns'] / 1000:.3f} µs   (target ≤ 2 µs)")
        ratio = r["record_ns"] / r["append_ns"]
        print(f"bare deque.append(tuple): {r['append_ns'] / 1000:.3f} µs   record()/append {ratio:.1f}x")

        print(f"\n== sustained writes: 4 processes x 4 threads x {args.rows_per_thread:,} rows")
        urls = [("SQLite", f"sqlite:///{workdir}/sustained.sqlite")]
        if server:
            urls.append(("PostgreSQL", server.create_database("sustained")))
        for name, url in urls:
            s = bench_sustained(url, 4, 4, args.rows_per_thread)
            status = "nothing lost" if s["stored"] == s["rows"] == s["in_rollups"] and not s["lost"] else "LOST ROWS"
            print(f"{name}: {s['rows_per_s']:,.0f} rows/s ({s['rows']:,} rows in {s['seconds']:.2f} s); "
                  f"stored {s['stored']:,}, in rollups {s['in_rollups']:,}: {status}")

        print(f"\n== per-version aggregates from rollups representing {args.represented:,} rows")
        start = time.perf_counter()
        rollup_rows, hist_rows = synthetic_rollups(args.represented)
        buckets = sum(len(row[-1]) // 12 for row in hist_rows)
        print(f"generated {len(rollup_rows):,} rollups and their histograms ({buckets:,} non-empty buckets) "
              f"in {time.perf_counter() - start:.1f} s")
        urls = [("SQLite", f"sqlite:///{workdir}/aggregates.sqlite")]
        if server:
            urls.append(("PostgreSQL", server.create_database("aggregates")))
        for name, url in urls:
            start = time.perf_counter()
            bulk_load(url, rollup_rows, hist_rows)
            loaded = time.perf_counter() - start
            a = bench_aggregates(url, args.represented)
            print(f"{name} (bulk load {loaded:.1f} s, n total {a['n_total']:,}): one model's {a['one_model_groups']} "
                  f"versions {a['one_model'] * 1000:.1f} ms; all {a['all_models_groups']} model-versions "
                  f"{a['all_models'] * 1000:.1f} ms   (target ≤ 1 s)")
            version, n, mean, var, p50, p95 = a["sample"]
            print(f"  e.g. model-07 {version}: n={n:,} quality mean {mean:.4f} sd {math.sqrt(var):.4f} "
                  f"latency p50 {p50:.1f} ms p95 {p95:.1f} ms "
                  f"(the lognormal's: p50 40.0, p95 {40 * math.exp(0.5 * 1.6449):.1f})")
    finally:
        if server:
            server.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
