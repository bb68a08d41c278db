"""Proposals that mean something, and --on-current-branch that never leaves git half-moved.

Real git repositories, a real ``index.lock``, a branch really moved by another git process (from a
git hook, at a chosen moment), real concurrent CLI processes and a real failing git filter. The
expected values are the example registry's committed values, read by hand, and what git itself
reports (``rev-parse``, ``ls-files --stage``, ``diff --cached``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import Repo
from test_proposals import (
    MODEL,
    assert_nothing_changed,
    branches,
    fails,
    git_raw,
    model_at,
    modelgit_command,
    ok,
    settle,
    show_bytes,
    state,
)

NOTHING = [
    # id, args: each asks for what the example registry already says (read from registry/models/)
    ("promote the active version", ["promote", "calling_score", "v1.0-hybrid"]),
    ("the same weight", ["weight", "calling_score", "v1.0-hybrid", "0.1"]),
    ("the same weight written another way", ["weight", "outcome_prediction", "v2.0-real", "1"]),
    ("the same split", ["split", "calling_score", "v1.0-hybrid=90", "v2.0-real=10"]),
    ("the same split in another order", ["split", "calling_score", "v2.0-real=10", "v1.0-hybrid=90.0"]),
    ("100 % to the active version when no split is set", ["split", "outcome_prediction", "v1.0-hybrid=100"]),
    ("the A/B test that is running", ["ab", "start", "calling_score", "v2.0-real", "--traffic", "10"]),
]


@pytest.mark.parametrize("on_current_branch", [False, True], ids=["new branch", "on current branch"])
@pytest.mark.parametrize("args", [n[1] for n in NOTHING], ids=[n[0] for n in NOTHING])
def test_a_proposal_that_changes_nothing_is_refused(example_repo: Repo, cli, args: list[str],
                                                    on_current_branch: bool) -> None:
    r = example_repo
    settle(r)
    before = state(r)
    extra = ["--on-current-branch"] if on_current_branch else []
    err = fails(cli, "-C", str(r.root), *args, *extra, code=1)
    assert err.startswith("error: ") and "nothing to change" in err.splitlines()[0], err
    assert_nothing_changed(before, state(r))


def test_a_real_change_next_to_a_no_op_still_goes_through(example_repo: Repo, cli) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "weight", "calling_score", "v1.0-hybrid", "0.15")
    assert model_at(r, "modelgit/calling_score/weight-v1.0-hybrid")["versions"][0]["weight"] == 0.15
    ok(cli, "-C", str(r.root), "split", "calling_score", "v1.0-hybrid=80", "v2.0-real=20")
    assert model_at(r, "modelgit/calling_score/split-80-20")["traffic"] == {"v1.0-hybrid": 80, "v2.0-real": 20}


# -- --on-current-branch: git's lock, git's order ----------------------------------------------------
def test_on_current_branch_waits_for_no_one_when_another_git_process_holds_the_index(
        example_repo: Repo, cli) -> None:
    r = example_repo
    lock = r.root / ".git" / "index.lock"
    lock.write_bytes(b"")  # what a running `git add`/`git commit` holds
    before = state(r)
    err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch", code=1)
    assert err.startswith(f"error: another git process is changing this repository ({lock} exists); "
                          "nothing was changed\n"), err
    assert f"remove {lock}" in err
    assert_nothing_changed(before, state(r))
    assert lock.exists()  # someone else's lock is never removed
    # git itself refuses the same way while the lock is there
    assert subprocess.run(["git", "add", MODEL], cwd=r.root, capture_output=True).returncode != 0
    lock.unlink()
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch")
    assert git_raw(r, "status", "--porcelain") == ""


def _someone_elses_commit(r: Repo) -> str:
    """A commit on top of HEAD made by plain git (not checked out)."""
    tree = r.git("rev-parse", "HEAD^{tree}")
    return r.git("commit-tree", tree, "-p", "HEAD", "-m", "someone else's commit")


def _hook_moving_main_to(r: Repo, commit: str, *, while_index_locked: bool) -> Path:
    """A post-index-change hook: the first time it runs (while ``index.lock`` exists, if asked),
    another git process moves main to ``commit``."""
    marker = r.root.parent / "hook-fired"
    lock = r.root / ".git" / "index.lock"
    condition = f'[ -e "{lock}" ] && ' if while_index_locked else ""
    hook = r.root / ".git" / "hooks" / "post-index-change"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f'#!/bin/sh\nif {condition}[ ! -e "{marker}" ]; then\n  touch "{marker}"\n'
                    f'  git update-ref refs/heads/main {commit}\nfi\n')
    hook.chmod(0o755)
    return marker


@pytest.mark.parametrize("while_index_locked", [False, True],
                         ids=["before modelgit takes the lock", "while modelgit holds the lock"])
def test_on_current_branch_that_loses_the_race_to_another_commit_changes_nothing(
        example_repo: Repo, cli, while_index_locked: bool) -> None:
    r = example_repo
    other = _someone_elses_commit(r)
    settle(r)
    index, files = (r.root / ".git" / "index").read_bytes(), (r.root / MODEL).read_bytes()
    marker = _hook_moving_main_to(r, other, while_index_locked=while_index_locked)
    err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch", code=1)
    assert marker.exists()  # the other process did move the branch
    assert err.startswith("error: branch 'main' moved while modelgit was working (another commit landed "
                          "on it first); nothing was changed\nhint: run the command again\n"), err
    assert "committed" not in err
    assert r.git("rev-parse", "main") == other
    assert (r.root / ".git" / "index").read_bytes() == index
    assert (r.root / MODEL).read_bytes() == files
    assert branches(r) == ["main"]
    assert not [p.name for p in (r.root / ".git").iterdir() if "index." in p.name or p.name.endswith(".lock")]


def _failing_smudge_filter(r: Repo) -> None:
    """Git cannot write registry YAML into the working tree any more (a required filter fails),
    while reading it back is unchanged (the clean filter is `cat`)."""
    r.git("config", "filter.broken.clean", "cat")
    r.git("config", "filter.broken.smudge", "false")
    r.git("config", "filter.broken.required", "true")
    (r.root / ".git" / "info").mkdir(exist_ok=True)
    (r.root / ".git" / "info" / "attributes").write_text("*.yaml filter=broken\n")


def test_on_current_branch_that_cannot_write_the_file_says_the_commit_landed(example_repo: Repo, cli) -> None:
    r = example_repo
    old_head = r.head()
    old_text = (r.root / MODEL).read_bytes()
    _failing_smudge_filter(r)
    settle(r)
    err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", "--on-current-branch", code=1)
    new_head = r.head()
    assert r.git("rev-parse", "HEAD~1") == old_head and new_head != old_head
    assert err.startswith(f"error: committed {new_head[:12]} on main, but the working tree could not be "
                          "updated: "), err
    assert f"hint: the commit is there; bring the files along with: git checkout HEAD -- {MODEL}" in err
    # The index matches the commit (it never stages the reverse change); the working-tree file is
    # never half-written: git removed it before its filter failed, or it is as it was.
    assert r.git("diff", "--cached", "--name-only") == ""
    assert r.git("ls-files", "--stage", "--", MODEL).split()[1] == r.git("rev-parse", f"HEAD:{MODEL}")
    path = r.root / MODEL
    assert not path.exists() or path.read_bytes() == old_text
    assert git_raw(r, "status", "--porcelain", "--", MODEL)[:2] in (" D", " M")
    # The hint works.
    (r.root / ".git" / "info" / "attributes").unlink()
    r.git("checkout", "HEAD", "--", MODEL)
    assert path.read_bytes() == show_bytes(r, "HEAD", MODEL) and git_raw(r, "status", "--porcelain") == ""
    assert not [p.name for p in (r.root / ".git").iterdir() if "index." in p.name or p.name.endswith(".lock")]


def test_on_current_branch_in_a_linked_worktree_updates_that_worktrees_index(example_repo: Repo, cli) -> None:
    r = example_repo
    linked = r.root.parent / "linked"
    r.git("worktree", "add", "-q", "-b", "side", str(linked))
    main_index = (r.root / ".git" / "index").read_bytes()
    ok(cli, "-C", str(linked), "weight", "calling_score", "v1.0-hybrid", "0.3", "--on-current-branch")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=linked, capture_output=True, text=True,
                          check=True).stdout == ""
    assert (linked / MODEL).read_bytes() == show_bytes(r, "side", MODEL)
    assert r.git("rev-parse", "main") != r.git("rev-parse", "side")
    assert (r.root / ".git" / "index").read_bytes() == main_index


def test_concurrent_proposals_on_the_current_branch_win_or_say_they_lost(example_repo: Repo) -> None:
    r = example_repo
    start = r.head()
    jobs = [["promote", "calling_score", "v2.0-real"], ["weight", "outcome_prediction", "v1.0-hybrid", "0.5"],
            ["archive", "outcome_prediction", "v2.0-real"], ["weight", "calling_score", "v2.0-real", "0.7"]]
    procs = [subprocess.Popen([*modelgit_command(), "-C", str(r.root), *args, "--on-current-branch"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in jobs]
    results: list[tuple[int, str, str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out, err))
    won = [out for code, out, _ in results if code == 0]
    lost = [err for code, _, err in results if code != 0]
    assert won, results
    for code, _, err in results:
        if code != 0:
            assert code == 1 and "Traceback" not in err, err
            assert ("another git process is changing this repository" in err
                    or "branch 'main' moved while modelgit was working" in err), err
            assert "committed" not in err
    # Each winner is one commit on main's first-parent line; nothing else moved main.
    line = r.git("rev-list", "--first-parent", f"{start}..main").split()
    assert len(line) == len(won) == len(jobs) - len(lost)
    for out in won:
        assert out.splitlines()[-1].split()[1] in {c[:12] for c in line}
    # Index and working tree are exactly at the last commit, and no lock or temporary index is left.
    assert git_raw(r, "status", "--porcelain", "--untracked-files=all") == ""
    assert r.git("diff", "--cached", "--name-only") == ""
    assert not [p.name for p in (r.root / ".git").iterdir() if "index." in p.name or p.name.endswith(".lock")]


def test_a_proposal_whose_branch_another_process_creates_meanwhile_says_it_lost(example_repo: Repo, cli) -> None:
    r = example_repo
    branch = "modelgit/calling_score/promote-v2.0-real"
    marker = r.root.parent / "hook-fired"
    hook = r.root / ".git" / "hooks" / "post-index-change"
    hook.parent.mkdir(exist_ok=True)
    # The first index modelgit writes (its temporary one, while it builds the commit): another
    # git process creates the very branch the proposal is about to create.
    hook.write_text(f'#!/bin/sh\nif [ ! -e "{marker}" ]; then\n  touch "{marker}"\n'
                    f'  git branch {branch} HEAD\nfi\n')
    hook.chmod(0o755)
    head = r.head()
    err = fails(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real", code=2)
    assert marker.exists()
    assert err.startswith(f"error: branch '{branch}' already exists: another process created it while "
                          "modelgit was working; nothing was committed\n"), err
    assert r.git("rev-parse", branch) == head  # the other process's branch, untouched
    assert sorted(branches(r)) == sorted(["main", branch]) and r.head() == head


def test_rollback_in_a_shallow_clone_says_the_history_is_shallow(example_repo: Repo, cli,
                                                                  tmp_path: Path) -> None:
    model = "registry/models/calling_score.yaml"
    example_repo.write(model, example_repo.read(model).replace("v1.0-hybrid: 90\n  v2.0-real: 10",
                                                               "v1.0-hybrid: 80\n  v2.0-real: 20"))
    shift = example_repo.commit("Shift traffic to 80/20")
    clones = {}
    for depth in (1, 2):
        clone = tmp_path / f"depth{depth}"
        subprocess.run(["git", "clone", "-q", f"--depth={depth}", f"file://{example_repo.root}",
                        str(clone)], check=True)
        clones[depth] = Repo(clone)
    before = clones[1].git("for-each-ref")
    code, out, err = cli("-C", str(clones[1].root), "rollback", "calling_score")
    assert (code, out) == (1, "")
    assert err == (f"error: the history of 'calling_score' is shallow: this clone stops at commit "
                   f"{shift[:12]} and cannot see what it changed; nothing was committed\n"
                   "hint: fetch more history and run again: git fetch --deepen=100 "
                   "(or git fetch --unshallow)\n")
    assert clones[1].git("for-each-ref") == before  # nothing was committed
    # With the commit before it fetched, the same rollback works: the shift is undone.
    code, out, err = cli("-C", str(clones[2].root), "rollback", "calling_score")
    assert code == 0, err
    branch = clones[2].git("for-each-ref", "--format=%(refname:short)", "refs/heads/modelgit/")
    assert branch and "v1.0-hybrid: 90" in clones[2].git("show", f"{branch.split()[0]}:{model}")
