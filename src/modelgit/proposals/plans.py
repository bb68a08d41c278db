"""The verbs: each ``plan_*`` reads a model file at a base snapshot, edits it with comment-preserving
YAML and returns a :class:`~modelgit.proposals.message.Proposal`; nothing is written."""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelgit import yamledit
from modelgit.errors import InvalidError, NotFoundError, UsageError
from modelgit.gitstore import blob_id
from modelgit.proposals.message import SERVABLE, Proposal, check_model_id, check_version_id
from modelgit.rules import signature_of
from modelgit.snapshot import Snapshot, model_path
from modelgit.spec import Model


def _model(snapshot: Snapshot, model_id: str) -> Model:
    check_model_id(model_id)
    return snapshot.model(model_id)


def _edit(snapshot: Snapshot, model_id: str, change: Any) -> dict[str, bytes]:
    path = model_path(model_id)
    text = snapshot.read(path).decode("utf-8")
    return {path: yamledit.edit(text, change).encode("utf-8")}


def _find(data: Any, version: str) -> Any:
    for item in data["versions"]:
        if str(item.get("version")) == version:
            return item
    raise AssertionError(version)  # checked on the typed model before


def _prune_traffic(data: Any) -> None:
    """Drop traffic entries of versions that can no longer serve; if what is left no longer adds
    up to 100 % with the active version in it, clear the split (100 % to the active version)."""
    traffic = data.get("traffic")
    if traffic is None:
        return
    statuses = {str(v.get("version")): v.get("status") for v in data["versions"]}
    for version in [v for v in traffic if statuses.get(str(v)) not in SERVABLE]:
        yamledit.delete(traffic, version)
    active = [v for v, s in statuses.items() if s == "active"]
    if not traffic or not active or active[0] not in traffic or abs(sum(traffic.values()) - 100) > 1e-9:
        yamledit.delete(data, "traffic")


# -- verbs ------------------------------------------------------------------------------------------
def plan_promote(snapshot: Snapshot, model_id: str, version: str, action: str = "promote") -> Proposal:
    model = _model(snapshot, model_id)
    target = model.require_version(version, model_id)
    if target.status == "active":
        raise InvalidError(f"'{model_id}' version '{version}' is already active; nothing to change")
    if target.status not in ("staging", "deprecated"):
        raise InvalidError(f"cannot promote {target.status} version '{version}' of '{model_id}'",
                           hint="only staging or deprecated versions can become active")
    previous = model.active

    def change(data: Any) -> None:
        for item in data["versions"]:
            if item.get("status") == "active":
                item["status"] = "deprecated"
        _find(data, version)["status"] = "active"
        _prune_traffic(data)
        if "retired" in data:  # promoting a version of a retired model brings it back into service
            yamledit.delete(data, "retired")

    was = f" (was {previous.version})" if previous else ""
    return Proposal(model_id, action, version, f"{model_id}: promote {version} to active{was}",
                    snapshot.commit or "", _edit(snapshot, model_id, change))


def plan_deprecate(snapshot: Snapshot, model_id: str, version: str) -> Proposal:
    model = _model(snapshot, model_id)
    target = model.require_version(version, model_id)
    if target.status != "active":
        raise InvalidError(f"cannot deprecate {target.status} version '{version}' of '{model_id}'",
                           hint="only the active version can be deprecated; archive staging versions")

    def change(data: Any) -> None:
        _find(data, version)["status"] = "deprecated"
        _prune_traffic(data)

    return Proposal(model_id, "deprecate", version, f"{model_id}: deprecate {version}",
                    snapshot.commit or "", _edit(snapshot, model_id, change))


def plan_retire(snapshot: Snapshot, model_id: str) -> Proposal:
    """Take a model out of service on purpose: ``retired: true``, its active version deprecated
    (still loadable by pin), staging versions archived, the traffic split removed."""
    model = _model(snapshot, model_id)
    if model.retired:
        raise InvalidError(f"'{model_id}' is retired already; nothing to change")

    def change(data: Any) -> None:
        for item in data["versions"]:
            if item.get("status") == "active":
                item["status"] = "deprecated"
            elif item.get("status") == "staging":
                item["status"] = "archived"
        if "traffic" in data:
            yamledit.delete(data, "traffic")
        keys = list(data)
        yamledit.insert(data, keys.index("task") + 1 if "task" in keys else len(keys), "retired", True)

    active = f" (deprecates {model.active.version})" if model.active else ""
    return Proposal(model_id, "retire", None, f"{model_id}: retire, out of service on purpose{active}",
                    snapshot.commit or "", _edit(snapshot, model_id, change))


def plan_archive(snapshot: Snapshot, model_id: str, version: str) -> Proposal:
    model = _model(snapshot, model_id)
    target = model.require_version(version, model_id)
    if target.status not in ("staging", "deprecated"):
        hint = ("promote another version first (this one then becomes deprecated), or retire the model"
                if target.status == "active" else "it is archived already")
        raise InvalidError(f"cannot archive {target.status} version '{version}' of '{model_id}'", hint=hint)

    def change(data: Any) -> None:
        _find(data, version)["status"] = "archived"
        traffic = data.get("traffic")
        if traffic is not None and version in traffic:
            share = yamledit.delete(traffic, version)
            active = model.active
            if active is not None and active.version in traffic:
                traffic[active.version] = traffic[active.version] + share
        _prune_traffic(data)

    return Proposal(model_id, "archive", version, f"{model_id}: archive {version}",
                    snapshot.commit or "", _edit(snapshot, model_id, change))


def plan_weight(snapshot: Snapshot, model_id: str, version: str, weight: float) -> Proposal:
    model = _model(snapshot, model_id)
    target = model.require_version(version, model_id)
    if not 0 <= weight <= 1:
        raise UsageError(f"weight {weight:g} is outside [0, 1]", hint="a blend weight is between 0 and 1")
    old = target.weight
    if old is not None and float(old) == weight:
        raise InvalidError(f"the weight of '{model_id}' version '{version}' is already {weight:g}; "
                           "nothing to change")

    def change(data: Any) -> None:
        item = _find(data, version)
        if "weight" in item:
            item["weight"] = weight
        else:  # a new key goes where the schema and `register` put it: right after status
            keys = list(item)
            yamledit.insert(item, keys.index("status") + 1 if "status" in keys else len(keys), "weight", weight)

    old_text = "unset" if old is None else f"{old:g}"
    return Proposal(model_id, "weight", version,
                    f"{model_id}: weight of {version} {old_text} → {weight:g}",
                    snapshot.commit or "", _edit(snapshot, model_id, change))


def parse_split(items: Sequence[str]) -> dict[str, float]:
    """``["v1=90", "v2=10"]`` → ``{"v1": 90.0, "v2": 10.0}``; UsageError on bad syntax."""
    split: dict[str, float] = {}
    for item in items:
        version, sep, percent = item.partition("=")
        try:
            value = float(percent)
        except ValueError:
            value = None
        if not sep or not version or value is None:
            raise UsageError(f"'{item}' is not VERSION=PERCENT", hint="e.g. modelgit split MODEL v1=90 v2=10")
        if version in split:
            raise UsageError(f"version '{version}' is given twice")
        split[version] = value
    return split


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _set_traffic(data: Any, split: Mapping[str, float]) -> None:
    from ruamel.yaml.comments import CommentedMap

    traffic = data.get("traffic")
    if traffic is None:  # a new block, after the versions (where `modelgit init` puts it)
        traffic = CommentedMap((version, _number(percent)) for version, percent in split.items())
        keys = list(data)
        yamledit.insert(data, keys.index("versions") + 1 if "versions" in keys else len(keys), "traffic", traffic)
        return
    # Update in place: keys that stay keep their position, quoting and comments.
    for key in [k for k in traffic if str(k) not in split]:
        yamledit.delete(traffic, key)
    for version, percent in split.items():
        if version in traffic:
            traffic[version] = _number(percent)
        else:
            yamledit.insert(traffic, len(traffic), version, _number(percent))


def plan_split(snapshot: Snapshot, model_id: str, split: Mapping[str, float]) -> Proposal:
    model = _model(snapshot, model_id)
    for version, percent in split.items():
        target = model.require_version(version, model_id)
        if target.status not in SERVABLE:
            raise InvalidError(f"version '{version}' is {target.status}; only active or staging versions "
                               "take traffic", hint="promote it, or leave it out of the split")
        if not 0 <= percent <= 100:
            raise UsageError(f"{version}={percent:g} is outside 0..100")
    total = sum(split.values())
    if abs(total - 100) > 1e-9:
        raise InvalidError(f"split sums to {total:g}, not 100", hint="make the percentages add up to 100")
    text = "/".join(f"{_number(p)}" for p in split.values())
    if {v: float(p) for v, p in model.split().items()} == {v: float(p) for v, p in split.items()}:
        raise InvalidError(f"'{model_id}' already splits its traffic {text} ({'/'.join(split)}); "
                           "nothing to change")

    def change(data: Any) -> None:
        _set_traffic(data, split)

    return Proposal(model_id, "split", None, f"{model_id}: traffic {text} ({'/'.join(split)})",
                    snapshot.commit or "", _edit(snapshot, model_id, change),
                    slug="split-" + text.replace("/", "-"))


def plan_ab_start(snapshot: Snapshot, model_id: str, version: str, percent: float) -> Proposal:
    model = _model(snapshot, model_id)
    target = model.require_version(version, model_id)
    if target.status != "staging":
        raise InvalidError(f"an A/B test needs a staging version; '{version}' is {target.status}")
    active = model.active
    if active is None:
        raise InvalidError(f"'{model_id}' has no active version to test against",
                           hint=f"promote a version first: modelgit promote {model_id} VERSION")
    if not 0 < percent < 100:
        raise UsageError(f"--traffic {percent:g} must be between 0 and 100 (exclusive)")
    split = {active.version: 100 - percent, version: percent}

    def change(data: Any) -> None:
        _set_traffic(data, split)

    return Proposal(model_id, "ab-start", version,
                    f"{model_id}: start A/B test of {version} at {_number(percent)}% "
                    f"against {active.version}", snapshot.commit or "", _edit(snapshot, model_id, change))


def plan_ab_stop(snapshot: Snapshot, model_id: str, *, promote: bool) -> Proposal:
    model = _model(snapshot, model_id)
    candidates = [v for v in model.versions if v.status == "staging" and v.version in (model.traffic or {})]
    if not candidates:
        raise InvalidError(f"'{model_id}' has no A/B test running (no staging version takes traffic)")
    if promote:
        if len(candidates) > 1:
            names = ", ".join(v.version for v in candidates)
            raise UsageError(f"several staging versions take traffic ({names})",
                             hint=f"promote one: modelgit promote {model_id} VERSION")
        proposal = plan_promote(snapshot, model_id, candidates[0].version, action="ab-stop")
        return Proposal(model_id, "ab-stop", candidates[0].version,
                        f"{model_id}: end A/B test, promote {candidates[0].version}",
                        proposal.base_commit, proposal.changes)

    def change(data: Any) -> None:
        yamledit.delete(data, "traffic")

    names = ", ".join(v.version for v in candidates)
    return Proposal(model_id, "ab-stop", candidates[0].version if len(candidates) == 1 else None,
                    f"{model_id}: end A/B test, abandon {names}",
                    snapshot.commit or "", _edit(snapshot, model_id, change))


@dataclass(frozen=True)
class NewVersion:
    artifact: str | None = None  # a local file path or a URI; None for a hosted version
    sha256: str | None = None  # required for URIs (modelgit cannot download here)
    provider: str | None = None  # a hosted version: provider and its model id, no file
    model_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    improvements: Sequence[str] = ()
    breaking_changes: Sequence[str] = ()
    migration_notes: str | None = None
    data_source: str | None = None
    status: str = "staging"
    weight: float | None = None
    trained: str | None = None  # YYYY-MM-DD; today when not given
    task: str | None = None  # needed only when the model is new
    description: str | None = None


def is_uri(text: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*://", text) is not None


# The schema's pattern for a provider; a provider's model id is free text in the schema, so the
# CLI takes only what providers' catalogs use (e.g. qwen/qwen-2.5-7b-instruct, openai/gpt-4o:free):
# no spaces or control characters, no '..', nothing YAML or a shell would read specially first.
PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
HOSTED_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+~/-]*$")


def check_hosted(provider: str, hosted_id: str) -> None:
    """UsageError unless ``provider`` and ``hosted_id`` name a hosted model safely."""
    if not PROVIDER.match(provider) or len(provider) > 64:
        raise UsageError(f"--provider {provider!r} is not a valid provider name",
                         hint="use lowercase letters, digits, '_', '-', '.', e.g. openrouter")
    if not HOSTED_MODEL_ID.match(hosted_id) or ".." in hosted_id or "//" in hosted_id \
            or hosted_id.endswith("/") or len(hosted_id) > 200:
        raise UsageError(f"--model-id {hosted_id!r} is not a valid hosted model id",
                         hint="use the provider's id, e.g. qwen/qwen-2.5-7b-instruct: letters, digits and "
                              "'._:@+~-', parts joined by single '/'")


def _read_local_artifact(location: str) -> tuple[bytes, dict[str, Any]]:
    from pathlib import Path

    from modelgit.artifacts import read_signature

    path = Path(location)
    if not path.exists():
        raise InvalidError(f"{location}: artifact file not found", hint="pass the path of an .onnx file")
    if not path.is_file():
        raise InvalidError(f"{location}: not a file", hint="pass the path of an .onnx file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidError(f"{location}: cannot read the artifact: {exc.strerror}") from None
    try:
        signature = read_signature(data)
    except InvalidError as exc:
        raise InvalidError(f"{location}: {exc.message}", hint="pass an ONNX model file") from None
    return data, signature


def _signature_data(signature: dict[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    out = CommentedMap()
    for part in ("inputs", "outputs"):
        out[part] = [
            yamledit.flow({"name": t["name"], "type": t["type"], "shape": yamledit.flow(t["shape"])})
            for t in signature[part]
        ]
    return out


def _training_date(text: str | None) -> _dt.date:
    if text is None:
        return _dt.date.today()
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(text)
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--trained '{text}' is not a date", hint="write it as YYYY-MM-DD, e.g. 2026-01-31") \
            from None


def plan_register(snapshot: Snapshot, model_id: str, version: str, new: NewVersion) -> Proposal:
    from ruamel.yaml.comments import CommentedMap

    check_model_id(model_id)
    check_version_id(version)
    path = model_path(model_id)
    model = snapshot.model(model_id) if model_id in snapshot.files else None
    if model is None and new.task is None:
        raise NotFoundError(f"unknown model '{model_id}'",
                         hint="to create a new model pass --task (regression, binary-classification, "
                              "multiclass or generation)")
    if model is not None and model.version(version) is not None:
        raise InvalidError(f"version id '{version}' is already used by '{model_id}'",
                           hint="a new artifact is a new version: pick a new version id")
    changes: dict[str, bytes | None] = {}
    artifact = CommentedMap()
    signature: dict[str, Any] | None = None
    hosted = new.provider is not None or new.model_id is not None
    if new.artifact is not None and hosted:
        raise UsageError("give --artifact PATH|URI or --provider/--model-id, not both",
                         hint="a version is an ONNX file, a URI, or a hosted model")
    if new.artifact is None and not hosted:
        raise UsageError("say what the version is: --artifact PATH|URI, or --provider P --model-id ID",
                         hint="a version is an ONNX file, a URI, or a hosted model")
    if new.artifact is None:
        if new.provider is None or new.model_id is None:
            raise UsageError("a hosted version needs both --provider and --model-id",
                             hint="e.g. --provider openrouter --model-id qwen/qwen-2.5-7b-instruct")
        if new.sha256 is not None:
            raise UsageError("--sha256 is for an artifact URI; a hosted version has no file to digest",
                             hint="drop --sha256")
        check_hosted(new.provider, new.model_id)
        artifact = yamledit.flow({"provider": new.provider, "model_id": new.model_id})
    elif is_uri(new.artifact):
        if not new.sha256 or not re.match(r"^[0-9a-f]{64}$", new.sha256):
            raise UsageError("an artifact URI needs --sha256 with its 64-hex-digit digest",
                             hint="modelgit records URIs without downloading them")
        artifact["uri"] = new.artifact
        artifact["sha256"] = new.sha256
    else:
        import hashlib

        data, signature = _read_local_artifact(new.artifact)
        digest = hashlib.sha256(data).hexdigest()
        if new.sha256 and new.sha256 != digest:
            raise InvalidError(f"{new.artifact}: sha256 is {digest}, not the {new.sha256} given")
        target = f"registry/artifacts/{model_id}/{version}.onnx"
        changes[target] = data
        artifact["path"] = target
        artifact["sha256"] = digest
        artifact["signature"] = _signature_data(signature)
    breaking = list(new.breaking_changes)
    active = model.active if model is not None else None
    active_signature = signature_of(active) if active is not None else None
    if active_signature is not None and signature is not None and not breaking \
            and active_signature != signature:
        raise InvalidError(
            f"'{version}' changes the inputs/outputs of active version '{active.version}'",
            hint="describe it with --breaking-change TEXT (and --migration-notes)",
        )
    entry = CommentedMap()
    entry["version"] = version
    entry["status"] = new.status
    if new.description:
        entry["description"] = new.description
    if new.weight is not None:
        entry["weight"] = new.weight
    entry["artifact"] = artifact
    if new.data_source:
        entry["data_source"] = new.data_source
    # A date object, not a string: ruamel.yaml writes it plain (trained: 2026-01-31), as people
    # write dates; the strict loader reads it back as text. A hosted model was trained by its
    # provider: no date of ours unless one is given.
    if new.trained or not hosted:
        entry["trained"] = _training_date(new.trained)
    if new.metrics:
        entry["metrics"] = yamledit.flow(dict(new.metrics))
    if new.improvements:
        entry["improvements"] = list(new.improvements)
    if breaking:
        entry["breaking_changes"] = breaking
    if new.migration_notes:
        entry["migration_notes"] = new.migration_notes

    if model is None:
        doc = CommentedMap()
        doc["name"] = model_id
        doc["task"] = new.task
        doc["versions"] = [entry]
        depth = "../" * (2 + model_id.count("/"))
        header = f"# yaml-language-server: $schema={depth}schemas/model.schema.json\n"
        changes[path] = yamledit.new_document(doc, header).encode()
    else:
        def change(data: Any) -> None:
            yamledit.append(data["versions"], entry)

        changes.update(_edit(snapshot, model_id, change))
    if new.artifact is None:
        where = f"{new.provider} {new.model_id} (hosted)"
    else:
        where = new.artifact if is_uri(new.artifact) else next(iter(changes))
    return Proposal(model_id, "register", version, f"{model_id}: register {version} ({new.status})",
                    snapshot.commit or "", changes, body=f"Artifact: {where}")


def _read_repo_file(root: str | os.PathLike[str], location: str) -> tuple[str, bytes]:
    """(repo-relative path, bytes) of a regular file inside the repository at ``root``, under
    registry/; a clear error for a file outside it, a symlink, a FIFO or a device."""
    import stat
    from pathlib import Path

    full = Path(os.path.abspath(location))
    top = Path(os.path.abspath(root))
    try:
        relative = full.relative_to(top).as_posix()
    except ValueError:
        raise InvalidError(f"{location}: outside the repository {top}",
                           hint="copy the dataset under registry/datasets/ first") from None
    if not relative.startswith("registry/"):
        raise InvalidError(f"{location}: not under registry/ (it is {relative})",
                           hint="keep evaluation datasets under registry/datasets/")
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        raise InvalidError(f"{location}: dataset file not found",
                           hint="pass the path of an .npz or .csv file") from None
    if stat.S_ISLNK(info.st_mode) or full.resolve() != top.resolve() / relative:
        raise InvalidError(f"{location}: is or goes through a symlink",
                           hint="put the file itself under registry/datasets/, not a link to it")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidError(f"{location}: not a regular file", hint="pass the path of an .npz or .csv file")
    if not relative.endswith((".npz", ".csv")):
        raise InvalidError(f"{location}: not an .npz or .csv file",
                           hint="save it with numpy.savez(file, X=features, y=labels)")
    try:
        return relative, full.read_bytes()
    except OSError as exc:
        raise InvalidError(f"{location}: cannot read it: {exc.strerror}") from None


def plan_dataset(snapshot: Snapshot, model_id: str, root: str | os.PathLike[str], location: str) -> Proposal:
    """Set ``evaluation.dataset`` of ``model_id`` to the file at ``location`` (a path on disk inside
    the repository, under registry/) with its sha256. The file's arrays are checked the way ``eval``
    reads them (``allow_pickle=False``); a file not yet at the base commit is added in the same
    commit; a committed file with other bytes is refused (a dataset is replaced under a new name,
    so that results recorded against the old digest stay true)."""
    import hashlib

    from modelgit.evaluate import load_dataset

    model = _model(snapshot, model_id)
    if model.task == "generation":
        raise InvalidError(f"'{model_id}' is a generation model; modelgit evaluates regression and "
                           "classification models only, so it has no evaluation dataset")
    path, data = _read_repo_file(root, location)
    x, _ = load_dataset(data, path, model.task)
    active = model.active
    signature = signature_of(active) if active is not None else None
    if signature is not None and signature["inputs"]:
        shape = signature["inputs"][0]["shape"]
        width = shape[1] if len(shape) == 2 else None
        if isinstance(width, int) and width != x.shape[1]:
            raise InvalidError(f"{location}: X has {x.shape[1]} columns but active version "
                               f"'{active.version}' of '{model_id}' takes {width}",  # type: ignore[union-attr]
                               hint="the dataset does not fit this model; check the file")
    digest = hashlib.sha256(data).hexdigest()
    current = model.evaluation.dataset if model.evaluation is not None else None
    if current is not None and current.path == path and current.sha256 == digest:
        raise InvalidError(f"{path} (sha256 {digest[:12]}…) is already the evaluation dataset of "
                           f"'{model_id}'; nothing to change")
    changes: dict[str, bytes | None] = {}
    committed = snapshot.entries.get(path)
    if committed is None:
        changes[path] = data
    elif committed.blob != blob_id(data):
        raise InvalidError(
            f"{path} at {(snapshot.commit or 'the base')[:12]} has other bytes than the file on disk; "
            "a committed dataset is not replaced in place",
            hint="save the new data under a new name in registry/datasets/ and attach that")

    def change(doc: Any) -> None:
        from ruamel.yaml.comments import CommentedMap

        dataset = yamledit.flow({"path": path, "sha256": digest})
        evaluation = doc.get("evaluation")
        if evaluation is None:  # where the example registry and the README put it: after task
            evaluation = CommentedMap()
            evaluation["dataset"] = dataset
            keys = list(doc)
            index = keys.index("versions") if "versions" in keys else len(keys)
            yamledit.insert(doc, index, "evaluation", evaluation)
        else:
            evaluation["dataset"] = dataset

    changes.update(_edit(snapshot, model_id, change))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.rsplit("/", 1)[-1].rsplit(".", 1)[0]).strip(".-") or "data"
    was = f" (was {current.path})" if current is not None and current.path != path else ""
    return Proposal(model_id, "dataset", None, f"{model_id}: evaluation dataset {path}{was}",
                    snapshot.commit or "", changes,
                    body=f"Dataset: {path}\nsha256: {digest}\nRows: {len(x)}, columns: {x.shape[1]}",
                    slug=f"dataset-{stem}"[:100])
