"""Writing the files modelgit produces (CI reports, compare reports, evaluation results) safely.

A checkout is hostile: a committed symlink can point a report directory anywhere on the machine,
and an ``--out`` path may name a FIFO (opening it would block forever), a device or a socket. So an
output is written to a new temporary file in the target's directory and renamed over the target,
and only when the target is absent or a regular file. Under ``within`` (the repository), no
directory on the way may be a symlink: nothing is written through a link that leaves the tree.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from modelgit.errors import UsageError, printable

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is lexically inside ``root`` (both made absolute, not resolved)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))


def ensure_dir(directory: Path, within: Path | None = None) -> Path:
    """Create ``directory`` (and its parents) and return it; under ``within`` every existing part
    must be a real directory, never a symlink (a committed link could lead anywhere)."""
    directory = Path(os.path.abspath(directory))
    if within is not None and inside(directory, within):
        root = Path(os.path.abspath(within))
        current = root
        for part in directory.relative_to(root).parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                current.mkdir()
                continue
            if not stat.S_ISDIR(mode):
                raise UsageError(f"refusing to write under {printable(str(current))}: it is {_kind(mode)}",
                                 hint="outputs are never written through a link or into a special file; "
                                      "remove it or choose another output path")
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_output(target: Path, data: bytes | str, *, within: Path | None = None) -> Path:
    """Write ``data`` to ``target`` atomically (a temporary file renamed over it: never half
    written), refusing a target that exists and is not a regular file. See the module docstring."""
    target = Path(os.path.abspath(target))
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise UsageError(f"refusing to write {printable(str(target))}: it is {_kind(mode)}",
                         hint="outputs replace regular files only; remove it or choose another output path")
    directory = ensure_dir(target.parent, within)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
