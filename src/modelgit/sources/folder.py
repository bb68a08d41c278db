"""An artifact folder: ONNX files whose sha256 a model does not have yet become register proposals.

Which file is which version (the source's ``model`` key):

* left out: the template ``{model}/{version}.onnx`` — ``drop/calling_score/v3.onnx`` is version
  ``v3`` of ``calling_score``; ``drop/team/churn/v2.onnx`` is ``v2`` of ``team/churn``;
* a model id (no braces): every file is a version of that model, named by the file's name without
  its extension (``v3.onnx`` → ``v3``);
* a template with ``{model}`` and ``{version}``, matched against the whole path in the folder,
  e.g. ``{model}-{version}.onnx`` (``{model}`` takes model-id characters and '/', ``{version}``
  version-id characters).

``pattern`` (default ``*.onnx``) picks the files, matched from the right like
:meth:`pathlib.PurePath.match`. The folder is walked without following any symlink: a link is
skipped and said so (one that leaves the folder is named as such), as are FIFOs, sockets and
devices, and files over the size limit. Each folder is opened from the top one level at a time
and each file relative to its folder's descriptor, all with ``O_NOFOLLOW`` (files also
``O_NONBLOCK``, then checked on the open descriptor), so a file or a folder swapped for a link or a
FIFO after the listing is still refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from modelgit.errors import SourceError, printable
from modelgit.sources._http import shown
from modelgit.sources._types import Limits, Skipped
from modelgit.spec import FileArtifact, Model, UriArtifact

__all__ = ["DEFAULT_PATTERN", "DEFAULT_TEMPLATE", "FolderFile", "assign", "list_folder"]

DEFAULT_PATTERN = "*.onnx"
DEFAULT_TEMPLATE = "{model}/{version}.onnx"
_MODEL_PART = r"[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9][a-z0-9_.-]*)*"
_VERSION_PART = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"


@dataclass(frozen=True)
class FolderFile:
    """A regular file of the folder that fits the pattern: its path in the folder and digest."""

    path: str
    sha256: str
    data: bytes = field(repr=False, compare=False)


# -- which model and version a file is (pure) -----------------------------------------------------------
def _rule(source: str, model_field: str | None) -> tuple[str | None, re.Pattern[str] | None]:
    """(fixed model id, None) or (None, compiled template)."""
    from modelgit.proposals import MODEL_ID

    text = model_field or DEFAULT_TEMPLATE
    if "{" not in text and "}" not in text:
        if not MODEL_ID.match(text) or ".." in text:
            raise SourceError(source, f"model: {printable(text)!r} is neither a model id nor a template",
                              hint=f"name a model (e.g. calling_score) or write a template such as {DEFAULT_TEMPLATE}")
        return text, None
    parts = re.split(r"(\{model\}|\{version\})", text)
    if parts.count("{model}") != 1 or parts.count("{version}") != 1 or any(
            "{" in p or "}" in p for p in parts if p not in ("{model}", "{version}")):
        raise SourceError(source, f"model: the template {printable(text)!r} needs {{model}} and {{version}} "
                                  "once each and no other braces", hint=f"e.g. {DEFAULT_TEMPLATE}")
    regex = "".join(f"(?P<model>{_MODEL_PART})" if p == "{model}" else f"(?P<version>{_VERSION_PART})"
                    if p == "{version}" else re.escape(p) for p in parts)
    return None, re.compile(regex)


def assign(source: str, model_field: str | None, files: Sequence[FolderFile],
           models: Mapping[str, Model | None], taken: dict[str, set[str]] | None = None,
           ) -> tuple[list[tuple[FolderFile, str, str]], list[Skipped]]:
    """(file, model id, version id) for every file that is a new version, and what was skipped:
    files that fit no model, unknown or invalid models, digests the model has already, version ids
    in use. ``taken`` (version ids per model) is shared with the other sources and grows."""
    from modelgit.proposals import VERSION_ID

    taken = taken if taken is not None else {}
    fixed, template = _rule(source, model_field)
    out: list[tuple[FolderFile, str, str]] = []
    skipped: list[Skipped] = []
    seen: dict[tuple[str, str], str] = {}  # (model, digest) → path, within this folder
    for item in sorted(files, key=lambda f: f.path):
        if template is not None:
            match = template.fullmatch(item.path)
            if match is None:
                skipped.append(Skipped(source, None, f"does not fit the template {model_field or DEFAULT_TEMPLATE}",
                                       item=item.path))
                continue
            model_id, version = match["model"], match["version"]
        else:
            assert fixed is not None
            model_id, version = fixed, PurePosixPath(item.path).stem
        if model_id not in models:
            skipped.append(Skipped(source, model_id,
                                   f"unknown model '{model_id}': register its first version by hand "
                                   f"(modelgit register {model_id} VERSION --artifact FILE --task TASK)",
                                   item=item.path))
            continue
        model = models[model_id]
        if model is None:
            skipped.append(Skipped(source, model_id, "its file is invalid (see modelgit validate)", item=item.path))
            continue
        if model.retired:
            skipped.append(Skipped(source, model_id, "retired (out of service on purpose)", item=item.path))
            continue
        registered = {v.artifact.sha256: v.version for v in model.versions
                      if isinstance(v.artifact, FileArtifact | UriArtifact)}
        if item.sha256 in registered:
            skipped.append(Skipped(source, model_id, f"already registered as {model_id}:{registered[item.sha256]}",
                                   item=item.path))
            continue
        if (model_id, item.sha256) in seen:
            skipped.append(Skipped(source, model_id, f"the same bytes as {seen[model_id, item.sha256]}",
                                   item=item.path))
            continue
        if not VERSION_ID.match(version) or len(version) > 64:
            skipped.append(Skipped(source, model_id, f"{printable(version)!r} is not a valid version id "
                                                     "(letters, digits, '.', '_', '-', '+'): rename the file",
                                   item=item.path))
            continue
        ids = taken.setdefault(model_id, {v.version for v in model.versions})
        if version in ids:
            skipped.append(Skipped(source, model_id, f"version id {version} is used by {model_id} already; a new "
                                                     "artifact is a new version: rename the file", item=item.path))
            continue
        ids.add(version)
        seen[model_id, item.sha256] = item.path
        out.append((item, model_id, version))
    return out, skipped


# -- listing and reading (the shell) -----------------------------------------------------------------------
def list_folder(source: str, location: str, root: Path | None, pattern: str | None,
                limits: Limits) -> tuple[list[FolderFile], list[Skipped]]:
    """The files of the folder at ``location`` that fit ``pattern``, read and digested, and the
    entries skipped (links, special files, files too big). A relative path starts at ``root``."""
    pattern = pattern or DEFAULT_PATTERN
    scheme = urlsplit(location).scheme if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) else ""
    if scheme == "file":
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(source, f"{shown(location)}: a file:// URL names a file on this machine (no host)")
        return _list_local(source, Path(unquote(parts.path)), pattern, limits)
    if scheme:
        return _list_fsspec(source, location, pattern, limits)
    path = Path(location)
    if not path.is_absolute():
        if root is None:
            raise SourceError(source, f"{printable(location)!r} is relative, and this repository has no working tree "
                                      "to start it from", hint="write an absolute path")
        path = root / path
    return _list_local(source, path, pattern, limits)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW


def _open_dir(top_fd: int, parts: Sequence[str]) -> int:
    """A descriptor of the folder ``parts`` below ``top_fd``, opened one level at a time with
    O_NOFOLLOW: a folder swapped for a symlink after it was listed is refused, never followed."""
    fd = os.open(".", _DIRECTORY, dir_fd=top_fd)
    try:
        for part in parts:
            child = os.open(part, _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _list_local(source: str, folder: Path, pattern: str, limits: Limits) -> tuple[list[FolderFile], list[Skipped]]:
    try:
        top = folder.resolve(strict=True)  # the folder itself may be reached through a link
    except (OSError, RuntimeError):
        raise SourceError(source, f"{printable(str(folder))}: folder not found") from None
    try:
        top_fd = os.open(top, _DIRECTORY)
    except OSError:
        raise SourceError(source, f"{printable(str(folder))}: not a folder") from None
    files: list[FolderFile] = []
    skipped: list[Skipped] = []
    try:
        _walk(source, top, top_fd, pattern, limits, files, skipped)
    finally:
        os.close(top_fd)
    return files, skipped


def _walk(source: str, top: Path, top_fd: int, pattern: str, limits: Limits, files: list[FolderFile],
          skipped: list[Skipped]) -> None:
    # Folders are kept as name lists, not descriptors: a wide tree cannot exhaust the process's
    # descriptors, and each is reopened from the top without following a link.
    pending: list[tuple[str, ...]] = [()]
    listed = 0
    while pending:
        parts = pending.pop()
        here = "/".join(parts)
        try:
            fd = _open_dir(top_fd, parts)
        except OSError as exc:
            skipped.append(Skipped(source, None, f"cannot list it: {exc.strerror}", item=here or "."))
            continue
        try:
            with os.scandir(fd) as found:
                entries = sorted(found, key=lambda e: e.name)
            for entry in entries:
                listed += 1
                if listed > limits.max_files:
                    skipped.append(Skipped(source, None, f"more than {limits.max_files:,} entries; the rest were "
                                                         "not looked at"))
                    return
                rel = f"{here}/{entry.name}" if here else entry.name
                fits = PurePosixPath(rel).match(pattern)
                try:
                    if entry.is_symlink():
                        if fits or entry.is_dir():
                            inside = Path(os.path.realpath(top / rel)).is_relative_to(top)
                            skipped.append(Skipped(source, None, "a symlink: not followed (its target in the folder "
                                                                 "is read under its own name)" if inside else
                                                   "a symlink to outside the folder: not followed", item=rel))
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((*parts, entry.name))
                        continue
                except OSError as exc:
                    skipped.append(Skipped(source, None, f"cannot read it: {exc.strerror}", item=rel))
                    continue
                if fits:
                    read = _read_regular(entry.name, fd, limits)
                    if isinstance(read, str):
                        skipped.append(Skipped(source, None, read, item=rel))
                    else:
                        files.append(FolderFile(rel, hashlib.sha256(read).hexdigest(), read))
        except OSError as exc:
            skipped.append(Skipped(source, None, f"cannot list it: {exc.strerror}", item=here or "."))
        finally:
            os.close(fd)


def _read_regular(name: str, dir_fd: int, limits: Limits) -> bytes | str:
    """The bytes of the regular file ``name`` in the folder ``dir_fd``, or why it is not read."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        return f"cannot open it: {exc.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file (a FIFO, socket or device): not read"
        if info.st_size > limits.max_file_bytes:
            return f"{info.st_size:,} bytes, over the limit of {limits.max_file_bytes:,}"
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limits.max_file_bytes:
                return f"over the limit of {limits.max_file_bytes:,} bytes (it grew while read)"
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    finally:
        os.close(fd)


def _list_fsspec(source: str, location: str, pattern: str, limits: Limits) -> tuple[list[FolderFile], list[Skipped]]:
    try:
        import fsspec  # type: ignore[import-not-found]
    except ImportError:
        raise SourceError(source, f"{shown(location)} is read through fsspec, which is not installed",
                          hint="pip install fsspec (and its filesystem, e.g. s3fs for s3://), or use a local "
                               "folder or a file:// URL") from None
    try:
        fs, top = fsspec.core.url_to_fs(location)
        listing = fs.find(top, detail=True)
    except Exception as exc:  # any filesystem's own errors: say which, and go on with other sources
        raise SourceError(source, f"cannot list {shown(location)}: {type(exc).__name__}: "
                                  f"{printable(str(exc))[:200]}") from None
    files: list[FolderFile] = []
    skipped: list[Skipped] = []
    prefix = top.rstrip("/") + "/"
    for count, (full, info) in enumerate(sorted(listing.items())):
        if count >= limits.max_files:
            skipped.append(Skipped(source, None,
                                   f"more than {limits.max_files:,} entries; the rest were not looked at"))
            break
        rel = full[len(prefix):] if full.startswith(prefix) else full
        if info.get("type") != "file" or not PurePosixPath(rel).match(pattern):
            continue
        if info.get("islink"):
            skipped.append(Skipped(source, None, "a symlink: not followed", item=rel))
            continue
        size = info.get("size")
        if isinstance(size, int) and size > limits.max_file_bytes:
            skipped.append(Skipped(source, None, f"{size:,} bytes, over the limit of {limits.max_file_bytes:,}",
                                   item=rel))
            continue
        try:
            with fs.open(full, "rb") as handle:
                data = handle.read(limits.max_file_bytes + 1)
        except Exception as exc:
            skipped.append(Skipped(source, None, f"cannot read it: {type(exc).__name__}", item=rel))
            continue
        if len(data) > limits.max_file_bytes:
            skipped.append(Skipped(source, None, f"over the limit of {limits.max_file_bytes:,} bytes", item=rel))
            continue
        files.append(FolderFile(rel, hashlib.sha256(data).hexdigest(), data))
    return files, skipped
