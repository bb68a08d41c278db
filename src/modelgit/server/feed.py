"""The snapshot feed replicas poll instead of git: ``GET /api/snapshot`` and ``GET /api/artifacts/{sha256}``.

``GET /api/snapshot?ref=main[&since=<commit>]`` answers the newest commit of the ref that
validates (the Validator of every other command: schema, rules, artifacts and their sha256 and
signatures), as the JSON :class:`modelgit.runtime.feed.WireSnapshot` describes, with ``descends``
saying whether it descends from ``since`` (``git merge-base --is-ancestor`` here, where the
history is). ``ETag`` is the commit; ``If-None-Match`` with it answers 304 without a body;
``Cache-Control: no-cache`` lets any HTTP cache or CDN in front keep the body and revalidate it, so
one server feeds more replicas than it could answer itself. When the ref's tip does not validate,
the last valid commit keeps being served and ``X-Modelgit-Tip`` / ``X-Modelgit-Tip-Refused`` say
which tip was refused and why.

``GET /api/artifacts/{sha256}`` answers the bytes of a file the served snapshot (or the one before
it, for replicas still fetching it) references with that sha256, verified before they leave;
``Cache-Control: public, max-age=31536000, immutable``: content addressed, it never changes.

The ref is checked at most once per ``feed_recheck`` seconds (default 1 s; ``app.state.feed_recheck``),
so a 304 poll costs a dictionary lookup, not a git process. Only the served ref (and the refs in
``app.state.feed_refs``) are fed: a replica cannot make the server validate arbitrary refs.

The router reads its repository and ref through :func:`feed_target`: ``request.app.state.context``
(its ``repo``/``repo_path`` and ``ref``) when the app has one, else ``app.state.repo_path`` and
``app.state.ref``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from modelgit.errors import ModelgitError, UsageError
from modelgit.gitstore import GitRepo
from modelgit.runtime.feed import FEED_HEADER, FORMAT, REF_PATTERN, check_feed_ref
from modelgit.snapshot import SETTINGS_PATH, Snapshot, model_id_of
from modelgit.validate import Validator, referenced_files, resolve_path

__all__ = ["Publisher", "feed_target", "router"]

log = logging.getLogger("modelgit.server")

router = APIRouter(tags=["feed"])

MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"
_UNKNOWN = object()
_HEX = "^(?:[0-9a-f]{40}|[0-9a-f]{64})$"
_SHA256 = "^[0-9a-f]{64}$"


@dataclass(frozen=True)
class Published:
    """One validated commit as the feed sends it: the body around ``descends``, and the files
    its artifacts endpoint may answer (sha256 → (path, blob))."""

    commit: str
    head: bytes
    tail: bytes
    artifacts: dict[str, tuple[str, str]]


class Publisher:
    """The feed of one ref of one repository: the newest valid commit, checked at most every
    ``recheck`` seconds, and whether commits descend from others (remembered)."""

    def __init__(self, repo: GitRepo, ref: str, recheck: float = 1.0) -> None:
        self.repo = repo
        self.ref = ref
        self.recheck = recheck
        self.validator = Validator(repo)
        self.published: Published | None = None
        self.previous: Published | None = None
        self.tip: str | None = None
        self.tip_problem: str | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._descends: OrderedDict[tuple[str, str], bool | None] = OrderedDict()
        self._lock_descends = threading.Lock()
        self._sizes: dict[str, int] = {}

    def current(self) -> Published | None:
        """The commit to serve now (None when the ref never had a valid one)."""
        published = self.published
        if published is not None and time.monotonic() - self._checked < self.recheck:
            return published
        # One thread re-checks; the others go on serving what is published (or wait for the first).
        if not self._lock.acquire(blocking=published is None):
            return published
        try:
            if self.published is None or time.monotonic() - self._checked >= self.recheck:
                try:
                    self._update()
                except ModelgitError as exc:  # git failed: what is published keeps serving
                    if self.published is None:
                        raise
                    self.tip_problem = f"cannot read '{self.ref}': {exc.message[:200]}"
                    log.warning("modelgit: the feed keeps serving %s: %s", self.published.commit[:12],
                                self.tip_problem)
                self._checked = time.monotonic()
        finally:
            self._lock.release()
        return self.published

    def fresh(self) -> Published | None:
        """What is published, if it was checked within ``recheck`` seconds (no git, no lock)."""
        published = self.published
        if published is not None and time.monotonic() - self._checked < self.recheck:
            return published
        return None

    def descends(self, since: str | None, commit: str) -> bool | None:
        if since is None:
            return None
        if since == commit:
            return True
        key = (since, commit)
        found = self._descends.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        known = self.repo.try_resolve(since)
        answer = None if known is None else self.repo.is_ancestor(known, commit)
        with self._lock_descends:
            self._descends[key] = answer
            while len(self._descends) > 4096:
                self._descends.popitem(last=False)
        return answer

    def artifact(self, sha256: str) -> tuple[str, str] | None:
        for published in (self.published, self.previous):
            if published is not None and sha256 in published.artifacts:
                return published.artifacts[sha256]
        return None

    def _update(self) -> None:
        tip = self.repo.resolve(self.ref)
        if tip == self.tip:
            return
        report = self.validator.validate(tip)
        if not report.valid:
            first = report.findings[0].render() if report.findings else "invalid"
            self.tip_problem = f"{len(report.findings)} finding(s): {first}"
            self.tip = None if report.transient else tip  # a transient finding is checked again
            log.warning("modelgit: the feed keeps serving %s: %s is invalid: %s",
                        self.published.commit[:12] if self.published else "nothing", tip[:12], first)
            return
        assert report.snapshot is not None
        published = self._publish(report.snapshot, tip)
        self.previous, self.published = self.published, published
        self.tip, self.tip_problem = tip, None
        self.validator.forget_except(report.snapshot)
        self.validator.loader.forget_except([report.snapshot])

    def _publish(self, snapshot: Snapshot, commit: str) -> Published:
        texts = [(path, entry) for path, entry in sorted(snapshot.entries.items())
                 if path == SETTINGS_PATH or model_id_of(path) is not None]
        contents = snapshot.source.read_many(texts)
        files: dict[str, dict[str, str]] = {}
        for path, entry in texts:
            data = contents[entry.blob]
            try:
                files[path] = {"text": data.decode("utf-8")}
            except UnicodeDecodeError:
                files[path] = {"base64": base64.b64encode(data).decode("ascii")}
        artifacts: dict[str, dict[str, Any]] = {}
        by_sha: dict[str, tuple[str, str]] = {}
        for model in snapshot.models.values():
            for path, sha256, _ in referenced_files(model):
                entry, problem = resolve_path(snapshot, path)
                if entry is None or problem is not None:  # cannot be: the commit validated
                    raise UsageError(f"{path} cannot be resolved at {commit[:12]}")
                size = self._sizes.get(entry.blob)
                if size is None:
                    size = self._sizes[entry.blob] = len(self.repo.read_blob(entry.blob))
                artifacts[path] = {"sha256": sha256, "size": size, "mode": entry.mode}
                by_sha[sha256] = (path, entry.blob)
        head = json.dumps({"format": FORMAT, "ref": self.ref, "commit": commit})[:-1] + ', "descends": '
        tail = json.dumps({"files": files, "artifacts": dict(sorted(artifacts.items()))})
        published = Published(commit, head.encode(), b", " + tail[1:].encode(), by_sha)
        if len(published.head) + len(published.tail) > MAX_SNAPSHOT_BYTES:
            raise UsageError(f"the snapshot of {commit[:12]} is over {MAX_SNAPSHOT_BYTES:,} bytes")
        return published


def feed_target(request: Request) -> tuple[GitRepo, str]:
    """The repository and ref this app serves: ``app.state.context`` when present (the API's
    shared state), else ``app.state.repo_path`` and ``app.state.ref``."""
    state = request.app.state
    holder = getattr(state, "context", None) or state
    repo = getattr(holder, "repo", None) or getattr(holder, "repo_path", None)
    ref = getattr(holder, "ref", None) or "main"
    if repo is None:
        raise UsageError("the app has no repository to feed (app.state.context or app.state.repo_path)")
    if not isinstance(repo, GitRepo):
        # Discovered once per path (two git processes): not on every poll.
        found = _DISCOVERED.get(str(repo))
        if found is None:
            found = _DISCOVERED[str(repo)] = GitRepo.discover(Path(repo))
        repo = found
    return repo, ref


_DISCOVERED: dict[str, GitRepo] = {}


_CREATE = threading.Lock()


def _publisher(request: Request, ref: str) -> Publisher:
    repo, served = feed_target(request)
    state = request.app.state
    allowed = {served, *getattr(state, "feed_refs", ())}
    if ref not in allowed:
        raise LookupError(f"this server feeds {', '.join(sorted(allowed))}, not '{ref}'")
    with _CREATE:
        publishers = getattr(state, "feed_publishers", None)
        if publishers is None:
            publishers = state.feed_publishers = {}
        key = (str(repo.git_dir), ref)
        if key not in publishers:
            publishers[key] = Publisher(repo, ref, float(getattr(state, "feed_recheck", 1.0)))
        return publishers[key]


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _problem(status: int, detail: str, **headers: str) -> JSONResponse:
    # Never kept by a cache in front: a ref that is not valid yet will be.
    return JSONResponse({"detail": detail}, status_code=status, headers={"Cache-Control": "no-store", **headers})


def _ascii(text: str, limit: int = 200) -> str:
    """``text`` for a header or an error body: printable ASCII, bounded, and without the server's
    repository paths (git's messages name them; a client has no business knowing them)."""
    for repo in list(_DISCOVERED.values()):
        for path in {str(repo.root), str(repo.git_dir)}:
            text = text.replace(path, "<repository>")
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:limit]


def _headers(publisher: Publisher, published: Published) -> dict[str, str]:
    headers = {"ETag": f'"{published.commit}"', "Cache-Control": "no-cache", FEED_HEADER: str(FORMAT),
               "X-Modelgit-Commit": published.commit}
    if publisher.tip_problem and publisher.tip:
        headers["X-Modelgit-Tip"] = publisher.tip
        headers["X-Modelgit-Tip-Refused"] = _ascii(publisher.tip_problem)
    return headers


def _not_modified(request: Request, ref: str | None) -> Response | None:
    """The 304 of a poll whose ETag names what is published, from memory alone (no git, no
    thread hop), or None when the full path must answer."""
    tag = request.headers.get("if-none-match")
    publishers = getattr(request.app.state, "feed_publishers", None)
    if not tag or not publishers:
        return None
    holder = getattr(request.app.state, "context", None) or request.app.state
    path = getattr(holder, "repo", None) or getattr(holder, "repo_path", None)
    repo = path if isinstance(path, GitRepo) else _DISCOVERED.get(str(path))
    served = getattr(holder, "ref", None) or "main"
    if repo is None or (ref or served) != served:
        return None
    publisher = publishers.get((str(repo.git_dir), served))
    published = publisher.fresh() if publisher is not None else None
    if published is None or not _matches(tag, f'"{published.commit}"'):
        return None
    return Response(status_code=304, headers=_headers(publisher, published))


@router.get("/api/snapshot", summary="The validated registry at the served ref, for replicas",
            responses={304: {"description": "Not modified (If-None-Match names the commit served)"},
                       404: {"description": "Unknown or unfed ref"},
                       503: {"description": "The ref has no valid commit yet"}})
async def snapshot(request: Request, ref: str | None = Query(None, max_length=200, pattern=REF_PATTERN),
                   since: str | None = Query(None, pattern=_HEX)) -> Response:
    # Most polls are 304s answered from memory; anything that may run git goes to a thread.
    fast = _not_modified(request, ref)
    if fast is not None:
        return fast
    return await run_in_threadpool(_snapshot, request, ref, since)


def _snapshot(request: Request, ref: str | None, since: str | None) -> Response:
    try:
        name = check_feed_ref(ref or feed_target(request)[1])
        publisher = _publisher(request, name)
        published = publisher.current()
    except LookupError as exc:
        return _problem(404, str(exc))
    except UsageError as exc:  # a name no feed serves ('a..b', 'x.lock'), or an unknown ref: not found
        return _problem(404, _ascii(exc.message, 300))
    except ModelgitError as exc:
        return _problem(503, _ascii(exc.message, 300), **{"Retry-After": "5"})
    if published is None:
        return _problem(503, f"no commit of '{name}' validates yet: {_ascii(publisher.tip_problem or '', 300)}",
                        **{"Retry-After": "5"})
    headers = _headers(publisher, published)
    if _matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    try:
        descends = publisher.descends(since, published.commit)
    except ModelgitError as exc:
        return _problem(503, _ascii(exc.message, 300), **{"Retry-After": "5"})
    body = published.head + json.dumps(descends).encode() + published.tail
    return Response(body, media_type="application/json", headers=headers)


@router.get("/api/artifacts/{sha256}", summary="An artifact of the served snapshot, by sha256",
            responses={200: {"content": {"application/octet-stream": {}}},
                       304: {"description": "Not modified"}, 404: {"description": "Not an artifact served"}})
def artifact(request: Request, sha256: str) -> Response:
    import re

    if not re.fullmatch(_SHA256, sha256):
        return _problem(404, "an artifact is named by its sha256: 64 lowercase hex digits")
    etag = f'"{sha256}"'
    try:
        _, served = feed_target(request)
        found = None
        for name in {served, *getattr(request.app.state, "feed_refs", ())}:
            publisher = _publisher(request, name)
            publisher.current()
            found = publisher.artifact(sha256)
            if found is not None:
                break
        if found is None:
            return _problem(404, f"no artifact of the served snapshot has sha256 {sha256}")
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if _matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        data = publisher.repo.read_blob(found[1])
    except ModelgitError as exc:
        return _problem(503, _ascii(exc.message, 300), **{"Retry-After": "5"})
    if hashlib.sha256(data).hexdigest() != sha256:  # never send bytes that are not what they claim
        return _problem(500, f"the stored bytes of {found[0]} do not match sha256 {sha256}")
    return Response(data, media_type="application/octet-stream", headers=headers)
