"""``rollback``: find the newest serving change of a model that is not undone already (walking
reverts, reapplies and merged pull requests) and revert it as ``git revert`` would."""

from __future__ import annotations

from modelgit.errors import InvalidError
from modelgit.gitstore import FileChange, GitRepo, merge_file
from modelgit.proposals.message import SERVING_ACTIONS, Proposal, check_model_id
from modelgit.snapshot import Snapshot, model_path
from modelgit.spec import Model

# -- rollback -----------------------------------------------------------------------------------
SERVING_CHANGE_KINDS = frozenset({"status", "weight", "traffic"})


def _merged_commits(repo: GitRepo, merge: FileChange) -> dict[str, tuple[str, ...]]:
    """The commits a merge brought in (its first parent..its other parents), each with the commit
    ids its message says it reverts."""
    from modelgit.validate import says_reverts

    return {found.commit: tuple(says_reverts(found.message))
            for found in repo.commit_messages(merge.parents[1:], exclude=merge.parents[:1])}


def _rollback_target(repo: GitRepo, model_id: str, path: str, history: list[FileChange],
                     parsed: dict[str, Model | None], cancelled: set[str]) -> int | None:
    """Index in ``history`` (newest first) of the serving change that ``rollback`` undoes next.

    A revert and the commit it reverts cancel each other, so repeated rollbacks walk back through
    serving states (N → N-1 → N-2) instead of undoing the previous rollback; a revert that was
    itself reverted ("reapply") cancels nothing. A merged pull request counts as a revert when the
    commits it brought in are reverts, and as reverted when one of them was reverted. Fills
    ``cancelled`` with the commits found undone."""
    from modelgit.validate import says_reverts

    for index, change in enumerate(history):
        if change.commit in cancelled:
            continue
        reverts = says_reverts(change.message)
        if len(change.parents) > 1:
            merged = _merged_commits(repo, change)
            if cancelled & merged.keys():
                continue
            reverts += [sha for undone in merged.values() for sha in undone]
        if reverts:
            cancelled.update(full for sha in reverts if (full := repo.try_resolve(sha)) is not None)
            continue
        if _serving_change(repo, model_id, path, change, parsed):
            return index
    return None


def _serving_change(repo: GitRepo, model_id: str, path: str, change: FileChange,
                    parsed: dict[str, Model | None]) -> bool:
    if change.trailers.get("Modelgit-Model") == model_id:
        return change.trailers.get("Modelgit-Action") in SERVING_ACTIONS
    from modelgit.diff import model_changes
    from modelgit.snapshot import parse_model

    for blob in (change.old_blob, change.new_blob):
        if blob not in parsed:
            parsed[blob] = None if set(blob) == {"0"} else parse_model(repo.read_blob(blob), path).spec
    old, new = parsed[change.old_blob], parsed[change.new_blob]
    if old is None or new is None:
        return False
    return any(c.kind in SERVING_CHANGE_KINDS for c in model_changes(model_id, old, new))


def _shallow_boundary(repo: GitRepo) -> frozenset[str]:
    """Commits a shallow clone has without their parents (git lists them in ``$GIT_DIR/shallow``);
    empty for a full clone."""
    try:
        text = (repo.git_dir / "shallow").read_text("ascii", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(text.split())


def plan_rollback(repo: GitRepo, snapshot: Snapshot, model_id: str) -> Proposal:
    """Revert the newest commit that changed what ``model_id`` serves (its active version, traffic
    or weights) and is not rolled back already, as ``git revert`` would, on top of ``snapshot``."""
    check_model_id(model_id)
    snapshot.model(model_id)  # unknown model: a usage error with close matches
    path = model_path(model_id)
    assert snapshot.commit is not None
    history = repo.file_history(snapshot.commit, path)
    parsed: dict[str, Model | None] = {}
    cancelled: set[str] = set()
    index = _rollback_target(repo, model_id, path, history, parsed, cancelled)
    if index is None and cancelled:
        raise InvalidError(f"every change to what '{model_id}' serves is rolled back already; "
                           "nothing to roll back",
                           hint=f"to serve another version, make it active: modelgit rollback {model_id} "
                                "--to VERSION")
    shallow = _shallow_boundary(repo)
    if history and history[-1].commit in shallow and (index is None or index == len(history) - 1):
        # The oldest commit this clone has looks like the model's creation (its parents were not
        # fetched); what to roll back to may lie beyond it.
        raise InvalidError(
            f"the history of '{model_id}' is shallow: this clone stops at commit "
            f"{history[-1].commit[:12]} and cannot see what it changed; nothing was committed",
            hint="fetch more history and run again: git fetch --deepen=100 (or git fetch --unshallow)",
        )
    if index is None:
        raise InvalidError(f"no commit changed what '{model_id}' serves; nothing to roll back")
    target = history[index]
    if set(target.old_blob) == {"0"}:
        raise InvalidError(f"commit {target.commit[:12]} created '{model_id}'; there is no earlier "
                           "state to roll back to", hint="deprecate or archive versions instead")
    blobs = repo.read_blobs([target.old_blob, target.new_blob])
    current = snapshot.read(path)
    if current == blobs[target.new_blob]:
        result = blobs[target.old_blob]
    else:
        result, conflict = merge_file(current, blobs[target.new_blob], blobs[target.old_blob])
        if conflict:
            in_way = history[0] if index > 0 else None
            old_model = parsed.get(target.old_blob)
            previous = old_model.active.version if old_model and old_model.active else None
            who = f"later commit {in_way.commit[:12]} ('{in_way.subject}')" if in_way else "a later change"
            raise InvalidError(
                f"cannot revert {target.commit[:12]} ('{target.subject}'): {who} changed the same "
                f"lines of {path}; nothing was committed",
                hint=(f"make the old version active again instead: modelgit rollback {model_id} "
                      f"--to {previous}") if previous else "resolve it by hand with git revert",
            )
    return Proposal(
        model_id, "rollback", None, f'Revert "{target.subject}"', snapshot.commit, {path: result},
        body=f"This reverts commit {target.commit}.",
        extra_trailers={"Modelgit-Reverts": target.commit}, slug=f"rollback-{target.commit[:10]}",
    )
