"""The runtime loader: Registry.open on a path or a git URL, routing to sessions, pins, hosted
versions, integrity (sha256 before onnxruntime), the session cache, fallbacks, and the CLI verbs
``route`` and ``run``. Expected outputs are computed with numpy from each version's W and b."""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from conftest import Repo
from modelgit import HostedModel, Registry, sessions
from modelgit.errors import InvalidError, UsageError
from modelgit.runtime.router import RouteTable
from modelgit.spec import FileArtifact
from runtime_support import (
    KEYS,
    SALT,
    RegistryRepo,
    V,
    expected,
    linear_onnx,
    model_bytes,
    refuse_when_optimizing,
    sample_input,
    sha256,
    standard,
    which,
)


# -- opening -------------------------------------------------------------------------------------
def test_open_local_repo_routes_and_runs_each_version(score: RegistryRepo) -> None:
    reg = Registry.open(score.repo.root, ref="main")
    assert reg.commit == score.repo.head()
    assert reg.models() == ["score"]
    x = sample_input(4)
    table = RouteTable("score", {"v1": 90, "v2": 10}, SALT)
    seen = Counter()
    for key in KEYS:
        version = reg.route("score", key=key)
        assert version == table.choose(key)
        assert reg.route("score", key=key) == version  # sticky
        k = {"v1": 1, "v2": 2}[version]
        np.testing.assert_array_equal(reg.run("score", x, key=key)[0], expected(k, x))
        np.testing.assert_array_equal(reg.run("score", {"x": x}, key=key)[0], expected(k, x))
        assert reg.weight("score", key=key) == {"v1": 0.5, "v2": 0.25}[version]
        assert reg.session("score", key=key) is reg.session(f"score:{version}")
        seen[version] += 1
    assert seen["v1"] > seen["v2"] > 0
    info = reg.info()
    assert info["commit"] == score.repo.head()
    model = info["models"]["score"]
    assert model["active"] == "v1" and model["serving"] is True
    assert model["traffic"] == {"v1": 90.0, "v2": 10.0}
    assert model["versions"] == {"v1": "active", "v2": "staging"}
    assert model["loaded"] == ["v1", "v2"]
    assert model["errors"] == {} and model["fallbacks"] == {}
    assert reg.info("score")["commit"] == reg.commit


def test_output_names_and_pinned_runs(score: RegistryRepo) -> None:
    reg = Registry.open(score.repo.root)
    x = sample_input(3, seed=5)
    np.testing.assert_array_equal(reg.run("score:v2", x, output_names=["y"])[0], expected(2, x))
    np.testing.assert_array_equal(reg.run("score:v1", x, key="anyone")[0], expected(1, x))
    assert reg.route("score:v2", key="anyone") == "v2"
    assert reg.weight("score:v2") == 0.25
    from collections import OrderedDict

    np.testing.assert_array_equal(reg.run("score:v2", OrderedDict(x=x))[0], expected(2, x))
    np.testing.assert_array_equal(reg.run("score", OrderedDict(x=x), key="anyone")[0],
                                  expected({"v1": 1, "v2": 2}[reg.route("score", key="anyone")], x))
    assert reg.info("score")["run_errors"] == {}


def test_the_worktree_is_never_read(score: RegistryRepo) -> None:
    repo = score.repo
    reg = Registry.open(repo.root, ref="main")
    x = sample_input()
    before = {key: reg.route("score", key=key) for key in KEYS}
    # Uncommitted edits: all traffic to v2, and v1's artifact replaced by another model.
    text = repo.read("registry/models/score.yaml")
    repo.write("registry/models/score.yaml", text.replace("v1: 90", "v1: 0").replace("v2: 10", "v2: 100"))
    repo.write("registry/artifacts/score_v1.onnx", model_bytes(7))
    assert reg.reload() is False
    assert {key: reg.route("score", key=key) for key in KEYS} == before
    np.testing.assert_array_equal(reg.run("score:v1", x)[0], expected(1, x))
    fresh = Registry.open(repo.root, ref="main")  # a new process would not see them either
    assert {key: fresh.route("score", key=key) for key in KEYS} == before
    np.testing.assert_array_equal(fresh.run("score:v1", x)[0], expected(1, x))
    assert fresh.info()["refused"] == [] and reg.info()["refused"] == []


def test_open_at_an_older_ref_and_unknown_ref(score: RegistryRepo) -> None:
    first = score.repo.head()
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
    score.commit("50/50")
    score.repo.git("tag", "old", first)
    reg = Registry.open(score.repo.root, ref="old")
    assert reg.commit == first
    assert reg.info("score")["traffic"] == {"v1": 90.0, "v2": 10.0}
    with pytest.raises(UsageError, match="unknown git ref 'nope'"):
        Registry.open(score.repo.root, ref="nope")


def test_open_a_git_url_clones_into_the_cache(score: RegistryRepo, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(score.repo.root), str(bare)], check=True)
    cache = tmp_path / "cache"
    reg = Registry.open(bare.as_uri(), ref="main", cache_dir=cache)
    assert reg.commit == score.repo.head()
    clones = list(cache.iterdir())
    assert len(clones) == 1 and (clones[0] / "HEAD").exists()
    x = sample_input()
    np.testing.assert_array_equal(reg.run("score:v2", x)[0], expected(2, x))
    # a second open reuses the clone (and fetches)
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
    new = score.commit("50/50")
    score.repo.git("push", "-q", str(bare), "main")
    again = Registry.open(bare.as_uri(), ref="main", cache_dir=cache)
    assert again.commit == new
    assert list(cache.iterdir()) == clones
    assert reg.reload() is True and reg.commit == new
    with pytest.raises(UsageError, match="cannot clone"):
        Registry.open((tmp_path / "missing.git").as_uri(), cache_dir=cache)


def test_unknown_model_and_bad_pins(score: RegistryRepo) -> None:
    score.model("score", [V("v0", "archived", k=0), V("v1", "active", k=1),
                          V("v2", "staging", k=2)], {"v1": 90, "v2": 10})
    score.commit("with an archived version")
    reg = Registry.open(score.repo.root)
    with pytest.raises(UsageError, match="unknown model 'scor'") as info:
        reg.run("scor", sample_input())
    assert "score" in info.value.hint
    with pytest.raises(UsageError, match="has no version 'v9'"):
        reg.session("score:v9")
    with pytest.raises(UsageError, match="has no version 'v9'"):
        reg.route("score:v9")
    with pytest.raises(InvalidError, match="archived"):
        reg.session("score:v0")
    with pytest.raises(InvalidError, match="archived"):
        reg.run("score:v0", sample_input())


def test_deprecated_versions_load_by_pin_only(repo: Repo) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("score", [V("v1", "deprecated", k=1, weight=0.1), V("v2", "active", k=2)])
    reg_repo.commit()
    reg = Registry.open(repo.root, preload=True)  # loads what the split serves, nothing else
    x = sample_input()
    assert {reg.route("score", key=k) for k in KEYS} == {"v2"}
    assert reg.info("score")["loaded"] == ["v2"]  # deprecated: loaded on demand
    np.testing.assert_array_equal(reg.run("score:v1", x)[0], expected(1, x))
    assert reg.weight("score:v1") == 0.1
    assert reg.info("score")["loaded"] == ["v1", "v2"]


def test_hosted_versions_resolve_to_a_hosted_model(repo: Repo) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("chat/llm", [V("1.0.0", "deprecated", provider="openrouter"),
                                V("1.1.0", "active", provider="openrouter", weight=1.0)],
                   task="generation")
    reg_repo.model("score", [V("v1", "active", k=1)])
    reg_repo.commit()
    reg = Registry.open(repo.root)
    hosted = reg.session("chat/llm", key="u")
    assert hosted == HostedModel("chat/llm", "1.1.0", "openrouter", "openrouter/1.1.0")
    assert reg.session("chat/llm:1.0.0") == HostedModel("chat/llm", "1.0.0", "openrouter",
                                                        "openrouter/1.0.0")
    assert reg.weight("chat/llm") == 1.0
    with pytest.raises(UsageError, match="hosted by openrouter"):
        reg.run("chat/llm", sample_input())
    with pytest.raises(UsageError, match="hosted by openrouter"):
        reg.run("chat/llm:1.0.0", sample_input())


def test_the_example_registry_serves(example_repo: Repo) -> None:
    reg = Registry.open(example_repo.root)
    x = np.zeros((2, 10), dtype=np.float32)
    out = reg.run("calling_score", x, key="user-1")
    assert out[0].shape == (2, 1)
    label, proba = reg.run("outcome_prediction", np.zeros((3, 30), dtype=np.float32))
    assert label.shape == (3,) and proba.shape == (3, 2)
    assert isinstance(reg.session("openrouter/qwen-2.5-7b-instruct"), HostedModel)


# -- integrity and the session cache ----------------------------------------------------------------
def test_a_tampered_artifact_never_reaches_onnxruntime(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    reg_repo = standard(repo)
    good, tampered = model_bytes(2), model_bytes(9)
    reg_repo.model("score", [V("v1", "active", k=1), V("v2", "staging", data=tampered, sha=sha256(good))],
                   {"v1": 90, "v2": 10})
    reg_repo.commit("v2's file is not the one recorded")
    seen = refuse_when_optimizing(monkeypatch, b"")
    probed: list[bytes] = []  # what validation's model check (a child process) was given
    real_probe = sessions.probe_many
    monkeypatch.setattr(sessions, "_learnt", {})
    monkeypatch.setattr(sessions, "probe_many", lambda blobs, limits=None: probed.extend(blobs) or
                        real_probe(blobs, limits))
    with pytest.raises(InvalidError, match="invalid") as info:
        Registry.open(repo.root)
    assert "sha256 mismatch" in info.value.render()
    assert tampered not in seen and tampered not in probed
    assert model_bytes(1) in probed  # v1 was checked (validation) and is fine


def test_session_for_verifies_the_digest_itself(score: RegistryRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry.open(score.repo.root)
    seen = refuse_when_optimizing(monkeypatch, b"")
    snapshot = reg._state.snapshot
    wrong = FileArtifact(path="registry/artifacts/score_v1.onnx", sha256="ab" * 32)
    with pytest.raises(InvalidError, match="does not match the recorded"):
        reg._builder.session_for(snapshot, wrong)
    assert seen == []
    missing = FileArtifact(path="registry/artifacts/nope.onnx", sha256="ab" * 32)
    with pytest.raises(InvalidError, match="does not exist"):
        reg._builder.session_for(snapshot, missing)


def test_sessions_are_cached_by_sha256_and_shared(repo: Repo) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    same = model_bytes(3)
    reg_repo.model("score", [
        V("v1", "active", data=same),                       # registry/artifacts/score_v1.onnx
        V("v2", "staging", data=same),                      # a copy under another path
        V("v3", "staging", data=same, path="registry/artifacts/score_v1.onnx"),  # the same path
        V("v4", "staging", k=4),
    ], {"v1": 40, "v2": 30, "v3": 20, "v4": 10})
    reg_repo.model("other", [V("a", "active", data=same)])
    reg_repo.commit()
    reg = Registry.open(repo.root)
    first = reg.session("score:v1")
    assert reg.session("score:v2") is first
    assert reg.session("score:v3") is first
    assert reg.session("other") is first
    assert reg.session("score:v4") is not first
    assert set(reg._builder.sessions) == {sha256(same), sha256(model_bytes(4))}
    x = sample_input()
    for version in ("v1", "v2", "v3"):
        np.testing.assert_array_equal(reg.run(f"score:{version}", x)[0], expected(3, x))


def test_session_options_and_providers_are_used(score: RegistryRepo) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    reg = Registry.open(score.repo.root, session_options=options, providers=["CPUExecutionProvider"])
    for version in ("v1", "v2"):
        session = reg.session(f"score:{version}")
        assert session.get_session_options().intra_op_num_threads == 1
        assert session.get_session_options().inter_op_num_threads == 1
        assert session.get_providers() == ["CPUExecutionProvider"]


def test_default_sessions_do_not_spin_and_given_options_are_kept(score: RegistryRepo) -> None:
    # onnxruntime's default lets every session's pool spin after a run; a registry of many models
    # turns that off. Options the caller passes are used as given.
    keys = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")
    session = Registry.open(score.repo.root).session("score:v1")
    assert [session.get_session_options().get_session_config_entry(k) for k in keys] == ["0", "0"]
    spinning = ort.SessionOptions()
    spinning.add_session_config_entry(keys[0], "1")
    session = Registry.open(score.repo.root, session_options=spinning).session("score:v1")
    assert session.get_session_options().get_session_config_entry(keys[0]) == "1"


# -- fallbacks ----------------------------------------------------------------------------------------
def _routed_to(reg: Registry, version: str) -> list[str]:
    return [k for k in KEYS if reg.route("score", key=k) == version]


def test_a_uri_staging_version_falls_back_to_the_active_one(repo: Repo) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("score", [V("v1", "active", k=1), V("v2", "staging", uri="s3://bucket/v2.onnx")],
                   {"v1": 50, "v2": 50})
    reg_repo.commit()
    reg = Registry.open(repo.root)
    to_v2 = _routed_to(reg, "v2")
    assert 150 < len(to_v2) < 250
    x = sample_input()
    for key in KEYS:
        np.testing.assert_array_equal(reg.run("score", x, key=key)[0], expected(1, x))
    assert reg.resolve("score", to_v2[0]) == ("v2", "v1")
    info = reg.info("score")
    assert "not fetched" in info["errors"]["v2"]
    assert info["fallbacks"] == {"v2": len(to_v2)}
    assert info["loaded"] == ["v1"] and info["serving"] is True
    assert reg.session("score", key=to_v2[0]) is reg.session("score:v1")
    assert reg.weight("score", key=to_v2[0]) == reg.weight("score:v1")
    with pytest.raises(InvalidError, match="not fetched"):
        reg.session("score:v2")


def test_a_version_onnxruntime_refuses_when_optimising_falls_back(
        repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_when_optimizing(monkeypatch, model_bytes(2))
    reg_repo = standard(repo, {"v1": 50, "v2": 50})
    reg_repo.commit()
    reg = Registry.open(repo.root, preload=True)  # validation (optimisations off) accepts v2
    info = reg.info("score")
    assert "optimizer failed (simulated)" in info["errors"]["v2"]
    x = sample_input()
    answers = Counter(which(reg.run("score", x, key=k), x, [1, 2]) for k in KEYS)
    assert answers == Counter({1: len(KEYS)})
    assert reg.info("score")["fallbacks"] == {"v2": len(_routed_to(reg, "v2"))}
    # with optimisations off the same version loads and serves its share
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = Registry.open(repo.root, session_options=options)
    answers = Counter(which(plain.run("score", x, key=k), x, [1, 2]) for k in KEYS)
    assert answers[2] == len(_routed_to(plain, "v2")) > 0


def test_a_staging_version_failing_at_run_time_falls_back(repo: Repo) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    wide = linear_onnx(np.ones((4, 2), np.float32), np.zeros(2, np.float32))  # takes 4 features
    reg_repo.model("score", [V("v1", "active", k=1), V("v2", "staging", data=wide)], {"v1": 50, "v2": 50})
    reg_repo.commit()
    reg = Registry.open(repo.root)
    x = sample_input()
    to_v2 = _routed_to(reg, "v2")
    for key in to_v2[:20]:
        np.testing.assert_array_equal(reg.run("score", x, key=key)[0], expected(1, x))
    info = reg.info("score")
    assert info["run_errors"]["v2"]["count"] == 20
    assert "x" in info["run_errors"]["v2"]["last"]
    with pytest.raises(Exception, match=r"dimension|shape|Got"):
        reg.run("score:v2", x)  # a pin never falls back
    # an input nobody can take fails with the active version's error
    with pytest.raises(Exception, match=r"dimension|shape|Got"):
        reg.run("score", np.ones((1, 5), np.float32), key=to_v2[0])


def test_a_model_whose_active_version_is_a_uri_cannot_serve_but_others_do(repo: Repo) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("remote", [V("v1", "active", uri="https://models.example/v1.onnx")])
    reg_repo.model("score", [V("v1", "active", k=1)])
    reg_repo.commit()
    reg = Registry.open(repo.root)
    x = sample_input()
    np.testing.assert_array_equal(reg.run("score", x, key="k")[0], expected(1, x))
    assert reg.route("remote", key="k") == "v1"
    with pytest.raises(InvalidError, match="cannot serve"):
        reg.run("remote", x, key="k")
    info = reg.info("remote")
    assert info["serving"] is False and "not fetched" in info["errors"]["v1"]


def test_without_a_key_versions_are_drawn_in_proportion(repo: Repo) -> None:
    reg_repo = standard(repo, {"v1": 70, "v2": 30})
    reg_repo.commit()
    x = sample_input(1)
    reg = Registry.open(repo.root, rng=random.Random(42))
    first = [which(reg.run("score", x), x, [1, 2]) for _ in range(4000)]
    share = first.count(2) / len(first)
    assert 0.27 < share < 0.33
    reg = Registry.open(repo.root, rng=random.Random(42))
    assert [which(reg.run("score", x), x, [1, 2]) for _ in range(4000)] == first
    reg = Registry.open(repo.root, rng=random.Random(42))
    assert [reg.route("score") for _ in range(4000)] == [f"v{k}" for k in first]


# -- CLI ------------------------------------------------------------------------------------------------
def test_cli_route(score: RegistryRepo, cli: Any) -> None:
    root = str(score.repo.root)
    table = RouteTable("score", {"v1": 90, "v2": 10}, SALT)
    for key in KEYS[:30]:
        code, out, _ = cli("-C", root, "route", "score", "--key", key)
        assert (code, out.strip()) == (0, table.choose(key))
    key = next(k for k in KEYS if table.choose(k) == "v2")
    code, out, _ = cli("-C", root, "route", "score", "--key", key, "--json")
    assert code == 0
    data = json.loads(out)
    assert data == {"model": "score", "key": key, "version": "v2", "serving": "v2",
                    "commit": score.repo.head(), "weight": 0.25}
    code, out, _ = cli("-C", root, "route", "score:v1", "--json")
    assert code == 0 and json.loads(out)["version"] == "v1" and json.loads(out)["weight"] == 0.5
    code, _, err = cli("-C", root, "route", "nope", "--key", "k")
    assert code == 2 and "unknown model 'nope'" in err


def test_cli_route_reports_the_fallback(repo: Repo, cli: Any) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("score", [V("v1", "active", k=1, weight=0.5), V("v2", "staging", uri="s3://b/v2.onnx")],
                   {"v1": 50, "v2": 50})
    reg_repo.commit()
    key = next(k for k in KEYS if RouteTable("score", {"v1": 50, "v2": 50}, SALT).choose(k) == "v2")
    code, out, err = cli("-C", str(repo.root), "route", "score", "--key", key)
    assert code == 0 and out.strip() == "v2" and "'v1' serves it" in err
    code, out, _ = cli("-C", str(repo.root), "route", "score", "--key", key, "--json")
    assert code == 0 and json.loads(out)["serving"] == "v1" and json.loads(out)["weight"] == 0.5


def test_cli_run(score: RegistryRepo, cli: Any, tmp_path: Path) -> None:
    root = str(score.repo.root)
    x = sample_input(3, seed=9)
    np.save(tmp_path / "x.npy", x)
    table = RouteTable("score", {"v1": 90, "v2": 10}, SALT)
    for key in ("alice", next(k for k in KEYS if table.choose(k) == "v2")):
        code, out, err = cli("-C", root, "run", "score", "--input", str(tmp_path / "x.npy"), "--key", key)
        assert code == 0, err
        data = json.loads(out)
        k = {"v1": 1, "v2": 2}[table.choose(key)]
        assert data["version"] == table.choose(key) and data["commit"] == score.repo.head()
        np.testing.assert_array_equal(np.array(data["outputs"][0], np.float32), expected(k, x))
    code, out, _ = cli("-C", root, "run", "score:v2", "--input", str(tmp_path / "x.npy"))
    assert code == 0
    np.testing.assert_array_equal(np.array(json.loads(out)["outputs"][0], np.float32), expected(2, x))
    np.savez(tmp_path / "x.npz", x=x)
    code, out, _ = cli("-C", root, "run", "score:v1", "--input", str(tmp_path / "x.npz"))
    assert code == 0
    np.testing.assert_array_equal(np.array(json.loads(out)["outputs"][0], np.float32), expected(1, x))


def test_cli_run_falls_back_like_the_runtime(repo: Repo, cli: Any, tmp_path: Path) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("score", [V("v1", "active", k=1), V("v2", "staging", uri="s3://b/v2.onnx")],
                   {"v1": 50, "v2": 50})
    reg_repo.commit()
    key = next(k for k in KEYS if RouteTable("score", {"v1": 50, "v2": 50}, SALT).choose(k) == "v2")
    x = sample_input()
    np.save(tmp_path / "x.npy", x)
    code, out, err = cli("-C", str(repo.root), "run", "score", "--input", str(tmp_path / "x.npy"),
                         "--key", key)
    assert code == 0, err
    data = json.loads(out)
    assert data["version"] == "v1" and data["routed"] == "v2" and "not fetched" in data["fallback"]
    np.testing.assert_array_equal(np.array(data["outputs"][0], np.float32), expected(1, x))


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), "cannot read it as .npy/.npz"),
    (lambda p: p.write_bytes(b"not an array at all"), "cannot read it as .npy/.npz"),
    (lambda p: p.write_bytes(np.lib.format.MAGIC_PREFIX + b"\x01\x00garbage"), "cannot read it as .npy/.npz"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "cannot read it as .npy/.npz"),
    (lambda p: np.save(p, np.ones((2, 4), np.float32)), "input 'x' must have shape [?, 3], got [2, 4]"),
    (lambda p: np.save(p, np.ones(3, np.float32)), "input 'x' must have shape [?, 3], got [3]"),
    (lambda p: np.save(p, np.ones((2, 3), np.float64)), "input 'x' must be float32, got float64"),
    (lambda p: np.save(p, np.ones((2, 3), np.int64)), "input 'x' must be float32, got int64"),
])
def test_cli_run_bad_inputs_exit_2(score: RegistryRepo, cli: Any, tmp_path: Path, make: Any,
                                   message: str) -> None:
    path = tmp_path / "in.npy"
    make(path)
    code, out, err = cli("-C", str(score.repo.root), "run", "score", "--input", str(path), "--key", "k")
    assert code == 2, err
    assert out == ""
    assert message in err and str(path) in err
    assert "hint:" in err


def test_cli_run_other_usage_errors(score: RegistryRepo, cli: Any, tmp_path: Path) -> None:
    root = str(score.repo.root)
    code, _, err = cli("-C", root, "run", "score", "--input", str(tmp_path / "missing.npy"))
    assert code == 2 and "no such file" in err
    np.savez(tmp_path / "wrong.npz", features=sample_input())
    code, _, err = cli("-C", root, "run", "score", "--input", str(tmp_path / "wrong.npz"))
    assert code == 2 and "the model takes inputs x; the .npz has features" in err
    np.save(tmp_path / "x.npy", sample_input())
    code, _, err = cli("-C", root, "run", "nope", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "unknown model 'nope'" in err
    code, _, err = cli("-C", root, "run", "score:v7", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "has no version 'v7'" in err
    code, _, err = cli("-C", root, "run", "score", "--ref", "nope", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "unknown git ref" in err


def test_cli_run_hosted_model_is_a_usage_error(repo: Repo, cli: Any, tmp_path: Path) -> None:
    reg_repo = RegistryRepo(repo)
    reg_repo.settings()
    reg_repo.model("llm", [V("1.0", "active", provider="openrouter")], task="generation")
    reg_repo.commit()
    np.save(tmp_path / "x.npy", sample_input())
    code, _, err = cli("-C", str(repo.root), "run", "llm", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "hosted by openrouter" in err


def test_open_copies_nothing_into_the_worktree(score: RegistryRepo) -> None:
    before = sorted(p.relative_to(score.repo.root) for p in score.repo.root.rglob("*") if ".git" not in p.parts)
    status = score.repo.git("status", "--porcelain")
    Registry.open(score.repo.root).run("score", sample_input(), key="k")
    after = sorted(p.relative_to(score.repo.root) for p in score.repo.root.rglob("*") if ".git" not in p.parts)
    assert before == after and score.repo.git("status", "--porcelain") == status



def test_registry_routes_are_the_same_in_another_process(score: RegistryRepo) -> None:
    import sys

    child = ("import json, sys\nfrom modelgit import Registry\nreg = Registry.open(sys.argv[1])\n"
             "print(json.dumps([reg.route('score', key=f'user-{i}') for i in range(400)]))")
    proc = subprocess.run([sys.executable, "-c", child, str(score.repo.root)], capture_output=True,
                          text=True, check=True)
    reg = Registry.open(score.repo.root)
    assert json.loads(proc.stdout) == [reg.route("score", key=k) for k in KEYS]


@pytest.mark.parametrize(("model", "message", "hint"), [
    ("score:", "'score:' has no version after ':'",
     "write 'score' to follow the traffic split, or 'score:VERSION' to pin a version"),
    (":v1", "':v1' has no model before ':'",
     "write 'MODEL' to follow the traffic split, or 'MODEL:VERSION' to pin a version"),
])
def test_an_empty_pin_is_a_usage_error(score: RegistryRepo, cli: Any, model: str, message: str,
                                       hint: str) -> None:
    reg = Registry.open(score.repo.root)
    for call in (lambda: reg.route(model), lambda: reg.resolve(model), lambda: reg.session(model),
                 lambda: reg.weight(model), lambda: reg.run(model, sample_input())):
        with pytest.raises(UsageError) as info:
            call()
        assert (info.value.message, info.value.hint) == (message, hint)
    code, out, err = cli("-C", str(score.repo.root), "route", model)
    assert (code, out, err) == (2, "", f"error: {message}\nhint: {hint}\n")
