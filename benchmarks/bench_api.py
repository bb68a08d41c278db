"""Load on the snapshot feed (issue 11, points 5 and 6), an HTTP client on loopback.

    python benchmarks/bench_api.py [--models 1000] [--polls 2000] [--replicas 100] [--replica-models 20]

1. A registry of ``--models`` small hosted models in a temporary git repository, fed by uvicorn with
   2 workers (``--workers``; the app comes from this file's ``make_app`` factory, an import string
   as uvicorn's workers need): p50/p99 of a 304 snapshot poll (``If-None-Match`` = the commit) and
   of a full 200 snapshot, one keep-alive connection, sequential.
2. The requests/s the server sustains: ``--clients`` processes, each one keep-alive connection of a
   bare socket client, polling 304s for ``--seconds`` (clients and server share the machine's
   cores: a lower bound).
3. ``--replicas`` runtime replicas (``Registry.open("http://…")`` in threads of this process,
   each with its own cache, ``watch(interval, jitter=0.1)``) on a registry of ``--replica-models``
   models: the time from a new commit on the server until every replica serves it, and the polls
   per second they made meanwhile; and one replica alone, its reload of a new commit timed.

``GET /api/model-versions/…/current`` belongs to the API app built beside this one and is not
measured here: only the snapshot endpoints are. Bounded: every phase has a count and a deadline;
the whole run takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
       "GIT_COMMITTER_EMAIL": "bench@example.com"}
REPO_VARIABLE = "MODELGIT_BENCH_FEED_REPO"


def make_app() -> Any:
    """The feed app of ``$MODELGIT_BENCH_FEED_REPO`` (for ``uvicorn --factory``)."""
    from fastapi import FastAPI

    from modelgit.server.feed import router

    app = FastAPI()
    app.include_router(router)
    app.state.repo_path = Path(os.environ[REPO_VARIABLE])
    app.state.ref = "main"
    return app


BENCH_TOKEN = "bench-read-token-0123456789abcdef"  # a read token of the full app below


def make_full_app() -> Any:
    """``modelgit serve``'s whole app (API, auth, dashboard, feed) of ``$MODELGIT_BENCH_FEED_REPO``,
    with one read token, for ``uvicorn --factory``."""
    import hashlib

    from modelgit.server.app import create_app
    from modelgit.server.tokens import TokenStore

    os.environ["MODELGIT_TOKENS"] = f"bench:read:{hashlib.sha256(BENCH_TOKEN.encode()).hexdigest()}"
    repo = Path(os.environ[REPO_VARIABLE])
    return create_app(repo, ref="main", tokens=TokenStore.load(None), poll_interval=1.0, rate=1e9, burst=10**9,
                      tracking_url=f"sqlite:///{repo}/.git/modelgit/usage.sqlite")


def current_latencies(url: str, count: int) -> list[float]:
    """Seconds per ``GET …/current`` of one model on one keep-alive connection with a read token."""
    import httpx

    times = []
    path = f"{url}/api/model-versions/local/m00500/current"
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {BENCH_TOKEN}"}) as client:
        for _ in range(5):
            assert client.get(path).status_code == 200
        stop = time.monotonic() + 60
        for _ in range(count):
            began = time.perf_counter()
            answer = client.get(path)
            times.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.status_code
            if time.monotonic() > stop:
                break
    return times


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **ENV})
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def model_text(index: int, weight: float = 0.5) -> str:
    return (f"name: m{index:05d}\ntask: generation\nowner: bench\nversions:\n"
            f"  - version: v1\n    status: active\n    weight: {weight}\n"
            f"    artifact: {{provider: openrouter, model_id: bench/m{index:05d}-v1}}\n")


def build_repo(root: Path, models: int) -> Path:
    (root / "registry" / "models").mkdir(parents=True)
    (root / "registry" / "modelgit.yaml").write_text("schema_version: 1\n")
    for i in range(models):
        (root / "registry" / "models" / f"m{i:05d}.yaml").write_text(model_text(i))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"{models} hosted models")
    return root


def change(root: Path, step: int) -> str:
    (root / "registry" / "models" / "m00000.yaml").write_text(model_text(0, round(0.1 + step / 1000, 3)))
    git(root, "commit", "-qam", f"step {step}")
    return git(root, "rev-parse", "HEAD")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``uvicorn --factory bench_api:make_app`` in a child process."""

    def __init__(self, repo: Path, workers: int, factory: str = "make_app") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, REPO_VARIABLE: str(repo), "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", f"bench_api:{factory}",
             "--app-dir", str(ROOT / "benchmarks"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers), "--log-level", "warning", "--no-access-log",
             "--http", "modelgit.server.nodelay:NoDelayHTTP"], env=env)  # as `modelgit serve` runs it

    def wait(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(self.url + "/api/snapshot", timeout=30,
                                   headers={"Authorization": f"Bearer {BENCH_TOKEN}"})
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not answer")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latencies(url: str, count: int, etag: str | None, deadline: float) -> list[float]:
    import httpx

    times = []
    headers = {"If-None-Match": etag} if etag else {}
    with httpx.Client(timeout=30) as client:
        for _ in range(5):  # warm the connection and the server's caches
            client.get(url + "/api/snapshot", headers=headers)
        stop = time.monotonic() + deadline
        for _ in range(count):
            began = time.perf_counter()
            answer = client.get(url + "/api/snapshot", headers=headers)
            times.append(time.perf_counter() - began)
            assert answer.status_code == (304 if etag else 200), answer.status_code
            if time.monotonic() > stop:
                break
    return times


def poll_for(url: str, etag: str, seconds: float) -> tuple[int, int, list[float]]:
    """(304 answers, other answers, latencies) of one keep-alive connection polling for
    ``seconds`` with a bare socket client: an HTTP library in Python costs more CPU per request
    than the server does, and would measure itself."""
    parts = url.removeprefix("http://").split(":")
    host, port = parts[0], int(parts[1])
    request = (f"GET /api/snapshot?ref=main HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"If-None-Match: {etag}\r\n\r\n").encode()
    done = failed = 0
    times: list[float] = []
    stop = time.monotonic() + seconds
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.monotonic() < stop:
            began = time.perf_counter()
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed the connection")
                head += chunk
            times.append(time.perf_counter() - began)
            if head.startswith(b"HTTP/1.1 304"):
                done += 1
            else:
                failed += 1
                break  # a body we do not read: stop this connection
    return done, failed, times


def throughput(url: str, etag: str, processes: int, seconds: float) -> tuple[float, int, list[float]]:
    """304 polls/s the server answered to ``processes`` client processes, one connection each."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    began = time.perf_counter()
    children = [subprocess.Popen([sys.executable, __file__, "--poll-worker", url, etag, str(seconds)],
                                 stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    total = errors = 0
    times: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 60)
        head, *rest = out.splitlines()
        done, failed = map(int, head.split())
        total, errors = total + done, errors + failed
        times += [float(t) for t in rest]
    return total / (time.perf_counter() - began), errors, times


def replicas(url: str, repo: Path, count: int, interval: float, workdir: Path, rounds: int) -> list[str]:
    from modelgit import Registry

    opened: list[Any] = [None] * count

    def open_one(i: int) -> None:
        opened[i] = Registry.open(url, ref="main", cache_dir=workdir / f"replica-{i:03d}")

    began = time.perf_counter()
    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [f"{count} replicas opened (first snapshot, state built) in {time.perf_counter() - began:.1f} s"]
    one = Registry.open(url, ref="main", cache_dir=workdir / "replica-alone")
    took = []
    for step in range(5):
        new = change(repo, 100 + step)
        time.sleep(1.1)  # the server re-checks its ref once a second
        began = time.perf_counter()
        assert one.reload() is True and one.commit == new
        took.append(time.perf_counter() - began)
    one.close()
    lines.append(f"one replica alone: poll + snapshot to git + validate + swap of a new commit: "
                 f"median {statistics.median(took) * 1000:.0f} ms")
    regs = [r for r in opened if r is not None]
    assert len(regs) == count
    for reg in regs:
        reg.watch(interval=interval, jitter=0.1)
    try:
        spreads = []
        rates = []
        for step in range(1, rounds + 1):
            time.sleep(interval * 1.5)
            polls = sum(reg._reloader.source.polls for reg in regs)
            began = time.perf_counter()
            new = change(repo, step)
            stop = time.monotonic() + 60
            while any(reg.commit != new for reg in regs) and time.monotonic() < stop:
                time.sleep(0.01)
            took = time.perf_counter() - began
            served = sum(reg.commit == new for reg in regs)
            rates.append((sum(reg._reloader.source.polls for reg in regs) - polls) / took)
            spreads.append(took)
            lines.append(f"commit {step}: all {served}/{count} replicas serve it after {took:.2f} s")
        lines.append(f"median time until all serve a new commit: {statistics.median(spreads):.2f} s "
                     f"(poll interval {interval:g} s ±10 %, server recheck 1 s); polls meanwhile "
                     f"{statistics.median(rates):.0f}/s")
    finally:
        for reg in regs:
            reg.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="client processes for the throughput phase")
    parser.add_argument("--poll-worker", nargs=3, metavar=("URL", "ETAG", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--replica-models", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.poll_worker:
        url, etag, seconds = args.poll_worker
        done, failed, times = poll_for(url, etag, float(seconds))
        print(done, failed)
        print("\n".join(f"{t:.6f}" for t in times[:: max(1, len(times) // 2000)]))
        return 0
    os.environ.update(ENV)
    work = Path(tempfile.mkdtemp(prefix="modelgit-bench-api-"))
    big = build_repo(work / "big", args.models)
    server = Server(big, args.workers)
    try:
        server.wait()
        import httpx

        first = httpx.get(server.url + "/api/snapshot", timeout=30)
        etag = first.headers["etag"]
        print(f"snapshot of {args.models} hosted models: {len(first.content) / 1024:.0f} KiB; "
              f"uvicorn, {args.workers} workers, loopback")
        not_modified = latencies(server.url, args.polls, etag, 60)
        full = latencies(server.url, max(20, args.polls // 40), None, 60)
        print(f"304 poll: p50 {pct(not_modified, 0.5) * 1000:.2f} ms, p99 {pct(not_modified, 0.99) * 1000:.2f} ms "
              f"({len(not_modified)} sequential requests)")
        print(f"200 full snapshot: p50 {pct(full, 0.5) * 1000:.1f} ms, p99 {pct(full, 0.99) * 1000:.1f} ms "
              f"({len(full)} requests); ratio p50 full/304 {pct(full, 0.5) / pct(not_modified, 0.5):.0f}x")
        alone = poll_for(server.url, etag, 3.0)[2]
        print(f"304 poll, bare socket client: p50 {pct(alone, 0.5) * 1000:.2f} ms, "
              f"p99 {pct(alone, 0.99) * 1000:.2f} ms ({len(alone)} sequential requests)")
        rate, errors, times = throughput(server.url, etag, args.clients, args.seconds)
        print(f"sustained: {rate:,.0f} 304 polls/s from {args.clients} client processes (one keep-alive connection "
              f"each) for {args.seconds:g} s, p50 {pct(times, 0.5) * 1000:.2f} ms, "
              f"p99 {pct(times, 0.99) * 1000:.2f} ms ({errors} errors; clients and server share the cores)")
    finally:
        server.stop()
    for workers in sorted({1, args.workers}):
        server = Server(big, workers, factory="make_full_app")
        try:
            server.wait()
            times = current_latencies(server.url, min(args.polls, 500))
            print(f"GET /api/model-versions/local/m00500/current (whole app: auth, rate limit; {args.models} models; "
                  f"{workers} worker(s)): p50 {pct(times, 0.5) * 1000:.2f} ms, p99 {pct(times, 0.99) * 1000:.2f} ms "
                  f"({len(times)} requests)")
        finally:
            server.stop()
    small = build_repo(work / "small", args.replica_models)
    server = Server(small, args.workers)
    try:
        server.wait()
        for line in replicas(server.url, small, args.replicas, args.interval, work, args.rounds):
            print(line)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
