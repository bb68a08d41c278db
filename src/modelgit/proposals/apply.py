"""Applying a proposal: load the base it needs, validate the registry it would make with the same
pipeline as ``modelgit validate``, then write git objects and the branch (never the user's working
tree, index or HEAD, except with ``on_current_branch``)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelgit.errors import ConflictError, GitError, InvalidError, UsageError
from modelgit.gitstore import CommitWriter, GitRepo, check_remote
from modelgit.proposals.message import Proposal, check_model_id
from modelgit.snapshot import Loader, Snapshot

if TYPE_CHECKING:
    from modelgit.validate import Validator


# -- loading ------------------------------------------------------------------------------------
def load_base(loader: Loader, ref: str, model_id: str, *, whole_if_missing: bool = True) -> Snapshot:
    """The registry at ``ref`` as a proposal about ``model_id`` needs it: every file listed, but
    only the settings and that model's file parsed (:meth:`Loader.load_models`). When the model
    does not exist at ``ref`` the whole registry is loaded (if ``whole_if_missing``), so that
    "unknown model" can suggest the ids that are close."""
    check_model_id(model_id)
    return loader.load_models(ref, [model_id], or_whole=whole_if_missing)


# -- applying -----------------------------------------------------------------------------------
def overlay(loader: Loader, base: Snapshot, changes: Mapping[str, bytes | None]) -> Snapshot:
    """The snapshot ``base`` would become with ``changes`` applied (:meth:`Loader.overlay`)."""
    return loader.overlay(base, changes)


@dataclass(frozen=True)
class Outcome:
    proposal: Proposal
    branch: str | None
    commit: str | None
    diff: str
    pushed: str | None = None
    on_current_branch: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.proposal.model, "action": self.proposal.action,
                "version": self.proposal.version, "subject": self.proposal.subject,
                "branch": self.branch, "commit": self.commit, "base": self.proposal.base_commit,
                "pushed": self.pushed, "on_current_branch": self.on_current_branch,
                "files": sorted(self.proposal.changes), "diff": self.diff}


def render_diff(base: Snapshot, changes: Mapping[str, bytes | None]) -> str:
    out = []
    for path, data in changes.items():
        old = base.read(path) if path in base.entries else b""
        if path.endswith(".yaml") or path.endswith(".yml"):
            out.extend(difflib.unified_diff(
                old.decode("utf-8", "replace").splitlines(True),
                (data or b"").decode("utf-8", "replace").splitlines(True),
                f"a/{path}", f"b/{path}"))
        else:
            size = len(data) if data is not None else 0
            out.append(f"binary {path}: {len(old)} → {size} bytes\n")
    return "".join(out)


def validate_change(validator: Validator, base: Snapshot, changes: Mapping[str, bytes | None],
                    models: Sequence[str], reverts: Sequence[str] = ()) -> Snapshot:
    """Validate the registry after the change (:meth:`Validator.validate_change`)."""
    return validator.validate_change(base, changes, models, reverts)


def apply(
    repo: GitRepo,
    proposal: Proposal,
    *,
    validator: Validator | None = None,
    base: Snapshot | None = None,
    branch: str | None = None,
    on_current_branch: bool = False,
    push: str | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Validate and commit a proposal on a new branch (or the current one)."""
    from modelgit.validate import Validator

    if push is not None:
        check_remote(push)  # before anything is committed, and in a dry run too
    if branch is not None:
        repo.check_branch_name(branch)  # a dry run refuses what the real run would
    validator = validator or Validator(repo)
    base = base or validator.loader.load(proposal.base_commit)
    reverts = [proposal.extra_trailers["Modelgit-Reverts"]] if "Modelgit-Reverts" in proposal.extra_trailers else []
    if all(path in base.entries and base.read(path) == data for path, data in proposal.changes.items()
           if data is not None) and all(path not in base.entries for path, data in proposal.changes.items()
                                        if data is None):
        raise InvalidError(f"{proposal.subject}: the registry at {proposal.base_commit[:12]} says so "
                           "already; nothing to change")
    validator.validate_change(base, proposal.changes, [proposal.model], reverts)
    diff = render_diff(base, proposal.changes)
    if dry_run:
        return Outcome(proposal, None, None, diff)
    writer = CommitWriter(repo)
    current = None
    if on_current_branch:
        if repo.bare:
            raise UsageError("--on-current-branch needs a working tree; this is a bare repository",
                             hint="drop --on-current-branch to propose on a new branch")
        current = repo.current_branch()
        if current is None:
            raise UsageError("HEAD is detached; --on-current-branch needs a checked-out branch",
                             hint="check out a branch, or drop --on-current-branch to propose on a new one")
        # Whether HEAD is still the base and the touched files are clean is checked under git's
        # index lock, right before the branch moves (CommitWriter.commit_on_current_branch): a
        # check made here could be stale by then.
        target_branch = current
    else:
        target_branch = branch or proposal.default_branch()
        repo.check_branch_name(target_branch)
        if repo.try_resolve(f"refs/heads/{target_branch}"):
            raise ConflictError(f"branch '{target_branch}' already exists; nothing was committed",
                             hint="pass --branch NAME, or delete it: git branch -D " + target_branch)
    tree_changes: dict[str, tuple[str, str] | None] = {}
    for path, data in proposal.changes.items():
        tree_changes[path] = None if data is None else (
            proposal.modes.get(path, "100644"), writer.write_blob(data))
    tree = writer.write_tree(proposal.base_commit, tree_changes)
    commit = writer.commit(tree, [proposal.base_commit], proposal.message)
    if current is not None:
        writer.commit_on_current_branch(current, commit, proposal.base_commit, tree_changes,
                                        f"modelgit: {proposal.subject}")
    else:
        writer.create_branch(target_branch, commit)
    pushed = None
    if push:
        try:
            repo.push(push, f"refs/heads/{target_branch}:refs/heads/{target_branch}")
        except GitError as exc:
            raise GitError(f"committed {commit[:12]} on {target_branch}, but pushing it to '{push}' "
                           f"failed: {exc.message}",
                           hint=f"the commit is there; push it when the remote is reachable: "
                                f"git push {push} {target_branch}") from None
        pushed = push
    return Outcome(proposal, target_branch, commit, diff, pushed, current is not None)
