"""Parsing many uncached registry files with helper processes alongside this one.

A cold ``modelgit validate`` spends most of its time in strict YAML + pydantic, one file at a
time, and each file is independent of the others. This process parses from the front of the list
while helper processes parse chunks handed out from the back; the two meet in the middle, so the
split follows the speed each side really has (a spawned helper that is still starting up simply
gets less, or nothing). Measured on 2 CPUs at 1,000 benchmark models: the cold parse takes 0.68 s
instead of 1.29 s, a forked helper parsing 512 of the 1,001 files.

Only the ``modelgit`` command switches this on (``_process.parse_helpers``): it owns its process.
A library call never starts processes in its host.

Guarantees:

* The result does not depend on who parsed what: a helper returns the parse cache's record of a
  file (:func:`modelgit.snapshot.record_of`), which the caller turns into the same parsed file as a
  warm run would; a file whose record cannot be made, or a helper that fails or dies, is parsed
  here instead.
* Bounded: at most ``helpers`` children, each with at most :data:`OUTSTANDING` chunks handed out.
* No child outlives the call, whatever happens (an exception, Ctrl-C): each is killed if still
  running, and reaped.
* ``fork`` (Linux, only when this process has a single thread, where it is safe) or ``spawn``
  (a fresh interpreter running this module; also the choice everywhere else). A spawned helper never
  imports the host's ``__main__``, unlike ``multiprocessing``'s spawn.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

CHUNK = 8  # files per message: ~8 ms of work, small enough to balance, large enough to amortise I/O
OUTSTANDING = 2  # chunks handed to a helper ahead of its work, so it never waits for this process
POLL_EVERY = 4  # files parsed here between looks at the helpers (a helper has 2 chunks of work ahead)
MIN_FILES_FORK = 64  # below this, a helper costs more than it saves
MIN_FILES_SPAWN = 400  # a spawned helper needs ~0.3 s to import pydantic and the schema

Job = tuple[str, str, bytes]  # path, blob id, content
_HEADER = struct.Struct("<I")


def start_method() -> str:
    """``fork`` where it is safe and cheap (Linux, this process single-threaded), else ``spawn``."""
    if sys.platform.startswith("linux") and hasattr(os, "fork") and _threads() == 1:
        return "fork"
    return "spawn"


def _threads() -> int:
    """The threads of this process as the kernel counts them: native ones too (an onnxruntime
    pool, say), which ``threading`` does not see and a forked child could inherit a lock from."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[17])  # field 20, num_threads
    except (OSError, ValueError, IndexError):
        return max(threading.active_count(), 2)


def share(jobs: Sequence[Job | None], here: Callable[[int], None], helpers: int,
          method: str | None = None, read: Callable[[range], None] | None = None) -> dict[int, Any]:
    """Call ``here(index)`` for the jobs this process parses (its share in increasing index order,
    then any chunk taken back from a helper), while up to ``helpers`` children parse others.
    Returns ``{index: record or None}`` for the jobs a child parsed (None: parse it here; the
    caller does). Every index is either passed to ``here`` or in the result, exactly once.

    ``read(indices)``, when given, fills in ``jobs`` at those indices (they may be None until
    then): forked helpers start on the last part of the list while this process reads the rest
    (reading 1,000 blobs from git takes ~0.1 s, a fifth of a cold validate's parse)."""
    method = method or start_method()
    least = MIN_FILES_FORK if method == "fork" else MIN_FILES_SPAWN
    count = len(jobs)
    if helpers <= 0 or count < least:
        if read is not None:
            read(range(count))
        for index in range(count):
            here(index)
        return {}
    early = count // 3 // CHUNK * CHUNK if method == "fork" and read is not None else 0
    if read is not None:
        read(range(count - early, count))
    first = [range(start, start + CHUNK) for start in range(count - early, count, CHUNK)]
    children: list[_Child] = []
    try:
        for number in range(helpers):
            # A forked child closes its copies of the pipes to the children before it: else one
            # child's input would never end while the next one holds its write end.
            inherited = [fd for child in children if child.pid is not None for fd in (child.read_fd, child.write_fd)]
            children.append(_Child.start(method, inherited, first[number::helpers], jobs))
        if read is not None and count - early:
            read(range(count - early))
        return _run(jobs, here, children, count - early)
    finally:
        for child in children:
            child.stop()


def _run(jobs: Sequence[Job | None], here: Callable[[int], None], children: list[_Child],
         high: int) -> dict[int, Any]:
    results: dict[int, Any] = {}
    low = 0  # this process takes from low up; chunks are handed out from high down

    def hand_out() -> None:
        nonlocal high
        for child in children:
            while child.alive and len(child.chunks) < OUTSTANDING and high - low > CHUNK:
                chunk = range(high - CHUNK, high)
                high -= CHUNK
                child.send(chunk, jobs)

    def collect(timeout: float) -> None:
        ready = [c for c in children if c.alive and (c.chunks or c.pending)]
        if not ready:
            return
        readable, writable, _ = select.select([c.read_fd for c in ready if c.chunks],
                                              [c.write_fd for c in ready if c.pending], [], timeout)
        for child in ready:
            if child.write_fd in writable:
                child.flush()
            if child.read_fd in readable:
                child.receive(results)

    hand_out()
    while low < high:
        here(low)
        low += 1
        if not low % POLL_EVERY:
            collect(0)
            hand_out()
    # Our part is done: wait for chunks of helpers that answered at least once; take back the
    # others (a spawned helper still importing, or one that died).
    while True:
        for child in children:
            if child.chunks and not (child.alive and child.answered):
                for chunk in child.chunks:
                    for index in chunk:
                        here(index)
                child.chunks.clear()
                child.pending = b""
                child.kill()
        if not any(child.chunks for child in children):
            return results
        collect(None)


class _Child:
    """One helper process and the pipes to it."""

    def __init__(self, read_fd: int, write_fd: int, pid: int | None, proc: subprocess.Popen[bytes] | None) -> None:
        # A spawned child's pipes are closed through its Popen's file objects, a forked child's
        # by descriptor: never both, as a descriptor closed twice may by then be someone else's.
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.pid = pid
        self.proc = proc
        self.chunks: list[range] = []  # handed out, not answered yet, oldest first
        self.pending = b""  # bytes of messages not yet written to the child
        self.buffer = b""
        self.alive = True
        self.answered = False
        os.set_blocking(write_fd, False)

    @classmethod
    def start(cls, method: str, inherited: Sequence[int] = (), first: Sequence[range] = (),
              jobs: Sequence[Job | None] = ()) -> _Child:
        """A helper; a forked one starts on the ``first`` chunks of ``jobs`` it inherits, in order."""
        if method == "fork":
            to_child, from_parent = os.pipe()
            to_parent, from_child = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which leaves by os._exit
                code = 0
                try:
                    for fd in (from_parent, to_parent, *inherited):
                        os.close(fd)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    serve(to_child, from_child, [[(index, *jobs[index]) for index in chunk] for chunk in first])
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            os.close(to_child)
            os.close(from_child)
            child = cls(to_parent, from_parent, pid, None)
            child.chunks.extend(first)
            return child
        assert not first, "only a forked helper inherits its first chunks"
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        proc = subprocess.Popen(  # -P: a yaml.py or modelgit/ in the working directory is not imported
            [sys.executable, "-P", "-c", "from modelgit._parsework import serve; serve(0, 1)"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=False,
        )
        assert proc.stdin is not None and proc.stdout is not None
        return cls(proc.stdout.fileno(), proc.stdin.fileno(), None, proc)

    def send(self, chunk: range, jobs: Sequence[Job | None]) -> None:
        payload = marshal.dumps([(index, *jobs[index]) for index in chunk])
        self.chunks.append(chunk)
        self.pending += _HEADER.pack(len(payload)) + payload
        self.flush()

    def flush(self) -> None:
        try:
            while self.pending:
                written = os.write(self.write_fd, self.pending)
                self.pending = self.pending[written:]
        except BlockingIOError:
            return
        except OSError:  # the child is gone; its chunks are taken back
            self.alive = False

    def receive(self, results: dict[int, Any]) -> None:
        """Read what the child wrote; record every complete answer."""
        try:
            data = os.read(self.read_fd, 1 << 20)
        except OSError:
            data = b""
        if not data:
            self.alive = False
            return
        self.buffer += data
        while len(self.buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.buffer)
            if len(self.buffer) < _HEADER.size + size:
                return
            payload = self.buffer[_HEADER.size:_HEADER.size + size]
            self.buffer = self.buffer[_HEADER.size + size:]
            try:
                answers = marshal.loads(payload)
                chunk = self.chunks[0]
                if [index for index, _ in answers] != list(chunk):
                    raise ValueError("an answer for other files")
            except (ValueError, EOFError, TypeError, IndexError):
                self.alive = False  # not what we asked for: take its chunks back
                return
            self.chunks.pop(0)
            self.answered = True
            results.update(answers)

    def kill(self) -> None:
        if self.alive:
            self.alive = False
            with contextlib.suppress(OSError):
                if self.pid is not None:
                    os.kill(self.pid, signal.SIGKILL)
                elif self.proc is not None:
                    self.proc.kill()

    def stop(self) -> None:
        """Let the child end (it stops at the end of its input) and reap it; kill it if it has
        work left, so that this never waits for work nobody needs."""
        if self.chunks:
            self.kill()
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            self.proc.wait()
            return
        for fd in (self.write_fd, self.read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.pid is not None:
            os.waitpid(self.pid, 0)


def serve(read_fd: int, write_fd: int, first: Sequence[Sequence[tuple[int, str, str, bytes]]] = ()) -> None:
    """The helper's loop: answer the ``first`` chunks, then read chunks of jobs, answer each with
    the parse cache records of its files, until the end of input."""
    import gc

    from modelgit.snapshot import record_of

    gc.disable()  # this process only parses: what it builds is sent and dropped (see Loader._parse)
    if write_fd == 1:  # spawned: keep stdout for answers, so that a stray print cannot corrupt them
        write_fd = os.dup(1)
        os.dup2(2, 1)
    reader = os.fdopen(read_fd, "rb", buffering=1 << 16)
    waiting = list(first)
    while True:
        if waiting:
            jobs = waiting.pop(0)
        else:
            header = reader.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            (size,) = _HEADER.unpack(header)
            jobs = marshal.loads(reader.read(size))
        answers = []
        for index, path, blob, data in jobs:
            try:
                record = record_of(path, blob, data)
            except Exception:  # parse it in the parent, which reports it as it always does
                record = None
            answers.append((index, record))
        try:
            payload = marshal.dumps(answers)
        except ValueError:  # a record that is not plain data: the parent parses that file itself
            payload = marshal.dumps([(index, _plain_or_none(record)) for index, record in answers])
        message = _HEADER.pack(len(payload)) + payload
        view = memoryview(message)
        while view:
            view = view[os.write(write_fd, view):]


def _plain_or_none(record: Any) -> Any:
    try:
        marshal.dumps(record)
    except ValueError:
        return None
    return record
