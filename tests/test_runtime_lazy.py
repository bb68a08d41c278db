"""The lazy runtime: ``Registry.open`` validates every model but makes no route table and no
onnxruntime session until a model's first request; ``preload=True`` makes them all at open. Real git
repositories, real ONNX files, real onnxruntime; what was built is observed through the builder's
counters and ``info()``, never through timing."""

from __future__ import annotations

import textwrap
import threading
import zlib
from collections import Counter

import numpy as np
import pytest

from conftest import Repo
from modelgit import Registry
from modelgit.errors import InvalidError
from modelgit.runtime import state
from modelgit.runtime.router import bucket
from runtime_support import (
    KEYS,
    SALT,
    RegistryRepo,
    V,
    expected,
    model_bytes,
    refuse_when_optimizing,
    sample_input,
    sha256,
    which,
)
from test_router import _python_route

SPLIT = {"v1": 70.0, "v2": 30.0}


def _three_models(repo: Repo) -> RegistryRepo:
    """``score`` (v1 k=1 active, v2 k=2 staging, 70/30), ``other`` (k=3) and ``third`` (k=4)."""
    reg = RegistryRepo(repo)
    reg.settings()
    reg.model("score", [V("v1", "active", k=1, weight=0.5), V("v2", "staging", k=2, weight=0.25)], SPLIT)
    reg.model("other", [V("a", "active", k=3)])
    reg.model("third", [V("b", "active", k=4)])
    reg.commit("three models")
    return reg


def test_open_makes_no_session_and_no_route_table(repo: Repo) -> None:
    _three_models(repo)
    reg = Registry.open(repo.root)
    assert reg._builder.counts == Counter() and reg._builder.sessions == {}
    for name in ("score", "other", "third"):
        info = reg.info(name)
        assert info["loaded"] == [] and info["errors"] == {} and info["serving"] is None
    assert reg.info("score")["traffic"] == SPLIT  # known without building the table
    # routing builds that model's table only, and loads nothing
    assert reg.route("score", key="user-1") in SPLIT
    assert reg._builder.counts == Counter(tables=1) and reg._builder.sessions == {}


def test_open_with_a_warm_parse_cache_builds_no_typed_model(repo: Repo) -> None:
    """A restart finds every file in the parse cache: open reads the active versions from the
    cache's index, and a request (routed, pinned) reads what serving needs from the cached plain
    value: no typed (pydantic) model is built, and what serves is what a cold open serves."""
    _three_models(repo)
    cold = Registry.open(repo.root)  # fills .git/modelgit/parsed
    reg = Registry.open(repo.root)
    state = reg._state
    assert {name: entry.active for name, entry in state.models.items()} == \
        {"score": "v1", "other": "a", "third": "b"}
    assert [name for name, entry in state.models.items() if entry.parsed._typed is not None] == []
    x = sample_input(3)
    np.testing.assert_array_equal(reg.run("other", x, key="k")[0], expected(3, x))
    for key in KEYS[:50]:
        assert reg.route("score", key=key) == cold.route("score", key=key)
    np.testing.assert_array_equal(reg.run("score:v2", x)[0], expected(2, x))
    assert reg.info("score")["versions"] == cold.info("score")["versions"] == {"v1": "active", "v2": "staging"}
    assert [name for name, entry in state.models.items() if entry.parsed._typed is not None] == []
    cold.close()


SHAPES = {
    # name: (versions, traffic, retired)
    "file_and_uri": ([V("v1", "deprecated", uri="s3://b/v1.onnx", weight=1), V("v2", "active", k=1, weight=0.5),
                      V("v3", "staging", k=2), V("v4", "archived", uri="https://h/v4.onnx")], {"v2": 75, "v3": 25}),
    "hosted": ([V("h1", "active", provider="openrouter"), V("h2", "staging", provider="acme", weight=0)], None),
    "int_weights_no_traffic": ([V("1", "active", k=3, weight=1), V("2", "deprecated", k=4, weight=0)], None),
    "no_active": ([V("x", "deprecated", k=5)], None),
}


def test_what_serving_reads_from_a_cached_plain_value_is_what_the_typed_model_says(repo: Repo) -> None:
    """``Served`` from the parse cache's plain value (no pydantic) against ``Served`` from the typed
    model pydantic builds from the same YAML: every kind of artifact, int weights and traffic,
    no traffic, no active version, retired."""
    from modelgit.gitstore import GitRepo
    from modelgit.snapshot import Loader

    reg = RegistryRepo(repo)
    reg.settings()
    for name, (versions, traffic) in SHAPES.items():
        reg.model(name, versions, traffic, task="generation" if name == "hosted" else "regression")
    repo.write("registry/models/retired.yaml", "name: retired\ntask: regression\nretired: true\nversions:\n"
               f"  - {{version: r1, status: deprecated, artifact: {{uri: 's3://b/r.onnx', sha256: '{'c' * 64}'}}}}\n")
    reg.commit("shapes")
    Loader(GitRepo.discover(repo.root)).load("HEAD")  # parses, fills the cache
    cached = Loader(GitRepo.discover(repo.root)).load("HEAD")
    assert sorted(m for m, f in cached.files.items() if f.valid) == sorted([*SHAPES, "retired"])
    plains = {name: parsed.plain() for name, parsed in cached.files.items()}  # before any typed model
    for name, parsed in cached.files.items():
        plain = plains[name]
        assert plain is not None  # from the cache
        from_plain = state.Served.of_plain(plain)
        from_typed = state.Served.of_model(parsed.spec)
        assert from_plain == from_typed, name
        assert [type(v.weight) for v in from_plain.versions] == [type(v.weight) for v in from_typed.versions]
        model = parsed.spec
        assert from_plain.split() == model.split()
        assert (from_plain.active.version if from_plain.active else None) == \
            (model.active.version if model.active else None)
        assert from_plain.retired == bool(model.retired) == (name == "retired")
    served = state.Served.of_plain(plains["file_and_uri"] or {})
    assert [v.artifact.kind for v in served.versions] == ["uri", "file", "file", "uri"]
    assert served.version("v2") is not None and served.version("v2").artifact.path == \
        "registry/artifacts/file_and_uri_v2.onnx"
    hosted = state.Served.of_plain(plains["hosted"] or {})
    assert [v.artifact.key for v in hosted.versions] == [("hosted", "openrouter", "openrouter/h1"),
                                                         ("hosted", "acme", "acme/h2")]


RUN_WARM = textwrap.dedent("""
    import sys
    import numpy as np
    from modelgit import Registry
    reg = Registry.open(sys.argv[1])
    out = reg.run("score", np.ones((1, 3), dtype=np.float32), key="user-1")
    print(sorted({"pydantic", "modelgit.spec", "jsonschema", "rich", "yaml"} & set(sys.modules)), out[0].tolist())
""")


def test_a_warm_process_opens_routes_and_runs_without_the_typed_models(repo: Repo) -> None:
    """With the parse cache and the artifact facts warm, a new process opens the registry, routes
    and runs without importing pydantic or PyYAML; the answer is the one a cold process gives."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    _three_models(repo)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}

    def run() -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-c", RUN_WARM, str(repo.root)], capture_output=True, text=True,
                             env=env, check=True).stdout.strip()
        imported, _, answer = out.partition("] ")
        return imported + "]", answer

    cold_imported, cold_answer = run()
    assert "'pydantic'" in cold_imported
    warm_imported, warm_answer = run()
    assert warm_imported == "[]"
    x = np.ones((1, 3), dtype=np.float32)
    version = Registry.open(repo.root).route("score", key="user-1")
    assert warm_answer == cold_answer == str(expected({"v1": 1, "v2": 2}[version], x).tolist())


def test_the_first_request_loads_and_routes_as_an_independent_eager_table(repo: Repo) -> None:
    _three_models(repo)
    reg = Registry.open(repo.root)
    x = sample_input(3)
    for key in KEYS:
        # the documented algorithm in plain Python on the key's bucket: what an eager table holds
        version = _python_route("score", SPLIT, SALT, bucket("score", key, SALT))
        k = {"v1": 1, "v2": 2}[version]
        np.testing.assert_array_equal(reg.run("score", x, key=key)[0], expected(k, x))
        assert reg.route("score", key=key) == version
        assert reg.resolve("score", key) == (version, version)
        assert reg.weight("score", key=key) == {"v1": 0.5, "v2": 0.25}[version]
    # only the model asked for was prepared: its table and its two sessions
    assert reg._builder.counts == Counter(tables=1, sessions=2)
    assert set(reg._builder.sessions) == {sha256(model_bytes(1)), sha256(model_bytes(2))}
    assert reg.info("score")["loaded"] == ["v1", "v2"] and reg.info("score")["serving"] is True
    assert reg.info("other")["loaded"] == [] and reg.info("other")["serving"] is None
    # a pin loads that version alone; a session request prepares its model
    np.testing.assert_array_equal(reg.run("other:a", x)[0], expected(3, x))
    assert reg._builder.counts == Counter(tables=1, sessions=3)
    assert reg.session("third", key="k") is reg.session("third:b")
    assert reg._builder.counts == Counter(tables=2, sessions=4)


def test_preload_loads_every_model_at_open(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    _three_models(repo)
    monkeypatch.setattr(state, "PRELOAD_BATCH", 2)  # artifacts are read in batches of models
    reg = Registry.open(repo.root, preload=True)
    assert reg._builder.counts == Counter(tables=3, sessions=4)
    assert {name: reg.info(name)["loaded"] for name in reg.models()} == {
        "other": ["a"], "score": ["v1", "v2"], "third": ["b"]}
    assert all(reg.info(name)["serving"] is True for name in reg.models())
    x = sample_input()
    lazy = Registry.open(repo.root)
    for key in KEYS[:100]:
        assert reg.route("score", key=key) == lazy.route("score", key=key)
        np.testing.assert_array_equal(reg.run("score", x, key=key)[0], lazy.run("score", x, key=key)[0])
    assert reg._builder.counts == Counter(tables=3, sessions=4)  # requests build nothing more


def _tamper_object(repo: Repo, path: str, data: bytes) -> None:
    """Replace the loose git object of ``path`` at HEAD with ``data`` (its id unchanged): disk
    corruption or tampering after the commit was validated."""
    blob = repo.git("rev-parse", f"HEAD:{path}")
    target = repo.root / ".git" / "objects" / blob[:2] / blob[2:]
    assert target.exists(), "the test needs a loose object"
    target.chmod(0o644)
    target.write_bytes(zlib.compress(b"blob %d\0" % len(data) + data))


def test_a_corrupt_artifact_found_on_first_request_falls_back_to_the_active_version(
        repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    _three_models(repo)
    reg = Registry.open(repo.root)  # validated: every sha256 matched at open
    tampered = model_bytes(9)
    _tamper_object(repo, "registry/artifacts/score_v2.onnx", tampered)
    _tamper_object(repo, "registry/artifacts/other_a.onnx", tampered)
    seen = refuse_when_optimizing(monkeypatch, b"")  # records what onnxruntime is given
    x = sample_input()
    answers = Counter(which(reg.run("score", x, key=key), x, [1, 2, 9]) for key in KEYS)
    assert answers == Counter({1: len(KEYS)})  # v2's keys are answered by the active v1
    info = reg.info("score")
    assert "does not match the recorded" in info["errors"]["v2"]
    to_v2 = [k for k in KEYS if reg.route("score", key=k) == "v2"]
    assert to_v2 and info["fallbacks"] == {"v2": len(to_v2)}
    assert reg.resolve("score", to_v2[0]) == ("v2", "v1")
    # a model whose active artifact is corrupt cannot serve; the others still do
    with pytest.raises(InvalidError, match="cannot serve"):
        reg.run("other", x, key="k")
    assert reg.info("other")["serving"] is False
    np.testing.assert_array_equal(reg.run("third", x)[0], expected(4, x))
    assert tampered not in seen and sha256(tampered) not in reg._builder.sessions


def test_concurrent_first_requests_build_once_and_agree(repo: Repo) -> None:
    _three_models(repo)
    reg = Registry.open(repo.root)
    x = sample_input(2)
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[dict[str, int]] = [{} for _ in range(threads)]
    failures: list[BaseException] = []

    def first_requests(index: int) -> None:
        try:
            barrier.wait()
            for key in KEYS[index::4]:  # overlapping keys between threads
                results[index][key] = which(reg.run("score", x, key=key), x, [1, 2])
        except BaseException as exc:  # every failure counts
            failures.append(exc)

    workers = [threading.Thread(target=first_requests, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures, failures[:3]
    assert reg._builder.counts == Counter(tables=1, sessions=2)
    merged: dict[str, int] = {}
    for found in results:
        for key, k in found.items():
            assert merged.setdefault(key, k) == k  # every thread saw the same version per key
    assert merged == {key: int(_python_route("score", SPLIT, SALT, bucket("score", key, SALT))[1:])
                      for key in KEYS}


def test_a_reload_refuses_a_new_active_version_that_cannot_load_even_if_never_requested(
        repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    reg_repo = _three_models(repo)
    reg = Registry.open(repo.root)
    good = reg.commit
    refuse_when_optimizing(monkeypatch, model_bytes(5))  # validation (optimisations off) accepts it
    reg_repo.model("other", [V("a", "deprecated", k=3), V("c", "active", k=5)])
    reg_repo.commit("other: promote c")
    assert reg.reload() is False and reg.commit == good
    assert "active version 'c' cannot be loaded" in reg.info()["refused"][-1]["reason"]
    x = sample_input()
    np.testing.assert_array_equal(reg.run("other", x)[0], expected(3, x))
    # a commit that changes only a split loads nothing at reload, and keeps the sessions in use
    reg_repo.model("other", [V("a", "active", k=3)])
    reg_repo.model("score", [V("v1", "active", k=1, weight=0.5), V("v2", "staging", k=2, weight=0.25)],
                   {"v1": 50, "v2": 50})
    reg_repo.commit("score: 50/50")
    before = reg._builder.counts.copy()
    assert reg.reload() is True
    assert reg._builder.counts == before
    assert sha256(model_bytes(3)) in reg._builder.sessions  # 'other' is unchanged and serving
    assert reg.info("score")["loaded"] == [] and reg.info("score")["traffic"] == {"v1": 50.0, "v2": 50.0}
    for key in KEYS[:50]:
        version = _python_route("score", {"v1": 50, "v2": 50}, SALT, bucket("score", key, SALT))
        assert which(reg.run("score", x, key=key), x, [1, 2]) == int(version[1:])


def test_preload_survives_reloads(repo: Repo) -> None:
    reg_repo = _three_models(repo)
    reg = Registry.open(repo.root, preload=True)
    reg_repo.model("fourth", [V("d", "active", k=6)])
    reg_repo.commit("a fourth model")
    assert reg.reload() is True
    assert reg.info("fourth")["loaded"] == ["d"] and reg.info("fourth")["serving"] is True
    assert reg._builder.counts == Counter(tables=4, sessions=5)


def test_parsed_versions_share_their_field_sets_safely() -> None:
    """Versions given the same fields share one field-name set (most of a parsed registry's
    memory); each still reports its own fields, and a copy with changes never alters the others."""
    from modelgit.snapshot import parse_model

    def version(name: str, status: str, weight: str, sha: str) -> str:
        return (f"  - {{version: {name}, status: {status}{weight}, "
                f"artifact: {{uri: 's3://b/{name}.onnx', sha256: {sha * 64}}}}}\n")

    text = ("name: score\ntask: regression\nversions:\n" + version("v1", "active", ", weight: 0.5", "a")
            + version("v2", "staging", ", weight: 0.5", "b") + version("v3", "archived", "", "c"))
    model = parse_model(text.encode(), "registry/models/score.yaml").spec
    v1, v2, v3 = model.versions
    assert v1.model_fields_set is v2.model_fields_set == {"version", "status", "weight", "artifact"}
    assert v3.model_fields_set == {"version", "status", "artifact"}
    assert v1.artifact.model_fields_set is v2.artifact.model_fields_set == {"uri", "sha256"}
    changed = v1.model_copy(update={"description": "changed"})
    assert "description" in changed.model_fields_set and "description" not in v2.model_fields_set
    with pytest.raises(ValueError, match="frozen"):
        v1.weight = 0.1
    assert v1.model_fields_set == v2.model_fields_set == {"version", "status", "weight", "artifact"}
    assert v1.model_dump(exclude_unset=True) == {"version": "v1", "status": "active", "weight": 0.5,
                                                 "artifact": {"uri": "s3://b/v1.onnx", "sha256": "a" * 64}}


class _CountingLock:
    """A stand-in for the builder's lock that counts acquisitions."""

    def __init__(self) -> None:
        self.inner = threading.RLock()
        self.acquired = 0

    def __enter__(self) -> None:
        self.acquired += 1
        self.inner.acquire()

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


def test_requests_after_the_first_take_no_lock(repo: Repo) -> None:
    _three_models(repo)
    reg = Registry.open(repo.root)
    lock = reg._builder.lock = _CountingLock()  # type: ignore[assignment]
    x = sample_input()
    reg.run("score", x, key="user-0")
    assert lock.acquired >= 1  # the first request built the model under the lock
    before = lock.acquired
    for key in KEYS:
        reg.run("score", x, key=key)
        reg.run("score", x)
        reg.route("score", key=key)
        reg.session("score", key=key)
        reg.weight("score", key=key)
        reg.resolve("score", key)
    assert lock.acquired == before
