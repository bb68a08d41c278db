"""Parsed registry files that outlive the process, keyed by path and git blob id.

Reading one model file through the per-file pipeline (strict YAML → pydantic, JSON Schema for the
messages → rules) costs 1-2 ms, so every new process paid 15 s for a registry of 10,000 files.
The outcome depends only on the file's bytes, its path (the model id) and the code that reads it,
so it is kept in ``.git/modelgit/parsed/<key>/`` under ``path NUL blob``, where ``key`` digests
modelgit's version, the shipped JSON Schemas, the source of the modules that parse and the
versions of what they lean on (marshal, pydantic-core, PyYAML): a cache that other code wrote is
never read, it sits in another directory and is removed.

A record is a tuple of plain data that :mod:`modelgit.snapshot` makes and checks (findings, whether
the file is valid, ..., and last the YAML value that the schema accepted, as bytes or None); this
module only stores records and gets them back, the last item kept apart from the index. A record
is a fact about the blob: an outcome that might not repeat is never put here (the caller only puts
outcomes it returned, never an exception).

On disk: ``base.pack`` and ``delta-*.pack`` files, each a header (magic, key, lengths, CRC-32),
an index (a ``marshal``'d dict of records, each value replaced by its offset and length) and the
values. A new process checks a whole file's CRC but unmarshals only the index (the values, nine
tenths of the bytes, are read back one by one when a typed model is built): 10,000 records load in
~15 ms, where ``json.loads`` of the same data would take ~400 ms. Every file is written under a
temporary name in the same directory and renamed into place, so a reader sees a whole file or no
file. A file that fails its checks (truncated, garbage, another key, a directory or anything but a
regular file) is ignored, and removed by the next compaction. A run that parsed something adds one
small delta; when there are many, a run merges everything into a new base (keeping only the
records this process used when the cache is over its bound) and removes the deltas it merged. Two
processes compacting at once each write a whole base; a delta written meanwhile is kept. Losing a
record only costs a parse.

Directories and files are opened relative to the git directory with ``O_NOFOLLOW``: nothing is
read or written through a symlink, and a FIFO is never waited on. A cache that cannot be read or
written is not used; nothing is printed or raised for it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import marshal
import os
import stat
import struct
import sys
import time
import zlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from modelgit import cachefs

FORMAT = 2  # the layout of a record (snapshot.py) and of a pack file; bump when either changes
MAGIC = b"MGPARSE\x02"
# magic, key, index length, values length, CRC-32 of index and values
_HEADER = struct.Struct(">8s24sQQI")
KEY_LENGTH = 24
# Modules whose code decides what a record says.
_PARSE_MODULES = ("snapshot.py", "yamlio.py", "rules.py", "spec.py", "parsecache.py")

MAX_RECORDS = 200_000
MAX_BYTES = 512 * 1024 * 1024
MAX_DELTAS = 32
STALE_TEMP_SECONDS = 3600
# Reading and checking the whole cache costs about as much as parsing one file per this many bytes
# of it (measured on the 10,000-model bench registry: a 24 MB pack loads in 0.1-0.3 s, the time of
# 20-60 parses of a 6 KB model file), so a run that misses a handful of files in a large cache (a
# long-lived process after one commit) parses them instead of loading it.
PARSE_EQUIVALENT_BYTES = 512 * 1024



@cache
def _code_digest() -> str:
    """A digest of what decides a record besides modelgit's version: the schemas, the parsing
    modules' source and the installed libraries they call (read from their files, not imported:
    a warm process may need neither pydantic nor PyYAML, and importing them costs 20-30 ms)."""
    digest = hashlib.sha256()
    # pydantic and pydantic-core decide what a typed model accepts, PyYAML what a file reads as,
    # jsonschema the messages of a file pydantic refuses.
    libraries = "\0".join(_installed(name) for name in ("pydantic", "pydantic_core", "yaml", "jsonschema"))
    digest.update(f"{FORMAT}\0{sys.version_info[:2]}\0{marshal.version}\0{libraries}\0".encode())
    for name in ("model", "settings"):
        digest.update(_schema_text(name).encode())
    package = resources.files("modelgit")
    for module in _PARSE_MODULES:
        try:
            digest.update(package.joinpath(module).read_bytes())
        except OSError:  # installed without sources: the version alone has to tell
            digest.update(b"no source " + module.encode())
    return digest.hexdigest()


def _schema_text(name: str) -> str:
    """The text of a shipped schema, as ``spec.schema_text`` reads it (without importing the
    pydantic models that module defines)."""
    return resources.files("modelgit").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")


def _installed(package: str) -> str:
    """What tells one installation of ``package`` from another without importing it: the name,
    size and modification time of each file in its top directory (its ``__init__`` with the
    version, its compiled extensions: PyYAML's libyaml binding, pydantic-core's validator). Any
    reinstall changes it, so the cache is never trusted across library versions."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return f"{package}: not installed"
    files = []
    for location in spec.submodule_search_locations:
        try:
            with os.scandir(location) as entries:
                for entry in entries:
                    if entry.is_file():
                        info = entry.stat()
                        files.append(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            files.append(f"{location}: unreadable")
    return f"{package}: " + ",".join(sorted(files))


def cache_key() -> str:
    """The key of the records this code may read: modelgit's version and :func:`_code_digest`.

    >>> len(cache_key())
    24
    """
    import modelgit

    return _key_for(modelgit.__version__, _code_digest())


@cache
def _key_for(version: str, code: str) -> str:
    return hashlib.sha256(f"{version}\0{code}".encode()).hexdigest()[:KEY_LENGTH]


def record_key(path: str, blob: str) -> str:
    return f"{path}\0{blob}"


class ParseCache:
    """Records of parsed files under ``<git_dir>/modelgit/parsed/<key>/``; ``git_dir`` None keeps
    nothing. Not thread-safe: one per Loader, used under the caller's lock (if any).

    >>> cache = ParseCache(repo.git_dir)                                # doctest: +SKIP
    >>> cache.get("registry/models/m.yaml", blob) is None               # doctest: +SKIP
    True
    """

    def __init__(self, git_dir: Path | None) -> None:
        self.git_dir = git_dir
        self._records: dict[str, Any] | None = None  # every record read, once loaded
        self._read: list[str] = []  # pack files read into _records
        self._damaged: list[str] = []  # files that failed their checks
        self._rewrite = False  # compact at the next flush (a damaged file, an unsound record)
        self._new: dict[str, Any] = {}  # put since the last flush
        self._used: set[str] = set()  # got or put by this process: kept when over the bound
        self._key = ""

    # -- reading -----------------------------------------------------------------------------
    def worth_loading(self, misses: int) -> bool:
        """Whether looking ``misses`` files up is cheaper than parsing them: always once loaded,
        else when the cache is small against what parsing them would cost."""
        if self.git_dir is None:
            return False
        if self._records is not None and self._key == cache_key():
            return True
        size = 0
        with _Directory(self.git_dir, cache_key(), create=False) as fd:
            if fd is None:
                return False
            for name in _pack_names(fd):
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    return True  # reading it finds it damaged, and the next flush removes it
                size += info.st_size
        return size > 0 and misses * PARSE_EQUIVALENT_BYTES >= size

    def get(self, path: str, blob: str) -> Any:
        """The record stored for this file, or None."""
        return self.lookup([(path, blob)])[0]

    def lookup(self, files: list[tuple[str, str]]) -> list[Any]:
        """The record stored for each (path, blob), or None; a record's value is the bytes put, or
        where to read them in a pack when needed: ``(pack, offset, length)``, see :func:`read_value`."""
        records = self._load()
        found: list[Any] = []
        used = self._used
        for path, blob in files:
            key = f"{path}\0{blob}"
            record = records.get(key)
            if record is not None:
                used.add(key)
            found.append(record)
        return found

    def forget(self, path: str, blob: str) -> None:
        """Drop a record the caller found unsound (it is left out of the next compaction)."""
        key = record_key(path, blob)
        if self._records is not None:
            self._records.pop(key, None)
        self._used.discard(key)
        self._rewrite = True

    def _load(self) -> dict[str, Any]:
        key = cache_key()
        if self._records is not None and self._key == key:
            return self._records
        self._records, self._read, self._damaged, self._key = {}, [], [], key
        self._rewrite = False
        with _Directory(self.git_dir, key, create=False) as fd:
            if fd is None:
                return self._records
            for name in sorted(_pack_names(fd)):  # the base first; the order is otherwise moot
                found = _read_pack(fd, name, key)
                if found is None:
                    self._damaged.append(name)
                    self._rewrite = True
                elif found is not _GONE:
                    self._read.append(name)
                    self._records.update(found)
        return self._records

    def release(self) -> None:
        """Let go of the records read (a long-lived process keeps the parsed files instead)."""
        self.flush()
        self._records = None
        self._read = []
        self._damaged = []
        self._rewrite = False
        self._used = set()

    # -- writing -----------------------------------------------------------------------------
    def put(self, path: str, blob: str, record: Any) -> None:
        key = record_key(path, blob)
        self._new[key] = record
        self._used.add(key)
        if self._records is not None:
            self._records[key] = record

    def flush(self) -> None:
        """Write what was put since the last flush: a new delta, or a new base when there are
        many deltas or a damaged file to be rid of. Failures are silent (a read-only .git)."""
        if self.git_dir is None or not (self._new or self._rewrite):
            return
        new, self._new = self._new, {}
        key = cache_key()
        if self._key != key:  # the version changed under us (tests do): forget the old records
            self._records, self._read, self._damaged, self._rewrite = None, [], [], False
        try:
            with _Directory(self.git_dir, key, create=True) as fd:
                if fd is None:
                    return
                deltas = [n for n in _pack_names(fd) if n.startswith("delta-")]
                if self._rewrite or len(deltas) >= MAX_DELTAS:
                    self._compact(fd, new)
                elif new:
                    _write_pack(fd, f"delta-{os.getpid()}-{os.urandom(6).hex()}.pack", key, new)
        except OSError:
            pass

    def _compact(self, fd: int, new: dict[str, Any]) -> None:
        records = dict(self._load())
        records.update(new)
        if len(records) > MAX_RECORDS or _size(records) > MAX_BYTES:
            # Over the bound: keep what this process used (the live files), drop the rest.
            records = {k: v for k, v in records.items() if k in self._used}
        whole = {}
        for key, record in records.items():
            try:
                whole[key] = _with_bytes(record)
            except OSError:
                continue  # a value that cannot be read back is left out
        _write_pack(fd, "base.pack", self._key, whole)
        for name in set(self._read + self._damaged) - {"base.pack"}:
            _remove(fd, name)
        _remove_stale_temporaries(fd)
        self._read = ["base.pack"]
        self._damaged = []
        self._rewrite = False
        self._records = whole


class _Pack:
    """An open pack file whose values are read when a typed model is first built; closed when no
    record refers to it any more (a compaction may have removed its name meanwhile: the open file
    stays readable)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def read_value(where: tuple[_Pack, int, int]) -> bytes:
    """The bytes of a value stored at ``(pack, offset, length)`` (checked when the pack was read)."""
    pack, offset, length = where
    data = os.pread(pack.fd, length, offset)
    if len(data) != length:
        raise OSError(errno.EIO, "a parse cache pack is shorter than its index says")
    return data


def is_stored_value(value: Any) -> bool:
    return type(value) is tuple and len(value) == 3 and type(value[0]) is _Pack


def _with_bytes(record: Any) -> Any:
    value = record[-1]
    if type(value) is tuple:
        return (*record[:-1], read_value(value))
    return record


def _size(records: dict[str, Any]) -> int:
    total = 0
    for key, record in records.items():
        value = record[-1]
        total += len(key) + 256 + (value[2] if type(value) is tuple else len(value) if value else 0)
    return total


_GONE = object()  # a pack file removed between listing and opening: no records, not damaged


class _Directory:
    """``<git_dir>/modelgit/parsed/<key>`` opened without following any symlink
    (:func:`modelgit.cachefs.open_dirs`); on entry, its file descriptor, or None when it does not
    exist (or with ``create``, cannot be made). Other keys' directories are removed when this one
    is created."""

    def __init__(self, git_dir: Path | None, key: str, create: bool) -> None:
        self.git_dir, self.key, self.create = git_dir, key, create
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> int | None:
        if self.git_dir is None:
            return None
        names = ("parsed", self.key)
        fds = self._stack.enter_context(cachefs.open_dirs(self.git_dir, names, create=False))
        if fds is None and self.create:  # made now: the first write of this modelgit version
            fds = self._stack.enter_context(cachefs.open_dirs(self.git_dir, names, create=True))
            if fds is None:
                return None
            parsed = fds[-2]
            try:
                for other in os.listdir(parsed):  # caches of other versions are never read again
                    if other != self.key:
                        _remove(parsed, other)
            except OSError:
                pass
        return fds[-1] if fds is not None else None

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def _pack_names(fd: int) -> list[str]:
    try:
        return [n for n in os.listdir(fd) if n.endswith(".pack") and (n == "base.pack" or n.startswith("delta-"))]
    except OSError:
        return []


def _read_pack(fd: int, name: str, key: str) -> Any:
    """The records of one pack file, values as (pack, offset, length); None when the file fails
    its checks, _GONE when it vanished."""
    try:
        file = os.open(name, cachefs.READ_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        return _GONE
    except OSError:
        return None  # a symlink (ELOOP), unreadable
    pack = _Pack(file)  # closes the file when nothing refers to it
    try:
        info = os.fstat(file)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 2 * MAX_BYTES + _HEADER.size:
            return None
        # The whole file is read once to check it (CRC-32: ~1 ms per 2 MB); only the index is
        # unmarshalled (a tenth of the bytes), values are read back one by one when used.
        chunks = []
        while chunk := os.read(file, 1 << 24):
            chunks.append(chunk)
        data = b"".join(chunks)
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, stored_key, index_length, values_length, crc = _HEADER.unpack_from(data)
    body = memoryview(data)[_HEADER.size:]
    if magic != MAGIC or stored_key != key.encode() or index_length + values_length != len(body) \
            or zlib.crc32(body) != crc:
        return None
    try:
        records = marshal.loads(body[:index_length])
    except Exception:  # EOFError, ValueError, TypeError: all mean damaged
        return None
    if not isinstance(records, dict):
        return None
    start = _HEADER.size + index_length
    for key_, record in records.items():
        if not (type(record) is tuple and record):
            return None
        where = record[-1]
        if where is not None:
            if not (type(where) is tuple and len(where) == 2 and type(where[0]) is int and type(where[1]) is int
                    and where[0] >= 0 and where[1] >= 0 and where[0] + where[1] <= values_length):
                return None
            records[key_] = (*record[:-1], (pack, start + where[0], where[1]))
    return records


def _write_pack(fd: int, name: str, key: str, records: dict[str, Any], index: bytes | None = None) -> None:
    """Write ``records`` (values as bytes or None) as ``name``: the index (each value's offset and
    length), then the values, to a temporary file in the same directory, then renamed."""
    values = bytearray()
    if index is None:
        entries = {}
        for record_key_, record in records.items():
            value = record[-1]
            where = None
            if value is not None:
                where = (len(values), len(value))
                values += value
            entries[record_key_] = (*record[:-1], where)
        index = marshal.dumps(entries)
    crc = zlib.crc32(values, zlib.crc32(index))
    header = _HEADER.pack(MAGIC, key.encode(), len(index), len(values), crc)
    cachefs.replace(fd, name, [header, index, values])


_remove = cachefs.remove


def _remove_stale_temporaries(fd: int) -> None:
    """Temporary files left by a process killed mid-write (older than an hour: not in flight)."""
    now = time.time()
    for name in os.listdir(fd):
        if name.startswith(cachefs.TEMPORARY_PREFIX):
            try:
                if now - os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(name, dir_fd=fd)
            except OSError:
                pass
