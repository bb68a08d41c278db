"""Hot reload: reload() and watch() move only forward to valid commits; bad commits, rewritten
history and unreachable remotes are refused while the last good state keeps serving; sessions no
longer used are released; and requests never fail while 20 commits land under load."""

from __future__ import annotations

import gc
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import Repo
from modelgit import Registry
from runtime_support import (
    KEYS,
    RegistryRepo,
    V,
    expected,
    model_bytes,
    refuse_when_optimizing,
    sample_input,
    sha256,
    which,
)


def _answers(reg: Registry, x: np.ndarray, ks: list[int]) -> Counter[int]:
    return Counter(which(reg.run("score", x, key=key), x, ks) for key in KEYS)


def _refusals(reg: Registry) -> list[str]:
    return [r["reason"] for r in reg.info()["refused"]]


def test_reload_moves_to_a_descendant_commit(score: RegistryRepo) -> None:
    reg = Registry.open(score.repo.root, ref="main")
    x = sample_input()
    assert reg.reload() is False  # nothing new
    routes = {k: reg.route("score", key=k) for k in KEYS}
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 80, "v2": 20})
    new = score.commit("80/20")
    assert reg.reload() is True
    assert reg.commit == new and reg.info()["reloads"] == 1
    after = {k: reg.route("score", key=k) for k in KEYS}
    assert all(after[k] == "v2" for k in KEYS if routes[k] != after[k])  # only v1 → v2 moves
    assert sum(v == "v2" for v in after.values()) > sum(v == "v2" for v in routes.values())
    # promote v2: v1 deprecated, no traffic block → all to v2
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
    score.commit("promote v2")
    assert reg.reload() is True
    assert _answers(reg, x, [1, 2]) == Counter({2: len(KEYS)})
    np.testing.assert_array_equal(reg.run("score:v1", x)[0], expected(1, x))  # deprecated: by pin
    assert reg.info()["refused"] == []


def test_history_rewritten_is_refused(score: RegistryRepo) -> None:
    repo = score.repo
    first = repo.head()
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
    second = score.commit("promote v2")
    reg = Registry.open(repo.root, ref="main")
    assert reg.commit == second
    repo.git("reset", "-q", "--hard", first)  # "force-push back in time"
    assert reg.reload() is False
    assert reg.commit == second
    assert "does not descend from" in _refusals(reg)[-1]
    assert reg.info()["refused"][-1]["commit"] == first
    x = sample_input()
    assert _answers(reg, x, [1, 2]) == Counter({2: len(KEYS)})
    assert reg.reload() is False
    assert len(reg.info()["refused"]) == 1  # judged once, not re-logged on every poll
    # a sibling branch of history that diverged is refused too
    repo.git("commit", "-q", "--allow-empty", "-m", "diverged")
    assert reg.reload() is False and reg.commit == second
    assert len(reg.info()["refused"]) == 2


@pytest.mark.parametrize("breakage", ["schema", "checksum", "missing", "unloadable", "traffic"])
def test_an_invalid_commit_is_refused_and_the_last_good_keeps_serving(score: RegistryRepo,
                                                                      breakage: str) -> None:
    repo = score.repo
    reg = Registry.open(repo.root, ref="main")
    good = reg.commit
    x = sample_input()
    before = _answers(reg, x, [1, 2])
    if breakage == "schema":
        repo.write("registry/models/score.yaml",
                   repo.read("registry/models/score.yaml").replace("status: staging", "status: stagin"))
        reason = "stagin"
    elif breakage == "checksum":  # the same path, other bytes, the recorded sha256 unchanged
        repo.write("registry/artifacts/score_v2.onnx", model_bytes(9))
        reason = "sha256 mismatch"
    elif breakage == "missing":
        (repo.root / "registry/artifacts/score_v2.onnx").unlink()
        reason = "does not exist"
    elif breakage == "unloadable":
        junk = b"\x08\x07 this is not an onnx model"
        score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2), V("v3", "staging", data=junk)],
                    {"v1": 80, "v2": 10, "v3": 10})
        reason = "not a loadable ONNX model"
    else:
        score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 80, "v2": 30})
        reason = "traffic sums to 110"
    bad = score.commit(f"broken: {breakage}")
    assert reg.reload() is False
    assert reg.commit == good
    refused = reg.info()["refused"]
    assert refused[-1]["commit"] == bad and reason in refused[-1]["reason"]
    assert _answers(reg, x, [1, 2, 9]) == before
    # a later good commit on top of the bad one is accepted
    repo.git("checkout", "-q", good, "--", "registry")
    repo.git("rm", "-q", "--cached", "--ignore-unmatch", "registry/artifacts/score_v3.onnx")
    for leftover in (repo.root / "registry/artifacts").glob("score_v3.onnx"):
        leftover.unlink()
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
    fixed = score.commit("fixed")
    assert reg.reload() is True and reg.commit == fixed


def test_a_commit_that_would_stop_a_serving_model_is_refused(score: RegistryRepo,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry.open(score.repo.root, ref="main")
    good = reg.commit
    x = sample_input()
    # promote a new version that onnxruntime refuses with optimisations on (validation, which
    # runs with them off, accepts it)
    refuse_when_optimizing(monkeypatch, model_bytes(3))
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "staging", k=2), V("v3", "active", k=3),
                          V("v5", "staging", k=5)], {"v3": 50, "v5": 50})
    bad = score.commit("promote v3, v5 under test")
    assert reg.reload() is False
    assert reg.commit == good
    assert reg.info()["refused"][-1]["commit"] == bad
    assert "active version 'v3' cannot be loaded" in _refusals(reg)[-1]
    assert "optimizer failed (simulated)" in _refusals(reg)[-1]
    assert set(_answers(reg, x, [1, 2, 3, 5])) == {1, 2}
    # v5's session, created while the refused commit was being built, is not kept
    assert set(reg._builder.sessions) == {sha256(model_bytes(1)), sha256(model_bytes(2))}
    # promoting a URI version is refused the same way
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "staging", k=2), V("v3", "deprecated", k=3),
                          V("v5", "archived", k=5), V("v4", "active", uri="s3://b/v4.onnx")])
    score.commit("promote a URI")
    assert reg.reload() is False and reg.commit == good
    assert "not fetched" in _refusals(reg)[-1]


def test_unused_sessions_are_released(score: RegistryRepo) -> None:
    reg = Registry.open(score.repo.root, ref="main", preload=True)
    v1, v2, v3 = (sha256(model_bytes(k)) for k in (1, 2, 3))
    assert set(reg._builder.sessions) == {v1, v2}
    score.model("score", [V("v1", "active", k=1), V("v2", "archived", k=2), V("v3", "staging", k=3)],
                {"v1": 50, "v3": 50})
    score.commit("v2 archived, v3 under test")
    assert reg.reload() is True
    assert set(reg._builder.sessions) == {v1, v3}
    # a refused commit leaves no session behind
    score.model("score", [V("v1", "active", k=1), V("v2", "archived", k=2), V("v3", "staging", k=3),
                          V("v4", "staging", k=4)], {"v1": 50, "v3": 40, "v4": 20})
    score.commit("traffic sums to 110")
    assert reg.reload() is False
    assert set(reg._builder.sessions) == {v1, v3}
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "archived", k=2), V("v3", "active", k=3),
                          V("v4", "staging", k=4)], {"v3": 90, "v4": 10})
    score.commit("promote v3, v4 under test")
    assert reg.reload() is True
    assert set(reg._builder.sessions) == {v3, sha256(model_bytes(4))}
    reg.session("score:v1")  # a deprecated pin loads on demand
    assert v1 in reg._builder.sessions
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "archived", k=2), V("v3", "active", k=3),
                          V("v4", "archived", k=4)])
    score.commit("v4 archived")
    assert reg.reload() is True
    assert set(reg._builder.sessions) == {v3}


def _bare_remote(score: RegistryRepo, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(score.repo.root), str(bare)], check=True)
    return bare


def _push(repo: Repo, bare: Path, force: bool = False) -> None:
    repo.git("push", "-q", *(["--force"] if force else []), str(bare), "main")


def test_remote_reload_force_push_and_unreachable(score: RegistryRepo, tmp_path: Path) -> None:
    repo = score.repo
    bare = _bare_remote(score, tmp_path)
    first = repo.head()
    reg = Registry.open(bare.as_uri(), ref="main", cache_dir=tmp_path / "cache")
    x = sample_input()
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
    second = score.commit("promote v2")
    _push(repo, bare)
    assert reg.reload() is True and reg.commit == second
    # force-push back in time
    repo.git("reset", "-q", "--hard", first)
    _push(repo, bare, force=True)
    assert reg.reload() is False and reg.commit == second
    assert "does not descend from" in _refusals(reg)[-1]
    assert _answers(reg, x, [1, 2]) == Counter({2: len(KEYS)})
    # the remote disappears
    moved = bare.with_name("moved.git")
    bare.rename(moved)
    assert reg.reload() is False
    assert "git remote unreachable" in _refusals(reg)[-1]
    assert reg.commit == second
    assert _answers(reg, x, [1, 2]) == Counter({2: len(KEYS)})
    # it comes back with history that continues from what serves
    moved.rename(bare)
    repo.git("reset", "-q", "--hard", second)
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2), V("v3", "staging", k=3)],
                {"v2": 50, "v3": 50})
    third = score.commit("v3 under test")
    _push(repo, bare, force=True)
    assert reg.reload() is True and reg.commit == third
    assert set(_answers(reg, x, [2, 3])) == {2, 3}


def test_watch_picks_up_commits(score: RegistryRepo, tmp_path: Path) -> None:
    bare = _bare_remote(score, tmp_path)
    with Registry.open(bare.as_uri(), ref="main", cache_dir=tmp_path / "cache") as reg:
        reg.watch(interval=0.02)
        reg.watch(interval=0.02)  # idempotent
        score.model("score", [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
        new = score.commit("promote v2")
        _push(score.repo, bare)
        deadline = time.monotonic() + 10
        while reg.commit != new and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reg.commit == new
        x = sample_input()
        assert _answers(reg, x, [1, 2]) == Counter({2: len(KEYS)})
    assert not reg._reloader.watching


# -- reliability under load --------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _landing_plan(score: RegistryRepo) -> list[tuple[str, Any, set[int] | None]]:
    """20 commits: (message, how to write it, the versions serving if it is accepted or None
    when it must be refused). Version vK runs model_bytes(K)."""
    def model(versions: list[V], traffic: dict[str, float] | None = None) -> Any:
        return lambda: score.model("score", versions, traffic)

    def tamper(path: str, k: int) -> Any:
        return lambda: score.repo.write(path, model_bytes(k))

    def retraffic(text: str, new: str) -> Any:
        def edit() -> None:
            content = score.repo.read("registry/models/score.yaml")
            score.repo.write("registry/models/score.yaml", content.replace(text, new))
        return edit

    a = "registry/artifacts/score_v3.onnx"
    return [
        ("split 80/20", model([V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 80, "v2": 20}), {1, 2}),
        ("split 50/50", model([V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50}), {1, 2}),
        ("bad: schema", retraffic("status: staging", "status: staged"), None),
        ("fix schema", retraffic("status: staged", "status: staging"), {1, 2}),
        ("promote v2", model([V("v1", "deprecated", k=1), V("v2", "active", k=2)]), {2}),
        ("v3 at 10%", model([V("v1", "deprecated", k=1), V("v2", "active", k=2), V("v3", "staging", k=3)],
                            {"v2": 90, "v3": 10}), {2, 3}),
        ("tamper v3's file", tamper(a, 9), None),
        ("restore v3's file", tamper(a, 3), {2, 3}),
        ("bad: traffic sums to 110", retraffic("v2: 90", "v2: 100"), None),
        ("v3 at 30%", lambda: (retraffic("v2: 100", "v2: 70")(), retraffic("v3: 10", "v3: 30")()), {2, 3}),
        ("v4 as well", model([V("v1", "deprecated", k=1), V("v2", "active", k=2), V("v3", "staging", k=3),
                              V("v4", "staging", k=4)], {"v2": 50, "v3": 30, "v4": 20}), {2, 3, 4}),
        ("bad: traffic names a deprecated version",
         model([V("v1", "deprecated", k=1), V("v2", "active", k=2), V("v3", "staging", k=3),
                V("v4", "staging", k=4)], {"v1": 10, "v2": 40, "v3": 30, "v4": 20}), None),
        ("archive v1", model([V("v1", "archived", k=1), V("v2", "active", k=2), V("v3", "staging", k=3),
                              V("v4", "staging", k=4)], {"v2": 50, "v3": 30, "v4": 20}), {2, 3, 4}),
        ("promote v3", model([V("v1", "archived", k=1), V("v2", "deprecated", k=2), V("v3", "active", k=3),
                              V("v4", "staging", k=4)], {"v3": 80, "v4": 20}), {3, 4}),
        ("bad: missing v4 artifact", lambda: (score.repo.root / "registry/artifacts/score_v4.onnx").unlink(), None),
        ("restore v4 artifact", tamper("registry/artifacts/score_v4.onnx", 4), {3, 4}),
        ("stop v4", model([V("v1", "archived", k=1), V("v2", "deprecated", k=2), V("v3", "active", k=3),
                           V("v4", "archived", k=4)]), {3}),
        ("v5 at 50%", model([V("v1", "archived", k=1), V("v2", "deprecated", k=2), V("v3", "active", k=3),
                             V("v4", "archived", k=4), V("v5", "staging", k=5)], {"v3": 50, "v5": 50}), {3, 5}),
        ("rollback to v2", model([V("v1", "archived", k=1), V("v2", "active", k=2), V("v3", "deprecated", k=3),
                                  V("v4", "archived", k=4), V("v5", "staging", k=5)], {"v2": 50, "v5": 50}),
         {2, 5}),
        ("promote v5", model([V("v1", "archived", k=1), V("v2", "deprecated", k=2), V("v3", "deprecated", k=3),
                              V("v4", "archived", k=4), V("v5", "active", k=5)]), {5}),
    ]


@pytest.mark.parametrize("preload", [False, True], ids=["lazy", "preload"])
def test_no_request_fails_while_20_commits_land(score: RegistryRepo, preload: bool) -> None:
    plan = _landing_plan(score)
    assert len(plan) == 20
    reg = Registry.open(score.repo.root, ref="main", preload=preload)
    x = sample_input(4, seed=3)
    # what each version answers, computed by onnxruntime directly on each artifact's bytes
    import onnxruntime as ort

    by_output: dict[bytes, int] = {}
    for k in range(1, 10):
        direct = ort.InferenceSession(model_bytes(k), providers=["CPUExecutionProvider"])
        out = direct.run(None, {"x": x})[0]
        np.testing.assert_array_equal(out, expected(k, x))
        by_output[out.tobytes()] = k
    assert len(by_output) == 9

    valid: set[int] = {1, 2}  # versions serving at some accepted commit (90/10 at the start)
    stop = threading.Event()
    failures: list[BaseException] = []
    answers: list[Counter[int]] = [Counter() for _ in range(4)]

    def worker(index: int) -> None:
        i = 0
        while not stop.is_set():
            key = None if i % 7 == 0 else f"user-{index}-{i}"
            try:
                out = reg.run("score", x, key=key)
                answers[index][by_output.get(out[0].tobytes(), -1)] += 1
            except BaseException as exc:  # every failure counts
                failures.append(exc)
            i += 1

    def land_all() -> None:
        for message, write, serving in plan:
            write()
            commit = score.commit(message)
            accepted = reg.reload()
            assert accepted is (serving is not None), (message, reg.info()["refused"][-1:])
            if serving is not None:
                assert reg.commit == commit
                assert set(reg.info("score")["traffic"]) == {f"v{k}" for k in serving}
                valid.update(serving)
            else:
                assert reg.info()["refused"][-1]["commit"] == commit

    def observer() -> None:  # introspection while requests and reloads run
        while not stop.is_set():
            try:
                info = reg.info()
                # lazily, a model changed by a reload is not loaded until its next request (None)
                assert info["models"]["score"]["serving"] is not False
                reg.route("score", key="observer")
                reg.session("score", key="observer")
            except BaseException as exc:  # every failure counts
                failures.append(exc)
            time.sleep(0.001)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    threads.append(threading.Thread(target=observer, daemon=True))
    gc.collect()
    baseline = _rss_bytes()
    for thread in threads:
        thread.start()
    try:
        land_all()
        time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not failures, failures[:3]
    total = sum(answers, Counter())
    assert -1 not in total, "an answer matched no version"
    assert set(total) <= valid, (total, valid)
    assert 9 not in total  # the tampered file never served
    assert sum(total.values()) > 1000
    # sessions of versions no longer serving were released; memory is back near the baseline
    assert set(reg._builder.sessions) == {sha256(model_bytes(5))}
    gc.collect()
    assert _rss_bytes() - baseline < 60 * 2**20
