"""Read-only views: what the registry says at a ref, a model's history, what changed between refs.

Each returns plain data (dicts and lists); the CLI renders it as a table or JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelgit.diff import Change, Invalid, model_changes
from modelgit.gitstore import GitRepo
from modelgit.snapshot import (
    MODELS_DIR,
    Loader,
    ModelRow,
    ParsedFile,
    Snapshot,
    model_id_of,
    model_path,
    model_row,
)

if TYPE_CHECKING:
    from modelgit.spec import Model

# Where an artifact lives, by the artifact's class name. isinstance() against a pydantic class goes
# through its metaclass's __instancecheck__ (~7 µs): two per version cost 0.3 s of `show` at 1,000
# models x 20 versions; a dict lookup on the type's name costs ~0.1 µs.
_WHERE = {
    "FileArtifact": lambda artifact: artifact.path,
    "UriArtifact": lambda artifact: artifact.uri,
    "HostedArtifact": lambda artifact: f"{artifact.provider}:{artifact.model_id}",
}


def model_summary(model_id: str, model: Model, *, versions: bool = True) -> dict[str, Any]:
    """What ``show`` lists of a model. Without ``versions``, ``statuses`` (how many versions have
    each status, in release order) instead of ``versions``: all a summary table prints, at a tenth
    of the cost (a version's summary is ~1.7 µs; 20 of them per model are most of ``show``'s own
    time at 10,000 models)."""
    if not versions:
        return _row_summary(model_id, model_row(model))
    active = model.active
    return {
        "model": model_id,
        "task": model.task,
        "owner": model.owner,
        "description": model.description,
        "active": active.version if active else None,
        "traffic": model.split(),
        "versions": [version_summary(v) for v in model.versions],
    }


def _row_summary(model_id: str, row: ModelRow) -> dict[str, Any]:
    task, owner, description, active, traffic, statuses = row
    return {"model": model_id, "task": task, "owner": owner, "description": description, "active": active,
            "traffic": dict(traffic), "statuses": dict(statuses)}


def version_summary(version: Any) -> dict[str, Any]:
    artifact = version.artifact
    return {
        "version": version.version,
        "status": version.status,
        "weight": version.weight,
        "artifact": _WHERE[type(artifact).__name__](artifact),
        "trained": version.trained,
        "metrics": dict(version.metrics),
    }


def show(snapshot: Snapshot, model_id: str | None = None) -> dict[str, Any]:
    """Models at a snapshot: all of them, or one (UsageError if unknown)."""
    models, invalid = show_stream(snapshot, model_id)
    return {"commit": snapshot.commit, "models": list(models), "invalid": invalid}


def show_stream(snapshot: Snapshot, model_id: str | None = None, *,
                versions: bool = True) -> tuple[Iterator[dict[str, Any]], list[str]]:
    """What :func:`show` returns, the model summaries made one at a time as they are consumed (so
    that ``show --json`` at 10,000 models writes each and lets it go), and the invalid model ids.
    An unknown or invalid ``model_id`` raises here, before anything is consumed. ``versions``: see
    :func:`model_summary`."""
    if model_id is not None:
        one = snapshot.model(model_id)
        return iter([model_summary(model_id, one, versions=versions)]), []
    invalid = sorted(mid for mid, f in snapshot.files.items() if not f.valid)
    valid = ((mid, f) for mid, f in snapshot.files.items() if f.valid)
    if versions:
        return (model_summary(mid, f.spec) for mid, f in valid), invalid
    return (_short_summary(mid, f) for mid, f in valid), invalid


def _short_summary(model_id: str, parsed: ParsedFile) -> dict[str, Any]:
    """``model_summary(..., versions=False)`` of a valid model file, from its row (in the parse
    cache's index when the file came from there: a table of 10,000 models then builds no typed
    model and reads no stored value)."""
    row = parsed.row()
    assert row is not None  # a valid model file
    return _row_summary(model_id, row)


def _state(parsed: ParsedFile) -> Model | Invalid:
    return parsed.spec if parsed.spec is not None else Invalid(parsed.blob)


def changed_states(old: Snapshot, new: Snapshot) -> tuple[dict[str, Model | Invalid], dict[str, Model | Invalid]]:
    """The model files that differ between two snapshots (added, removed, or another blob), as
    their model or Invalid on each side (so that a broken file does not read as removed). A file
    with the same blob on both sides parses the same and changes nothing, so it is left out: a
    diff of one changed file in 10,000 builds two typed models, not 20,000."""
    before: dict[str, Model | Invalid] = {}
    after: dict[str, Model | Invalid] = {}
    for model_id in old.files.keys() | new.files.keys():
        was, now = old.files.get(model_id), new.files.get(model_id)
        if was is not None and now is not None and was.blob == now.blob:
            continue
        if was is not None:
            before[model_id] = _state(was)
        if now is not None:
            after[model_id] = _state(now)
    return before, after


def history(repo: GitRepo, model_id: str, ref: str = "HEAD", limit: int | None = None) -> dict[str, Any]:
    """Each commit reachable from ``ref`` that changed the model file, newest first, with what it
    changed semantically. One ``git log --raw`` gives old and new blob ids; one batch read gets
    them all."""
    path = model_path(model_id)
    commit = repo.resolve(ref)
    entries: list[tuple[dict[str, Any], str, str]] = []  # (commit data, old blob, new blob)
    for change in repo.file_history(commit, path, first_parent=False, limit=limit):
        entry = {"commit": change.commit, "author": change.author, "email": change.email,
                 "date": change.date, "subject": change.subject, "trailers": dict(change.trailers)}
        entries.append((entry, change.old_blob, change.new_blob))
    if not entries and not repo.tree(commit, path):
        import difflib

        from modelgit.errors import NotFoundError

        known = [mid for p in repo.tree(commit, MODELS_DIR) if (mid := model_id_of(p)) is not None]
        close = difflib.get_close_matches(model_id, known, n=3)
        raise NotFoundError(f"unknown model '{model_id}': {path} has no history at {ref}",
                         hint=f"did you mean {', '.join(close)}?" if close
                         else "see 'modelgit show' for the model ids")
    zero = "0" * 40
    # Each version of the file once, through the parse cache (a second history of the model, or
    # a snapshot that had these blobs, parses nothing).
    files = Loader(repo).parse_blobs(path, (b for _, old, new in entries for b in (old, new) if b != zero))
    parsed: dict[str, Model | Invalid] = {blob: _state(f) for blob, f in files.items()}  # no key: no file
    result = []
    for entry, old_blob, new_blob in entries:
        changes: list[Change] = model_changes(model_id, parsed.get(old_blob), parsed.get(new_blob))
        entry["changes"] = [c.text for c in changes]
        result.append(entry)
    return {"model": model_id, "ref": ref, "commits": result}

