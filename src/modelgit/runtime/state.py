"""Building what serves one commit, off the request path.

A :class:`State` is one commit: models, route tables and loaded sessions. :class:`StateBuilder`
makes the next one from the validator's snapshot (parse only changed files, verify checksums)
and keeps the sessions cache by artifact sha256, so a reload reuses every session whose artifact
did not change. The registry swaps the state in one attribute assignment.

What a model needs to serve — its route table (64 KiB) and its onnxruntime sessions — is made on
the model's first request by :meth:`StateBuilder.prepare` (double-checked under one lock, so
concurrent first requests build it once), or for every model when the state is built with
``preload``: at 10,000 models, eager tables alone cost 0.6 GiB and most of a minute to open.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelgit.errors import GitError, InvalidError, ModelgitError, TransientError, is_transient
from modelgit.runtime.router import RouteTable
from modelgit.snapshot import ParsedFile, Snapshot
from modelgit.validate import Validator, resolve_path

if TYPE_CHECKING:
    from modelgit.spec import Model, Settings

log = logging.getLogger("modelgit.runtime")

PRELOAD_BATCH = 64  # models whose artifacts are read in one git round-trip when preloading


@dataclass(frozen=True, slots=True)
class HostedModel:
    """A version served by a provider: what to call instead of an onnxruntime session."""

    model: str
    version: str
    provider: str
    model_id: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """A version ready to serve: its session (or hosted reference) and the input names.

    ``fallback_from`` is set on the stand-in a route table slot holds for a routed version that
    cannot load: the active version's session, or ``session is None`` when nothing can serve."""

    version: str
    session: Any
    input_names: tuple[str, ...]
    weight: float | None
    sha256: str | None = None
    first_input: str | None = None
    run: Any = None  # session.run, bound once; None for hosted versions
    fallback_from: str | None = None
    problem: str | None = None  # why nothing serves (session is None)

    def standing_in_for(self, version: str) -> Loaded:
        return Loaded(self.version, self.session, self.input_names, self.weight, self.sha256,
                      self.first_input, self.run, version)


@dataclass(frozen=True, slots=True)
class ServedArtifact:
    """A version's artifact as serving needs it: ``kind`` is "file" (``path``, ``sha256``), "uri"
    (``uri``) or "hosted" (``provider``, ``model_id``)."""

    kind: str
    path: str = ""
    sha256: str = ""
    uri: str = ""
    provider: str = ""
    model_id: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        """What makes it the same artifact: its sha256, URI or provider and id."""
        if self.kind == "file":
            return ("file", self.sha256)
        if self.kind == "hosted":
            return ("hosted", self.provider, self.model_id)
        return ("uri", self.uri)


@dataclass(frozen=True, slots=True)
class ServedVersion:
    version: str
    status: str
    weight: float | None
    artifact: ServedArtifact


@dataclass(frozen=True, slots=True)
class Served:
    """What serving a model needs of its file: each version's id, status, weight and artifact,
    the traffic split and whether it is retired. A file from the parse cache gives it from the
    stored value the schema accepted, without pydantic: importing the typed models and building
    one cost 0.1-0.2 s of a new process's first request (a cold open → route → run is judged
    against bare onnxruntime's own process). A file parsed in this process gives it from its
    typed model; both give the same (tests/test_runtime_lazy.py compares them)."""

    versions: tuple[ServedVersion, ...]
    traffic: tuple[tuple[str, float], ...]  # as written; empty when the file sets none
    retired: bool

    @classmethod
    def of(cls, parsed: ParsedFile) -> Served:
        data = parsed.plain()
        return cls.of_plain(data) if data is not None else cls.of_model(parsed.spec)

    @classmethod
    def of_plain(cls, data: dict[str, Any]) -> Served:
        """From a valid model file's plain value (``ParsedFile.plain()``), read as pydantic does:
        numbers as floats, the artifact's kind by the key that only it has."""
        versions = []
        for item in data["versions"]:
            artifact = item["artifact"]
            if "path" in artifact:
                served = ServedArtifact("file", path=artifact["path"], sha256=artifact["sha256"])
            elif "uri" in artifact:
                served = ServedArtifact("uri", uri=artifact["uri"], sha256=artifact["sha256"])
            else:
                served = ServedArtifact("hosted", provider=artifact["provider"], model_id=artifact["model_id"])
            weight = item.get("weight")
            versions.append(ServedVersion(item["version"], item["status"],
                                          float(weight) if weight is not None else None, served))
        traffic = data.get("traffic") or {}
        return cls(tuple(versions), tuple((str(k), float(v)) for k, v in traffic.items()),
                   bool(data.get("retired")))

    @classmethod
    def of_model(cls, model: Model) -> Served:
        from modelgit.spec import FileArtifact, HostedArtifact

        versions = []
        for version in model.versions:
            artifact = version.artifact
            if isinstance(artifact, FileArtifact):
                served = ServedArtifact("file", path=artifact.path, sha256=artifact.sha256)
            elif isinstance(artifact, HostedArtifact):
                served = ServedArtifact("hosted", provider=artifact.provider, model_id=artifact.model_id)
            else:
                served = ServedArtifact("uri", uri=str(artifact.uri), sha256=artifact.sha256)
            versions.append(ServedVersion(version.version, version.status, version.weight, served))
        return cls(tuple(versions), tuple((model.traffic or {}).items()), bool(model.retired))

    @property
    def active(self) -> ServedVersion | None:
        return next((v for v in self.versions if v.status == "active"), None)

    def version(self, version_id: str) -> ServedVersion | None:
        return next((v for v in self.versions if v.version == version_id), None)

    def split(self) -> dict[str, float]:
        """Traffic per version id in percent; 100 % to the active version when none is set
        (``Model.split()``)."""
        if self.traffic:
            return dict(self.traffic)
        active = self.active
        return {active.version: 100.0} if active else {}


@dataclass(eq=False, slots=True)  # one per model: 10,000 of them at open
class ModelState:
    """One model at one commit. Lazily prepared: ``table`` and ``slots`` are built, and the
    versions they route to loaded, by :meth:`StateBuilder.prepare` on the model's first request
    (or when the state is built with ``preload``); ``ready`` is set last, so a reader that sees it
    True sees the rest."""

    parsed: ParsedFile  # the model's file; its typed model is built on first use (``model``)
    table: RouteTable | None  # None until built, and for a model without a split
    active: str | None
    loaded: dict[str, Loaded]
    errors: dict[str, str]
    salt: str = ""
    slots: tuple[Loaded, ...] = ()  # per table version: what serves it
    transient: bool = False  # an error that may not repeat (git): rebuild on the next reload
    ready: bool = False  # table built and the versions it routes to loaded or refused
    served_: Served | None = None  # see ``served``

    @property
    def model(self) -> Model:
        """The typed model (built from the parse cache on first use: 10,000 of them at open would
        cost seconds of pydantic for models that may never be asked for)."""
        return self.parsed.spec  # type: ignore[no-any-return]

    @property
    def served(self) -> Served:
        """What serving the model needs (made on first use, without pydantic when the file came
        from the parse cache). Two threads may both make it; either result is the same."""
        served = self.served_
        if served is None:
            served = self.served_ = Served.of(self.parsed)
        return served

    @property
    def split(self) -> dict[str, float]:
        """The versions with traffic and their share (what the route table is built from)."""
        return {v: float(w) for v, w in self.served.split().items() if w > 0}

    @property
    def serving(self) -> bool | None:
        """True when the active version is loaded, False when it cannot be (or there is none),
        None while it has not been tried yet (it loads on the model's first request)."""
        if self.active is None:
            return False
        if self.active in self.loaded:
            return True
        return False if self.active in self.errors else None


@dataclass
class State:
    commit: str
    snapshot: Snapshot
    models: dict[str, ModelState]
    # model id → (key prefix, hash seed, slot → index, index → what serves, table) for the
    # prepared models with a route table: what Registry.run needs, in one tuple. Filled as models
    # are prepared (one dict assignment each, atomic for the request path).
    fast: dict[str, tuple[str, int, Any, tuple[Loaded, ...], RouteTable]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, entry in self.models.items():
            if entry.ready:
                self.publish(name, entry)

    def publish(self, name: str, entry: ModelState) -> None:
        """Put a prepared model on the request path's fast lookup."""
        table = entry.table
        if table is not None:
            self.fast[name] = (table._prefix, table._seed, table._index, entry.slots, table)


def _artifact_key(model: Served, version_id: str | None) -> tuple[str, ...] | None:
    """What makes a version's artifact the same one: its sha256, URI or provider and id."""
    version = model.version(version_id) if version_id else None
    return version.artifact.key if version is not None else None


def _salt(settings: ParsedFile | None) -> str:
    """The routing salt of a valid settings file ("" when none), from the parse cache's plain
    value when there is one (no typed model built)."""
    if settings is None or not settings.valid:
        return ""
    data = settings.plain()
    if data is None:
        typed: Settings = settings.spec
        return (typed.routing.salt if typed.routing is not None else None) or ""
    return (data.get("routing") or {}).get("salt") or ""


class StateBuilder:
    """Makes :class:`State` objects for commits and owns the sessions they share.

    Building a state validates the commit (eagerly: an invalid commit is refused at open and at
    reload) but, unless ``preload``, creates no onnxruntime session and no route table: each
    model is prepared on its first request (:meth:`prepare`, under :attr:`lock`). A reload still
    loads the new active version of a model that serves now when its artifact changed, so a commit
    that would take the model out of service is refused, as with ``preload``."""

    def __init__(self, validator: Validator, *, session_options: Any = None,
                 providers: list[str] | None = None, rng: random.Random | None = None,
                 preload: bool = False) -> None:
        self.validator = validator
        self.sessions: dict[str, Any] = {}  # artifact sha256 → InferenceSession
        self.preload = preload
        # Serialises preparing models, loading pins and releasing sessions. Never taken on the
        # request path once a model is prepared; taken after the reload lock, never before it.
        self.lock = threading.RLock()
        self.counts: Counter[str] = Counter()  # route tables and sessions made (introspection)
        self._session_options = session_options
        self._providers = providers or ["CPUExecutionProvider"]
        self._rng = rng

    def build(self, commit: str, previous: State | None = None) -> State:
        """The state of ``commit``, reusing what ``previous`` built for unchanged model files.
        Raises InvalidError (TransientError when it may not repeat) for an invalid registry."""
        report = self.validator.validate(commit)
        if not report.valid:
            error = TransientError if report.transient else InvalidError
            raise error(f"registry at {commit[:12]} is invalid", findings=report.findings[:20])
        snapshot = report.snapshot
        assert snapshot is not None
        salt = _salt(snapshot.settings)
        models: dict[str, ModelState] = {}
        todo = []
        for name, parsed in snapshot.files.items():
            if not parsed.valid:
                continue
            old = previous.models.get(name) if previous else None
            if old is not None and old.parsed is parsed and old.salt == salt and not old.transient:
                # The same file content (the loader reuses parsed files by blob id): the same
                # split, artifacts (their sha256 just verified by the validator) and outcomes.
                models[name] = old
            else:
                entry = models[name] = self._new_entry(name, parsed, salt, old)
                todo.append((name, entry, old))
        if self.preload:
            # In batches: one git round-trip per batch, and never every artifact in memory at once.
            for start in range(0, len(todo), PRELOAD_BATCH):
                batch = todo[start:start + PRELOAD_BATCH]
                fetched = self._prefetch(snapshot, [entry.served for _, entry, _ in batch])
                with self.lock:
                    for name, entry, _ in batch:
                        self.prepare(snapshot, name, entry, fetched)
        else:
            # A model that serves now keeps serving only if its new active version loads: try
            # the ones whose artifact changed (an unchanged one is what serves, or will, today).
            verify = [(name, entry) for name, entry, old in todo
                      if old is not None and old.serving is not False and entry.active is not None
                      and _artifact_key(entry.served, entry.active) != _artifact_key(old.served, old.active)]
            fetched = self._prefetch(snapshot, [entry.served for _, entry in verify], active_only=True)
            with self.lock:
                for name, entry in verify:
                    assert entry.active is not None
                    self.load_version(snapshot, name, entry, entry.active, fetched)
        return State(commit, snapshot, dict(sorted(models.items())))

    def _new_entry(self, name: str, parsed: ParsedFile, salt: str, old: ModelState | None) -> ModelState:
        entry = ModelState(parsed, None, parsed.active_version(), {}, {}, salt)
        if old is not None and old.table is not None and old.table.salt == salt \
                and old.table.split == entry.split:
            entry.table = old.table  # the same split: the same table (built once, immutable)
        return entry

    def table_for(self, name: str, entry: ModelState) -> RouteTable | None:
        """The route table of ``entry``, built now if it was not (None: nothing has traffic)."""
        table = entry.table
        if table is None:
            with self.lock:
                table = entry.table
                if table is None:
                    split = entry.split
                    if split:
                        table = entry.table = RouteTable(name, split, entry.salt, self._rng)
                        self.counts["tables"] += 1
        return table

    def prepare(self, snapshot: Snapshot, name: str, entry: ModelState,
                fetched: dict[str, bytes] | None = None) -> None:
        """Build ``entry``'s route table and load the versions it routes to (and the active
        one), once; call under :attr:`lock`. A version that cannot load is served by the active
        version (its slot says so), as it always was."""
        if entry.ready:
            return
        table = self.table_for(name, entry)
        wanted = [entry.active] if entry.active is not None else []
        wanted += [v for v in (table.versions if table is not None else ()) if v not in wanted]
        wanted = [v for v in wanted if v not in entry.loaded and v not in entry.errors]
        if fetched is None and len(wanted) > 1:
            fetched = self._prefetch(snapshot, [entry.served])
        for version in wanted:
            self.load_version(snapshot, name, entry, version, fetched)
        if table is not None:
            entry.slots = tuple(self._slot(entry, version) for version in table.versions)
        entry.ready = True  # last: a reader that sees it sees the table and slots

    @staticmethod
    def check_still_serving(current: State, new: State) -> None:
        """A commit may not take a model that serves now out of service: by leaving it no active
        version (unless the model is retired on purpose) or one that cannot load. A model whose
        active version was not tried yet (not requested since it was loaded lazily) counts as
        serving; a new active version that was not tried has the artifact that serves now."""
        for name, old in current.models.items():
            entry = new.models.get(name)
            if old.active is not None and (entry is None or (entry.active is None and not entry.served.retired)):
                raise InvalidError(f"model '{name}' serves '{old.active}' now but has no active version "
                                   f"at {new.commit[:12]}; keeping the current state",
                                   hint="promote a version, or set 'retired: true' to take it out of "
                                        "service on purpose")
            if old.serving is not False and entry is not None and entry.active is not None \
                    and entry.serving is False:
                error = TransientError if entry.transient else InvalidError
                raise error(f"model '{name}': active version '{entry.active}' cannot be loaded: "
                            f"{entry.errors.get(entry.active)}; keeping the current state")

    def release_unused(self, state: State) -> None:
        """Drop cached sessions that ``state`` does not use and will not (called under the
        reload lock): a model not prepared yet keeps the sessions of the versions it serves."""
        with self.lock:
            live = {
                loaded.sha256
                for entry in state.models.values()
                for loaded in entry.loaded.values()
                if loaded.sha256 is not None
            }
            dead = [sha for sha in list(self.sessions) if sha not in live]
            if dead:
                live = set()
                for entry in state.models.values():
                    if not entry.ready:
                        live.update(_servable_shas(entry.served))
                for sha in dead:
                    if sha not in live:
                        del self.sessions[sha]

    def _prefetch(self, snapshot: Snapshot, models: list[Served], active_only: bool = False) -> dict[str, bytes]:
        """Read the artifacts that will need a new session in one ``git cat-file`` round-trip."""
        wanted = {}
        for model in models:
            versions = [model.active.version] if model.active else []
            if not active_only:
                versions += model.split()
            for version_id in versions:
                version = model.version(version_id)
                artifact = version.artifact if version is not None else None
                if artifact is not None and artifact.kind == "file" and artifact.sha256 not in self.sessions:
                    entry, problem = resolve_path(snapshot, artifact.path)
                    if entry is not None and problem is None:
                        wanted[entry.blob] = entry
        if len(wanted) > 1:
            try:
                return snapshot.source.read_many(("", e) for e in wanted.values())  # type: ignore[no-any-return]
            except ModelgitError:
                pass  # each is read (and fails) on its own below
        return {}

    @staticmethod
    def _slot(entry: ModelState, version: str) -> Loaded:
        loaded = entry.loaded.get(version)
        if loaded is not None:
            return loaded
        active = entry.loaded.get(entry.active) if entry.active else None
        if active is not None:
            return active.standing_in_for(version)
        problem = (f"neither '{version}' ({entry.errors.get(version)}) nor the active version "
                   f"'{entry.active}' ({entry.errors.get(entry.active or '')}) can be loaded")
        return Loaded(version, None, (), None, fallback_from=version, problem=problem)

    def load_version(self, snapshot: Snapshot, name: str, entry: ModelState, version_id: str,
                     fetched: dict[str, bytes] | None = None) -> None:
        """Load ``version_id`` into ``entry.loaded``, or say why not in ``entry.errors``."""
        version = entry.served.version(version_id)
        assert version is not None
        artifact = version.artifact
        sha = None
        try:
            if artifact.kind == "hosted":
                session: Any = HostedModel(name, version_id, artifact.provider, artifact.model_id)
                inputs: tuple[str, ...] = ()
            elif artifact.kind == "file":
                session = self.session_for(snapshot, artifact, fetched)
                inputs = tuple(arg.name for arg in session.get_inputs())
                sha = artifact.sha256
            else:  # expected in registries that keep artifacts elsewhere: not a warning
                entry.errors[version_id] = f"artifact URI {artifact.uri} is not fetched by the runtime"
                log.info("modelgit: %s:%s is not served: its artifact is a URI", name, version_id)
                return
        except ModelgitError as exc:
            entry.errors[version_id] = exc.message
            entry.transient = entry.transient or isinstance(exc, (GitError, TransientError))
            log.warning("modelgit: %s:%s cannot load: %s", name, version_id, exc.message)
            return
        hosted = isinstance(session, HostedModel)
        entry.loaded[version_id] = Loaded(version_id, session, inputs, version.weight, sha,
                                          inputs[0] if inputs else None,
                                          None if hosted else session.run)

    def session_for(self, snapshot: Snapshot, artifact: Any,
                    fetched: dict[str, bytes] | None = None) -> Any:
        """The session of a file ``artifact`` (a :class:`ServedArtifact` or a typed
        ``FileArtifact``: its ``path`` and ``sha256``), cached by sha256, its bytes verified
        first."""
        cached = self.sessions.get(artifact.sha256)
        if cached is not None:
            return cached
        entry, problem = resolve_path(snapshot, artifact.path)
        if problem is not None or entry is None:
            raise InvalidError(problem[1] if problem else f"{artifact.path} is missing")
        data = fetched.get(entry.blob) if fetched else None
        if data is None:
            data = snapshot.source.read(artifact.path, entry)
        digest = hashlib.sha256(data).hexdigest()  # verified before onnxruntime sees the bytes
        if digest != artifact.sha256:
            raise InvalidError(f"{artifact.path}: sha256 {digest} does not match the recorded "
                               f"{artifact.sha256}")
        from modelgit import sessions

        try:
            session = sessions.create(data, self._session_options, self._providers)
        except Exception as exc:  # onnxruntime's own exception types
            error = TransientError if is_transient(exc) else InvalidError
            raise error(f"{artifact.path}: onnxruntime cannot load it: "
                        f"{str(exc).strip()[:200] or type(exc).__name__}") from None
        self.sessions[artifact.sha256] = session
        self.counts["sessions"] += 1
        return session


def _servable_shas(model: Served) -> list[str]:
    """The sha256 of the file artifacts a prepared ``model`` would load (active and split)."""
    shas = []
    active = model.active
    versions = [active.version] if active else []
    for version_id in [*versions, *model.split()]:
        version = model.version(version_id)
        if version is not None and version.artifact.kind == "file":
            shas.append(version.artifact.sha256)
    return shas
