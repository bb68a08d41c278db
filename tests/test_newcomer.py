"""What a newcomer meets first (issue 8, point 9): a bare repository, an empty one, a wrong input
array, a per-version description, the dates ``register`` writes, and the README's own commands.

Real git repositories (bare ones made by ``git clone --bare``), real ONNX files and onnxruntime
sessions. Expected messages are written by hand from the model's signature (``x`` float [?, 3] in
``runtime_support``) and the input built here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import ROOT, Repo
from modelgit import InputError, ModelgitError, Registry, UsageError
from runtime_support import expected, sample_input

HINT = "hint: commit the registry first: git add registry && git commit -m 'Add the model registry'\n"


# -- Registry.open of a bare repository ------------------------------------------------------------
def test_registry_open_accepts_a_bare_repository(score: Any, tmp_path: Path, cli) -> None:
    bare = tmp_path / "registry.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(score.repo.root), str(bare)], check=True)
    assert not (bare / "registry").exists()  # no working tree: only git objects
    reg = Registry.open(bare, ref="main")
    x = sample_input()
    assert np.array_equal(reg.run("score:v1", x)[0], expected(1, x))
    assert reg.commit == subprocess.run(["git", "rev-parse", "main"], cwd=score.repo.root, capture_output=True,
                                        text=True, check=True).stdout.strip()
    code, out, err = cli("-C", str(bare), "validate", "--ref", "main")
    assert code == 0, out + err
    # Proposals work there too (from git objects alone); committing "on the current branch" needs
    # a working tree, and says so.
    code, out, err = cli("-C", str(bare), "weight", "score", "v1", "0.75", "--ref", "main")
    assert code == 0, out + err
    code, out, err = cli("-C", str(bare), "weight", "score", "v1", "0.75", "--on-current-branch")
    assert (code, out) == (2, "")
    assert err.startswith("error: --on-current-branch needs a working tree; this is a bare repository\n")
    assert not (bare / "index").exists() and not (bare / "index.lock").exists()


# -- an empty repository ------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["validate"], ["show"], ["promote", "calling_score", "v2.0-real"],
                                  ["history", "calling_score"]])
def test_an_empty_repository_says_it_has_no_commits_yet(repo: Repo, cli, args: list[str]) -> None:
    shutil.copytree(ROOT / "registry", repo.root / "registry")  # files written, nothing committed
    code, out, err = cli("-C", str(repo.root), *args)
    assert (code, out) == (2, "")
    assert err == f"error: {repo.root}: the repository has no commits yet\n{HINT}"
    assert repo.git("status", "--porcelain", "--untracked-files=no") == ""


def test_registry_open_of_an_empty_repository_says_it_has_no_commits_yet(repo: Repo) -> None:
    with pytest.raises(UsageError) as caught:
        Registry.open(repo.root, ref="main")
    assert caught.value.message == f"{repo.root}: the repository has no commits yet"


def test_an_unknown_ref_in_a_repository_with_commits_is_still_an_unknown_ref(example_repo: Repo, cli) -> None:
    code, _, err = cli("-C", str(example_repo.root), "validate", "--ref", "nope")
    assert code == 2 and err.startswith("error: unknown git ref 'nope'\n")


# -- wrong input arrays through the Python API ------------------------------------------------------
WRONG = [
    # id, input, pin, message (by hand: score's versions take x float [?, 3])
    ("too many columns", np.zeros((2, 4), np.float32), "score",
     "'score' version 'v1': input 'x' must have shape [?, 3], got [2, 4]"),
    ("one row without the batch axis", np.zeros(3, np.float32), "score:v2",
     "'score' version 'v2': input 'x' must have shape [?, 3], got [3]"),
    ("float64", np.zeros((2, 3)), "score:v1",
     "'score' version 'v1': input 'x' must be float32, got float64 (convert it: array.astype(numpy.float32))"),
    ("int64", np.zeros((1, 3), np.int64), "score:v1",
     "'score' version 'v1': input 'x' must be float32, got int64 (convert it: array.astype(numpy.float32))"),
    ("wrong input name", {"features": np.zeros((2, 3), np.float32)}, "score:v1",
     "'score' version 'v1': the model takes inputs x; the dict given has features"),
]


@pytest.mark.parametrize(("given", "model", "message"), [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_a_wrong_input_is_a_modelgit_error_naming_the_input_and_both_shapes(
        score: Any, given: Any, model: str, message: str) -> None:
    reg = Registry.open(score.repo.root, ref="main")
    for key in (None, "user-1", "user-2", "user-3"):  # routed to v1 or v2: the active v1 answers last
        with pytest.raises(InputError) as caught:
            reg.run(model, given, key=key)
        assert caught.value.message == message
        assert isinstance(caught.value, ModelgitError) and isinstance(caught.value, ValueError)
        assert caught.value.hint == "the inputs and outputs of each version: modelgit show score --json"
    x = sample_input()
    assert np.array_equal(reg.run("score:v1", x)[0], expected(1, x))  # a right input still runs


def test_a_wrong_input_from_the_cli_names_the_input_too(score: Any, tmp_path: Path, cli) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 4), np.float32))
    code, out, err = cli("-C", str(score.repo.root), "run", "score:v1", "--input", str(path), "--ref", "main")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {path}: input 'x' must have shape [?, 3], got [2, 4]\n"), err


# -- a per-version description, and dates written as people write them -------------------------------
def test_a_version_description_validates_and_register_writes_it(example_repo: Repo, cli) -> None:
    r = example_repo
    model = r.root / "registry/models/calling_score.yaml"
    model.write_text(model.read_text().replace(
        "  - version: v2.0-real\n", "  - version: v2.0-real\n    description: Trained on real outcomes.\n"))
    r.commit("describe v2.0-real")
    code, out, err = cli("-C", str(r.root), "validate")
    assert code == 0, out + err
    code, out, err = cli("-C", str(r.root), "register", "calling_score", "v3.0", "--artifact",
                         "https://models.example/v3.onnx", "--sha256", "a" * 64, "--description",
                         "Retrained on 2026 data.", "--trained", "2026-03-01")
    assert code == 0, out + err
    text = r.git("show", "modelgit/calling_score/register-v3.0:registry/models/calling_score.yaml")
    new = yaml.safe_load(text)["versions"][-1]
    assert new["description"] == "Retrained on 2026 data."
    assert re.search(r"^    trained: 2026-03-01$", text, re.M)  # plain, not '2026-03-01'


@pytest.mark.parametrize("trained", ["2026-3-1", "01.03.2026", "2026-02-30", "yesterday"])
def test_register_refuses_a_training_date_that_is_not_one(example_repo: Repo, cli, trained: str) -> None:
    before = example_repo.git("for-each-ref")
    code, out, err = cli("-C", str(example_repo.root), "register", "calling_score", "v3.0", "--artifact",
                         "https://models.example/v3.onnx", "--sha256", "a" * 64, "--trained", trained)
    assert (code, out) == (2, "")
    assert err == (f"error: --trained '{trained}' is not a date\n"
                   "hint: write it as YYYY-MM-DD, e.g. 2026-01-31\n")
    assert example_repo.git("for-each-ref") == before


def test_register_without_a_date_writes_today_unquoted(example_repo: Repo, cli) -> None:
    import datetime

    code, out, err = cli("-C", str(example_repo.root), "register", "calling_score", "v3.0", "--artifact",
                         "https://models.example/v3.onnx", "--sha256", "a" * 64)
    assert code == 0, out + err
    text = example_repo.git("show", "modelgit/calling_score/register-v3.0:registry/models/calling_score.yaml")
    today = datetime.date.today()
    assert yaml.safe_load(text)["versions"][-1]["trained"] in (today, today - datetime.timedelta(days=1))


