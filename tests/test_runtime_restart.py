"""A runtime that survives restarts (issue 9, point 4): the last good commit served is remembered
per ref, so a new process does not serve an invalid tip (no crash loop) and does not go back in
time after a force-push or follow an unrelated history, unless it is told to reset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelgit import Registry
from runtime_support import V


def _served_files(root: Path) -> list[Path]:
    return sorted((root / ".git" / "modelgit" / "served").glob("*"))


def _break(score: Any) -> str:
    """Commit a tip that is invalid: v2's recorded sha256 is not its file's."""
    score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2, sha="0" * 64)], {"v1": 90, "v2": 10})
    return score.commit("a typo in v2's sha256")


def test_a_restart_on_an_invalid_tip_serves_the_last_good_commit(score: Any) -> None:
    good = score.repo.head()
    with Registry.open(score.repo.root, ref="main") as reg:
        assert reg.commit == good
    (served,) = _served_files(score.repo.root)
    assert served.read_text() == good + "\n"  # what it served, and nothing half-written beside it
    bad = _break(score)
    with Registry.open(score.repo.root, ref="main") as reg:  # no exception: no crash loop
        assert reg.commit == good
        assert reg.route("score", key="user-1") in ("v1", "v2")
        (refusal,) = reg.info()["refused"]
        assert refusal["commit"] == bad and "invalid" in refusal["reason"]
    # Without a remembered commit, an invalid tip is still an error at open, as before.
    for path in _served_files(score.repo.root):
        path.unlink()
    with pytest.raises(Exception, match="invalid"):
        Registry.open(score.repo.root, ref="main")


def test_a_restart_never_goes_back_in_time_or_to_another_history(score: Any) -> None:
    r = score.repo
    first = r.head()
    score.model("score", [V("v1", "active", k=1), V("v3", "staging", k=3)], {"v1": 50, "v3": 50})
    second = score.commit("v3 at 50 %")
    with Registry.open(r.root, ref="main") as reg:
        assert reg.commit == second
    r.git("update-ref", "refs/heads/main", first)  # a force-push back in time
    with Registry.open(r.root, ref="main") as reg:
        assert reg.commit == second
        assert "does not descend" in reg.info()["refused"][-1]["reason"]
    # An unrelated history (a valid registry, but not descended from what served).
    r.git("checkout", "-q", "--orphan", "other")
    score.model("score", [V("v1", "active", k=1)])
    unrelated = score.commit("start over")
    r.git("update-ref", "refs/heads/main", unrelated)
    with Registry.open(r.root, ref="main") as reg:
        assert reg.commit == second
    # A deliberate reset, then the new history is what a plain restart keeps.
    with Registry.open(r.root, ref="main", allow_reset=True) as reg:
        assert reg.commit == unrelated
    with Registry.open(r.root, ref="main") as reg:
        assert reg.commit == unrelated and reg.info()["refused"] == []


def test_another_process_sharing_the_cache_starts_from_the_last_good_commit(score: Any) -> None:
    r = score.repo
    good = r.head()
    with Registry.open(r.root, ref="main") as reg:
        score.model("score", [V("v1", "active", k=1), V("v4", "staging", k=4)], {"v1": 80, "v4": 20})
        newer = score.commit("v4 at 20 %")
        assert reg.reload() is True and reg.commit == newer
    r.git("update-ref", "refs/heads/main", good)  # rewound behind the service's back
    code = ("import json, sys; from modelgit import Registry; reg = Registry.open(sys.argv[1], ref='main'); "
            "print(json.dumps({'commit': reg.commit, 'refused': reg.info()['refused']}))")
    proc = subprocess.run([sys.executable, "-c", code, str(r.root)], capture_output=True, text=True, check=True)
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["commit"] == newer and seen["refused"][0]["commit"] == good


def test_a_damaged_served_file_is_ignored(score: Any) -> None:
    r = score.repo
    with Registry.open(r.root, ref="main"):
        pass
    (served,) = _served_files(r.root)
    for damage in ("not a commit\n", "0" * 40 + "\n", ""):
        served.write_text(damage)
        with Registry.open(r.root, ref="main") as reg:
            assert reg.commit == r.head() and reg.info()["refused"] == []
        assert served.read_text() == r.head() + "\n"  # rewritten with what serves


def test_a_long_lived_registry_keeps_one_validator_entry_per_live_file(score: Any) -> None:
    with Registry.open(score.repo.root, ref="main") as reg:
        for step in range(5):
            score.model("score", [V("v1", "active", k=1, weight=0.1 * (step + 1)), V("v2", "staging", k=2)],
                        {"v1": 90, "v2": 10})
            score.commit(f"weight {step}")
            assert reg.reload() is True
        validator = reg._validator  # the bound itself is what is tested here
        assert len(validator._refs) == 1 and len(validator._outcomes) == 1


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _mirror_refs(cache: Path) -> dict[str, str]:
    (mirror,) = [p for p in cache.iterdir() if p.is_dir()]
    lines = _git(mirror, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return dict(line.split(" ") for line in lines)


def test_a_url_mirror_fetches_into_quarantine_and_moves_its_branch_only_after_validation(
        score: Any, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(score.repo.root), str(bare)], check=True)
    good = score.repo.head()
    cache = tmp_path / "cache"
    with Registry.open(bare.as_uri(), ref="main", cache_dir=cache) as reg:
        assert reg.commit == good
        refs = _mirror_refs(cache)
        assert refs["refs/heads/main"] == good == refs["refs/modelgit/incoming/heads/main"]
        bad = _break(score)
        _git(score.repo.root, "push", "-q", str(bare), "main")
        assert reg.reload() is False and reg.commit == good
        refs = _mirror_refs(cache)
        # The invalid commit was fetched, but only into quarantine: the branch stays on the good one.
        assert refs["refs/modelgit/incoming/heads/main"] == bad
        assert refs["refs/heads/main"] == good
    # A new process on the same cache serves the last good commit and refuses the bad tip.
    with Registry.open(bare.as_uri(), ref="main", cache_dir=cache) as reg:
        assert reg.commit == good and reg.info()["refused"][0]["commit"] == bad
        score.model("score", [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 70, "v2": 30})
        fixed = score.commit("v2 at 30 %, with its right sha256")
        _git(score.repo.root, "push", "-q", str(bare), "main")
        assert reg.reload() is True and reg.commit == fixed
        assert _mirror_refs(cache)["refs/heads/main"] == fixed


def test_a_mirror_names_a_missing_ref_clearly(score: Any, tmp_path: Path) -> None:
    from modelgit.errors import UsageError

    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(score.repo.root), str(bare)], check=True)
    with pytest.raises(UsageError) as caught:
        Registry.open(bare.as_uri(), ref="no-such-branch", cache_dir=tmp_path / "cache")
    assert caught.value.message == f"unknown git ref 'no-such-branch' at {bare.as_uri()}"
