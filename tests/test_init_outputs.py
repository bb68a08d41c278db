"""What `modelgit init` writes for a user's own CI: workflows pinned to the modelgit release that
wrote them, and a .gitignore for the outputs that are not committed (evaluation results, reports).

The expected version comes from pyproject.toml read with tomllib, not from the program; what git
ignores is asked of git itself (`git check-ignore`, `git status`).
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from conftest import ROOT, Repo, make_repo, npz_bytes, ok
from modelgit.scaffold import init_registry

WORKFLOWS = (".github/workflows/registry-ci.yml", ".github/workflows/upgrade-check.yml")


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]


def install_step(path: Path) -> str:
    data = yaml.safe_load(path.read_text("utf-8"))
    (job,) = data["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("name") == "Install modelgit"]
    return step["run"]


def test_workflows_install_the_pinned_modelgit_that_wrote_them(tmp_path: Path, cli: Any) -> None:
    version = project_version()
    assert metadata.version("modelgit") == version  # the installed package is this checkout
    ok(cli, "init", str(tmp_path / "new"))
    for name in WORKFLOWS:
        run = install_step(tmp_path / "new" / name)
        # the user's repository has no modelgit pyproject.toml: the else branch runs, pinned
        assert f'else pip install "modelgit=={version}"; fi' in run
        assert run.count("pip install") == 2 and "pip install modelgit\n" not in run
        # modelgit's own repository keeps the same file (the byte-identity test in test_ci.py)
        assert install_step(ROOT / name) == run
        assert b"@MODELGIT_VERSION@" not in (tmp_path / "new" / name).read_bytes()


def test_a_version_that_is_not_a_release_is_pinned_with_a_warning(tmp_path: Path) -> None:
    result = init_registry(tmp_path / "dev", "0.2.0.dev3+g1234abc")
    assert result.warnings == [
        "modelgit 0.2.0.dev3+g1234abc is not a release: the workflows pin modelgit==0.2.0.dev3+g1234abc, "
        "which a package index will not have; edit their 'Install modelgit' step, or init with a released "
        "modelgit"]
    assert 'pip install "modelgit==0.2.0.dev3+g1234abc"' in install_step(tmp_path / "dev" / WORKFLOWS[0])
    assert init_registry(tmp_path / "rel", "1.4.2").warnings == []


def test_a_version_string_that_could_break_the_workflow_is_refused(tmp_path: Path) -> None:
    import pytest

    from modelgit.errors import UsageError

    with pytest.raises(UsageError) as caught:
        init_registry(tmp_path / "bad", '1.0"; curl x | sh; "')
    assert caught.value.message.endswith("cannot be pinned in a workflow; nothing was written")
    assert not (tmp_path / "bad").exists()


def test_gitignore_keeps_eval_results_and_ci_reports_out_of_commits(tmp_path: Path, cli: Any) -> None:
    target = tmp_path / "reg"
    ok(cli, "init", str(target))
    r = Repo(target)
    assert "\n.gitignore\n" in "\n" + r.git("ls-files") + "\n"  # committed with the registry
    ignored = r.git("check-ignore", "--no-index", "registry/evaluations/example_scorer/v1.json",
                    "modelgit-report/report.md", "modelgit-report/report.json", check=False).splitlines()
    assert ignored == ["registry/evaluations/example_scorer/v1.json", "modelgit-report/report.md",
                       "modelgit-report/report.json"]
    for kept in ("registry/models/x.yaml", "registry/datasets/x.npz", "registry/artifacts/x.onnx",
                 "schemas/model.schema.json", ".github/workflows/registry-ci.yml"):
        assert r.git("check-ignore", "--no-index", kept, check=False) == "", kept
    # the real outputs: attach a dataset (committed), then eval and ci write only ignored files
    x = np.random.default_rng(5).normal(size=(30, 4)).astype(np.float32)
    r.write("registry/datasets/eval.npz", npz_bytes(X=x, y=x.sum(axis=1)))
    ok(cli, "-C", str(target), "dataset", "example_scorer", "registry/datasets/eval.npz", "--on-current-branch")
    assert r.git("status", "--porcelain", "--untracked-files=all") == ""
    ok(cli, "-C", str(target), "eval", "example_scorer", "v1")
    ok(cli, "-C", str(target), "ci", "--base", "HEAD~1")
    assert (target / "registry/evaluations/example_scorer/v1.json").is_file()
    assert (target / "modelgit-report/report.md").is_file()
    assert r.git("status", "--porcelain", "--untracked-files=all") == ""


def test_an_existing_gitignore_gets_the_missing_lines_once(tmp_path: Path, cli: Any) -> None:
    r = make_repo(tmp_path / "mine")
    r.write(".gitignore", "*.pyc\n/modelgit-report/")  # no newline at the end
    r.write("README.md", "mine\n")
    head = r.commit("the user's repository")
    out = ok(cli, "init", str(r.root))
    assert "wrote .gitignore\n" in out
    text = (r.root / ".gitignore").read_text()
    assert text.startswith("*.pyc\n/modelgit-report/\n\n# ")
    assert [line for line in text.splitlines() if line and not line.startswith("#")] == [
        "*.pyc", "/modelgit-report/", "/registry/evaluations/"]
    assert r.head() == head  # a repository with commits: written, not committed
    # the registry files go, the .gitignore (already complete) is left alone by a second init
    for name in r.git("status", "--porcelain", "--untracked-files=all").splitlines():
        path = r.root / name[3:]
        if name.startswith("??"):
            path.unlink()
    before = (r.root / ".gitignore").read_bytes()
    out = ok(cli, "init", str(r.root))
    assert "wrote .gitignore" not in out
    assert (r.root / ".gitignore").read_bytes() == before


def test_a_gitignore_symlink_is_refused_and_nothing_written(tmp_path: Path, cli: Any) -> None:
    r = make_repo(tmp_path / "linked")
    (tmp_path / "elsewhere").write_text("x\n")
    (r.root / ".gitignore").symlink_to(tmp_path / "elsewhere")
    code, out, err = cli("init", str(r.root))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {r.root / '.gitignore'}: is not a regular file; nothing was written\n")
    assert sorted(p.name for p in r.root.iterdir()) == [".git", ".gitignore"]
    assert (tmp_path / "elsewhere").read_text() == "x\n"
