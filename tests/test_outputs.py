"""Outputs never go through a committed symlink or into a special file, and names from a checkout
cannot forge a line of output (issue 9, point 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import Repo, ok


def refused(cli: Any, *args: str) -> str:
    code, out, err = cli(*args)
    assert code == 2, out + err
    assert "Traceback" not in err
    return err


def test_ci_report_dir_committed_as_a_symlink_out_of_the_repo_is_refused(example_repo: Repo, cli: Any,
                                                                        tmp_path: Path) -> None:
    r = example_repo
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, r.root / "modelgit-report")
    r.commit("a hostile link where the report goes")
    err = refused(cli, "-C", str(r.root), "ci", "--base", "main")
    assert err.startswith(f"error: refusing to write under {r.root / 'modelgit-report'}: it is a symbolic link")
    assert list(outside.iterdir()) == []


def test_eval_results_dir_committed_as_a_symlink_is_refused(example_repo: Repo, cli: Any, tmp_path: Path) -> None:
    r = example_repo
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, r.root / "registry" / "evaluations")
    r.commit("results go elsewhere")
    err = refused(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    assert "it is a symbolic link" in err
    assert list(outside.rglob("*")) == []


def test_out_to_an_existing_fifo_or_symlink_is_refused_not_replaced(example_repo: Repo, cli: Any,
                                                                   tmp_path: Path) -> None:
    r = example_repo
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for writing would block: it must not be opened at all
    err = refused(cli, "-C", str(r.root), "compare", "calling_score", "v1.0-hybrid", "v2.0-real", "--out", str(fifo))
    assert err.startswith(f"error: refusing to write {fifo}: it is a FIFO")
    assert fifo.is_fifo()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.md"
    os.symlink(victim, link)
    err = refused(cli, "-C", str(r.root), "compare", "calling_score", "v1.0-hybrid", "v2.0-real", "--out", str(link))
    assert "it is a symbolic link" in err
    assert link.is_symlink() and victim.read_text() == "keep me"
    # A regular file is replaced, and nothing is left behind beside it.
    target = tmp_path / "report.md"
    target.write_text("old")
    ok(cli, "-C", str(r.root), "compare", "calling_score", "v1.0-hybrid", "v2.0-real", "--out", str(target))
    assert target.read_text().startswith("### calling_score: v2.0-real vs v1.0-hybrid")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_name_cannot_forge_a_line_of_output(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    forged = "registry/models/calling_score.yaml:1:1: OK all good"
    r.write(f"registry/models/evil\n{forged}.yaml", "name: x\n")
    r.commit("a name with a newline in it")
    code, out, _ = cli("-C", str(r.root), "validate")
    assert code == 1
    lines = out.splitlines()
    assert not any(line.startswith(forged) for line in lines)
    assert lines and all(line.startswith("registry/models/evil\\nregistry/models/calling_score.yaml") for line in lines)


def test_the_library_leaves_its_hosts_gc_and_environment_alone(example_repo: Repo) -> None:
    import gc

    from modelgit import Registry
    from modelgit.gitstore import GitRepo
    from modelgit.validate import Validator

    env, frozen, enabled = dict(os.environ), gc.get_freeze_count(), gc.isenabled()
    assert enabled  # pytest runs with the collector on
    report = Validator(GitRepo.discover(example_repo.root)).validate("HEAD")
    assert report.valid and report.artifacts_checked > 0  # onnxruntime loaded the artifacts
    with Registry.open(example_repo.root, ref="main") as reg:
        reg.route("calling_score", key="k")
    assert (dict(os.environ), gc.get_freeze_count(), gc.isenabled()) == (env, frozen, enabled)


def _validate_worktree(root: Path) -> tuple[int, str]:
    """`modelgit validate --worktree` as the pre-commit hook runs it: a real process, so a FIFO
    opened by mistake would show as a timeout, not hang the test run."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "from modelgit.cli import main; main()", "-C", str(root),
                           "validate", "--worktree"], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


def test_worktree_validation_never_opens_special_files_or_follows_linked_dirs(example_repo: Repo,
                                                                              tmp_path: Path) -> None:
    r = example_repo
    model = r.root / "registry/models/calling_score.yaml"
    # A FIFO where an artifact should be, and one posing as a model file.
    artifact = r.root / "registry/artifacts/calling_score_v2_0_real.onnx"
    artifact.unlink()
    os.mkfifo(artifact)
    os.mkfifo(r.root / "registry/models/pipe.yaml")
    code, out = _validate_worktree(r.root)
    assert code == 1
    assert ("registry/models/calling_score.yaml:29:13: ART012 'registry/artifacts/calling_score_v2_0_real.onnx' "
            "is a FIFO in the working tree, not a file") in out
    assert "pipe.yaml" not in out  # never read, so never parsed
    # A directory linked to outside the repository: what lies behind it is not read (a FIFO there
    # would block a reader), just as git would store only the link.
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "model.onnx")
    os.symlink(outside, r.root / "registry/linked")
    model.write_text(model.read_text().replace("registry/artifacts/calling_score_v2_0_real.onnx",
                                               "registry/linked/model.onnx"))
    code, out = _validate_worktree(r.root)
    assert code == 1
    assert "ART010 file 'registry/linked/model.onnx' does not exist at the working tree" in out
