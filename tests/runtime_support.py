"""Helpers for the runtime tests: tiny ONNX models built with onnx.helper and registries in git.

Every test model is ``y = x · W + b`` with small integer W and b, so with integer-valued float32
inputs onnxruntime and numpy compute the same numbers exactly, and the output names the version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from conftest import Repo

IN, OUT = 3, 2
SALT = "test-salt"
KEYS = [f"user-{i}" for i in range(400)]


def weights(k: int) -> tuple[np.ndarray, np.ndarray]:
    """W and b of version number ``k``: different for every k (column 0 of W is k + 1)."""
    w = np.array([[k + 1, 1], [2, -k], [-1, 3]], dtype=np.float32)
    b = np.array([10 * k, -k], dtype=np.float32)
    return w, b


def linear_onnx(w: np.ndarray, b: np.ndarray, input_name: str = "x", output_name: str = "y") -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, w.shape[0]])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [None, w.shape[1]])
    nodes = [helper.make_node("MatMul", [input_name, "W"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], [output_name])]
    graph = helper.make_graph(nodes, "linear", [x], [y], [numpy_helper.from_array(w, "W"),
                                                         numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def model_bytes(k: int) -> bytes:
    return linear_onnx(*weights(k))


def expected(k: int, x: np.ndarray) -> np.ndarray:
    """What version number ``k`` answers for ``x``, computed with numpy (float64, exact here)."""
    w, b = weights(k)
    return (x.astype(np.float64) @ w.astype(np.float64) + b).astype(np.float32)


def sample_input(rows: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-5, 6, size=(rows, IN)).astype(np.float32)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class V:
    """One version in a model file. ``k`` picks the ONNX file (``model_bytes(k)``); ``uri`` or
    ``provider`` make a URI or hosted artifact instead; ``data`` overrides the file's bytes."""

    version: str
    status: str = "staging"
    k: int | None = None
    weight: float | None = None
    uri: str | None = None
    provider: str | None = None
    data: bytes | None = None
    sha: str | None = None  # recorded sha256 (default: the file's)
    path: str | None = None  # artifact path (default: registry/artifacts/<model>_<version>.onnx)


@dataclass
class RegistryRepo:
    """Writes a registry into a test repository and commits it."""

    repo: Repo
    salt: str = SALT
    files: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> None:
        self.repo.write("registry/modelgit.yaml",
                        f"schema_version: 1\nname: test\nrouting:\n  salt: {self.salt}\n")

    def model(self, name: str, versions: list[V], traffic: dict[str, float] | None = None,
              task: str = "regression") -> None:
        items = []
        for v in versions:
            item: dict[str, Any] = {"version": v.version, "status": v.status}
            if v.weight is not None:
                item["weight"] = v.weight
            if v.provider is not None:
                item["artifact"] = {"provider": v.provider, "model_id": f"{v.provider}/{v.version}"}
            elif v.uri is not None:
                item["artifact"] = {"uri": v.uri, "sha256": v.sha or "0" * 64}
            else:
                data = v.data if v.data is not None else model_bytes(v.k if v.k is not None else 0)
                path = v.path or f"registry/artifacts/{name.replace('/', '_')}_{v.version}.onnx"
                self.repo.write(path, data)
                item["artifact"] = {"path": path, "sha256": v.sha or sha256(data)}
            items.append(item)
        doc: dict[str, Any] = {"name": name, "task": task, "versions": items}
        if traffic is not None:
            doc["traffic"] = {k: v for k, v in traffic.items()}
        self.repo.write(f"registry/models/{name}.yaml", yaml.safe_dump(doc, sort_keys=False))

    def commit(self, message: str = "registry change") -> str:
        return self.repo.commit(message)


def standard(repo: Repo, traffic: dict[str, float] | None = None) -> RegistryRepo:
    """A registry with model ``score``: v1 active (k=1), v2 staging (k=2), default split 90/10."""
    reg = RegistryRepo(repo)
    reg.settings()
    reg.model("score", [V("v1", "active", k=1, weight=0.5), V("v2", "staging", k=2, weight=0.25)],
              traffic if traffic is not None else {"v1": 90, "v2": 10})
    return reg


def which(outputs: list[Any], x: np.ndarray, ks: list[int]) -> int:
    """The version number whose expected output equals ``outputs[0]`` (AssertionError if none)."""
    for k in ks:
        if np.array_equal(outputs[0], expected(k, x)):
            return k
    raise AssertionError(f"output {outputs[0]!r} matches no version in {ks}")


def refuse_when_optimizing(monkeypatch: pytest.MonkeyPatch, bad: bytes) -> list[bytes]:
    """Make onnxruntime refuse ``bad`` unless graph optimisations are off (as validation runs
    it), the way an optimiser bug would; returns the list of every byte string it was given."""
    real = ort.InferenceSession
    seen: list[bytes] = []

    def fake(data: Any, sess_options: Any = None, providers: Any = None, **kwargs: Any) -> Any:
        seen.append(data)
        level = sess_options.graph_optimization_level if sess_options is not None \
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if data == bad and level != ort.GraphOptimizationLevel.ORT_DISABLE_ALL:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : optimizer failed (simulated)")
        return real(data, sess_options=sess_options, providers=providers, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", fake)
    return seen
