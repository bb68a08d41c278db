"""One loading pipeline for every command, the runtime and the API:

    bytes at a ref → strict YAML → pydantic (jsonschema for messages) → per-file rules

A :class:`Snapshot` is the parsed registry at one commit (or the working tree with
``worktree=True``). A :class:`Loader` keeps parsed files keyed by (path, blob id), so loading a new
commit re-parses only the files whose content changed.
"""

from __future__ import annotations

import difflib
import gc
import marshal
import os
import re
import stat
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelgit import _parsework, _process, rules
from modelgit.errors import Finding, GitError, NotFoundError
from modelgit.gitstore import SYMLINK_MODE, Entry, GitRepo, blob_id
from modelgit.parsecache import ParseCache, is_stored_value, read_value

# The pydantic models (modelgit.spec) are imported where a typed model is built or looked at, not
# here: importing them costs 0.1-0.2 s, and a warm load from the parse cache (show's table, the
# runtime's open, validate) needs none.
if TYPE_CHECKING:
    from modelgit.spec import Model


class _LazyYamlio:
    """``modelgit.yamlio``, imported on first use: it imports PyYAML (10-20 ms), which only parsing
    a file and locating a finding need, not a warm load from the parse cache. The first use puts
    the module itself in this one's namespace, so later uses are direct."""

    def __getattr__(self, name: str) -> Any:
        from modelgit import yamlio as module

        globals()["yamlio"] = module
        return getattr(module, name)


yamlio: Any = _LazyYamlio()

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


FileRef = tuple[str, tuple[Any, ...], str, str, Any]
# What a summary row of `show` lists of a valid model (model_row): task, owner, description, active
# version id, traffic split as (version id, percent) pairs, and (status, number of versions) pairs
# in release order.
ModelRow = tuple[str, str | None, str | None, str | None, tuple[tuple[str, float], ...], tuple[tuple[str, int], ...]]


class ParsedFile:
    """A registry file read and checked on its own: every finding about it and, when the schema
    accepted it, its typed model (``typed``; also ``spec`` when no rule refused it, else ``spec``
    is None so that only valid models are served, while the base-ref rules can still say what a
    change may not do). The plain data is not kept: it doubled memory for nothing.

    A file that comes from the parse cache (:mod:`modelgit.parsecache`) builds its typed model on
    first use, from the stored value the schema accepted: 10,000 pydantic models cost 1.5 s to
    build and most commands look at a few. What validation and ``show`` need of every file
    (findings, number of versions, the repository files it refers to, a valid model's summary
    row) is plain data in the cache's index, there from the start.
    """

    __slots__ = ("_refs", "_row", "_stored", "_typed", "_versions", "blob", "findings", "path", "valid")

    def __init__(self, path: str, blob: str, spec: Any, findings: Iterable[Finding], typed: Any = None) -> None:
        self.path = path
        self.blob = blob
        self.findings: tuple[Finding, ...] = tuple(findings)
        self.valid = spec is not None  # the file is a valid model (or settings): spec is typed
        self._typed = typed if typed is not None else spec
        # The value the schema accepted (marshal + zlib), or where to read it in a parse cache pack.
        self._stored: bytes | tuple[Any, int, int] | None = None
        self._versions: int | None = None
        self._refs: tuple[FileRef, ...] | None = None
        self._row: ModelRow | None = None

    @property
    def spec(self) -> Any:
        """The typed model (Model or Settings) when the file is valid, else None."""
        return self.typed if self.valid else None

    @property
    def typed(self) -> Any:
        """The typed model whenever the schema accepted the file (even if a rule refused it)."""
        if self._typed is None and self._stored is not None:
            self._typed = _materialize(self)
        return self._typed

    def plain(self) -> dict[str, Any] | None:
        """The value the schema accepted, as plain data read back from the parse cache without
        building the typed model (what the runtime serves a model from); None when this process
        parsed the file (use ``typed``) or the schema refused it."""
        stored = self._stored
        if stored is None or self._typed is not None:
            return None
        data = _read_stored(self)
        return data if type(data) is dict else None

    def row(self) -> ModelRow | None:
        """What a summary row of ``show`` lists of a valid model (:func:`model_row`), None for any
        other file. A file from the parse cache has it in the cache's index: a table of 10,000
        models then neither builds a typed model nor reads and decompresses a stored value
        (0.4 s of marshal and zlib)."""
        if self._row is None and self.valid and self.path != SETTINGS_PATH:
            self._row = model_row(self.typed)
        return self._row

    def active_version(self) -> str | None:
        """The id of a valid model's active version (from :meth:`row`: no typed model built)."""
        row = self.row()
        return row[3] if row is not None else None

    @property
    def schema_ok(self) -> bool:
        """Whether the schema accepted the file (so ``typed`` is a model), without building it."""
        return self._typed is not None or self._stored is not None

    @property
    def versions(self) -> int:
        """The number of versions of a typed model file (0 for anything else)."""
        if self._versions is None:
            typed = self._typed
            self._versions = len(typed.versions) if typed is not None and _is_model(typed) else 0
        return self._versions

    @property
    def refs(self) -> tuple[FileRef, ...]:
        """The repository files a typed model relies on (:func:`file_refs`)."""
        if self._refs is None:
            typed = self._typed
            self._refs = file_refs(typed) if typed is not None and _is_model(typed) else ()
        return self._refs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedFile):
            return NotImplemented
        return (self.path, self.blob, self.findings, self.valid, self.typed) == \
            (other.path, other.blob, other.findings, other.valid, other.typed)

    def __hash__(self) -> int:
        return hash((self.path, self.blob))

    def __repr__(self) -> str:
        return f"ParsedFile(path={self.path!r}, blob={self.blob!r}, valid={self.valid}, findings={self.findings!r})"


def _is_model(typed: Any) -> bool:
    from modelgit.spec import Model  # imported already: ``typed`` is a pydantic model

    return isinstance(typed, Model)


def model_row(model: Model) -> ModelRow:
    """The summary row of a typed model (see :data:`ModelRow`); the traffic as ``Model.split()``
    says it (100 % to the active version when the file sets none)."""
    active = model.active
    statuses: dict[str, int] = {}
    for version in model.versions:
        statuses[version.status] = statuses.get(version.status, 0) + 1
    return (model.task, model.owner, model.description, active.version if active is not None else None,
            tuple(model.split().items()), tuple(statuses.items()))


def file_refs(model: Model) -> tuple[FileRef, ...]:
    """(path, json path, sha256, kind, recorded signature as plain data or None) of every
    repository file ``model`` relies on: the artifact of each version that is not archived (kind
    ``artifact``) and its evaluation dataset (``dataset``)."""
    from modelgit.spec import FileArtifact

    refs: list[FileRef] = []
    for index, version in enumerate(model.versions):
        artifact = version.artifact
        if version.status == "archived" or not isinstance(artifact, FileArtifact):
            continue
        signature = artifact.signature.model_dump() if artifact.signature is not None else None
        refs.append((artifact.path, ("versions", index, "artifact"), artifact.sha256, "artifact", signature))
    if model.evaluation is not None:
        dataset = model.evaluation.dataset
        refs.append((dataset.path, ("evaluation", "dataset"), dataset.sha256, "dataset", None))
    return tuple(refs)


def _record(parsed: ParsedFile, value: Any) -> tuple[Any, ...] | None:
    """What the parse cache keeps of a parsed file (plain data, see :func:`_from_record`); None
    when it cannot be kept."""
    if any(f.path != parsed.path for f in parsed.findings):
        return None
    stored = None
    if parsed.schema_ok:
        try:
            stored = zlib.compress(marshal.dumps(value), 1)
        except ValueError:  # not plain data: never the case for a value the schema accepted
            return None
    findings = tuple((f.line, f.col, f.code, f.message, f.hint) for f in parsed.findings)
    return (parsed.valid, findings, parsed.versions, parsed.refs, parsed.row(), stored)


def _from_record(path: str, blob: str, record: Any) -> ParsedFile | None:
    """The parsed file a cache record stands for; None when the record is not sound."""
    if not (type(record) is tuple and len(record) == 6):
        return None
    valid, findings, versions, refs, row, stored = record
    if not (type(valid) is bool and type(findings) is tuple and type(versions) is int and type(refs) is tuple
            and (type(stored) is bytes or is_stored_value(stored) or (stored is None and not valid))):
        return None
    if (row is not None) != (valid and path != SETTINGS_PATH) or (row is not None and not _sound_row(row)):
        return None
    for found in findings:
        if not (type(found) is tuple and len(found) == 5 and _optional_int(found[0])
                and _optional_int(found[1]) and all(type(text) is str for text in found[2:])):
            return None
    for ref in refs:
        if not (type(ref) is tuple and len(ref) == 5 and type(ref[0]) is str and type(ref[1]) is tuple
                and type(ref[2]) is str and ref[3] in ("artifact", "dataset")
                and (ref[4] is None or type(ref[4]) is dict)):
            return None
    # Made without __init__: this runs once per file of a registry on every warm load.
    parsed = ParsedFile.__new__(ParsedFile)
    parsed.path = path
    parsed.blob = blob
    parsed.findings = tuple([Finding(path, *found) for found in findings]) if findings else ()
    parsed.valid = valid
    parsed._typed = None
    parsed._stored = stored
    parsed._versions = versions
    parsed._refs = refs
    parsed._row = row
    return parsed


def _optional_int(value: Any) -> bool:
    return value is None or type(value) is int


def _sound_row(row: Any) -> bool:
    """Whether a cache record's row has the shape of :data:`ModelRow` (plain loops: it runs for
    every model of a warm load)."""
    if not (type(row) is tuple and len(row) == 6 and type(row[0]) is str
            and (row[1] is None or type(row[1]) is str) and (row[2] is None or type(row[2]) is str)
            and (row[3] is None or type(row[3]) is str) and type(row[4]) is tuple and type(row[5]) is tuple):
        return False
    for pair in row[4]:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not float:
            return False
    for pair in row[5]:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not int:
            return False
    return True


def _read_stored(parsed: ParsedFile) -> Any:
    """The plain value a parse cache record holds for ``parsed``."""
    stored = parsed._stored
    try:
        data = read_value(stored) if type(stored) is tuple else stored
        assert data is not None
        return marshal.loads(zlib.decompress(data))
    except Exception as exc:  # a pack changed on disk after it was checked, by someone else
        from modelgit.errors import ModelgitError

        raise ModelgitError(f"{parsed.path}: the parse cache holds a damaged record for it ({exc})",
                            hint="remove .git/modelgit/parsed and run again") from None


def _materialize(parsed: ParsedFile) -> Any:
    """The typed model of a file from the parse cache: pydantic on the value it accepted before."""
    from modelgit.spec import Model, Settings

    cls = Settings if parsed.path == SETTINGS_PATH else Model
    data = _read_stored(parsed)
    try:
        return cls.model_validate(data)
    except Exception as exc:  # a pack changed on disk after it was checked, by someone else
        from modelgit.errors import ModelgitError

        raise ModelgitError(f"{parsed.path}: the parse cache holds a damaged record for it ({exc})",
                            hint="remove .git/modelgit/parsed and run again") from None


@dataclass(frozen=True, slots=True)
class Summary:
    """What a snapshot's files add up to, kept up to date by :meth:`Loader.load` when it makes a
    snapshot from another, so that its cost follows the change: the model ids whose file has
    findings, the stray ``.yml`` files under ``registry/models/`` (sorted) and the number of
    versions of the valid models."""

    flagged: frozenset[str]
    strays: tuple[str, ...]
    versions: int

    @classmethod
    def of(cls, entries: Mapping[str, Entry], files: Mapping[str, ParsedFile]) -> Summary:
        return cls(frozenset(model_id for model_id, parsed in files.items() if parsed.findings),
                   tuple(sorted(path for path in entries if _is_stray(path))),
                   sum(parsed.versions for parsed in files.values() if parsed.valid))

    def updated(self, base_files: Mapping[str, ParsedFile], entries: Mapping[str, Entry],
                files: Mapping[str, ParsedFile], changed: Iterable[str]) -> Summary:
        """This summary of ``base_files`` after the ``changed`` registry paths."""
        flagged, strays, versions = set(self.flagged), set(self.strays), self.versions
        for path in changed:
            if _is_stray(path):
                if path in entries:
                    strays.add(path)
                else:
                    strays.discard(path)
            model_id = model_id_of(path)
            if model_id is None:
                continue
            old, new = base_files.get(model_id), files.get(model_id)
            versions += (new.versions if new is not None and new.valid else 0) - \
                (old.versions if old is not None and old.valid else 0)
            if new is not None and new.findings:
                flagged.add(model_id)
            else:
                flagged.discard(model_id)
        return Summary(frozenset(flagged), tuple(sorted(strays)), versions)


def _is_stray(path: str) -> bool:
    return path.endswith(".yml") and path.startswith(MODELS_DIR)


@dataclass(frozen=True)
class Snapshot:
    """The registry at one commit: parsed settings and models plus the file listing."""

    commit: str | None  # None for the working tree
    entries: Mapping[str, Entry]
    settings: ParsedFile | None
    files: Mapping[str, ParsedFile]  # model id → parsed file
    source: Any = field(repr=False, compare=False)
    # When made from an earlier snapshot (Loader.load): that one's commit and every path of the
    # repository (not only the registry) that differs between the two commits.
    since: tuple[str, frozenset[str]] | None = field(default=None, repr=False, compare=False)
    # Whether it holds every registry file at its commit: not a partial load nor an overlay.
    complete: bool = field(default=False, repr=False, compare=False)
    summary_: Summary | None = field(default=None, repr=False, compare=False)

    def summary(self) -> Summary:
        """What the files add up to (computed once; carried along by Loader.load)."""
        if self.summary_ is None:
            object.__setattr__(self, "summary_", Summary.of(self.entries, self.files))
        assert self.summary_ is not None
        return self.summary_

    @property
    def models(self) -> dict[str, Model]:
        """Valid models by id (files with findings are left out)."""
        return {mid: f.spec for mid, f in self.files.items() if f.valid}

    def findings(self) -> list[Finding]:
        found: list[Finding] = []
        if self.settings is None:
            found.append(
                Finding(SETTINGS_PATH, None, None, "REG001", "registry settings file is missing",
                        "create it with 'modelgit init', or add 'schema_version: 1' to it")
            )
        else:
            found.extend(self.settings.findings)
        for model_id in sorted(self.summary().flagged):
            found.extend(self.files[model_id].findings)
        found.extend(self.stray_findings)
        return found

    @property
    def stray_findings(self) -> list[Finding]:
        found = []
        for path in self.summary().strays:
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
            raise NotFoundError(f"unknown model '{model_id}' at {where}", hint=hint)
        if not parsed.valid:
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
        """Regular files and symlinks under registry/, as git would see them. A symlink is read as
        its target text, never followed (nor is a symlinked registry/ or directory); FIFOs,
        sockets and devices are never opened (reading a FIFO would block): they are left out, and
        a path that names one is reported (validate.resolve_path)."""
        entries: dict[str, Entry] = {}
        base = self.root / REGISTRY_DIR
        if base.is_symlink():
            return entries
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                entry = self.entry(full)
                if entry is not None:
                    entries[rel] = entry
        return entries

    def entry(self, full: Path) -> Entry | None:
        """The Entry of one path on disk (read once); None for anything but a file or a symlink."""
        try:
            info = os.lstat(full)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            data = os.readlink(full).encode()
            mode = "120000"
        elif stat.S_ISREG(info.st_mode):
            data = full.read_bytes()
            mode = "100755" if info.st_mode & 0o111 else "100644"
        else:
            return None
        blob = blob_id(data)
        self._bytes[blob] = data
        return Entry(mode, blob)

    def read_many(self, items: Iterable[tuple[str, Entry]]) -> dict[str, bytes]:
        return {entry.blob: self._bytes[entry.blob] for _, entry in items}

    def read(self, path: str, entry: Entry) -> bytes:
        return self._bytes[entry.blob]


class _OverlaySource:
    """A snapshot source that serves changed files from memory and the rest from its base."""

    def __init__(self, base: Any, blobs: dict[str, bytes]) -> None:
        self.base = base
        self.repo = base.repo
        self.blobs = blobs

    def read_many(self, items: Iterable[tuple[str, Entry]]) -> dict[str, bytes]:
        items = list(items)
        result = {e.blob: self.blobs[e.blob] for _, e in items if e.blob in self.blobs}
        rest = [(p, e) for p, e in items if e.blob not in self.blobs]
        if rest:
            result.update(self.base.read_many(rest))
        return result

    def read(self, path: str, entry: Entry) -> bytes:
        if entry.blob in self.blobs:
            return self.blobs[entry.blob]
        return self.base.read(path, entry)


class Loader:
    """Loads snapshots of one repository, reusing files parsed before: in this process (keyed by
    path + blob), and across processes through the parse cache in ``.git/modelgit/``.

    A commit's snapshot is made from the last one loaded (or the one at ``near``) plus the files
    ``git diff`` names between the two commits, so its cost follows the change, not the size of
    the registry (10,000 files: a few ms for one changed file, against 50 ms to list the tree and
    rebuild every lookup).
    """

    RECENT = 2  # complete snapshots kept to build the next one from

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self._parsed: dict[tuple[str, str], ParsedFile] = {}
        self._recent: dict[str, Snapshot] = {}  # commit → complete snapshot, most recent last
        self.cache = ParseCache(repo.git_dir)

    def load(self, ref: str | None = "HEAD", *, worktree: bool = False, near: str | None = None) -> Snapshot:
        """The registry at ``ref`` (or the working tree). ``near``: the commit of an earlier
        snapshot to make this one from, when this loader still holds it (else the last one).

        >>> Loader(repo).load("HEAD").models.keys()                       # doctest: +SKIP
        dict_keys(['calling_score', 'outcome_prediction'])
        """
        if worktree:
            source: Any = _WorktreeSource(self.repo.root)
            return self._build(None, source.entries(), source, complete=True)
        commit = self.repo.resolve(ref or "HEAD")
        snapshot = self._recent.pop(commit, None)
        if snapshot is None:
            base = self._recent.get(near) if near is not None else None
            if base is None and self._recent:
                base = next(reversed(self._recent.values()))
            if base is not None:
                snapshot = self._build_from(base, commit)
        if snapshot is None:
            snapshot = self._build(commit, self.repo.tree(commit, REGISTRY_DIR), _GitSource(self.repo),
                                   complete=True)
        self._recent[commit] = snapshot
        while len(self._recent) > self.RECENT:
            del self._recent[next(iter(self._recent))]
        return snapshot

    def load_models(self, ref: str, model_ids: Iterable[str], *, or_whole: bool = False) -> Snapshot:
        """The registry at ``ref`` with only the files of ``model_ids`` among its models (settings,
        artifacts and datasets listed as in :meth:`load`): what a change to those models needs to
        validate it. Parsing a thousand other model files would only cost time (a second per
        thousand). With ``or_whole``, when none of them exists at ``ref`` the whole registry is
        loaded instead, so that "unknown model" can suggest the ids that are close.

        >>> Loader(repo).load_models("HEAD", ["calling_score"]).models.keys()   # doctest: +SKIP
        dict_keys(['calling_score'])
        """
        commit = self.repo.resolve(ref)
        entries = self.repo.tree(commit, REGISTRY_DIR)
        paths = {model_path(model_id) for model_id in model_ids}
        if or_whole and not paths & entries.keys():
            return self._build(commit, entries, _GitSource(self.repo), complete=True)
        wanted = {p: e for p, e in entries.items() if p in paths or model_id_of(p) is None}
        return self._build(commit, wanted, _GitSource(self.repo))

    def overlay(self, base: Snapshot, changes: Mapping[str, bytes | None]) -> Snapshot:
        """The snapshot ``base`` would become with ``changes`` (path → new content, None deletes)
        applied; nothing is written. Changed files are served from memory, the rest from ``base``.

        >>> after = loader.overlay(base, {"registry/models/m.yaml": new_text})   # doctest: +SKIP
        """
        entries = dict(base.entries)
        blobs: dict[str, bytes] = {}
        for path, data in changes.items():
            if data is None:
                entries.pop(path, None)
            else:
                blob = blob_id(data)
                blobs[blob] = data
                if path.startswith(f"{REGISTRY_DIR}/"):
                    entries[path] = Entry("100644", blob)
        return self._build(base.commit, entries, _OverlaySource(base.source, blobs))

    def _build(self, commit: str | None, entries: dict[str, Entry], source: Any, *,
               complete: bool = False) -> Snapshot:
        start, end = len(MODELS_DIR), -len(MODEL_SUFFIX)  # model_id_of, inlined: it runs per file
        wanted = [(path, entry, path[start:end] if path.startswith(MODELS_DIR) and path.endswith(MODEL_SUFFIX)
                   else None) for path, entry in entries.items()]
        wanted = [item for item in wanted if item[2] is not None or item[0] == SETTINGS_PATH]
        parsed = self._parsed
        self._parse([(path, entry) for path, entry, _ in wanted if (path, entry.blob) not in parsed], source)
        settings = None
        files: dict[str, ParsedFile] = {}
        for path, entry, model_id in wanted:
            if model_id is None:
                settings = parsed[(path, entry.blob)]
            else:
                files[model_id] = parsed[(path, entry.blob)]
        return Snapshot(commit, entries, settings, dict(sorted(files.items())), source, complete=complete)

    def _build_from(self, base: Snapshot, commit: str) -> Snapshot | None:
        """The snapshot at ``commit`` as ``base`` plus what changed in between; None when git
        cannot say (then the caller loads it whole)."""
        assert base.commit is not None
        try:
            changed = self.repo.changed_entries(base.commit, commit)
        except GitError:
            return None
        entries = dict(base.entries)
        files = dict(base.files)
        settings = base.settings
        inside = {path: entry for path, entry in changed.items()
                  if path == REGISTRY_DIR or path.startswith(f"{REGISTRY_DIR}/")}
        for path, entry in inside.items():
            if entry is None:
                entries.pop(path, None)
            else:
                entries[path] = entry
        self._parse([(path, entry) for path, entry in inside.items()
                     if entry is not None and (path == SETTINGS_PATH or model_id_of(path) is not None)
                     and (path, entry.blob) not in self._parsed], base.source)
        added = False
        for path, entry in inside.items():
            parsed = self._parsed[(path, entry.blob)] if entry is not None and \
                (path == SETTINGS_PATH or model_id_of(path) is not None) else None
            if path == SETTINGS_PATH:
                settings = parsed
                continue
            model_id = model_id_of(path)
            if model_id is None:
                continue
            if parsed is None:
                files.pop(model_id, None)
            else:
                added = added or model_id not in files
                files[model_id] = parsed
        if added:
            files = dict(sorted(files.items()))
        summary = base.summary().updated(base.files, entries, files, inside)
        return Snapshot(commit, entries, settings, files, base.source, since=(base.commit, frozenset(changed)),
                        complete=True, summary_=summary)

    def _parse(self, wanted: list[tuple[str, Entry]], source: Any) -> None:
        """Parse the files of ``wanted`` into ``_parsed``: from the parse cache when it has them
        (and looking there is cheaper than parsing), else from their bytes."""
        if not wanted:
            return
        # The bulk load allocates many small objects that all live on; the cyclic GC would walk
        # them again and again for nothing (measured: 20-30 % of a cold load). Only the CLI, which
        # owns its process, pauses it (_process.tune_gc): a library call never changes its host's
        # collector.
        was_enabled = _process.tune_gc and gc.isenabled()
        if was_enabled:
            gc.disable()
        try:
            todo = []
            files = []
            for path, entry in wanted:
                if entry.mode == SYMLINK_MODE:
                    self._parsed[(path, entry.blob)] = ParsedFile(path, entry.blob, None, (Finding(
                        path, None, None, "REG003", "registry files must not be symlinks",
                        "replace the link by the file itself"),))
                else:
                    files.append((path, entry))
            if files and self.cache.worth_loading(len(files)):
                records = self.cache.lookup([(path, entry.blob) for path, entry in files])
                for (path, entry), record in zip(files, records, strict=True):
                    parsed = _from_record(path, entry.blob, record) if record is not None else None
                    if parsed is not None:
                        self._parsed[(path, entry.blob)] = parsed
                        continue
                    if record is not None:
                        self.cache.forget(path, entry.blob)
                    todo.append((path, entry))
            else:
                todo = files
            jobs: list[Any] = [None] * len(todo)
            records: list[Any] = [None] * len(jobs)

            def read(indices: range) -> None:
                contents = source.read_many([todo[index] for index in indices]) if indices else {}
                for index in indices:
                    path, entry = todo[index]
                    jobs[index] = (path, entry.blob, contents[entry.blob])

            def here(index: int) -> None:
                path, blob, data = jobs[index]
                parsed, value = _parse_file(data, path, blob)
                self._parsed[(path, blob)] = parsed
                records[index] = _record(parsed, value)

            # Uncached files are parsed by helper processes too when the CLI allows it (_parsework);
            # a helper's answer is the record a warm run would read, so the outcome is the same.
            helped = _parsework.share(jobs, here, _process.parse_helpers, read=read)
            for index, record in sorted(helped.items()):
                path, blob, _ = jobs[index]
                parsed = _from_record(path, blob, record) if record is not None else None
                if parsed is None:
                    here(index)
                else:
                    self._parsed[(path, blob)] = parsed
                    records[index] = record
            for (path, blob, _), record in zip(jobs, records, strict=True):
                if record is not None:
                    self.cache.put(path, blob, record)
            self.cache.flush()
        finally:
            if was_enabled:
                # Re-enabling would make the next collection walk everything just loaded (86-124 ms
                # at 1,000 files); it is long-lived, so move it out of the GC's generations.
                gc.freeze()
                gc.enable()

    def parse_blobs(self, path: str, blobs: Iterable[str]) -> dict[str, ParsedFile]:
        """The file ``path`` as each of ``blobs`` (e.g. its versions through history), read like
        a snapshot's files: through the parse cache, parsed (and cached) only when not there.

        >>> Loader(repo).parse_blobs("registry/models/a.yaml", [old, new])[new].spec  # doctest: +SKIP
        """
        blobs = list(dict.fromkeys(blobs))
        todo = [(path, Entry("100644", blob)) for blob in blobs if (path, blob) not in self._parsed]
        self._parse(todo, _GitSource(self.repo))
        return {blob: self._parsed[(path, blob)] for blob in blobs}

    def forget_except(self, keep: Iterable[Snapshot]) -> None:
        """Drop parsed files that none of ``keep`` uses (bounds memory in long-lived runtimes),
        and the parse cache's records read from disk."""
        keep = list(keep)
        live = {
            (f.path, f.blob) for snap in keep for f in [*snap.files.values(), snap.settings] if f
        }
        self._parsed = {k: v for k, v in self._parsed.items() if k in live}
        self._recent = {commit: snap for commit, snap in self._recent.items() if any(snap is k for k in keep)}
        self.cache.release()


def record_of(path: str, blob: str, data: bytes) -> tuple[Any, ...] | None:
    """The parse cache record of one file, parsed through the whole pipeline (what a helper
    process of :mod:`modelgit._parsework` answers); None when it cannot be kept."""
    return _record(*_parse_file(data, path, blob))


def _parse_file(data: bytes, path: str, blob: str) -> tuple[ParsedFile, Any]:
    """The settings file or a model file through its pipeline: the parsed file and the value the
    schema accepted."""
    return (_parse_settings if path == SETTINGS_PATH else _parse_model)(data, path, blob)


def parse_settings(data: bytes, path: str, blob: str = "") -> ParsedFile:
    """Read the settings file through the whole per-file pipeline."""
    return _parse_settings(data, path, blob)[0]


def parse_model(data: bytes, path: str, blob: str = "") -> ParsedFile:
    """Read one model file through the whole per-file pipeline."""
    return _parse_model(data, path, blob)[0]


def _parse_settings(data: bytes, path: str, blob: str) -> tuple[ParsedFile, Any]:
    """The parsed file and the value the schema accepted (None when it did not)."""
    from modelgit.spec import Settings

    value, findings = yamlio.load(data, path)
    if findings:
        return ParsedFile(path, blob, None, tuple(findings)), None
    spec, findings = _typed(value, data, path, Settings, "settings")
    return ParsedFile(path, blob, spec, tuple(findings)), value if spec is not None else None


def _parse_model(data: bytes, path: str, blob: str) -> tuple[ParsedFile, Any]:
    from modelgit.spec import Model

    value, findings = yamlio.load(data, path)
    if findings:
        return ParsedFile(path, blob, None, tuple(findings)), None
    findings = _version_id_findings(value, data, path)
    if findings:
        return ParsedFile(path, blob, None, tuple(findings)), None
    spec, findings = _typed(value, data, path, Model, "model")
    if spec is None:
        return ParsedFile(path, blob, None, tuple(findings)), None
    model_id = model_id_of(path) or spec.name
    findings = [
        Finding(path, *_line_col(data, jpath), code, message, hint)
        for jpath, code, message, hint in rules.model_rules(spec, model_id)
    ]
    if findings:
        return ParsedFile(path, blob, None, tuple(findings), spec), value
    return ParsedFile(path, blob, spec, (), spec), value


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
    from pydantic import ValidationError

    if not isinstance(value, dict):
        needs = "name, task and versions" if schema_name == "model" else "schema_version: 1"
        if value is None:
            message = f"the file is empty; a {schema_name} file is a mapping with {needs}"
        else:
            message = f"the file holds {yamlio._kind(value)}; a {schema_name} file is a mapping with {needs}"
        return None, [Finding(path, 1, 1, "SCHEMA001", message,
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
    from modelgit.spec import schema_validator

    validator = schema_validator(schema_name)
    leaves = [
        leaf
        for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        for leaf in _leaves(error)
    ]
    # A misspelt key shows up twice, as an unknown key and as a missing one: say it once, as the
    # typo ("unknown key 'stauts' — did you mean 'status'?").
    typos: set[tuple[tuple[Any, ...], str]] = set()
    for leaf in leaves:
        if leaf.validator == "additionalProperties":
            for key in _unknown_keys(leaf):
                close = _close_key(key, leaf)
                if close is not None:
                    typos.add((tuple(leaf.absolute_path), close))
    findings = []
    seen = set()

    def add(line: int, col: int, code: str, message: str, hint: str) -> None:
        if (line, col, message) not in seen:
            seen.add((line, col, message))
            findings.append(Finding(path, line, col, code, message, hint))

    for leaf in leaves:
        jpath = tuple(leaf.absolute_path)
        where = _where(jpath)
        if leaf.validator == "additionalProperties":
            allowed = list(leaf.schema.get("properties", {}))
            for key in _unknown_keys(leaf):
                line, col, _ = yamlio.locate(data, (*jpath, key), key=True)
                close = _close_key(key, leaf)
                hint = f"did you mean '{close}'?" if close else f"allowed keys: {', '.join(allowed)}"
                add(line, col, "SCHEMA002", f"{where}: unknown key '{key}'", hint)
            continue
        line, col, plain = yamlio.locate(data, jpath)
        if leaf.validator == "required":
            for key in leaf.validator_value:
                if key not in leaf.instance and (jpath, key) not in typos:
                    add(line, col, "SCHEMA004", f"{where}: required key '{key}' is missing",
                        f"add '{key}'")
            continue
        add(line, col, *_describe(leaf, plain))
    return findings


def _where(jpath: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in jpath) or "(top level)"


def _unknown_keys(error: Any) -> list[str]:
    allowed = error.schema.get("properties", {})
    return [key for key in error.instance if key not in allowed]


def _close_key(key: str, error: Any) -> str | None:
    """The allowed key that ``key`` is likely a typo of, if that key is not present already."""
    allowed = [k for k in error.schema.get("properties", {}) if k not in error.instance]
    close = difflib.get_close_matches(key, allowed, n=1)
    return close[0] if close else None


def _leaves(error: Any) -> list[Any]:
    """For a oneOf over artifact kinds, report the branch the user meant (by its required key)."""
    if error.validator == "oneOf" and isinstance(error.instance, dict) and error.context:
        for branch, key in enumerate(("path", "uri", "provider")):
            if key in error.instance:
                chosen = [e for e in error.context if e.relative_schema_path[0] == branch]
                if chosen:
                    return [leaf for e in chosen for leaf in _leaves(e)]
    return [error]


# What a pattern means, in words, and how to write a value that matches it.
_PATTERNS = {
    "^[0-9a-f]{64}$": (
        "SCHEMA006", "is not a sha256 (64 lowercase hex digits)",
        "compute it with 'sha256sum FILE' or let 'modelgit register' fill it",
    ),
    "^[A-Za-z0-9][A-Za-z0-9_.+-]*$": (
        "SCHEMA010", "is not a valid version id",
        "use letters, digits and . _ + - (starting with a letter or digit), e.g. v2.1",
    ),
    "^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$": (
        "SCHEMA010", "is not a valid model name",
        "use lowercase letters, digits and . _ - in parts separated by '/', e.g. team/churn",
    ),
    "^[a-z][a-z0-9+.-]*://\\S+$": (
        "SCHEMA010", "is not a URI (scheme://...)",
        "write a URI such as s3://bucket/model.onnx; for a file in the repository use 'path:'",
    ),
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$": ("SCHEMA010", "is not a date", "write it as YYYY-MM-DD"),
    "^[a-z0-9][a-z0-9_.-]*$": (
        "SCHEMA010", "is not a valid provider name", "use lowercase letters, digits and . _ -",
    ),
}
_TYPE_NAMES = {
    "string": "a string", "number": "a number", "integer": "an integer", "boolean": "true or false",
    "null": "null", "object": "a mapping", "array": "a list",
}


def _describe(error: Any, plain: str | None) -> tuple[str, str, str]:
    where = _where(tuple(error.absolute_path))
    kind = error.validator
    instance = error.instance
    if kind == "type":
        return _describe_type(error, where, plain)
    if kind == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        if plain is not None and not isinstance(instance, str) and plain in error.validator_value:
            return ("SCHEMA003", f"{where}: {plain} is read as {yamlio._kind(instance)}, not a string",
                    yamlio._quote_hint(plain))
        if plain is not None and not isinstance(instance, str):
            # `status: yes` is the boolean true to YAML 1.1: show what the user wrote, and say
            # that quoting keeps the word (which then has to be one of the allowed values).
            return ("SCHEMA005",
                    f"{where}: {plain} is read as {yamlio._kind(instance)}, not one of {allowed}",
                    f"use one of these values; to keep the word {plain}, quote it: "
                    f"{yamlio._quote_hint(plain)[len('quote it: '):]}")
        close = difflib.get_close_matches(str(instance), list(map(str, error.validator_value)), 1)
        hint = f"did you mean '{close[0]}'?" if close else "use one of these values"
        return ("SCHEMA005", f"{where}: {instance!r} is not one of {allowed}", hint)
    if kind == "pattern" and error.validator_value in _PATTERNS:
        code, meaning, hint = _PATTERNS[error.validator_value]
        return (code, f"{where}: {instance!r} {meaning}", hint)
    if kind in ("minimum", "maximum"):
        low, high = error.schema.get("minimum"), error.schema.get("maximum")
        shown = plain if plain is not None else repr(instance)
        side = "below the minimum" if kind == "minimum" else "above the maximum"
        if low is not None and high is not None:
            hint = f"use a number from {low:g} to {high:g}"
        else:
            hint = f"use a number of at least {low:g}" if low is not None else f"use at most {high:g}"
        return ("SCHEMA010", f"{where}: {shown} is {side} of {error.validator_value:g}", hint)
    if kind == "not" and error.validator_value == {}:
        # {"not": {}, "description": why}: a key that does not belong here (settings.sources, where
        # which keys fit depends on the source's kind); the description says why.
        return ("SCHEMA011", f"{where}: this key does not fit here",
                error.schema.get("description") or "see the schema for this key")
    if kind == "const":
        return ("SCHEMA010", f"{where}: expected {error.validator_value!r}, got {instance!r}",
                f"set it to {error.validator_value!r}")
    if kind == "minItems":
        least = error.validator_value
        return ("SCHEMA010", f"{where}: needs at least {least} item{'s' if least != 1 else ''}, "
                f"has {len(instance)}", f"add at least {least}")
    return ("SCHEMA010", f"{where}: {error.message}", "see the schema for this key")


def _describe_type(error: Any, where: str, plain: str | None) -> tuple[str, str, str]:
    expected = error.validator_value
    expected = [expected] if isinstance(expected, str) else list(expected)
    instance = error.instance
    if plain is not None and "string" in expected:
        # An unquoted scalar YAML reads as something else. When even its text would not fit (a
        # short `sha256: 0755`), the real problem is the value, not the quotes.
        meaning = _PATTERNS.get(error.schema.get("pattern", ""))
        if meaning is not None and not re.search(error.schema["pattern"], plain):
            code, text, hint = meaning
            return (code, f"{where}: {plain} {text}", hint)
        return ("SCHEMA003",
                f"{where}: {plain} is read as {yamlio._kind(instance)}, not a string",
                yamlio._quote_hint(plain))
    want = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
    if isinstance(instance, str):
        got = f"the string {instance!r}"
    elif plain is not None:
        got = f"{plain} (read as {yamlio._kind(instance)})"
    else:
        got = yamlio._kind(instance)
    hint = "see the schema for this key"
    if "number" in expected or "integer" in expected:
        hint = "write a number"
        text = instance.strip() if isinstance(instance, str) else ""
        if _is_number(text):
            hint = f"remove the quotes: {text}"
        elif text.endswith("%") and _is_number(text[:-1].strip()):
            hint = f"write the number without '%': {text[:-1].strip()}"
    return ("SCHEMA010", f"{where}: expected {want}, got {got}", hint)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity")
