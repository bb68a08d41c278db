"""Helper processes that parse uncached files (modelgit._parsework): the outcome is the one a
single process gives, for valid and broken files alike, and no child outlives a load."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import EXAMPLE, Repo, make_repo
from modelgit import _parsework, _process, snapshot
from modelgit.gitstore import GitRepo
from modelgit.snapshot import Loader
from modelgit.validate import Validator

CORPUS = Path(__file__).resolve().parent / "bad_inputs"


@pytest.fixture
def mixed_repo(tmp_path: Path) -> Repo:
    """The example registry plus every broken model file of the bad-inputs corpus and many valid
    copies, interleaved, each under its own model id."""
    repo = make_repo(tmp_path / "mixed")
    shutil.copytree(EXAMPLE, repo.root / "registry")
    valid = (EXAMPLE / "models" / "calling_score.yaml").read_text()
    broken = sorted(CORPUS.glob("*/registry/models/**/*.yaml"))
    assert len(broken) > 20
    for index in range(60):
        repo.write(f"registry/models/ok{index:03d}.yaml", valid.replace("calling_score", f"ok{index:03d}"))
    for index, path in enumerate(broken):
        repo.write(f"registry/models/bad{index:03d}.yaml", path.read_bytes())
    repo.commit("many models")
    return repo


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Helpers even for a few files, in small chunks, so that a test registry uses several; the
    pids of the forked children and the spawned processes, to check that each is gone."""
    monkeypatch.setattr(_parsework, "CHUNK", 2)
    monkeypatch.setattr(_parsework, "MIN_FILES_FORK", 1)
    monkeypatch.setattr(_parsework, "MIN_FILES_SPAWN", 1)
    started: list[int] = []
    start = _parsework._Child.start.__func__  # type: ignore[attr-defined]

    def recording(cls: type, method: str, *args: object) -> _parsework._Child:
        child = start(cls, method, *args)
        started.append(child.pid if child.pid is not None else child.proc.pid)
        return child

    monkeypatch.setattr(_parsework._Child, "start", classmethod(recording))
    return started


def _outcome(root: Path) -> tuple[list[str], int, int, dict[str, object]]:
    report = Validator(GitRepo.discover(root)).validate("HEAD")
    assert report.snapshot is not None
    typed = {model_id: parsed.typed for model_id, parsed in report.snapshot.files.items()}
    return [f.render() for f in report.findings], report.models, report.versions, typed


def _assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already: not a child of ours any more


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_helpers_give_the_outcome_of_one_process(mixed_repo: Repo, small_chunks: list[int],
                                                 monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    expected = _outcome(mixed_repo.root)
    assert expected[0], "the corpus has findings"
    shutil.rmtree(mixed_repo.root / ".git" / "modelgit")
    monkeypatch.setattr(_process, "parse_helpers", 1)
    monkeypatch.setattr(_parsework, "start_method", lambda: method)
    helped: list[int] = []
    share = _parsework.share

    def counting(*args: object, **kwargs: object) -> dict[int, object]:
        result = share(*args, **kwargs)  # type: ignore[arg-type]
        helped.append(len(result))
        return result

    monkeypatch.setattr(_parsework, "share", counting)
    assert _outcome(mixed_repo.root) == expected
    if method == "fork":
        assert helped and helped[0] > 0, "the helper parsed some of the files"
    assert small_chunks
    _assert_gone(small_chunks)
    # What the helpers answered went into the parse cache: a warm run reads the same.
    monkeypatch.setattr(_process, "parse_helpers", 0)
    assert _outcome(mixed_repo.root) == expected


def test_two_helpers(mixed_repo: Repo, small_chunks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _outcome(mixed_repo.root)
    shutil.rmtree(mixed_repo.root / ".git" / "modelgit")
    monkeypatch.setattr(_process, "parse_helpers", 2)
    assert _outcome(mixed_repo.root) == expected
    assert len(small_chunks) == 2
    _assert_gone(small_chunks)


def test_a_helper_that_dies_or_fails_changes_nothing(mixed_repo: Repo, small_chunks: list[int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _outcome(mixed_repo.root)
    parent = os.getpid()
    real = snapshot.record_of
    calls = {"n": 0}

    def flaky(path: str, blob: str, data: bytes) -> object:
        if os.getpid() != parent:  # in the forked helper
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("a bug in the helper")
            if calls["n"] == 6:
                os._exit(9)  # dies in the middle of a chunk
        return real(path, blob, data)

    monkeypatch.setattr(snapshot, "record_of", flaky)
    monkeypatch.setattr(_process, "parse_helpers", 1)
    monkeypatch.setattr(_parsework, "start_method", lambda: "fork")
    shutil.rmtree(mixed_repo.root / ".git" / "modelgit")
    assert _outcome(mixed_repo.root) == expected
    _assert_gone(small_chunks)


def test_an_error_here_leaves_no_child(mixed_repo: Repo, small_chunks: list[int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_process, "parse_helpers", 1)
    monkeypatch.setattr(_parsework, "start_method", lambda: "fork")
    real = snapshot._parse_model
    seen = {"n": 0}

    def failing(data: bytes, path: str, blob: str) -> object:
        seen["n"] += 1
        if seen["n"] == 5:
            raise KeyboardInterrupt
        return real(data, path, blob)

    monkeypatch.setattr(snapshot, "_parse_model", failing)
    with pytest.raises(KeyboardInterrupt):
        Loader(GitRepo.discover(mixed_repo.root)).load("HEAD")
    assert small_chunks
    _assert_gone(small_chunks)


def test_few_files_or_no_helpers_stay_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(cls: type, method: str, *args: object) -> None:
        raise AssertionError("no helper expected")

    monkeypatch.setattr(_parsework._Child, "start", classmethod(refuse))
    done: list[int] = []
    jobs = [("registry/models/m.yaml", "0" * 40, b"name: m\n")] * 10
    assert _parsework.share(jobs, done.append, helpers=1, method="fork") == {}
    assert _parsework.share(jobs * 100, done.append, helpers=0, method="fork") == {}
    assert done == [*range(10), *range(1000)]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_jobs_read_late_are_each_parsed_once(small_chunks: list[int], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path, method: str) -> None:
    """With ``read``, forked helpers start on the last part before the rest is read; every job is
    read before anyone parses it and answered exactly once."""
    texts = [f"name: m{index}\ntask: regression\nversions: []\n".encode() for index in range(100)]
    jobs: list[object] = [None] * len(texts)
    reads: list[range] = []

    def read(indices: range) -> None:
        reads.append(indices)
        for index in indices:
            jobs[index] = (f"registry/models/m{index}.yaml", f"{index:040d}", texts[index])

    done: list[int] = []
    # This process's share costs nothing here, so it would finish before a helper's first answer
    # and take every chunk back (as it does from a helper that is slow to start). So, forked, it
    # waits until a helper has sent its first chunk's answer: the helper (which inherits this
    # patch) leaves a mark as it starts on its ninth file, the first one after that answer.
    answered = tmp_path / "a-helper-answered"
    real = snapshot.record_of
    calls = [0]

    def record_of(path: str, blob: str, data: bytes) -> object:
        calls[0] += 1
        if calls[0] == _parsework.CHUNK + 1:
            answered.touch()
        return real(path, blob, data)

    monkeypatch.setattr(snapshot, "record_of", record_of)

    def here(index: int) -> None:
        assert jobs[index] is not None
        deadline = time.monotonic() + 60  # a bound for a machine that never runs the helper
        while method == "fork" and not answered.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        done.append(index)

    helped = _parsework.share(jobs, here, helpers=2, method=method, read=read)  # type: ignore[arg-type]
    assert sorted([*done, *helped]) == list(range(100))
    assert all(record is not None for record in helped.values())
    assert sorted(i for r in reads for i in r) == list(range(100))
    if method == "fork":
        assert reads[0].stop == 100 and reads[0].start > 0  # the last part first
        assert helped
    _assert_gone(small_chunks)


def test_the_library_starts_no_helper_by_default() -> None:
    assert _process.parse_helpers == 0


def test_fork_only_in_a_single_threaded_process() -> None:
    import sys
    import threading

    if not sys.platform.startswith("linux"):
        assert _parsework.start_method() == "spawn"
        return
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert _parsework.start_method() == "spawn"
    finally:
        stop.set()
        thread.join()
