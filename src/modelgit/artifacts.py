"""Artifact facts that cost time to learn — sha256 and ONNX signature — cached by git blob id.

A blob id names content, so a cached fact about it is true forever: the caches live in
``.git/modelgit/`` (never in the working tree) as append-only lines, and a torn last line from a
killed process is simply ignored on the next read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from modelgit.errors import InvalidError

_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(.+)$")


class BlobCache:
    """A persistent map blob id → text, one ``blob<TAB>value`` line per entry."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._values: dict[str, str] | None = None
        self._new: list[tuple[str, str]] = []

    def _load(self) -> dict[str, str]:
        if self._values is None:
            self._values = {}
            if self.path is not None and self.path.exists():
                for line in self.path.read_text("utf-8", errors="replace").splitlines():
                    match = _LINE.match(line)
                    if match:
                        self._values[match.group(1)] = match.group(2)
        return self._values

    def get(self, blob: str) -> str | None:
        return self._load().get(blob)

    def put(self, blob: str, value: str) -> None:
        values = self._load()
        if values.get(blob) != value:
            values[blob] = value
            self._new.append((blob, value))

    def flush(self) -> None:
        if not self._new or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write call of whole lines in append mode: concurrent writers interleave lines,
            # never bytes within a line on a local file system; a torn line fails the regex.
            payload = "".join(f"{blob}\t{value}\n" for blob, value in self._new)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(payload)
        except OSError:
            pass  # a read-only .git only costs re-hashing next time
        self._new.clear()


class ArtifactFacts:
    """sha256 digests and ONNX signatures of blobs, computed once per blob id."""

    def __init__(self, git_dir: Path | None) -> None:
        base = git_dir / "modelgit" if git_dir else None
        self.digests = BlobCache(base / "sha256" if base else None)
        self.signatures = BlobCache(base / "onnx-signature" if base else None)

    def sha256(self, blob: str, data: bytes) -> str:
        cached = self.digests.get(blob)
        if cached is None:
            cached = hashlib.sha256(data).hexdigest()
            self.digests.put(blob, cached)
        return cached

    def signature(self, blob: str, data: bytes) -> dict[str, Any]:
        """The ONNX signature of a model file; InvalidError when onnxruntime cannot load it."""
        cached = self.signatures.get(blob)
        if cached is None:
            try:
                result: dict[str, Any] = {"ok": read_signature(data)}
            except InvalidError as exc:
                result = {"error": exc.message}
            cached = json.dumps(result, separators=(",", ":"))
            self.signatures.put(blob, cached)
        loaded = json.loads(cached)
        if "error" in loaded:
            raise InvalidError(loaded["error"])
        return loaded["ok"]

    def flush(self) -> None:
        self.digests.flush()
        self.signatures.flush()


def read_signature(data: bytes) -> dict[str, Any]:
    """Inputs and outputs of an ONNX model, as onnxruntime sees them.

    Graph optimisations are off: this only proves the file loads and reads its signature, and it
    keeps a constant-folding bomb (a 122-byte ConstantOfShape of 2^28) from costing a gigabyte.
    """
    if not data:
        raise InvalidError("the artifact is empty, not an ONNX model")
    os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeError types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidError(f"not a loadable ONNX model: {reason[:300]}") from None
    return {
        "inputs": [_tensor(arg) for arg in session.get_inputs()],
        "outputs": [_tensor(arg) for arg in session.get_outputs()],
    }


def _tensor(arg: Any) -> dict[str, Any]:
    shape = arg.shape if isinstance(arg.shape, list) else []
    return {"name": arg.name, "type": arg.type, "shape": [d if d != "" else None for d in shape]}

