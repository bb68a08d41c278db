"""Request and response bodies of the HTTP API: pydantic models with camelCase JSON keys, as
seed 000's API shows them (``currentVersion``, ``latestVersion``, ``breakingChanges``, …).

Request models carry bounds (lengths, ranges, finite numbers, no unknown keys) so that a bad body
is a 422 before any library code runs.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

# One path segment of a model id (proposals.MODEL_ID, split on '/'), and a version id (VERSION_ID).
SEGMENT_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
MODEL_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
HOSTED_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+~/-]*$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
COMMIT_PATTERN = r"^[0-9a-f]{40}$"
# A URI in printable ASCII (no space): the same in every regex dialect (ECMA's \s is not Python's).
URI_PATTERN = r"^[a-z][a-z0-9+.-]*://[\x21-\x7e]+$"
# Free text (notes, improvements, tasks): printable, no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"

Text = Annotated[str, Field(min_length=1, max_length=500, pattern=TEXT_PATTERN)]
VersionId = Annotated[str, Field(min_length=1, max_length=64, pattern=VERSION_PATTERN)]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]


def _integral(value: Any) -> Any:
    """5.0 is an integer in JSON Schema (and in JSON): take it as 5; strict mode does the rest."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Count = Annotated[int, Field(ge=0, le=10**9), BeforeValidator(_integral)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestModel(CamelModel):
    # Strict: true is not a number, "1" is not an int; unknown keys are errors.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True)


def finite(value: Any) -> Any:
    """``value`` with non-finite floats (inf, nan) as None, so JSON stays standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


# -- errors --------------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error: what went wrong and what to do about it; never a traceback."""

    error: str
    hint: str = ""
    findings: list[str] = Field(default_factory=list)


# -- registry reads ------------------------------------------------------------------------------
class ArtifactOut(CamelModel):
    kind: Literal["file", "uri", "hosted"]
    path: str | None = None
    uri: str | None = None
    sha256: str | None = None
    provider: str | None = None
    model_id: str | None = None


class VersionOut(CamelModel):
    version: str
    status: str
    weight: float | None = None
    traffic_percent: float = 0.0
    artifact: ArtifactOut
    trained: str | None = None
    data_source: str | None = None
    description: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    improvements: list[str] = Field(default_factory=list)
    breaking_changes: list[str] = Field(default_factory=list)
    migration_notes: str | None = None


class ModelRef(CamelModel):
    """How a registry model id reads in the API: ``id`` = ``provider/model``, or ``local`` + id."""

    id: str = Field(description="The registry model id (the file path under registry/models/ without .yaml).")
    provider: str = Field(description="The id's first part; 'local' for an id without '/'.")
    model: str = Field(description="The rest of the id.")
    commit: str = Field(description="The commit of the served registry this answer is read from.")


class CurrentOut(ModelRef):
    current_version: str | None
    latest_version: str | None
    traffic: dict[str, float]
    version: VersionOut | None


class CommitOut(CamelModel):
    commit: str
    author: str
    date: str
    subject: str
    changes: list[str]


class HistoryOut(ModelRef):
    current_version: str | None
    versions: list[VersionOut]
    commits: list[CommitOut]


class UpgradesOut(ModelRef):
    current_version: str | None
    latest_version: str | None
    upgrades: list[VersionOut] = Field(description="Versions released after the current one that may serve "
                                                   "(staging or active), oldest first.")


class MetricDelta(CamelModel):
    version1: float | None
    version2: float | None
    delta: float | None
    relative_change: float | None


class CompareOut(ModelRef):
    version1: VersionOut
    version2: VersionOut
    metrics: dict[str, MetricDelta]
    improvements: list[str]
    breaking_changes: list[str]
    migration_notes: str | None


class ModelOut(ModelRef):
    task: str
    owner: str | None = None
    description: str | None = None
    current_version: str | None
    latest_version: str | None
    traffic: dict[str, float]
    versions: list[VersionOut]


class ModelsOut(CamelModel):
    commit: str
    models: list[ModelOut]


class RecommendationOut(CamelModel):
    provider: str | None
    model: str
    current_version: str | None
    latest_version: str | None
    improvements: list[str]
    recommended: bool
    reason: str
    expected_improvement: float | None
    evidence: dict[str, Any]


class RecommendationsOut(CamelModel):
    commit: str
    recommendations: list[RecommendationOut]


# -- writes --------------------------------------------------------------------------------------
class UpgradeIn(RequestModel):
    """Record an upgrade: a new version registered as ``staging`` on a proposal branch."""

    version: VersionId
    model_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=HOSTED_ID_PATTERN,
                                 description="The provider's model id of the new version (hosted models); "
                                             "default: the one of the newest hosted version.")
    artifact_uri: str | None = Field(default=None, min_length=1, max_length=1000,
                                     pattern=URI_PATTERN,
                                     description="For ONNX models: the URI of the new artifact (with sha256).")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    improvements: list[Text] = Field(default_factory=list, max_length=50)
    breaking_changes: list[Text] = Field(default_factory=list, max_length=50)
    migration_notes: str | None = Field(default=None, min_length=1, max_length=2000, pattern=TEXT_PATTERN)


class ProposalOut(CamelModel):
    id: str
    action: str
    version: str | None
    branch: str
    commit: str
    base: str
    pushed: str | None = None


class AutoUpgradeIn(RequestModel):
    auto_upgrade: bool = Field(default=False, description="Propose the decision on a branch when it is not hold.")
    min_quality_improvement: float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False,
                                                  description="Relative gain the lower bound must clear "
                                                              "(0.1 = 10 %); default: the model's policy.")


class AutoUpgradeOut(CamelModel):
    id: str
    decision: Literal["upgrade", "hold", "rollback"]
    reason: str
    evidence: dict[str, Any]
    action: str | None = None
    version: str | None = None
    split: dict[str, float] | None = None
    branch: str | None = None
    commit: str | None = None


class UsageIn(RequestModel):
    """One request's usage, as ``Tracker.record`` takes it."""

    model: str = Field(min_length=1, max_length=128, pattern=MODEL_ID_PATTERN)
    version: VersionId
    quality: Finite | None = None
    latency_ms: float | None = Field(default=None, ge=0, le=86_400_000, allow_inf_nan=False)
    tokens: Count | None = None
    satisfaction: Finite | None = None
    task: str | None = Field(default=None, min_length=1, max_length=64, pattern=TEXT_PATTERN)
    user: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT_PATTERN)
    request_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT_PATTERN)
    commit: str | None = Field(default=None, pattern=COMMIT_PATTERN,
                               description="The commit that served the request; default: the served one.")


class FeedbackIn(RequestModel):
    request_id: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)
    quality: Finite | None = None
    satisfaction: Finite | None = None


class AcceptedOut(CamelModel):
    accepted: bool = True
    request_id: str | None = None
    commit: str | None = None


class StatusOut(CamelModel):
    ref: str
    commit: str
    loaded_at: float
    reloads: int
    last_error: str | None
