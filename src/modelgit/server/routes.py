"""The API routes: parse → one library call → serialise. Seed 000's ``/api/model-versions/…``,
plus ``/api/models`` (every model, any id), ``/api/usage`` and ``/api/feedback``.

Reads answer from the served snapshot (``context.snapshot.current``); writes create proposal
branches and never move the served ref. See :mod:`modelgit.server.ids` for the id mapping.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from modelgit import api
from modelgit.server import evaluations
from modelgit.server import schemas as S
from modelgit.server.auth import ApiError, require
from modelgit.server.context import ServerContext
from modelgit.server.ids import LOCAL, from_path, is_model_id, split_id
from modelgit.snapshot import Snapshot
from modelgit.spec import FileArtifact, HostedArtifact, Model, Version

__all__ = ["router"]

ID_DOC = ("A registry model id `provider/model` (e.g. `openrouter/qwen-2.5-7b-instruct`) is "
          "`{provider}/{model}` here; an id without `/` (e.g. `calling_score`) takes the provider "
          f"`{LOCAL}`: `/api/model-versions/{LOCAL}/calling_score/...`. Ids of any depth are "
          "`/api/models/{id}`.")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": S.ErrorBody, "description": text}
    for code, text in ((400, "The request cannot be carried out."),
                       (409, "The proposal branch exists already (proposed before)."),
                       (401, "Missing or invalid bearer token."), (403, "The token lacks the scope."),
                       (404, "Unknown model or version, or a malformed id."),
                       (413, "Request body too large."),
                       (422, "The request or the change it asks for is invalid."),
                       (429, "Rate limit of the token exceeded (see Retry-After)."),
                       (503, "The repository could not be read or written; retry."))
}

def _known_query(request: Request) -> None:
    """422 for a query parameter the route does not take: a typo (``?versoin1=``) is an error,
    not silently a default."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {param.alias for param in _query_params(dependant)} if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(422, f"unknown query parameter '{unknown[0][:64]}'",
                       "allowed: " + (", ".join(sorted(known)) or "none") + " (see /docs)")


def _query_params(dependant: Any) -> list[Any]:
    found = list(dependant.query_params)
    for sub in dependant.dependencies:
        found.extend(_query_params(sub))
    return found


router = APIRouter(prefix="/api", responses=_ERRORS, dependencies=[Depends(_known_query)])
read = [Depends(require("read"))]
propose = [Depends(require("propose"))]

Provider = Annotated[str, Path(description="The model id's first part, or `local`.", max_length=128)]
ModelPart = Annotated[str, Path(description="The model id's second part.", max_length=128)]


def _context(request: Request) -> ServerContext:
    return request.app.state.context  # type: ignore[no-any-return]


def _model(snapshot: Snapshot, model_id: str | None) -> tuple[str, Model]:
    """The valid model ``model_id`` of the served snapshot; 404 for a malformed or unknown id."""
    if model_id is None or not is_model_id(model_id) or model_id not in snapshot.files:
        raise ApiError(404, "unknown model" if model_id is None else f"unknown model '{model_id}'",
                       "GET /api/models lists the model ids. " + ID_DOC)
    return model_id, snapshot.model(model_id)  # an invalid file: InvalidError → 422


def _ref(model_id: str, snapshot: Snapshot) -> dict[str, str]:
    provider, model = split_id(model_id)
    return {"id": model_id, "provider": provider, "model": model, "commit": snapshot.commit or ""}


def _version(model: Model, version: Version) -> S.VersionOut:
    artifact = version.artifact
    if isinstance(artifact, HostedArtifact):
        art = S.ArtifactOut(kind="hosted", provider=artifact.provider, model_id=artifact.model_id)
    elif isinstance(artifact, FileArtifact):
        art = S.ArtifactOut(kind="file", path=artifact.path, sha256=artifact.sha256)
    else:
        art = S.ArtifactOut(kind="uri", uri=artifact.uri, sha256=artifact.sha256)
    return S.VersionOut(
        version=version.version, status=version.status, weight=version.weight,
        traffic_percent=float(model.split().get(version.version, 0)), artifact=art, trained=version.trained,
        data_source=version.data_source, description=version.description,
        metrics={k: float(v) for k, v in version.metrics.items()}, improvements=list(version.improvements),
        breaking_changes=list(version.breaking_changes), migration_notes=version.migration_notes)


def _model_out(model_id: str, model: Model, snapshot: Snapshot) -> S.ModelOut:
    active, latest = model.active, model.latest
    return S.ModelOut(**_ref(model_id, snapshot), task=model.task, owner=model.owner, description=model.description,
                      current_version=active.version if active else None,
                      latest_version=latest.version if latest else None, traffic=model.split(),
                      versions=[_version(model, v) for v in model.versions])


# -- models of any id ------------------------------------------------------------------------------
@router.get("/models", response_model=S.ModelsOut, dependencies=read, tags=["models"],
            summary="Every valid model at the served commit.")
def list_models(request: Request) -> S.ModelsOut:
    snapshot = _context(request).snapshot.current
    return S.ModelsOut(commit=snapshot.commit or "",
                       models=[_model_out(mid, m, snapshot) for mid, m in snapshot.models.items()])


@router.get("/models/{model_id:path}", response_model=S.ModelOut, dependencies=read, tags=["models"],
            summary="One model by its registry id (any depth; ids without a provider too).",
            description=ID_DOC)
def get_model(request: Request, model_id: Annotated[str, Path(max_length=256)]) -> S.ModelOut:
    snapshot = _context(request).snapshot.current
    model_id, model = _model(snapshot, model_id)
    return _model_out(model_id, model, snapshot)


# -- seed 000: model versions --------------------------------------------------------------------
@router.get("/model-versions/upgrade-recommendations", response_model=S.RecommendationsOut,
            dependencies=read, tags=["model-versions"],
            summary="Per model: should it move to its newest version, why, and by how much.")
def upgrade_recommendations(
        request: Request,
        provider: Annotated[str | None, Query(max_length=64, pattern=S.SEGMENT_PATTERN,
                                              description="Only models served by this provider; `local`: models "
                                                          "no provider serves (provider null).")] = None,
) -> S.RecommendationsOut:
    context = _context(request)
    commit = context.snapshot.current.commit or context.ref
    # `local` (as in the model-versions paths) is the models no provider serves: their provider is null.
    found = api.recommend(context.repo, commit, provider=None if provider == LOCAL else provider,
                          tracking_url=context.tracking_url,
                          evaluations=lambda snapshot: evaluations.upgrades(snapshot, context.repo.root)[0])
    items = [i for i in found.recommendations if provider != LOCAL or i["provider"] is None]
    return S.RecommendationsOut(commit=found.commit or "", recommendations=[
        S.RecommendationOut(**{k: S.finite(v) for k, v in item.items() if k != "model"},
                            model=item["model"]) for item in items])


@router.get("/model-versions/{provider}/{model}/current", response_model=S.CurrentOut, dependencies=read,
            tags=["model-versions"], summary="The version serving now, with the traffic split.",
            description=ID_DOC)
def current(request: Request, provider: Provider, model: ModelPart) -> S.CurrentOut:
    snapshot = _context(request).snapshot.current
    model_id, spec = _model(snapshot, from_path(provider, model))
    active, latest = spec.active, spec.latest
    return S.CurrentOut(**_ref(model_id, snapshot), current_version=active.version if active else None,
                        latest_version=latest.version if latest else None, traffic=spec.split(),
                        version=_version(spec, active) if active else None)


@router.get("/model-versions/{provider}/{model}/history", response_model=S.HistoryOut, dependencies=read,
            tags=["model-versions"], summary="Every version, and each commit that changed the model.",
            description=ID_DOC)
def history(request: Request, provider: Provider, model: ModelPart,
            limit: Annotated[int, Query(ge=1, le=1000, description="At most this many commits.")] = 100,
            ) -> S.HistoryOut:
    context = _context(request)
    snapshot = context.snapshot.current
    model_id, spec = _model(snapshot, from_path(provider, model))
    found = api.history(context.repo, model_id, snapshot.commit or context.ref, limit)
    active = spec.active
    return S.HistoryOut(**_ref(model_id, snapshot), current_version=active.version if active else None,
                        versions=[_version(spec, v) for v in spec.versions],
                        commits=[S.CommitOut(commit=c.commit, author=c.author, date=c.date, subject=c.subject,
                                             changes=list(c.changes)) for c in found.commits])


@router.get("/model-versions/{provider}/{model}/upgrades", response_model=S.UpgradesOut, dependencies=read,
            tags=["model-versions"], summary="Versions released after the current one that may serve.",
            description=ID_DOC)
def upgrades(request: Request, provider: Provider, model: ModelPart) -> S.UpgradesOut:
    snapshot = _context(request).snapshot.current
    model_id, spec = _model(snapshot, from_path(provider, model))
    active, latest = spec.active, spec.latest
    return S.UpgradesOut(**_ref(model_id, snapshot), current_version=active.version if active else None,
                         latest_version=latest.version if latest else None,
                         upgrades=[_version(spec, v) for v in spec.upgrades()])


@router.get("/model-versions/{provider}/{model}/compare", response_model=S.CompareOut, dependencies=read,
            tags=["model-versions"], summary="Two versions side by side: metrics with deltas, what changed.",
            description=ID_DOC)
def compare(request: Request, provider: Provider, model: ModelPart,
            version1: Annotated[str, Query(max_length=64, pattern=S.VERSION_PATTERN)],
            version2: Annotated[str, Query(max_length=64, pattern=S.VERSION_PATTERN)]) -> S.CompareOut:
    snapshot = _context(request).snapshot.current
    model_id, spec = _model(snapshot, from_path(provider, model))
    first, second = (spec.version(v) for v in (version1, version2))
    if first is None or second is None:
        missing = version1 if first is None else version2
        raise ApiError(404, f"model '{model_id}' has no version '{missing}'",
                       "known versions: " + ", ".join(v.version for v in spec.versions))
    metrics = {}
    for name in sorted(set(first.metrics) | set(second.metrics)):
        a, b = first.metrics.get(name), second.metrics.get(name)
        delta = None if a is None or b is None else float(b) - float(a)
        relative = None if delta is None or not a else delta / abs(float(a))
        metrics[name] = S.MetricDelta(version1=a, version2=b, delta=delta, relative_change=relative)
    return S.CompareOut(**_ref(model_id, snapshot), version1=_version(spec, first), version2=_version(spec, second),
                        metrics=metrics, improvements=list(second.improvements),
                        breaking_changes=list(second.breaking_changes), migration_notes=second.migration_notes)


@router.post("/model-versions/{provider}/{model}/upgrade", response_model=S.ProposalOut, status_code=201,
             dependencies=propose, tags=["model-versions"],
             summary="Record an upgrade: register a staging version on a proposal branch.",
             description=ID_DOC + " The served ref never moves: the answer names the new branch and commit.")
def upgrade(request: Request, provider: Provider, model: ModelPart, body: Annotated[S.UpgradeIn, Body()]
            ) -> S.ProposalOut:
    context = _context(request)
    snapshot = context.snapshot.current
    model_id, spec = _model(snapshot, from_path(provider, model))
    notes = {"improvements": body.improvements, "breaking_changes": body.breaking_changes,
             "migration_notes": body.migration_notes}
    hosted = [v.artifact for v in spec.versions if isinstance(v.artifact, HostedArtifact)]
    if body.artifact_uri is None and hosted:  # a new snapshot of the provider's model
        artifact = {"provider": hosted[-1].provider, "model_id": body.model_id or hosted[-1].model_id}
    elif body.artifact_uri is not None and body.sha256 is not None:  # never a path on this server
        artifact = {"artifact": body.artifact_uri, "sha256": body.sha256}
    elif body.artifact_uri is not None:
        raise ApiError(422, "artifactUri needs sha256", "send the 64 hex digits of the artifact's sha256")
    else:
        raise ApiError(422, f"'{model_id}' is not a hosted model: the new version needs an artifact",
                       "send artifactUri and sha256 of the new ONNX file")
    with context.write_lock:
        outcome = api.propose(context.repo, "register", model_id, version=body.version,
                              ref=snapshot.commit or context.ref, push=context.push, **artifact, **notes)
    return _proposal_out(outcome)


def _proposal_out(outcome: Any) -> S.ProposalOut:
    proposal = outcome.proposal
    return S.ProposalOut(id=proposal.model, action=proposal.action, version=proposal.version, branch=outcome.branch,
                         commit=outcome.commit, base=proposal.base_commit, pushed=outcome.pushed)


@router.post("/model-versions/{provider}/{model}/auto-upgrade", response_model=S.AutoUpgradeOut,
             dependencies=propose, tags=["model-versions"],
             summary="Decide auto-upgrade from observed usage; with autoUpgrade, propose it on a branch.",
             description=ID_DOC)
def auto_upgrade(request: Request, provider: Provider, model: ModelPart,
                 body: Annotated[S.AutoUpgradeIn, Body()]) -> S.AutoUpgradeOut:
    context = _context(request)
    snapshot = context.snapshot.current
    model_id, _ = _model(snapshot, from_path(provider, model))
    with context.write_lock:
        verdict = api.auto_upgrade(context.repo, model_id, snapshot.commit or context.ref,
                                   min_quality_improvement=body.min_quality_improvement,
                                   propose=body.auto_upgrade, push=context.push, tracking_url=context.tracking_url)
    data = S.finite(verdict.as_dict())
    data["id"] = data.pop("model")
    return S.AutoUpgradeOut(**data)


# -- usage ------------------------------------------------------------------------------------------
@router.post("/usage", response_model=S.AcceptedOut, status_code=202, dependencies=propose, tags=["usage"],
             summary="Record one request's usage (queued; written off the request path).")
async def usage(request: Request, body: Annotated[S.UsageIn, Body()]) -> S.AcceptedOut:
    context = _context(request)
    snapshot = context.snapshot.current
    model_id, spec = _model(snapshot, body.model)
    if spec.version(body.version) is None:
        raise ApiError(404, f"model '{model_id}' has no version '{body.version}'",
                       "known versions: " + ", ".join(v.version for v in spec.versions))
    commit = body.commit or snapshot.commit
    context.tracker.record(model_id, body.version, quality=body.quality, latency_ms=body.latency_ms,
                           tokens=body.tokens, satisfaction=body.satisfaction, task=body.task, user=body.user,
                           request_id=body.request_id, commit=commit)
    return S.AcceptedOut(request_id=body.request_id, commit=commit)


@router.post("/feedback", response_model=S.AcceptedOut, status_code=202, dependencies=propose, tags=["usage"],
             summary="Set the outcome of a recorded request (idempotent by request id).")
async def feedback(request: Request, body: Annotated[S.FeedbackIn, Body()]) -> S.AcceptedOut:
    _context(request).tracker.feedback(body.request_id, quality=body.quality, satisfaction=body.satisfaction)
    return S.AcceptedOut(request_id=body.request_id)


@router.get("/status", response_model=S.StatusOut, dependencies=read, tags=["server"],
            summary="The served ref and commit, and the last reload error.")
def status(request: Request) -> S.StatusOut:
    live = _context(request).snapshot
    return S.StatusOut(ref=live.ref, commit=live.current.commit or "", loaded_at=live.loaded_at,
                       reloads=live.reloads, last_error=live.last_error)

