"""What every router of ``modelgit serve`` shares: ``request.app.state.context``.

>>> context: ServerContext = request.app.state.context          # doctest: +SKIP
>>> snapshot = context.snapshot.current                         # the served registry, never None
>>> snapshot.commit, context.ref, context.repo.root             # doctest: +SKIP

Routers (the API, the dashboard, the snapshot feed) read from :attr:`ServerContext.snapshot`, which
a background thread keeps at the tip of :attr:`ServerContext.ref` — off the request path, keeping
the last good snapshot when a new commit cannot be loaded or does not descend from the served one.
Writes go through :attr:`ServerContext.write_lock` and only ever create proposal branches.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelgit.errors import ModelgitError
from modelgit.gitstore import GitRepo
from modelgit.runtime.poller import Poller
from modelgit.server.tokens import TokenStore
from modelgit.snapshot import Loader, Snapshot

__all__ = ["LiveSnapshot", "ServerContext"]

log = logging.getLogger("modelgit.server")


class LiveSnapshot:
    """The registry at the tip of ``ref``, hot-reloaded by polling the ref every ``interval`` seconds.

    ``current`` is one attribute read (atomic under the GIL): a request sees the old snapshot or
    the new one, never a half-built one. A commit that fails to load, has invalid model files or
    does not descend from the served commit (a force-push back in time) is refused and recorded in
    ``last_error``; the served snapshot stays."""

    def __init__(self, repo: GitRepo, ref: str, interval: float = 1.0) -> None:
        from modelgit.runtime.source import ServedMemory

        self.repo = repo
        self.ref = ref
        self.interval = interval
        self.loader = Loader(repo)
        # As the runtime does: start from the last commit served for this ref (remembered in
        # .git/modelgit/served/, under a key of the server's own), so a restart on an invalid tip
        # or after a force-push back in time keeps serving instead of failing to start; the first
        # poll then judges the tip.
        self._memory = ServedMemory(repo, f"serve:{ref}")
        tip = repo.resolve(ref)
        start = self._memory.read() or tip
        self.current: Snapshot = self._load(start)
        self._memory.write(start)
        self.loaded_at = time.time()
        self.last_error: str | None = None
        self.refused: str | None = None  # the last commit refused, not retried until the ref moves
        self.reloads = 0
        self._poller = Poller(self.poll, interval, name="modelgit-serve-reload", log=log,
                              on_error=self._failed)
        if start != tip:
            self.poll()

    def _load(self, commit: str) -> Snapshot:
        snapshot = self.loader.load(commit)
        findings = snapshot.findings()
        if findings:
            raise ModelgitError(f"the registry at {commit[:12]} has {len(findings)} finding(s)",
                                findings=findings, hint="see modelgit validate")
        return snapshot

    def poll(self) -> bool:
        """Load the ref's tip when it moved; True when a new snapshot serves."""
        tip = self.repo.try_resolve(self.ref)
        served = self.current.commit
        if tip is None or tip == served or tip == self.refused:
            return False
        try:
            if served is not None and not self.repo.is_ancestor(served, tip):
                raise ModelgitError(f"{tip[:12]} does not descend from the served {served[:12]}")
            snapshot = self._load(tip)
        except ModelgitError as exc:
            self.refused, self.last_error = tip, exc.render()
            log.warning("not serving %s: %s", tip[:12], exc.message)
            return False
        self.loader.forget_except([snapshot])
        self.current, self.loaded_at, self.last_error, self.refused = snapshot, time.time(), None, None
        self._memory.write(tip)
        self.reloads += 1
        return True

    def start(self) -> None:
        if self.interval > 0:  # 0: serve the snapshot loaded at start, never reload
            self._poller.start()

    def stop(self) -> None:
        self._poller.stop()

    def _failed(self, exc: Exception) -> None:
        self.last_error = f"reload failed: {exc}"


@dataclass
class ServerContext:
    """Shared state of one server process, set on ``app.state.context`` by :func:`create_app`.

    - ``repo_path``, ``ref``: the repository and the ref (branch) served read-only;
    - ``repo``: the :class:`~modelgit.gitstore.GitRepo` (the one door to git);
    - ``snapshot``: the hot-reloaded :class:`LiveSnapshot` (``context.snapshot.current``);
    - ``tracker``: the usage :class:`~modelgit.tracking.Tracker` (None until the app starts);
    - ``tokens``: the :class:`~modelgit.server.tokens.TokenStore` requests are checked against;
    - ``push``: a remote that proposal branches are pushed to, or None;
    - ``write_lock``: held while a proposal is committed (one write at a time)."""

    repo_path: Path
    ref: str
    repo: GitRepo
    snapshot: LiveSnapshot
    tokens: TokenStore
    tracking_url: str | None = None
    tracker: Any = None
    push: str | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)
