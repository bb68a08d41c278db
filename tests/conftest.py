"""Shared fixtures: real git repositories in tmp_path with a pinned identity and HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelgit.cli import run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "registry"


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in {
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    }.items():
        monkeypatch.setenv(key, value)


class Repo:
    """A real git repository for tests, with helpers to write files and commit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, path: str, data: str | bytes) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        target.write_bytes(data)
        return target

    def read(self, path: str) -> str:
        return (self.root / path).read_text()

    def commit(self, message: str = "change", *paths: str) -> str:
        self.git("add", "-A", *(["--", *paths] if paths else []))
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def make_repo(root: Path) -> Repo:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(root)], check=True)
    return Repo(root)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """An empty git repository (no commits)."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def example_repo(tmp_path: Path) -> Repo:
    """A git repository holding a copy of the bundled example registry, committed."""
    r = make_repo(tmp_path / "example")
    shutil.copytree(EXAMPLE, r.root / "registry")
    r.commit("Add example registry")
    return r


@pytest.fixture
def example_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What a newcomer has: a clone of a repository holding the example registry, as the working
    directory."""
    upstream = make_repo(tmp_path / "upstream")
    shutil.copytree(EXAMPLE, upstream.root / "registry")
    upstream.commit("Add example registry")
    work = tmp_path / "modelgit"
    subprocess.run(["git", "clone", "-q", str(upstream.root), str(work)], check=True)
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    """Run the CLI in-process: cli(*args) → (exit_code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield invoke


def ok(cli: object, *args: str) -> str:
    """Run the CLI (the ``cli`` fixture) and return its stdout; fail the test unless it exits 0."""
    code, out, err = cli(*args)  # type: ignore[operator]
    assert code == 0, out + err
    return out


def env_without_git_identity() -> dict[str, str]:
    return dict(os.environ)


# -- helpers for the evaluation tests (test_metrics, test_eval_compare, test_ci) ---------------------
def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def npz_bytes(**arrays: object) -> bytes:
    """An .npz file's bytes (numpy.savez into memory)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def affine_onnx(weights: object, bias: float, output: str = "variable") -> bytes:
    """A real ONNX regression model X float [None, n] → X @ weights + bias as float [None, 1],
    built with onnx.helper (``weights`` of shape (n,); zeros make a constant predictor)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], [output])],
        "affine",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, w.shape[0]])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([bias], np.float32), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def example_script() -> object:
    """scripts/build_example_registry.py as a module (train_models(), datasets())."""
    import importlib.util
    import sys

    name = "build_example_registry"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def score(repo: Repo) -> object:
    """Runtime tests' registry: model ``score``, v1 active (k=1, weight 0.5), v2 staging (k=2,
    weight 0.25), traffic 90/10, committed."""
    from runtime_support import standard  # imports onnx: only for the tests that use it

    reg = standard(repo)
    reg.commit("score v1 + v2 at 90/10")
    return reg


# -- PostgreSQL for the tracking tests: one real server per session ---------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """A real PostgreSQL server (tests/pg_support.py), started once and stopped at the end; skipped
    only when Debian's server binaries are absent (`make services` installs them)."""
    from pg_support import SKIP_REASON, PgServer, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip(SKIP_REASON)
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()
