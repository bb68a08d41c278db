"""pydantic (``spec.Model``/``spec.Settings``) and the shipped JSON Schemas accept the same documents.

The loader asks pydantic first and jsonschema only for messages, so a document one accepts and the
other refuses would either pass unchecked or fail with no schema finding. Every case below is a
valid base document with one mutation, and says by hand whether the JSON Schema (the source of
truth, read with JSON's data model: no NaN, no infinity) accepts it; both validators must agree
with that verdict.

Documents hold only what :func:`modelgit.yamlio.load` can produce: mappings with string keys,
lists, str, int, float, bool and None.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from modelgit import spec

SHA = "0123456789abcdef" * 4

BASE_MODEL: dict[str, Any] = {
    "name": "team/churn",
    "description": "Scores churn risk.",
    "owner": "ml-platform",
    "task": "regression",
    "evaluation": {
        "dataset": {"path": "registry/datasets/eval.npz", "sha256": SHA},
        "metrics": ["rmse", "mae"],
        "primary": "rmse",
    },
    "versions": [
        {
            "version": "v1.0",
            "status": "active",
            "weight": 0.5,
            "artifact": {
                "path": "registry/artifacts/v1.onnx",
                "sha256": SHA,
                "signature": {
                    "inputs": [{"name": "X", "type": "tensor(float)", "shape": [None, 10]}],
                    "outputs": [{"name": "y", "type": "tensor(float)", "shape": ["batch", 1]}],
                },
            },
            "data_source": "hybrid",
            "trained": "2025-12-28",
            "metrics": {"rmse": 0.31, "rows": 1200},
            "improvements": ["first release"],
            "breaking_changes": [],
            "migration_notes": "none",
        },
        {"version": "v2.0", "status": "staging",
         "artifact": {"uri": "s3://models/churn/v2.onnx", "sha256": SHA}},
    ],
    "traffic": {"v1.0": 90, "v2.0": 10},
    "policy": {"auto_upgrade": False, "min_quality_improvement": 0.05, "rollback_below_quality": 0.2},
}

BASE_SETTINGS: dict[str, Any] = {
    "schema_version": 1,
    "name": "example",
    "defaults": {"policy": {"auto_upgrade": True, "min_quality_improvement": 0.1}},
    "routing": {"salt": "2025"},
    "sources": [{"name": "drop", "kind": "folder", "location": "/srv/models"}],
}

V1 = ("versions", 0)
V2 = ("versions", 1)
FILE = (*V1, "artifact")
URI = (*V2, "artifact")
SIG = (*FILE, "signature")
TENSOR = (*SIG, "inputs", 0)
DIM = (*TENSOR, "shape", 1)


@dataclass(frozen=True)
class Case:
    id: str
    doc: Any
    valid: bool


def _walk(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def changed(base: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``base`` with the value at ``path`` set (a new key when it is missing)."""
    doc = copy.deepcopy(base)
    if not path:
        return value
    _walk(doc, path[:-1])[path[-1]] = value
    return doc


def without(base: Any, path: tuple[Any, ...]) -> Any:
    doc = copy.deepcopy(base)
    del _walk(doc, path[:-1])[path[-1]]
    return doc


def ok(id_: str, doc: Any) -> Case:
    return Case(id_, doc, True)


def bad(id_: str, doc: Any) -> Case:
    return Case(id_, doc, False)


HOSTED = {"provider": "openrouter", "model_id": "qwen/qwen-2.5-7b-instruct"}

MODEL_CASES = [
    ok("base", BASE_MODEL),
    ok("minimal", {"name": "m", "task": "multiclass", "versions": [
        {"version": "1", "status": "archived", "artifact": {"path": "a.onnx", "sha256": SHA}}]}),
    # -- numbers: int where float expected, integral floats for shape dims, bounds ------------------
    ok("int-weight", changed(BASE_MODEL, (*V1, "weight"), 1)),
    ok("int-metric", changed(BASE_MODEL, (*V1, "metrics"), {"rmse": 0})),
    ok("int-min-quality", changed(BASE_MODEL, ("policy", "min_quality_improvement"), 0)),
    ok("max-regression", changed(BASE_MODEL, ("policy", "max_regression"), 0.05)),
    ok("max-regression-zero", changed(BASE_MODEL, ("policy", "max_regression"), 0)),
    ok("retired", changed(BASE_MODEL, ("retired",), True)),
    ok("not-retired", changed(BASE_MODEL, ("retired",), False)),
    bad("max-regression-negative", changed(BASE_MODEL, ("policy", "max_regression"), -0.1)),
    bad("max-regression-over-one", changed(BASE_MODEL, ("policy", "max_regression"), 1.5)),
    bad("max-regression-bool", changed(BASE_MODEL, ("policy", "max_regression"), True)),
    bad("retired-string", changed(BASE_MODEL, ("retired",), "yes")),
    bad("retired-int", changed(BASE_MODEL, ("retired",), 1)),
    bad("retired-null", changed(BASE_MODEL, ("retired",), None)),
    ok("negative-rollback-quality", changed(BASE_MODEL, ("policy", "rollback_below_quality"), -0.5)),
    ok("float-traffic", changed(BASE_MODEL, ("traffic",), {"v1.0": 87.5, "v2.0": 12.5})),
    ok("traffic-bounds-0-100", changed(BASE_MODEL, ("traffic",), {"v1.0": 100, "v2.0": 0})),
    ok("weight-bounds-0", changed(BASE_MODEL, (*V1, "weight"), 0.0)),
    ok("shape-dim-integral-float", changed(BASE_MODEL, DIM, 2.0)),
    ok("shape-dim-big-integral-float", changed(BASE_MODEL, DIM, 1e300)),
    ok("shape-dim-negative", changed(BASE_MODEL, DIM, -1)),
    ok("shape-dim-string", changed(BASE_MODEL, DIM, "10")),
    ok("shape-empty", changed(BASE_MODEL, (*TENSOR, "shape"), [])),
    ok("empty-traffic", changed(BASE_MODEL, ("traffic",), {})),  # the rules refuse it, not the schema
    ok("empty-policy", changed(BASE_MODEL, ("policy",), {})),
    ok("empty-signature-lists", changed(BASE_MODEL, SIG, {"inputs": [], "outputs": []})),
    # -- a per-version description (issue 8.9): text only ----------------------------------------
    ok("version-description", changed(BASE_MODEL, (*V1, "description"), "Trained on the hybrid set.")),
    ok("version-description-empty", changed(BASE_MODEL, (*V2, "description"), "")),
    bad("version-description-list", changed(BASE_MODEL, (*V1, "description"), ["two", "lines"])),
    bad("version-description-null", changed(BASE_MODEL, (*V1, "description"), None)),
    bad("bool-weight", changed(BASE_MODEL, (*V1, "weight"), True)),
    bad("bool-traffic", changed(BASE_MODEL, ("traffic", "v2.0"), False)),
    bad("bool-metric", changed(BASE_MODEL, (*V1, "metrics", "rmse"), True)),
    bad("bool-min-quality", changed(BASE_MODEL, ("policy", "min_quality_improvement"), True)),
    bad("bool-shape-dim", changed(BASE_MODEL, DIM, True)),
    bad("fractional-shape-dim", changed(BASE_MODEL, DIM, 2.5)),
    bad("string-weight", changed(BASE_MODEL, (*V1, "weight"), "0.5")),
    bad("percent-string-traffic", changed(BASE_MODEL, ("traffic", "v2.0"), "10%")),
    bad("string-auto-upgrade", changed(BASE_MODEL, ("policy", "auto_upgrade"), "no")),
    bad("int-auto-upgrade", changed(BASE_MODEL, ("policy", "auto_upgrade"), 0)),
    bad("traffic-negative", changed(BASE_MODEL, ("traffic", "v2.0"), -1)),
    bad("traffic-over-100", changed(BASE_MODEL, ("traffic", "v1.0"), 100.5)),
    bad("weight-over-1", changed(BASE_MODEL, (*V1, "weight"), 1.01)),
    bad("weight-negative", changed(BASE_MODEL, (*V1, "weight"), -0.1)),
    bad("min-quality-negative", changed(BASE_MODEL, ("policy", "min_quality_improvement"), -0.01)),
    # JSON has neither NaN nor infinity; YAML's .nan / .inf are not numbers to the schema.
    bad("nan-weight", changed(BASE_MODEL, (*V1, "weight"), math.nan)),
    bad("nan-traffic", changed(BASE_MODEL, ("traffic", "v2.0"), math.nan)),
    bad("nan-metric", changed(BASE_MODEL, (*V1, "metrics", "rmse"), math.nan)),
    bad("inf-metric", changed(BASE_MODEL, (*V1, "metrics", "rmse"), math.inf)),
    bad("minus-inf-rollback-quality", changed(BASE_MODEL, ("policy", "rollback_below_quality"), -math.inf)),
    bad("int-beyond-double-metric", changed(BASE_MODEL, (*V1, "metrics", "rows"), 10**400)),
    # -- extra keys at each level -------------------------------------------------------------
    bad("extra-top", changed(BASE_MODEL, ("stage",), "prod")),
    bad("extra-evaluation", changed(BASE_MODEL, ("evaluation", "threshold"), 0.5)),
    bad("extra-dataset", changed(BASE_MODEL, ("evaluation", "dataset", "rows"), 10)),
    bad("extra-version", changed(BASE_MODEL, (*V1, "stauts"), "active")),
    bad("extra-file-artifact", changed(BASE_MODEL, (*FILE, "size"), 10)),
    bad("extra-uri-artifact", changed(BASE_MODEL, (*URI, "region"), "eu")),
    bad("extra-hosted-artifact", changed(BASE_MODEL, (*URI,), {**HOSTED, "sha256": SHA})),
    bad("extra-signature", changed(BASE_MODEL, (*SIG, "opset"), 17)),
    bad("extra-tensor", changed(BASE_MODEL, (*TENSOR, "dtype"), "float")),
    bad("extra-policy", changed(BASE_MODEL, ("policy", "auto_rollback"), True)),
    # -- enums -----------------------------------------------------------------------------------
    ok("task-generation", changed(BASE_MODEL, ("task",), "generation")),
    bad("wrong-task", changed(BASE_MODEL, ("task",), "classification")),
    bad("wrong-status", changed(BASE_MODEL, (*V1, "status"), "production")),
    bad("status-wrong-case", changed(BASE_MODEL, (*V1, "status"), "Active")),
    bad("wrong-eval-metric", changed(BASE_MODEL, ("evaluation", "metrics"), ["rmse", "auc"])),
    bad("wrong-primary", changed(BASE_MODEL, ("evaluation", "primary"), "auc")),
    bad("duplicate-eval-metrics", changed(BASE_MODEL, ("evaluation", "metrics"), ["rmse", "rmse"])),
    # -- missing required keys -------------------------------------------------------------------
    bad("missing-name", without(BASE_MODEL, ("name",))),
    bad("missing-task", without(BASE_MODEL, ("task",))),
    bad("missing-versions", without(BASE_MODEL, ("versions",))),
    bad("missing-version-id", without(BASE_MODEL, (*V1, "version"))),
    bad("missing-status", without(BASE_MODEL, (*V1, "status"))),
    bad("missing-artifact", without(BASE_MODEL, (*V1, "artifact"))),
    bad("missing-file-sha256", without(BASE_MODEL, (*FILE, "sha256"))),
    bad("missing-uri-sha256", without(BASE_MODEL, (*URI, "sha256"))),
    bad("missing-hosted-model-id", changed(BASE_MODEL, URI, {"provider": "openrouter"})),
    bad("missing-dataset", without(BASE_MODEL, ("evaluation", "dataset"))),
    bad("missing-dataset-sha256", without(BASE_MODEL, ("evaluation", "dataset", "sha256"))),
    bad("missing-signature-outputs", without(BASE_MODEL, (*SIG, "outputs"))),
    bad("missing-tensor-shape", without(BASE_MODEL, (*TENSOR, "shape"))),
    ok("optional-keys-left-out", {"name": "m", "task": "regression", "versions": [
        without(BASE_MODEL["versions"][1], ("artifact",)) | {"artifact": {"path": "a.onnx", "sha256": SHA}}]}),
    # An optional key may be left out but not written as null (`owner:` with no value).
    bad("null-description", changed(BASE_MODEL, ("description",), None)),
    bad("null-traffic", changed(BASE_MODEL, ("traffic",), None)),
    bad("null-weight", changed(BASE_MODEL, (*V1, "weight"), None)),
    bad("null-signature", changed(BASE_MODEL, (*FILE, "signature"), None)),
    bad("null-auto-upgrade", changed(BASE_MODEL, ("policy", "auto_upgrade"), None)),
    bad("null-metrics", changed(BASE_MODEL, (*V1, "metrics"), None)),
    # -- versions list ---------------------------------------------------------------------------
    bad("empty-versions", changed(BASE_MODEL, ("versions",), [])),
    bad("versions-mapping", changed(BASE_MODEL, ("versions",), {"v1.0": BASE_MODEL["versions"][0]})),
    bad("version-item-string", changed(BASE_MODEL, V2, "v2.0")),
    # -- patterns: version id, sha256, uri, model name, date, provider -----------------------------
    ok("version-id-semver-build", changed(BASE_MODEL, (*V1, "version"), "1.0.0+build.5")),
    ok("version-id-64-chars", changed(BASE_MODEL, (*V1, "version"), "v" * 64)),
    bad("version-id-65-chars", changed(BASE_MODEL, (*V1, "version"), "v" * 65)),
    bad("version-id-leading-dash", changed(BASE_MODEL, (*V1, "version"), "-v1")),
    bad("version-id-space", changed(BASE_MODEL, (*V1, "version"), "v 1")),
    bad("version-id-slash", changed(BASE_MODEL, (*V1, "version"), "v1/2")),
    bad("version-id-empty", changed(BASE_MODEL, (*V1, "version"), "")),
    bad("version-id-trailing-newline", changed(BASE_MODEL, (*V1, "version"), "v1\n")),
    bad("version-id-number", changed(BASE_MODEL, (*V1, "version"), 1.1)),
    bad("traffic-key-not-a-version-id", changed(BASE_MODEL, ("traffic",), {"-v1": 100})),
    bad("sha256-uppercase", changed(BASE_MODEL, (*FILE, "sha256"), SHA.upper())),
    bad("sha256-63-digits", changed(BASE_MODEL, (*FILE, "sha256"), SHA[:63])),
    bad("sha256-trailing-newline", changed(BASE_MODEL, (*FILE, "sha256"), SHA + "\n")),
    bad("sha256-integer", changed(BASE_MODEL, (*FILE, "sha256"), 755)),
    ok("uri-https", changed(BASE_MODEL, (*URI, "uri"), "https://example.com/m.onnx?v=2")),
    ok("uri-scheme-with-plus", changed(BASE_MODEL, (*URI, "uri"), "git+ssh://host/repo")),
    bad("uri-no-scheme", changed(BASE_MODEL, (*URI, "uri"), "bucket/model.onnx")),
    bad("uri-single-slash", changed(BASE_MODEL, (*URI, "uri"), "s3:/bucket/model.onnx")),
    bad("uri-uppercase-scheme", changed(BASE_MODEL, (*URI, "uri"), "S3://bucket/model.onnx")),
    bad("uri-space", changed(BASE_MODEL, (*URI, "uri"), "s3://bucket/my model.onnx")),
    bad("uri-nothing-after-scheme", changed(BASE_MODEL, (*URI, "uri"), "s3://")),
    # Python's re counts U+001C..U+001F as whitespace, ECMA-262 (and pydantic) do not.
    ok("uri-with-unit-separator", changed(BASE_MODEL, (*URI, "uri"), "s3://bucket/a\x1fb")),
    ok("name-nested", changed(BASE_MODEL, ("name",), "a/b.c/d_e-f")),
    ok("name-128-chars", changed(BASE_MODEL, ("name",), "n" * 128)),
    bad("name-129-chars", changed(BASE_MODEL, ("name",), "n" * 129)),
    bad("name-uppercase", changed(BASE_MODEL, ("name",), "Team/churn")),
    bad("name-double-slash", changed(BASE_MODEL, ("name",), "team//churn")),
    bad("name-trailing-slash", changed(BASE_MODEL, ("name",), "team/")),
    bad("name-trailing-newline", changed(BASE_MODEL, ("name",), "team/churn\n")),
    bad("trained-not-padded", changed(BASE_MODEL, (*V1, "trained"), "2025-1-1")),
    bad("trained-other-format", changed(BASE_MODEL, (*V1, "trained"), "28.12.2025")),
    bad("provider-uppercase", changed(BASE_MODEL, URI, {**HOSTED, "provider": "OpenRouter"})),
    bad("path-empty", changed(BASE_MODEL, (*FILE, "path"), "")),
    bad("path-too-long", changed(BASE_MODEL, (*FILE, "path"), "a/" * 512 + "m")),
    bad("hosted-model-id-empty", changed(BASE_MODEL, URI, {**HOSTED, "model_id": ""})),
    # -- artifact kinds and mixes of their keys ----------------------------------------------------
    ok("artifact-hosted", changed(BASE_MODEL, URI, HOSTED)),
    ok("artifact-uri-with-signature", changed(BASE_MODEL, (*URI, "signature"), BASE_MODEL["versions"][0]
                                              ["artifact"]["signature"])),
    ok("artifact-path-without-signature", without(BASE_MODEL, SIG)),
    bad("artifact-path-and-uri", changed(BASE_MODEL, (*FILE, "uri"), "s3://b/m.onnx")),
    bad("artifact-path-and-provider", changed(BASE_MODEL, FILE, {**HOSTED, "path": "a.onnx", "sha256": SHA})),
    bad("artifact-uri-and-provider", changed(BASE_MODEL, URI, {**HOSTED, "uri": "s3://b/m.onnx"})),
    bad("artifact-hosted-with-signature", changed(BASE_MODEL, URI, {**HOSTED, "signature": {
        "inputs": [], "outputs": []}})),
    bad("artifact-path-and-model-id", changed(BASE_MODEL, (*FILE, "model_id"), "x")),
    bad("artifact-empty", changed(BASE_MODEL, FILE, {})),
    bad("artifact-string", changed(BASE_MODEL, FILE, "registry/artifacts/v1.onnx")),
    # -- other types --------------------------------------------------------------------------------
    bad("tensor-name-int", changed(BASE_MODEL, (*TENSOR, "name"), 0)),
    bad("improvement-int", changed(BASE_MODEL, (*V1, "improvements"), ["faster", 2])),
    bad("description-list", changed(BASE_MODEL, ("description",), ["a"])),
    bad("top-level-list", [BASE_MODEL]),
    bad("top-level-string", "name: m"),
    bad("top-level-null", None),
]

SETTINGS_CASES = [
    ok("base", BASE_SETTINGS),
    ok("minimal", {"schema_version": 1}),
    # JSON Schema compares numbers by value: 1.0 is the const 1.
    ok("schema-version-1.0", {"schema_version": 1.0}),
    ok("empty-sections", {"schema_version": 1, "defaults": {}, "routing": {}, "sources": []}),
    ok("source-kinds", changed(BASE_SETTINGS, ("sources",), [
        {"name": "a", "kind": "url", "location": "https://x"},
        {"name": "b", "kind": "provider-catalog", "location": "https://openrouter.ai/api/v1/models",
         "provider": "openrouter"},
        {"name": "c", "kind": "artifact-folder", "location": "drop"}])),
    # -- sources (issue 10.5): fields that fit the kind ------------------------------------------
    ok("catalog-with-token-env", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "or", "kind": "provider-catalog", "location": "https://x/api/v1/models", "provider": "openrouter",
        "token_env": "OPENROUTER_API_KEY"})),
    ok("folder-pattern-model-id", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "drop", "kind": "artifact-folder", "location": "/srv", "pattern": "*.onnx",
        "model": "calling_score"})),
    ok("folder-model-template", changed(BASE_SETTINGS, ("sources", 0, "model"), "{model}/{version}.onnx")),
    ok("old-kind-folder-with-pattern", changed(BASE_SETTINGS, ("sources", 0, "pattern"), "*.onnx")),
    bad("catalog-without-provider", changed(BASE_SETTINGS, ("sources", 0, "kind"), "provider-catalog")),
    bad("catalog-with-pattern", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "or", "kind": "provider-catalog", "location": "https://x", "provider": "openrouter",
        "pattern": "*.onnx"})),
    bad("catalog-with-model", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "or", "kind": "provider-catalog", "location": "https://x", "provider": "openrouter",
        "model": "m"})),
    bad("folder-with-provider", changed(BASE_SETTINGS, ("sources", 0, "provider"), "openrouter")),
    bad("folder-with-token-env", changed(BASE_SETTINGS, ("sources", 0, "token_env"), "TOKEN")),
    bad("artifact-folder-with-provider", changed(changed(BASE_SETTINGS, ("sources", 0, "kind"), "artifact-folder"),
                                                 ("sources", 0, "provider"), "openrouter")),
    bad("provider-uppercase", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "or", "kind": "provider-catalog", "location": "https://x", "provider": "OpenRouter"})),
    bad("token-env-with-dash", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "or", "kind": "provider-catalog", "location": "https://x", "provider": "openrouter",
        "token_env": "OPENROUTER-KEY"})),
    bad("empty-pattern", changed(BASE_SETTINGS, ("sources", 0, "pattern"), "")),
    bad("null-model", changed(BASE_SETTINGS, ("sources", 0, "model"), None)),
    bad("provider-int", changed(BASE_SETTINGS, ("sources", 0), {
        "name": "or", "kind": "provider-catalog", "location": "https://x", "provider": 1})),
    bad("missing-schema-version", without(BASE_SETTINGS, ("schema_version",))),
    bad("schema-version-2", changed(BASE_SETTINGS, ("schema_version",), 2)),
    bad("schema-version-string", changed(BASE_SETTINGS, ("schema_version",), "1")),
    bad("schema-version-true", changed(BASE_SETTINGS, ("schema_version",), True)),
    bad("extra-top", changed(BASE_SETTINGS, ("models",), "models/")),
    bad("extra-defaults", changed(BASE_SETTINGS, ("defaults", "task"), "regression")),
    bad("extra-routing", changed(BASE_SETTINGS, ("routing", "seed"), 1)),
    bad("extra-source", changed(BASE_SETTINGS, ("sources", 0, "branch"), "main")),
    bad("extra-policy", changed(BASE_SETTINGS, ("defaults", "policy", "x"), 1)),
    bad("source-missing-location", without(BASE_SETTINGS, ("sources", 0, "location"))),
    bad("source-wrong-kind", changed(BASE_SETTINGS, ("sources", 0, "kind"), "git")),
    bad("null-name", changed(BASE_SETTINGS, ("name",), None)),
    bad("null-sources", changed(BASE_SETTINGS, ("sources",), None)),
    bad("salt-int", changed(BASE_SETTINGS, ("routing", "salt"), 2025)),
    bad("policy-auto-upgrade-string", changed(BASE_SETTINGS, ("defaults", "policy", "auto_upgrade"), "no")),
    bad("policy-min-quality-negative", changed(BASE_SETTINGS, ("defaults", "policy", "min_quality_improvement"),
                                               -1)),
    bad("policy-min-quality-nan", changed(BASE_SETTINGS, ("defaults", "policy", "min_quality_improvement"),
                                          math.nan)),
    bad("top-level-list", [BASE_SETTINGS]),
    # -- tracking (issue 10.1) ----------------------------------------------------------------------
    ok("tracking", changed(BASE_SETTINGS, ("tracking",), {"url": "sqlite:///usage.sqlite", "retention_days": 30})),
    ok("tracking-empty", changed(BASE_SETTINGS, ("tracking",), {})),
    ok("tracking-retention-integral-float", changed(BASE_SETTINGS, ("tracking",), {"retention_days": 30.0})),
    bad("tracking-retention-zero", changed(BASE_SETTINGS, ("tracking",), {"retention_days": 0})),
    bad("tracking-retention-fraction", changed(BASE_SETTINGS, ("tracking",), {"retention_days": 1.5})),
    bad("tracking-retention-bool", changed(BASE_SETTINGS, ("tracking",), {"retention_days": True})),
    bad("tracking-retention-string", changed(BASE_SETTINGS, ("tracking",), {"retention_days": "30"})),
    bad("tracking-retention-inf", changed(BASE_SETTINGS, ("tracking",), {"retention_days": math.inf})),
    bad("tracking-url-empty", changed(BASE_SETTINGS, ("tracking",), {"url": ""})),
    bad("tracking-url-int", changed(BASE_SETTINGS, ("tracking",), {"url": 5432})),
    bad("tracking-url-null", changed(BASE_SETTINGS, ("tracking",), {"url": None})),
    bad("tracking-extra", changed(BASE_SETTINGS, ("tracking",), {"backend": "sqlite"})),
    bad("tracking-null", changed(BASE_SETTINGS, ("tracking",), None)),
]


def pydantic_accepts(cls: type[Any], doc: Any) -> bool:
    try:
        cls.model_validate(doc)
    except ValidationError:
        return False
    return True


def schema_accepts(name: str, doc: Any) -> bool:
    return not list(spec.schema_validator(name).iter_errors(doc))


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_model_schema_and_pydantic_agree(case: Case) -> None:
    assert (schema_accepts("model", case.doc), pydantic_accepts(spec.Model, case.doc)) == (case.valid, case.valid)


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=lambda c: c.id)
def test_settings_schema_and_pydantic_agree(case: Case) -> None:
    assert (schema_accepts("settings", case.doc), pydantic_accepts(spec.Settings, case.doc)) == (
        case.valid, case.valid)


def test_corpus_is_big_and_two_sided() -> None:
    for cases, least in ((MODEL_CASES, 40), (SETTINGS_CASES, 10)):
        assert len(cases) >= least
        assert len({c.id for c in cases}) == len(cases)
        assert any(c.valid for c in cases) and any(not c.valid for c in cases)


def test_mutations_do_not_touch_the_base() -> None:
    assert BASE_MODEL["versions"][0]["artifact"]["signature"]["inputs"][0]["shape"] == [None, 10]
    assert BASE_MODEL["policy"]["auto_upgrade"] is False
    assert BASE_SETTINGS["schema_version"] == 1


@pytest.mark.parametrize("name", ["model", "settings"])
def test_shipped_schemas_are_valid_draft_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(spec.schema(name))


def test_optional_key_left_out_is_none_and_integral_dims_become_ints() -> None:
    model = spec.Model.model_validate(changed(without(BASE_MODEL, ("owner",)), DIM, 10.0))
    assert model.owner is None
    assert model.versions[0].artifact.signature.inputs[0].shape == [None, 10]
    assert type(model.versions[0].artifact.signature.inputs[0].shape[1]) is int
    assert model.versions[1].weight is None
    assert model.versions[1].metrics == {}
