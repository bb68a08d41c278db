"""The snapshot feed, end to end on real parts: a real uvicorn on 127.0.0.1 serving a real git
repository, replicas opened with ``Registry.open("http://…")`` that run real onnxruntime sessions,
and hostile servers whose snapshots must be refused while the last good state keeps serving."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from conftest import Repo, make_repo
from feed_support import feed_app, serve
from modelgit import Registry, gitstore
from modelgit.errors import InvalidError, NotFoundError, UsageError
from modelgit.gitstore import GitRepo
from modelgit.runtime.feed import FeedLimits, HttpFeed, is_feed_url
from runtime_support import KEYS, RegistryRepo, V, expected, model_bytes, sample_input, sha256, standard, which


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RegistryRepo, Any, str]]:
    """The standard registry (score: v1 active, v2 staging, 90/10) committed and fed by uvicorn."""
    reg = standard(make_repo(tmp_path / "server"))
    reg.commit("first")
    app = feed_app(reg.repo.root)
    with serve(app) as url:
        yield reg, app, url


def _answers(reg: Registry, ks: list[int]) -> Counter[int]:
    x = sample_input()
    return Counter(which(reg.run("score", x, key=key), x, ks) for key in KEYS)


def _hits(app: Any, prefix: str, status: int) -> int:
    return sum(n for (path, code), n in app.state.hits.items() if path.startswith(prefix) and code == status)


def test_a_replica_serves_the_servers_commit_and_an_unchanged_poll_is_a_304(server, tmp_path: Path) -> None:
    reg, app, url = server
    replica = Registry.open(url, ref="main", cache_dir=tmp_path / "cache")
    assert replica.commit == reg.repo.head()  # the server's sha, not the replica's local copy
    assert replica.info()["commit"] == reg.repo.head()
    local = replica._state.commit
    assert local != reg.repo.head()
    with pytest.raises(NotFoundError) as unknown:  # messages name the server's commit too
        replica.route("scor", "k")
    assert reg.repo.head()[:12] in unknown.value.message and local[:12] not in unknown.value.message
    assert set(_answers(replica, [1, 2])) == {1, 2}
    x = sample_input()
    np.testing.assert_array_equal(replica.run("score:v2", x)[0], expected(2, x))
    # the artifacts sit in the content-addressed cache, verified, nothing half-written
    cached = sorted(p.name for p in (tmp_path / "cache" / "artifacts").iterdir())
    assert cached == sorted([sha256(model_bytes(1)), sha256(model_bytes(2))])
    assert _hits(app, "/api/artifacts/", 200) == 2
    before = _hits(app, "/api/snapshot", 304)
    for _ in range(3):
        assert replica.reload() is False
    assert _hits(app, "/api/snapshot", 304) == before + 3
    assert _hits(app, "/api/artifacts/", 200) == 2
    assert replica.info()["refused"] == []


def test_a_new_commit_is_served_after_reload_and_watch(server, tmp_path: Path) -> None:
    reg, app, url = server
    replica = Registry.open(url, ref="main", cache_dir=tmp_path / "cache")
    reg.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2), V("v3", "staging", k=3)],
              {"v2": 50, "v3": 50})
    second = reg.commit("promote v2, try v3")
    assert replica.reload() is True
    assert replica.commit == second
    assert set(_answers(replica, [1, 2, 3])) == {2, 3}
    assert _hits(app, "/api/artifacts/", 200) == 3  # only v3's artifact was new
    reg.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2), V("v3", "staging", k=3)],
              {"v2": 90, "v3": 10})
    third = reg.commit("90/10")
    replica.watch(interval=0.05, jitter=0.5)
    try:
        deadline = time.monotonic() + 20
        while replica.commit != third and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        replica.close()
    assert replica.commit == third and replica.info()["refused"] == []
    assert replica.reload() is False  # closed: the next reload reconnects
    assert replica.info()["refused"] == []


def test_the_server_keeps_serving_the_last_valid_commit(server, tmp_path: Path) -> None:
    reg, _app, url = server
    good = reg.repo.head()
    replica = Registry.open(url, ref="main", cache_dir=tmp_path / "cache")
    reg.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 80, "v2": 30})
    bad = reg.commit("traffic sums to 110")
    answer = httpx.get(url + "/api/snapshot", params={"ref": "main"})
    assert answer.status_code == 200 and answer.json()["commit"] == good
    assert answer.headers["x-modelgit-tip"] == bad
    assert "traffic sums to 110" in answer.headers["x-modelgit-tip-refused"]
    assert replica.reload() is False and replica.commit == good
    reg.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 70, "v2": 30})
    fixed = reg.commit("70/30")
    assert replica.reload() is True and replica.commit == fixed


def test_a_ref_with_no_valid_commit_is_not_fed(tmp_path: Path) -> None:
    reg = RegistryRepo(make_repo(tmp_path / "server"))
    reg.settings()
    reg.model("score", [V("v1", "active", k=1, sha="0" * 64)])
    reg.commit("checksum wrong from the start")
    with serve(feed_app(reg.repo.root)) as url:
        answer = httpx.get(url + "/api/snapshot")
        assert answer.status_code == 503 and "sha256 mismatch" in answer.json()["detail"]
        with pytest.raises(UsageError, match="cannot read the feed"):
            Registry.open(url, ref="main", cache_dir=tmp_path / "cache", feed=True)


def test_a_force_push_back_in_time_is_refused_even_after_a_restart(server, tmp_path: Path) -> None:
    reg, app, url = server
    first = reg.repo.head()
    reg.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
    second = reg.commit("promote v2")
    cache = tmp_path / "cache"
    replica = Registry.open(url, ref="main", cache_dir=cache)
    assert replica.commit == second
    reg.repo.git("reset", "-q", "--hard", first)  # the server's branch goes back in time
    downloads = _hits(app, "/api/artifacts/", 200)
    assert replica.reload() is False
    assert replica.commit == second
    refused = replica.info()["refused"][-1]
    assert refused["commit"] == first and "does not descend from" in refused["reason"]
    assert first[:12] in refused["reason"] and second[:12] in refused["reason"]
    assert _answers(replica, [1, 2]) == Counter({2: len(KEYS)})
    assert replica.reload() is False and len(replica.info()["refused"]) == 1  # judged once
    reg.repo.git("reset", "-q", "--hard", second)  # forward again to what the replica serves
    assert replica.reload() is False and replica.commit == second
    reg.repo.git("reset", "-q", "--hard", first)
    assert replica.reload() is False and len(replica.info()["refused"]) == 1
    replica.close()
    # a new process on the same cache starts from what it served, and refuses the old tip again
    again = Registry.open(url, ref="main", cache_dir=cache)
    assert again.commit == second
    assert "does not descend from" in again.info()["refused"][-1]["reason"]
    assert _answers(again, [1, 2]) == Counter({2: len(KEYS)})
    assert _hits(app, "/api/artifacts/", 200) == downloads  # nothing fetched for a refused commit
    again.close()
    # only a deliberate reset serves the older commit
    reset = Registry.open(url, ref="main", cache_dir=cache, allow_reset=True)
    assert reset.commit == first
    assert set(_answers(reset, [1, 2])) == {1, 2}


def test_the_replica_never_runs_git_against_the_server(server, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    reg, _app, url = server
    calls: list[tuple[list[str], Path]] = []
    real = gitstore._run
    main = threading.get_ident()

    def spy(args: list[str], cwd: Path, **kwargs: Any) -> Any:
        if threading.get_ident() == main:  # the replica; the server answers in other threads
            calls.append((list(args), Path(cwd)))
        return real(args, cwd, **kwargs)

    monkeypatch.setattr(gitstore, "_run", spy)
    cache = tmp_path / "cache"
    replica = Registry.open(url, ref="main", cache_dir=cache)
    reg.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
    reg.commit("50/50")
    assert replica.reload() is True
    assert calls
    server_root = str(reg.repo.root)
    for args, cwd in calls:
        assert cwd.is_relative_to(cache), (args, cwd)
        assert not any(server_root in arg for arg in args), args
        assert args[0] not in ("fetch", "clone", "ls-remote", "pull", "push"), args
    local = GitRepo.discover(next(cache.glob("feed-*")))
    assert local.bare
    config = (local.git_dir / "config").read_text()
    assert "[remote" not in config
    # the served branch moved only to what was validated and served
    assert local.resolve("refs/heads/main") == local.resolve("refs/modelgit/incoming/heads/main")


def test_the_snapshot_endpoints_answer_with_cache_headers(server) -> None:
    reg, _app, url = server
    head = reg.repo.head()
    first = httpx.get(url + "/api/snapshot", params={"ref": "main", "since": head})
    assert first.status_code == 200
    assert first.headers["etag"] == f'"{head}"' and first.headers["cache-control"] == "no-cache"
    body = first.json()
    assert body["commit"] == head and body["descends"] is True and body["format"] == 1
    assert sorted(body["files"]) == ["registry/modelgit.yaml", "registry/models/score.yaml"]
    artifacts = body["artifacts"]
    assert artifacts["registry/artifacts/score_v1.onnx"] == {
        "sha256": sha256(model_bytes(1)), "size": len(model_bytes(1)), "mode": "100644"}
    not_modified = httpx.get(url + "/api/snapshot", headers={"If-None-Match": f'W/"x", "{head}"'})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == f'"{head}"'
    sha = sha256(model_bytes(2))
    blob = httpx.get(f"{url}/api/artifacts/{sha}")
    assert blob.status_code == 200 and blob.content == model_bytes(2)
    assert blob.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert blob.headers["etag"] == f'"{sha}"'
    assert httpx.get(f"{url}/api/artifacts/{sha}", headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    assert httpx.get(f"{url}/api/artifacts/{'0' * 64}").status_code == 404
    assert httpx.get(f"{url}/api/artifacts/{sha.upper()}").status_code == 404
    assert httpx.get(f"{url}/api/artifacts/..%2F..%2Fetc%2Fpasswd").status_code == 404
    # since: a commit the server does not know is neither true nor false
    assert httpx.get(url + "/api/snapshot", params={"since": "1" * 40}).json()["descends"] is None
    assert httpx.get(url + "/api/snapshot", params={"since": "HEAD~1"}).status_code == 422
    option = httpx.get(url + "/api/snapshot", params={"ref": "--upload-pack=touch x"})
    assert option.status_code == 422  # the OpenAPI pattern of ?ref= refuses it before any git
    assert httpx.get(url + "/api/snapshot", params={"ref": "a..b"}).status_code == 404
    other = httpx.get(url + "/api/snapshot", params={"ref": "other"})
    assert other.status_code == 404 and "feeds main" in other.json()["detail"]


# -- hostile servers ------------------------------------------------------------------------------


class Hostile:
    """A server that answers whatever the test puts in ``snapshot`` and ``blobs``."""

    def __init__(self, snapshot: dict[str, Any], blobs: dict[str, bytes]) -> None:
        self.snapshot = snapshot
        self.blobs = blobs
        self.raw: bytes | None = None
        self.headers: dict[str, str] = {}
        self.app = app = FastAPI()

        @app.get("/api/snapshot")
        def snapshot(request: Request) -> Response:
            etag = f'"{self.snapshot["commit"]}"'
            headers = {"ETag": etag, "X-Modelgit-Feed": "1"}
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
            return Response(self.raw or json.dumps(self.snapshot).encode(), headers=headers | self.headers,
                            media_type="application/json")

        @app.get("/api/artifacts/{sha}")
        def artifact(sha: str) -> Response:
            if sha not in self.blobs:
                return Response(status_code=404)
            return Response(self.blobs[sha], media_type="application/octet-stream")


@pytest.fixture
def hostile(server, tmp_path: Path) -> Iterator[tuple[Hostile, str, Registry]]:
    """A hostile server that first serves the real server's good snapshot, and a replica of it."""
    _reg, _app, url = server
    good = httpx.get(url + "/api/snapshot").json()
    blobs = {sha256(model_bytes(k)): model_bytes(k) for k in (1, 2)}
    fake = Hostile(good, blobs)
    with serve(fake.app) as fake_url:
        replica = Registry.open(fake_url, ref="main", cache_dir=tmp_path / "cache")
        assert replica.commit == good["commit"]
        yield fake, fake_url, replica


def _next(snapshot: dict[str, Any], n: int = 1) -> dict[str, Any]:
    changed = json.loads(json.dumps(snapshot))
    changed["commit"] = f"{n:x}" * 40
    changed["descends"] = True
    return changed


@pytest.mark.parametrize("breakage, reason", [
    ("traversal", "path 'registry/models/../../etc/x.yaml'; refused"),
    ("absolute", "path '/etc/passwd'; refused"),
    ("git-dir", "path '.git/hooks/post-checkout'; refused"),
    ("outside-registry", "path 'setup.py'; refused"),
    ("symlink", "not a format-1 snapshot"),
    ("not-json", "not a format-1 snapshot"),
    ("other-ref", "answered for ref 'evil'"),
    ("too-big", "over the limit of"),
    ("gzip-bomb", "over the limit of 67,108,864 bytes; stopped reading"),
])
def test_a_hostile_snapshot_is_refused_and_the_last_good_keeps_serving(hostile, breakage: str,
                                                                       reason: str) -> None:
    fake, _, replica = hostile
    good = replica.commit
    bad = _next(fake.snapshot)
    files, artifacts = bad["files"], bad["artifacts"]
    if breakage == "traversal":
        files["registry/models/../../etc/x.yaml"] = {"text": "x"}
    elif breakage == "absolute":
        artifacts["/etc/passwd"] = dict(next(iter(artifacts.values())))
    elif breakage == "git-dir":
        artifacts[".git/hooks/post-checkout"] = dict(next(iter(artifacts.values())))
    elif breakage == "outside-registry":
        files["setup.py"] = {"text": "import os"}
    elif breakage == "symlink":
        next(iter(artifacts.values()))["mode"] = "120000"
    elif breakage == "not-json":
        fake.raw = b"<html>not json</html>"
    elif breakage == "other-ref":
        bad["ref"] = "evil"
    elif breakage == "gzip-bomb":  # 65 KB on the wire, 65 MB inflated: stopped at the limit
        fake.raw = gzip.compress(b" " * (65 * 1024 * 1024), compresslevel=9)
        fake.headers = {"Content-Encoding": "gzip"}
        assert len(fake.raw) < 100_000
    else:
        fake.raw = b" " * (64 * 1024 * 1024 + 10)
    fake.snapshot = bad
    assert replica.reload() is False
    assert replica.commit == good
    assert reason in replica.info()["refused"][-1]["reason"]
    assert set(_answers(replica, [1, 2])) == {1, 2}


def test_a_tampered_artifact_is_refused_and_not_cached(hostile, tmp_path: Path) -> None:
    fake, _, replica = hostile
    good = replica.commit
    data = model_bytes(3)
    sha = sha256(data)
    bad = _next(fake.snapshot)
    bad["artifacts"]["registry/artifacts/score_v3.onnx"] = {"sha256": sha, "size": len(data), "mode": "100644"}
    fake.blobs[sha] = model_bytes(4)[: len(data)]  # other bytes under that name
    fake.snapshot = bad
    assert replica.reload() is False and replica.commit == good
    assert "refused and not cached" in replica.info()["refused"][-1]["reason"]
    artifacts = tmp_path / "cache" / "artifacts"
    assert not (artifacts / sha).exists()
    assert [p.name for p in artifacts.iterdir() if p.name.endswith(".part")] == []
    # a transient refusal: the next poll asks again, and the right bytes are taken
    fake.blobs[sha] = data
    assert replica.reload() is True and replica.commit == bad["commit"]
    assert (artifacts / sha).read_bytes() == data


def test_an_artifact_larger_than_announced_is_refused(hostile, tmp_path: Path) -> None:
    fake, _, replica = hostile
    data = model_bytes(3)
    bad = _next(fake.snapshot)
    bad["artifacts"]["registry/artifacts/score_v3.onnx"] = {"sha256": sha256(data), "size": 10, "mode": "100644"}
    fake.blobs[sha256(data)] = data
    fake.snapshot = bad
    assert replica.reload() is False
    assert "is 150 bytes, over the limit of 10" in replica.info()["refused"][-1]["reason"]
    assert not (tmp_path / "cache" / "artifacts" / sha256(data)).exists()


def test_an_invalid_registry_from_a_hostile_server_is_refused_for_good(hostile) -> None:
    fake, _, replica = hostile
    good = replica.commit
    bad = _next(fake.snapshot)
    text = bad["files"]["registry/models/score.yaml"]["text"]
    # the recorded sha256 of v2 changed: the artifact no longer matches what the file says
    bad["files"]["registry/models/score.yaml"]["text"] = text.replace(sha256(model_bytes(2)), "f" * 64)
    fake.snapshot = bad
    assert replica.reload() is False and replica.commit == good
    refused = replica.info()["refused"][-1]
    assert refused["commit"] == bad["commit"] and "sha256 mismatch" in refused["reason"]
    assert replica.reload() is False and len(replica.info()["refused"]) == 1  # final: judged once


def test_a_snapshot_that_does_not_descend_is_refused_before_any_download(hostile) -> None:
    fake, _, replica = hostile
    good = replica.commit
    data = model_bytes(5)
    bad = _next(fake.snapshot)
    bad["descends"] = False
    bad["artifacts"]["registry/artifacts/score_v5.onnx"] = {"sha256": sha256(data), "size": len(data),
                                                           "mode": "100644"}
    fake.snapshot = bad
    assert replica.reload() is False and replica.commit == good
    assert "does not descend from" in replica.info()["refused"][-1]["reason"]
    bad = _next(fake.snapshot, 2)
    bad["descends"] = None  # "I do not know what you serve" is not a yes either
    fake.snapshot = bad
    assert replica.reload() is False and replica.commit == good


def test_an_unreachable_feed_is_retried_and_the_cached_snapshot_serves(server, tmp_path: Path) -> None:
    reg, _app, url = server
    cache = tmp_path / "cache"
    first = Registry.open(url, ref="main", cache_dir=cache)
    first.close()
    port_closed = "http://127.0.0.1:9"  # discard: nothing listens there
    for feed in (True, None):  # without feed=True too: not git's words about a failed clone
        with pytest.raises(UsageError, match="cannot read the feed") as unreachable:
            Registry.open(port_closed, ref="main", cache_dir=tmp_path / "other", feed=feed)
        assert "clone" not in unreachable.value.render() and "modelgit serve" in unreachable.value.hint
    # the same URL, its server gone: the cached snapshot serves and polls fail as transient
    feed = HttpFeed(url, GitRepo(next(cache.glob("feed-*")), next(cache.glob("feed-*"))), "main", cache,
                    limits=FeedLimits(timeout=1.0))
    feed._http.base = port_closed
    replica = Registry(feed.repo, "main", source=feed)
    assert replica.commit == reg.repo.head()
    assert replica.reload() is False
    assert "cannot read it" in replica.info()["refused"][-1]["reason"]
    assert set(_answers(replica, [1, 2])) == {1, 2}


def test_which_urls_are_feeds() -> None:
    assert is_feed_url("http://127.0.0.1:8000")
    assert is_feed_url("modelgit+https://registry.example.com/prefix")
    assert not is_feed_url("https://github.com/org/registry.git")
    assert not is_feed_url("git@github.com:org/registry.git")
    assert not is_feed_url("file:///srv/registry")
    with pytest.raises(UsageError, match="credentials"):
        HttpFeed.open("http://user:pw@127.0.0.1:1", "main")
    with pytest.raises(UsageError, match="not a ref a feed serves"):
        HttpFeed.open("http://127.0.0.1:1", "--upload-pack=x")


def test_a_git_url_over_http_is_still_mirrored(tmp_path: Path, example_repo: Repo) -> None:
    """An http URL that does not answer as a feed falls back to git (here: it answers 404, and
    git's http transport is not allowed by default)."""
    with serve(FastAPI()) as url:
        with pytest.raises(UsageError, match=r"cannot clone .*transport 'http' not allowed"):
            Registry.open(url + "/registry", ref="main", cache_dir=tmp_path / "cache")
        with pytest.raises(InvalidError, match="HTTP 404"):
            Registry.open(url, ref="main", cache_dir=tmp_path / "cache", feed=True)


def test_the_artifact_cache_is_content_addressed_and_shared(server, tmp_path: Path) -> None:
    _reg, _app, url = server
    cache = tmp_path / "cache"
    Registry.open(url, ref="main", cache_dir=cache).close()
    sha = sha256(model_bytes(1))
    (cache / "artifacts" / sha).write_bytes(b"damaged on disk")
    # a second feed (another URL for the same server) shares the cache; the damaged file is
    # noticed, removed and downloaded again, never committed as the artifact
    other = Registry.open(url.replace("127.0.0.1", "localhost"), ref="main", cache_dir=cache)
    assert len(list(cache.glob("feed-*"))) == 2
    assert hashlib.sha256((cache / "artifacts" / sha).read_bytes()).hexdigest() == sha
    assert set(_answers(other, [1, 2])) == {1, 2}


def test_an_unchanged_poll_runs_no_git_and_a_new_commit_shows_after_the_recheck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = standard(make_repo(tmp_path / "server"))
    first = reg.commit("first")
    app = feed_app(reg.repo.root, recheck=0.5)
    with serve(app) as url, httpx.Client() as client:
        assert client.get(url + "/api/snapshot").status_code == 200
        runs: list[list[str]] = []
        real = gitstore._run
        monkeypatch.setattr(gitstore, "_run", lambda args, cwd, **kw: runs.append(args) or real(args, cwd, **kw))
        polls = [client.get(url + "/api/snapshot", headers={"If-None-Match": f'"{first}"'}) for _ in range(20)]
        assert {p.status_code for p in polls} == {304}
        assert len(runs) <= 1  # at most one `rev-parse` of the ref per recheck period
        reg.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
        second = reg.commit("50/50")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = client.get(url + "/api/snapshot", headers={"If-None-Match": f'"{first}"'})
            if answer.status_code == 200:
                break
            time.sleep(0.05)
        assert answer.status_code == 200 and answer.json()["commit"] == second


def test_a_ref_that_disappears_keeps_the_last_valid_commit_fed(server) -> None:
    reg, _app, url = server
    good = reg.repo.head()
    assert httpx.get(url + "/api/snapshot").status_code == 200
    reg.repo.git("update-ref", "-d", "refs/heads/main")
    answer = httpx.get(url + "/api/snapshot")
    assert answer.status_code == 200 and answer.json()["commit"] == good
    refused = answer.headers["x-modelgit-tip-refused"]
    assert "cannot read 'main': <repository>: the repository has no commits yet" in refused
    assert str(reg.repo.root) not in refused
