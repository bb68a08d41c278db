"""The library facade (modelgit.api): plain arguments in, typed results out, no printing.

The commands' texts are checked through the CLI elsewhere; here the facade is called directly, as
the HTTP server calls it, on a copy of the bundled example registry in a real git repository.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from conftest import Repo
from modelgit import api
from modelgit.errors import UsageError

MODEL = "calling_score"


def test_show_returns_frozen_typed_results_that_serialise(example_repo: Repo) -> None:
    result = api.show(example_repo.root)
    assert result.commit == example_repo.head()
    calling = next(m for m in result.models if m.model == MODEL)
    assert calling.active == "v1.0-hybrid"
    assert [v.version for v in calling.versions][:2] == ["v1.0-hybrid", "v2.0-real"]
    assert calling.versions[1].status == "staging"
    with pytest.raises(dataclasses.FrozenInstanceError):
        calling.active = "v2.0-real"  # type: ignore[misc]
    data = json.loads(json.dumps(result.as_dict(), default=str))
    assert [m["model"] for m in data["models"]] == [m.model for m in result.models]
    one = api.show(str(example_repo.root / "registry"), model=MODEL)  # any directory inside the repository
    assert [m.model for m in one.models] == [MODEL] and one.invalid == ()


def test_propose_dry_run_then_commit_then_history_and_diff(example_repo: Repo) -> None:
    dry = api.propose(example_repo.root, "promote", MODEL, version="v2.0-real", dry_run=True)
    assert dry.branch is None and dry.commit is None
    assert "+    status: active" in dry.diff
    assert example_repo.git("branch", "--list", "modelgit/*") == ""

    outcome = api.propose(example_repo.root, "promote", MODEL, version="v2.0-real")
    assert outcome.branch == f"modelgit/{MODEL}/promote-v2.0-real"
    assert outcome.as_dict()["commit"] == outcome.commit == example_repo.git("rev-parse", outcome.branch)
    assert example_repo.git("rev-parse", "HEAD") == outcome.proposal.base_commit  # HEAD untouched

    history = api.history(example_repo.root, MODEL, ref=outcome.branch, limit=1)
    assert history.commits[0].commit == outcome.commit
    assert "v2.0-real staging → active" in history.commits[0].changes
    assert history.as_dict()["commits"][0]["changes"] == list(history.commits[0].changes)

    changes = api.diff(example_repo.root, "HEAD", outcome.branch)
    assert changes.base == example_repo.head() and changes.head == outcome.commit
    assert {(c.model, c.version, c.kind) for c in changes.changes} >= {(MODEL, "v2.0-real", "status")}


def test_propose_split_takes_a_mapping_or_the_command_lines_strings(example_repo: Repo) -> None:
    by_mapping = api.propose(example_repo.root, "split", MODEL, split={"v1.0-hybrid": 80, "v2.0-real": 20},
                             dry_run=True)
    by_strings = api.propose(example_repo.root, "split", MODEL, split=["v1.0-hybrid=80", "v2.0-real=20"],
                             dry_run=True)
    assert by_mapping.diff == by_strings.diff and "traffic" in by_mapping.diff


@pytest.mark.parametrize(("action", "kwargs", "message"), [
    ("promte", {"version": "v2.0-real"}, "unknown action 'promte'"),
    ("promote", {}, "promote needs a version"),
    ("weight", {"version": "v2.0-real"}, "weight needs weight="),
    ("retire", {"percent": 10}, "retire takes no percent"),
])
def test_propose_refuses_bad_arguments_with_a_usage_error(example_repo: Repo, action: str,
                                                         kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        api.propose(example_repo.root, action, MODEL, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message == message


def test_validate_and_unknown_model(example_repo: Repo) -> None:
    report = api.validate(example_repo.root, check_artifacts=False)
    assert report.valid and report.commit == example_repo.head()
    with pytest.raises(UsageError):
        api.show(example_repo.root, model="calling_scor")
    with pytest.raises(UsageError):
        api.history(example_repo.root, "calling_score:v1")  # a pin, not a model id


def test_importing_the_facade_imports_nothing_heavy() -> None:
    code = ("import sys, modelgit.api; heavy = {'numpy', 'onnxruntime', 'sqlalchemy', 'httpx', 'jsonschema', "
            "'rich'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_route_and_run_as_the_runtime_serves(example_repo: Repo) -> None:
    import numpy as np

    found = api.route(example_repo.root, MODEL, key="user-1")
    assert found.serving == found.version in {"v1.0-hybrid", "v2.0-real"} and found.unloadable is None
    assert found.commit == example_repo.head() and found.as_dict()["version"] == found.version
    pinned = api.run(example_repo.root, f"{MODEL}:v1.0-hybrid", np.zeros((2, 10), np.float32))
    assert (pinned.version, pinned.routed, len(pinned.outputs[0])) == ("v1.0-hybrid", None, 2)
    assert json.loads(json.dumps(pinned.as_dict()))["outputs"] == list(pinned.outputs)
    with pytest.raises(UsageError) as caught:
        api.run(example_repo.root, f"{MODEL}:v1.0-hybrid", np.zeros((2, 3), np.float32), source="request")
    assert caught.value.message.startswith("request: ")


def test_init_writes_a_registry_that_validates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = api.init(tmp_path / "new")
    assert result.committed is not None
    assert api.validate(tmp_path / "new").valid


def test_usage_takes_since_as_a_date_or_its_text(example_repo: Repo) -> None:
    with pytest.raises(UsageError) as caught:
        api.usage(example_repo.root, MODEL, since="last week")
    assert (caught.value.message, caught.value.hint) == ("since 'last week' is not a date", "write it as YYYY-MM-DD")


def test_missing_and_existing_things_have_their_own_error_kinds(example_repo: Repo) -> None:
    """The HTTP face maps these kinds to 404 and 409; the CLI still exits 2 for both."""
    from modelgit.errors import ConflictError, NotFoundError

    for call in (lambda: api.show(example_repo.root, model="no_such_model"),
                 lambda: api.show(example_repo.root, ref="no-such-branch"),
                 lambda: api.propose(example_repo.root, "promote", MODEL, version="v9.9")):
        with pytest.raises(NotFoundError) as found:
            call()
        assert found.value.exit_code == 2
    api.propose(example_repo.root, "promote", MODEL, version="v2.0-real")
    with pytest.raises(ConflictError) as exists:
        api.propose(example_repo.root, "promote", MODEL, version="v2.0-real")
    assert exists.value.exit_code == 2 and example_repo.git("branch", "--list", "modelgit/*").count("\n") == 0
