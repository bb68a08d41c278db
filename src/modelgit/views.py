"""Read-only views: what the registry says at a ref, a model's history, what changed between refs.

Each returns plain data (dicts and lists); the CLI renders it as a table or JSON.
"""

from __future__ import annotations

from typing import Any

from modelgit.diff import Change, model_changes, registry_changes
from modelgit.gitstore import GitRepo
from modelgit.snapshot import Loader, Snapshot, model_path, parse_model
from modelgit.spec import FileArtifact, HostedArtifact, Model, UriArtifact


def model_summary(model_id: str, model: Model) -> dict[str, Any]:
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


def version_summary(version: Any) -> dict[str, Any]:
    artifact = version.artifact
    if isinstance(artifact, FileArtifact):
        where = artifact.path
    elif isinstance(artifact, UriArtifact):
        where = artifact.uri
    else:
        assert isinstance(artifact, HostedArtifact)
        where = f"{artifact.provider}:{artifact.model_id}"
    return {
        "version": version.version,
        "status": version.status,
        "weight": version.weight,
        "artifact": where,
        "trained": version.trained,
        "metrics": dict(version.metrics),
    }


def show(snapshot: Snapshot, model_id: str | None = None) -> dict[str, Any]:
    """Models at a snapshot: all of them, or one (UsageError if unknown)."""
    models = {model_id: snapshot.model(model_id)} if model_id is not None else snapshot.models
    invalid = sorted(mid for mid, f in snapshot.files.items() if f.spec is None)
    return {
        "commit": snapshot.commit,
        "models": [model_summary(mid, m) for mid, m in models.items()],
        "invalid": invalid if model_id is None else [],
    }


def diff(loader: Loader, base: str, head: str | None, *, worktree: bool = False) -> dict[str, Any]:
    old = loader.load(base)
    new = loader.load(head, worktree=worktree)
    changes = registry_changes(old.models, new.models)
    return {"base": old.commit, "head": new.commit, "changes": [c.as_dict() for c in changes]}


def history(repo: GitRepo, model_id: str, ref: str = "HEAD", limit: int | None = None) -> dict[str, Any]:
    """Each commit reachable from ``ref`` that changed the model file, newest first, with what it
    changed semantically. One ``git log --raw`` gives old and new blob ids; one batch read gets
    them all."""
    path = model_path(model_id)
    commit = repo.resolve(ref)
    sep, end = "\x1f", "\x1e"
    fmt = end + sep.join(["%H", "%an", "%ae", "%aI", "%s", "%(trailers:only,unfold)"]) + sep
    args = ["log", f"--format={fmt}", "--raw", "--no-abbrev", "--no-renames", "--full-history"]
    if limit:
        args.append(f"-n{limit}")
    out = repo.git_text(*args, commit, "--", path)
    entries = []
    for record in out.split(end):
        if not record.strip():
            continue
        sha, author, email, date, subject, trailers, raw = record.split(sep)
        old_blob = new_blob = None
        for line in raw.strip().splitlines():
            if line.startswith(":") and line.endswith("\t" + path):
                fields = line.split("\t")[0].split()
                old_blob, new_blob = fields[2], fields[3]
        if old_blob is None:
            continue  # a merge that took one side unchanged
        entries.append({"commit": sha, "author": author, "email": email, "date": date,
                        "subject": subject, "trailers": _trailers(trailers),
                        "old": old_blob, "new": new_blob})
    if not entries:
        from modelgit.errors import UsageError

        if not repo.tree(commit, path):
            raise UsageError(f"unknown model '{model_id}': {path} has no history at {ref}",
                             hint="see 'modelgit show' for the model ids")
    zero = "0" * 40
    blobs = repo.read_blobs(b for e in entries for b in (e["old"], e["new"]) if b != zero)
    parsed: dict[str, Model | None] = {}
    for blob, data in blobs.items():
        parsed[blob] = parse_model(data, path, blob).spec
    result = []
    for entry in entries:
        old = parsed.get(entry.pop("old"))
        new = parsed.get(entry.pop("new"))
        changes: list[Change] = model_changes(model_id, old, new)
        entry["changes"] = [c.text for c in changes]
        result.append(entry)
    return {"model": model_id, "ref": ref, "commits": result}


def _trailers(text: str) -> dict[str, str]:
    found = {}
    for line in text.strip().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found[key.strip()] = value.strip()
    return found
