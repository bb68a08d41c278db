"""The runtime loader: serve what the registry says at a git ref.

>>> reg = Registry.open(".", ref="main")                   # doctest: +SKIP
>>> reg.route("calling_score", key="user-42")              # doctest: +SKIP
'v1.0-hybrid'
>>> reg.run("calling_score", x, key="user-42")              # doctest: +SKIP
[array([[151.3]], dtype=float32)]
>>> reg.watch(interval=5.0)                                # doctest: +SKIP

One :class:`_State` is one commit: models, route tables and loaded sessions. A reload builds the
next state completely off the request path (parse only changed files, verify checksums, create
sessions) and then swaps one attribute — atomic under the GIL — so a request sees either the old
state or the new one, never a mix, and requests in flight finish on the state they started with.
A commit that is invalid, not a descendant of the current one, or that would take a model that
serves now out of service (its new active version cannot load) is refused and the last good state
keeps serving.

The request path is one dict lookup, one hash and two indexings: each model's route table maps a
key to a slot of ``_ModelState.slots``, which already holds what serves that version — its
session, or the active version's when it cannot load (``fallback_from`` says so and is counted).
A routed version that fails *at run time* falls back to the active version too: a request the
active version can serve never fails.

Versions whose artifact is a URI are not fetched by the runtime: they are listed with the reason
in ``info()`` and their traffic is served by the active version; a model whose active version is a
URI cannot serve (its requests raise :class:`InvalidError`) but does not stop the others.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelgit.errors import (
    GitError,
    InputError,
    InvalidError,
    ModelgitError,
    TransientError,
    UsageError,
    is_transient,
)
from modelgit.gitstore import GitRepo
from modelgit.runtime.router import BUCKETS, RouteTable, _hash
from modelgit.snapshot import Loader, Snapshot
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
class _Loaded:
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

    def standing_in_for(self, version: str) -> _Loaded:
        return _Loaded(self.version, self.session, self.input_names, self.weight, self.sha256,
                       self.first_input, self.run, version)


def _input_error(model: str, loaded: _Loaded, inputs: Any, exc: Exception) -> Exception:
    """An InputError naming the input, what it expects and what it got, when that is why
    onnxruntime refused ``inputs``; else ``exc`` itself."""
    from modelgit.runtime.inputs import input_problem

    if loaded.run is None or loaded.session is None:
        return exc
    try:
        problem = input_problem(loaded.session, inputs)
    except Exception:  # a diagnosis must never hide the original error
        return exc
    if problem is None:
        return exc
    name = model.partition(":")[0]
    return InputError(f"'{name}' version '{loaded.version}': {problem}",
                      hint=f"the inputs and outputs of each version: modelgit show {name} --json")


@dataclass
class _ModelState:
    model: Model
    table: RouteTable | None
    active: str | None
    loaded: dict[str, _Loaded]
    errors: dict[str, str]
    salt: str = ""
    slots: tuple[_Loaded, ...] = ()  # per table version: what serves it
    transient: bool = False  # an error that may not repeat (git): rebuild on the next reload

    @property
    def serving(self) -> bool:
        """True when the active version is loaded (a model without an active one never serves)."""
        return self.active is not None and self.active in self.loaded


@dataclass
class _State:
    commit: str
    snapshot: Snapshot
    models: dict[str, _ModelState]
    # model id → (key prefix, hash seed, slot → index, index → what serves, table) for models
    # with a route table: what Registry.run needs, in one tuple
    fast: dict[str, tuple[str, int, Any, tuple[_Loaded, ...], RouteTable]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, entry in self.models.items():
            table = entry.table
            if table is not None:
                self.fast[name] = (table._prefix, table._seed, table._index, entry.slots, table)


@dataclass
class _Stats:
    fallbacks: Counter[tuple[str, str]] = field(default_factory=Counter)
    run_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_run_error: dict[tuple[str, str], str] = field(default_factory=dict)
    refused: list[dict[str, str]] = field(default_factory=list)
    reloads: int = 0


def _is_url(text: str) -> bool:
    return "://" in text or (text.startswith("git@") and ":" in text)


class Registry:
    """Serve models from the registry committed at ``ref``. Thread-safe for readers."""

    def __init__(
        self,
        repo: GitRepo,
        ref: str,
        *,
        remote: bool = False,
        session_options: Any = None,
        providers: list[str] | None = None,
        rng: random.Random | None = None,
        allow_reset: bool = False,
    ) -> None:
        self._repo = repo
        self._rng = rng
        self._ref = ref
        self._remote = remote
        self._session_options = session_options
        self._providers = providers or ["CPUExecutionProvider"]
        self._loader = Loader(repo)
        self._validator = Validator(repo, self._loader)
        self._sessions: dict[str, Any] = {}  # artifact sha256 → InferenceSession
        self._stats = _Stats()
        self._reload_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._refused_commits: set[str] = set()
        self._prefetched: dict[str, bytes] = {}  # blob id → bytes, while a state is built
        self._served = _ServedFile(repo, ref)
        tip = self._repo.resolve(self._ref)
        # Start from the last commit this ref served (persisted by any process sharing the cache):
        # a tip that is invalid, or that does not descend from it (a force-push back in time, an
        # unrelated history), is then refused by the reload below instead of served, so a bad
        # commit cannot crash-loop a service and a restart cannot go back in time. allow_reset
        # starts from the tip on purpose.
        last_good = None if allow_reset else self._served.read()
        start = last_good if last_good is not None and last_good != tip else tip
        self._state: _State = self._build(start)
        self._loader.forget_except([self._state.snapshot])
        self._served.write(start)
        if start != tip:
            self.reload()

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        repo: str | os.PathLike[str] = ".",
        ref: str = "main",
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        session_options: Any = None,
        providers: list[str] | None = None,
        rng: random.Random | None = None,
        allow_reset: bool = False,
    ) -> Registry:
        """Open the registry at ``ref`` of a local repository or a git URL (cloned into
        ``cache_dir``, by default ``~/.cache/modelgit``, and fetched on every reload). ``rng``
        draws the versions of requests without a key (``random.Random(seed)`` to reproduce them);
        by default a generator private to modelgit, never the global one.

        The last commit served is remembered per ref (in the repository's ``.git/modelgit/served``
        or the clone's) and a new process starts from it: ``allow_reset=True`` serves the ref's
        tip instead, for a deliberate reset to an older or unrelated history."""
        text = os.fspath(repo)
        if _is_url(text) and not Path(text).exists():
            git_repo = _mirror(text, cache_dir)
            return cls(git_repo, ref, remote=True, session_options=session_options, providers=providers,
                       rng=rng, allow_reset=allow_reset)
        return cls(GitRepo.discover(text), ref, session_options=session_options, providers=providers,
                   rng=rng, allow_reset=allow_reset)

    # -- the request path --------------------------------------------------------------------------
    def route(self, model: str, key: str | None = None) -> str:
        """The version ``key`` is assigned to (sticky; without a key a weighted random choice).
        A pin ``"model:version"`` returns its version. When the routed version cannot load, the
        active version serves it (see ``info()["models"][model]["fallbacks"]``)."""
        state = self._state
        name, pinned = _split_pin(model)
        entry = _model_state(state, name)
        if pinned:
            _pinnable(name, entry, pinned)
            return pinned
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        return entry.table.choose(key)

    def resolve(self, model: str, key: str | None = None) -> tuple[str, str]:
        """``(routed, serving)``: the version ``key`` is assigned to and the version that answers
        for it (the active one when the routed version cannot load), from one random draw when
        there is no key. A pin resolves to itself (loading it). Raises when nothing can serve.
        For tools and debugging: it counts no fallback."""
        state = self._state
        name, pinned = _split_pin(model)
        entry = _model_state(state, name)
        if pinned:
            return pinned, self._resolve_slow(state, model, key).version
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        index = entry.table.index(key)
        loaded = entry.slots[index]
        if loaded.session is None:
            raise InvalidError(f"model '{name}' cannot serve: {loaded.problem}")
        return entry.table.versions[index], loaded.version

    def _pick(self, state: _State, model: str, key: object) -> _Loaded:
        """What serves ``key``: a slot of the route table, or a pinned version."""
        entry = state.models.get(model)
        if entry is None or entry.table is None:
            return self._resolve_slow(state, model, key)
        loaded = entry.slots[entry.table.index(key)]
        if loaded.fallback_from is not None:
            return self._fell_back(model, loaded)
        return loaded

    def _resolve_slow(self, state: _State, model: str, key: object) -> _Loaded:
        name, pinned = _split_pin(model)
        entry = _model_state(state, name)
        if pinned:
            loaded = entry.loaded.get(pinned)
            if loaded is None:
                loaded = self._load_pinned(state, name, entry, pinned)
            return loaded
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        return self._pick(state, name, key)

    def _fell_back(self, model: str, loaded: _Loaded) -> _Loaded:
        assert loaded.fallback_from is not None
        if loaded.session is None:
            raise InvalidError(f"model '{model}' cannot serve: {loaded.problem}")
        self._stats.fallbacks[(model, loaded.fallback_from)] += 1
        return loaded

    def session(self, model: str, key: str | None = None) -> Any:
        """The onnxruntime session serving ``key`` (or a :class:`HostedModel` for a provider
        version). ``"model:version"`` pins a version; deprecated versions load by pin too."""
        return self._pick(self._state, model, key).session

    def weight(self, model: str, key: str | None = None) -> float | None:
        """The blend weight of the version serving ``key``."""
        return self._pick(self._state, model, key).weight

    def run(self, model: str, inputs: Any, key: str | None = None,
            output_names: list[str] | None = None, run_options: Any = None) -> list[Any]:
        """Run the version serving ``key`` on ``inputs`` (an array for a single-input model, or a
        dict of input name → array). Returns onnxruntime's list of outputs. ``run_options`` (an
        ``onnxruntime.RunOptions``, e.g. a :class:`modelgit.sessions.Deadline`'s) bound the call."""
        state = self._state
        fast = state.fast.get(model)
        if fast is None:  # a pin, an unknown model or one without an active version
            loaded = self._resolve_slow(state, model, key)
        else:  # RouteTable.index, inlined: this is the hot path
            prefix, seed, index, slots, table = fast
            loaded = slots[table.index(None) if key is None
                           else index[_hash(f"{prefix}{key}", seed, False) % BUCKETS]]
            if loaded.fallback_from is not None:
                loaded = self._fell_back(model, loaded)
        feed = inputs if inputs.__class__ is dict else {loaded.first_input: inputs}
        try:
            return loaded.run(output_names, feed, run_options)
        except Exception as exc:  # onnxruntime's own types; a hosted version has no run
            return self._run_failed(state, model, loaded, inputs, output_names, exc, run_options)

    def _run_failed(self, state: _State, model: str, loaded: _Loaded, inputs: Any,
                    output_names: list[str] | None, exc: Exception, run_options: Any) -> list[Any]:
        if run_options is not None and run_options.terminate:
            raise exc  # stopped on purpose: no fallback may run past the caller's deadline
        if isinstance(inputs, Mapping) and inputs.__class__ is not dict and loaded.run is not None:
            inputs = dict(inputs)  # an OrderedDict or other mapping of input name → array
            try:
                return loaded.run(output_names, inputs, run_options)
            except Exception as again:
                exc = again
        if isinstance(loaded.session, HostedModel):
            hosted = loaded.session
            raise UsageError(f"'{model}' version '{loaded.version}' is hosted by "
                             f"{hosted.provider}; call the provider with {hosted.model_id}") from None
        entry = state.models.get(model)  # None for a pin: a pinned version never falls back
        if entry is None or entry.active is None or loaded.version == entry.active:
            raise _input_error(model, loaded, inputs, exc) from exc
        active = entry.loaded.get(entry.active)
        if active is None or active.run is None:
            raise _input_error(model, loaded, inputs, exc) from exc
        # The routed (staging) version failed on this input: the active one answers, and why
        # is counted; if the active one fails too, the input is the problem and its error stands.
        self._stats.run_errors[(model, loaded.version)] += 1
        self._stats.last_run_error[(model, loaded.version)] = str(exc).strip()[:300]
        feed = inputs if isinstance(inputs, dict) else {active.first_input: inputs}
        try:
            return active.run(output_names, feed, run_options)
        except Exception as again:
            raise _input_error(model, active, inputs, again) from again

    # -- introspection -----------------------------------------------------------------------------
    @property
    def commit(self) -> str:
        return self._state.commit

    def models(self) -> list[str]:
        return sorted(self._state.models)

    def info(self, model: str | None = None) -> dict[str, Any]:
        """What serves now: commit, versions, split, loaded sessions, fallback counters, refusals."""
        state = self._state
        names = [model] if model else sorted(state.models)
        out: dict[str, Any] = {"commit": state.commit, "ref": self._ref,
                               "reloads": self._stats.reloads,
                               "refused": list(self._stats.refused[-10:]), "models": {}}
        # copies taken in one C call each: request threads may add counters meanwhile
        fallbacks, run_errors = dict(self._stats.fallbacks), dict(self._stats.run_errors)
        last_error = dict(self._stats.last_run_error)
        for name in names:
            entry = _model_state(state, name)
            out["models"][name] = {
                "active": entry.active,
                "serving": entry.serving,
                "traffic": entry.table.split if entry.table else {},
                "versions": {v.version: v.status for v in entry.model.versions},
                "loaded": sorted(entry.loaded),
                "errors": dict(entry.errors),
                "fallbacks": {v: n for (m, v), n in fallbacks.items() if m == name},
                "run_errors": {v: {"count": n, "last": last_error.get((m, v), "")}
                               for (m, v), n in run_errors.items() if m == name},
            }
        return out["models"][model] | {"commit": state.commit} if model else out

    # -- reloading -----------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Move to the ref's current commit if it is valid and descends from the current one.
        Returns True when a new commit now serves. Never raises for a bad commit: it is refused,
        logged and listed in ``info()["refused"]``, and the last good state keeps serving."""
        with self._reload_lock:
            if self._remote:
                try:
                    self._repo.fetch_mirror()
                except GitError as exc:
                    self._refuse(None, "git remote unreachable: " + exc.message[:200])
                    return False
            try:
                commit = self._repo.resolve(self._ref)
            except ModelgitError as exc:
                self._refuse(None, exc.message)
                return False
            current = self._state.commit
            if commit == current or commit in self._refused_commits:
                return False  # nothing new (a refused commit is judged once)
            if not self._repo.is_ancestor(current, commit):
                self._refuse(commit, f"{commit[:12]} does not descend from {current[:12]} "
                                     "(history rewritten?); keeping the current state", final=True)
                return False
            try:
                state = self._build(commit)
                self._check_still_serving(state)
            except ModelgitError as exc:
                # Judged once only when the refusal is about the commit's content; a git or a
                # transient failure (memory, threads, I/O) is retried on the next poll.
                self._refuse(commit, exc.render(),
                             final=not isinstance(exc, (GitError, TransientError)))
                self._release_unused()
                return False
            except Exception as exc:  # a bug or an onnxruntime crash must not stop serving
                log.exception("modelgit: building %s failed", commit[:12])
                self._refuse(commit, f"{type(exc).__name__}: {str(exc)[:200]}")
                self._release_unused()
                return False
            self._state = state
            self._served.write(commit)
            self._stats.reloads += 1
            self._release_unused()
            self._loader.forget_except([state.snapshot])
            self._validator.forget_except(state.snapshot)
            log.info("modelgit: now serving %s (was %s)", commit[:12], current[:12])
            return True

    def watch(self, interval: float = 5.0) -> None:
        """Poll the ref every ``interval`` seconds in a daemon thread and reload on change."""
        if self._watcher is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload()
                except Exception:  # never let the watcher die; the state keeps serving
                    log.exception("modelgit: reload failed")

        self._watcher = threading.Thread(target=loop, name="modelgit-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching (sessions are released when the registry is dropped)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building a state (off the request path) ----------------------------------------------------
    def _refuse(self, commit: str | None, reason: str, final: bool = False) -> None:
        log.warning("modelgit: refused %s: %s", commit[:12] if commit else self._ref, reason)
        self._stats.refused.append({"commit": commit or "", "reason": reason})
        del self._stats.refused[:-50]
        if final and commit:
            self._refused_commits.add(commit)

    def _check_still_serving(self, state: _State) -> None:
        """A commit may not take a model that serves now out of service: by leaving it no active
        version (unless the model is retired on purpose) or one that cannot load."""
        for name, old in self._state.models.items():
            new = state.models.get(name)
            if old.active is not None and (new is None or (new.active is None and not new.model.retired)):
                raise InvalidError(f"model '{name}' serves '{old.active}' now but has no active version "
                                   f"at {state.commit[:12]}; keeping the current state",
                                   hint="promote a version, or set 'retired: true' to take it out of "
                                        "service on purpose")
            if old.serving and new is not None and new.active is not None and not new.serving:
                error = TransientError if new.transient else InvalidError
                raise error(f"model '{name}': active version '{new.active}' cannot be loaded: "
                                   f"{new.errors.get(new.active)}; keeping the current state")

    def _build(self, commit: str) -> _State:
        report = self._validator.validate(commit)
        if not report.valid:
            error = TransientError if report.transient else InvalidError
            raise error(f"registry at {commit[:12]} is invalid", findings=report.findings[:20])
        snapshot = report.snapshot
        assert snapshot is not None
        salt = ""
        settings = snapshot.settings.spec if snapshot.settings is not None else None
        if settings is not None and settings.routing is not None and settings.routing.salt:
            salt = settings.routing.salt
        models: dict[str, _ModelState] = {}
        previous = getattr(self, "_state", None)
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
        return _State(commit, snapshot, dict(sorted(models.items())))

    def _prefetch(self, snapshot: Snapshot, models: list[Model]) -> None:
        """Read the artifacts that will need a new session in one ``git cat-file`` round-trip."""
        wanted = {}
        for model in models:
            for version_id in [*model.split(), *([model.active.version] if model.active else [])]:
                version = model.version(version_id)
                artifact = version.artifact if version is not None else None
                if isinstance(artifact, FileArtifact) and artifact.sha256 not in self._sessions:
                    entry, problem = resolve_path(snapshot, artifact.path)
                    if entry is not None and problem is None:
                        wanted[entry.blob] = entry
        if len(wanted) > 1:
            try:
                self._prefetched = snapshot.source.read_many(("", e) for e in wanted.values())
            except ModelgitError:
                self._prefetched = {}  # each is read (and fails) on its own below

    def _build_model(self, snapshot: Snapshot, name: str, model: Model, salt: str,
                     old: _ModelState | None) -> _ModelState:
        active = model.active
        split = {v: float(w) for v, w in model.split().items() if w > 0}
        table = None
        if split:
            reuse = old is not None and old.table is not None and old.table.split == split \
                and old.table.salt == salt
            table = old.table if reuse and old is not None else RouteTable(name, split, salt, self._rng)
        entry = _ModelState(model, table, active.version if active else None, {}, {}, salt)
        if entry.active is not None:
            self._load_version(snapshot, name, entry, entry.active)
        for version in split:
            if version not in entry.loaded and version not in entry.errors:
                self._load_version(snapshot, name, entry, version)
        if table is not None:
            entry.slots = tuple(self._slot(name, entry, version) for version in table.versions)
        return entry

    def _slot(self, name: str, entry: _ModelState, version: str) -> _Loaded:
        loaded = entry.loaded.get(version)
        if loaded is not None:
            return loaded
        active = entry.loaded.get(entry.active) if entry.active else None
        if active is not None:
            return active.standing_in_for(version)
        problem = (f"neither '{version}' ({entry.errors.get(version)}) nor the active version "
                   f"'{entry.active}' ({entry.errors.get(entry.active or '')}) can be loaded")
        return _Loaded(version, None, (), None, fallback_from=version, problem=problem)

    def _load_version(self, snapshot: Snapshot, name: str, entry: _ModelState, version_id: str) -> None:
        version = entry.model.version(version_id)
        assert version is not None
        artifact = version.artifact
        sha = None
        try:
            if isinstance(artifact, HostedArtifact):
                session: Any = HostedModel(name, version_id, artifact.provider, artifact.model_id)
                inputs: tuple[str, ...] = ()
            elif isinstance(artifact, FileArtifact):
                session = self._session_for(snapshot, artifact)
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
        entry.loaded[version_id] = _Loaded(version_id, session, inputs, version.weight, sha,
                                           inputs[0] if inputs else None,
                                           None if hosted else session.run)

    def _load_pinned(self, state: _State, name: str, entry: _ModelState, version_id: str) -> _Loaded:
        _pinnable(name, entry, version_id)
        with self._reload_lock:
            if version_id not in entry.loaded and version_id not in entry.errors:
                self._load_version(state.snapshot, name, entry, version_id)
        loaded = entry.loaded.get(version_id)
        if loaded is None:
            raise InvalidError(f"'{name}:{version_id}' cannot be loaded: {entry.errors.get(version_id)}")
        return loaded

    def _session_for(self, snapshot: Snapshot, artifact: FileArtifact) -> Any:
        cached = self._sessions.get(artifact.sha256)
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
        self._sessions[artifact.sha256] = session
        return session

    def _release_unused(self) -> None:
        """Drop cached sessions that the serving state does not use (called under the lock)."""
        live = {
            loaded.sha256
            for entry in self._state.models.values()
            for loaded in entry.loaded.values()
            if loaded.sha256 is not None
        }
        for sha in [s for s in self._sessions if s not in live]:
            del self._sessions[sha]


def _split_pin(model: str) -> tuple[str, str]:
    """``"score"`` → ("score", ""), ``"score:v2"`` → ("score", "v2"); a ':' with nothing on one
    side is a mistake, not a request for the split."""
    name, colon, pinned = model.partition(":")
    if colon and not (name and pinned):
        what = "no version after ':'" if name else "no model before ':'"
        raise UsageError(f"'{model}' has {what}",
                         hint=f"write '{name or 'MODEL'}' to follow the traffic split, or "
                              f"'{name or 'MODEL'}:VERSION' to pin a version")
    return name, pinned


def _pinnable(name: str, entry: _ModelState, version_id: str) -> None:
    version = entry.model.version(version_id)
    if version is None:
        known = ", ".join(v.version for v in entry.model.versions)
        raise UsageError(f"model '{name}' has no version '{version_id}'", hint=f"known: {known}")
    if version.status == "archived":
        raise InvalidError(f"'{name}:{version_id}' is archived and cannot be loaded",
                           hint="pin a deprecated, active or staging version")


def _model_state(state: _State, name: str) -> _ModelState:
    entry = state.models.get(name)
    if entry is None:
        import difflib

        close = difflib.get_close_matches(name, list(state.models), n=3)
        raise UsageError(f"unknown model '{name}' at {state.commit[:12]}",
                         hint=f"did you mean {', '.join(close)}?" if close else "see 'modelgit show'")
    return entry


class _ServedFile:
    """The last good commit served for a ref, in ``<git dir>/modelgit/served/<digest of ref>``:
    one line, replaced atomically. A file that is missing, damaged or names a commit the
    repository no longer has is ignored (the ref's tip serves, as on a first start)."""

    def __init__(self, repo: GitRepo, ref: str) -> None:
        self._repo = repo
        self.path = repo.git_dir / "modelgit" / "served" / hashlib.sha256(ref.encode()).hexdigest()[:24]

    def read(self) -> str | None:
        try:
            text = self.path.read_text("ascii").strip()
        except (OSError, ValueError):
            return None
        if len(text) not in (40, 64) or any(c not in "0123456789abcdef" for c in text):
            return None
        return self._repo.try_resolve(text)

    def write(self, commit: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
            tmp.write_text(commit + "\n", "ascii")
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only repository: serving goes on, restarts start from the tip
            log.warning("modelgit: cannot remember the commit served in %s: %s", self.path, exc.strerror)


def _mirror(url: str, cache_dir: str | os.PathLike[str] | None) -> GitRepo:
    """A bare clone of ``url`` in the cache directory (created once, fetched on reload)."""
    import shutil

    from modelgit.gitstore import check_remote, clone_mirror

    check_remote(url, "git URL")  # before the cache directory is made or reused
    base = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "modelgit"
    target = base / hashlib.sha256(url.encode()).hexdigest()[:16]
    if not target.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}-{threading.get_ident()}")
        try:
            clone_mirror(url, tmp)
        except GitError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UsageError(f"cannot clone {url}: {exc.message[:300]}",
                             hint="check the URL and your access to it") from None
        try:
            os.replace(tmp, target)
        except OSError:  # another process cloned it first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        try:
            GitRepo(target, target).fetch_mirror()
        except GitError as exc:
            log.warning("modelgit: cannot fetch %s, serving the cached clone: %s", url,
                        exc.message[:200])
    return GitRepo(target, target)
