"""The guarded door to onnxruntime: a new artifact is tried in a child process under a memory and a
time limit, and what breaks a limit is refused with the limit it broke (issue 9, point 3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from conftest import affine_onnx
from modelgit import sessions

SMALL = sessions.Limits(memory_bytes=768 * 1024**2, seconds=20)


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def constant_of_shape_bomb(count: int = 2**28) -> bytes:
    """About 100 bytes that ask for count float32 values (1 GiB for 2^28) when run."""
    shape = helper.make_tensor("s", TensorProto.INT64, [1], [count])
    node = helper.make_node("ConstantOfShape", ["s"], ["y"],
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    return _model(helper.make_graph([node], "bomb", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
                                    [shape]))


def counting_body() -> onnx.GraphProto:
    """A Loop body that adds 1 to a float counter on every trip."""
    return helper.make_graph(
        [helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )


def endless_loop(trips: int = 2**62) -> bytes:
    """A Loop that adds 1 to a counter ``trips`` times."""
    loop = helper.make_node("Loop", ["n", "cond", "start"], ["total"], body=counting_body())
    return _model(helper.make_graph(
        [loop], "endless", [], [helper.make_tensor_value_info("total", TensorProto.FLOAT, [1])],
        [helper.make_tensor("n", TensorProto.INT64, [], [trips]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
         helper.make_tensor("start", TensorProto.FLOAT, [1], [0.0])]))


def test_a_good_model_gives_the_signature_onnxruntime_reads() -> None:
    data = affine_onnx(np.ones(4), 1.0)
    found = sessions.probe(data, SMALL)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])

    def tensors(args: list) -> list[dict]:
        return [{"name": a.name, "type": a.type, "shape": [d if isinstance(d, int) else None for d in a.shape]}
                for a in args]

    expected = {"inputs": tensors(session.get_inputs()), "outputs": tensors(session.get_outputs())}
    assert found == sessions.Probe(expected)


def test_a_memory_bomb_is_refused_by_the_memory_limit_and_the_child_is_replaced() -> None:
    good = affine_onnx(np.ones(4), 1.0)
    results = sessions.probe_many([good, constant_of_shape_bomb(), good], SMALL)
    assert results[0].signature is not None and results[2].signature == results[0].signature
    bomb = results[1]
    assert (bomb.signature, bomb.limit, bomb.transient) == (None, "memory", False)
    assert "805,306,368-byte memory limit" in bomb.problem  # 768 MiB, written by the test above


def test_an_endless_loop_is_refused_by_the_time_limit() -> None:
    found = sessions.probe(endless_loop(), sessions.Limits(memory_bytes=SMALL.memory_bytes, seconds=3))
    assert (found.signature, found.limit) == (None, "time")
    assert "longer than 3 s" in found.problem


def test_bytes_that_are_no_model_are_refused_without_a_limit() -> None:
    found = sessions.probe(b"\x08\x01garbage" * 10, SMALL)
    assert found.signature is None and found.limit is None and not found.transient and found.problem


def test_validate_refuses_an_artifact_that_breaks_a_limit(example_repo: Any, cli: Any,
                                                           monkeypatch: Any) -> None:
    from conftest import sha256_hex

    monkeypatch.setenv("MODELGIT_ONNX_MEMORY", str(SMALL.memory_bytes))
    monkeypatch.setattr(sessions, "_learnt", {})
    r = example_repo
    bomb = constant_of_shape_bomb()
    r.write("registry/artifacts/bomb.onnx", bomb)
    text = r.read("registry/models/calling_score.yaml").replace("traffic:", (
        "  - version: v9-bomb\n    status: staging\n"
        f"    artifact: {{path: registry/artifacts/bomb.onnx, sha256: {sha256_hex(bomb)}}}\n"
        "    breaking_changes: [no inputs]\ntraffic:"), 1)
    r.write("registry/models/calling_score.yaml", text)
    r.commit("a version that asks for a gigabyte")
    code, out, err = cli("-C", str(r.root), "validate")
    assert code == 1 and "Traceback" not in out + err
    (line,) = [line for line in out.splitlines() if "bomb.onnx" in line]
    assert " ART005 artifact 'registry/artifacts/bomb.onnx' refused by the model check: " in line
    assert "805,306,368-byte memory limit" in line and "MODELGIT_ONNX_MEMORY" in line


def test_a_pass_cached_under_higher_limits_is_checked_again_under_lower_ones(example_repo: Any, cli: Any,
                                                                            monkeypatch: Any) -> None:
    monkeypatch.setattr(sessions, "_learnt", {})
    root = str(example_repo.root)
    assert cli("-C", root, "validate")[0] == 0  # passes under the defaults, facts cached by blob id
    calls: list[int] = []
    real = sessions.probe_many
    monkeypatch.setattr(sessions, "probe_many", lambda blobs, limits=None: calls.append(len(blobs)) or
                        real(blobs, limits))
    assert cli("-C", root, "validate")[0] == 0 and calls == []  # the same limits: nothing re-checked
    # 64 MiB of address space cannot even hold the interpreter and onnxruntime: every artifact
    # breaks it, which a cached pass under 2 GiB must not hide.
    monkeypatch.setenv("MODELGIT_ONNX_MEMORY", str(64 * 1024**2))
    code, out, _ = cli("-C", root, "validate")
    assert code == 1 and "ART005" in out, out and "67,108,864-byte memory limit" in out
    monkeypatch.setenv("MODELGIT_ONNX_MEMORY", str(4 * 1024**3))  # higher than the pass: still holds
    calls.clear()
    assert cli("-C", root, "validate")[0] == 0 and calls == []
