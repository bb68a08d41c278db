"""Semantic rules over typed models: pure functions, no I/O.

Each rule yields ``(json_path, code, message, hint)``; the caller turns the path into a line.
"""

from __future__ import annotations

import datetime
import difflib
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

# The pydantic models are imported where a rule looks at one (it exists, so they are imported
# already): importing this module must not cost 0.1-0.2 s of pydantic (the path rules need none).
if TYPE_CHECKING:
    from modelgit.spec import Model, Version

Problem = tuple[tuple[Any, ...], str, str, str]

# Legal lifecycle moves, DESIGN §1. Anything else between two commits is refused.
LEGAL_MOVES = {
    "staging": {"active", "archived"},
    "active": {"deprecated"},
    "deprecated": {"active", "archived"},
    "archived": set(),
}
SERVABLE = ("active", "staging")
TRAFFIC_TOLERANCE = 1e-9


def model_rules(model: Model, model_id: str) -> list[Problem]:
    return list(_model_rules(model, model_id))


def _model_rules(model: Model, model_id: str) -> Iterator[Problem]:
    from modelgit.spec import FileArtifact, HostedArtifact

    if model.name != model_id:
        yield (("name",), "RULE001",
               f"name '{model.name}' does not match the file's model id '{model_id}'",
               f"set name: {model_id}; the file path under registry/models/ is the model id")
    seen: dict[str, int] = {}
    actives: list[int] = []
    for index, version in enumerate(model.versions):
        if version.version in seen:
            yield (("versions", index, "version"), "RULE002",
                   f"version id '{version.version}' is used twice (first at versions[{seen[version.version]}])",
                   "give the new version a new id")
        else:
            seen[version.version] = index
        if version.status == "active":
            actives.append(index)
        if version.trained is not None:
            yield from _date_rules(version.trained, ("versions", index, "trained"))
        if isinstance(version.artifact, FileArtifact):
            yield from _path_rules(version.artifact.path, ("versions", index, "artifact", "path"))
        if _task_needs_file(model) and isinstance(version.artifact, HostedArtifact):
            yield (("versions", index, "artifact"), "RULE003",
                   f"a {model.task} model needs an ONNX artifact (path or uri), not a provider",
                   "hosted models use task: generation")
    for index in actives[1:]:
        yield (("versions", index, "status"), "RULE004",
               f"two active versions: '{model.versions[actives[0]].version}' and "
               f"'{model.versions[index].version}'",
               "keep one active and deprecate the other; modelgit promote does both")
    if model.traffic is not None:
        yield from _traffic_rules(model, actives)
    if model.evaluation is not None:
        yield from _path_rules(model.evaluation.dataset.path, ("evaluation", "dataset", "path"))
        evaluation = model.evaluation
        if evaluation.primary and evaluation.metrics and evaluation.primary not in evaluation.metrics:
            yield (("evaluation", "primary"), "RULE005",
                   f"primary metric '{evaluation.primary}' is not in metrics",
                   f"add it to metrics or pick one of: {', '.join(evaluation.metrics)}")
    if model.policy is not None and model.policy.ramp is not None:
        steps = model.policy.ramp
        if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
            yield (("policy", "ramp"), "RULE015", f"ramp {list(steps)} does not grow step by step",
                   "list the percentages in increasing order, e.g. [10, 25, 50, 100]")
    if len(actives) == 1:
        yield from _breaking_rules(model, actives[0])
    if model.retired:
        for index, version in enumerate(model.versions):
            if version.status in SERVABLE:
                yield (("versions", index, "status"), "RULE006",
                       f"the model is retired but version '{version.version}' is {version.status}",
                       f"deprecate or archive it, or remove 'retired: true' to keep {model.name} in service")


def _date_rules(text: str, jpath: tuple[Any, ...]) -> Iterator[Problem]:
    """The schema checks the YYYY-MM-DD shape; the calendar decides whether the day exists."""
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        where = ".".join(map(str, jpath))
        yield (jpath, "RULE007", f"{where}: {text} is not a date in the calendar",
               "check the month (01-12) and the day of that month")


def _task_needs_file(model: Model) -> bool:
    return model.task != "generation"


def _traffic_rules(model: Model, actives: list[int]) -> Iterator[Problem]:
    traffic = model.traffic or {}
    statuses = {v.version: v.status for v in model.versions}
    total = sum(traffic.values())
    if abs(total - 100) > TRAFFIC_TOLERANCE:
        yield (("traffic",), "RULE010", f"traffic sums to {total:g}, not 100",
               "make the percentages add up to 100")
    for version_id in traffic:
        status = statuses.get(version_id)
        if status is None:
            close = difflib.get_close_matches(version_id, [v for v in statuses if v not in traffic], 1)
            known = f"known versions: {', '.join(statuses)}"
            yield (("traffic", version_id), "RULE011",
                   f"traffic names unknown version '{version_id}'",
                   f"did you mean '{close[0]}'? {known}" if close else known)
        elif status not in SERVABLE:
            yield (("traffic", version_id), "RULE012",
                   f"traffic names {status} version '{version_id}'; only active or staging "
                   "versions take traffic", f"remove '{version_id}' from traffic")
    if not actives:
        yield (("traffic",), "RULE013", "traffic is set but no version is active",
               f"promote a version first: modelgit promote {model.name} VERSION")
    elif model.versions[actives[0]].version not in traffic:
        active = model.versions[actives[0]].version
        yield (("traffic",), "RULE014", f"traffic leaves out the active version '{active}'",
               f"give '{active}' a share, or promote the version that should serve")


def _path_rules(path: str, jpath: tuple[Any, ...]) -> Iterator[Problem]:
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        yield (jpath, "PATH001", f"absolute path '{path}' is not allowed",
               "use a path relative to the repository root, e.g. registry/artifacts/model.onnx")
    elif "\\" in path:
        yield (jpath, "PATH002", f"path '{path}' uses backslashes", "use forward slashes")
    elif ".." in path.split("/"):
        yield (jpath, "PATH003", f"path '{path}' uses '..'; paths must stay inside the repository",
               "write the path from the repository root, e.g. registry/artifacts/model.onnx")
    elif "." in path.split("/") or "" in path.split("/"):
        yield (jpath, "PATH003", f"path '{path}' has a '.' or empty part ('./', '//' or a "
               "trailing '/')", "write the plain path from the repository root, e.g. "
               "registry/artifacts/model.onnx")


def path_is_clean(path: str) -> bool:
    """True when :func:`_path_rules` has nothing to say about ``path`` (safe to look up in git)."""
    return not any(_path_rules(path, ()))


def signature_of(version: Version) -> dict[str, Any] | None:
    from modelgit.spec import FileArtifact, UriArtifact

    artifact = version.artifact
    if isinstance(artifact, FileArtifact | UriArtifact) and artifact.signature is not None:
        return artifact.signature.model_dump()
    return None


def _breaking_rules(model: Model, active_index: int) -> Iterator[Problem]:
    active_signature = signature_of(model.versions[active_index])
    if active_signature is None:
        return
    for index in range(active_index + 1, len(model.versions)):
        version = model.versions[index]
        signature = signature_of(version)
        if version.status == "archived" or signature is None:
            continue
        if signature != active_signature and not version.breaking_changes:
            yield (("versions", index, "artifact", "signature"), "RULE020",
                   f"version '{version.version}' changes the inputs/outputs of active version "
                   f"'{model.versions[active_index].version}' but lists no breaking_changes",
                   "describe the change under breaking_changes (and migration_notes)")


def artifact_identity(version: Version) -> dict[str, Any]:
    """What identifies a version's artifact; editing any of it in place is refused."""
    artifact = version.artifact
    data = artifact.model_dump(exclude_none=True)
    data.pop("signature", None)
    return data


def base_rules(base: Model | None, head: Model | None,
               reverted_moves: frozenset[tuple[str, str, str | None]] = frozenset()) -> list[Problem]:
    """Rules between a base commit's model and the head's (a pull request's change).

    ``reverted_moves`` holds (version, from, to) status moves that undo a reverted commit's move
    (``git revert`` of a promote puts a version back to staging; ``to`` None: the reverted commit
    added the version, so its revert may delete it): they are allowed.
    """
    return list(_base_rules(base, head, reverted_moves))


def _base_rules(base: Model | None, head: Model | None,
                reverted_moves: frozenset[tuple[str, str, str | None]]) -> Iterator[Problem]:
    if base is None:
        return
    head_versions = {v.version: (i, v) for i, v in enumerate(head.versions)} if head else {}
    for old in base.versions:
        found = head_versions.get(old.version)
        if found is None:
            if old.status != "archived" and (old.version, old.status, None) not in reverted_moves:
                what = (f"version '{old.version}' ({old.status}) was deleted" if head else
                        f"the model file was deleted with version '{old.version}' ({old.status})")
                yield (("versions",), "BASE001", f"{what}; only archived versions may be removed",
                       f"archive it first: modelgit archive {base.name} {old.version}")
            continue
        index, new = found
        if (new.status != old.status and new.status not in LEGAL_MOVES[old.status]
                and (old.version, old.status, new.status) not in reverted_moves):
            allowed = ", ".join(sorted(LEGAL_MOVES[old.status])) or "nothing"
            yield (("versions", index, "status"), "BASE002",
                   f"version '{old.version}' moves {old.status} → {new.status}, which is not allowed",
                   f"from {old.status} a version may move to: {allowed}")
        old_identity, new_identity = artifact_identity(old), artifact_identity(new)
        if new_identity != old_identity:
            changed = [k for k in dict.fromkeys([*old_identity, *new_identity])
                       if old_identity.get(k) != new_identity.get(k)]
            yield (("versions", index, "artifact"), "BASE003",
                   f"the artifact of existing version '{old.version}' was edited in place "
                   f"({' and '.join(changed)} changed)",
                   f"restore it; a new artifact is a new version: modelgit register {base.name} "
                   "NEW_VERSION --artifact PATH")
    if head is None:
        return
    if base.active is not None and head.active is None and not head.retired:
        yield (("versions",), "BASE004",
               f"the change leaves '{base.name}' with no active version: it served "
               f"'{base.active.version}' and would go offline",
               f"promote another version in the same change (modelgit promote {base.name} VERSION), "
               f"or take the model out of service on purpose: modelgit retire {base.name} "
               "(sets 'retired: true')")
    if base.evaluation is not None and head.evaluation is None and head.active is not None:
        yield (("evaluation",), "BASE005",
               f"the change removes the evaluation of '{base.name}' while it serves: the CI gate "
               "could no longer check what it promotes",
               "keep the evaluation block; change its dataset or metrics instead")
