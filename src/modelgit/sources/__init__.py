"""Where new versions come from: the ``sources`` of ``registry/modelgit.yaml``.

Two kinds, each read by a thin shell around a pure comparison:

* ``provider-catalog`` — an HTTP endpoint shaped like OpenRouter's ``GET /api/v1/models``
  (:mod:`modelgit.sources.catalog` says how its entries map to versions);
* ``artifact-folder`` — a folder (path, ``file://`` or fsspec URL) of ONNX files
  (:mod:`modelgit.sources.folder` says how a file names its model and version).

Every new version becomes a ``register`` proposal (status staging) made by the same code as
``modelgit register``; nothing is committed here (``check-upgrades --propose`` applies them). A
source that fails is reported in ``skipped`` with its error and the others still run.

Example::

    from modelgit.sources import check_sources
    report = check_sources(snapshot, repo.root)
    for new in report.found:
        print(new.model, new.version, new.improvements)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelgit.errors import ModelgitError, SourceError, printable
from modelgit.sources._types import Found, Limits, Report, Skipped, SourceWarning

__all__ = ["Found", "Limits", "Report", "Skipped", "SourceWarning", "check_sources"]


def check_sources(snapshot: Any, root: Path | None, *, env: Mapping[str, str] | None = None,
                  limits: Limits | None = None, transport: Any = None) -> Report:
    """Read every source of ``snapshot``'s settings and compare it with the registry.

    ``root``: the working tree relative folder locations start at; ``env``: where ``token_env``
    is looked up (default ``os.environ``); ``limits``: bounds on what a source may send;
    ``transport``: an httpx transport for the catalogs (tests, proxies)."""
    env = os.environ if env is None else env
    limits = limits or Limits()
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    if snapshot.settings is not None and settings is None:
        return Report(skipped=(Skipped("*", None, "registry/modelgit.yaml is invalid, so no source was read "
                                                  "(see modelgit validate)"),))
    sources = list(settings.sources or []) if settings is not None else []
    models = {model_id: parsed.spec for model_id, parsed in snapshot.files.items()}
    taken: dict[str, set[str]] = {}
    found: list[Found] = []
    warnings: list[SourceWarning] = []
    skipped: list[Skipped] = []
    for source in sources:
        if source.kind in ("folder", "url"):
            warnings.append(SourceWarning(source.name, None, None, f"kind '{source.kind}' is an older name of "
                                                                   "artifact-folder; write kind: artifact-folder"))
        try:
            if source.kind == "provider-catalog":
                result = _read_catalog(snapshot, source, models, taken, env, limits, transport)
            else:
                result = _read_folder(snapshot, source, root, models, taken, limits)
        except ModelgitError as exc:
            reason = exc.message
            if isinstance(exc, SourceError) and reason.startswith(f"source '{source.name}': "):
                reason = reason[len(f"source '{source.name}': "):]
            skipped.append(Skipped(source.name, None, reason + (f" (hint: {exc.hint})" if exc.hint else "")))
            continue
        found.extend(result[0])
        warnings.extend(result[1])
        skipped.extend(result[2])
    return Report(tuple(found), tuple(warnings), tuple(skipped))


def _with_source(proposal: Any, found: Found) -> Any:
    """The register proposal, its commit message saying which source found it and why."""
    lines = [proposal.body, f"Found by modelgit check-upgrades in source '{printable(found.source)}' "
                            f"({found.kind}): {printable(found.origin)}"]
    if found.improvements:
        lines.append("\n".join(f"- {printable(line)}" for line in found.improvements))
    return dataclasses.replace(proposal, body="\n\n".join(lines),
                               extra_trailers={**proposal.extra_trailers, "Modelgit-Source": printable(found.source)})


def _read_catalog(snapshot: Any, source: Any, models: Mapping[str, Any], taken: dict[str, set[str]],
                  env: Mapping[str, str], limits: Limits, transport: Any
                  ) -> tuple[list[Found], list[SourceWarning], list[Skipped]]:
    from modelgit.proposals import NewVersion, plan_register
    from modelgit.sources._http import fetch_catalog
    from modelgit.sources.catalog import compare_catalog

    entries = fetch_catalog(source.name, source.location, token_env=source.token_env, env=env, limits=limits,
                            transport=transport)
    found, warnings, skipped = compare_catalog(source.name, source.provider, entries, models, taken)
    planned = []
    for item in found:
        try:
            proposal = plan_register(snapshot, item.model, item.version, NewVersion(
                provider=source.provider, model_id=item.artifact["model_id"], improvements=item.improvements))
        except ModelgitError as exc:
            skipped.append(Skipped(source.name, item.model, f"cannot propose {item.version}: {exc.message}",
                                   item=item.origin))
            continue
        planned.append(dataclasses.replace(item, proposal=_with_source(proposal, item)))
    return planned, warnings, skipped


def _read_folder(snapshot: Any, source: Any, root: Path | None, models: Mapping[str, Any],
                 taken: dict[str, set[str]], limits: Limits) -> tuple[list[Found], list[SourceWarning], list[Skipped]]:
    from modelgit.artifacts import read_signature
    from modelgit.proposals import NewVersion, plan_register
    from modelgit.sources.folder import assign, list_folder

    files, skipped = list_folder(source.name, source.location, root, source.pattern, limits)
    assigned, more = assign(source.name, source.model, files, models, taken)
    skipped.extend(more)
    if not assigned:
        return [], [], skipped
    from modelgit import sessions

    sessions.probe_cached([item.data for item, _, _ in assigned])  # one child process for every new file
    found: list[Found] = []
    with tempfile.TemporaryDirectory(prefix="modelgit-source-") as scratch:
        for index, (item, model_id, version) in enumerate(assigned):
            # register reads a file by path: it gets a private copy of the bytes read (and
            # digested) here, so what is committed is what was checked, whatever the folder does.
            copy = Path(scratch) / f"{index}.onnx"
            copy.write_bytes(item.data)
            try:
                signature = read_signature(item.data)
                proposal = plan_register(snapshot, model_id, version, NewVersion(
                    artifact=str(copy), sha256=item.sha256,
                    description=f"found in source '{source.name}': {item.path}"))
            except ModelgitError as exc:
                skipped.append(Skipped(source.name, model_id, f"cannot propose {version}: {exc.message}",
                                       item=item.path))
                continue
            target = next(p for p in proposal.changes if p.endswith(".onnx"))
            new = Found(source.name, "artifact-folder", model_id, version,
                        {"path": target, "sha256": item.sha256, "signature": signature}, origin=item.path)
            found.append(dataclasses.replace(new, proposal=_with_source(proposal, new)))
    return found, [], skipped
