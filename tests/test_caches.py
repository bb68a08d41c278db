"""Caches hold only facts: a damaged cache file is ignored and rewritten, never fatal; a transient
failure (memory, threads, I/O) is never cached; and the runtime retries a commit it refused for a
transient reason, while a refusal about the commit's content stays final.

A transient failure of validation's model check is real: its child process cannot be started. The
runtime's own sessions are made in-process, and there onnxruntime is monkeypatched to fail
transiently: out-of-memory or thread-creation failures cannot be produced on demand. Everything else
is real: git repositories, ONNX files, onnxruntime."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from conftest import Repo
from modelgit.gitstore import GitRepo
from modelgit.validate import Validator

CACHE_FILES = ("sha256", "onnx-signature")
VALID = re.compile(r"^valid: 3 models, 6 versions, 6 files verified at [0-9a-f]{12}\n$")


def _validates(cli: Any, root: str) -> None:
    code, out, err = cli("-C", root, "validate")
    assert (code, out) == (0, "") and VALID.match(err), (code, out, err)


def _cache(root: Path, name: str) -> Path:
    return root / ".git" / "modelgit" / name


def _blob_bytes(repo: Repo, blob: str) -> bytes:
    import subprocess

    return subprocess.run(["git", "cat-file", "blob", blob], cwd=repo.root, capture_output=True,
                          check=True).stdout


def _entries(path: Path) -> dict[str, str]:
    """The cache file's lines; every one must be whole and well formed."""
    text = path.read_text("utf-8")
    assert text.endswith("\n")
    entries = {}
    for line in text.splitlines():
        blob, value = line.split("\t")
        assert re.fullmatch(r"[0-9a-f]{40}", blob), line
        entries[blob] = value
    return entries


def _check_sound(repo: Repo) -> None:
    """Every digest is the sha256 of its blob (computed here with hashlib), every signature is
    whole JSON, and there is one entry per blob the example relies on."""
    digests = _entries(_cache(repo.root, "sha256"))
    for blob, digest in digests.items():
        assert hashlib.sha256(_blob_bytes(repo, blob)).hexdigest() == digest
    signatures = _entries(_cache(repo.root, "onnx-signature"))
    for value in signatures.values():
        loaded = json.loads(value)
        assert set(loaded) == {"ok", "under"} and {"inputs", "outputs"} <= set(loaded["ok"])
    onnx_blobs = {line.split()[2] for line in repo.git(
        "ls-tree", "-r", "HEAD", "--", "registry/artifacts").splitlines() if line.endswith(".onnx")}
    assert set(signatures) <= onnx_blobs and len(signatures) >= 4
    assert len(digests) == len(signatures) + 2  # plus the two evaluation datasets


def _torn_line(path: Path) -> None:
    # A process killed mid-write: the last line lost its end (for sha256: a short digest that
    # would otherwise be read as a mismatch; for signatures: half a JSON document).
    data = path.read_bytes()
    path.write_bytes(data[:-12])


def _torn_value_with_newline(path: Path) -> None:
    # A cut inside a line followed by a later whole line (two writers interleaving).
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0][: len(lines[0]) // 2] + b"\n"
    path.write_bytes(b"".join(lines))


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(3000) + b"\x00\xff\xfe\n" + path.read_bytes()[:50])


def _directory(path: Path) -> None:
    path.unlink()
    (path / "inside").mkdir(parents=True)
    (path / "inside" / "file").write_text("not a cache\n")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "torn_last_line": _torn_line,
    "torn_inner_line": _torn_value_with_newline,
    "garbage_bytes": _garbage,
    "directory_in_its_place": _directory,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", CACHE_FILES)
def test_a_damaged_cache_file_is_ignored_and_rewritten(example_repo: Repo, cli: Any, damage: str,
                                                       name: str) -> None:
    root = str(example_repo.root)
    _validates(cli, root)
    _check_sound(example_repo)
    DAMAGE[damage](_cache(example_repo.root, name))
    _validates(cli, root)
    _check_sound(example_repo)  # rewritten whole
    _validates(cli, root)  # and read back


# -- transient failures are not facts ---------------------------------------------------------------
def _failing_sessions(monkeypatch: pytest.MonkeyPatch, error: BaseException,
                      only: bytes | None = None, when_optimizing: bool = False) -> list[int]:
    """Make onnxruntime raise ``error`` (for ``only`` those bytes, if given; with
    ``when_optimizing``, only for sessions with graph optimisations on, as the runtime makes)."""
    real = ort.InferenceSession
    calls = [0]

    def fake(data: Any, sess_options: Any = None, providers: Any = None, **kwargs: Any) -> Any:
        optimizing = sess_options is None or \
            sess_options.graph_optimization_level != ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if (only is None or data == only) and (optimizing or not when_optimizing):
            calls[0] += 1
            raise error
        return real(data, sess_options=sess_options, providers=providers, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", fake)
    return calls


TRANSIENT = {
    "memory": MemoryError(),
    "os": OSError(11, "Resource temporarily unavailable"),
    "bad_alloc": RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : std::bad_alloc"),
    "thread": RuntimeError("[ONNXRuntimeError] : 1 : FAIL : pthread_create failed: "
                           "Resource temporarily unavailable"),
}


def _model_check_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real transient fault of the model check: its child process cannot be started (as when the
    machine is out of processes or memory), and nothing learnt earlier in this process answers."""
    from modelgit import sessions

    monkeypatch.setattr(sessions, "_learnt", {})
    monkeypatch.setattr(sys, "executable", "/nonexistent/python-for-modelgit-tests")


def test_a_transient_failure_of_the_model_check_is_reported_and_not_cached(
        example_repo: Repo, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(example_repo.root)
    _model_check_cannot_start(monkeypatch)
    validator = Validator(GitRepo.discover(example_repo.root))
    report = validator.validate()
    assert report.transient
    assert [(f.path, f.line, f.col, f.code) for f in report.findings] == [
        ("registry/models/calling_score.yaml", 15, 13, "ART004"),
        ("registry/models/calling_score.yaml", 29, 13, "ART004"),
        ("registry/models/outcome_prediction.yaml", 15, 13, "ART004"),
        ("registry/models/outcome_prediction.yaml", 30, 13, "ART004"),
    ]
    assert report.findings[0].message.startswith(
        "artifact 'registry/artifacts/calling_score_v1_0_hybrid.onnx' could not be checked: ")
    assert not _cache(example_repo.root, "onnx-signature").exists()  # nothing learnt
    code, out, err = cli("-C", root, "validate")  # the CLI says it too: exit 1, no traceback
    assert code == 1 and "ART004" in out and "Traceback" not in out + err
    monkeypatch.undo()
    # The same validator (its in-memory outcomes) and a new process (the cache file) both look again.
    assert validator.validate().valid
    _validates(cli, root)
    _check_sound(example_repo)


def test_a_model_that_cannot_load_is_a_cached_fact(example_repo: Repo, cli: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The contrast: a file onnxruntime refuses for what it is is a fact about its blob.
    r = example_repo
    artifact = r.root / "registry/artifacts/calling_score_v2_0_real.onnx"
    broken = artifact.read_bytes()[:100]
    artifact.write_bytes(broken)
    model = r.root / "registry/models/calling_score.yaml"
    model.write_text(model.read_text().replace(
        "19d511dfc8a347c436a08aa99e436f756e68789dfa36347f19045ce78981973a", hashlib.sha256(broken).hexdigest()))
    r.commit("a truncated artifact")
    assert [f.code for f in Validator(GitRepo.discover(r.root)).validate().findings] == ["ART002"]
    signatures = _entries(_cache(r.root, "onnx-signature"))
    assert sum("error" in json.loads(v) for v in signatures.values()) == 1
    # Known now: a new validator finds the answer in the cache file and starts no model check.
    _model_check_cannot_start(monkeypatch)
    assert [f.code for f in Validator(GitRepo.discover(r.root)).validate().findings] == ["ART002"]


# -- the runtime retries what was refused for a transient reason --------------------------------------
@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_a_reload_refused_for_a_transient_reason_is_retried(score: Any, monkeypatch: pytest.MonkeyPatch,
                                                            kind: str) -> None:
    from modelgit import Registry
    from runtime_support import V, model_bytes

    reg = Registry.open(score.repo.root, ref="main")
    good = reg.commit
    # The runtime's own session (optimisations on) fails for want of memory; validation passes.
    calls = _failing_sessions(monkeypatch, TRANSIENT[kind], only=model_bytes(3), when_optimizing=True)
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "staging", k=2), V("v3", "active", k=3)],
                {"v3": 90, "v2": 10})
    promote = score.commit("promote v3")
    assert reg.reload() is False and reg.commit == good
    assert reg.reload() is False and reg.commit == good  # tried again, not judged once
    assert calls[0] == 2
    refused = reg.info()["refused"]
    assert [r["commit"] for r in refused] == [promote, promote]
    assert "active version 'v3' cannot be loaded" in refused[-1]["reason"]
    monkeypatch.undo()
    assert reg.reload() is True and reg.commit == promote


def test_a_reload_refused_in_validation_for_a_transient_reason_is_retried(
        score: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgit import Registry
    from runtime_support import V

    reg = Registry.open(score.repo.root, ref="main")
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2), V("v4", "staging", k=4)],
                {"v1": 80, "v2": 10, "v4": 10})
    added = score.commit("add v4")
    _model_check_cannot_start(monkeypatch)
    assert reg.reload() is False
    assert "ART004" in reg.info()["refused"][-1]["reason"]
    monkeypatch.undo()
    assert reg.reload() is True and reg.commit == added


def test_a_deterministic_refusal_is_judged_once(score: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgit import Registry
    from runtime_support import V, model_bytes

    reg = Registry.open(score.repo.root, ref="main")
    good = reg.commit
    calls = _failing_sessions(monkeypatch, RuntimeError(
        "[ONNXRuntimeError] : 1 : FAIL : Type Error: unsupported operator"), only=model_bytes(3),
        when_optimizing=True)
    score.model("score", [V("v1", "deprecated", k=1), V("v2", "staging", k=2), V("v3", "active", k=3)],
                {"v3": 90, "v2": 10})
    score.commit("promote v3")
    assert reg.reload() is False
    monkeypatch.undo()
    assert reg.reload() is False and reg.commit == good  # not retried: the commit was judged
    assert calls[0] == 1 and len(reg.info()["refused"]) == 1



@pytest.mark.parametrize("preload", [False, True], ids=["lazy", "preload"])
def test_a_staging_version_that_failed_transiently_is_loaded_on_the_next_poll(
        score: Any, monkeypatch: pytest.MonkeyPatch, preload: bool) -> None:
    from modelgit import Registry
    from runtime_support import V, expected, model_bytes, sample_input

    reg = Registry.open(score.repo.root, ref="main", preload=preload)
    calls = _failing_sessions(monkeypatch, TRANSIENT["memory"], only=model_bytes(5), when_optimizing=True)
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2), V("v5", "staging", k=5)],
                {"v1": 80, "v2": 10, "v5": 10})
    added = score.commit("add v5 at 10 %")
    # The commit serves (v5's traffic falls back to v1), and v5's failure is no fact about it.
    assert reg.reload() is True and reg.commit == added
    if not preload:
        reg.resolve("score", "user-1")  # lazily, the model's first request loads its versions
    assert "v5" not in reg.info("score")["loaded"] and calls[0] == 1
    monkeypatch.undo()
    assert reg.reload() is True and reg.commit == added  # the same commit, tried again
    if preload:
        assert "v5" in reg.info("score")["loaded"]
    x = sample_input()
    assert np.array_equal(reg.run("score:v5", x)[0], expected(5, x))
    assert "v5" in reg.info("score")["loaded"]
    assert reg.reload() is False  # nothing left to retry


# -- links and special files in the caches' places ---------------------------------------------------
def _forged_digests(repo: Repo) -> bytes:
    """A well-formed digest cache for the example's blobs whose every digest is wrong: read, it
    would make validation report every artifact as not matching its committed sha256."""
    blobs = [line.split()[2] for line in repo.git("ls-tree", "-r", "HEAD", "--", "registry").splitlines()]
    return "".join(f"{blob}\t{'0' * 64}\n" for blob in blobs).encode()


@pytest.mark.parametrize("name", CACHE_FILES)
def test_a_link_in_place_of_a_cache_file_is_never_followed(example_repo: Repo, cli: Any, tmp_path: Path,
                                                            name: str) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(_forged_digests(example_repo))
    before = outside.read_bytes()
    place = _cache(example_repo.root, name)
    place.parent.mkdir(parents=True)
    place.symlink_to(outside)
    _validates(cli, str(example_repo.root))  # the forged digests were not read
    assert outside.read_bytes() == before  # nor written
    assert not place.is_symlink() and place.is_file()  # ours to fix: replaced by a real file
    _check_sound(example_repo)


def test_a_linked_modelgit_directory_is_not_used_for_artifact_facts(example_repo: Repo, cli: Any,
                                                                     tmp_path: Path) -> None:
    outside = tmp_path / "outside-modelgit"
    outside.mkdir()
    (outside / "sha256").write_bytes(_forged_digests(example_repo))
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    (example_repo.root / ".git" / "modelgit").symlink_to(outside)
    _validates(cli, str(example_repo.root))
    _validates(cli, str(example_repo.root))
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before  # nothing read or added


def test_a_fifo_in_place_of_a_cache_file_is_not_waited_on(example_repo: Repo) -> None:
    import os
    import subprocess

    place = _cache(example_repo.root, "sha256")
    place.parent.mkdir(parents=True)
    os.mkfifo(place)  # opening it for reading would block until a writer came, without O_NONBLOCK
    # In a child process with a deadline, so that a regression fails instead of hanging the suite.
    done = subprocess.run([sys.executable, "-m", "modelgit", "-C", str(example_repo.root), "validate"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and VALID.match(done.stderr), done
    assert place.is_file()  # replaced by the real cache
    _check_sound(example_repo)
