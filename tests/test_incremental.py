"""Incremental snapshots and validation: a commit validated after another is the earlier snapshot
plus what ``git diff`` names, and only the models whose file or referenced files changed are
checked again — with exactly the Report a validation from scratch gives, for every kind of change.

The expected Report is always a new Validator (no snapshot in memory, no parse cache on disk)
validating the same commit; what was re-done is counted by wrapping the functions that do it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Repo
from modelgit import snapshot
from modelgit.gitstore import GitRepo
from modelgit.snapshot import REGISTRY_DIR, Loader
from modelgit.validate import Report, Validator

DATASET = "registry/datasets/calling_score_eval.npz"
DATASET_SHA = "74a019499184db2de778e02489b799a3cdbdcd607ca3760a5af8c00f0e471b10"
ARTIFACT = "registry/artifacts/calling_score_v1_0_hybrid.onnx"
ARTIFACT_SHA = "2320f0aa57fff66715e787869e2b7caa4976c04fcfd40733b013323c9c8ea189"


def small_model(name: str, artifact: str = ARTIFACT, sha: str = ARTIFACT_SHA, weight: float = 1.0) -> str:
    return f"""\
name: {name}
task: regression
evaluation:
  dataset: {{path: {DATASET}, sha256: {DATASET_SHA}}}
  metrics: [rmse]
versions:
  - version: v1
    status: active
    weight: {weight}
    artifact: {{path: {artifact}, sha256: {sha}}}
"""


def uri_model(name: str) -> str:
    return f"""\
name: {name}
task: regression
versions:
  - version: v1
    status: active
    artifact: {{uri: 's3://bucket/{name}.onnx', sha256: '{"c" * 64}'}}
"""


@pytest.fixture
def registry(example_repo: Repo) -> Repo:
    """The example registry plus models that share its files, one through a symlink and one with
    its artifact outside registry/."""
    for index in range(4):
        example_repo.write(f"registry/models/team/m{index}.yaml", small_model(f"team/m{index}"))
    for index in range(3):
        example_repo.write(f"registry/models/uri{index}.yaml", uri_model(f"uri{index}"))
    (example_repo.root / "registry/artifacts/linked.onnx").symlink_to("calling_score_v1_0_hybrid.onnx")
    example_repo.write("registry/models/linked.yaml", small_model("linked", "registry/artifacts/linked.onnx"))
    example_repo.write("exports/outside.onnx", (example_repo.root / ARTIFACT).read_bytes())
    example_repo.write("registry/models/outside.yaml", small_model("outside", "exports/outside.onnx"))
    example_repo.commit("More models")
    return example_repo


def from_scratch(repo: Repo, ref: str, base: str | None = None) -> Report:
    shutil.rmtree(repo.root / ".git" / "modelgit" / "parsed", ignore_errors=True)
    return Validator(GitRepo.discover(repo.root)).validate(ref, base=base)


def same(incremental: Report, scratch: Report) -> None:
    assert incremental.findings == scratch.findings
    assert incremental == scratch  # counts, commit, base, transient, reverted
    assert incremental.snapshot == scratch.snapshot  # entries, settings, every parsed file


class Counts:
    """What a validation re-did: files parsed, artifact/dataset references checked, registry
    listings."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed: list[str] = []
        self.checked: list[str] = []
        self.listings = 0
        for name in ("_parse_model", "_parse_settings"):
            monkeypatch.setattr(snapshot, name, self._wrap(getattr(snapshot, name), self.parsed, 1))
        monkeypatch.setattr(Validator, "_check_ref", self._wrap(Validator._check_ref, self.checked, 2))
        real_tree = GitRepo.tree

        def tree(repo: GitRepo, commit: str, prefix: str) -> Any:
            if prefix == REGISTRY_DIR:
                self.listings += 1
            return real_tree(repo, commit, prefix)

        monkeypatch.setattr(GitRepo, "tree", tree)

    @staticmethod
    def _wrap(real: Callable[..., Any], into: list[str], index: int) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            into.append(args[index])
            return real(*args, **kwargs)

        return counted

    def take(self) -> tuple[list[str], list[str], int]:
        found = (sorted(self.parsed), sorted(set(self.checked)), self.listings)
        self.parsed.clear()  # in place: the wrappers hold these lists
        self.checked.clear()
        self.listings = 0
        return found


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    return Counts(monkeypatch)


def model(name: str) -> str:
    return f"registry/models/{name}.yaml"


# Each change: (what it does to the repository, the model files parsed again, the model files whose
# references are checked again). None: not asserted (the settings change re-reads what it likes).
def edit_weight(repo: Repo) -> None:
    repo.write(model("team/m1"), small_model("team/m1", weight=0.5))


def break_schema(repo: Repo) -> None:
    repo.write(model("team/m2"), small_model("team/m2").replace("status: active", "stauts: active"))


def break_rule(repo: Repo) -> None:
    # Typed, refused by a rule (name mismatch): its files are still checked.
    repo.write(model("team/m3"), small_model("team/m3").replace("name: team/m3", "name: other"))


def add_model(repo: Repo) -> None:
    repo.write(model("team/new"), small_model("team/new"))


def delete_model(repo: Repo) -> None:
    (repo.root / model("uri1")).unlink()


def change_artifact(repo: Repo) -> None:
    # Another ONNX file's bytes: a sha256 mismatch for every model that names it, through the
    # symlink too.
    (repo.root / ARTIFACT).write_bytes((repo.root / "registry/artifacts/calling_score_v2_0_real.onnx").read_bytes())


def change_outside_artifact(repo: Repo) -> None:
    repo.write("exports/outside.onnx", b"not the recorded bytes")


def change_dataset(repo: Repo) -> None:
    repo.write("registry/datasets/outcome_prediction_eval.npz", b"other bytes")


def delete_artifact(repo: Repo) -> None:
    (repo.root / "registry/artifacts/outcome_prediction_v2_0_real.onnx").unlink()


def unrelated_file(repo: Repo) -> None:
    repo.write("README.txt", "a change outside the registry\n")


def retarget_link(repo: Repo) -> None:
    link = repo.root / "registry/artifacts/linked.onnx"
    link.unlink()
    link.symlink_to("outcome_prediction_v1_0_hybrid.onnx")


def directory_in_place(repo: Repo) -> None:
    path = repo.root / "exports/outside.onnx"
    path.unlink()
    repo.write("exports/outside.onnx/part", b"a directory now")


def edit_settings(repo: Repo) -> None:
    repo.write("registry/modelgit.yaml", repo.read("registry/modelgit.yaml") + "\n# a comment\n")


def break_settings(repo: Repo) -> None:
    repo.write("registry/modelgit.yaml", "schema_version: 2\n")


def stray_yml(repo: Repo) -> None:
    repo.write("registry/models/stray.yml", uri_model("stray"))


def restore_all(repo: Repo) -> None:
    # Back to the first commit's tree: every file added since goes, every change is undone.
    first = repo.git("rev-list", "--max-parents=0", "HEAD")
    repo.git("rm", "-rqf", "--", ".")
    repo.git("checkout", repo.git("rev-list", "--ancestry-path", f"{first}..HEAD").splitlines()[-1], "--", ".")


CHANGES: list[tuple[Callable[[Repo], None], list[str] | None, list[str] | None]] = [
    (edit_weight, [model("team/m1")], [model("team/m1")]),
    (break_schema, [model("team/m2")], []),
    (break_rule, [model("team/m3")], [model("team/m3")]),
    (add_model, [model("team/new")], [model("team/new")]),
    (delete_model, [], []),
    (change_artifact, [], sorted([model(f"team/m{i}") for i in (0, 1)] + [model("team/new"), model("linked"),
                                  model("calling_score"), model("team/m3")])),
    (change_outside_artifact, [], [model("outside")]),
    (change_dataset, [], [model("outcome_prediction")]),
    (delete_artifact, [], [model("outcome_prediction")]),
    # The missing artifact's finding names the commit: it is checked again at every commit.
    (unrelated_file, [], [model("outcome_prediction")]),
    (retarget_link, [], [model("linked"), model("outcome_prediction")]),
    (directory_in_place, [], [model("outcome_prediction"), model("outside")]),
    (stray_yml, [], [model("outcome_prediction"), model("outside")]),
    (edit_settings, ["registry/modelgit.yaml"], None),
    (break_settings, ["registry/modelgit.yaml"], None),
    (restore_all, None, None),
]


def test_each_kind_of_change_gives_the_report_of_a_validation_from_scratch(registry: Repo, counts: Counts) -> None:
    validator = Validator(GitRepo.discover(registry.root))
    previous = registry.head()
    same(validator.validate(previous), from_scratch(registry, previous))
    counts.take()
    for change, parsed, checked in CHANGES:
        change(registry)
        commit = registry.commit(change.__name__)
        report = validator.validate(commit)
        again_parsed, again_checked, listings = counts.take()
        assert listings == 0, change.__name__  # made from the previous snapshot, not listed again
        if parsed is not None:
            assert again_parsed == parsed, change.__name__
        if checked is not None:
            assert again_checked == sorted(checked), change.__name__
        scratch = from_scratch(registry, commit)
        counts.take()
        same(report, scratch)
        # And against the previous commit as a base (the rules about what a change may do).
        same(validator.validate(commit, base=previous), from_scratch(registry, commit, base=previous))
        counts.take()
        previous = commit


def test_the_reports_along_the_way_say_what_is_wrong(registry: Repo) -> None:
    """The sequence above is not vacuous: the changes do produce the findings they should."""
    validator = Validator(GitRepo.discover(registry.root))
    assert validator.validate("HEAD").valid
    codes = {}
    for change, _, _ in CHANGES:
        change(registry)
        codes[change.__name__] = sorted({f.code for f in validator.validate(registry.commit(change.__name__)).findings})
    assert codes["edit_weight"] == []
    assert codes["break_schema"] == ["SCHEMA002"]
    assert "RULE001" in codes["break_rule"]
    assert "ART001" in codes["change_artifact"]
    assert "ART010" in codes["delete_artifact"] and "ART010" in codes["unrelated_file"]
    assert "ART011" in codes["directory_in_place"]
    assert "REG002" in codes["stray_yml"]
    assert "SCHEMA010" in codes["break_settings"] or "SCHEMA005" in codes["break_settings"]
    assert codes["restore_all"] == []


def test_going_back_in_time_and_across_branches(registry: Repo) -> None:
    first = registry.head()
    edit_weight(registry)
    second = registry.commit("weight")
    registry.git("checkout", "-q", "-b", "side", first)
    delete_model(registry)
    change_dataset(registry)
    side = registry.commit("side branch")
    validator = Validator(GitRepo.discover(registry.root))
    for commit in (second, first, side, second, side, first):
        same(validator.validate(commit), from_scratch(registry, commit))


def test_loader_snapshots_made_from_another_equal_a_whole_load(registry: Repo) -> None:
    first = registry.head()
    for change in (edit_weight, add_model, delete_model, change_artifact, stray_yml, break_settings):
        change(registry)
    last = registry.commit("many changes")
    loader = Loader(GitRepo.discover(registry.root))
    old = loader.load(first)
    new = loader.load(last)  # what 'modelgit diff' and CI do: two snapshots, the second made from the first
    assert new.since is not None and new.since[0] == first
    assert new == Loader(GitRepo.discover(registry.root)).load(last)
    assert list(new.files) == sorted(new.files)
    back = loader.load(first)
    assert back is old  # still held


def test_a_long_lived_validator_that_forgets_stays_correct(registry: Repo) -> None:
    """The runtime calls forget_except after each reload; incremental validation must not rely on
    anything it dropped."""
    validator = Validator(GitRepo.discover(registry.root))
    report = validator.validate("HEAD")
    for change in (edit_weight, change_artifact, delete_artifact, unrelated_file):
        validator.forget_except(report.snapshot)
        validator.loader.forget_except([report.snapshot])
        change(registry)
        commit = registry.commit(change.__name__)
        report = validator.validate(commit)
        same(report, from_scratch(registry, commit))


def test_the_working_tree_is_validated_whole(registry: Repo) -> None:
    validator = Validator(GitRepo.discover(registry.root))
    validator.validate("HEAD")
    change_artifact(registry)  # not committed
    report = validator.validate(None, worktree=True)
    scratch = Validator(GitRepo.discover(registry.root)).validate(None, worktree=True)
    assert report == scratch and "ART001" in {f.code for f in report.findings}
    same(validator.validate("HEAD"), from_scratch(registry, "HEAD"))


def test_a_changed_path_outside_the_registry_names_no_registry_file(registry: Repo, counts: Counts) -> None:
    validator = Validator(GitRepo.discover(registry.root))
    validator.validate("HEAD")
    counts.take()
    unrelated_file(registry)
    commit = registry.commit("unrelated")
    assert validator.validate(commit).valid
    assert counts.take() == ([], [], 0)


def test_git_names_the_changed_entries(registry: Repo) -> None:
    first = registry.head()
    delete_model(registry)
    retarget_link(registry)
    unrelated_file(registry)
    (registry.root / "registry/artifacts/calling_score_v2_0_real.onnx").chmod(0o755)
    second = registry.commit("several")
    changed = GitRepo.discover(registry.root).changed_entries(first, second)
    assert set(changed) == {model("uri1"), "registry/artifacts/linked.onnx", "README.txt",
                            "registry/artifacts/calling_score_v2_0_real.onnx"}
    assert changed[model("uri1")] is None
    assert changed["registry/artifacts/linked.onnx"].mode == "120000"
    assert changed["registry/artifacts/calling_score_v2_0_real.onnx"].mode == "100755"
    repo = GitRepo.discover(registry.root)
    assert all(changed[p] == repo.tree(second, p)[p] for p in changed if changed[p] is not None)
