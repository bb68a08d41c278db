"""One loading pipeline for every command, the runtime and the API:

    bytes at a ref → strict YAML → pydantic (jsonschema for messages) → per-file rules

A :class:`Snapshot` is the parsed registry at one commit (or the working tree with
``worktree=True``). A :class:`Loader` keeps parsed files keyed by (path, blob id), so loading a new
commit re-parses only the files whose content changed.
"""

from __future__ import annotations

import difflib
import gc
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelgit import rules, yamlio
from modelgit.errors import Finding, UsageError
from modelgit.gitstore import Entry, GitRepo, blob_id
from modelgit.spec import Model, Settings, schema_validator

REGISTRY_DIR = "registry"
SETTINGS_PATH = f"{REGISTRY_DIR}/modelgit.yaml"
MODELS_DIR = f"{REGISTRY_DIR}/models/"
MODEL_SUFFIX = ".yaml"


def model_path(model_id: str) -> str:
    return f"{MODELS_DIR}{model_id}{MODEL_SUFFIX}"


def model_id_of(path: str) -> str | None:
    """The model id of a path under ``registry/models/``, or None for any other file."""
    if path.startswith(MODELS_DIR) and path.endswith(MODEL_SUFFIX):
        return path[len(MODELS_DIR) : -len(MODEL_SUFFIX)]
    return None


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A registry file read and checked on its own: the typed model (None when invalid), the
    plain data it came from and every finding about it."""

    path: str
    blob: str
    data: Any
    spec: Any  # Model | Settings | None
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Snapshot:
    """The registry at one commit: parsed settings and models plus the file listing."""

    commit: str | None  # None for the working tree
    entries: Mapping[str, Entry]
    settings: ParsedFile | None
    files: Mapping[str, ParsedFile]  # model id → parsed file
    source: Any = field(repr=False, compare=False)

    @property
    def models(self) -> dict[str, Model]:
        """Valid models by id (files with findings are left out)."""
        return {mid: f.spec for mid, f in self.files.items() if f.spec is not None}

    def findings(self) -> list[Finding]:
        found: list[Finding] = []
        if self.settings is None:
            found.append(
                Finding(SETTINGS_PATH, None, None, "REG001", "registry settings file is missing",
                        "create it with 'modelgit init', or add 'schema_version: 1' to it")
            )
        else:
            found.extend(self.settings.findings)
        for parsed in self.files.values():
            found.extend(parsed.findings)
        found.extend(self.stray_findings)
        return found

    @property
    def stray_findings(self) -> list[Finding]:
        found = []
        for path in self.entries:
            if path.startswith(MODELS_DIR) and path.endswith(".yml"):
                found.append(Finding(path, None, None, "REG002",
                                     "model files must end in .yaml; this one is ignored",
                                     f"rename it: git mv {path} {path[:-4]}.yaml"))
        return found

    def model(self, model_id: str) -> Model:
        """The valid model with this id; a UsageError (with close ids) if unknown or invalid."""
        parsed = self.files.get(model_id)
        if parsed is None:
            close = difflib.get_close_matches(model_id, list(self.files), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see 'modelgit show'"
            where = self.commit[:12] if self.commit else "the working tree"
            raise UsageError(f"unknown model '{model_id}' at {where}", hint=hint)
        if parsed.spec is None:
            from modelgit.errors import InvalidError

            raise InvalidError(
                f"model '{model_id}' is invalid at "
                f"{self.commit[:12] if self.commit else 'the working tree'}",
                findings=parsed.findings,
                hint="fix the findings, see 'modelgit validate'",
            )
        return parsed.spec

    def read(self, path: str) -> bytes:
        """Bytes of a file of this snapshot (following nothing: symlinks give their target text)."""
        return self.source.read(path, self.entries[path])


class _GitSource:
    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo

    def read_many(self, items: Iterable[tuple[str, Entry]]) -> dict[str, bytes]:
        return self.repo.read_blobs(entry.blob for _, entry in items)

    def read(self, path: str, entry: Entry) -> bytes:
        return self.repo.read_blob(entry.blob)


class _WorktreeSource:
    """Files as they are on disk, with git-compatible blob ids so caches work the same."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._bytes: dict[str, bytes] = {}

    def entries(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        base = self.root / REGISTRY_DIR
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                if full.is_symlink():
                    data = os.readlink(full).encode()
                    mode = "120000"
                else:
                    data = full.read_bytes()
                    mode = "100755" if os.access(full, os.X_OK) else "100644"
                blob = blob_id(data)
                self._bytes[blob] = data
                entries[rel] = Entry(mode, blob)
        return entries

    def read_many(self, items: Iterable[tuple[str, Entry]]) -> dict[str, bytes]:
        return {entry.blob: self._bytes[entry.blob] for _, entry in items}

    def read(self, path: str, entry: Entry) -> bytes:
        return self._bytes[entry.blob]


class Loader:
    """Loads snapshots of one repository, reusing files parsed before (keyed by path + blob)."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self._parsed: dict[tuple[str, str], ParsedFile] = {}

    def load(self, ref: str | None = "HEAD", *, worktree: bool = False) -> Snapshot:
        if worktree:
            source: Any = _WorktreeSource(self.repo.root)
            entries = source.entries()
            commit = None
        else:
            source = _GitSource(self.repo)
            commit = self.repo.resolve(ref or "HEAD")
            entries = self.repo.tree(commit, REGISTRY_DIR)
        return self._build(commit, entries, source)

    def _build(self, commit: str | None, entries: dict[str, Entry], source: Any) -> Snapshot:
        wanted = [
            (path, entry)
            for path, entry in entries.items()
            if (path == SETTINGS_PATH or model_id_of(path) is not None)
            and (path, entry.blob) not in self._parsed
        ]
        # The bulk load allocates many small objects that all live on; the cyclic GC would walk
        # them again and again for nothing (measured: 20-30 % of a cold load).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            contents = source.read_many(wanted)
            for path, entry in wanted:
                data = contents[entry.blob]
                if entry.mode == "120000":
                    parsed = ParsedFile(path, entry.blob, None, None, (Finding(
                        path, None, None, "REG003", "registry files must not be symlinks",
                        "replace the link by the file itself"),))
                elif path == SETTINGS_PATH:
                    parsed = parse_settings(data, path, entry.blob)
                else:
                    parsed = parse_model(data, path, entry.blob)
                self._parsed[(path, entry.blob)] = parsed
        finally:
            if was_enabled:
                gc.enable()
        settings = None
        files: dict[str, ParsedFile] = {}
        for path, entry in entries.items():
            if path == SETTINGS_PATH:
                settings = self._parsed[(path, entry.blob)]
                continue
            model_id = model_id_of(path)
            if model_id is not None:
                files[model_id] = self._parsed[(path, entry.blob)]
        return Snapshot(commit, entries, settings, dict(sorted(files.items())), source)

    def forget_except(self, keep: Iterable[Snapshot]) -> None:
        """Drop parsed files that none of ``keep`` uses (bounds memory in long-lived runtimes)."""
        live = {
            (f.path, f.blob) for snap in keep for f in [*snap.files.values(), snap.settings] if f
        }
        self._parsed = {k: v for k, v in self._parsed.items() if k in live}


def parse_settings(data: bytes, path: str, blob: str = "") -> ParsedFile:
    value, findings = yamlio.load(data, path)
    if findings:
        return ParsedFile(path, blob, None, None, tuple(findings))
    spec, findings = _typed(value, data, path, Settings, "settings")
    return ParsedFile(path, blob, value, spec, tuple(findings))


def parse_model(data: bytes, path: str, blob: str = "") -> ParsedFile:
    """Read one model file through the whole per-file pipeline."""
    value, findings = yamlio.load(data, path)
    if findings:
        return ParsedFile(path, blob, None, None, tuple(findings))
    findings = _version_id_findings(value, data, path)
    if findings:
        return ParsedFile(path, blob, None, None, tuple(findings))
    spec, findings = _typed(value, data, path, Model, "model")
    if spec is not None:
        model_id = model_id_of(path) or spec.name
        findings = [
            Finding(path, *_line_col(data, jpath), code, message, hint)
            for jpath, code, message, hint in rules.model_rules(spec, model_id)
        ]
        if findings:
            spec = None
    return ParsedFile(path, blob, value, spec, tuple(findings))


def _line_col(data: bytes, jpath: tuple[str | int, ...]) -> tuple[int, int]:
    line, col, _ = yamlio.locate(data, jpath)
    return line, col


def _version_id_findings(value: Any, data: bytes, path: str) -> list[Finding]:
    """Version ids must be strings: refuse `version: 1.10` (YAML 1.1 reads the float 1.1) before
    the schema sees it, with the exact fix."""
    findings: list[Finding] = []
    versions = value.get("versions") if isinstance(value, dict) else None
    if not isinstance(versions, list):
        return findings
    for index, item in enumerate(versions):
        if isinstance(item, dict) and "version" in item and not isinstance(item["version"], str):
            line, col, text = yamlio.locate(data, ("versions", index, "version"))
            shown = text if text is not None else repr(item["version"])
            findings.append(Finding(
                path, line, col, "YAML020",
                f"version id {shown} is read as {yamlio._kind(item['version'])}, not a string",
                yamlio._quote_hint(shown) if text is not None else "version ids are strings",
            ))
    return findings


def _typed(value: Any, data: bytes, path: str, cls: Any, schema_name: str) -> tuple[Any, list[Finding]]:
    if not isinstance(value, dict):
        line = 1
        return None, [Finding(path, line, 1, "SCHEMA001",
                              f"the file must hold a mapping, not {yamlio._kind(value)}",
                              "see the schema: modelgit/schemas/" + schema_name + ".schema.json")]
    try:
        return cls.model_validate(value), []
    except ValidationError as exc:
        findings = schema_findings(value, data, path, schema_name)
        if not findings:  # the two disagree: never hide pydantic's words
            findings = [
                Finding(path, *_line_col(data, tuple(err["loc"])), "SCHEMA100",
                        f"{'.'.join(map(str, err['loc']))}: {err['msg']}")
                for err in exc.errors()
            ]
        return None, findings


def schema_findings(value: Any, data: bytes, path: str, schema_name: str) -> list[Finding]:
    """JSON Schema errors as findings: one per problem, at its line, with a fix where we know it."""
    validator = schema_validator(schema_name)
    findings = []
    seen = set()
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path))):
        for leaf in _leaves(error):
            jpath = tuple(leaf.absolute_path)
            line, col, plain = yamlio.locate(data, jpath)
            code, message, hint = _describe(leaf, plain)
            key = (line, col, message)
            if key not in seen:
                seen.add(key)
                findings.append(Finding(path, line, col, code, message, hint))
    return findings


def _leaves(error: Any) -> list[Any]:
    """For a oneOf over artifact kinds, report the branch the user meant (by its required key)."""
    if error.validator == "oneOf" and isinstance(error.instance, dict) and error.context:
        for branch, key in enumerate(("path", "uri", "provider")):
            if key in error.instance:
                chosen = [e for e in error.context if e.relative_schema_path[0] == branch]
                if chosen:
                    return [leaf for e in chosen for leaf in _leaves(e)]
    return [error]


def _describe(error: Any, plain: str | None) -> tuple[str, str, str]:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    kind = error.validator
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        messages = []
        hints = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=1)
            messages.append(f"'{key}'")
            hints.append(f"did you mean '{close[0]}'?" if close else
                         f"allowed keys: {', '.join(allowed)}")
        return ("SCHEMA002", f"{where}: unknown key {', '.join(messages)}", "; ".join(hints))
    if kind == "type" and plain is not None and "string" in str(error.validator_value):
        return ("SCHEMA003",
                f"{where}: {plain} is read as {yamlio._kind(error.instance)}, not a string",
                yamlio._quote_hint(plain))
    if kind == "required":
        return ("SCHEMA004", f"{where}: {error.message}", "add the missing key")
    if kind == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        close = difflib.get_close_matches(str(error.instance), list(map(str, error.validator_value)), 1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of: {allowed}"
        return ("SCHEMA005", f"{where}: {error.instance!r} is not one of {allowed}", hint)
    if kind == "pattern" and error.validator_value == "^[0-9a-f]{64}$":
        return ("SCHEMA006", f"{where}: {error.instance!r} is not a sha256 (64 lowercase hex digits)",
                "compute it with 'sha256sum FILE' or let 'modelgit register' fill it")
    return ("SCHEMA010", f"{where}: {error.message}", "see the schema for this key")
