"""A replica's source: the registry served over HTTP by ``modelgit serve``, never git.

>>> reg = Registry.open("http://registry.internal:8000", ref="main")    # doctest: +SKIP

:class:`HttpFeed` polls ``GET /api/snapshot?ref=…&since=…`` with ``If-None-Match`` (a 304 costs the
server almost nothing, and any HTTP cache in front of it answers for it), downloads the artifacts
a new snapshot lists from ``GET /api/artifacts/{sha256}`` into a content-addressed cache
(``<cache>/artifacts/<sha256>``: written to a temporary file under a size bound, verified, then
renamed) and turns the snapshot into git objects of a local bare repository
(``<cache>/feed-<digest of the URL>``). Everything the runtime guarantees then holds unchanged,
because the same Validator, StateBuilder and Reloader run on that repository as on a git mirror:

* the snapshot's commit lands in quarantine (``refs/modelgit/incoming/heads/<ref>``) and the served
  branch moves only after the runtime validated and served it;
* the local commit's parent is the local commit of the snapshot served now when the server says the
  new one descends from it (``descends: true``); otherwise it is a parentless commit with an empty
  tree, which the Reloader refuses for good as "does not descend" before anything is downloaded:
  never back in time, also across restarts (the last commit served is remembered, and sent as
  ``since``);
* bytes reach onnxruntime only after their sha256 matched, here and again in the StateBuilder.

The wire format (version 1) is the JSON of :class:`WireSnapshot`: the server's ``commit``, its
``ref``, ``descends`` (true/false, or null without ``since`` or when the server does not know it),
the registry's text files (``registry/modelgit.yaml`` and ``registry/models/**.yaml``, path →
``{"text": …}`` or ``{"base64": …}``) and the files those reference (artifacts and datasets of the
versions that are not archived: path → ``{"sha256", "size", "mode"}``). Local commits carry the
server's sha in a ``Modelgit-Feed-Commit:`` trailer; :meth:`HttpFeed.shown` maps them back, so
``Registry.commit`` reports the server's commit.

Everything the server sends is hostile: http/https only, no credentials in the URL, no redirects,
no proxies from the environment, timeouts and a deadline, bounded bodies (gzip inflated here one
bounded step at a time), paths relative and clean (no ``..``, no absolute path, no ``.git``), text
files only under ``registry/``, regular file modes only (no symlink), counts and sizes bounded.
Network failures are :class:`FeedUnreachable` (transient: the next poll tries again, nothing is
cached); a snapshot that breaks these rules is :class:`~modelgit.errors.InvalidError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgit.errors import GitError, InvalidError, ModelgitError, TransientError, UsageError, printable, shown_url
from modelgit.gitstore import INCOMING, CommitWriter, GitRepo, blob_id, init_bare_repository
from modelgit.runtime.source import ServedMemory
from modelgit.snapshot import MODEL_SUFFIX, MODELS_DIR, SETTINGS_PATH

log = logging.getLogger("modelgit.runtime")

__all__ = ["FEED_HEADER", "FORMAT", "FeedLimits", "FeedUnreachable", "HttpFeed", "WireSnapshot",
           "check_feed_ref", "is_feed_url", "open_if_feed"]

FORMAT = 1
SNAPSHOT_PATH = "/api/snapshot"
ARTIFACT_PATH = "/api/artifacts/"
TRAILER = "Modelgit-Feed-Commit"
# A bearer token the replica sends to a feed whose server requires one (`modelgit serve` does: scope read).
TOKEN_VARIABLE = "MODELGIT_FEED_TOKEN"
SCHEME_PREFIX = "modelgit+"
_HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$"  # also the feed's OpenAPI pattern for ?ref=
_REF = re.compile(REF_PATTERN)
REGULAR_MODES = ("100644", "100755")
# Local commits are made by modelgit, not by whoever runs the replica (who may have no git identity).
_IDENTITY = {"GIT_AUTHOR_NAME": "modelgit feed", "GIT_AUTHOR_EMAIL": "feed@modelgit.invalid",
             "GIT_COMMITTER_NAME": "modelgit feed", "GIT_COMMITTER_EMAIL": "feed@modelgit.invalid",
             "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+00:00"}


class FeedUnreachable(TransientError):
    """The feed did not answer (connection, timeout, 5xx): the next poll tries again."""


@dataclass(frozen=True)
class FeedLimits:
    """Bounds on what a feed may make a replica read."""

    timeout: float = 10.0  # seconds per connect / read
    snapshot_deadline: float = 60.0  # seconds for a whole snapshot body
    artifact_deadline: float = 600.0  # seconds for one artifact
    max_snapshot_bytes: int = 64 * 1024 * 1024
    max_files: int = 100_000
    max_artifact_bytes: int = 4 * 1024 * 1024 * 1024
    max_total_artifact_bytes: int = 32 * 1024 * 1024 * 1024


class WireFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str | None = None
    base64: str | None = None

    def data(self) -> bytes:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("a file has exactly one of 'text' and 'base64'")
        if self.text is not None:
            return self.text.encode("utf-8")
        return base64.b64decode(self.base64 or "", validate=True)


class WireArtifact(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    mode: Literal["100644", "100755"] = "100644"


class WireSnapshot(BaseModel):
    """The body of ``GET /api/snapshot`` (format 1)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    format: Literal[1]
    ref: str
    commit: str = Field(pattern=r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
    descends: bool | None = None
    files: dict[str, WireFile]
    artifacts: dict[str, WireArtifact] = Field(default_factory=dict)


def is_feed_url(text: str) -> bool:
    """``modelgit+http(s)://…`` always; ``http(s)://…`` whose path does not end in ``.git`` may be a
    feed (``Registry.open`` asks it); anything else is git."""
    scheme = text.partition("://")[0].lower()
    if scheme in ("modelgit+http", "modelgit+https"):
        return True
    return scheme in ("http", "https") and not urlsplit(text).path.rstrip("/").endswith(".git")


def check_feed_ref(ref: str) -> str:
    """``ref`` when it is a plain branch or tag name a feed can be asked for; a UsageError else."""
    if not _REF.match(ref) or ".." in ref or ref.endswith((".lock", "/")) or "//" in ref:
        raise UsageError(f"'{printable(ref)[:80]}' is not a ref a feed serves",
                         hint="name a branch or tag, e.g. main (no leading '-', no '..')")
    return ref


def check_path(path: str, *, text_file: bool) -> None:
    """InvalidError unless ``path`` is a clean repository-relative path (registry text files: the
    settings file or a model file)."""
    parts = path.split("/")
    bad = (not path or len(path) > 1024 or path.startswith("/") or "\\" in path or "\0" in path
           or any(part in ("", ".", "..") for part in parts)
           or any(part.lower() == ".git" for part in parts) or not path.isprintable())
    if not bad and text_file:
        bad = not (path == SETTINGS_PATH or (path.startswith(MODELS_DIR) and path.endswith(MODEL_SUFFIX)))
    if bad:
        what = "registry file" if text_file else "artifact"
        raise InvalidError(f"the feed names {what} path {printable(path)[:200]!r}; refused",
                           hint="paths are relative to the repository, without '..', and registry "
                                "files are registry/modelgit.yaml or registry/models/*.yaml")


_shown = shown_url


def base_url(url: str) -> str:
    """The http(s) base of a feed URL; a UsageError for anything else."""
    if url.lower().startswith(SCHEME_PREFIX):
        url = url[len(SCHEME_PREFIX):]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise UsageError(f"{printable(url)[:200]!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"a feed is read over http or https: {printable(url)[:200]!r}")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{_shown(url)}: credentials in the URL are refused")
    if parts.query or parts.fragment:
        raise UsageError(f"{_shown(url)}: a feed URL has no query or fragment")
    return url.rstrip("/")


class _Http:
    """Bounded GETs against one origin: no redirects, no proxies from the environment, a timeout
    per read and a deadline per body, gzip inflated here one bounded step at a time."""

    def __init__(self, base: str, limits: FeedLimits, transport: Any = None) -> None:
        self.base = base
        self.limits = limits
        self._transport = transport
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The connection pool, made on first use (again after :meth:`close`)."""
        import httpx

        if self._client is None or self._client.is_closed:
            headers = {"User-Agent": "modelgit-replica", "Accept-Encoding": "gzip"}
            token = os.environ.get(TOKEN_VARIABLE, "").strip()
            if token:  # a `read` token of the server (`modelgit token create --scope read`)
                headers["Authorization"] = f"Bearer {token}"
            self._client = httpx.Client(timeout=httpx.Timeout(self.limits.timeout), follow_redirects=False,
                                        trust_env=False, transport=self._transport, headers=headers)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def get(self, path: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
            max_bytes: int, deadline: float, sink: Any) -> tuple[int, Any]:
        """GET ``base + path``, handing each decoded chunk to ``sink``; (status, headers). Only a
        200 body is read; a 304 has none; any other status is an error."""
        import httpx

        where = f"{_shown(self.base)}{path}"
        started = time.monotonic()
        try:
            with self.client.stream("GET", self.base + path, params=params, headers=headers) as response:
                status = response.status_code
                if status == 304:
                    return status, response.headers
                if status != 200:
                    phrase = f" {printable(response.reason_phrase)[:60]}" if response.reason_phrase else ""
                    detail = f"{where} answered HTTP {status}{phrase}"
                    if status >= 500 or status in (408, 429):
                        raise FeedUnreachable(detail, hint="the next poll tries again")
                    raise InvalidError(detail, hint="check the URL and ref of the feed")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise InvalidError(f"{where} is {int(declared):,} bytes, over the limit of {max_bytes:,}")
                encoding = response.headers.get("content-encoding", "").strip().lower()
                if encoding in ("gzip", "x-gzip"):
                    decoder: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif encoding in ("", "identity"):
                    decoder = None
                else:
                    raise InvalidError(f"{where} is sent with Content-Encoding {printable(encoding)[:40]!r}")
                size = 0
                for raw in response.iter_raw():
                    chunk = decoder.decompress(raw, max_bytes - size + 1) if decoder else raw
                    size += len(chunk)
                    if size > max_bytes:
                        raise InvalidError(f"{where} is over the limit of {max_bytes:,} bytes; stopped reading")
                    if time.monotonic() - started > deadline:
                        raise FeedUnreachable(f"{where}: no complete answer within {deadline:g} s")
                    sink(chunk)
                if decoder is not None and not decoder.eof:
                    raise FeedUnreachable(f"{where}: the gzip body ends early")
                return status, response.headers
        except httpx.TimeoutException:
            raise FeedUnreachable(f"{where}: no answer within {self.limits.timeout:g} s",
                                  hint="the next poll tries again") from None
        except zlib.error as exc:
            raise InvalidError(f"{where}: the gzip body is corrupt ({exc})") from None
        except httpx.HTTPError as exc:  # connection refused, reset, protocol errors
            reason = printable(str(exc))[:200] or type(exc).__name__
            raise FeedUnreachable(f"{where}: cannot read it: {reason}", hint="the next poll tries again") from None


def parse_snapshot(body: bytes, ref: str, limits: FeedLimits) -> tuple[WireSnapshot, dict[str, bytes]]:
    """The snapshot in ``body`` and its text files' bytes, every path and size checked."""
    try:
        wire = WireSnapshot.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise InvalidError(f"the feed's snapshot is not a format-{FORMAT} snapshot: "
                           f"{printable(str(exc))[:300]}") from None
    if wire.ref != ref:
        raise InvalidError(f"the feed answered for ref {printable(wire.ref)[:80]!r}, not {ref!r}")
    if len(wire.files) + len(wire.artifacts) > limits.max_files:
        raise InvalidError(f"the feed's snapshot lists over {limits.max_files:,} files")
    if SETTINGS_PATH not in wire.files:
        raise InvalidError(f"the feed's snapshot has no {SETTINGS_PATH}")
    texts = {}
    for path, file in wire.files.items():
        check_path(path, text_file=True)
        try:
            texts[path] = file.data()
        except ValueError as exc:
            raise InvalidError(f"the feed's file {printable(path)!r}: {exc}") from None
    directories = {path[:i] for path in (*texts, *wire.artifacts) for i, ch in enumerate(path) if ch == "/"}
    total = 0
    for path, artifact in wire.artifacts.items():
        check_path(path, text_file=False)
        if path in texts or path in directories:
            raise InvalidError(f"the feed lists {printable(path)!r} twice, or as a file and a directory")
        if artifact.size > limits.max_artifact_bytes:
            raise InvalidError(f"artifact {printable(path)!r} is {artifact.size:,} bytes, over the limit of "
                               f"{limits.max_artifact_bytes:,}")
        total += artifact.size
    if total > limits.max_total_artifact_bytes:
        raise InvalidError(f"the feed's artifacts add up to {total:,} bytes, over the limit of "
                           f"{limits.max_total_artifact_bytes:,}")
    return wire, texts


class ArtifactCache:
    """Files by sha256 in ``<cache>/artifacts/<sha256>``, each verified before it is renamed in."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def verified(self, sha256: str) -> Path | None:
        """The cached file of ``sha256`` if its bytes still hash to it (a damaged one is removed)."""
        path = self.path(sha256)
        try:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError:
            return None
        if digest != sha256:
            log.warning("modelgit: cached artifact %s is damaged; downloading it again", sha256[:12])
            path.unlink(missing_ok=True)
            return None
        return path

    def download(self, http: _Http, sha256: str, size: int, limits: FeedLimits) -> Path:
        """Fetch ``sha256`` into a temporary file, verify size and digest, rename it in."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha256[:16]}-", suffix=".part", dir=self.root)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                def sink(chunk: bytes) -> None:
                    digest.update(chunk)
                    out.write(chunk)

                http.get(ARTIFACT_PATH + sha256, max_bytes=size, deadline=limits.artifact_deadline, sink=sink)
            if digest.hexdigest() != sha256:
                # Not final: a proxy or the network may have damaged it; the next poll asks again.
                raise TransientError(f"artifact {sha256[:12]}… from the feed has sha256 {digest.hexdigest()[:12]}…; "
                                     "refused and not cached", hint="the next poll downloads it again")
            os.replace(tmp, self.path(sha256))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path(sha256)


class HttpFeed:
    """A feed URL as the runtime's source: :meth:`refresh` polls, :meth:`candidate` names the local
    commit of the newest snapshot, :meth:`accept` moves the served branch (as :class:`Mirror`)."""

    remote = True

    def __init__(self, url: str, repo: GitRepo, ref: str, cache: Path, *, limits: FeedLimits | None = None,
                 transport: Any = None, allow_reset: bool = False) -> None:
        self.url = url
        self.repo = repo
        self.ref = check_feed_ref(ref)
        self.limits = limits or FeedLimits()
        self.artifacts = ArtifactCache(cache / "artifacts")
        self._http = _Http(base_url(url), self.limits, transport)
        self._writer = CommitWriter(repo)
        self._incoming = f"{INCOMING}heads/{self.ref}"
        self._server: dict[str, str] = {}  # local commit → server commit
        self._blobs: dict[str, str] = {}  # artifact sha256 → blob id written here
        self._texts: set[str] = set()  # blob ids of the text files written here
        self._lock = threading.Lock()
        self.polls = 0
        self.not_modified = 0
        # What this ref served last (any process sharing the cache): sent as `since`, so the
        # server says whether its commit moves forward from it.
        last = None if allow_reset else ServedMemory(repo, self.ref).read()
        self._accepted: str | None = last
        self._last_seen: str | None = None  # server sha of the incoming candidate
        incoming = repo.try_resolve(self._incoming)
        # Without a commit served (first start, a reset) the whole snapshot is asked for again: the
        # cached candidate may be the empty stand-in of a snapshot refused as going back in time.
        if incoming is not None and last is not None:
            self._last_seen = self.shown(incoming)

    @classmethod
    def open(cls, url: str, ref: str, cache_dir: str | os.PathLike[str] | None = None, *,
             limits: FeedLimits | None = None, transport: Any = None, allow_reset: bool = False) -> HttpFeed:
        """The feed at ``url``, its first snapshot fetched (or, when the feed does not answer, the
        snapshot cached by an earlier run)."""
        base = base_url(url)
        check_feed_ref(ref)
        cache, target = feed_cache(base, cache_dir)
        if not (target / "HEAD").exists():
            tmp = target.with_name(target.name + f".tmp{os.getpid()}-{threading.get_ident()}")
            init_bare_repository(tmp)
            try:
                os.replace(tmp, target)
            except OSError:  # another process made it first: use theirs
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
        feed = cls(url, GitRepo(target, target), ref, cache, limits=limits, transport=transport,
                   allow_reset=allow_reset)
        try:
            feed.refresh()
        except ModelgitError as exc:
            if feed._last_seen is None:
                if isinstance(exc, (TransientError, GitError)):
                    raise UsageError(f"cannot read the feed {_shown(base)}: {exc.message[:300]}",
                                     hint="check the URL and that 'modelgit serve' runs there (a git "
                                          "server's URL ends in .git, or pass feed=False)") from None
                raise
            # A restart while the feed is down or answers badly: the cached snapshot serves.
            log.warning("modelgit: cannot poll %s, serving the cached snapshot: %s", _shown(base), exc.message[:200])
        return feed

    def close(self) -> None:
        self._http.close()

    # -- the Source interface ------------------------------------------------------------------
    def refresh(self) -> None:
        """Poll the feed; a new snapshot becomes the candidate (its artifacts downloaded first)."""
        with self._lock:
            self._refresh()

    def candidate(self) -> str:
        found = self.repo.try_resolve(self._incoming)
        if found is None:
            raise UsageError(f"the feed {_shown(self._http.base)} has served no snapshot of '{self.ref}' yet")
        return found

    def accept(self, commit: str) -> None:
        self._accepted = commit
        try:
            self.repo.move_served_branch(self.ref, commit)
        except (GitError, UsageError) as exc:  # serving goes on; the branch lags
            log.warning("modelgit: cannot move the feed's served branch %s: %s", self.ref, exc.message)

    def shown(self, commit: str) -> str:
        """The server's commit of a local one (the local sha itself if it did not come from a feed)."""
        found = self._server.get(commit)
        if found is None:
            try:
                message = self.repo.commit_message(commit)
            except GitError:
                return commit
            found = commit
            for line in message.splitlines():
                key, _, value = line.partition(":")
                if key.strip() == TRAILER and _HEX.match(value.strip()):
                    found = value.strip()
            self._server[commit] = found
        return found

    # -- polling -------------------------------------------------------------------------------
    def _refresh(self) -> None:
        params = {"ref": self.ref}
        since = self.shown(self._accepted) if self._accepted else None
        if since is not None:
            params["since"] = since
        headers = {"If-None-Match": f'"{self._last_seen}"'} if self._last_seen else {}
        chunks: list[bytes] = []
        self.polls += 1
        status, _ = self._http.get(SNAPSHOT_PATH, params=params, headers=headers,
                                   max_bytes=self.limits.max_snapshot_bytes,
                                   deadline=self.limits.snapshot_deadline, sink=chunks.append)
        if status == 304:
            self.not_modified += 1
            return
        wire, texts = parse_snapshot(b"".join(chunks), self.ref, self.limits)
        if since is not None and wire.commit == since and self._accepted is not None:
            local = self._accepted  # back to what serves (after a refused tip): nothing new
        elif since is not None and wire.descends is not True:
            # Back in time, another history, or a `since` the server does not know: a commit that
            # does not descend from what serves, so the Reloader refuses it for good; nothing is
            # downloaded for it.
            local = self._commit({}, [], wire.commit, "does not descend from the commit served")
        else:
            parent = [self._accepted] if since is not None and self._accepted else []
            local = self._commit(self._tree(wire, texts), parent, wire.commit, "")
        self.repo.set_modelgit_ref(self._incoming, local)
        self._last_seen = wire.commit

    def _tree(self, wire: WireSnapshot, texts: dict[str, bytes]) -> dict[str, tuple[str, str]]:
        """path → (mode, blob) of a snapshot: text files written as blobs, artifacts downloaded."""
        entries = {path: ("100644", blob_id(data)) for path, data in texts.items()}
        new = {blob: texts[path] for path, (_, blob) in entries.items() if blob not in self._texts}
        # Only files that changed since the last snapshot are written: at 1,000 models a new
        # snapshot writes one blob, not 1,000.
        self._writer.write_blobs(new.values())
        self._texts = set(new) | {blob for _, blob in entries.values()}
        wanted = {a.sha256: a for a in wire.artifacts.values() if a.sha256 not in self._blobs}
        files: dict[str, Path] = {}
        for sha, artifact in wanted.items():
            cached = self.artifacts.verified(sha)
            files[sha] = cached or self.artifacts.download(self._http, sha, artifact.size, self.limits)
        for sha, blob in zip(files, self._writer.write_blob_files(files.values()), strict=True):
            self._blobs[sha] = blob
        for path, artifact in wire.artifacts.items():
            entries[path] = (artifact.mode, self._blobs[artifact.sha256])
        return entries

    def _commit(self, entries: dict[str, tuple[str, str]], parents: list[str], server: str, note: str) -> str:
        tree = self._writer.write_tree(None, entries) if entries else self._writer.write_tree(None, {})
        message = f"modelgit feed: {self.ref} at {server}\n\n"
        if note:
            message += f"{note}\n\n"
        message += f"{TRAILER}: {server}\n"
        local = self._writer.commit(tree, parents, message, env=_IDENTITY)
        self._server[local] = server
        return local


FEED_HEADER = "X-Modelgit-Feed"


def feed_cache(base: str, cache_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """(cache root, the feed's bare repository) for the feed at ``base``."""
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "modelgit"
    return cache, cache / ("feed-" + hashlib.sha256(base.encode()).hexdigest()[:16])


def answers_as_feed(url: str, ref: str, *, limits: FeedLimits | None = None, transport: Any = None) -> bool | None:
    """Whether ``url`` serves a snapshot feed (its snapshot answer carries ``X-Modelgit-Feed``);
    None when it cannot be reached. Reads the headers only."""
    import httpx

    http = _Http(base_url(url), limits or FeedLimits(), transport)
    try:
        with http.client.stream("GET", http.base + SNAPSHOT_PATH, params={"ref": ref}) as response:
            return response.status_code in (200, 304) and response.headers.get(FEED_HEADER) == str(FORMAT)
    except httpx.HTTPError:
        return None
    finally:
        http.close()


def open_if_feed(url: str, ref: str, cache_dir: str | os.PathLike[str] | None, *, explicit: bool,
                 allow_reset: bool = False, limits: FeedLimits | None = None, transport: Any = None) -> HttpFeed | None:
    """The feed at ``url`` (``explicit``: it must be one), or None when ``url`` is a git server.

    A URL that does not answer is a feed unless only a git mirror of it is cached: a replica
    restarting while its server is down serves its cached snapshot, and one that never reached
    the server says so as a feed would, not in git's words about a clone."""
    from modelgit.runtime.source import mirror_path

    base = base_url(url)
    if not explicit:
        answer = answers_as_feed(base, ref, limits=limits, transport=transport)
        if answer is False:
            return None
        if answer is None and not (feed_cache(base, cache_dir)[1] / "HEAD").exists() \
                and mirror_path(url, cache_dir).exists():
            return None
    return HttpFeed.open(base, ref, cache_dir, limits=limits, transport=transport, allow_reset=allow_reset)
