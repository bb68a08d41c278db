"""The read-only commands (show, history, diff), init, and the CLI's contract: help everywhere, a
light ``--help``, and exit codes 0 / 1 / 2 / 3.

The registry here is written by hand, commit by commit, so every expected line below follows from
the YAML in this file, not from a previous run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import Repo

SHA1 = "ab" * 32
SHA2 = "cd" * 32
DATE = "2026-01-01T00:00:00+00:00"  # GIT_AUTHOR_DATE pinned in conftest
BUG = ("error: modelgit failed unexpectedly; this is a bug, please report it "
       "(rerun with --traceback for details)\n")

SETTINGS = "schema_version: 1\nname: test\nrouting: {salt: one}\n"
SCORER = "registry/models/scorer.yaml"
RANKER = "registry/models/team/ranker.yaml"

V1 = f"""\
  - version: v1
    status: STATUS
    artifact: {{path: registry/artifacts/v1.onnx, sha256: {SHA1}}}
    trained: 2025-12-28
    metrics: {{rmse: 0.4}}
"""
V2 = f"""\
  - version: v2
    status: STATUS
    weight: 0.3
    artifact: {{uri: s3://models/scorer/v2.onnx, sha256: {SHA2}}}
"""
HEADER = """\
name: scorer
description: Scores leads.
owner: growth
task: regression
versions:
"""
RANKER_YAML = """\
name: team/ranker
task: generation
versions:
  - version: 1.0.0
    status: active
    artifact: {provider: openrouter, model_id: qwen/qwen-2.5-7b-instruct}
"""


def scorer(v1: str = "active", v2: str | None = None, traffic: str = "", note: str = "") -> str:
    text = HEADER + V1.replace("STATUS", v1)
    if v2 is not None:
        text += V2.replace("STATUS", v2)
    if traffic:
        text += f"traffic: {traffic}\n"
    return note + text


@pytest.fixture
def history_repo(repo: Repo) -> tuple[Repo, dict[str, str]]:
    """Seven commits: add, register v2, a settings-only change, an A/B start, a traffic shift, a
    comment-only edit, and the promotion of v2 (with modelgit's trailers)."""
    shas = {}
    repo.write("registry/modelgit.yaml", SETTINGS)
    repo.write(SCORER, scorer())
    repo.write(RANKER, RANKER_YAML)
    shas["add"] = repo.commit("Add scorer and ranker")
    repo.write(SCORER, scorer(v2="staging"))
    shas["register"] = repo.commit("Register scorer v2")
    repo.write("registry/modelgit.yaml", SETTINGS.replace("one", "two"))
    shas["settings"] = repo.commit("Reshuffle routing")
    repo.write(SCORER, scorer(v2="staging", traffic="{v1: 90, v2: 10}"))
    shas["ab"] = repo.commit("Start A/B test of v2")
    repo.write(SCORER, scorer(v2="staging", traffic="{v1: 80, v2: 20}"))
    shas["shift"] = repo.commit("Shift traffic to v2")
    repo.write(SCORER, scorer(v2="staging", traffic="{v1: 80, v2: 20}", note="# reviewed by ops\n"))
    shas["comment"] = repo.commit("Add a review note")
    repo.write(SCORER, scorer(v1="deprecated", v2="active", note="# reviewed by ops\n"))
    shas["promote"] = repo.commit("Promote scorer v2\n\nModelgit-Model: scorer\nModelgit-Action: promote")
    return repo, shas


def cells(output: str, first: str) -> list[str]:
    """The cells of the rich table row whose first cell is ``first``."""
    for line in output.splitlines():
        parts = [p.strip() for p in re.split("[│┃]", line)]
        if len(parts) > 2 and parts[1] == first:
            return parts[1:-1]
    raise AssertionError(f"no row {first!r} in:\n{output}")


@pytest.fixture(autouse=True)
def _plain_console_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # rich treats FORCE_COLOR / TTY_COMPATIBLE as a terminal: keep the output plain and 200 wide.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    # Relative paths (init's default ".") must never land in the source checkout.
    monkeypatch.chdir(tmp_path)


# -- show -----------------------------------------------------------------------------------------
SCORER_AT_HEAD = {
    "model": "scorer", "task": "regression", "owner": "growth", "description": "Scores leads.",
    "active": "v2", "traffic": {"v2": 100},
    "versions": [
        {"version": "v1", "status": "deprecated", "weight": None, "artifact": "registry/artifacts/v1.onnx",
         "trained": "2025-12-28", "metrics": {"rmse": 0.4}},
        {"version": "v2", "status": "active", "weight": 0.3, "artifact": "s3://models/scorer/v2.onnx",
         "trained": None, "metrics": {}},
    ],
}
RANKER_AT_HEAD = {
    "model": "team/ranker", "task": "generation", "owner": None, "description": None,
    "active": "1.0.0", "traffic": {"1.0.0": 100},
    "versions": [{"version": "1.0.0", "status": "active", "weight": None,
                  "artifact": "openrouter:qwen/qwen-2.5-7b-instruct", "trained": None, "metrics": {}}],
}


def test_show_json_all_models(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "show", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"commit": shas["promote"], "models": [SCORER_AT_HEAD, RANKER_AT_HEAD],
                               "invalid": []}


def test_show_json_one_model_at_a_ref(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "show", "scorer", "--ref", "HEAD~2", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["commit"] == shas["shift"]
    assert data["invalid"] == []
    [model] = data["models"]
    assert (model["active"], model["traffic"]) == ("v1", {"v1": 80, "v2": 20})
    assert [(v["version"], v["status"]) for v in model["versions"]] == [("v1", "active"), ("v2", "staging")]


def test_show_table_all_models(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "show", "--ref", shas["shift"])
    assert (code, err) == (0, "")
    assert out.splitlines()[0].strip() == f"models at {shas['shift'][:12]}"
    assert cells(out, "scorer") == ["scorer", "regression", "v1", "v1 80% / v2 20%", "1 active, 1 staging"]
    assert cells(out, "team/ranker") == ["team/ranker", "generation", "1.0.0", "1.0.0 100%", "1 active"]
    assert "invalid" not in out


def test_show_table_one_model(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "show", "scorer")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == [f"scorer (regression) at {shas['promote'][:12]}", "  Scores leads."]
    assert cells(out, "version") == ["version", "status", "traffic %", "weight", "artifact", "trained"]
    assert cells(out, "v1") == ["v1", "deprecated", "-", "-", "registry/artifacts/v1.onnx", "2025-12-28"]
    assert cells(out, "v2") == ["v2", "active", "100", "0.3", "s3://models/scorer/v2.onnx", "-"]


def test_show_prints_registry_text_verbatim_not_as_markup(repo: Repo, cli) -> None:
    # rich reads [...] as markup: "[/docs]" used to crash show with exit 3, "[b]" vanished.
    repo.write("registry/modelgit.yaml", SETTINGS)
    description = "See [/docs] and [b]bold[/b] :smile:"
    repo.write(SCORER, scorer().replace("Scores leads.", f"'{description}'"))
    repo.write(RANKER, RANKER_YAML.replace("qwen/qwen-2.5-7b-instruct", "'qwen[/x]'"))
    repo.commit("Add models")
    code, out, err = cli("-C", str(repo.root), "show", "scorer")
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == f"  {description}"
    code, out, err = cli("-C", str(repo.root), "show", "team/ranker")
    assert (code, err) == (0, "")
    assert cells(out, "1.0.0")[4] == "openrouter:qwen[/x]"


def test_show_unknown_model_suggests_close_ids(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "show", "scorr")
    assert (code, out) == (2, "")
    assert err == f"error: unknown model 'scorr' at {shas['promote'][:12]}\nhint: did you mean scorer?\n"
    code, out, err = cli("-C", str(repo.root), "show", "zzz", "--json")
    assert (code, out) == (2, "")
    assert err.endswith("hint: see 'modelgit show'\n")


def test_show_lists_invalid_models_and_refuses_to_show_one(history_repo, cli) -> None:
    repo, _ = history_repo
    repo.write("registry/models/broken.yaml", "name: broken\ntask: regression\nversions: []\n")
    head = repo.commit("Add a broken model")
    code, out, err = cli("-C", str(repo.root), "show", "--json")
    assert code == 0
    data = json.loads(out)
    assert [m["model"] for m in data["models"]] == ["scorer", "team/ranker"]
    assert data["invalid"] == ["broken"]
    code, out, _ = cli("-C", str(repo.root), "show")
    assert out.splitlines()[-1] == "invalid (see 'modelgit validate'): broken"
    code, out, err = cli("-C", str(repo.root), "show", "broken")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: model 'broken' is invalid at {head[:12]}\n"
                          "  registry/models/broken.yaml:3:11: ")


# -- history ----------------------------------------------------------------------------------------
EXPECTED_HISTORY = [
    ("promote", "Promote scorer v2",
     ["v1 active → deprecated", "v2 staging → active", "traffic 80/20 → 0/100 (v1/v2)"]),
    ("comment", "Add a review note", []),
    ("shift", "Shift traffic to v2", ["traffic 90/10 → 80/20 (v1/v2)"]),
    ("ab", "Start A/B test of v2", ["traffic 100/0 → 90/10 (v1/v2)"]),
    ("register", "Register scorer v2", ["v2 added (staging)"]),
    ("add", "Add scorer and ranker", ["model added: v1 (active)"]),
]


def test_history_json_lists_each_commit_with_its_semantic_changes(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "history", "scorer", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["model"], data["ref"]) == ("scorer", "HEAD")
    got = [(c["commit"], c["subject"], c["changes"]) for c in data["commits"]]
    assert got == [(shas[key], subject, changes) for key, subject, changes in EXPECTED_HISTORY]
    newest = data["commits"][0]
    assert (newest["author"], newest["email"], newest["date"]) == ("Test Author", "author@example.com", DATE)
    assert newest["trailers"] == {"Modelgit-Model": "scorer", "Modelgit-Action": "promote"}
    assert data["commits"][1]["trailers"] == {}


def test_history_text_and_limit(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "history", "scorer", "-n", "3")
    assert (code, err) == (0, "")
    assert out == (
        f"{shas['promote'][:12]}  2026-01-01  Test Author  Promote scorer v2\n"
        "    v1 active → deprecated\n"
        "    v2 staging → active\n"
        "    traffic 80/20 → 0/100 (v1/v2)\n"
        f"{shas['comment'][:12]}  2026-01-01  Test Author  Add a review note\n"
        "    (no semantic change)\n"
        f"{shas['shift'][:12]}  2026-01-01  Test Author  Shift traffic to v2\n"
        "    traffic 90/10 → 80/20 (v1/v2)\n"
    )


def test_history_from_an_older_ref_and_of_a_nested_model(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, _ = cli("-C", str(repo.root), "history", "scorer", "--ref", shas["ab"], "--json")
    assert code == 0
    assert [c["commit"] for c in json.loads(out)["commits"]] == [shas["ab"], shas["register"], shas["add"]]
    code, out, _ = cli("-C", str(repo.root), "history", "team/ranker", "--json")
    assert code == 0
    assert [(c["commit"], c["changes"]) for c in json.loads(out)["commits"]] == [
        (shas["add"], ["model added: 1.0.0 (active)"])]


def test_history_says_invalid_not_removed(history_repo, cli) -> None:
    # A commit that breaks the file used to read "model removed", and its fix "model added".
    repo, _ = history_repo
    repo.write(SCORER, repo.read(SCORER).replace("status: active", "status: activ"))
    broken = repo.commit("Break scorer")
    repo.write(SCORER, repo.read(SCORER).replace("weight: 0.3", "weight: 0.4"))
    still = repo.commit("Edit the broken file")
    repo.write(SCORER, scorer(v1="deprecated", v2="active"))
    fixed = repo.commit("Fix scorer")
    repo.git("rm", "-q", SCORER)
    removed = repo.commit("Remove scorer")
    code, out, _ = cli("-C", str(repo.root), "history", "scorer", "-n", "4", "--json")
    assert code == 0
    assert [(c["commit"], c["changes"]) for c in json.loads(out)["commits"]] == [
        (removed, ["model removed"]),
        (fixed, ["now valid: v1 (deprecated), v2 (active)"]),
        (still, ["edited, still invalid (see 'modelgit validate')"]),
        (broken, ["now invalid (see 'modelgit validate')"]),
    ]


def test_history_limit_counts_commits_not_merges(history_repo, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = history_repo
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-02T00:00:00+00:00")
    repo.git("checkout", "-q", "-b", "side")
    repo.write(SCORER, repo.read(SCORER).replace("weight: 0.3", "weight: 0.6"))
    side = repo.commit("Raise v2 weight")
    repo.git("checkout", "-q", "main")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-03T00:00:00+00:00")
    repo.write("registry/modelgit.yaml", SETTINGS.replace("one", "three"))
    repo.commit("Reshuffle again")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-04T00:00:00+00:00")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge side", "side")
    code, out, _ = cli("-C", str(repo.root), "history", "scorer", "-n", "2", "--json")
    assert code == 0
    assert [(c["commit"], c["changes"]) for c in json.loads(out)["commits"]] == [
        (side, ["v2 weight 0.3 → 0.6"]), (shas["promote"], EXPECTED_HISTORY[0][2])]


def test_history_unknown_model(history_repo, cli) -> None:
    repo, _ = history_repo
    code, out, err = cli("-C", str(repo.root), "history", "team/rankr")
    assert (code, out) == (2, "")
    assert err == ("error: unknown model 'team/rankr': registry/models/team/rankr.yaml has no history at "
                   "HEAD\nhint: did you mean team/ranker?\n")


# -- diff -------------------------------------------------------------------------------------------
def test_diff_text_between_two_refs(history_repo, cli) -> None:
    repo, shas = history_repo
    repo.write(RANKER, RANKER_YAML + "traffic: {1.0.0: 100}\npolicy: {auto_upgrade: true}\n")
    repo.write("registry/models/churn.yaml", "name: churn\ntask: multiclass\nversions:\n"
               f"  - {{version: a, status: staging, artifact: {{path: c.onnx, sha256: {SHA1}}}}}\n")
    repo.commit("More models")
    code, out, err = cli("-C", str(repo.root), "diff", shas["register"], "HEAD")
    assert (code, err) == (0, "")
    assert out == (
        "churn:\n"
        "  model added: a (staging)\n"
        "scorer:\n"
        "  v1 active → deprecated\n"
        "  v2 staging → active\n"
        "  traffic 100/0 → 0/100 (v1/v2)\n"
        "team/ranker:\n"
        "  policy changed\n"
    )


def test_diff_json_and_defaults(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "diff", "--json")  # HEAD~1 HEAD
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["base"], data["head"]) == (shas["comment"], shas["promote"])
    assert data["changes"] == [
        {"kind": "status", "model": "scorer", "version": "v1", "before": "active", "after": "deprecated",
         "text": "v1 active → deprecated"},
        {"kind": "status", "model": "scorer", "version": "v2", "before": "staging", "after": "active",
         "text": "v2 staging → active"},
        {"kind": "traffic", "model": "scorer", "version": None, "before": {"v1": 80, "v2": 20},
         "after": {"v2": 100}, "text": "traffic 80/20 → 0/100 (v1/v2)"},
    ]


def test_diff_without_registry_changes(history_repo, cli) -> None:
    repo, shas = history_repo
    code, out, err = cli("-C", str(repo.root), "diff", shas["register"], shas["settings"])
    assert (code, out, err) == (0, "no registry changes\n", "")
    code, out, _ = cli("-C", str(repo.root), "diff", shas["shift"], shas["comment"])
    assert out == "no registry changes\n"


def test_diff_worktree_and_invalid_files(history_repo, cli) -> None:
    repo, _ = history_repo
    repo.write(SCORER, scorer(v1="deprecated", v2="active").replace("weight: 0.3", "weight: 0.5"))
    repo.write(RANKER, "name: team/ranker\ntask: generation\nversions: {}\n")
    code, out, err = cli("-C", str(repo.root), "diff", "HEAD", "--worktree")
    assert (code, err) == (0, "")
    assert out == ("scorer:\n  v2 weight 0.3 → 0.5\n"
                   "team/ranker:\n  now invalid (see 'modelgit validate')\n")


def test_diff_unknown_ref(history_repo, cli) -> None:
    repo, _ = history_repo
    code, out, err = cli("-C", str(repo.root), "diff", "nope", "HEAD")
    assert (code, out) == (2, "")
    assert err == ("error: unknown git ref 'nope'\n"
                   "hint: name a branch, tag or commit that exists (see 'git branch -a')\n")


# -- init -------------------------------------------------------------------------------------------
INIT_FILES = [
    "registry/modelgit.yaml", "registry/models/example_scorer.yaml",
    "registry/artifacts/example_scorer_v1.onnx", ".github/workflows/registry-ci.yml",
    ".github/workflows/upgrade-check.yml",
    "schemas/model.schema.json", "schemas/settings.schema.json", ".gitignore",
]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_init_new_directory_is_a_repo_with_one_commit_that_validates(tmp_path: Path, cli) -> None:
    target = tmp_path / "new" / "registry-repo"
    code, out, err = cli("init", str(target))
    assert (code, err) == (0, "")
    repo = Repo(target)
    head = repo.head()
    assert out == "".join(f"wrote {name}\n" for name in INIT_FILES) + (
        f"committed {head[:12]}: registry ready; try: modelgit -C {target} show\n")
    assert repo.git("rev-list", "--count", "HEAD") == "1"
    assert repo.git("status", "--porcelain") == ""
    assert sorted(repo.git("ls-files").splitlines()) == sorted(INIT_FILES)
    assert repo.git("log", "-1", "--format=%s") == "Add modelgit registry"

    code, out, err = cli("-C", str(target), "validate")
    assert (code, out) == (0, "")
    assert err == f"valid: 1 models, 1 versions, 1 files verified at {head[:12]}\n"

    before = tree_bytes(target)
    code, out, err = cli("init", str(target))
    assert (code, out) == (2, "")
    assert err == (f"error: {target}: already has {', '.join(INIT_FILES[:-1])}; nothing was written\n"
                   "hint: init writes a new registry; edit the existing one instead\n")
    assert tree_bytes(target) == before
    assert repo.head() == head


def test_init_refuses_when_any_file_exists(repo: Repo, cli) -> None:
    repo.write("schemas/model.schema.json", "{}")
    code, _, err = cli("-C", str(repo.root), "init")
    assert code == 2
    assert err.startswith(f"error: {repo.root}: already has schemas/model.schema.json; nothing was written")
    assert [name for name in tree_bytes(repo.root) if not name.startswith(".git/")] == [
        "schemas/model.schema.json"]


def test_init_in_a_repo_with_commits_writes_but_does_not_commit(repo: Repo, cli) -> None:
    repo.write("README.md", "hello\n")
    head = repo.commit("Initial")
    code, out, err = cli("-C", str(repo.root), "init")  # DIRECTORY defaults to the -C path
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == ("next: git add registry schemas .github .gitignore && "
                                    "git commit -m 'Add modelgit registry'")
    assert repo.head() == head
    assert repo.git("status", "--porcelain", "-uall").splitlines() == sorted(f"?? {n}" for n in INIT_FILES)


def test_init_in_a_repo_without_commits_commits_only_its_files(repo: Repo, cli) -> None:
    repo.write("mine.txt", "the user's staged work\n")
    repo.git("add", "mine.txt")
    code, _, err = cli("init", str(repo.root))
    assert (code, err) == (0, "")
    assert sorted(repo.git("ls-tree", "-r", "--name-only", "HEAD").splitlines()) == sorted(INIT_FILES)
    assert repo.git("status", "--porcelain") == "A  mine.txt"


def test_init_inside_another_repo(repo: Repo, cli) -> None:
    repo.write("README.md", "hello\n")
    head = repo.commit("Initial")
    repo.write("sub/notes.txt", "x\n")
    code, out, err = cli("init", str(repo.root / "sub"))
    assert (code, out) == (2, "")
    assert err == (f"error: {repo.root / 'sub'}: inside the git repository {repo.root.resolve()}, not at its "
                   "top level; modelgit reads registry/ at the top of a repository, so nothing was written\n"
                   f"hint: run 'modelgit init {repo.root.resolve()}', or init a new or empty directory\n")
    assert sorted(tree_bytes(repo.root / "sub")) == ["notes.txt"]
    # A new directory inside a repository becomes a repository of its own, which modelgit can read.
    code, out, _ = cli("-C", str(repo.root), "init", "nested")
    assert code == 0
    nested = Repo(repo.root / "nested")
    assert nested.git("rev-parse", "--show-toplevel") == str((repo.root / "nested").resolve())
    assert nested.git("rev-list", "--count", "HEAD") == "1"
    assert repo.head() == head
    assert cli("-C", str(nested.root), "validate")[0] == 0


def test_init_reports_why_a_wanted_commit_failed(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.useConfigOnly")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")
    code, out, err = cli("init", str(tmp_path / "r"))
    assert code == 0
    assert err.startswith("warning: could not commit: ")
    assert "user.useConfigOnly" in err or "identity" in err.lower()
    assert out.splitlines()[-1].startswith("next: git add registry schemas .github")


def test_init_refuses_a_file(tmp_path: Path, cli) -> None:
    (tmp_path / "f").write_text("x")
    code, _, err = cli("init", str(tmp_path / "f"))
    assert code == 2
    assert "f" in err and (tmp_path / "f").read_text() == "x"


# -- the CLI's contract -------------------------------------------------------------------------------
def _commands(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def test_every_command_and_option_has_help() -> None:
    from modelgit.cli import cli as root

    missing = []
    seen = []
    for path, command in _commands(root):
        seen.append(" ".join(path))
        if not (command.help or "").strip():
            missing.append(f"command '{' '.join(path) or 'modelgit'}'")
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"option {param.opts} of '{' '.join(path) or 'modelgit'}'")
    assert missing == []
    # The walk reached the nested group and the proposal verbs, not just the top.
    assert {"show", "history", "diff", "init", "validate", "promote", "ab", "ab start", "ab stop"} <= set(seen)


HEAVY = ("onnxruntime", "numpy", "jsonschema", "rich", "sqlalchemy", "alembic", "fastapi", "starlette",
         "uvicorn")


@pytest.mark.parametrize("args", [["--help"], ["show", "--help"], ["validate", "--help"], ["ab", "start", "-h"],
                                  ["serve", "--help"], ["token", "create", "--help"]])
def test_help_does_not_import_heavy_modules(args: list[str]) -> None:
    code = (
        "import sys\n"
        "import modelgit.cli\n"
        f"status = modelgit.cli.run({args!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('RESULT', status, ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage: modelgit" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "RESULT 0 "


def test_usage_errors_exit_2(history_repo, cli, tmp_path: Path) -> None:
    repo, _ = history_repo
    root = str(repo.root)
    code, out, err = cli("-C", root, "show", "--bogus")
    assert (code, out) == (2, "")
    assert "No such option: --bogus" in err or "No such option '--bogus'" in err
    code, _, err = cli("-C", root, "frobnicate")
    assert code == 2 and "No such command 'frobnicate'" in err
    code, _, err = cli("-C", root, "show", "--ref", "no-such-branch")
    assert (code, err) == (2, "error: unknown git ref 'no-such-branch'\n"
                              "hint: name a branch, tag or commit that exists (see 'git branch -a')\n")
    code, _, err = cli("-C", root, "history", "scorer", "-n", "0")
    assert code == 2 and "-n" in err
    code, _, err = cli("-C", str(tmp_path), "show")
    assert (code, err) == (2, f"error: {tmp_path.resolve()}: not a git repository\n"
                              "hint: run modelgit inside a git repository, or create one with "
                              "'modelgit init DIR'\n")


def test_internal_bug_exits_3_without_traceback_unless_asked(history_repo, cli,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgit import views

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in views.show")

    monkeypatch.setattr(views, "show_stream", boom)  # what every form of show calls
    repo, _ = history_repo
    code, out, err = cli("-C", str(repo.root), "show")
    assert (code, out, err) == (3, "", BUG)
    code, out, err = cli("--traceback", "-C", str(repo.root), "show")
    assert (code, out) == (3, "")
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("RuntimeError: boom in views.show\n" + BUG)


def test_version_and_help_exit_0(cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0 and out.startswith("Usage: modelgit [OPTIONS] COMMAND [ARGS]...")
    code, out, _ = cli("--version")
    assert (code, out) == (0, "modelgit 0.1.0\n")
    code, out, _ = cli("diff", "--help")
    assert code == 0 and out.startswith("Usage: modelgit diff [OPTIONS] [BASE] [HEAD]")


@pytest.mark.parametrize(("argument", "message", "hint"), [
    ("team/ranker:1.0.0", "'team/ranker:1.0.0' names a version; history is kept per model",
     "modelgit history team/ranker"),
    ("registry/models/scorer.yaml", "'registry/models/scorer.yaml' is a file path, not a model id",
     "the id is the path under registry/models/ without .yaml: modelgit history scorer"),
    ("scorer.yaml", "'scorer.yaml' is a file path, not a model id",
     "the id is the path under registry/models/ without .yaml: modelgit history scorer"),
    ("../scorer", "'../scorer' is not a valid model id", None),
    ("", "'' is not a valid model id", None),
])
def test_history_refuses_what_is_not_a_model_id(history_repo, cli, argument: str, message: str,
                                                 hint: str | None) -> None:
    repo, _ = history_repo
    code, out, err = cli("-C", str(repo.root), "history", argument)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == f"error: {message}"
    if hint is not None:
        assert lines[1] == f"hint: {hint}"
        # and the hint's command works
        assert cli("-C", str(repo.root), *hint.split(": ")[-1].split()[1:])[0] == 0
    assert "Traceback" not in err
