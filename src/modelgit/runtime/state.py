"""Building what serves one commit, off the request path.

A :class:`State` is one commit: models, route tables and loaded sessions. :class:`StateBuilder`
makes the next one from the validator's snapshot (parse only changed files, verify checksums,
create sessions through :mod:`modelgit.sessions`) and keeps the sessions cache by artifact sha256,
so a reload reuses every session whose artifact did not change. The registry swaps the state in one
attribute assignment; nothing here is on the request path.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from modelgit.errors import GitError, InvalidError, ModelgitError, TransientError, is_transient
from modelgit.runtime.router import RouteTable
from modelgit.snapshot import Snapshot
from modelgit.spec import FileArtifact, HostedArtifact, Model
from modelgit.validate import Validator, resolve_path

log = logging.getLogger("modelgit.runtime")


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


@dataclass
class ModelState:
    model: Model
    table: RouteTable | None
    active: str | None
    loaded: dict[str, Loaded]
    errors: dict[str, str]
    salt: str = ""
    slots: tuple[Loaded, ...] = ()  # per table version: what serves it
    transient: bool = False  # an error that may not repeat (git): rebuild on the next reload

    @property
    def serving(self) -> bool:
        """True when the active version is loaded (a model without an active one never serves)."""
        return self.active is not None and self.active in self.loaded


@dataclass
class State:
    commit: str
    snapshot: Snapshot
    models: dict[str, ModelState]
    # model id → (key prefix, hash seed, slot → index, index → what serves, table) for models
    # with a route table: what Registry.run needs, in one tuple
    fast: dict[str, tuple[str, int, Any, tuple[Loaded, ...], RouteTable]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, entry in self.models.items():
            table = entry.table
            if table is not None:
                self.fast[name] = (table._prefix, table._seed, table._index, entry.slots, table)


class StateBuilder:
    """Makes :class:`State` objects for commits and owns the sessions they share."""

    def __init__(self, validator: Validator, *, session_options: Any = None,
                 providers: list[str] | None = None, rng: random.Random | None = None) -> None:
        self.validator = validator
        self.sessions: dict[str, Any] = {}  # artifact sha256 → InferenceSession
        self._session_options = session_options
        self._providers = providers or ["CPUExecutionProvider"]
        self._rng = rng
        self._prefetched: dict[str, bytes] = {}  # blob id → bytes, while a state is built

    def build(self, commit: str, previous: State | None = None) -> State:
        """The state of ``commit``, reusing what ``previous`` built for unchanged model files.
        Raises InvalidError (TransientError when it may not repeat) for an invalid registry."""
        report = self.validator.validate(commit)
        if not report.valid:
            error = TransientError if report.transient else InvalidError
            raise error(f"registry at {commit[:12]} is invalid", findings=report.findings[:20])
        snapshot = report.snapshot
        assert snapshot is not None
        salt = ""
        settings = snapshot.settings.spec if snapshot.settings is not None else None
        if settings is not None and settings.routing is not None and settings.routing.salt:
            salt = settings.routing.salt
        models: dict[str, ModelState] = {}
        todo = []
        for name, model in snapshot.models.items():
            old = previous.models.get(name) if previous else None
            if old is not None and old.model is model and old.salt == salt and not old.transient:
                # The same file content (the loader reuses parsed files by blob id): the same
                # split, artifacts (their sha256 just verified by the validator) and outcomes.
                models[name] = old
            else:
                todo.append((name, model, old))
        self._prefetch(snapshot, [model for _, model, _ in todo])
        try:
            for name, model, old in todo:
                models[name] = self._build_model(snapshot, name, model, salt, old)
        finally:
            self._prefetched = {}
        return State(commit, snapshot, dict(sorted(models.items())))

    @staticmethod
    def check_still_serving(current: State, new: State) -> None:
        """A commit may not take a model that serves now out of service: by leaving it no active
        version (unless the model is retired on purpose) or one that cannot load."""
        for name, old in current.models.items():
            entry = new.models.get(name)
            if old.active is not None and (entry is None or (entry.active is None and not entry.model.retired)):
                raise InvalidError(f"model '{name}' serves '{old.active}' now but has no active version "
                                   f"at {new.commit[:12]}; keeping the current state",
                                   hint="promote a version, or set 'retired: true' to take it out of "
                                        "service on purpose")
            if old.serving and entry is not None and entry.active is not None and not entry.serving:
                error = TransientError if entry.transient else InvalidError
                raise error(f"model '{name}': active version '{entry.active}' cannot be loaded: "
                            f"{entry.errors.get(entry.active)}; keeping the current state")

    def release_unused(self, state: State) -> None:
        """Drop cached sessions that ``state`` does not use (called under the reload lock)."""
        live = {
            loaded.sha256
            for entry in state.models.values()
            for loaded in entry.loaded.values()
            if loaded.sha256 is not None
        }
        for sha in [s for s in self.sessions if s not in live]:
            del self.sessions[sha]

    def _prefetch(self, snapshot: Snapshot, models: list[Model]) -> None:
        """Read the artifacts that will need a new session in one ``git cat-file`` round-trip."""
        wanted = {}
        for model in models:
            for version_id in [*model.split(), *([model.active.version] if model.active else [])]:
                version = model.version(version_id)
                artifact = version.artifact if version is not None else None
                if isinstance(artifact, FileArtifact) and artifact.sha256 not in self.sessions:
                    entry, problem = resolve_path(snapshot, artifact.path)
                    if entry is not None and problem is None:
                        wanted[entry.blob] = entry
        if len(wanted) > 1:
            try:
                self._prefetched = snapshot.source.read_many(("", e) for e in wanted.values())
            except ModelgitError:
                self._prefetched = {}  # each is read (and fails) on its own below

    def _build_model(self, snapshot: Snapshot, name: str, model: Model, salt: str,
                     old: ModelState | None) -> ModelState:
        active = model.active
        split = {v: float(w) for v, w in model.split().items() if w > 0}
        table = None
        if split:
            reuse = old is not None and old.table is not None and old.table.split == split \
                and old.table.salt == salt
            table = old.table if reuse and old is not None else RouteTable(name, split, salt, self._rng)
        entry = ModelState(model, table, active.version if active else None, {}, {}, salt)
        if entry.active is not None:
            self.load_version(snapshot, name, entry, entry.active)
        for version in split:
            if version not in entry.loaded and version not in entry.errors:
                self.load_version(snapshot, name, entry, version)
        if table is not None:
            entry.slots = tuple(self._slot(entry, version) for version in table.versions)
        return entry

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

    def load_version(self, snapshot: Snapshot, name: str, entry: ModelState, version_id: str) -> None:
        """Load ``version_id`` into ``entry.loaded``, or say why not in ``entry.errors``."""
        version = entry.model.version(version_id)
        assert version is not None
        artifact = version.artifact
        sha = None
        try:
            if isinstance(artifact, HostedArtifact):
                session: Any = HostedModel(name, version_id, artifact.provider, artifact.model_id)
                inputs: tuple[str, ...] = ()
            elif isinstance(artifact, FileArtifact):
                session = self.session_for(snapshot, artifact)
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

    def session_for(self, snapshot: Snapshot, artifact: FileArtifact) -> Any:
        """The session of ``artifact`` (cached by sha256), its bytes verified first."""
        cached = self.sessions.get(artifact.sha256)
        if cached is not None:
            return cached
        entry, problem = resolve_path(snapshot, artifact.path)
        if problem is not None or entry is None:
            raise InvalidError(problem[1] if problem else f"{artifact.path} is missing")
        data = self._prefetched.get(entry.blob)
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
        return session
