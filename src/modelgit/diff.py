"""Semantic diff between two states of a model: pure functions of data.

"v2.0-real added (staging)", "v1.0-hybrid active → deprecated", "traffic 90/10 → 80/20".

A model file that exists but does not validate is an :class:`Invalid`, not a missing model, so a
commit that breaks a file reads "now invalid", never "model removed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from modelgit.rules import artifact_identity

if TYPE_CHECKING:
    from modelgit.spec import Model


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # model-added, model-removed, version-added, version-removed, status, weight, ...
    model: str
    version: str | None
    before: Any
    after: Any
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "version": self.version,
                "before": self.before, "after": self.after, "text": self.text}


@dataclass(frozen=True, slots=True)
class Invalid:
    """A model file that exists but is invalid (its findings are for ``modelgit validate``); the
    blob id tells an edit of a broken file from no change."""

    blob: str


ModelState = Union["Model", Invalid, None]  # None: no file


def _num(value: float | None) -> str:
    return "unset" if value is None else f"{value:g}"


def _split_text(split: Mapping[str, float], order: list[str]) -> str:
    return "/".join(_num(split.get(v, 0)) for v in order)


def _versions_text(model: Model) -> str:
    return ", ".join(f"{v.version} ({v.status})" for v in model.versions)


def _invalid_changes(model_id: str, old: ModelState, new: ModelState) -> list[Change]:
    see = "(see 'modelgit validate')"
    if isinstance(new, Invalid):
        if isinstance(old, Invalid):
            if old.blob == new.blob:
                return []
            return [Change("invalid", model_id, None, None, None, f"edited, still invalid {see}")]
        if old is None:
            return [Change("invalid", model_id, None, None, None, f"model added, invalid {see}")]
        return [Change("invalid", model_id, None, None, None, f"now invalid {see}")]
    if new is None:
        return [Change("model-removed", model_id, None, None, None, "model removed (was invalid)")]
    return [Change("valid", model_id, None, None, None, f"now valid: {_versions_text(new)}")]


def model_changes(model_id: str, old: ModelState, new: ModelState) -> list[Change]:
    """Every change that matters to a reader, in a stable order."""
    if old is None and new is None:
        return []
    if isinstance(old, Invalid) or isinstance(new, Invalid):
        return _invalid_changes(model_id, old, new)
    if old is None:
        assert new is not None
        return [Change("model-added", model_id, None, None, None, f"model added: {_versions_text(new)}")]
    if new is None:
        return [Change("model-removed", model_id, None, None, None, "model removed")]
    changes: list[Change] = []
    old_versions = {v.version: v for v in old.versions}
    new_versions = {v.version: v for v in new.versions}
    for vid, version in new_versions.items():
        before = old_versions.get(vid)
        if before is None:
            changes.append(Change("version-added", model_id, vid, None, version.status,
                                  f"{vid} added ({version.status})"))
            continue
        if before.status != version.status:
            changes.append(Change("status", model_id, vid, before.status, version.status,
                                  f"{vid} {before.status} → {version.status}"))
        if before.weight != version.weight:
            changes.append(Change("weight", model_id, vid, before.weight, version.weight,
                                  f"{vid} weight {_num(before.weight)} → {_num(version.weight)}"))
        if artifact_identity(before) != artifact_identity(version):
            changes.append(Change("artifact", model_id, vid, artifact_identity(before),
                                  artifact_identity(version), f"{vid} artifact changed"))
        if before.metrics != version.metrics:
            changes.append(Change("metrics", model_id, vid, dict(before.metrics),
                                  dict(version.metrics), f"{vid} metrics changed"))
    for vid, version in old_versions.items():
        if vid not in new_versions:
            changes.append(Change("version-removed", model_id, vid, version.status, None,
                                  f"{vid} removed (was {version.status})"))
    old_split, new_split = old.split(), new.split()
    if old_split != new_split:
        order = [v for v in [*old_versions, *new_versions] if v in old_split or v in new_split]
        order = list(dict.fromkeys(order))
        changes.append(Change(
            "traffic", model_id, None, old_split, new_split,
            f"traffic {_split_text(old_split, order)} → {_split_text(new_split, order)} "
            f"({'/'.join(order)})",
        ))
    if old.policy != new.policy:
        changes.append(Change("policy", model_id, None,
                              old.policy.model_dump(exclude_none=True) if old.policy else None,
                              new.policy.model_dump(exclude_none=True) if new.policy else None,
                              "policy changed"))
    if bool(old.retired) != bool(new.retired):
        changes.append(Change("retired", model_id, None, bool(old.retired), bool(new.retired),
                              "retired: taken out of service on purpose" if new.retired
                              else "back in service (no longer retired)"))
    for key in ("description", "owner", "task", "evaluation"):
        if getattr(old, key) != getattr(new, key):
            changes.append(Change(key, model_id, None, None, None, f"{key} changed"))
    return changes


def registry_changes(old: Mapping[str, Model | Invalid], new: Mapping[str, Model | Invalid]) -> list[Change]:
    changes: list[Change] = []
    for model_id in sorted(set(old) | set(new)):
        changes.extend(model_changes(model_id, old.get(model_id), new.get(model_id)))
    return changes
