"""The one door to onnxruntime: every session is made here, with the options the runtime serves
with, and a new artifact is first tried in a child process under a memory and a time limit.

An ONNX graph is hostile input. A 96-byte ConstantOfShape asks for a gigabyte when it runs; a Loop
with a huge trip count never ends. So before an artifact is trusted (``validate``, ``ci``, a
runtime reload), :func:`probe` loads it and runs it once on a zero input in a child process whose
address space is capped (``RLIMIT_AS``) and which is killed after a wall-clock limit. What the
probe learns is a fact about the blob (given the limits) and may be cached by blob id; a failure
to start the child is not.

Limits: ``MODELGIT_ONNX_MEMORY`` (bytes, default 2 GiB) and ``MODELGIT_ONNX_SECONDS`` (default 30)
for that check; ``MODELGIT_RUN_SECONDS`` (default 600) is the wall-clock limit of the model runs of
one ``eval`` or ``run`` command, enforced by :class:`Deadline` through onnxruntime's own
``RunOptions.terminate`` (a run stops between two kernels, in this process, with nothing to kill).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MEMORY = 2 * 1024**3
DEFAULT_SECONDS = 30.0
DEFAULT_RUN_SECONDS = 600.0


def env_number(name: str, default: float) -> float:
    """A positive number from the environment variable ``name`` (``_`` may group digits), or
    ``default`` when it is unset or empty. Anything else is a UsageError naming the variable: a
    typo such as ``4G`` must neither switch a limit off nor quietly mean the default."""
    raw = os.environ.get(name, "")
    text = raw.strip().replace("_", "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        from modelgit.errors import UsageError

        raise UsageError(f"{name}={raw!r} is not a positive number",
                         hint=f"write a plain number, e.g. {name}={default:g}, or unset it for the default")
    return value


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = DEFAULT_MEMORY
    seconds: float = DEFAULT_SECONDS

    @classmethod
    def from_env(cls) -> Limits:
        return cls(int(env_number("MODELGIT_ONNX_MEMORY", DEFAULT_MEMORY)),
                   env_number("MODELGIT_ONNX_SECONDS", DEFAULT_SECONDS))

    def key(self) -> str:
        """How the limits are written next to a cached probe result (a fact only under them)."""
        return f"{self.memory_bytes}:{self.seconds:g}"


@dataclass(frozen=True)
class Probe:
    """What trying an artifact taught: its signature, or why it is refused (``limit`` names the
    limit it broke: "memory" or "time"; None for an invalid model). ``transient``: the child could
    not be started or died of something else; try again later, never cache it."""

    signature: dict[str, Any] | None
    problem: str | None = None
    limit: str | None = None
    transient: bool = False


def options(threads: int = 0) -> Any:
    """The SessionOptions modelgit serves with (and validates with, in the probe's child: there
    with one thread, so the address-space cap measures the model, not the machine's core count)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # Every session has its own thread pool, whose threads by default spin on the CPU after each
    # run waiting for more work. A registry holds many sessions: a process that loads a
    # 200-model registry (preload) and runs each model 5 times took 2.4 s (2.6 s CPU) with spinning
    # and 0.7 s without, against ~20 us more latency for one 1x1024 MatMul (2-core machine,
    # figures in the commit that made this change). Pass your own
    # ``session_options`` to Registry.open to spin (one hot model per process).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = threads
    return opts


def create(data: bytes, session_options: Any = None, providers: list[str] | None = None) -> Any:
    """An InferenceSession of ``data`` (already verified against its sha256 by the caller)."""
    import onnxruntime as ort

    return ort.InferenceSession(data, sess_options=session_options or options(),
                                providers=providers or ["CPUExecutionProvider"])


class Deadline:
    """A wall-clock limit on the ``session.run`` calls that pass :attr:`run_options`.

    >>> with Deadline(5.0) as deadline:                         # doctest: +SKIP
    ...     session.run(None, feeds, deadline.run_options)

    A timer thread sets ``run_options.terminate`` when the time is up; onnxruntime then stops the
    run between two kernels (also inside a Loop) and raises. :meth:`check` turns that into a
    :class:`~modelgit.errors.LimitError`. ``seconds`` defaults to ``MODELGIT_RUN_SECONDS``."""

    def __init__(self, seconds: float | None = None) -> None:
        import onnxruntime as ort

        self.seconds = seconds if seconds is not None else env_number("MODELGIT_RUN_SECONDS", DEFAULT_RUN_SECONDS)
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = 3  # the refusal is ours to report, once
        self.expired = False
        self._timer: threading.Timer | None = None

    def _expire(self) -> None:
        self.expired = True
        self.run_options.terminate = True

    def __enter__(self) -> Deadline:
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def check(self, what: str) -> None:
        """Raise a LimitError about ``what`` when the deadline stopped a run."""
        if self.expired:
            from modelgit.errors import LimitError

            raise LimitError(f"{what} ran longer than the {self.seconds:g}-second limit and was stopped",
                             limit="time", hint="raise MODELGIT_RUN_SECONDS (seconds) if the model needs longer")


def signature_of(session: Any) -> dict[str, Any]:
    return {"inputs": [_tensor(arg) for arg in session.get_inputs()],
            "outputs": [_tensor(arg) for arg in session.get_outputs()]}


def _tensor(arg: Any) -> dict[str, Any]:
    shape = arg.shape if isinstance(arg.shape, list) else []
    return {"name": arg.name, "type": arg.type, "shape": [d if d != "" else None for d in shape]}


_NUMPY = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
          "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(float16)": "float16",
          "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def sample_feeds(session: Any) -> dict[str, Any] | None:
    """Zeros for every input (unknown dimensions 1), or None when an input type has no zero here."""
    import numpy as np

    feeds = {}
    for arg in session.get_inputs():
        dtype = _NUMPY.get(arg.type)
        if dtype is None:
            return None
        shape = [d if isinstance(d, int) and d >= 0 else 1 for d in (arg.shape or [])]
        feeds[arg.name] = np.zeros(shape, dtype=dtype)
    return feeds


# The child: cap the address space, then for each file named on stdin load it, read its
# signature, run it once on zeros, and print one JSON line. Only stdout carries results.
_CHILD = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
paths = open(sys.argv[2], encoding="utf-8").read().splitlines()
try:  # the runtime itself first: failing to start under the cap says nothing about any model
    import numpy, onnxruntime
    from modelgit import sessions
    from modelgit.errors import is_transient
except BaseException as exc:
    problem = "onnxruntime cannot even start under this limit (%s)" % (str(exc).strip()[:120],)
    for path in paths:
        print(json.dumps({"limit": "memory", "problem": problem}), flush=True)
    sys.exit(0)
for path in paths:
    result = {}
    try:
        data = open(path, "rb").read()
        session = sessions.create(data, sessions.options(threads=1))
        result["signature"] = sessions.signature_of(session)
        feeds = sessions.sample_feeds(session)
        if feeds is not None:
            try:
                session.run(None, feeds)
            except MemoryError:
                raise
            except Exception as exc:
                text = str(exc)
                if "allocate" in text.lower() or "bad_alloc" in text:
                    raise MemoryError(text)
                result["run"] = text.strip()[:200]  # zeros may be a wrong input: not a refusal
    except MemoryError as exc:
        result = {"limit": "memory", "problem": str(exc).strip()[:200]}
    except Exception as exc:
        text = str(exc).strip()
        if "allocate" in text.lower() or "bad_alloc" in text:
            result = {"limit": "memory", "problem": text[:200]}
        else:
            result = {"problem": (text.splitlines()[0] if text else type(exc).__name__)[:300]}
            if is_transient(exc):  # I/O, threads: says nothing about the model, never a fact
                result["transient"] = True
    print(json.dumps(result), flush=True)
"""


def probe_many(blobs: list[bytes], limits: Limits | None = None) -> list[Probe]:
    """Try each artifact in a child process under ``limits`` (see the module docstring); one
    child serves many artifacts and is replaced when one of them breaks a limit."""
    limits = limits or Limits.from_env()
    results: list[Probe | None] = [None] * len(blobs)
    with tempfile.TemporaryDirectory(prefix="modelgit-probe-") as tmp:
        paths = []
        for index, data in enumerate(blobs):
            path = Path(tmp) / f"{index}.onnx"
            path.write_bytes(data)
            paths.append(str(path))
        todo = list(range(len(blobs)))
        while todo:
            todo = _run_child(paths, todo, results, limits)
    return [r if r is not None else Probe(None, "not probed", transient=True) for r in results]


def probe(data: bytes, limits: Limits | None = None) -> Probe:
    return probe_many([data], limits)[0]


# What probes taught this process, by (sha256 of the bytes, limits): facts, so a process that
# checks the same artifact again (many repositories, a long-lived server) does not start a child.
_learnt: dict[tuple[str, str], Probe] = {}
_LEARNT_MAX = 4096


def probe_cached(blobs: list[bytes], limits: Limits | None = None) -> list[Probe]:
    """:func:`probe_many`, answering from what this process learnt already; transient outcomes are
    never kept."""
    import hashlib

    limits = limits or Limits.from_env()
    keys = [(hashlib.sha256(data).hexdigest(), limits.key()) for data in blobs]
    todo = [i for i, key in enumerate(keys) if key not in _learnt]
    fresh = dict(zip(todo, probe_many([blobs[i] for i in todo], limits), strict=True)) if todo else {}
    if len(_learnt) + len(fresh) > _LEARNT_MAX:
        _learnt.clear()
    _learnt.update((keys[i], found) for i, found in fresh.items() if not found.transient)
    return [fresh[i] if i in fresh else _learnt[key] for i, key in enumerate(keys)]


def _run_child(paths: list[str], todo: list[int], results: list[Probe | None], limits: Limits) -> list[int]:
    """Probe ``todo`` in one child; return what is left when the child had to be stopped."""
    from modelgit.errors import printable

    # Few malloc arenas: each reserves 64 MB of address space per thread that touches it.
    env = dict(os.environ, ORT_LOGGING_LEVEL="3", MALLOC_ARENA_MAX="2")
    # The list of files goes in a file, not a pipe: a pipe could fill while we wait for results.
    listing = Path(paths[todo[0]]).with_name(f"todo-{todo[0]}.txt")
    listing.write_text("".join(paths[i] + "\n" for i in todo), "utf-8")
    try:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(limits.memory_bytes), str(listing)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 env=env)
    except OSError as exc:
        for index in todo:
            results[index] = Probe(None, f"cannot start the model check: {exc.strerror}", transient=True)
        return []
    assert child.stdout is not None
    buffer = b""
    for position, index in enumerate(todo):
        deadline = time.monotonic() + limits.seconds
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            ready = select.select([child.stdout], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                child.kill()
                child.wait()
                results[index] = Probe(None, f"loading and running it once took longer than {limits.seconds:g} s",
                                       limit="time")
                return todo[position + 1:]
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:  # the child died: the address-space cap is the usual reason
                code = child.wait()
                memory = code < 0 or code == 1  # a signal, or Python's own abort on MemoryError
                results[index] = Probe(None, f"the model check stopped (exit {code}) while loading or running "
                                       f"it under the {limits.memory_bytes:,}-byte memory limit",
                                       limit="memory" if memory else None, transient=not memory)
                return todo[position + 1:]
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        found = json.loads(line)
        if "signature" in found:
            results[index] = Probe(found["signature"])
        elif found.get("limit") == "memory":
            results[index] = Probe(None, f"loading or running it needs more than the {limits.memory_bytes:,}-byte "
                                   f"memory limit ({printable(found.get('problem', ''))[:120]})", limit="memory")
        else:
            results[index] = Probe(None, printable(found.get("problem", "cannot be loaded")),
                                   transient=found.get("transient") is True)
    child.wait()
    return []
