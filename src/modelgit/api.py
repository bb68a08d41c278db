"""The library facade: one function per verb, plain arguments in, typed results out.

Both faces of modelgit call these functions and nothing deeper: the command line (``modelgit.cli``)
parses its options, calls one function here and renders the result as text or ``--json``; the HTTP
server does the same with a request. The functions never print and never exit; errors are
:class:`modelgit.errors.ModelgitError` (``UsageError``, ``InvalidError``…), which each face
translates (the CLI to exit codes). Every result has ``as_dict()``: the JSON-ready form the CLI
prints with ``--json``.

``repo`` is a path anywhere inside the repository, or an open :class:`modelgit.gitstore.GitRepo`.

>>> from modelgit import api
>>> api.show(".", model="calling_score").models[0].active         # doctest: +SKIP
'v3'
>>> api.propose(".", "promote", "calling_score", version="v4").branch   # doctest: +SKIP
'modelgit/calling_score/promote-v4'

Heavy modules (numpy, onnxruntime, SQLAlchemy, httpx) are imported inside the functions that need
them: importing this module stays as cheap as ``modelgit --help``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelgit.errors import UsageError

if TYPE_CHECKING:
    from modelgit.ci import CiReport
    from modelgit.decisions import ModelUsage, Verdict
    from modelgit.diff import Change
    from modelgit.gitstore import GitRepo
    from modelgit.proposals import Outcome
    from modelgit.scaffold import InitResult
    from modelgit.snapshot import Snapshot
    from modelgit.sources import Report as SourcesReport
    from modelgit.validate import Report, Validator

__all__ = [
    "ACTIONS",
    "Comparison",
    "DiffResult",
    "Evaluation",
    "HistoryEntry",
    "HistoryResult",
    "ModelSummary",
    "Prediction",
    "Recommendations",
    "Route",
    "ShowResult",
    "ShowStream",
    "UpgradeCheck",
    "UsageReport",
    "VersionSummary",
    "auto_rollback",
    "auto_upgrade",
    "check_upgrades",
    "ci",
    "compare",
    "diff",
    "evaluate",
    "history",
    "init",
    "open_repo",
    "open_tracker",
    "propose",
    "recommend",
    "route",
    "run",
    "show",
    "show_stream",
    "usage",
    "validate",
]

#: The actions :func:`propose` takes.
ACTIONS = ("register", "promote", "deprecate", "archive", "retire", "weight", "split", "ab-start", "ab-stop",
           "dataset", "rollback")


def open_repo(repo: str | os.PathLike[str] | GitRepo) -> GitRepo:
    """The :class:`~modelgit.gitstore.GitRepo` for ``repo`` (a path anywhere inside it, or an
    open one, returned as is)."""
    from modelgit.gitstore import GitRepo

    if isinstance(repo, GitRepo):
        return repo
    return GitRepo.discover(os.fspath(repo))


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionSummary:
    """One version as ``show`` lists it; ``artifact`` is a path, a URI or ``provider:model_id``."""

    version: str
    status: str
    weight: float | None
    artifact: str
    trained: Any
    metrics: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "status": self.status, "weight": self.weight,
                "artifact": self.artifact, "trained": self.trained, "metrics": dict(self.metrics)}


@dataclass(frozen=True)
class ModelSummary:
    """One model as ``show`` lists it: its active version, traffic split and versions."""

    model: str
    task: str
    owner: str | None
    description: str | None
    active: str | None
    traffic: Mapping[str, float]
    versions: tuple[VersionSummary, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "task": self.task, "owner": self.owner, "description": self.description,
                "active": self.active, "traffic": dict(self.traffic),
                "versions": [v.as_dict() for v in self.versions]}


@dataclass(frozen=True)
class ShowResult:
    """The registry at a commit: its models (or one) and the ids of invalid model files."""

    commit: str | None
    models: tuple[ModelSummary, ...]
    invalid: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "models": [m.as_dict() for m in self.models], "invalid": list(self.invalid)}


@dataclass(frozen=True)
class ShowStream:
    """What :func:`show` returns, its models made one at a time as they are consumed: a registry of
    10,000 models is printed model by model instead of held as summaries, dicts and one JSON
    string at once. Consume it once, with :meth:`dicts` (the ``as_dict()`` form of each model,
    what ``show --json`` prints) or by iterating (:class:`ModelSummary` each)."""

    commit: str | None
    invalid: tuple[str, ...]
    _models: Iterator[dict[str, Any]] = field(repr=False, compare=False)

    def dicts(self) -> Iterator[dict[str, Any]]:
        return self._models

    def as_dict(self) -> dict[str, Any]:
        """All of it at once (consumes the stream): the same dict as ``show(...).as_dict()``."""
        return {"commit": self.commit, "models": list(self._models), "invalid": list(self.invalid)}

    def __iter__(self) -> Iterator[ModelSummary]:
        for m in self._models:
            if "versions" not in m:
                raise TypeError("a show_stream(versions=False) has no versions: read it with dicts()")
            yield ModelSummary(m["model"], m["task"], m["owner"], m["description"], m["active"], m["traffic"],
                               tuple(VersionSummary(**v) for v in m["versions"]))


@dataclass(frozen=True)
class HistoryEntry:
    """A commit that changed a model file, with what it changed semantically."""

    commit: str
    author: str
    email: str
    date: str
    subject: str
    trailers: Mapping[str, str]
    changes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "author": self.author, "email": self.email, "date": self.date,
                "subject": self.subject, "trailers": dict(self.trailers), "changes": list(self.changes)}


@dataclass(frozen=True)
class HistoryResult:
    """A model's history from ``ref``, newest commit first."""

    model: str
    ref: str
    commits: tuple[HistoryEntry, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ref": self.ref, "commits": [c.as_dict() for c in self.commits]}


@dataclass(frozen=True)
class DiffResult:
    """Semantic changes of the registry between two commits (``head`` None: the working tree)."""

    base: str | None
    head: str | None
    changes: tuple[Change, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base, "head": self.head, "changes": [c.as_dict() for c in self.changes]}


@dataclass(frozen=True)
class Evaluation:
    """A version run over its model's evaluation dataset. ``record`` is the result as stored in
    ``registry/evaluations/MODEL/VERSION.json`` (with labels and predictions); ``written`` is the
    file written, None when a stored result was reused or writing was not asked for."""

    model: str
    version: str
    path: str
    reused: bool
    written: Path | None
    record: Mapping[str, Any] = field(repr=False)

    @property
    def rows(self) -> int:
        return int(self.record["rows"])

    @property
    def dataset(self) -> str:
        return str(self.record["dataset"])

    @property
    def metrics(self) -> Mapping[str, float]:
        return self.record["metrics"]  # type: ignore[no-any-return]

    @property
    def latency(self) -> Mapping[str, float | None]:
        return self.record["latency"]  # type: ignore[no-any-return]

    def as_dict(self) -> dict[str, Any]:
        """The result without the per-row labels and predictions."""
        return {k: v for k, v in self.record.items() if k not in ("labels", "predictions")}


@dataclass(frozen=True)
class Comparison:
    """V2 against V1 of a model: metric deltas with bootstrap intervals, a verdict, latency and
    signature changes (``report``, as :func:`modelgit.compare.compare_results` returns it)."""

    model: str
    v1: str
    v2: str
    report: Mapping[str, Any] = field(repr=False)

    @property
    def verdict(self) -> str:
        return str(self.report["verdict"])

    @property
    def primary(self) -> str:
        return str(self.report["primary"])

    def to_markdown(self) -> str:
        from modelgit.compare import to_markdown

        return to_markdown(dict(self.report))

    def to_html(self) -> str:
        from modelgit.compare import to_html

        return to_html(dict(self.report))

    def to_json(self) -> str:
        import json

        return json.dumps(dict(self.report), indent=1, default=str) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.report)


@dataclass(frozen=True)
class UpgradeCheck:
    """What ``check-upgrades`` found at a commit.

    ``recommendations``: per model, a staging version compared with the active one (``from``,
    ``to``, ``recommended``, ``reason``…); ``skipped``: what was not compared, and why;
    ``sources``: what the registry's sources said (its ``found`` are the new versions, whose
    JSON-ready forms, with any ``branch`` or ``note``, are ``new_versions``); ``decisions``: the
    auto-upgrade/auto-rollback verdicts of models with ``policy.auto_upgrade: true``;
    ``proposals``: the branches committed (with ``propose``)."""

    commit: str | None
    recommendations: tuple[Mapping[str, Any], ...]
    proposals: tuple[Mapping[str, Any], ...]
    skipped: tuple[Mapping[str, Any], ...]
    sources: SourcesReport
    new_versions: tuple[Mapping[str, Any], ...]
    decisions: tuple[Verdict, ...]

    def as_dict(self) -> dict[str, Any]:
        sources = self.sources.as_dict()
        sources["found"] = [dict(item) for item in self.new_versions]
        return {"commit": self.commit, "recommendations": [dict(r) for r in self.recommendations],
                "proposals": [dict(p) for p in self.proposals], "skipped": [dict(s) for s in self.skipped],
                "sources": sources, "decisions": [v.as_dict() for v in self.decisions]}


@dataclass(frozen=True)
class Recommendations:
    """Per model: should it move to its newest version, why, by how much (the seed's fields:
    provider, model, currentVersion, latestVersion, improvements, recommended, reason,
    expectedImprovement, plus the evidence)."""

    commit: str | None
    recommendations: tuple[Mapping[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "recommendations": [dict(r) for r in self.recommendations]}


@dataclass(frozen=True)
class UsageReport:
    """Observed usage per model, phase, version and task."""

    commit: str | None
    models: tuple[ModelUsage, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "models": [m.as_dict() for m in self.models]}


@dataclass(frozen=True)
class Route:
    """Which version of a model serves a routing key. ``version`` is the routed one; ``serving``
    differs from it when the routed version cannot load (``unloadable`` says why) and the active
    version serves instead."""

    model: str
    key: str | None
    version: str
    serving: str
    commit: str | None
    weight: float | None
    unloadable: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "key": self.key, "version": self.version, "serving": self.serving,
                "commit": self.commit, "weight": self.weight}


@dataclass(frozen=True)
class Prediction:
    """A model's outputs for one input, and which version gave them. ``routed`` and ``fallback``
    are set when another version than the routed one answered (``fallback``: why)."""

    model: str
    version: str
    commit: str | None
    outputs: tuple[Any, ...]
    routed: str | None = None
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"model": self.model, "version": self.version, "commit": self.commit,
                                  "outputs": list(self.outputs)}
        if self.routed is not None:
            result["routed"] = self.routed
            result["fallback"] = self.fallback
        return result


# -- read-only views ------------------------------------------------------------------------------
def show(repo: str | os.PathLike[str] | GitRepo, ref: str = "HEAD", model: str | None = None) -> ShowResult:
    """The models at ``ref`` (all, or ``model``; an unknown id is a UsageError with close matches).

    >>> api.show(".", "main").models[0].traffic            # doctest: +SKIP
    {'v3': 90.0, 'v4': 10.0}
    """
    from modelgit import views
    from modelgit.snapshot import Loader

    data = views.show(Loader(open_repo(repo)).load(ref), model)
    return ShowResult(
        data["commit"],
        tuple(ModelSummary(m["model"], m["task"], m["owner"], m["description"], m["active"], m["traffic"],
                           tuple(VersionSummary(**v) for v in m["versions"])) for m in data["models"]),
        tuple(data["invalid"]),
    )


def show_stream(repo: str | os.PathLike[str] | GitRepo, ref: str = "HEAD", model: str | None = None, *,
                versions: bool = True) -> ShowStream:
    """:func:`show` for large registries: the same data, each model summarised as it is consumed.
    Errors (an unknown ref or model) are raised here, before the first model. With
    ``versions=False`` each model's dict has ``statuses`` (version count per status) instead of
    ``versions``, all a summary table needs, and the stream can only be read with ``dicts()``.

    >>> shown = api.show_stream(".", "main")                 # doctest: +SKIP
    >>> [m["active"] for m in shown.dicts()][:2]               # doctest: +SKIP
    ['v3', 'v1.0-hybrid']
    """
    from modelgit import views
    from modelgit.snapshot import Loader

    snapshot = Loader(open_repo(repo)).load(ref)
    models, invalid = views.show_stream(snapshot, model, versions=versions)
    return ShowStream(snapshot.commit, tuple(invalid), models)


def history(repo: str | os.PathLike[str] | GitRepo, model: str, ref: str = "HEAD",
            limit: int | None = None) -> HistoryResult:
    """Each commit reachable from ``ref`` that changed ``model``'s file, newest first.

    >>> [e.changes for e in api.history(".", "calling_score", limit=1).commits]   # doctest: +SKIP
    [('v3 active → deprecated', 'v4 staging → active', 'traffic 90/10 → 0/100 (v3/v4)')]
    """
    from modelgit import views
    from modelgit.proposals import check_model_id

    check_model_id(model)
    data = views.history(open_repo(repo), model, ref, limit)
    return HistoryResult(data["model"], data["ref"], tuple(
        HistoryEntry(c["commit"], c["author"], c["email"], c["date"], c["subject"], c["trailers"],
                     tuple(c["changes"])) for c in data["commits"]))


def diff(repo: str | os.PathLike[str] | GitRepo, base: str = "HEAD~1", head: str | None = "HEAD", *,
         worktree: bool = False) -> DiffResult:
    """The semantic changes of the registry from ``base`` to ``head`` (with ``worktree``: to the
    files on disk).

    >>> [c.text for c in api.diff(".", "main", "HEAD").changes]      # doctest: +SKIP
    ['v4 staging → active']
    """
    from modelgit import views
    from modelgit.diff import registry_changes
    from modelgit.snapshot import Loader

    loader = Loader(open_repo(repo))
    old = loader.load(base)
    new = loader.load(head, worktree=worktree)
    changes = registry_changes(*views.changed_states(old, new))
    return DiffResult(old.commit, new.commit, tuple(changes))


def validate(repo: str | os.PathLike[str] | GitRepo, ref: str | None = "HEAD", base: str | None = None,
             worktree: bool = False, check_artifacts: bool = True) -> Report:
    """Check the registry at ``ref`` (or, with ``worktree``, the files on disk): strict YAML,
    schema, rules, artifacts and, with ``base``, the rules about what changed since ``base``.

    >>> report = api.validate(".", "HEAD", base="origin/main")       # doctest: +SKIP
    >>> report.valid, [f.render() for f in report.findings]           # doctest: +SKIP
    (True, [])
    """
    from modelgit.validate import Validator

    return Validator(open_repo(repo)).validate(None if worktree else ref, base=base, worktree=worktree,
                                               check_artifacts=check_artifacts)


def init(directory: str | os.PathLike[str]) -> InitResult:
    """Create a registry in ``directory`` (made a git repository if it is not one): settings,
    schemas, an example model with a small ONNX artifact, and CI workflows; committed when the
    directory is a new repository.

    >>> api.init("models").committed is not None                     # doctest: +SKIP
    True
    """
    from modelgit.scaffold import init_registry

    return init_registry(directory)


# -- runtime ----------------------------------------------------------------------------------------
def route(repo: str | os.PathLike[str] | GitRepo, model: str, key: str | None = None, ref: str = "HEAD") -> Route:
    """The version of ``model`` (or a pinned ``model:version``) that serves ``key`` at ``ref``,
    sticky A/B routing as the runtime does it (without a key, a weighted random choice).

    >>> api.route(".", "calling_score", key="user-42").version         # doctest: +SKIP
    'v4'
    """
    from modelgit.runtime.registry import Registry

    reg = Registry(open_repo(repo), ref)
    name = model.partition(":")[0]
    routed, serving = reg.resolve(model, key=key)
    unloadable = None if serving == routed else reg.info(name)["errors"].get(routed, "it cannot be loaded")
    return Route(name, key, routed, serving, reg.commit, reg.weight(f"{name}:{serving}"), unloadable)


def run(repo: str | os.PathLike[str] | GitRepo, model: str, inputs: Any, key: str | None = None,
        ref: str = "HEAD", *, source: str = "input", given: str = "the input") -> Prediction:
    """Run ``model`` (or ``model:version``) at ``ref`` on ``inputs`` (one array, or a mapping of
    input name → array) as the runtime serves it: the routed version, else the active one when the
    routed version cannot take the input. UsageError (whose message starts with ``source``) when
    no version can; ``given`` names the inputs in the reasons.

    >>> api.run(".", "calling_score", np.zeros((1, 10), np.float32)).outputs   # doctest: +SKIP
    ([[0.42]],)
    """
    import numpy as np

    from modelgit.errors import ModelgitError
    from modelgit.runtime.inputs import input_problem
    from modelgit.runtime.registry import HostedModel, Registry
    from modelgit.sessions import Deadline

    reg = Registry(open_repo(repo), ref)
    name, _, pinned = model.partition(":")
    routed, serving = reg.resolve(model, key=key)
    candidates = [serving]
    active = reg.info(name)["active"]
    if not pinned and active and active != serving:
        candidates.append(active)  # the runtime answers with the active version too
    problems: list[str] = []
    for version in candidates:
        session = reg.session(f"{name}:{version}")
        if isinstance(session, HostedModel):
            raise UsageError(f"'{name}' version '{version}' is hosted by {session.provider}; "
                             f"call the provider with {session.model_id}")
        problem = input_problem(session, inputs, given=given)
        if problem is None:
            deadline = Deadline()
            try:
                with deadline:
                    outputs = reg.run(f"{name}:{version}", inputs, run_options=deadline.run_options)
            except ModelgitError:
                raise
            except Exception as exc:  # onnxruntime refuses the input
                deadline.check(f"{name}:{version}")
                problem = f"the model rejected the input: {str(exc).strip()[:300]}"
            else:
                values = tuple(np.asarray(o).tolist() for o in outputs)
                if version == routed:
                    return Prediction(name, version, reg.commit, values)
                fallback = problems[0] if problems else reg.info(name)["errors"].get(routed, "")
                return Prediction(name, version, reg.commit, values, routed, fallback)
        problems.append(f"'{version}': {problem}" if len(candidates) > 1 else problem)
    raise UsageError(f"{source}: " + "; ".join(problems),
                     hint=f"check the input's shape and dtype against 'modelgit show {name}'")


# -- proposals ------------------------------------------------------------------------------------
def _required(action: str, name: str, value: Any) -> Any:
    if value is None:
        raise UsageError(f"{action} needs {name}")
    return value


def _planner(repo: GitRepo, action: str, model: str, version: str | None,
             params: dict[str, Any]) -> tuple[Callable[[Snapshot], Any], bool]:
    """(the plan for ``action``, whether to load the whole registry when ``model`` is new)."""
    from modelgit import proposals

    def take(*names: str) -> dict[str, Any]:
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise UsageError(f"{action} takes no {', '.join(unknown)}")
        return params

    if action == "register":
        new = params.pop("new", None)
        fields = take(*proposals.NewVersion.__dataclass_fields__)
        new = new or proposals.NewVersion(**fields)
        ver = _required(action, "a version", version)
        return (lambda s: proposals.plan_register(s, model, ver, new)), new.task is None
    if action in ("promote", "deprecate", "archive"):
        take()
        ver = _required(action, "a version", version)
        plan = getattr(proposals, f"plan_{action}")
        return (lambda s: plan(s, model, ver)), True
    if action == "retire":
        take()
        return (lambda s: proposals.plan_retire(s, model)), True
    if action == "weight":
        weight = float(_required(action, "weight=", take("weight").get("weight")))
        ver = _required(action, "a version", version)
        return (lambda s: proposals.plan_weight(s, model, ver, weight)), True
    if action == "split":
        split = _required(action, "split= (e.g. {'v1': 90, 'v2': 10})", take("split").get("split"))
        if not isinstance(split, Mapping):
            split = proposals.parse_split(split)  # "v1=90" strings, as the command line gives them
        return (lambda s: proposals.plan_split(s, model, split)), True
    if action == "ab-start":
        percent = float(_required(action, "percent=", take("percent").get("percent")))
        ver = _required(action, "a version", version)
        return (lambda s: proposals.plan_ab_start(s, model, ver, percent)), True
    if action == "ab-stop":
        promote = _required(action, "promote=True or promote=False", take("promote").get("promote"))
        return (lambda s: proposals.plan_ab_stop(s, model, promote=bool(promote))), True
    if action == "dataset":
        path = _required(action, "path=", take("path").get("path"))
        return (lambda s: proposals.plan_dataset(s, model, repo.root, path)), True
    if action == "rollback":
        take()
        if version is not None:
            return (lambda s: proposals.plan_promote(s, model, version, action="rollback")), True
        return (lambda s: proposals.plan_rollback(repo, s, model)), True
    raise UsageError(f"unknown action '{action}'", hint=f"one of {', '.join(ACTIONS)}")


def propose(repo: str | os.PathLike[str] | GitRepo, action: str, model: str, *, version: str | None = None,
            ref: str = "HEAD", branch: str | None = None, on_current_branch: bool = False,
            push: str | None = None, dry_run: bool = False, **params: Any) -> Outcome:
    """Plan ``action`` on ``model`` on top of ``ref``, validate the result and commit it on a new
    branch (default ``modelgit/<model>/<action>-<version>``), or on the checked-out branch with
    ``on_current_branch``; with ``dry_run`` nothing is committed (the outcome carries the diff).

    Actions (:data:`ACTIONS`) and what they take besides ``model``:
    ``register`` (``version``; the fields of :class:`modelgit.proposals.NewVersion`: ``artifact``,
    ``sha256``, ``provider``, ``model_id``, ``metrics``, ``improvements``, ``breaking_changes``,
    ``migration_notes``, ``data_source``, ``weight``, ``trained``, ``task``, ``description``; or
    ``new=NewVersion(...)``), ``promote`` / ``deprecate`` / ``archive`` (``version``), ``retire``,
    ``weight`` (``version``, ``weight=0..1``), ``split`` (``split={"v1": 90, "v2": 10}``),
    ``ab-start`` (``version``, ``percent=``), ``ab-stop`` (``promote=True|False``), ``dataset``
    (``path=``, a file under the repository), ``rollback`` (revert the newest serving change, or
    with ``version`` make that version active again).

    >>> outcome = api.propose(".", "split", "calling_score", split={"v3": 90, "v4": 10})  # doctest: +SKIP
    >>> outcome.branch, outcome.commit[:7]                                               # doctest: +SKIP
    ('modelgit/calling_score/split-90-10', '3f2a9c1')
    """
    from modelgit import proposals
    from modelgit.validate import Validator

    git = open_repo(repo)
    plan, whole_if_missing = _planner(git, action, model, version, dict(params))
    validator = Validator(git)
    # With on_current_branch the change goes on top of HEAD: a ref that names another commit is
    # refused instead of silently ignored. (If HEAD moves after this, apply() says so.)
    if on_current_branch and git.resolve(ref) != git.resolve("HEAD"):
        raise UsageError("--on-current-branch commits on top of HEAD, but --ref names another commit",
                         hint="drop --ref, or check out the branch you want to commit on")
    base = proposals.load_base(validator.loader, ref, model, whole_if_missing=whole_if_missing)
    proposal = plan(base)
    return proposals.apply(git, proposal, validator=validator, base=base, branch=branch,
                           on_current_branch=on_current_branch, push=push, dry_run=dry_run)


# -- evaluation -----------------------------------------------------------------------------------
def evaluate(repo: str | os.PathLike[str] | GitRepo, model: str, version: str, ref: str = "HEAD", *,
             metrics: Sequence[str] | None = None, batch_size: int = 256, force: bool = False,
             progress: Callable[[int, int], None] | None = None, write: bool = True) -> Evaluation:
    """Run ``version`` of ``model`` at ``ref`` over its evaluation dataset; reuse the stored
    result when the artifact and dataset digests match (unless ``force``), else store the new one
    in ``registry/evaluations/MODEL/VERSION.json`` (a local cache, unless ``write=False``).

    >>> api.evaluate(".", "calling_score", "v4").metrics              # doctest: +SKIP
    {'rmse': 0.3105, 'mae': 0.2416}
    """
    from modelgit.evaluate import evaluate as run_evaluation
    from modelgit.evaluate import result_path, write_result
    from modelgit.snapshot import Loader

    git = open_repo(repo)
    snapshot = Loader(git).load(ref)
    record = run_evaluation(snapshot, model, version, root=git.root,
                            requested_metrics=list(metrics) if metrics else None, batch_size=batch_size,
                            progress=progress, reuse=not force)
    reused = bool(record.get("reused"))
    written = write_result(git.root, record) if write and not reused else None
    return Evaluation(model, version, result_path(model, version), reused, written, record)


def compare(repo: str | os.PathLike[str] | GitRepo, model: str, v1: str, v2: str, ref: str = "HEAD", *,
            resamples: int = 1000, seed: int = 20251228) -> Comparison:
    """Compare ``v2`` against ``v1`` of ``model`` at ``ref`` on its evaluation dataset (paired
    bootstrap, 95 % intervals). Evaluations are stored as :func:`evaluate` stores them, so the next
    comparison of the same versions reuses them and gives the same report.

    >>> api.compare(".", "calling_score", "v3", "v4").verdict          # doctest: +SKIP
    'better'
    """
    from modelgit.compare import compare_results
    from modelgit.evaluate import evaluate as run_evaluation
    from modelgit.evaluate import write_result
    from modelgit.snapshot import Loader

    git = open_repo(repo)
    snapshot = Loader(git).load(ref)
    spec = snapshot.model(model)
    r1 = run_evaluation(snapshot, model, v1, root=git.root)
    r2 = run_evaluation(snapshot, model, v2, root=git.root)
    for computed in (r1, r2):
        if not computed.get("reused"):
            write_result(git.root, computed)
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    return Comparison(model, v1, v2, compare_results(spec, settings, r1, r2, resamples=resamples, seed=seed))


def ci(repo: str | os.PathLike[str] | GitRepo, base: str, head: str = "HEAD") -> CiReport:
    """The pull-request gate: validate ``head`` against ``base``, evaluate and compare the versions
    that changed, and decide (``report.ok``). Write its files with
    :func:`modelgit.ci.write_reports`.

    >>> api.ci(".", "origin/main").ok                                  # doctest: +SKIP
    True
    """
    from modelgit.ci import run_ci

    return run_ci(open_repo(repo), base, head)


# -- upgrades and continuous learning -------------------------------------------------------------
def open_tracker(repo: GitRepo, snapshot: Snapshot, tracking_url: str | None) -> Any:
    """The :class:`modelgit.tracking.Tracker` the learning verbs read (``tracking_url``, else
    MODELGIT_TRACKING_URL, else ``tracking.url`` in ``snapshot``'s settings, else
    ``.git/modelgit/usage.sqlite``), opened without its writer: nothing is recorded here."""
    from modelgit.tracking import Tracker, resolve_url

    settings = snapshot.settings.spec if snapshot.settings is not None else None
    tracking = getattr(settings, "tracking", None) if settings is not None else None
    url = resolve_url(tracking_url, getattr(tracking, "url", None), repo.git_dir / "modelgit", repo_root=repo.root)
    return Tracker(url, retention_days=getattr(tracking, "retention_days", None))


def check_upgrades(repo: str | os.PathLike[str] | GitRepo, ref: str = "HEAD", propose: bool = False,
                   tracking_url: str | None = None) -> UpgradeCheck:
    """Staging versions that beat the active one on the primary metric by the policy's minimum
    improvement with 95 % confidence; new versions the registry's sources offer; and, for models
    with ``policy.auto_upgrade: true``, the auto-upgrade/auto-rollback decision from observed usage.
    With ``propose`` each is committed on its own branch (one that exists already is noted, not
    an error).

    >>> [r["to"] for r in api.check_upgrades(".").recommendations if r["recommended"]]   # doctest: +SKIP
    ['v4']
    """
    from modelgit import proposals
    from modelgit.errors import ModelgitError
    from modelgit.sources import check_sources
    from modelgit.upgrades import check_upgrades as evaluate_upgrades
    from modelgit.validate import Validator

    git = open_repo(repo)
    validator = Validator(git)
    snapshot = validator.loader.load(ref)
    found, skipped = evaluate_upgrades(snapshot, git.root)
    sources = check_sources(snapshot, git.root)
    proposed: list[dict[str, Any]] = []
    if propose:
        for item in (r for r in found if r["recommended"]):
            proposal = proposals.plan_promote(snapshot, item["model"], item["to"])
            proposal = proposals.Proposal(
                proposal.model, "upgrade", proposal.version, proposal.subject, proposal.base_commit,
                proposal.changes, body=f"Recommended by modelgit check-upgrades: {item['reason']}")
            try:
                outcome = proposals.apply(git, proposal, validator=validator, base=snapshot)
            except UsageError as exc:  # e.g. the branch exists: proposed on an earlier run
                item["note"] = exc.message
                continue
            proposed.append({"model": item["model"], "version": item["to"], "branch": outcome.branch,
                             "commit": outcome.commit, "subject": proposal.subject, "reason": item["reason"]})
    decided = _usage_decisions(git, snapshot, ref, tracking_url, validator, propose, skipped)
    proposed.extend({"model": v.model, "version": v.version, "branch": v.branch, "commit": v.commit,
                     "subject": f"{v.model}: {v.decision}", "reason": v.reason}
                    for v in decided if v.branch)
    new_versions = [new.as_dict() for new in sources.found]
    for new, shown in zip(sources.found, new_versions, strict=True):
        if not propose:
            continue
        try:
            outcome = proposals.apply(git, new.proposal, validator=validator, base=snapshot)
        except ModelgitError as exc:  # the branch exists (an earlier run), or the result is invalid
            shown["note"] = exc.render()
            continue
        shown["branch"] = outcome.branch
        reason = "; ".join(new.improvements) or f"new artifact {new.origin} in source '{new.source}'"
        proposed.append({"model": new.model, "version": new.version, "branch": outcome.branch,
                         "commit": outcome.commit, "subject": new.proposal.subject, "reason": reason,
                         "source": new.source})
    return UpgradeCheck(snapshot.commit, tuple(found), tuple(proposed), tuple(skipped), sources,
                        tuple(new_versions), tuple(decided))


def _usage_decisions(git: GitRepo, snapshot: Snapshot, ref: str, tracking_url: str | None,
                     validator: Validator, propose: bool, skipped: list[dict[str, Any]]) -> list[Verdict]:
    """auto-upgrade and auto-rollback verdicts for the models whose policy says auto_upgrade: true
    (proposed with ``propose``); without a usage database they are listed in ``skipped``."""
    from modelgit import decisions
    from modelgit.errors import ModelgitError

    wanted = [mid for mid, model in snapshot.models.items()
              if decisions.effective_policy(snapshot, model).get("auto_upgrade") and not model.retired]
    if not wanted:
        return []
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    configured = tracking_url or os.environ.get("MODELGIT_TRACKING_URL") or (
        settings is not None and settings.tracking is not None and settings.tracking.url)
    if not configured and not (git.git_dir / "modelgit" / "usage.sqlite").exists():
        skipped.extend({"model": mid, "version": None,
                        "reason": "policy.auto_upgrade is on but no usage database is configured "
                                  "(--tracking-url, MODELGIT_TRACKING_URL or tracking.url)"} for mid in wanted)
        return []
    verdicts = []
    with open_tracker(git, snapshot, tracking_url) as tracker:
        usages = {mid: decisions.model_usage(git, tracker, mid, ref) for mid in wanted}
    for mid in wanted:
        for verdict in (decisions.decide_auto_rollback(snapshot, usages[mid], mid),
                        decisions.decide_auto_upgrade(snapshot, usages[mid], mid)):
            if verdict.decision == "hold":
                continue
            if propose:
                try:
                    verdict = decisions.propose(git, snapshot, usages[mid], verdict, validator=validator)
                except ModelgitError as exc:  # the branch exists: proposed on an earlier run
                    verdict = decisions.Verdict(verdict.model, verdict.decision,
                                                f"{verdict.reason} (not proposed: {exc.message})",
                                                verdict.evidence, verdict.action, verdict.version, verdict.split)
            verdicts.append(verdict)
            break  # a rollback comes first; never both for one model in one run
    return verdicts


def recommend(repo: str | os.PathLike[str] | GitRepo, ref: str = "HEAD", provider: str | None = None,
              tracking_url: str | None = None,
              evaluations: Callable[[Snapshot], list[dict[str, Any]]] | None = None) -> Recommendations:
    """Per model (only those served by ``provider`` if given): should it move to its newest
    version — from observed usage (anytime-valid) when there is enough, else from the evaluation
    comparison. ``evaluations``: how to get check-upgrades' comparisons of a snapshot, when the
    caller keeps them (the server does, per commit); by default they are computed here.

    >>> [(r["model"], r["recommended"]) for r in api.recommend(".").recommendations]   # doctest: +SKIP
    [('calling_score', True)]
    """
    from modelgit.decisions import model_usage
    from modelgit.decisions import recommend as recommend_from
    from modelgit.upgrades import check_upgrades as evaluate_upgrades
    from modelgit.validate import Validator

    git = open_repo(repo)
    snapshot = Validator(git).loader.load(ref)
    evaluated = evaluations(snapshot) if evaluations is not None else evaluate_upgrades(snapshot, git.root)[0]
    with open_tracker(git, snapshot, tracking_url) as tracker:
        usages = {mid: model_usage(git, tracker, mid, ref) for mid in snapshot.models}
    return Recommendations(snapshot.commit, tuple(recommend_from(snapshot, usages, evaluated, provider=provider)))


def _decide(repo: str | os.PathLike[str] | GitRepo, model: str, ref: str, tracking_url: str | None,
            propose: bool, push: str | None, rollback: bool,
            min_quality_improvement: float | None = None) -> Verdict:
    from modelgit import decisions
    from modelgit.validate import Validator

    git = open_repo(repo)
    validator = Validator(git)
    snapshot = validator.loader.load(ref)
    snapshot.model(model)  # unknown model: a usage error with close matches
    with open_tracker(git, snapshot, tracking_url) as tracker:
        found_usage = decisions.model_usage(git, tracker, model, ref)
    if rollback:
        verdict = decisions.decide_auto_rollback(snapshot, found_usage, model)
    else:
        verdict = decisions.decide_auto_upgrade(snapshot, found_usage, model,
                                                min_quality_improvement=min_quality_improvement)
    if propose and verdict.decision != "hold":
        verdict = decisions.propose(git, snapshot, found_usage, verdict, validator=validator, push=push)
    return verdict


def auto_upgrade(repo: str | os.PathLike[str] | GitRepo, model: str, ref: str = "HEAD",
                 min_quality_improvement: float | None = None, propose: bool = False, push: str | None = None,
                 tracking_url: str | None = None) -> Verdict:
    """Decide whether to promote (or ramp, with ``policy.ramp``) ``model``'s staging version under
    test, from the anytime-valid lower bound of its relative quality gain over the active version;
    with ``propose`` a decision other than hold is committed on its own branch.

    >>> api.auto_upgrade(".", "calling_score").decision                # doctest: +SKIP
    'hold'
    """
    return _decide(repo, model, ref, tracking_url, propose, push, rollback=False,
                   min_quality_improvement=min_quality_improvement)


def auto_rollback(repo: str | os.PathLike[str] | GitRepo, model: str, ref: str = "HEAD", propose: bool = False,
                  push: str | None = None, tracking_url: str | None = None) -> Verdict:
    """Decide whether to roll ``model`` back: its active version's quality is surely under
    ``policy.rollback_below_quality``, or surely worse than the version it replaced.

    >>> api.auto_rollback(".", "calling_score").decision               # doctest: +SKIP
    'hold'
    """
    return _decide(repo, model, ref, tracking_url, propose, push, rollback=True)


def usage(repo: str | os.PathLike[str] | GitRepo, model: str | None = None, task: str | None = None,
          since: date | str | None = None, ref: str = "HEAD", tracking_url: str | None = None) -> UsageReport:
    """Observed usage of ``model`` (or every model) per phase, version and task, from ``since`` on
    (a date, or its ISO text YYYY-MM-DD).
    A phase starts at each commit of ``ref``'s history that changes the model's split or statuses.

    >>> api.usage(".", "calling_score").models[0].phases[-1].split      # doctest: +SKIP
    {'v3': 90.0, 'v4': 10.0}
    """
    from modelgit.decisions import model_usage
    from modelgit.snapshot import Loader

    if isinstance(since, str):
        try:
            since = date.fromisoformat(since)
        except ValueError:
            raise UsageError(f"since '{since}' is not a date", hint="write it as YYYY-MM-DD") from None
    git = open_repo(repo)
    snapshot = Loader(git).load(ref)
    if model is not None:
        snapshot.model(model)  # unknown model: a usage error with close matches
    with open_tracker(git, snapshot, tracking_url) as tracker:
        ids = [model] if model else sorted(snapshot.models)
        found = tuple(model_usage(git, tracker, mid, ref, task=task, since=since) for mid in ids)
    return UsageReport(snapshot.commit, found)
