"""Typed access to registry files: pydantic models that mirror ``schemas/*.schema.json``.

The JSON Schemas are the source of truth (editors complete from them, users read them); these
models give typed access and a fast first check. ``tests/test_schema_parity.py`` proves both accept
and reject the same corpus. The loader runs pydantic first (0.15 ms a file) and asks jsonschema for
its precise, path-carrying messages only when pydantic refuses a file.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# Metrics where a smaller value is better; all others are better when larger.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})

Status = Literal["staging", "active", "deprecated", "archived"]
Task = Literal["regression", "binary-classification", "multiclass", "generation"]
Metric = Literal["rmse", "mae", "r2", "accuracy", "f1", "roc_auc", "log_loss"]
VersionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=64)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
RepoPath = Annotated[str, Field(min_length=1, max_length=1024)]
# Strict float accepts int but not bool, like JSON Schema's "number". JSON has no NaN or infinity
# (YAML's .nan and .inf), so neither is a number here nor in schema_validator's type checker.
Number = Annotated[float, Field(allow_inf_nan=False)]
T = TypeVar("T")


def _not_null(value: Any) -> Any:
    # An optional key may be left out, but JSON Schema refuses an explicit null (`owner:` with no
    # value); pydantic's `X | None = None` would take it. Defaults are not validated, so leaving
    # the key out still gives None.
    if value is None:
        raise ValueError("null is not allowed; leave the key out instead")
    return value


# A key that may be left out (then None) but, when present, holds a T and never null.
Omittable = Annotated[T | None, BeforeValidator(_not_null)]


def _unique(items: list[Any]) -> list[Any]:
    # JSON Schema's "uniqueItems"; pydantic v2 has no constraint for it.
    if len(set(items)) != len(items):
        raise ValueError("items must be unique")
    return items


def _ramp(steps: list[int]) -> list[int]:
    # JSON Schema says uniqueItems; increasing order is a semantic rule (RULE012) with a clear hint.
    return _unique(steps)


def _not_bool(value: Any) -> Any:
    # Literal[1] takes True (True == 1 in Python); JSON Schema's "const": 1 does not.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


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


class FileArtifact(_Spec):
    path: RepoPath
    sha256: Sha256
    signature: Omittable[Signature] = None


class UriArtifact(_Spec):
    uri: Annotated[str, Field(pattern=r"^[a-z][a-z0-9+.-]*://\S+$")]
    sha256: Sha256
    signature: Omittable[Signature] = None


class HostedArtifact(_Spec):
    provider: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    model_id: Annotated[str, Field(min_length=1)]


Artifact = FileArtifact | UriArtifact | HostedArtifact


class Version(_Spec):
    version: VersionId
    status: Status
    description: Omittable[str] = None
    artifact: Artifact
    weight: Omittable[Annotated[Number, Field(ge=0, le=1)]] = None
    data_source: Omittable[str] = None
    trained: Omittable[Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]] = None
    metrics: dict[str, Number] = Field(default_factory=dict)
    improvements: list[str] = Field(default_factory=list)
    breaking_changes: list[str] = Field(default_factory=list)
    migration_notes: Omittable[str] = None


class Dataset(_Spec):
    path: RepoPath
    sha256: Sha256


class Evaluation(_Spec):
    dataset: Dataset
    metrics: Annotated[list[Metric], AfterValidator(_unique)] = Field(default_factory=list)
    primary: Omittable[Metric] = None


class Policy(_Spec):
    auto_upgrade: Omittable[bool] = None
    min_quality_improvement: Omittable[Annotated[Number, Field(ge=0)]] = None
    rollback_below_quality: Omittable[Number] = None
    ramp: Omittable[Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=1),
                              AfterValidator(_ramp)]] = None
    min_samples: Omittable[Annotated[int, Field(ge=2)]] = None
    max_regression: Omittable[Annotated[Number, Field(ge=0, le=1)]] = None


class Model(_Spec):
    name: Annotated[
        str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$", max_length=128)
    ]
    task: Task
    versions: Annotated[list[Version], Field(min_length=1)]
    description: Omittable[str] = None
    owner: Omittable[str] = None
    evaluation: Omittable[Evaluation] = None
    traffic: Omittable[dict[VersionId, Annotated[Number, Field(ge=0, le=100)]]] = None
    policy: Omittable[Policy] = None
    retired: Omittable[bool] = None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Model:
        """pydantic's ``model_validate``, then :func:`share_field_sets` on the result."""
        model = super().model_validate(obj, *args, **kwargs)
        share_field_sets(model)
        return model

    def version(self, version_id: str) -> Version | None:
        for candidate in self.versions:
            if candidate.version == version_id:
                return candidate
        return None

    def require_version(self, version_id: str, model_id: str | None = None) -> Version:
        """The version with this id; a NotFoundError listing the known ids when there is none."""
        found = self.version(version_id)
        if found is None:
            from modelgit.errors import NotFoundError

            known = ", ".join(v.version for v in self.versions)
            raise NotFoundError(f"model '{model_id or self.name}' has no version '{version_id}'",
                                hint=f"known versions: {known}")
        return found

    @property
    def active(self) -> Version | None:
        for candidate in self.versions:
            if candidate.status == "active":
                return candidate
        return None

    @property
    def latest(self) -> Version | None:
        """The newest version that may serve (staging or active), in release order."""
        return next((v for v in reversed(self.versions) if v.status in ("staging", "active")), None)

    def upgrades(self) -> list[Version]:
        """The versions released after the active one (all, without one) that may serve."""
        active = self.active
        start = self.versions.index(active) + 1 if active is not None else 0
        return [v for v in self.versions[start:] if v.status in ("staging", "active")]

    def split(self) -> dict[str, float]:
        """Traffic per version id in percent; 100 % to the active version when none is set."""
        if self.traffic:
            return dict(self.traffic)
        active = self.active
        return {active.version: 100.0} if active else {}


# Every pydantic instance keeps its own set of the fields it was given (``model_fields_set``): 728
# bytes for a version's ten fields, 20 KiB of the 42 KiB a 20-version model file took once parsed
# (measured), most of a runtime's memory at 10,000 models. The models are frozen, so instances given
# the same fields can share one set: pydantic changes that set only on a copy (``model_copy``).
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_FIELD_SETS_MAX = 4096


def _share(item: BaseModel) -> None:
    fields = item.__pydantic_fields_set__
    key = frozenset(fields)
    shared = _FIELD_SETS.get(key)
    if shared is None:
        if len(_FIELD_SETS) < _FIELD_SETS_MAX:
            _FIELD_SETS[key] = fields
    elif shared is not fields:
        object.__setattr__(item, "__pydantic_fields_set__", shared)


def share_field_sets(model: Model) -> None:
    """Let the parts of ``model`` given the same fields share one field-name set (see above)."""
    _share(model)
    for part in (model.evaluation, model.policy):
        if part is not None:
            _share(part)
    for version in model.versions:
        _share(version)
        artifact = version.artifact
        _share(artifact)
        signature = artifact.signature if not isinstance(artifact, HostedArtifact) else None
        if signature is not None:
            _share(signature)
            for tensor in (*signature.inputs, *signature.outputs):
                _share(tensor)


class Defaults(_Spec):
    policy: Omittable[Policy] = None


class Routing(_Spec):
    salt: Omittable[str] = None


# "folder" and "url" are the kinds the first schema had; both are read as "artifact-folder" (a local
# folder, a file:// URL or an fsspec URL), and check-upgrades warns that they are old names.
SourceKind = Literal["provider-catalog", "artifact-folder", "folder", "url"]
Provider = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Source(_Spec):
    """Where new versions come from (``settings.sources``): a provider's model catalog over HTTP
    (``provider`` says whose ids it lists) or a folder of ONNX files (``pattern`` picks the files,
    ``model`` says which model and version each file is). The JSON Schema's descriptions say more."""

    name: str
    kind: SourceKind
    location: str
    provider: Omittable[Provider] = None
    token_env: Omittable[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = None
    pattern: Omittable[Annotated[str, Field(min_length=1)]] = None
    model: Omittable[Annotated[str, Field(min_length=1)]] = None

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> Source:
        # The schema's if/then/else: a catalog needs its provider and has no file pattern; a folder
        # has no provider or token.
        if self.kind == "provider-catalog":
            if self.provider is None:
                raise ValueError("a provider-catalog source needs 'provider'")
            if self.pattern is not None or self.model is not None:
                raise ValueError("'pattern' and 'model' are for artifact-folder sources")
        elif self.provider is not None or self.token_env is not None:
            raise ValueError("'provider' and 'token_env' are for provider-catalog sources")
        return self

    @property
    def folder(self) -> bool:
        """True for an artifact folder (also under its old names ``folder`` and ``url``)."""
        return self.kind != "provider-catalog"


class Tracking(_Spec):
    url: Omittable[Annotated[str, Field(min_length=1)]] = None
    retention_days: Omittable[Annotated[int, BeforeValidator(_integral_float_to_int), BeforeValidator(_not_bool),
                                        Field(ge=1)]] = None


class Settings(_Spec):
    schema_version: Annotated[Literal[1], BeforeValidator(_not_bool)]
    name: Omittable[str] = None
    defaults: Omittable[Defaults] = None
    routing: Omittable[Routing] = None
    sources: Omittable[list[Source]] = None
    tracking: Omittable[Tracking] = None


@cache
def schema_text(name: str) -> str:
    """The text of a shipped schema, ``"model"`` or ``"settings"``."""
    return resources.files("modelgit").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")


@cache
def schema(name: str) -> dict[str, Any]:
    return json.loads(schema_text(name))


@cache
def schema_validator(name: str) -> Any:
    """A compiled Draft 2020-12 validator for a shipped schema, with cross-file refs resolved.

    Two keywords are read the way pydantic reads them, so both accept the same documents
    (``tests/test_schema_parity.py``):

    * ``pattern`` runs on pydantic's regex engine. Python's ``re`` lets ``$`` match before a final
      newline ("v1\\n" would be a version id) and counts U+001C..U+001F as whitespace; the JSON
      Schema spec (ECMA-262) and pydantic do neither.
    * ``number`` is a finite double: JSON has no NaN or infinity, which YAML can write.
    """
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    resources_ = [
        (schema(n)["$id"], Resource.from_contents(schema(n))) for n in ("model", "settings")
    ]
    registry = Registry().with_resources(resources_)
    cls = validators.extend(
        Draft202012Validator,
        validators={"pattern": _pattern_keyword},
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _is_json_number),
    )
    # Relative "$ref": "model.schema.json#..." resolves against the $id's base URI.
    return cls(schema(name), registry=registry)


def _is_json_number(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool) or not isinstance(instance, int | float):
        return False
    try:
        return math.isfinite(instance)
    except OverflowError:  # an int too big for a double, which pydantic's float refuses too
        return False


@cache
def _pattern_matcher(pattern: str) -> Any:
    from pydantic_core import SchemaValidator, core_schema

    return SchemaValidator(core_schema.str_schema(pattern=pattern, strict=True))


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema_: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _pattern_matcher(pattern).isinstance_python(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")
