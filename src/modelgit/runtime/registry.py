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
A commit that is invalid, not a descendant of the current one, or whose artifacts fail to verify
or load is refused and the last good state keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelgit.errors import InvalidError, ModelgitError, UsageError
from modelgit.gitstore import GitRepo
from modelgit.runtime.router import RouteTable
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
    """A version ready to serve: its session (or hosted reference) and the input names."""

    version: str
    session: Any
    input_names: tuple[str, ...]
    weight: float | None


@dataclass
class _ModelState:
    model: Model
    table: RouteTable | None
    active: str | None
    loaded: dict[str, _Loaded]
    errors: dict[str, str]


@dataclass
class _State:
    commit: str
    snapshot: Snapshot
    models: dict[str, _ModelState]


@dataclass
class _Stats:
    fallbacks: Counter[tuple[str, str]] = field(default_factory=Counter)
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
    ) -> None:
        self._repo = repo
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
        commit = self._repo.resolve(self._ref)
        self._state: _State = self._build(commit)

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
    ) -> Registry:
        """Open the registry at ``ref`` of a local repository or a git URL (cloned into
        ``cache_dir``, by default ``~/.cache/modelgit``, and fetched on every reload)."""
        text = os.fspath(repo)
        if _is_url(text) and not Path(text).exists():
            git_repo = _mirror(text, cache_dir)
            return cls(git_repo, ref, remote=True, session_options=session_options, providers=providers)
        return cls(GitRepo.discover(text), ref, session_options=session_options, providers=providers)

    # -- the request path --------------------------------------------------------------------------
    def route(self, model: str, key: str | None = None) -> str:
        """The version that serves ``key`` (sticky); a pin ``"model:version"`` returns its version."""
        state = self._state
        name, _, pinned = model.partition(":")
        entry = _model_state(state, name)
        if pinned:
            return pinned
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        return entry.table.choose(key)

    def _resolve(self, state: _State, model: str, key: str | None) -> _Loaded:
        name, _, pinned = model.partition(":")
        entry = _model_state(state, name)
        if pinned:
            loaded = entry.loaded.get(pinned)
            if loaded is None:
                loaded = self._load_pinned(state, name, entry, pinned)
            return loaded
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        version = entry.table.choose(key)
        loaded = entry.loaded.get(version)
        if loaded is not None:
            return loaded
        # The routed version could not load: serve the active one and count why.
        self._stats.fallbacks[(name, version)] += 1
        assert entry.active is not None
        active = entry.loaded.get(entry.active)
        if active is None:
            raise InvalidError(f"model '{name}': neither '{version}' nor the active version "
                               f"'{entry.active}' can be loaded: {entry.errors.get(entry.active)}")
        return active

    def session(self, model: str, key: str | None = None) -> Any:
        """The onnxruntime session serving ``key`` (or a :class:`HostedModel` for a provider
        version). ``"model:version"`` pins a version; deprecated versions load by pin too."""
        return self._resolve(self._state, model, key).session

    def weight(self, model: str, key: str | None = None) -> float | None:
        """The blend weight of the version serving ``key``."""
        return self._resolve(self._state, model, key).weight

    def run(self, model: str, inputs: Any, key: str | None = None,
            output_names: list[str] | None = None) -> list[Any]:
        """Run the version serving ``key`` on ``inputs`` (an array for a single-input model, or a
        dict of input name → array). Returns onnxruntime's list of outputs."""
        loaded = self._resolve(self._state, model, key)
        session = loaded.session
        if isinstance(session, HostedModel):
            raise UsageError(f"'{model}' version '{loaded.version}' is hosted by "
                             f"{session.provider}; call the provider with {session.model_id}")
        if not isinstance(inputs, dict):
            inputs = {loaded.input_names[0]: inputs}
        return session.run(output_names, inputs)

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
        for name in names:
            entry = _model_state(state, name)
            out["models"][name] = {
                "active": entry.active,
                "traffic": entry.table.split if entry.table else {},
                "versions": {v.version: v.status for v in entry.model.versions},
                "loaded": sorted(entry.loaded),
                "errors": dict(entry.errors),
                "fallbacks": {v: n for (m, v), n in self._stats.fallbacks.items() if m == name},
            }
        return out["models"][model] | {"commit": state.commit} if model else out

    # -- reloading -----------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Move to the ref's current commit if it is valid and descends from the current one.
        Returns True when a new commit now serves. Never raises for a bad commit: it is refused,
        logged and listed in ``info()["refused"]``, and the last good state keeps serving."""
        with self._reload_lock:
            if self._remote:
                proc = self._repo.git("fetch", "--quiet", "--prune", "origin",
                                      "+refs/heads/*:refs/heads/*", check=False)
                if proc.returncode != 0:
                    self._refuse(None, "git remote unreachable: "
                                 + proc.stderr.decode("utf-8", "replace").strip()[:200])
                    return False
            try:
                commit = self._repo.resolve(self._ref)
            except ModelgitError as exc:
                self._refuse(None, exc.message)
                return False
            current = self._state.commit
            if commit == current:
                return False
            if not self._repo.is_ancestor(current, commit):
                self._refuse(commit, f"{commit[:12]} does not descend from {current[:12]} "
                                     "(history rewritten?); keeping the current state")
                return False
            try:
                state = self._build(commit)
            except ModelgitError as exc:
                self._refuse(commit, exc.render())
                return False
            previous, self._state = self._state, state
            self._stats.reloads += 1
            self._release_unused(previous)
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
    def _refuse(self, commit: str | None, reason: str) -> None:
        log.warning("modelgit: refused %s: %s", commit[:12] if commit else self._ref, reason)
        self._stats.refused.append({"commit": commit or "", "reason": reason})
        del self._stats.refused[:-50]

    def _build(self, commit: str) -> _State:
        report = self._validator.validate(commit)
        if not report.valid:
            raise InvalidError(f"registry at {commit[:12]} is invalid", findings=report.findings[:20])
        snapshot = report.snapshot
        salt = ""
        settings = snapshot.settings.spec if snapshot.settings is not None else None
        if settings is not None and settings.routing is not None and settings.routing.salt:
            salt = settings.routing.salt
        models: dict[str, _ModelState] = {}
        previous = getattr(self, "_state", None)
        for name, model in snapshot.models.items():
            active = model.active
            split = model.split()
            old = previous.models.get(name) if previous else None
            table = None
            if split:
                table = old.table if old and old.table and old.table.split == {
                    k: float(v) for k, v in split.items() if v > 0} else RouteTable(name, split, salt)
            entry = _ModelState(model, table, active.version if active else None, {}, {})
            for version in split:
                self._load_version(snapshot, name, entry, version)
            models[name] = entry
            if entry.active is not None and entry.active not in entry.loaded:
                raise InvalidError(f"model '{name}': active version '{entry.active}' cannot be loaded: "
                                   f"{entry.errors.get(entry.active)}")
        self._loader.forget_except([snapshot])
        return _State(commit, snapshot, models)

    def _load_version(self, snapshot: Snapshot, name: str, entry: _ModelState, version_id: str) -> None:
        version = entry.model.version(version_id)
        assert version is not None
        artifact = version.artifact
        try:
            if isinstance(artifact, HostedArtifact):
                session: Any = HostedModel(name, version_id, artifact.provider, artifact.model_id)
                inputs: tuple[str, ...] = ()
            elif isinstance(artifact, FileArtifact):
                session = self._session_for(snapshot, artifact)
                inputs = tuple(arg.name for arg in session.get_inputs())
            else:
                raise InvalidError(f"artifact URI {artifact.uri} is not fetched by the runtime")
        except ModelgitError as exc:
            entry.errors[version_id] = exc.message
            log.warning("modelgit: %s:%s cannot load: %s", name, version_id, exc.message)
            return
        entry.loaded[version_id] = _Loaded(version_id, session, inputs, version.weight)

    def _load_pinned(self, state: _State, name: str, entry: _ModelState, version_id: str) -> _Loaded:
        version = entry.model.version(version_id)
        if version is None:
            known = ", ".join(v.version for v in entry.model.versions)
            raise UsageError(f"model '{name}' has no version '{version_id}'", hint=f"known: {known}")
        if version.status == "archived":
            raise InvalidError(f"'{name}:{version_id}' is archived and cannot be loaded",
                               hint="pin a deprecated, active or staging version")
        with self._reload_lock:
            if version_id not in entry.loaded:
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
        data = snapshot.source.read(artifact.path, entry)
        digest = hashlib.sha256(data).hexdigest()  # verified before onnxruntime sees the bytes
        if digest != artifact.sha256:
            raise InvalidError(f"{artifact.path}: sha256 {digest} does not match the recorded "
                               f"{artifact.sha256}")
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(data, sess_options=self._session_options,
                                           providers=self._providers)
        except Exception as exc:  # onnxruntime's own exception types
            raise InvalidError(f"{artifact.path}: onnxruntime cannot load it: "
                               f"{str(exc).strip()[:200]}") from None
        self._sessions[artifact.sha256] = session
        return session

    def _release_unused(self, previous: _State) -> None:
        live = {
            v.artifact.sha256
            for entry in self._state.models.values()
            for v in entry.model.versions
            if isinstance(v.artifact, FileArtifact) and v.version in entry.loaded
        }
        for sha in [s for s in self._sessions if s not in live]:
            del self._sessions[sha]
        del previous


def _model_state(state: _State, name: str) -> _ModelState:
    entry = state.models.get(name)
    if entry is None:
        import difflib

        close = difflib.get_close_matches(name, list(state.models), n=3)
        raise UsageError(f"unknown model '{name}' at {state.commit[:12]}",
                         hint=f"did you mean {', '.join(close)}?" if close else "see 'modelgit show'")
    return entry


def _mirror(url: str, cache_dir: str | os.PathLike[str] | None) -> GitRepo:
    """A bare clone of ``url`` in the cache directory (created once, fetched on reload)."""
    import subprocess

    base = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "modelgit"
    target = base / hashlib.sha256(url.encode()).hexdigest()[:16]
    if not target.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        proc = subprocess.run(["git", "clone", "--quiet", "--bare", url, str(tmp)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise UsageError(f"cannot clone {url}: {proc.stderr.strip()[:300]}",
                             hint="check the URL and your access to it")
        os.replace(tmp, target)
    else:
        subprocess.run(["git", "fetch", "--quiet", "--prune", "origin", "+refs/heads/*:refs/heads/*"],
                       cwd=target, capture_output=True)
    return GitRepo(target, target)
