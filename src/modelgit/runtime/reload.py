"""Moving the runtime from commit to commit: reload on demand or on a timer, refuse what must not
serve, remember what did.

A commit is refused (and the last good state keeps serving) when it is invalid, does not descend
from the commit serving now (a force-push back in time, an unrelated history), or would take a
model that serves now out of service. A refusal about the commit's content is final for that
commit; a git or transient failure (memory, threads, I/O) is retried on the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelgit.errors import GitError, ModelgitError, TransientError
from modelgit.runtime.poller import Poller
from modelgit.runtime.source import LocalRef, Mirror, ServedMemory

if TYPE_CHECKING:
    from modelgit.runtime.feed import HttpFeed
from modelgit.runtime.state import State, StateBuilder
from modelgit.snapshot import Loader

log = logging.getLogger("modelgit.runtime")


@dataclass
class Refusals:
    recent: list[dict[str, str]] = field(default_factory=list)  # the last 50, newest last
    final: set[str] = field(default_factory=set)  # commits judged once and for all
    reloads: int = 0


class Reloader:
    """Builds the state of the source's candidate commit and hands it to ``swap`` when it may
    serve. ``current`` returns the state serving now."""

    def __init__(self, source: LocalRef | Mirror | HttpFeed, builder: StateBuilder, loader: Loader,
                 served: ServedMemory, current: Callable[[], State], swap: Callable[[State], None]) -> None:
        self.source = source
        self.builder = builder
        self.served = served
        self.refusals = Refusals()
        self.lock = threading.Lock()
        self._loader = loader
        self._current = current
        self._swap = swap
        self._watcher: Poller | None = None

    def first_state(self, allow_reset: bool) -> tuple[State, bool]:
        """The state to start serving and whether the candidate is newer than it: the last commit
        this ref served (persisted by any process sharing the cache), so a tip that is invalid or
        that does not descend from it is refused by the next reload instead of served;
        ``allow_reset`` starts from the candidate on purpose."""
        tip = self.source.candidate()
        last_good = None if allow_reset else self.served.read()
        start = last_good if last_good is not None and last_good != tip else tip
        state = self.builder.build(start)
        self._loader.forget_except([state.snapshot])
        self.served.write(start)
        self.source.accept(start)
        return state, start != tip

    def reload(self) -> bool:
        """Move to the candidate commit if it may serve; True when a new state now serves (a new
        commit, or the same one with versions loaded that had failed for a transient reason)."""
        with self.lock:
            try:
                self.source.refresh()
            except GitError as exc:
                self.refuse(None, "git remote unreachable: " + exc.message[:200])
                return False
            except ModelgitError as exc:  # a feed that failed or answered badly: retried next poll
                self.refuse(None, exc.message[:300])
                return False
            try:
                commit = self.source.candidate()
            except ModelgitError as exc:
                self.refuse(None, exc.message)
                return False
            current = self._current()
            # A version that failed to load for a transient reason (memory, threads, I/O) while
            # its commit was accepted is tried again on the next poll, not on the next commit.
            retry = commit == current.commit and any(m.transient for m in current.models.values())
            if (commit == current.commit and not retry) or commit in self.refusals.final:
                return False  # nothing new (a refused commit is judged once)
            if not retry and not self.source.repo.is_ancestor(current.commit, commit):
                self.refuse(commit, f"{self.source.shown(commit)[:12]} does not descend from "
                                    f"{self.source.shown(current.commit)[:12]} "
                                    "(history rewritten?); keeping the current state", final=True)
                return False
            try:
                state = self.builder.build(commit, current)
                self.builder.check_still_serving(current, state)
            except ModelgitError as exc:
                self.refuse(commit, exc.render(), final=not isinstance(exc, (GitError, TransientError)))
                self.builder.release_unused(current)
                return False
            except Exception as exc:  # a bug or an onnxruntime crash must not stop serving
                log.exception("modelgit: building %s failed", commit[:12])
                self.refuse(commit, f"{type(exc).__name__}: {str(exc)[:200]}")
                self.builder.release_unused(current)
                return False
            self._swap(state)
            self.served.write(commit)
            self.source.accept(commit)
            self.refusals.reloads += 1
            self.builder.release_unused(state)
            self._loader.forget_except([state.snapshot])
            self.builder.validator.forget_except(state.snapshot)
            log.info("modelgit: now serving %s (was %s)", self.source.shown(commit)[:12],
                     self.source.shown(current.commit)[:12])
            return True

    def refuse(self, commit: str | None, reason: str, final: bool = False) -> None:
        shown = self.source.shown(commit) if commit else ""
        if commit and shown != commit:  # a feed's local commit: name the server's in the reason
            reason = reason.replace(commit[:12], shown[:12])
        log.warning("modelgit: refused %s: %s", shown[:12] if commit else self.source.ref, reason)
        self.refusals.recent.append({"commit": shown, "reason": reason})
        del self.refusals.recent[:-50]
        if final and commit:
            self.refusals.final.add(commit)

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    def watch(self, interval: float, jitter: float = 0.0) -> None:
        """Reload every ``interval`` seconds, each wait drawn in ``interval · (1 ± jitter)`` so that
        many replicas started together do not poll their server in step."""
        if self._watcher is None:
            self._watcher = Poller(self.reload, interval, jitter=jitter, name="modelgit-watch", log=log)
            self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop(timeout=5)
            self._watcher = None
