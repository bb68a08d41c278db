"""A provider's model catalog against the registry: pure functions of data, no I/O.

The catalog has the shape of OpenRouter's ``GET /api/v1/models``: ``{"data": [model, …], "links":
{"next": url-or-null}}`` where a model carries ``id`` (what requests name; may float to newer
snapshots), ``canonical_slug`` (the permanent name of one snapshot), ``name``, ``created`` (unix
seconds), ``context_length``, ``pricing`` (USD as decimal strings: ``prompt``/``completion`` per
token, ``request`` per request, …) and ``expiration_date`` (null, or the day the provider stops
serving it). A registry version pins a snapshot by its ``model_id``.

The mapping, per model with versions hosted by the catalog's provider:

* a catalog entry belongs to the model when its ``id`` or its ``canonical_slug`` is the ``model_id``
  of one of the model's versions;
* such an entry whose ``canonical_slug`` no version pins is a **new version**: a staging, hosted
  version ``{provider, model_id: canonical_slug}``, unless it was created before the snapshot the
  active version pins (then it is skipped: an older snapshot is not an upgrade);
* a pinned entry with an ``expiration_date`` is a **warning** for each version (not archived) that
  pins it.

Example::

    entries, next_url = parse_page(body, "openrouter", "https://openrouter.ai/api/v1/models")
    found, warnings, skipped = compare_catalog("openrouter", "openrouter", entries, snapshot.models)
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgit.errors import SourceError, UsageError, printable
from modelgit.sources._types import Found, Skipped, SourceWarning
from modelgit.spec import HostedArtifact, Model, Version

__all__ = ["CatalogEntry", "compare_catalog", "describe_change", "parse_page", "version_id_for"]


@dataclass(frozen=True)
class CatalogEntry:
    """One model of a catalog, with what modelgit compares. ``pricing`` values are decimal strings
    written out in full (``"0.00000004"``, never ``4E-8``)."""

    id: str
    canonical_slug: str
    created: int
    name: str = ""
    context_length: int | None = None
    pricing: Mapping[str, str] = field(default_factory=dict)
    expiration_date: str | None = None


# -- the page's shape (pydantic at the boundary; unknown keys are the provider's business) ---------------
class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    id: Annotated[str, Field(min_length=1, max_length=300)]
    canonical_slug: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    name: Annotated[str, Field(max_length=1000)] | None = None
    created: Annotated[int, Field(ge=0, le=10**11)]
    context_length: Annotated[int, Field(ge=0)] | None = None
    pricing: dict[str, str | int | float] | None = None
    expiration_date: Annotated[str, Field(max_length=100)] | None = None


class _Links(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    next: Annotated[str, Field(max_length=4096)] | None = None


class _Page(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    data: list[_Item]
    links: _Links | None = None


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")  # json accepts NaN and Infinity; a catalog has neither


def _price(value: str | int | float) -> str | None:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return format(number.normalize(), "f") if number.is_finite() else None


def parse_page(body: bytes, source: str, where: str) -> tuple[list[CatalogEntry], str | None]:
    """The entries of one catalog page and its ``links.next`` (None on the last page).
    SourceError naming ``source`` and ``where`` (the page) when it is not JSON or not a catalog."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        text = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise SourceError(source, f"{where} did not answer with JSON ({printable(text)[:200]})",
                          hint="is the location the catalog's URL (e.g. https://openrouter.ai/api/v1/models)?") \
            from None
    try:
        page = _Page.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '(top level)'}: {err['msg']}" for err in exc.errors()[:3])
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise SourceError(source, f"{where} is not a model catalog: {printable(problems)}{more}",
                          hint="a catalog is shaped like OpenRouter's GET /api/v1/models: "
                               '{"data": [{"id", "canonical_slug", "created", …}], "links": {"next": …}}') from None
    entries = []
    for index, item in enumerate(page.data):
        pricing = {}
        for key, raw in (item.pricing or {}).items():
            price = _price(raw)
            if price is None:
                raise SourceError(source, f"{where} is not a model catalog: data.{index}.pricing.{printable(key)}: "
                                          f"{printable(str(raw))[:40]!r} is not a number")
            pricing[key] = price
        entries.append(CatalogEntry(item.id, item.canonical_slug or item.id, item.created, item.name or "",
                                    item.context_length, pricing, item.expiration_date))
    return entries, page.links.next if page.links is not None else None


# -- comparing with the registry ---------------------------------------------------------------------------
_PRICE_UNITS = {"prompt": "per token", "completion": "per token", "internal_reasoning": "per token",
                "input_cache_read": "per token", "input_cache_write": "per token", "request": "per request",
                "image": "per image", "web_search": "per search"}
_PRICE_ORDER = ("prompt", "completion")


def _day(created: int) -> str:
    return _dt.datetime.fromtimestamp(created, tz=_dt.UTC).date().isoformat()


def _tokens(count: int | None) -> str:
    return "unknown" if count is None else f"{count:,}"


def version_id_for(slug: str, taken: set[str]) -> str:
    """A version id for the snapshot ``slug``: its last part (``qwen/qwen-2.5-7b-instruct-2025-11`` →
    ``qwen-2.5-7b-instruct-2025-11``), characters a version id cannot hold made '-', at most 64
    characters, and ``-2``, ``-3``… appended while it is in ``taken`` (which it joins). The same
    slug and registry give the same id on every run, so a second run finds the branch it made."""
    base = re.sub(r"[^A-Za-z0-9_.+-]+", "-", slug.rsplit("/", 1)[-1])
    base = re.sub(r"^[^A-Za-z0-9]+", "", base)[:64] or "catalog"
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate, n = base[: 64 - len(suffix)] + suffix, n + 1
    taken.add(candidate)
    return candidate


def describe_change(provider: str, entry: CatalogEntry, active: Version | None,
                    active_entry: CatalogEntry | None) -> list[str]:
    """The ``improvements`` of a new snapshot: what it is, then what changed against the active
    version's catalog entry (context length, each price that moved), one line each."""
    named = f" ({entry.name})" if entry.name else ""
    head = f"new {provider} snapshot {entry.canonical_slug}{named}, listed as {entry.id}, created {_day(entry.created)}"
    if active is None:
        return [head + "; the model has no active version to compare with"]
    pinned = active.artifact.model_id if isinstance(active.artifact, HostedArtifact) else None
    if active_entry is None:
        what = f"pins {pinned}, which the catalog does not list" if pinned else f"is not hosted by {provider}"
        return [head + f"; the active version {active.version} {what}, so there is nothing to compare with"]
    if active_entry is entry:
        return [head + f"; the active version {active.version} pins {pinned}, which now names this snapshot"]
    lines = [head + f"; compared with the active version {active.version} ({pinned})"]
    if entry.context_length != active_entry.context_length:
        lines.append(f"context length {_tokens(active_entry.context_length)} → {_tokens(entry.context_length)} tokens")
    keys = [k for k in _PRICE_ORDER if k in entry.pricing or k in active_entry.pricing]
    keys += sorted((set(entry.pricing) | set(active_entry.pricing)) - set(_PRICE_ORDER))
    for key in keys:
        old, new = active_entry.pricing.get(key), entry.pricing.get(key)
        if old != new:
            unit = _PRICE_UNITS.get(key)
            lines.append(f"{key} price {old or 'not listed'} → {new or 'not listed'} USD"
                         + (f" {unit}" if unit else ""))
    if len(lines) == 1:
        lines.append(f"same context length ({_tokens(entry.context_length)} tokens) and pricing as "
                     f"{active.version}")
    return lines


def _lookup(by_id: Mapping[str, CatalogEntry], by_slug: Mapping[str, CatalogEntry],
            model_id: str) -> CatalogEntry | None:
    return by_id.get(model_id) or by_slug.get(model_id)


def compare_catalog(
    source: str,
    provider: str,
    entries: Sequence[CatalogEntry],
    models: Mapping[str, Model | None],
    taken: dict[str, set[str]] | None = None,
) -> tuple[list[Found], list[SourceWarning], list[Skipped]]:
    """(new versions, warnings, skipped) for the catalog of ``provider`` read by ``source``.

    ``models`` maps every model id to its model, None when its file is invalid. ``taken`` holds
    the version ids already used per model (the registry's, and those other sources just chose);
    new ids are added to it. Found items carry no proposal yet."""
    from modelgit.proposals import check_hosted

    taken = taken if taken is not None else {}
    by_id: dict[str, CatalogEntry] = {}
    by_slug: dict[str, CatalogEntry] = {}
    for entry in entries:
        by_id.setdefault(entry.id, entry)
        by_slug.setdefault(entry.canonical_slug, entry)
    found: list[Found] = []
    warnings: list[SourceWarning] = []
    skipped: list[Skipped] = []
    for model_id in sorted(models):
        model = models[model_id]
        if model is None:
            skipped.append(Skipped(source, model_id, "its file is invalid (see modelgit validate)"))
            continue
        hosted = [v for v in model.versions
                  if isinstance(v.artifact, HostedArtifact) and v.artifact.provider == provider]
        if not hosted:
            skipped.append(Skipped(source, model_id, f"no version hosted by {provider}"))
            continue
        if model.retired:
            skipped.append(Skipped(source, model_id, "retired (out of service on purpose)"))
            continue
        pinned = {v.artifact.model_id for v in hosted}  # type: ignore[union-attr]
        matched: dict[str, CatalogEntry] = {}  # canonical slug → entry, catalog order
        for entry in entries:
            if (entry.id in pinned or entry.canonical_slug in pinned) and entry.canonical_slug not in matched:
                matched[entry.canonical_slug] = entry
        if not matched:
            skipped.append(Skipped(source, model_id, f"none of its {provider} model ids "
                                                     f"({', '.join(sorted(pinned))}) is in the catalog"))
            continue
        for version in hosted:
            pin = version.artifact.model_id  # type: ignore[union-attr]
            entry = _lookup(by_id, by_slug, pin)
            if entry is not None and entry.expiration_date and version.status != "archived":
                warnings.append(SourceWarning(
                    source, model_id, version.version,
                    f"{pin} expires on {entry.expiration_date} by the {provider} catalog "
                    f"({version.status} version {version.version})", entry.expiration_date))
        active = model.active
        active_entry = None
        if active is not None and isinstance(active.artifact, HostedArtifact) \
                and active.artifact.provider == provider:
            active_entry = _lookup(by_id, by_slug, active.artifact.model_id)
        ids = taken.setdefault(model_id, {v.version for v in model.versions})
        fresh = sorted((e for slug, e in matched.items() if slug not in pinned),
                       key=lambda e: (e.created, e.canonical_slug))
        for entry in fresh:
            slug = entry.canonical_slug
            if active_entry is not None and entry is not active_entry and entry.created < active_entry.created:
                skipped.append(Skipped(
                    source, model_id, f"{slug} (created {_day(entry.created)}) is older than "
                                      f"{active_entry.canonical_slug} of the active version "
                                      f"{active.version} (created "  # type: ignore[union-attr]
                                      f"{_day(active_entry.created)}): not an upgrade", item=slug))
                continue
            try:
                check_hosted(provider, slug)
            except UsageError:
                skipped.append(Skipped(source, model_id, f"{printable(slug)!r} is not a model id modelgit can pin",
                                       item=slug))
                continue
            version_id = version_id_for(slug, ids)
            found.append(Found(source, "provider-catalog", model_id, version_id,
                               {"provider": provider, "model_id": slug},
                               tuple(describe_change(provider, entry, active, active_entry)), origin=slug))
    return found, warnings, skipped
