"""Typed access to registry files: pydantic models that mirror ``schemas/*.schema.json``.

The JSON Schemas are the source of truth (editors complete from them, users read them); these
models give typed access and a fast first check. ``tests/test_schema_parity.py`` proves both accept
and reject the same corpus. The loader runs pydantic first (0.15 ms a file) and asks jsonschema for
its precise, path-carrying messages only when pydantic refuses a file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

STATUSES = ("staging", "active", "deprecated", "archived")
TASKS = ("regression", "binary-classification", "multiclass", "generation")
METRICS = ("rmse", "mae", "r2", "accuracy", "f1", "roc_auc", "log_loss")
# Metrics where a smaller value is better; all others are better when larger.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})

Status = Literal["staging", "active", "deprecated", "archived"]
Task = Literal["regression", "binary-classification", "multiclass", "generation"]
Metric = Literal["rmse", "mae", "r2", "accuracy", "f1", "roc_auc", "log_loss"]
VersionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=64)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
RepoPath = Annotated[str, Field(min_length=1, max_length=1024)]
Number = float  # strict float accepts int but not bool, like JSON Schema's "number"


def _integral_float_to_int(value: Any) -> Any:
    # JSON Schema's "integer" accepts 2.0; pydantic's strict int does not. Keep them equal.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Dim = Annotated[int | str | None, BeforeValidator(_integral_float_to_int)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Tensor(_Spec):
    name: str
    type: str
    shape: list[Dim]


class Signature(_Spec):
    inputs: list[Tensor]
    outputs: list[Tensor]

    def as_data(self) -> dict[str, Any]:
        return self.model_dump()


class FileArtifact(_Spec):
    path: RepoPath
    sha256: Sha256
    signature: Signature | None = None


class UriArtifact(_Spec):
    uri: Annotated[str, Field(pattern=r"^[a-z][a-z0-9+.-]*://\S+$")]
    sha256: Sha256
    signature: Signature | None = None


class HostedArtifact(_Spec):
    provider: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    model_id: Annotated[str, Field(min_length=1)]


Artifact = FileArtifact | UriArtifact | HostedArtifact


class Version(_Spec):
    version: VersionId
    status: Status
    artifact: Artifact
    weight: Annotated[Number, Field(ge=0, le=1)] | None = None
    data_source: str | None = None
    trained: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] | None = None
    metrics: dict[str, Number] = Field(default_factory=dict)
    improvements: list[str] = Field(default_factory=list)
    breaking_changes: list[str] = Field(default_factory=list)
    migration_notes: str | None = None

    @property
    def hosted(self) -> bool:
        return isinstance(self.artifact, HostedArtifact)


class Dataset(_Spec):
    path: RepoPath
    sha256: Sha256


class Evaluation(_Spec):
    dataset: Dataset
    metrics: list[Metric] = Field(default_factory=list)
    primary: Metric | None = None


class Policy(_Spec):
    auto_upgrade: bool | None = None
    min_quality_improvement: Annotated[Number, Field(ge=0)] | None = None
    rollback_below_quality: Number | None = None


class Model(_Spec):
    name: Annotated[
        str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$", max_length=128)
    ]
    task: Task
    versions: Annotated[list[Version], Field(min_length=1)]
    description: str | None = None
    owner: str | None = None
    evaluation: Evaluation | None = None
    traffic: dict[VersionId, Annotated[Number, Field(ge=0, le=100)]] | None = None
    policy: Policy | None = None

    def version(self, version_id: str) -> Version | None:
        for candidate in self.versions:
            if candidate.version == version_id:
                return candidate
        return None

    @property
    def active(self) -> Version | None:
        for candidate in self.versions:
            if candidate.status == "active":
                return candidate
        return None

    def split(self) -> dict[str, float]:
        """Traffic per version id in percent; 100 % to the active version when none is set."""
        if self.traffic:
            return dict(self.traffic)
        active = self.active
        return {active.version: 100.0} if active else {}


class Defaults(_Spec):
    policy: Policy | None = None


class Routing(_Spec):
    salt: str | None = None


class Source(_Spec):
    name: str
    kind: Literal["folder", "url", "provider-catalog"]
    location: str


class Settings(_Spec):
    schema_version: Literal[1]
    name: str | None = None
    defaults: Defaults | None = None
    routing: Routing | None = None
    sources: list[Source] | None = None


@cache
def schema_text(name: str) -> str:
    """The text of a shipped schema, ``"model"`` or ``"settings"``."""
    return resources.files("modelgit").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")


@cache
def schema(name: str) -> dict[str, Any]:
    return json.loads(schema_text(name))


@cache
def schema_validator(name: str) -> Any:
    """A compiled Draft 2020-12 validator for a shipped schema, with cross-file refs resolved."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources_ = [
        (schema(n)["$id"], Resource.from_contents(schema(n))) for n in ("model", "settings")
    ]
    registry = Registry().with_resources(resources_)
    # Relative "$ref": "model.schema.json#..." resolves against the $id's base URI.
    return Draft202012Validator(schema(name), registry=registry)
