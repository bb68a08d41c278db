"""The runtime loader: serve what the registry says at a git ref.

>>> reg = Registry.open(".", ref="main")                   # doctest: +SKIP
>>> reg.route("calling_score", key="user-42")              # doctest: +SKIP
'v1.0-hybrid'
>>> reg.run("calling_score", x, key="user-42")              # doctest: +SKIP
[array([[151.3]], dtype=float32)]
>>> reg.watch(interval=5.0)                                # doctest: +SKIP

One :class:`State` is one commit: models, route tables and loaded sessions. A reload builds the
next state off the request path (parse only changed files, verify checksums) and then swaps one
attribute — atomic under the GIL — so a request sees either the old state or the new one, never a
mix, and requests in flight finish on the state they started with.
A commit that is invalid, not a descendant of the current one, or that would take a model that
serves now out of service (its new active version cannot load) is refused and the last good state
keeps serving.

Opening and reloading validate every model eagerly (an invalid commit is refused), but a model's
route table and onnxruntime sessions are made on its first request (``route`` builds the table
only): the first request of a model pays its session loads (about a millisecond each for a small
model, after the sha256 check), every later one takes no lock. ``Registry.open(...,
preload=True)`` prepares every model at open and each changed model at reload instead, for a
server that would rather pay at start than on a request. Either way a reload tries the new active
version of a model that serves when its artifact changed, so a commit that would take the model
out of service is refused.

The request path (once a model is prepared) is one dict lookup, one hash and two indexings: each
model's route table maps a key to a slot of ``ModelState.slots``, which already holds what serves
that version — its session, or the active version's when it cannot load (``fallback_from`` says
so and is counted). A routed version that fails *at run time* falls back to the active version
too: a request the active version can serve never fails.

Versions whose artifact is a URI are not fetched by the runtime: they are listed with the reason
in ``info()`` and their traffic is served by the active version; a model whose active version is a
URI cannot serve (its requests raise :class:`InvalidError`) but does not stop the others.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from modelgit.errors import InputError, InvalidError, NotFoundError, UsageError
from modelgit.gitstore import GitRepo
from modelgit.runtime.reload import Reloader
from modelgit.runtime.router import BUCKETS, _hash
from modelgit.runtime.source import LocalRef, Mirror, ServedMemory, is_url
from modelgit.runtime.state import HostedModel, Loaded, ModelState, State, StateBuilder
from modelgit.snapshot import Loader
from modelgit.validate import Validator

if TYPE_CHECKING:
    from modelgit.runtime.feed import HttpFeed

__all__ = ["HostedModel", "Registry"]

log = logging.getLogger("modelgit.runtime")



def _input_error(model: str, loaded: Loaded, inputs: Any, exc: Exception) -> Exception:
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
class _Stats:
    fallbacks: Counter[tuple[str, str]] = field(default_factory=Counter)
    run_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_run_error: dict[tuple[str, str], str] = field(default_factory=dict)


class Registry:
    """Serve models from the registry committed at ``ref``. Thread-safe for readers."""

    def __init__(
        self,
        repo: GitRepo,
        ref: str,
        *,
        source: LocalRef | Mirror | HttpFeed | None = None,
        session_options: Any = None,
        providers: list[str] | None = None,
        rng: random.Random | None = None,
        allow_reset: bool = False,
        tracker: Any = None,
        preload: bool = False,
    ) -> None:
        self._ref = ref
        self._stats = _Stats()
        self._tracker = tracker
        if tracker is not None:  # the untracked request path stays exactly as fast as it was
            self.run = self._run_tracked  # type: ignore[method-assign]
        loader = Loader(repo)
        self._validator = Validator(repo, loader)
        self._builder = StateBuilder(self._validator, session_options=session_options,
                                     providers=providers, rng=rng, preload=preload)
        self._reloader = Reloader(source or LocalRef(repo, ref), self._builder, loader,
                                  ServedMemory(repo, ref), lambda: self._state, self._set_state)
        self._state: State
        self._state, behind = self._reloader.first_state(allow_reset)
        if behind:
            self.reload()

    def _set_state(self, state: State) -> None:
        self._state = state  # one attribute: atomic for the request path

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
        tracker: Any = None,
        feed: bool | None = None,
        preload: bool = False,
    ) -> Registry:
        """Open the registry at ``ref`` of a local repository or a git URL (mirrored into
        ``cache_dir``, by default ``~/.cache/modelgit``, and fetched on every reload: fetches land
        in quarantine and the mirror's branch moves only to commits validated here). ``rng``
        draws the versions of requests without a key (``random.Random(seed)`` to reproduce them);
        by default a generator private to modelgit, never the global one.

        The last commit served is remembered per ref (in the repository's ``.git/modelgit/served``
        or the mirror's) and a new process starts from it: ``allow_reset=True`` serves the ref's
        tip instead, for a deliberate reset to an older or unrelated history.

        ``tracker`` (a :class:`modelgit.Tracker`) records the version, latency and serving commit
        of every ``run`` off the request path; :meth:`record` attaches outcomes later.

        ``repo`` may also be a ``modelgit serve`` server: the replica then polls its snapshot feed
        (``GET /api/snapshot``) and fetches artifacts by sha256, never git (see
        :mod:`modelgit.runtime.feed`). The rule: ``feed=True`` or a ``modelgit+http(s)://`` URL is a
        feed; ``feed=False`` or a URL ending in ``.git`` (or ssh, file, ``git@…``) is git; any other
        ``http(s)://`` URL is a feed when it answers ``GET <url>/api/snapshot`` as one (or a feed
        cache of it exists), else git. ``commit`` then reports the server's commit.

        Every model is validated here (an invalid commit raises), but its route table and
        onnxruntime sessions are made on its first request, which pays for them (each artifact's
        sha256 is checked before onnxruntime reads it, and a version that cannot load is served by
        the active one, as always). ``preload=True`` makes them all now, so the first requests
        cost what the others do and a model whose active version cannot load shows in ``info()``
        at once; it costs a 64 KiB table and the sessions of every model, used or not."""
        text = os.fspath(repo)
        if is_url(text) and not Path(text).exists() and feed is not False:
            from modelgit.runtime import feed as feeds

            if feed or feeds.is_feed_url(text):
                source = feeds.open_if_feed(text, ref, cache_dir, explicit=bool(feed) or text.startswith(
                    feeds.SCHEME_PREFIX), allow_reset=allow_reset)
                if source is not None:
                    return cls(source.repo, ref, source=source, session_options=session_options,
                               providers=providers, rng=rng, allow_reset=allow_reset, tracker=tracker,
                               preload=preload)
        if is_url(text) and not Path(text).exists():
            mirror = Mirror.open(text, ref, cache_dir)
            return cls(mirror.repo, ref, source=mirror, session_options=session_options, providers=providers,
                       rng=rng, allow_reset=allow_reset, tracker=tracker, preload=preload)
        return cls(GitRepo.discover(text), ref, session_options=session_options, providers=providers,
                   rng=rng, allow_reset=allow_reset, tracker=tracker, preload=preload)

    # -- the request path --------------------------------------------------------------------------
    def route(self, model: str, key: str | None = None) -> str:
        """The version ``key`` is assigned to (sticky; without a key a weighted random choice).
        A pin ``"model:version"`` returns its version. When the routed version cannot load, the
        active version serves it (see ``info()["models"][model]["fallbacks"]``)."""
        state = self._state
        name, pinned = _split_pin(model)
        entry = self._model_state(state, name)
        if pinned:
            _pinnable(name, entry, pinned)
            return pinned
        table = entry.table or self._builder.table_for(name, entry)  # no session is loaded here
        if table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        return table.choose(key)

    def resolve(self, model: str, key: str | None = None) -> tuple[str, str]:
        """``(routed, serving)``: the version ``key`` is assigned to and the version that answers
        for it (the active one when the routed version cannot load), from one random draw when
        there is no key. A pin resolves to itself (loading it). Raises when nothing can serve.
        For tools and debugging: it counts no fallback."""
        state = self._state
        name, pinned = _split_pin(model)
        entry = self._model_state(state, name)
        if pinned:
            return pinned, self._resolve_slow(state, model, key).version
        self._prepared(state, name, entry)
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        index = entry.table.index(key)
        loaded = entry.slots[index]
        if loaded.session is None:
            raise InvalidError(f"model '{name}' cannot serve: {loaded.problem}")
        return entry.table.versions[index], loaded.version

    def _pick(self, state: State, model: str, key: object) -> Loaded:
        """What serves ``key``: a slot of the route table, or a pinned version."""
        entry = state.models.get(model)
        if entry is None or not entry.ready or entry.table is None:
            return self._resolve_slow(state, model, key)
        loaded = entry.slots[entry.table.index(key)]
        if loaded.fallback_from is not None:
            return self._fell_back(model, loaded)
        return loaded

    def _resolve_slow(self, state: State, model: str, key: object) -> Loaded:
        name, pinned = _split_pin(model)
        entry = self._model_state(state, name)
        if pinned:
            loaded = entry.loaded.get(pinned)
            if loaded is None:
                loaded = self._load_pinned(state, name, entry, pinned)
            return loaded
        self._prepared(state, name, entry)
        if entry.table is None:
            raise InvalidError(f"model '{name}' has no active version to serve")
        loaded = entry.slots[entry.table.index(key)]
        if loaded.fallback_from is not None:
            return self._fell_back(name, loaded)
        return loaded

    def _prepared(self, state: State, name: str, entry: ModelState) -> ModelState:
        """``entry`` with its route table built and its versions loaded: the first request of a
        model pays for it, once (double-checked: concurrent first requests wait for one build,
        later ones take no lock). A state that shares the entry publishes it on its own."""
        if not entry.ready:
            with self._builder.lock:
                if not entry.ready:
                    self._builder.prepare(state.snapshot, name, entry)
        if name not in state.fast:
            state.publish(name, entry)
        return entry

    def _fell_back(self, model: str, loaded: Loaded) -> Loaded:
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

    def _run_tracked(self, model: str, inputs: Any, key: str | None = None,
                     output_names: list[str] | None = None, run_options: Any = None, *,
                     request_id: str | None = None, task: str | None = None, user: str | None = None) -> list[Any]:
        """:meth:`run`, recording the version that answered, its latency and the commit serving
        (with ``request_id``, ``task`` and ``user`` when given) in the tracker's queue."""
        state = self._state
        began = perf_counter()
        loaded = self._pick(state, model, key)
        feed = inputs if inputs.__class__ is dict else {loaded.first_input: inputs}
        try:
            outputs, version = loaded.run(output_names, feed, run_options), loaded.version
        except Exception as exc:
            outputs, version = self._answer_after_failure(state, model, loaded, inputs, output_names, exc,
                                                          run_options)
        self._tracker.record(model.partition(":")[0], version, latency_ms=(perf_counter() - began) * 1000.0,
                             task=task, user=user, request_id=request_id,
                             commit=self._reloader.source.shown(state.commit))
        return outputs

    def record(self, model: str, key: str | None = None, *, request_id: str | None = None,
               quality: float | None = None, satisfaction: float | None = None, latency_ms: float | None = None,
               tokens: float | None = None, task: str | None = None, user: str | None = None) -> None:
        """Record an outcome. With ``request_id`` (given to :meth:`run` before) it attaches
        quality and satisfaction to that request; otherwise it records one request of the version
        ``key`` routes to now (a pin ``"model:version"`` names it), e.g. a hosted model's call."""
        if self._tracker is None:
            raise UsageError("this registry has no tracker",
                             hint="open it with Registry.open(..., tracker=modelgit.Tracker(url))")
        if request_id is not None and latency_ms is None and tokens is None:
            self._tracker.feedback(request_id, quality=quality, satisfaction=satisfaction)
            return
        state = self._state
        name = model.partition(":")[0]
        version = self._pick(state, model, key).version
        self._tracker.record(name, version, quality=quality, satisfaction=satisfaction, latency_ms=latency_ms,
                             tokens=tokens, task=task, user=user, request_id=request_id,
                             commit=self._reloader.source.shown(state.commit))

    def _run_failed(self, state: State, model: str, loaded: Loaded, inputs: Any,
                    output_names: list[str] | None, exc: Exception, run_options: Any) -> list[Any]:
        return self._answer_after_failure(state, model, loaded, inputs, output_names, exc, run_options)[0]

    def _answer_after_failure(self, state: State, model: str, loaded: Loaded, inputs: Any,
                              output_names: list[str] | None, exc: Exception,
                              run_options: Any) -> tuple[list[Any], str]:
        """The outputs after ``loaded`` failed on ``inputs``, and the version that gave them."""
        if run_options is not None and run_options.terminate:
            raise exc  # stopped on purpose: no fallback may run past the caller's deadline
        if isinstance(inputs, Mapping) and inputs.__class__ is not dict and loaded.run is not None:
            inputs = dict(inputs)  # an OrderedDict or other mapping of input name → array
            try:
                return loaded.run(output_names, inputs, run_options), loaded.version
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
            return active.run(output_names, feed, run_options), active.version
        except Exception as again:
            raise _input_error(model, active, inputs, again) from again

    # -- introspection -----------------------------------------------------------------------------
    @property
    def commit(self) -> str:
        """The commit serving now (for a feed replica: the server's commit, not its local copy)."""
        return self._reloader.source.shown(self._state.commit)

    def models(self) -> list[str]:
        return sorted(self._state.models)

    def info(self, model: str | None = None) -> dict[str, Any]:
        """What serves now: commit, versions, split, loaded sessions, fallback counters, refusals.
        It loads nothing: a model not requested yet has ``loaded == []`` and ``serving`` None
        (True once its active version loaded, False when it cannot)."""
        state = self._state
        names = [model] if model else sorted(state.models)
        commit = self._reloader.source.shown(state.commit)
        out: dict[str, Any] = {"commit": commit, "ref": self._ref,
                               "reloads": self._reloader.refusals.reloads,
                               "refused": list(self._reloader.refusals.recent[-10:]), "models": {}}
        # copies taken in one C call each: request threads may add counters meanwhile
        fallbacks, run_errors = dict(self._stats.fallbacks), dict(self._stats.run_errors)
        last_error = dict(self._stats.last_run_error)
        for name in names:
            entry = self._model_state(state, name)
            out["models"][name] = {
                "active": entry.active,
                "serving": entry.serving,
                "traffic": entry.table.split if entry.table else entry.split,
                "versions": {v.version: v.status for v in entry.served.versions},
                "loaded": sorted(entry.loaded),
                "errors": dict(entry.errors),
                "fallbacks": {v: n for (m, v), n in fallbacks.items() if m == name},
                "run_errors": {v: {"count": n, "last": last_error.get((m, v), "")}
                               for (m, v), n in run_errors.items() if m == name},
            }
        return out["models"][model] | {"commit": commit} if model else out

    # -- reloading -----------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Move to the ref's current commit if it is valid and descends from the current one.
        Returns True when a new commit now serves. Never raises for a bad commit: it is refused,
        logged and listed in ``info()["refused"]``, and the last good state keeps serving."""
        return self._reloader.reload()

    def watch(self, interval: float = 5.0, jitter: float | None = None) -> None:
        """Poll the ref every ``interval`` seconds in a daemon thread and reload on change. Each
        wait is drawn in ``interval · (1 ± jitter)``, by default ±10 % for a remote (a git URL or a
        feed: many replicas started at once do not poll in step) and exact for a local ref."""
        if jitter is None:
            jitter = 0.1 if self._reloader.source.remote else 0.0
        self._reloader.watch(interval, jitter)

    def _model_state(self, state: State, name: str) -> ModelState:
        entry = state.models.get(name)
        if entry is None:
            import difflib

            close = difflib.get_close_matches(name, list(state.models), n=3)
            commit = self._reloader.source.shown(state.commit)  # a feed's: the server's commit
            raise NotFoundError(f"unknown model '{name}' at {commit[:12]}",
                                hint=f"did you mean {', '.join(close)}?" if close else "see 'modelgit show'")
        return entry

    def close(self) -> None:
        """Stop watching and close a feed's connections (sessions are released when the registry
        is dropped; ``reload()`` still works, reconnecting)."""
        self._reloader.stop()
        close = getattr(self._reloader.source, "close", None)
        if close is not None:  # a feed's HTTP connections
            close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_pinned(self, state: State, name: str, entry: ModelState, version_id: str) -> Loaded:
        _pinnable(name, entry, version_id)
        with self._builder.lock:
            if version_id not in entry.loaded and version_id not in entry.errors:
                self._builder.load_version(state.snapshot, name, entry, version_id)
        loaded = entry.loaded.get(version_id)
        if loaded is None:
            raise InvalidError(f"'{name}:{version_id}' cannot be loaded: {entry.errors.get(version_id)}")
        return loaded


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


def _pinnable(name: str, entry: ModelState, version_id: str) -> None:
    version = entry.served.version(version_id)
    if version is None:
        known = ", ".join(v.version for v in entry.served.versions)
        raise NotFoundError(f"model '{name}' has no version '{version_id}'", hint=f"known: {known}")
    if version.status == "archived":
        raise InvalidError(f"'{name}:{version_id}' is archived and cannot be loaded",
                           hint="pin a deprecated, active or staging version")
