"""Hosted and file versions alike from the CLI: `register --provider/--model-id`, `modelgit dataset`
(an evaluation dataset attached with its sha256), and `check-upgrades` naming what it skipped.

Real git repositories, real ONNX files and onnxruntime runs; digests from hashlib, YAML read back
with PyYAML (the program writes with ruamel.yaml), the commit's tree listed by git itself.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm

from conftest import Repo, affine_onnx, make_repo, npz_bytes, ok
from test_proposals import assert_nothing_changed, settle, show_bytes, state, trailers

QWEN = "registry/models/openrouter/qwen-2.5-7b-instruct.yaml"
CS = "registry/models/calling_score.yaml"


def fails(cli: Any, *args: str, code: int) -> str:
    got, out, err = cli(*args)
    assert (got, out) == (code, ""), out + err
    assert "Traceback" not in err
    return err


def at(r: Repo, ref: str, path: str) -> dict[str, Any]:
    return yaml.safe_load(show_bytes(r, ref, path))


def files_changed(r: Repo, ref: str) -> list[str]:
    return r.git("diff", "--name-only", f"{ref}~1", ref).splitlines()


# -- register --provider/--model-id ---------------------------------------------------------------------
def test_register_writes_a_hosted_version(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    base = r.head()
    out = ok(cli, "-C", str(r.root), "register", "openrouter/qwen-2.5-7b-instruct", "1.2.0",
             "--provider", "openrouter", "--model-id", "qwen/qwen3-8b:free", "--improvement", "newer model")
    branch = "modelgit/openrouter/qwen-2.5-7b-instruct/register-1.2.0"
    assert f"on new branch {branch}" in out
    assert r.head() == base  # nothing checked out
    new = at(r, branch, QWEN)["versions"][-1]
    assert new == {"version": "1.2.0", "status": "staging",
                   "artifact": {"provider": "openrouter", "model_id": "qwen/qwen3-8b:free"},
                   "improvements": ["newer model"]}
    assert files_changed(r, branch) == [QWEN]  # no artifact file for a hosted version
    text = show_bytes(r, branch, QWEN).decode()
    assert text.endswith("  - version: 1.2.0\n    status: staging\n"
                         "    artifact: {provider: openrouter, model_id: qwen/qwen3-8b:free}\n"
                         "    improvements:\n      - newer model\n")
    assert trailers(r, branch) == {"Modelgit-Model": "openrouter/qwen-2.5-7b-instruct",
                                   "Modelgit-Action": "register", "Modelgit-Version": "1.2.0"}
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")


def test_register_a_new_hosted_model(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "register", "team/drafter", "1", "--provider", "openrouter",
       "--model-id", "meta-llama/llama-3.1-8b-instruct", "--task", "generation", "--trained", "2025-07-23")
    data = at(r, "modelgit/team/drafter/register-1", "registry/models/team/drafter.yaml")
    assert data == {"name": "team/drafter", "task": "generation",
                    "versions": [{"version": "1", "status": "staging", "trained": datetime.date(2025, 7, 23),
                                  "artifact": {"provider": "openrouter",
                                               "model_id": "meta-llama/llama-3.1-8b-instruct"}}]}


BAD_HOSTED = [
    ("both artifact and provider", ["--artifact", "x.onnx", "--provider", "openrouter", "--model-id", "a/b"], 2,
     "error: give --artifact PATH|URI or --provider/--model-id, not both\n"),
    ("neither", [], 2,
     "error: say what the version is: --artifact PATH|URI, or --provider P --model-id ID\n"),
    ("provider without model id", ["--provider", "openrouter"], 2,
     "error: a hosted version needs both --provider and --model-id\n"),
    ("model id without provider", ["--model-id", "qwen/qwen3-8b"], 2,
     "error: a hosted version needs both --provider and --model-id\n"),
    ("sha256 with provider", ["--provider", "openrouter", "--model-id", "a/b", "--sha256", "0" * 64], 2,
     "error: --sha256 is for an artifact URI; a hosted version has no file to digest\n"),
    ("provider uppercase", ["--provider", "OpenRouter", "--model-id", "a/b"], 2,
     "error: --provider 'OpenRouter' is not a valid provider name\n"),
    ("provider with a slash", ["--provider", "open/router", "--model-id", "a/b"], 2,
     "error: --provider 'open/router' is not a valid provider name\n"),
    ("model id with a newline", ["--provider", "openrouter", "--model-id", "a/b\nstatus: active"], 2,
     "error: --model-id 'a/b\\nstatus: active' is not a valid hosted model id\n"),
    ("model id with a space", ["--provider", "openrouter", "--model-id", "a b"], 2,
     "error: --model-id 'a b' is not a valid hosted model id\n"),
    ("model id dot-dot", ["--provider", "openrouter", "--model-id", "a/../b"], 2,
     "error: --model-id 'a/../b' is not a valid hosted model id\n"),
    ("model id leading dash", ["--provider", "openrouter", "--model-id", "-rf"], 2,
     "error: --model-id '-rf' is not a valid hosted model id\n"),
    ("model id empty", ["--provider", "openrouter", "--model-id", ""], 2,
     "error: --model-id '' is not a valid hosted model id\n"),
]


@pytest.mark.parametrize(("args", "code", "message"), [b[1:] for b in BAD_HOSTED], ids=[b[0] for b in BAD_HOSTED])
def test_bad_hosted_register_is_a_clear_usage_error(example_repo: Repo, cli: Any, args: list[str], code: int,
                                                     message: str) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "register", "openrouter/qwen-2.5-7b-instruct", "1.2.0", *args, code=code)
    assert err.startswith(message)
    assert "\nhint: " in err
    assert_nothing_changed(before, state(r))


def test_a_hosted_version_of_an_onnx_model_is_refused_by_validation(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    err = fails(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--provider", "openrouter",
                "--model-id", "qwen/qwen3-8b", code=1)
    assert err.startswith("error: the change would make the registry invalid; nothing was committed\n")
    assert "RULE003 a regression model needs an ONNX artifact (path or uri), not a provider" in err
    assert_nothing_changed(before, state(r))


# -- modelgit dataset ----------------------------------------------------------------------------------
def _diabetes_like(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.05, (rows, 10)).astype(np.float32), rng.normal(150, 70, rows)


def test_dataset_attaches_a_new_file_with_its_sha256_in_one_commit(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    x, y = _diabetes_like(60, 7)
    data = npz_bytes(X=x, y=y)
    r.write("registry/datasets/holdout_2026.npz", data)  # on disk, untracked
    settle(r)
    before = state(r)
    out = ok(cli, "-C", str(r.root), "dataset", "calling_score", "registry/datasets/holdout_2026.npz")
    branch = "modelgit/calling_score/dataset-holdout_2026"
    assert out.startswith("calling_score: evaluation dataset registry/datasets/holdout_2026.npz "
                          "(was registry/datasets/calling_score_eval.npz)\n")
    expected_sha = hashlib.sha256(data).hexdigest()
    assert at(r, branch, CS)["evaluation"] == {
        "dataset": {"path": "registry/datasets/holdout_2026.npz", "sha256": expected_sha},
        "metrics": ["rmse", "mae", "r2"], "primary": "rmse"}
    assert sorted(files_changed(r, branch)) == ["registry/datasets/holdout_2026.npz", CS]
    assert show_bytes(r, branch, "registry/datasets/holdout_2026.npz") == data
    assert trailers(r, branch) == {"Modelgit-Model": "calling_score", "Modelgit-Action": "dataset"}
    # only the one line changed in the model file
    old_lines = show_bytes(r, "main", CS).decode().splitlines()
    new_lines = show_bytes(r, branch, CS).decode().splitlines()
    assert [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b] == [6]
    # the user's checkout is as it was: the file is still untracked, nothing staged, HEAD unmoved
    after = state(r)
    for key in ("index", "head", "status", "stage", "files"):
        assert after[key] == before[key], key
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")
    # eval at the branch runs the active model over exactly these rows: rmse checked with sklearn
    import onnxruntime as ort

    session = ort.InferenceSession((r.root / "registry/artifacts/calling_score_v1_0_hybrid.onnx").read_bytes(),
                                   providers=["CPUExecutionProvider"])
    expected_rmse = float(np.sqrt(skm.mean_squared_error(y, session.run(None, {"X": x})[0][:, 0])))
    result = json.loads(ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid", "--ref", branch, "--json"))
    assert result["dataset_sha256"] == expected_sha and result["rows"] == 60
    assert result["metrics"]["rmse"] == pytest.approx(expected_rmse, rel=1e-5)


def test_dataset_on_the_current_branch_commits_the_untracked_file_it_names(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    x, y = _diabetes_like(25, 11)
    data = npz_bytes(X=x, y=y)
    r.write("registry/datasets/fresh.npz", data)
    r.write("notes.txt", "the user's own untracked file\n")
    base = r.head()
    out = ok(cli, "-C", str(r.root), "dataset", "calling_score", "registry/datasets/fresh.npz", "--on-current-branch")
    assert out.endswith(f"committed {r.head()[:12]} on main\n")
    assert r.git("rev-parse", "HEAD~1") == base
    assert sorted(files_changed(r, "HEAD")) == ["registry/datasets/fresh.npz", CS]
    assert show_bytes(r, "HEAD", "registry/datasets/fresh.npz") == data
    assert r.git("status", "--porcelain", "--untracked-files=all") == "?? notes.txt"  # the rest is clean
    # an uncommitted edit of a file the change touches is still refused
    r.write("registry/datasets/other.npz", data)
    r.write("registry/models/calling_score.yaml", r.read(CS) + "# an edit of the user's\n")
    err = fails(cli, "-C", str(r.root), "dataset", "calling_score", "registry/datasets/other.npz",
                "--on-current-branch", code=2)
    assert err.startswith("error: the files this change touches have uncommitted edits; nothing was changed\n")


def test_dataset_already_committed_is_not_added_again(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    data = npz_bytes(X=_diabetes_like(30, 1)[0], y=_diabetes_like(30, 1)[1])
    r.write("registry/datasets/second.npz", data)
    r.commit("add a second dataset")
    out = json.loads(ok(cli, "-C", str(r.root), "dataset", "calling_score", "registry/datasets/second.npz",
                        "--json", "--branch", "use-second"))
    assert out["branch"] == "use-second" and out["files"] == [CS]
    assert files_changed(r, "use-second") == [CS]
    assert at(r, "use-second", CS)["evaluation"]["dataset"] == {
        "path": "registry/datasets/second.npz", "sha256": hashlib.sha256(data).hexdigest()}


def test_dataset_gives_a_model_without_evaluation_one(tmp_path: Path, cli: Any) -> None:
    r = make_repo(tmp_path / "plain")
    r.write("registry/modelgit.yaml", "schema_version: 1\n")
    blob = affine_onnx(np.ones(3), 0.5)
    sha = hashlib.sha256(blob).hexdigest()
    r.write("registry/artifacts/m_v1.onnx", blob)
    r.write("registry/models/m.yaml",
            "name: m\ntask: regression  # a comment that stays\nversions:\n  - version: v1\n    status: active\n"
            f"    artifact: {{path: registry/artifacts/m_v1.onnx, sha256: {sha}}}\n")
    r.commit("a model without evaluation")
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    data = npz_bytes(X=x, y=x.sum(axis=1) + 0.5)
    r.write("registry/datasets/m.npz", data)
    dry = ok(cli, "-C", str(r.root), "dataset", "m", "registry/datasets/m.npz", "--dry-run")
    assert r.git("branch", "--list") == "* main"
    assert "+evaluation:\n+  dataset: {path: registry/datasets/m.npz, sha256: " in dry
    ok(cli, "-C", str(r.root), "dataset", "m", "registry/datasets/m.npz")
    text = show_bytes(r, "modelgit/m/dataset-m", "registry/models/m.yaml").decode()
    assert text.startswith("name: m\ntask: regression  # a comment that stays\nevaluation:\n"
                           f"  dataset: {{path: registry/datasets/m.npz, sha256: {hashlib.sha256(data).hexdigest()}}}\n"
                           "versions:\n")
    result = json.loads(ok(cli, "-C", str(r.root), "eval", "m", "v1", "--ref", "modelgit/m/dataset-m", "--json"))
    assert result["metrics"]["rmse"] == pytest.approx(0.0, abs=1e-5)  # the model is y = sum(x) + 0.5


def _object_npz() -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    return buffer.getvalue()


BAD_DATASETS: list[tuple[str, str, Any, int, str]] = [
    ("missing file", "registry/datasets/nope.npz", None, 1,
     "error: {root}/registry/datasets/nope.npz: dataset file not found\n"),
    ("outside the repository", "{outside}", b"x", 1,
     "error: {outside}: outside the repository {root}\n"),
    ("outside registry", "data/eval.npz", "good", 1,
     "error: {root}/data/eval.npz: not under registry/ (it is data/eval.npz)\n"),
    ("not npz or csv", "registry/datasets/eval.pkl", "good", 1,
     "error: {root}/registry/datasets/eval.pkl: not an .npz or .csv file\n"),
    ("pickled objects", "registry/datasets/obj.npz", "object", 1,
     "error: dataset registry/datasets/obj.npz: cannot read it: "),
    ("no y array", "registry/datasets/noy.npz", "noy", 1,
     "error: dataset registry/datasets/noy.npz: no array y (it has X)\n"),
    ("wrong width", "registry/datasets/narrow.npz", "narrow", 1,
     "error: {root}/registry/datasets/narrow.npz: X has 3 columns but active version 'v1.0-hybrid' of "
     "'calling_score' takes 10\n"),
    ("symlink", "registry/datasets/link.npz", "link", 1,
     "error: {root}/registry/datasets/link.npz: is or goes through a symlink\n"),
    ("committed with other bytes", "registry/datasets/calling_score_eval.npz", "good", 1,
     "error: registry/datasets/calling_score_eval.npz at {head} has other bytes than the file on disk; "
     "a committed dataset is not replaced in place\n"),
    ("same dataset again", "registry/datasets/calling_score_eval.npz", None, 1,
     "is already the evaluation dataset of 'calling_score'; nothing to change\n"),
    ("generation model", "registry/datasets/x.npz", "good", 1,
     "error: 'openrouter/qwen-2.5-7b-instruct' is a generation model; "),
    ("a FIFO", "registry/datasets/fifo.npz", "fifo", 1,
     "error: {root}/registry/datasets/fifo.npz: not a regular file\n"),
]


@pytest.mark.parametrize(("path", "content", "code", "message"), [b[1:] for b in BAD_DATASETS],
                         ids=[b[0] for b in BAD_DATASETS])
def test_bad_dataset_is_refused_clearly_and_changes_nothing(example_repo: Repo, cli: Any, tmp_path: Path,
                                                            path: str, content: Any, code: int,
                                                            message: str) -> None:
    r = example_repo
    outside = tmp_path / "outside.npz"
    values = {"root": str(r.root), "outside": str(outside), "head": r.head()[:12]}
    path = path.format(**values)
    target = Path(path) if os.path.isabs(path) else r.root / path
    x, y = _diabetes_like(20, 3)
    payloads = {"good": npz_bytes(X=x, y=y), "object": _object_npz(), "noy": npz_bytes(X=x),
                "narrow": npz_bytes(X=x[:, :3], y=y)}
    if content == "link":
        target.parent.mkdir(parents=True, exist_ok=True)
        outside.write_bytes(payloads["good"])
        target.symlink_to(outside)
    elif content == "fifo":
        target.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(target)
    elif content is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payloads.get(content, content) if isinstance(content, str) else content)
    model = "openrouter/qwen-2.5-7b-instruct" if "x.npz" in path else "calling_score"
    settle(r)
    before = state(r) if content != "fifo" else None  # state() would read the FIFO
    err = fails(cli, "-C", str(r.root), "dataset", model, path, code=code)
    expected = message.format(**values)
    assert err.startswith(expected) or (not expected.startswith("error:") and expected in err), err
    if before is not None:
        assert_nothing_changed(before, state(r))
    else:
        assert r.git("branch", "--list") == "* main"


# -- check-upgrades: what it skipped ---------------------------------------------------------------------
def test_check_upgrades_names_every_model_it_skipped_and_why(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    # a staging hosted version on the LLM, and a regression model with a staging version but no dataset
    ok(cli, "-C", str(r.root), "register", "openrouter/qwen-2.5-7b-instruct", "1.2.0", "--provider", "openrouter",
       "--model-id", "qwen/qwen3-8b", "--on-current-branch")
    blob = affine_onnx(np.ones(3), 0.0)
    r.write("registry/artifacts/plain.onnx", blob)
    sha = hashlib.sha256(blob).hexdigest()
    artifact = f"    artifact: {{path: registry/artifacts/plain.onnx, sha256: {sha}}}\n"
    r.write("registry/models/plain.yaml", "name: plain\ntask: regression\nversions:\n"
            f"  - version: a\n    status: active\n{artifact}  - version: b\n    status: staging\n{artifact}")
    r.write("registry/models/lonely.yaml", "name: lonely\ntask: regression\nversions:\n"
            f"  - version: a\n    status: active\n{artifact}")
    r.commit("two more models")
    ok(cli, "-C", str(r.root), "validate")
    data = json.loads(ok(cli, "-C", str(r.root), "check-upgrades", "--json"))
    skipped = {(s["model"], s["version"]): s["reason"] for s in data["skipped"]}
    assert skipped == {
        ("openrouter/qwen-2.5-7b-instruct", None):
            "no evaluation dataset (attach one: modelgit dataset openrouter/qwen-2.5-7b-instruct PATH)",
        ("plain", None): "no evaluation dataset (attach one: modelgit dataset plain PATH)",
        ("lonely", None): "no staging version",
    }
    compared = {item["model"] for item in data["recommendations"]}
    assert compared == {"calling_score", "outcome_prediction"}
    # every model is either compared or named as skipped
    assert compared | {m for m, _ in skipped} == {Path(p).relative_to("registry/models").with_suffix("").as_posix()
                                                  for p in r.git("ls-files", "registry/models").splitlines()}
    out = ok(cli, "-C", str(r.root), "check-upgrades")
    assert "skipped  lonely: no staging version\n" in out
    assert "skipped  plain: no evaluation dataset (attach one: modelgit dataset plain PATH)\n" in out


def test_check_upgrades_skips_a_hosted_staging_version_of_an_evaluated_model(tmp_path: Path, cli: Any) -> None:
    r = make_repo(tmp_path / "mixed")
    r.write("registry/modelgit.yaml", "schema_version: 1\n")
    x = np.eye(3, dtype=np.float32)
    data = npz_bytes(X=x, y=np.ones(3))
    blob = affine_onnx(np.zeros(3), 1.0)
    r.write("registry/datasets/d.npz", data)
    r.write("registry/artifacts/v1.onnx", blob)
    r.write("registry/models/m.yaml",
            "name: m\ntask: generation\n"
            f"evaluation:\n  dataset: {{path: registry/datasets/d.npz, sha256: {hashlib.sha256(data).hexdigest()}}}\n"
            "versions:\n"
            f"  - version: v1\n    status: active\n    artifact: {{path: registry/artifacts/v1.onnx, "
            f"sha256: {hashlib.sha256(blob).hexdigest()}}}\n"
            "  - version: v2\n    status: staging\n    artifact: {provider: openrouter, model_id: a/b}\n"
            "  - version: v3\n    status: staging\n"
            f"    artifact: {{uri: 'https://models.example/v3.onnx', sha256: {hashlib.sha256(b'v3').hexdigest()}}}\n")
    r.write("registry/models/broken.yaml", "name: broken\ntask: regression\nversions: []\nversions: []\n")
    r.commit("mixed")
    data_out = json.loads(ok(cli, "-C", str(r.root), "check-upgrades", "--json"))
    assert data_out["recommendations"] == []
    assert data_out["skipped"] == [
        {"model": "broken", "version": None, "reason": "its file is invalid (1 finding(s); see modelgit validate)"},
        {"model": "m", "version": "v2",
         "reason": "staging version v2 is hosted by openrouter (a/b): no ONNX file to evaluate"},
        {"model": "m", "version": "v3",
         "reason": "staging version v3 is a URI artifact: no ONNX file in the repository to evaluate"},
    ]
