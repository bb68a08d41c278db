"""Where the runtime's commits come from, and what it remembers of them.

:class:`LocalRef` reads a ref of a local repository. :class:`Mirror` keeps a bare copy of a git
URL in a cache directory: fetches land in a quarantine namespace (``refs/modelgit/incoming/``) and
the mirror's own branch moves only to commits the runtime validated and serves, so whatever reads
the mirror (another process, a person) never sees an unvalidated commit as the branch.
:class:`ServedMemory` persists the last good commit per ref, so a restart never serves an invalid
tip nor goes back in time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
from pathlib import Path

from modelgit.errors import GitError, NotFoundError, UsageError
from modelgit.gitstore import INCOMING, GitRepo, check_remote, clone_mirror

log = logging.getLogger("modelgit.runtime")

_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def is_url(text: str) -> bool:
    return "://" in text or (text.startswith("git@") and ":" in text)


class LocalRef:
    """A ref of a local repository: what it names now is the candidate to serve."""

    remote = False

    def __init__(self, repo: GitRepo, ref: str) -> None:
        self.repo = repo
        self.ref = ref

    def refresh(self) -> None:
        """Nothing to fetch."""

    def candidate(self) -> str:
        return self.repo.resolve(self.ref)

    def accept(self, commit: str) -> None:
        """Nothing to move: the user's ref is theirs."""

    def shown(self, commit: str) -> str:
        """The commit as users know it (a feed's local commits are shown as the server's)."""
        return commit


def mirror_path(url: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the mirror of the git URL ``url`` is kept (by default under ``~/.cache/modelgit``)."""
    base = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "modelgit"
    return base / hashlib.sha256(url.encode()).hexdigest()[:16]


class Mirror:
    """A git URL mirrored into ``cache_dir`` (by default ``~/.cache/modelgit``), fetched on
    :meth:`refresh` into quarantine; :meth:`accept` moves the served branch."""

    remote = True

    def __init__(self, url: str, repo: GitRepo, ref: str) -> None:
        self.url = url
        self.repo = repo
        self.ref = ref
        name = ref.removeprefix("refs/heads/")
        self._branch = name if not _SHA.match(ref) else None

    @classmethod
    def open(cls, url: str, ref: str, cache_dir: str | os.PathLike[str] | None = None) -> Mirror:
        """The mirror of ``url`` (cloned on first use, fetched otherwise)."""
        check_remote(url, "git URL")  # before the cache directory is made or reused
        target = mirror_path(url, cache_dir)
        base = target.parent
        if not target.exists():
            base.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + f".tmp{os.getpid()}-{threading.get_ident()}")
            try:
                clone_mirror(url, tmp)
            except GitError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise UsageError(f"cannot clone {url}: {exc.message[:300]}",
                                 hint="check the URL and your access to it") from None
            try:
                os.replace(tmp, target)
            except OSError:  # another process cloned it first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
            mirror = cls(url, GitRepo(target, target), ref)
        else:
            mirror = cls(url, GitRepo(target, target), ref)
            try:
                mirror.refresh()
            except GitError as exc:
                log.warning("modelgit: cannot fetch %s, serving the cached copy: %s", url, exc.message[:200])
        return mirror

    def refresh(self) -> None:
        self.repo.fetch_mirror(self.url)

    def candidate(self) -> str:
        """The commit the remote's ref names in quarantine (a branch, then a tag), or a commit id."""
        name = self.ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        for namespace in ("heads", "tags"):
            found = self.repo.try_resolve(f"{INCOMING}{namespace}/{name}")
            if found is not None:
                return found
        if _SHA.match(self.ref):
            return self.repo.resolve(self.ref)
        raise NotFoundError(f"unknown git ref '{self.ref}' at {self.url}",
                         hint="name a branch, tag or commit that exists on the remote")

    def shown(self, commit: str) -> str:
        return commit

    def accept(self, commit: str) -> None:
        if self._branch is None:
            return
        try:
            self.repo.move_served_branch(self._branch, commit)
        except (GitError, UsageError) as exc:  # serving goes on; the mirror's branch lags
            log.warning("modelgit: cannot move %s's served branch %s: %s", self.url, self._branch, exc.message)


class ServedMemory:
    """The last good commit served for a ref, in ``<git dir>/modelgit/served/<digest of ref>``:
    one line, replaced atomically. A file that is missing, damaged or names a commit the
    repository no longer has is ignored (the ref's tip serves, as on a first start)."""

    def __init__(self, repo: GitRepo, ref: str) -> None:
        self._repo = repo
        self.path = repo.git_dir / "modelgit" / "served" / hashlib.sha256(ref.encode()).hexdigest()[:24]

    def read(self) -> str | None:
        try:
            text = self.path.read_text("ascii").strip()
        except (OSError, ValueError):
            return None
        if len(text) not in (40, 64) or any(c not in "0123456789abcdef" for c in text):
            return None
        return self._repo.try_resolve(text)

    def write(self, commit: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
            tmp.write_text(commit + "\n", "ascii")
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only repository: serving goes on, restarts start from the tip
            log.warning("modelgit: cannot remember the commit served in %s: %s", self.path, exc.strerror)
