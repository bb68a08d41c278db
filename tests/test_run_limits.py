"""`eval` and `run` have a wall-clock limit (issue 9, point 3): a model that loads and passes the
model check on zeros but runs for ever on real data is stopped by onnxruntime's own terminate flag
after MODELGIT_RUN_SECONDS, with a clear message and exit 1, and nothing is written."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import Repo, sha256_hex
from modelgit import sessions
from test_sessions import counting_body

CS = "registry/models/calling_score.yaml"


def slow_on_real_data(width: int = 10) -> bytes:
    """X [N, width] → X·1 [N, 1], plus a Loop whose trip count is max(X)·10^12: zero trips on the
    model check's zeros, for ever on any positive input."""
    body = counting_body()
    nodes = [helper.make_node("ReduceMax", ["X"], ["top"], keepdims=0),
             helper.make_node("Mul", ["top", "huge"], ["trips_f"]),
             helper.make_node("Cast", ["trips_f"], ["trips"], to=TensorProto.INT64),
             helper.make_node("Loop", ["trips", "cond", "start"], ["total"], body=body),
             helper.make_node("MatMul", ["X", "w"], ["xw"]),
             helper.make_node("Mul", ["total", "zero"], ["nothing"]),
             helper.make_node("Add", ["xw", "nothing"], ["variable"])]
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("huge", TensorProto.FLOAT, [], [1e12]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
         helper.make_tensor("start", TensorProto.FLOAT, [1], [0.0]),
         helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
         helper.make_tensor("w", TensorProto.FLOAT, [width, 1], [1.0] * width)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def slow_version(example_repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """The example with a staging version v9-slow of calling_score that never ends on real data."""
    monkeypatch.setenv("MODELGIT_RUN_SECONDS", "1")
    r = example_repo
    data = slow_on_real_data()
    r.write("registry/artifacts/slow.onnx", data)
    text = r.read(CS).replace("traffic:", (
        "  - version: v9-slow\n    status: staging\n"
        f"    artifact: {{path: registry/artifacts/slow.onnx, sha256: {sha256_hex(data)}}}\ntraffic:"), 1)
    r.write(CS, text)
    r.commit("a version that never ends on real data")
    return r


def test_the_slow_model_passes_the_model_check(slow_version: Repo, cli: Any) -> None:
    # The point of the limit: the child-process check runs zeros, and zeros end at once.
    code, out, err = cli("-C", str(slow_version.root), "validate")
    assert code == 0, out + err


def test_eval_stops_at_the_wall_clock_limit(slow_version: Repo, cli: Any) -> None:
    code, out, err = cli("-C", str(slow_version.root), "eval", "calling_score", "v9-slow")
    assert code == 1 and "Traceback" not in out + err
    assert "calling_score:v9-slow on dataset registry/datasets/calling_score_eval.npz ran longer than " \
           "the 1-second limit and was stopped" in err
    assert "MODELGIT_RUN_SECONDS" in err
    assert not (slow_version.root / "registry/evaluations/calling_score/v9-slow.json").exists()


def test_run_stops_at_the_wall_clock_limit(slow_version: Repo, cli: Any, tmp_path: Any) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 10), dtype=np.float32))
    code, out, err = cli("-C", str(slow_version.root), "run", "calling_score:v9-slow", "--input", str(x))
    assert code == 1 and "Traceback" not in out + err
    assert "calling_score:v9-slow ran longer than the 1-second limit and was stopped" in err
    assert out == ""


def test_run_within_the_limit_answers(slow_version: Repo, cli: Any, tmp_path: Any) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 10), dtype=np.float32))  # zero trips: answers at once
    code, out, err = cli("-C", str(slow_version.root), "run", "calling_score:v9-slow", "--input", str(x))
    assert code == 0, err
    assert '"outputs": [[[0.0], [0.0]]]' in out  # one output: X·1 of zeros


@pytest.mark.parametrize(("text", "expected"), [("", 600.0), ("2.5", 2.5), (" 30 ", 30.0), ("1_000", 1000.0)])
def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch, text: str, expected: float) -> None:
    monkeypatch.setenv("MODELGIT_RUN_SECONDS", text)
    assert sessions.env_number("MODELGIT_RUN_SECONDS", sessions.DEFAULT_RUN_SECONDS) == expected


@pytest.mark.parametrize("text", ["abc", "4G", "0", "-5", "inf", "nan"])
def test_a_mistyped_limit_is_an_error_not_the_default(monkeypatch: pytest.MonkeyPatch, text: str,
                                                       example_repo: Repo, cli: Any) -> None:
    monkeypatch.setenv("MODELGIT_ONNX_MEMORY", text)
    monkeypatch.setattr(sessions, "_learnt", {})
    code, out, err = cli("-C", str(example_repo.root), "validate")
    assert code == 2 and "Traceback" not in out + err
    assert f"MODELGIT_ONNX_MEMORY={text!r} is not a positive number" in err


def test_a_failure_to_read_in_the_child_is_transient_never_a_fact(tmp_path: Any) -> None:
    results: list[Any] = [None]
    sessions._run_child([str(tmp_path / "gone.onnx")], [0], results, sessions.Limits(seconds=20))
    (found,) = results
    assert found.signature is None and found.transient is True and found.limit is None
