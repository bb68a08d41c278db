"""A user's own CI installs what it runs: modelgit's wheel, built here from this checkout, installed
into a fresh venv with ``pip install --no-index`` from the lock's wheels only, then its CLI (not
this checkout's) runs ``init``, ``validate``, ``dataset``, ``register``, a ``promote`` proposal
and ``ci --base`` in a new repository.

The lock's wheels live in ``.wheelhouse/`` (``make wheelhouse`` makes it; this test makes it too,
fetching from the package index once, when it is missing or stale). The test skips only when the
wheelhouse is incomplete and the index cannot be reached. The expected rmse is computed here with
this process's onnxruntime and numpy, not by the installed modelgit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, Repo, npz_bytes

WHEELHOUSE = ROOT / ".wheelhouse"
LOCK = ROOT / "constraints.txt"

pytestmark = pytest.mark.wheel_install


def isolated_pip_env() -> dict[str, str]:
    """The environment without any pip configuration (no index, find-links or constraints of this
    machine's): the install sees only the folders the test names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "VIRTUAL_ENV"}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
    return env


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def build_wheel(tmp: Path, out: Path) -> Path:
    """The wheel of a clean copy of the sources: the checkout's src/*.egg-info (left by the editable
    install) would feed its old file list into the build and hide package-data mistakes."""
    import shutil

    tree = tmp / "source"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    proc = run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
               "--wheel-dir", out, tree, env=isolated_pip_env())
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("modelgit-*.whl")
    return wheel


def ensure_wheelhouse(wheel: Path) -> None:
    """The locked wheels of everything ``wheel`` needs are in .wheelhouse/: resolved offline if
    they are there, else fetched once with this machine's ordinary pip configuration."""
    common = ["-m", "pip", "download", "--quiet", "--only-binary=:all:", "-c", LOCK, "-d", WHEELHOUSE]
    offline = run(sys.executable, *common, "--no-index", "--find-links", WHEELHOUSE, wheel, env=isolated_pip_env())
    if offline.returncode != 0:
        online = run(sys.executable, *common, wheel)
        if online.returncode != 0:
            pytest.skip("the lock's wheels are not in .wheelhouse/ and the package index cannot be reached "
                        f"to fetch them (make wheelhouse): {online.stderr.strip()[-300:]}")
    for copied in WHEELHOUSE.glob("modelgit-*"):  # the wheel under test comes from its own folder
        copied.unlink()


def test_the_built_wheel_installs_offline_and_its_cli_runs_the_registry_workflow(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, tmp_path / "dist")
    ensure_wheelhouse(wheel)
    venv = tmp_path / "venv"
    proc = run(sys.executable, "-m", "venv", venv)
    assert proc.returncode == 0, proc.stderr
    py, modelgit = venv / "bin" / "python", venv / "bin" / "modelgit"
    proc = run(py, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE, "-c", LOCK, wheel,
               env=isolated_pip_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # the installed package, not this checkout's src/, and at the version the workflows will pin
    proc = run(py, "-c", "import importlib.metadata as m, modelgit; print(modelgit.__file__); "
                         "print(m.version('modelgit'))", cwd=tmp_path)
    where, version = proc.stdout.split()
    assert Path(where).is_relative_to(venv) and version == wheel.name.split("-")[1]

    target = tmp_path / "registry-repo"

    def cli(*args: str) -> str:
        proc = run(modelgit, "-C", target, *args, cwd=tmp_path)
        assert proc.returncode == 0, f"modelgit {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    proc = run(modelgit, "init", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    repo = Repo(target)
    assert repo.git("rev-list", "--count", "HEAD") == "1"
    assert f'pip install "modelgit=={version}"' in (target / ".github/workflows/registry-ci.yml").read_text()
    assert (target / ".gitignore").is_file()
    assert run(modelgit, "-C", target, "validate").returncode == 0

    # an evaluation dataset for the example model (4 inputs), and a second version to promote
    x = np.random.default_rng(8).normal(size=(64, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.25
    (target / "registry/datasets").mkdir(parents=True)
    (target / "registry/datasets/eval.npz").write_bytes(npz_bytes(X=x, y=y))
    cli("dataset", "example_scorer", "registry/datasets/eval.npz", "--on-current-branch")
    cli("register", "example_scorer", "v2", "--artifact", "registry/artifacts/example_scorer_v1.onnx",
        "--on-current-branch")
    out = cli("promote", "example_scorer", "v2")
    assert "on new branch modelgit/example_scorer/promote-v2" in out
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""

    proc = run(modelgit, "-C", target, "ci", "--base", "main", "--ref", "modelgit/example_scorer/promote-v2",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((target / "modelgit-report/report.json").read_text())
    assert report["ok"] is True and report["valid"] is True
    (check,) = report["checks"]
    assert (check["model"], check["version"]) == ("example_scorer", "v2") and "promoted" in check["reasons"]

    import onnxruntime as ort

    session = ort.InferenceSession((target / "registry/artifacts/example_scorer_v1.onnx").read_bytes(),
                                   providers=["CPUExecutionProvider"])
    predicted = session.run(None, {session.get_inputs()[0].name: x})[0][:, 0].astype(np.float64)
    assert check["metrics"]["rmse"] == pytest.approx(float(np.sqrt(np.mean((predicted - y) ** 2))), rel=1e-5)
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""  # the report is git-ignored
