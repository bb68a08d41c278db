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
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelgit.errors import InvalidError, LimitError, TransientError

_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(.+)$")


class BlobCache:
    """A persistent map blob id → text, one ``blob<TAB>value`` line per entry.

    ``sound`` says whether a stored value is well formed; lines that fail it (or the line
    pattern, or lack their newline) are dropped and the file is rewritten on the next flush."""

    def __init__(self, path: Path | None, sound: Callable[[str], bool] = lambda value: True) -> None:
        self.path = path
        self._sound = sound
        self._values: dict[str, str] | None = None
        self._new: list[tuple[str, str]] = []
        self._rewrite = False

    def _load(self) -> dict[str, str]:
        if self._values is None:
            self._values = {}
            if self.path is not None and (self.path.exists() or self.path.is_symlink()):
                try:
                    text = self.path.read_bytes().decode("utf-8", errors="replace")
                except OSError:  # a directory in its place, unreadable: start afresh
                    self._rewrite = True
                    return self._values
                lines = text.split("\n")
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
        if self.path is None or not (self._new or self._rewrite):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._rewrite:
                self._replace(self._load())
            else:
                # One write call of whole lines in append mode: concurrent writers interleave
                # lines, never bytes within a line on a local file system; a torn line fails the
                # checks on the next read.
                payload = "".join(f"{blob}\t{value}\n" for blob, value in self._new)
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(payload)
        except OSError:
            pass  # a read-only .git only costs re-hashing next time
        self._new.clear()

    def _replace(self, values: dict[str, str]) -> None:
        """Write the sound entries to a new file and move it over the damaged one."""
        assert self.path is not None
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{blob}\t{value}\n" for blob, value in values.items()))
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)  # our own cache path, under .git/modelgit/
        os.replace(temporary, self.path)
        self._rewrite = False


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
        base = git_dir / "modelgit" if git_dir else None
        self.digests = BlobCache(base / "sha256" if base else None, _sound_digest)
        self.signatures = BlobCache(base / "onnx-signature" if base else None, _sound_signature)
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
