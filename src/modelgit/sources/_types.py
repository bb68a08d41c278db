"""What reading the sources found: new versions, warnings, and everything skipped with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Found:
    """A new version a source offers: ``model`` gets ``version`` with ``artifact`` (a hosted
    ``{provider, model_id}`` or a file's ``{path, sha256, signature}``). ``proposal`` is the
    register proposal that adds it (None when planning it failed; see ``Report.skipped``)."""

    source: str
    kind: str
    model: str
    version: str
    artifact: dict[str, Any]
    improvements: tuple[str, ...] = ()
    origin: str = ""  # what the source called it: a catalog's canonical slug, a file's path in the folder
    proposal: Any = field(default=None, compare=False, repr=False)  # proposals.Proposal

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "model": self.model, "version": self.version,
                "origin": self.origin, "artifact": self.artifact, "improvements": list(self.improvements)}


@dataclass(frozen=True)
class SourceWarning:
    """Something a person should act on that is not a new version: a pinned version the catalog
    says will expire, a source written with an old kind name."""

    source: str
    model: str | None
    version: str | None
    message: str
    expiration_date: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "model": self.model, "version": self.version,
                               "message": self.message}
        if self.expiration_date is not None:
            out["expiration_date"] = self.expiration_date
        return out


@dataclass(frozen=True)
class Skipped:
    """What a source did not look at or did not propose, and why. ``model`` is None when the whole
    source was skipped (it failed: ``reason`` is the error); ``item`` names a catalog slug or a
    file in the folder when the skip is about one of them."""

    source: str
    model: str | None
    reason: str
    item: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "model": self.model, "item": self.item, "reason": self.reason}


@dataclass(frozen=True)
class Report:
    """All sources' findings, in the order the sources are listed in ``modelgit.yaml``."""

    found: tuple[Found, ...] = ()
    warnings: tuple[SourceWarning, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The ``sources`` object of ``check-upgrades --json``."""
        return {"found": [f.as_dict() for f in self.found], "warnings": [w.as_dict() for w in self.warnings],
                "skipped": [s.as_dict() for s in self.skipped]}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one source may make modelgit read, and for how long."""

    timeout: float = 10.0  # seconds per connect / read / write
    deadline: float = 60.0  # seconds for the whole catalog, every page and redirect
    max_page_bytes: int = 16 * 1024 * 1024
    max_pages: int = 20
    max_redirects: int = 3
    max_file_bytes: int = 100 * 1024 * 1024  # an artifact-folder file (GitHub refuses files over 100 MB)
    max_files: int = 10_000  # entries listed in an artifact folder
