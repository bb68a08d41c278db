"""Proposals: every change is a validated commit on its own branch, made from git objects alone.

All tests drive the real CLI (in-process, or as separate processes where concurrency matters)
against real git repositories. Expected values come from elsewhere than the program: digests from
hashlib, ONNX files and their signatures built here with onnx.helper, expected file contents and
diffs written by hand from the example registry's text, YAML read back with PyYAML (not the
ruamel.yaml the program writes with), commit trailers parsed by git itself.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from conftest import EXAMPLE, Repo, make_repo, ok

MODEL = "registry/models/calling_score.yaml"
PROMOTE_BRANCH = "modelgit/calling_score/promote-v2.0-real"
URI = "https://models.example/calling_score/v3.0.onnx"
URI_SHA = hashlib.sha256(b"an artifact modelgit does not download").hexdigest()


# -- helpers ---------------------------------------------------------------------------------------
def build_onnx(inputs: int = 10, output: str = "variable", seed: int = 0) -> bytes:
    """A real ONNX model: X float [None, inputs] → MatMul → ``output`` float [None, 1]."""
    weights = np.random.default_rng(seed).standard_normal((inputs, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], [output])], "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, inputs])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def signature(inputs: int, output: str = "variable") -> dict[str, Any]:
    return {"inputs": [{"name": "X", "type": "tensor(float)", "shape": [None, inputs]}],
            "outputs": [{"name": output, "type": "tensor(float)", "shape": [None, 1]}]}


@pytest.fixture(scope="session")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``same``: calling_score's signature; ``other``: 12 inputs; ``junk``: random bytes."""
    folder = tmp_path_factory.mktemp("onnx")
    files = {"same": folder / "same.onnx", "other": folder / "other.onnx", "junk": folder / "junk.onnx"}
    files["same"].write_bytes(build_onnx(10, seed=1))
    files["other"].write_bytes(build_onnx(12, seed=2))
    files["junk"].write_bytes(np.random.default_rng(3).bytes(700))
    return files


def blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def git_raw(r: Repo, *args: str) -> str:
    """git output exactly as printed (Repo.git strips it)."""
    return subprocess.run(["git", *args], cwd=r.root, capture_output=True, text=True, check=True).stdout


def show_bytes(r: Repo, ref: str, path: str) -> bytes:
    return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=r.root, capture_output=True,
                          check=True).stdout


def model_at(r: Repo, ref: str, model: str = "calling_score") -> dict[str, Any]:
    return yaml.safe_load(show_bytes(r, ref, f"registry/models/{model}.yaml"))


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {v["version"]: v["status"] for v in data["versions"]}


def trailers(r: Repo, ref: str) -> dict[str, str]:
    """Trailers of the commit as git itself parses them."""
    out = r.git("log", "-1", "--format=%(trailers:only,unfold)", ref)
    return dict(line.split(": ", 1) for line in out.splitlines() if line)


def branches(r: Repo) -> list[str]:
    return r.git("for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines()


def settle(r: Repo) -> None:
    """Let git refresh the index's stat data once, so later reads compare like with like."""
    r.git("status", "--porcelain")


def state(r: Repo) -> dict[str, Any]:
    """What a proposal must not touch: the index (bytes, read before any git command could refresh
    it), HEAD, status, every working-tree file's bytes, every ref, every reachable commit, and the
    files in .git (the .git/modelgit/ caches and objects/ aside)."""
    git_dir = r.root / ".git"
    index = (git_dir / "index").read_bytes() if (git_dir / "index").exists() else None
    files = {
        p.relative_to(r.root).as_posix(): p.read_bytes()
        for p in sorted(r.root.rglob("*"))
        if ".git" not in p.relative_to(r.root).parts and p.is_file()
    }
    in_git = sorted(
        rel for rel in (p.relative_to(git_dir).as_posix() for p in git_dir.rglob("*"))
        if rel.split("/")[0] not in ("objects", "modelgit")
    )
    return {
        "index": index,
        "head": r.git("rev-parse", "HEAD", check=False),
        "head_ref": r.git("symbolic-ref", "-q", "HEAD", check=False),
        "status": r.git("status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "stage": r.git("ls-files", "--stage"),
        "files": files,
        "refs": r.git("for-each-ref", "--format=%(refname) %(objectname)"),
        "commits": sorted(r.git("rev-list", "--all").split()),
        "git_dir": in_git,
    }


def assert_untouched_except_branch(before: dict[str, Any], after: dict[str, Any], branch: str) -> None:
    """Everything as before, except one new branch (and its reflog) and commits it reaches."""
    for key in ("index", "head", "head_ref", "status", "stage", "files"):
        assert after[key] == before[key], key
    new_refs = set(after["refs"].splitlines()) - set(before["refs"].splitlines())
    assert [ref.split()[0] for ref in new_refs] == [f"refs/heads/{branch}"]
    assert set(before["refs"].splitlines()) <= set(after["refs"].splitlines())
    extra = set(after["git_dir"]) - set(before["git_dir"])
    assert all(p.startswith(("refs/heads/", "logs/")) for p in extra), extra
    assert not [p for p in after["git_dir"] if "modelgit-index" in p or p.endswith(".lock")]


def assert_nothing_changed(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after == before


def fails(cli: Any, *args: str, code: int) -> str:
    got, out, err = cli(*args)
    assert got == code, out + err
    assert "Traceback" not in err and "unexpectedly" not in err, err
    return err


def merge(r: Repo, branch: str, *, ff: bool = False) -> str:
    r.git("merge", "-q", "--ff-only" if ff else "--no-ff", branch, *([] if ff else ["-m", f"Merge {branch}"]))
    return r.head()


# -- 1. each verb ----------------------------------------------------------------------------------
def test_promote_commits_on_its_own_branch_and_leaves_the_checkout_alone(example_repo: Repo, cli) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    out = ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    after = state(r)

    assert_untouched_except_branch(before, after, PROMOTE_BRANCH)
    commit = r.git("rev-parse", PROMOTE_BRANCH)
    assert r.git("rev-list", "--parents", "-n1", commit).split() == [commit, before["head"]]
    assert r.git("log", "-1", "--format=%B", PROMOTE_BRANCH) == (
        "calling_score: promote v2.0-real to active (was v1.0-hybrid)\n"
        "\n"
        "Modelgit-Model: calling_score\n"
        "Modelgit-Action: promote\n"
        "Modelgit-Version: v2.0-real"
    )
    assert trailers(r, PROMOTE_BRANCH) == {"Modelgit-Model": "calling_score", "Modelgit-Action": "promote",
                                           "Modelgit-Version": "v2.0-real"}
    assert r.git("diff", "--name-only", "main", PROMOTE_BRANCH) == MODEL
    assert out.splitlines()[:2] == ["calling_score: promote v2.0-real to active (was v1.0-hybrid)",
                                    f"committed {commit[:12]} on new branch {PROMOTE_BRANCH}"]
    # The branch is what CI would see: valid, and a legal change against main.
    ok(cli, "-C", str(r.root), "validate", "--ref", PROMOTE_BRANCH, "--base", "main")


VERBS = [
    # args, branch suffix, action, version trailer, expected statuses, expected traffic, weights
    (["promote", "calling_score", "v2.0-real"], "promote-v2.0-real", "promote", "v2.0-real",
     {"v1.0-hybrid": "deprecated", "v2.0-real": "active"}, None, {"v1.0-hybrid": 0.1, "v2.0-real": 0.3}),
    # Archiving the staging version gives its 10 % back to the active one.
    (["archive", "calling_score", "v2.0-real"], "archive-v2.0-real", "archive", "v2.0-real",
     {"v1.0-hybrid": "active", "v2.0-real": "archived"}, {"v1.0-hybrid": 100},
     {"v1.0-hybrid": 0.1, "v2.0-real": 0.3}),
    (["weight", "calling_score", "v2.0-real", "0.5"], "weight-v2.0-real", "weight", "v2.0-real",
     {"v1.0-hybrid": "active", "v2.0-real": "staging"}, {"v1.0-hybrid": 90, "v2.0-real": 10},
     {"v1.0-hybrid": 0.1, "v2.0-real": 0.5}),
    (["split", "calling_score", "v1.0-hybrid=80", "v2.0-real=20"], "split-80-20", "split", None,
     {"v1.0-hybrid": "active", "v2.0-real": "staging"}, {"v1.0-hybrid": 80, "v2.0-real": 20},
     {"v1.0-hybrid": 0.1, "v2.0-real": 0.3}),
    (["ab", "start", "calling_score", "v2.0-real", "--traffic", "25"], "ab-start-v2.0-real", "ab-start",
     "v2.0-real", {"v1.0-hybrid": "active", "v2.0-real": "staging"}, {"v1.0-hybrid": 75, "v2.0-real": 25},
     {"v1.0-hybrid": 0.1, "v2.0-real": 0.3}),
    (["ab", "stop", "calling_score", "--promote"], "ab-stop-v2.0-real", "ab-stop", "v2.0-real",
     {"v1.0-hybrid": "deprecated", "v2.0-real": "active"}, None, {"v1.0-hybrid": 0.1, "v2.0-real": 0.3}),
    (["ab", "stop", "calling_score", "--abandon"], "ab-stop-v2.0-real", "ab-stop", "v2.0-real",
     {"v1.0-hybrid": "active", "v2.0-real": "staging"}, None, {"v1.0-hybrid": 0.1, "v2.0-real": 0.3}),
]


@pytest.mark.parametrize(("args", "suffix", "action", "version", "want_status", "want_traffic", "want_weights"),
                         VERBS, ids=[" ".join(v[0]) for v in VERBS])
def test_each_verb_makes_one_validated_commit_on_its_branch(
    example_repo: Repo, cli, args: list[str], suffix: str, action: str, version: str | None,
    want_status: dict[str, str], want_traffic: dict[str, int] | None, want_weights: dict[str, float],
) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    ok(cli, "-C", str(r.root), *args)
    branch = f"modelgit/calling_score/{suffix}"
    assert_untouched_except_branch(before, state(r), branch)

    expected_trailers = {"Modelgit-Model": "calling_score", "Modelgit-Action": action}
    if version:
        expected_trailers["Modelgit-Version"] = version
    assert trailers(r, branch) == expected_trailers
    subject, blank, *rest = r.git("log", "-1", "--format=%B", branch).splitlines()
    assert subject.startswith("calling_score: ") and blank == "" and rest
    assert r.git("rev-parse", f"{branch}~1") == before["head"]
    assert r.git("diff", "--name-only", "main", branch) == MODEL

    data = model_at(r, branch)
    assert statuses(data) == want_status
    assert data.get("traffic") == want_traffic
    assert {v["version"]: v.get("weight") for v in data["versions"]} == want_weights
    # Nothing else in the file changed meaning.
    old = model_at(r, "main")
    for key in ("name", "description", "owner", "task", "evaluation", "policy"):
        assert data[key] == old[key]
    for new_v, old_v in zip(data["versions"], old["versions"], strict=True):
        assert {k: v for k, v in new_v.items() if k not in ("status", "weight")} == \
            {k: v for k, v in old_v.items() if k not in ("status", "weight")}
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_namespaced_hosted_model_gets_a_namespaced_branch(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "promote", "openrouter/qwen-2.5-7b-instruct", "1.0.0")
    branch = "modelgit/openrouter/qwen-2.5-7b-instruct/promote-1.0.0"
    assert trailers(r, branch) == {"Modelgit-Model": "openrouter/qwen-2.5-7b-instruct",
                                   "Modelgit-Action": "promote", "Modelgit-Version": "1.0.0"}
    assert statuses(model_at(r, branch, "openrouter/qwen-2.5-7b-instruct")) == {
        "1.0.0": "active", "1.1.0": "deprecated"}


def test_branch_option_names_the_branch_and_dry_run_commits_nothing(example_repo: Repo, cli) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    out = ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--dry-run")
    assert "-    status: staging\n+    status: active\n" in out
    assert state(r) == before
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--branch", "release/cs-v2")
    assert_untouched_except_branch(before, state(r), "release/cs-v2")
    assert statuses(model_at(r, "release/cs-v2"))["v2.0-real"] == "active"


def test_json_outcome_names_branch_commit_and_files(example_repo: Repo, cli) -> None:
    import json

    r = example_repo
    data = json.loads(ok(cli, "-C", str(r.root), "weight", "calling_score", "v1.0-hybrid", "0.2", "--json"))
    branch = "modelgit/calling_score/weight-v1.0-hybrid"
    assert data["branch"] == branch and data["commit"] == r.git("rev-parse", branch)
    assert data["base"] == r.head() and data["files"] == [MODEL] and data["action"] == "weight"
    assert "-    weight: 0.1\n+    weight: 0.2\n" in data["diff"]


# -- register ----------------------------------------------------------------------------------------
def test_register_copies_a_local_onnx_file_with_its_digest_and_signature(
        example_repo: Repo, cli, onnx_files: dict[str, Path]) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", str(onnx_files["same"]),
       "--metric", "rmse=51.2", "--improvement", "more data", "--data-source", "real_outcomes",
       "--trained", "2026-03-01")
    branch = "modelgit/calling_score/register-v3.0"
    assert_untouched_except_branch(before, state(r), branch)
    assert trailers(r, branch) == {"Modelgit-Model": "calling_score", "Modelgit-Action": "register",
                                   "Modelgit-Version": "v3.0"}

    target = "registry/artifacts/calling_score/v3.0.onnx"
    data = onnx_files["same"].read_bytes()
    assert show_bytes(r, branch, target) == data
    assert sorted(r.git("diff", "--name-only", "main", branch).splitlines()) == sorted([MODEL, target])
    entry = model_at(r, branch)["versions"][-1]
    assert entry == {
        "version": "v3.0",
        "status": "staging",
        "artifact": {"path": target, "sha256": hashlib.sha256(data).hexdigest(), "signature": signature(10)},
        "data_source": "real_outcomes",
        "trained": datetime.date(2026, 3, 1),  # PyYAML reads a date: it was written unquoted
        "metrics": {"rmse": 51.2},
        "improvements": ["more data"],
    }
    assert "    trained: 2026-03-01\n" in show_bytes(r, branch, MODEL).decode()
    # Appended as the newest version; the rest of the file is byte for byte the same.
    old_text = show_bytes(r, "main", MODEL).decode()
    new_text = show_bytes(r, branch, MODEL).decode()
    anchor = "      - trained on real outcomes instead of the hybrid set\n"
    assert new_text.startswith(old_text.split(anchor)[0] + anchor + "  - version: v3.0\n")
    traffic = "traffic:  # A/B split in percent\n"
    assert new_text.endswith(traffic + old_text.split(traffic)[1])
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_register_refuses_a_signature_change_unless_it_is_declared_breaking(
        example_repo: Repo, cli, onnx_files: dict[str, Path]) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact",
                str(onnx_files["other"]), code=1)
    assert err == ("error: 'v3.0' changes the inputs/outputs of active version 'v1.0-hybrid'\n"
                   "hint: describe it with --breaking-change TEXT (and --migration-notes)\n")
    assert_nothing_changed(before, state(r))

    ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", str(onnx_files["other"]),
       "--breaking-change", "takes 12 features instead of 10", "--migration-notes", "send the 2 new features")
    branch = "modelgit/calling_score/register-v3.0"
    entry = model_at(r, branch)["versions"][-1]
    assert entry["artifact"]["signature"] == signature(12)
    assert entry["artifact"]["sha256"] == hashlib.sha256(onnx_files["other"].read_bytes()).hexdigest()
    assert entry["breaking_changes"] == ["takes 12 features instead of 10"]
    assert entry["migration_notes"] == "send the 2 new features"
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_register_records_a_uri_artifact_with_its_sha256(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", URI, "--sha256", URI_SHA,
       "--weight", "0.25", "--trained", "2026-03-01")
    branch = "modelgit/calling_score/register-v3.0"
    assert r.git("diff", "--name-only", "main", branch) == MODEL  # nothing downloaded or copied
    entry = model_at(r, branch)["versions"][-1]
    assert entry == {"version": "v3.0", "status": "staging", "weight": 0.25,
                     "artifact": {"uri": URI, "sha256": URI_SHA}, "trained": datetime.date(2026, 3, 1)}
    assert f"Artifact: {URI}" in r.git("log", "-1", "--format=%b", branch)


def test_register_a_new_model_needs_task(example_repo: Repo, cli, onnx_files: dict[str, Path]) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "register", "team/ranker", "v1", "--artifact", str(onnx_files["same"]),
                code=2)
    assert err.startswith("error: unknown model 'team/ranker'\nhint: to create a new model pass --task")
    assert_nothing_changed(before, state(r))

    ok(cli, "-C", str(r.root), "register", "team/ranker", "v1", "--artifact", str(onnx_files["same"]),
       "--task", "regression", "--trained", "2026-03-01")
    branch = "modelgit/team/ranker/register-v1"
    assert sorted(r.git("diff", "--name-only", "main", branch).splitlines()) == [
        "registry/artifacts/team/ranker/v1.onnx", "registry/models/team/ranker.yaml"]
    text = show_bytes(r, branch, "registry/models/team/ranker.yaml").decode()
    # Three levels below the repository root, like the example's namespaced model.
    assert text.startswith("# yaml-language-server: $schema=../../../schemas/model.schema.json\n")
    data = yaml.safe_load(text)
    assert data["name"] == "team/ranker" and data["task"] == "regression"
    assert statuses(data) == {"v1": "staging"}
    assert data["versions"][0]["artifact"]["sha256"] == hashlib.sha256(onnx_files["same"].read_bytes()).hexdigest()
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_register_reads_a_relative_artifact_path_from_the_C_directory(
        example_repo: Repo, cli, onnx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    r = example_repo
    (r.root / "build").mkdir()
    shutil.copyfile(onnx_files["same"], r.root / "build" / "model.onnx")
    r.git("add", "build")  # staged, not committed: still only read from disk
    monkeypatch.chdir(r.root.parent)  # "-C PATH: run as if started in PATH"
    ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", "build/model.onnx")
    assert show_bytes(r, "modelgit/calling_score/register-v3.0", "registry/artifacts/calling_score/v3.0.onnx") \
        == onnx_files["same"].read_bytes()


def test_register_refuses_a_local_file_whose_sha256_is_not_the_one_given(
        example_repo: Repo, cli, onnx_files: dict[str, Path]) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact",
                str(onnx_files["same"]), "--sha256", URI_SHA, code=1)
    actual = hashlib.sha256(onnx_files["same"].read_bytes()).hexdigest()
    assert f"sha256 is {actual}, not the {URI_SHA} given" in err
    assert_nothing_changed(before, state(r))


# -- 2. minimal diffs --------------------------------------------------------------------------------
def test_promote_changes_exactly_the_status_lines_and_drops_the_split(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    old = (EXAMPLE / "models" / "calling_score.yaml").read_bytes()
    # Written by hand from the example file: v1.0-hybrid active → deprecated (line 12), v2.0-real
    # staging → active (line 26), and the 90/10 split (lines 41-43) no longer applies. Comments,
    # key order, flow mappings and the unquoted dates stay as they are.
    expected = (old.decode()
                .replace("  - version: v1.0-hybrid\n    status: active\n",
                         "  - version: v1.0-hybrid\n    status: deprecated\n")
                .replace("  - version: v2.0-real\n    status: staging\n",
                         "  - version: v2.0-real\n    status: active\n")
                .replace("traffic:  # A/B split in percent\n  v1.0-hybrid: 90\n  v2.0-real: 10\n", "")).encode()
    assert show_bytes(r, PROMOTE_BRANCH, MODEL) == expected
    assert git_raw(r, "diff", "--full-index", "main", PROMOTE_BRANCH) == f"""\
diff --git a/{MODEL} b/{MODEL}
index {blob_sha1(old)}..{blob_sha1(expected)} 100644
--- a/{MODEL}
+++ b/{MODEL}
@@ -9,7 +9,7 @@ evaluation:
   primary: rmse
 versions:  # release order, newest last
   - version: v1.0-hybrid
-    status: active
+    status: deprecated
     weight: 0.1
     artifact:
       path: registry/artifacts/calling_score_v1_0_hybrid.onnx
@@ -23,7 +23,7 @@ versions:  # release order, newest last
     trained: 2025-12-28
     metrics: {{test_loss: 0.0267}}
   - version: v2.0-real
-    status: staging
+    status: active
     weight: 0.3
     artifact:
       path: registry/artifacts/calling_score_v2_0_real.onnx
@@ -38,9 +38,6 @@ versions:  # release order, newest last
     metrics: {{test_loss: 0.0198}}
     improvements:
       - trained on real outcomes instead of the hybrid set
-traffic:  # A/B split in percent
-  v1.0-hybrid: 90
-  v2.0-real: 10
 policy:
   auto_upgrade: false
   min_quality_improvement: 0.1
"""


HAND_WRITTEN = """\
# Written by hand: 4-space indentation, dashes indented too, quotes and comments everywhere.
name: "ranker"
description: 'Ranks candidates; edited by people.'   # single-quoted on purpose
task: regression

versions:
    # oldest first
    -   version: "1.0"
        status: active      # serving since January
        weight: 0.5
        artifact: {{uri: "https://models.example/ranker/1.0.onnx", sha256: {a}}}
    -   version: '1.1'
        status: staging
        artifact:
            uri: https://models.example/ranker/1.1.onnx
            sha256: "{b}"   # quoted digest

# control vs candidate
traffic:
    "1.0": 80   # control
    '1.1': 20   # candidate
policy:
    auto_upgrade: false
""".format(a="a" * 64, b="b" * 64)


@pytest.fixture
def hand_repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path / "hand")
    r.write("registry/modelgit.yaml", (EXAMPLE / "modelgit.yaml").read_text())
    r.write("registry/models/ranker.yaml", HAND_WRITTEN)
    r.commit("Add ranker by hand")
    return r


@pytest.mark.parametrize(("args", "branch", "expected"), [
    # An existing weight: one line changes.
    (["weight", "ranker", "1.0", "0.25"], "weight-1.0",
     HAND_WRITTEN.replace("        weight: 0.5\n", "        weight: 0.25\n")),
    # A new weight: one line, after status, at the file's own indentation.
    (["weight", "ranker", "1.1", "0.75"], "weight-1.1",
     HAND_WRITTEN.replace("        status: staging\n", "        status: staging\n        weight: 0.75\n")),
    # A new split: the numbers change; quoted keys and their comments stay.
    (["split", "ranker", "1.0=50", "1.1=50"], "split-50-50",
     HAND_WRITTEN.replace('"1.0": 80   # control', '"1.0": 50   # control')
                 .replace("'1.1': 20   # candidate", "'1.1': 50   # candidate")),
    # Promote: two status values change (the comment keeps its column), the split goes, the
    # comment above it stays.
    (["promote", "ranker", "1.1"], "promote-1.1",
     HAND_WRITTEN.replace("        status: active      # serving", "        status: deprecated  # serving")
                 .replace("        status: staging\n", "        status: active\n")
                 .replace("""traffic:\n    "1.0": 80   # control\n    '1.1': 20   # candidate\n""", "")),
], ids=["weight existing", "weight new", "split", "promote"])
def test_hand_written_layout_quotes_and_comments_survive(hand_repo: Repo, cli, args: list[str], branch: str,
                                                        expected: str) -> None:
    r = hand_repo
    ok(cli, "-C", str(r.root), *args)
    assert show_bytes(r, f"modelgit/ranker/{branch}", "registry/models/ranker.yaml").decode() == expected
    ok(cli, "-C", str(r.root), "validate", "--ref", f"modelgit/ranker/{branch}", "--base", "main")


def test_values_aligned_by_hand_stay_aligned_on_lines_not_edited(repo: Repo, cli) -> None:
    # No indentation setting reproduces this file exactly (ruamel.yaml writes one space after a
    # colon); only the edited line may change.
    text = (
        "name: aligned\n"
        "task: regression\n"
        "versions:\n"
        "  - version: v1\n"
        "    status:  active\n"
        "    weight:  0.5\n"
        f"    artifact: {{uri: 'https://models.example/v1.onnx', sha256: {'c' * 64}}}\n"
        "  - version: v2\n"
        "    status:  staging\n"
        "    weight:  0.25\n"
        f"    artifact: {{uri: 'https://models.example/v2.onnx', sha256: {'d' * 64}}}\n"
    )
    repo.write("registry/modelgit.yaml", "schema_version: 1\n")
    repo.write("registry/models/aligned.yaml", text)
    repo.commit("aligned")
    ok(cli, "-C", str(repo.root), "weight", "aligned", "v2", "0.75")
    assert show_bytes(repo, "modelgit/aligned/weight-v2", "registry/models/aligned.yaml").decode() == \
        text.replace("    weight:  0.25\n", "    weight: 0.75\n")


def test_register_keeps_the_comment_above_the_next_block_in_place(hand_repo: Repo, cli) -> None:
    r = hand_repo
    ok(cli, "-C", str(r.root), "register", "ranker", "1.2", "--artifact", "https://models.example/ranker/1.2.onnx",
       "--sha256", "e" * 64, "--trained", "2026-03-01")
    new = show_bytes(r, "modelgit/ranker/register-1.2", "registry/models/ranker.yaml").decode()
    block = (
        "    -   version: '1.2'\n"
        "        status: staging\n"
        "        artifact:\n"
        "            uri: https://models.example/ranker/1.2.onnx\n"
        f"            sha256: {'e' * 64}\n"
        "        trained: 2026-03-01\n"  # a date is written as people write it: unquoted
    )
    anchor = f'            sha256: "{"b" * 64}"   # quoted digest\n'
    assert new == HAND_WRITTEN.replace(anchor, anchor + block)


# -- 3. rollback ---------------------------------------------------------------------------------------
def test_rollback_of_a_merged_promotion_restores_the_file_byte_for_byte(example_repo: Repo, cli) -> None:
    r = example_repo
    original = (r.root / MODEL).read_bytes()
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    merged = merge(r, PROMOTE_BRANCH)
    assert (r.root / MODEL).read_bytes() != original
    settle(r)
    before = state(r)

    ok(cli, "-C", str(r.root), "rollback", "calling_score")
    branch = f"modelgit/calling_score/rollback-{merged[:10]}"
    assert_untouched_except_branch(before, state(r), branch)
    assert show_bytes(r, branch, MODEL) == original
    assert r.git("diff", "--name-only", "main", branch) == MODEL
    message = r.git("log", "-1", "--format=%B", branch)
    assert message.startswith(f'Revert "Merge {PROMOTE_BRANCH}"\n\nThis reverts commit {merged}.\n\n')
    assert trailers(r, branch) == {"Modelgit-Model": "calling_score", "Modelgit-Action": "rollback",
                                   "Modelgit-Reverts": merged}
    # staging ← active is not a legal move on its own; as the undo of a revert it is.
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")
    merge(r, branch)
    assert (r.root / MODEL).read_bytes() == original


def test_rollback_finds_a_fast_forwarded_promotion_by_its_trailers(example_repo: Repo, cli) -> None:
    r = example_repo
    original = (r.root / MODEL).read_bytes()
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    promoted = merge(r, PROMOTE_BRANCH, ff=True)
    # An unrelated later commit on the same file does not hide it.
    (r.root / MODEL).write_text((r.root / MODEL).read_text().replace("owner: ml-platform", "owner: ranking-team"))
    r.commit("Hand the model to the ranking team")
    ok(cli, "-C", str(r.root), "rollback", "calling_score")
    branch = f"modelgit/calling_score/rollback-{promoted[:10]}"
    assert r.git("log", "-1", "--format=%s", branch) == \
        'Revert "calling_score: promote v2.0-real to active (was v1.0-hybrid)"'
    assert show_bytes(r, branch, MODEL) == original.replace(b"owner: ml-platform", b"owner: ranking-team")
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_rollback_undoes_the_newest_serving_change_only(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    merge(r, PROMOTE_BRANCH)
    after_promote = (r.root / MODEL).read_bytes()
    ok(cli, "-C", str(r.root), "weight", "calling_score", "v2.0-real", "0.9")
    weighted = merge(r, "modelgit/calling_score/weight-v2.0-real")
    ok(cli, "-C", str(r.root), "rollback", "calling_score")
    assert show_bytes(r, f"modelgit/calling_score/rollback-{weighted[:10]}", MODEL) == after_promote


def test_rollback_that_conflicts_names_the_later_commit_and_leaves_nothing(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    merged = merge(r, PROMOTE_BRANCH)
    # Not a serving change (the status stays deprecated), but on the very line the revert needs.
    text = (r.root / MODEL).read_text()
    assert text.count("    status: deprecated\n") == 1
    (r.root / MODEL).write_text(text.replace("    status: deprecated\n",
                                             "    status: deprecated  # replaced by v2.0-real\n"))
    later = r.commit("Say why v1.0-hybrid is deprecated")
    settle(r)
    before = state(r)
    temp_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "modelgit-merge-*")))

    err = fails(cli, "-C", str(r.root), "rollback", "calling_score", code=1)
    assert err == (
        f"error: cannot revert {merged[:12]} ('Merge {PROMOTE_BRANCH}'): later commit {later[:12]} "
        f"('Say why v1.0-hybrid is deprecated') changed the same lines of {MODEL}; nothing was committed\n"
        "hint: make the old version active again instead: modelgit rollback calling_score --to v1.0-hybrid\n"
    )
    assert_nothing_changed(before, state(r))
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "modelgit-merge-*"))) == temp_before

    # The suggested forward change works, keeps the new comment and is a legal pull request.
    ok(cli, "-C", str(r.root), "rollback", "calling_score", "--to", "v1.0-hybrid")
    branch = "modelgit/calling_score/rollback-v1.0-hybrid"
    data = model_at(r, branch)
    assert statuses(data) == {"v1.0-hybrid": "active", "v2.0-real": "deprecated"}
    assert "# replaced by v2.0-real" in show_bytes(r, branch, MODEL).decode()
    assert trailers(r, branch) == {"Modelgit-Model": "calling_score", "Modelgit-Action": "rollback",
                                   "Modelgit-Version": "v1.0-hybrid"}
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_rollback_with_no_earlier_state_refuses(example_repo: Repo, cli) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "rollback", "calling_score", code=1)
    # The one commit that touched the file created it: nothing served before it.
    assert err == "error: no commit changed what 'calling_score' serves; nothing to roll back\n"
    assert_nothing_changed(before, state(r))


# -- 5. safety -----------------------------------------------------------------------------------------
def modelgit_command() -> list[str]:
    script = Path(sys.executable).parent / "modelgit"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from modelgit.cli import main; main()"]


def test_proposals_running_at_the_same_time_each_get_their_branch(example_repo: Repo) -> None:
    r = example_repo
    # The user is mid-edit while the proposals run.
    (r.root / MODEL).write_text((r.root / MODEL).read_text() + "# half-written note\n")
    r.write("notes.txt", "untracked\n")
    settle(r)
    before = state(r)
    jobs = {
        "modelgit/calling_score/promote-v2.0-real": ["promote", "calling_score", "v2.0-real"],
        "modelgit/calling_score/weight-v1.0-hybrid": ["weight", "calling_score", "v1.0-hybrid", "0.2"],
        "modelgit/calling_score/split-70-30": ["split", "calling_score", "v1.0-hybrid=70", "v2.0-real=30"],
        "modelgit/outcome_prediction/promote-v2.0-real": ["promote", "outcome_prediction", "v2.0-real"],
    }
    procs = {branch: subprocess.Popen([*modelgit_command(), "-C", str(r.root), *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for branch, args in jobs.items()}
    for branch, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (branch, out, err)
    after = state(r)
    for key in ("index", "head", "head_ref", "status", "stage", "files"):
        assert after[key] == before[key], key
    assert sorted(branches(r)) == sorted(["main", *jobs])
    assert not [p for p in after["git_dir"] if "modelgit-index" in p or p.endswith(".lock")]
    for branch in jobs:
        assert r.git("rev-parse", f"{branch}~1") == before["head"]
        assert len(r.git("diff", "--name-only", "main", branch).splitlines()) == 1
    assert model_at(r, "modelgit/calling_score/weight-v1.0-hybrid")["versions"][0]["weight"] == 0.2
    assert model_at(r, "modelgit/calling_score/split-70-30")["traffic"] == {"v1.0-hybrid": 70, "v2.0-real": 30}
    assert statuses(model_at(r, "modelgit/outcome_prediction/promote-v2.0-real", "outcome_prediction")) == {
        "v1.0-hybrid": "deprecated", "v2.0-real": "active"}


def test_the_same_proposal_three_times_at_once_makes_one_branch(example_repo: Repo) -> None:
    r = example_repo
    head = r.head()
    procs = [subprocess.Popen([*modelgit_command(), "-C", str(r.root), "promote", "calling_score", "v2.0-real"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, err in results:
        if code:
            assert f"branch '{PROMOTE_BRANCH}' already exists" in err
    assert branches(r) == ["main", PROMOTE_BRANCH]
    assert r.git("rev-parse", f"{PROMOTE_BRANCH}~1") == head and r.head() == head
    assert not [p for p in (r.root / ".git").iterdir() if p.name.startswith("modelgit-index")]


def test_uncommitted_staged_and_untracked_work_is_kept_byte_for_byte(
        example_repo: Repo, cli, onnx_files: dict[str, Path]) -> None:
    r = example_repo
    model = r.root / MODEL
    model.write_text(model.read_text().replace("owner: ml-platform", "owner: me"))  # unstaged, same file
    other = r.root / "registry/models/outcome_prediction.yaml"
    other.write_text(other.read_text() + "# staged note\n")
    r.git("add", "registry/models/outcome_prediction.yaml")
    r.write("registry/models/draft.yaml", "name: [broken\n")  # untracked and invalid: ignored
    r.write("registry/artifacts/calling_score/v3.0.onnx", b"untracked bytes where register writes")
    settle(r)
    before = state(r)
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    assert_untouched_except_branch(before, state(r), PROMOTE_BRANCH)
    before = state(r)
    ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", str(onnx_files["same"]))
    assert_untouched_except_branch(before, state(r), "modelgit/calling_score/register-v3.0")
    # The commit has the committed file with the change, not the user's edit.
    assert "owner: ml-platform" in show_bytes(r, PROMOTE_BRANCH, MODEL).decode()
    assert show_bytes(r, "modelgit/calling_score/register-v3.0", "registry/artifacts/calling_score/v3.0.onnx") \
        == onnx_files["same"].read_bytes()


def test_on_current_branch_commits_and_updates_exactly_the_touched_file(example_repo: Repo, cli) -> None:
    r = example_repo
    other = r.root / "registry/models/outcome_prediction.yaml"
    other.write_text(other.read_text() + "# my unrelated edit\n")
    r.write("scratch.txt", "untracked\n")
    head = r.head()
    before_other = other.read_bytes()
    out = ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch")
    new_head = r.head()
    assert f"committed {new_head[:12]} on main" in out
    assert r.git("rev-parse", "HEAD~1") == head and r.git("symbolic-ref", "HEAD") == "refs/heads/main"
    assert branches(r) == ["main"]
    assert trailers(r, "HEAD")["Modelgit-Action"] == "promote"
    assert r.git("diff", "--name-only", head, new_head) == MODEL
    # Working tree and index of the touched file are at the new commit; the rest is as it was.
    assert (r.root / MODEL).read_bytes() == show_bytes(r, "HEAD", MODEL)
    assert git_raw(r, "status", "--porcelain", "--untracked-files=all") == \
        " M registry/models/outcome_prediction.yaml\n?? scratch.txt\n"
    assert other.read_bytes() == before_other


def test_on_current_branch_refuses_when_the_touched_file_has_edits(example_repo: Repo, cli) -> None:
    r = example_repo
    model = r.root / MODEL
    for stage in (False, True):
        model.write_text(model.read_text() + "# mine\n")
        if stage:
            r.git("add", MODEL)
        settle(r)
        before = state(r)
        err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch", code=2)
        assert err.startswith("error: the files this change touches have uncommitted edits; nothing was changed\n")
        assert MODEL in err
        assert_nothing_changed(before, state(r))


def test_on_current_branch_refuses_a_ref_that_is_not_head(example_repo: Repo, cli) -> None:
    r = example_repo
    base = r.head()
    r.write("README.txt", "later\n")
    r.commit("later")
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch",
                "--ref", base, code=2)
    assert "--on-current-branch commits on top of HEAD, but --ref names another commit" in err
    assert_nothing_changed(before, state(r))
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch", "--ref", "main")


def test_ref_builds_on_another_commit(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "archive", "calling_score", "v2.0-real")
    archived = "modelgit/calling_score/archive-v2.0-real"
    ok(cli, "-C", str(r.root), "weight", "calling_score", "v1.0-hybrid", "0.4", "--ref", archived)
    branch = "modelgit/calling_score/weight-v1.0-hybrid"
    assert r.git("rev-parse", f"{branch}~1") == r.git("rev-parse", archived)
    assert statuses(model_at(r, branch))["v2.0-real"] == "archived"


# -- 6. bad inputs -----------------------------------------------------------------------------------
def _archive_v2(r: Repo, cli: Any) -> None:
    ok(cli, "-C", str(r.root), "archive", "calling_score", "v2.0-real", "--on-current-branch")


def _branch_exists(r: Repo, cli: Any) -> None:
    r.git("branch", PROMOTE_BRANCH)


def _detach(r: Repo, cli: Any) -> None:
    r.git("checkout", "-q", "--detach")


BAD = [
    # id, setup, args, exit code, text the message must hold
    ("unknown model", None, ["promote", "calling_scor", "v2.0-real"], 2,
     ["error: unknown model 'calling_scor' at ", "hint: did you mean calling_score?"]),
    ("unknown version", None, ["promote", "calling_score", "v9.9"], 2,
     ["error: model 'calling_score' has no version 'v9.9'\nhint: known versions: v1.0-hybrid, v2.0-real\n"]),
    ("archive active", None, ["archive", "calling_score", "v1.0-hybrid"], 1,
     ["error: cannot archive active version 'v1.0-hybrid' of 'calling_score'\nhint: promote another version "
      "first (this one then becomes deprecated), or retire the model\n"]),
    ("promote archived", _archive_v2, ["promote", "calling_score", "v2.0-real"], 1,
     ["error: cannot promote archived version 'v2.0-real' of 'calling_score'\n"
      "hint: only staging or deprecated versions can become active\n"]),
    ("promote active", None, ["promote", "calling_score", "v1.0-hybrid"], 1,
     ["error: 'calling_score' version 'v1.0-hybrid' is already active; nothing to change\n"]),
    ("deprecate staging", None, ["deprecate", "calling_score", "v2.0-real"], 1,
     ["error: cannot deprecate staging version 'v2.0-real' of 'calling_score'\n"]),
    ("split sum", None, ["split", "calling_score", "v1.0-hybrid=80", "v2.0-real=30"], 1,
     ["error: split sums to 110, not 100\nhint: make the percentages add up to 100\n"]),
    ("split archived", _archive_v2, ["split", "calling_score", "v1.0-hybrid=90", "v2.0-real=10"], 1,
     ["error: version 'v2.0-real' is archived; only active or staging versions take traffic\n"]),
    ("split without active", None, ["split", "calling_score", "v2.0-real=100"], 1,
     ["error: the change would make the registry invalid; nothing was committed\n",
      "RULE014 traffic leaves out the active version 'v1.0-hybrid'"]),
    ("split syntax", None, ["split", "calling_score", "v1.0-hybrid:80"], 2,
     ["error: 'v1.0-hybrid:80' is not VERSION=PERCENT\n"]),
    ("weight above 1", None, ["weight", "calling_score", "v1.0-hybrid", "1.5"], 2,
     ["error: weight 1.5 is outside [0, 1]\nhint: a blend weight is between 0 and 1\n"]),
    ("weight below 0", None, ["weight", "calling_score", "v1.0-hybrid", "--", "-0.1"], 2,
     ["error: weight -0.1 is outside [0, 1]\n"]),
    ("weight nan", None, ["weight", "calling_score", "v1.0-hybrid", "nan"], 2,
     ["error: weight nan is outside [0, 1]\n"]),
    ("ab start on active", None, ["ab", "start", "calling_score", "v1.0-hybrid", "--traffic", "10"], 1,
     ["error: an A/B test needs a staging version; 'v1.0-hybrid' is active\n"]),
    ("ab stop without test", None, ["ab", "stop", "outcome_prediction", "--promote"], 1,
     ["error: 'outcome_prediction' has no A/B test running"]),
    ("artifact missing", None, ["register", "calling_score", "v3.0", "--artifact", "{tmp}/nope.onnx"], 1,
     ["error: {tmp}/nope.onnx: artifact file not found\nhint: pass the path of an .onnx file\n"]),
    ("artifact not onnx", None, ["register", "calling_score", "v3.0", "--artifact", "{junk}"], 1,
     ["error: {junk}: not a loadable ONNX model: ", "hint: pass an ONNX model file\n"]),
    ("artifact directory", None, ["register", "calling_score", "v3.0", "--artifact", "{tmp}"], 1,
     ["error: {tmp}: not a file\n"]),
    ("uri without sha256", None, ["register", "calling_score", "v3.0", "--artifact", URI], 2,
     ["error: an artifact URI needs --sha256 with its 64-hex-digit digest\n"]),
    ("version id used", None, ["register", "calling_score", "v2.0-real", "--artifact", "{same}"], 1,
     ["error: version id 'v2.0-real' is already used by 'calling_score'\n"
      "hint: a new artifact is a new version: pick a new version id\n"]),
    ("version id invalid", None, ["register", "calling_score", "v3/x", "--artifact", URI, "--sha256", URI_SHA], 2,
     ["error: 'v3/x' is not a valid version id\n"]),
    ("branch exists", _branch_exists, ["promote", "calling_score", "v2.0-real"], 2,
     [f"error: branch '{PROMOTE_BRANCH}' already exists; nothing was committed\n"
      f"hint: pass --branch NAME, or delete it: git branch -D {PROMOTE_BRANCH}\n"]),
    ("bad branch name", None, ["promote", "calling_score", "v2.0-real", "--branch", "bad..name"], 2,
     ["error: 'bad..name' is not a valid branch name\n"]),
    ("bad branch name, dry run", None, ["promote", "calling_score", "v2.0-real", "--branch", "bad..name",
                                        "--dry-run"], 2, ["error: 'bad..name' is not a valid branch name\n"]),
    ("unknown ref", None, ["promote", "calling_score", "v2.0-real", "--ref", "nope"], 2,
     ["error: unknown git ref 'nope'\n"]),
    ("detached on current branch", _detach, ["promote", "calling_score", "v2.0-real", "--on-current-branch"], 2,
     ["error: HEAD is detached; --on-current-branch needs a checked-out branch\n"]),
    ("model id dot-dot", None, ["promote", "../calling_score", "v2.0-real"], 2,
     ["error: '../calling_score' is not a valid model id\n"]),
    ("model id dot-dot inside", None, ["register", "team/../x", "v1", "--artifact", URI, "--sha256", URI_SHA,
                                       "--task", "regression"], 2,
     ["error: 'team/../x' is not a valid model id\n"]),
    ("model id absolute", None, ["register", "/etc/x", "v1", "--artifact", URI, "--sha256", URI_SHA,
                                 "--task", "regression"], 2,
     ["error: '/etc/x' is not a valid model id\n"]),
    ("model id uppercase", None, ["register", "Ranker", "v1", "--artifact", URI, "--sha256", URI_SHA,
                                  "--task", "regression"], 2,
     ["error: 'Ranker' is not a valid model id\n", "hint: use lowercase letters"]),
]


@pytest.mark.parametrize(("setup", "args", "code", "messages"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_refused_clearly_and_commits_nothing(
        example_repo: Repo, cli, onnx_files: dict[str, Path], tmp_path: Path,
        setup: Any, args: list[str], code: int, messages: list[str]) -> None:
    r = example_repo
    if setup is not None:
        setup(r, cli)
    values = {"tmp": str(tmp_path), "junk": str(onnx_files["junk"]), "same": str(onnx_files["same"])}
    args = [a.format(**values) for a in args]
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), *args, code=code)
    for message in messages:
        assert message.format(**values) in err
    assert err.startswith(("error: ", "Usage: ")), err
    assert_nothing_changed(before, state(r))


def test_outside_a_git_repository(tmp_path: Path, cli) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(EXAMPLE, plain / "registry")
    err = fails(cli, "-C", str(plain), "promote", "calling_score", "v2.0-real", code=2)
    assert err.startswith(f"error: {plain.resolve()}: not a git repository\n")
    assert not (plain / ".git").exists()


def test_push_failure_says_the_commit_is_there(example_repo: Repo, cli) -> None:
    r = example_repo
    err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--push", "nowhere", code=1)
    commit = r.git("rev-parse", PROMOTE_BRANCH)
    assert err.startswith(f"error: committed {commit[:12]} on {PROMOTE_BRANCH}, but pushing it to 'nowhere' failed: ")
    assert f"hint: the commit is there; push it when the remote is reachable: git push nowhere {PROMOTE_BRANCH}" in err
