"""The README's tour runs as written, in order, on a clone of a repository holding the bundled
example registry (what a newcomer has after cloning this project): every ``sh`` line of the tour
exits 0 and the Python runtime example runs.

The commands are read from README.md itself, so a README edit that breaks one fails here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()
TOUR = README[README.index("## A tour"):README.index("## Measured")]


def tour_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TOUR, re.S)


def tour_commands() -> list[list[str]]:
    commands = []
    for block in tour_blocks("sh"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


@pytest.fixture
def clone(example_clone: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return example_clone


def test_the_tour_has_the_commands_it_promises() -> None:
    verbs = {c[1] if c[0] == "modelgit" else c[0] for c in tour_commands()}
    assert {"validate", "show", "history", "init", "register", "promote", "diff", "split", "ab", "weight",
            "retire", "archive", "rollback", "eval", "compare", "ci", "check-upgrades", "cp"} <= verbs


def test_every_tour_command_runs_as_written(clone: Path, cli) -> None:
    for words in tour_commands():
        if words[0] == "cp":
            assert len(words) == 3, words
            shutil.copyfile(clone / words[1], clone / words[2])
            continue
        assert words[0] == "modelgit", f"the tour runs only modelgit and cp: {words}"
        code, out, err = cli(*words[1:])
        assert code == 0, (words, out, err)


def test_the_runtime_example_runs_as_written(clone: Path) -> None:
    (block,) = tour_blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # our own README
    reg = namespace["reg"]
    reg.close()  # type: ignore[attr-defined]
    assert reg.route("calling_score", key="user-42") == "v1.0-hybrid"  # type: ignore[attr-defined]


def test_the_pre_commit_example_names_the_release_tag_of_this_version() -> None:
    """README and .pre-commit-hooks.yaml name ``rev: v<version in pyproject.toml>``, the tag a
    release gets (``git tag v0.1.0``), and a hook id that .pre-commit-hooks.yaml defines."""
    import tomllib

    import yaml

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    hooks_file = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert re.findall(r"rev: (\S+)", README) == [f"v{version}"]
    assert re.findall(r"rev: (\S+)", hooks_file) == [f"v{version}"]
    hook_ids = {hook["id"] for hook in yaml.safe_load(hooks_file)}
    assert set(re.findall(r"- id: (\S+)", README)) == {"modelgit-validate"} <= hook_ids
