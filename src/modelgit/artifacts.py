"""Artifact facts that cost time to learn — sha256 and ONNX signature — cached by git blob id.

A blob id names content, so a cached fact about it is true forever: the caches live in
``.git/modelgit/`` (never in the working tree) as append-only lines. Only facts go in: an outcome
that may not repeat (out of memory, no thread, an I/O error) is never stored. A cache file is a
convenience, never a source of errors: a torn line (a killed process), garbage, or a directory
where the file should be is ignored, and the file is rewritten with the entries that are sound.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelgit.errors import InvalidError, LimitError, TransientError

_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(.+)$")


class BlobCache:
    """A persistent map blob id → text, one ``blob<TAB>value`` line per entry, in the file ``name``
    of ``<git_dir>/modelgit/`` (reached without following links: :mod:`modelgit.cachefs`).

    ``sound`` says whether a stored value is well formed; lines that fail it (or the line
    pattern, or lack their newline) are dropped and the file is rewritten on the next flush, as
    is a file that is too large, a link or not a regular file."""

    MAX_BYTES = 64 * 1024 * 1024  # ~600,000 entries; a larger file is rebuilt from scratch

    def __init__(self, git_dir: Path | None, name: str, sound: Callable[[str], bool] = lambda value: True) -> None:
        self.git_dir = git_dir
        self.name = name
        self._sound = sound
        self._values: dict[str, str] | None = None
        self._new: list[tuple[str, str]] = []
        self._rewrite = False

    def _load(self) -> dict[str, str]:
        if self._values is None:
            self._values = {}
            if self.git_dir is None:
                return self._values
            from modelgit import cachefs

            with cachefs.modelgit_dir(self.git_dir, create=False) as fd:
                if fd is None:
                    return self._values
                try:
                    os.stat(self.name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    return self._values  # no file yet
                data = cachefs.read_regular(fd, self.name, self.MAX_BYTES)
            if data is None:  # a link, a directory, too large, unreadable: start afresh
                self._rewrite = True
                return self._values
            lines = data.decode("utf-8", errors="replace").split("\n")
            if lines[-1]:
                self._rewrite = True  # a torn last line, without its newline
            for line in lines[:-1]:
                match = _LINE.match(line)
                if match and self._sound(match.group(2)):
                    self._values[match.group(1)] = match.group(2)
                else:
                    self._rewrite = True
        return self._values

    def get(self, blob: str) -> str | None:
        return self._load().get(blob)

    def put(self, blob: str, value: str) -> None:
        values = self._load()
        if values.get(blob) != value:
            values[blob] = value
            self._new.append((blob, value))

    def flush(self) -> None:
        if self.git_dir is None or not (self._new or self._rewrite):
            return
        from modelgit import cachefs

        try:
            with cachefs.modelgit_dir(self.git_dir, create=True) as fd:
                if fd is None:
                    return  # a linked or unusable .git/modelgit: no cache rather than through a link
                if not self._rewrite:
                    try:  # whole lines in one write: a torn line fails the checks on the next read
                        cachefs.append(fd, self.name, "".join(f"{b}\t{v}\n" for b, v in self._new).encode())
                        return
                    except OSError:  # a link or a directory in the file's place since it was read
                        pass
                values = self._load()
                cachefs.replace(fd, self.name, "".join(f"{b}\t{v}\n" for b, v in values.items()).encode())
                self._rewrite = False
        except OSError:
            pass  # a read-only .git, a link in the file's place: only costs re-hashing next time
        finally:
            self._new.clear()


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _sound_digest(value: str) -> bool:
    return _SHA256.match(value) is not None


def _sound_signature(value: str) -> bool:
    try:
        loaded = json.loads(value)
    except ValueError:
        return False
    if not isinstance(loaded, dict):
        return False
    if "error" in loaded:
        return len(loaded) == 1 and isinstance(loaded["error"], str)
    found, under = loaded.get("ok"), loaded.get("under")
    return (set(loaded) <= {"ok", "under"} and isinstance(found, dict)
            and isinstance(found.get("inputs"), list) and isinstance(found.get("outputs"), list)
            and (under is None or (isinstance(under, list) and len(under) == 2
                                   and all(isinstance(n, int | float) for n in under))))


def _holds_under(fact: dict[str, Any], limits: Any) -> bool:
    """Whether a cached outcome still holds under ``limits``: a model that loaded and ran under
    some limits may break lower ones, so a pass counts only when the limits now are at least as
    high as those it passed under (entries written before limits were recorded: the defaults)."""
    if "error" in fact:
        return True  # not loadable at all, whatever the limits
    from modelgit.sessions import DEFAULT_MEMORY, DEFAULT_SECONDS

    memory, seconds = fact.get("under") or (DEFAULT_MEMORY, DEFAULT_SECONDS)
    return limits.memory_bytes >= memory and limits.seconds >= seconds


class ArtifactFacts:
    """sha256 digests and ONNX signatures of blobs, computed once per blob id."""

    def __init__(self, git_dir: Path | None) -> None:
        self.digests = BlobCache(git_dir, "sha256", _sound_digest)
        self.signatures = BlobCache(git_dir, "onnx-signature", _sound_signature)
        self._tried: dict[str, Any] = {}  # blob → sessions.Probe, from prefetch_signatures

    def sha256(self, blob: str, data: bytes) -> str:
        cached = self.digests.get(blob)
        if cached is None:
            cached = hashlib.sha256(data).hexdigest()
            self.digests.put(blob, cached)
        return cached

    def prefetch_signatures(self, items: list[tuple[str, bytes]]) -> None:
        """Probe every artifact not known yet in one child process (one start-up for all)."""
        from modelgit import sessions

        limits = sessions.Limits.from_env()
        todo = [(blob, data) for blob, data in dict(items).items()
                if data and self._known(blob, limits) is None and blob not in self._tried]
        if todo:
            self._tried.update(zip([b for b, _ in todo], sessions.probe_cached([d for _, d in todo]), strict=True))

    def signature(self, blob: str, data: bytes) -> dict[str, Any]:
        """The ONNX signature of a model file; InvalidError when onnxruntime cannot load it, and
        TransientError (not cached: the next call tries again) when it failed for want of memory,
        a thread or I/O rather than because of the file."""
        from modelgit.sessions import Limits

        limits = Limits.from_env()
        loaded = self._known(blob, limits)
        if loaded is None:
            try:
                loaded = {"ok": read_signature(data, self._tried.pop(blob, None)),
                          "under": [limits.memory_bytes, limits.seconds]}
            except (TransientError, LimitError):
                raise  # not a fact about the blob alone: a limit can be raised
            except InvalidError as exc:
                loaded = {"error": exc.message}
            self.signatures.put(blob, json.dumps(loaded, separators=(",", ":")))
        if "error" in loaded:
            raise InvalidError(loaded["error"])
        return loaded["ok"]

    def knows_signature(self, blob: str, limits: Any) -> bool:
        """Whether the outcome of checking ``blob`` is cached and still holds under ``limits``
        (else its bytes are needed to check it)."""
        return self._known(blob, limits) is not None

    def _known(self, blob: str, limits: Any) -> dict[str, Any] | None:
        cached = self.signatures.get(blob)
        if cached is None:
            return None
        loaded = json.loads(cached)
        return loaded if _holds_under(loaded, limits) else None

    def flush(self) -> None:
        self.digests.flush()
        self.signatures.flush()


def read_signature(data: bytes, tried: Any = None) -> dict[str, Any]:
    """Inputs and outputs of an ONNX model, learnt by loading and running it once in a child
    process under the model check's memory and time limits (:mod:`modelgit.sessions`), with the
    options the runtime serves with. ``tried``: its Probe when it was probed with others already.
    InvalidError when it cannot load, LimitError when it breaks a limit, TransientError when the
    check itself could not run (never a fact)."""
    if not data:
        raise InvalidError("the artifact is empty, not an ONNX model")
    from modelgit import sessions

    found = tried if tried is not None else sessions.probe_cached([data])[0]
    if found.transient:
        raise TransientError(f"the model check could not run: {found.problem}",
                             hint="this says nothing about the file; run again")
    if found.limit is not None:
        raise LimitError(f"refused by the model check: {found.problem}", limit=found.limit,
                         hint=f"raise MODELGIT_ONNX_{'MEMORY' if found.limit == 'memory' else 'SECONDS'} "
                              "if the model really needs it")
    if found.signature is None:
        raise InvalidError(f"not a loadable ONNX model: {found.problem}")
    return found.signature
