"""Files of modelgit's own caches under ``<git dir>/modelgit/``, reached without following a link.

The git directory is the user's; what is below ``modelgit/`` is ours. Every name is opened relative
to its parent's file descriptor with ``O_NOFOLLOW``, so nothing is read or written through a
symbolic link, wherever it points, and a FIFO is never waited on (``O_NONBLOCK``). A linked
``modelgit`` directory is left alone (no cache is used at all); a link, file or directory where one
of our entries should be is removed, never what a link points to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
TEMPORARY_PREFIX = ".tmp-"  # files being written; one left by a killed process can be removed
NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_dir(parent: int, name: str, create: bool, replace: bool) -> int | None:
    """The directory ``name`` in ``parent`` as a file descriptor, never through a link; None when
    it is missing (and not ``create``d) or is something else. With ``create`` and ``replace`` (an
    entry that is ours), a link or file in its place is removed (never what a link points to) and
    the directory made."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError as exc:
        # A symlink (ELOOP) or a file (ENOTDIR) where the directory should be.
        if not (create and replace and exc.errno in (errno.ELOOP, errno.ENOTDIR)):
            return None
        os.unlink(name, dir_fd=parent)
    if not create:
        return None
    with contextlib.suppress(FileExistsError):  # another process made it
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, DIR_FLAGS, dir_fd=parent)


@contextlib.contextmanager
def open_dirs(git_dir: Path, names: tuple[str, ...], create: bool) -> Iterator[list[int] | None]:
    """``<git_dir>/modelgit/<names...>`` opened one below the other (:func:`open_dir`; the
    ``modelgit`` directory itself is never replaced: a linked one means no cache), as the file
    descriptors from the git directory down, or None when one of them cannot be had. All are
    closed on exit."""
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(git_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)))
            for name in ("modelgit", *names):
                fd = open_dir(fds[-1], name, create, replace=name != "modelgit" or len(fds) > 1)
                if fd is None:
                    break
                fds.append(fd)
        except OSError:
            pass
        yield fds if len(fds) == len(names) + 2 else None
    finally:
        for fd in reversed(fds):
            os.close(fd)


@contextlib.contextmanager
def modelgit_dir(git_dir: Path, create: bool) -> Iterator[int | None]:
    """``<git_dir>/modelgit`` as a directory file descriptor, or None when it is missing (and not
    ``create``d), a link, not a directory, or cannot be opened."""
    with open_dirs(git_dir, (), create) as fds:
        yield fds[-1] if fds else None


def read_regular(fd: int, name: str, limit: int) -> bytes | None:
    """The bytes of the regular file ``name`` in the directory ``fd``; None when it is missing, a
    link, anything but a regular file, larger than ``limit`` or unreadable."""
    try:
        file = os.open(name, READ_FLAGS, dir_fd=fd)
    except OSError:
        return None
    try:
        info = os.fstat(file)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        while chunk := os.read(file, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(file)


def remove(fd: int, name: str) -> None:
    """Remove a file, link or directory tree inside the directory ``fd`` (never following links)."""
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            import shutil

            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
    except OSError:
        pass


def replace(fd: int, name: str, data: bytes | list[bytes | bytearray]) -> None:
    """Write ``data`` (or its parts, in order) to a new file in ``fd`` and rename it over ``name``
    (a reader sees the old file or the new one, never half of it); whatever was at ``name`` (a
    link: the link itself) is replaced."""
    temporary = f"{TEMPORARY_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    file = os.open(temporary, NEW_FLAGS, 0o644, dir_fd=fd)
    try:
        with os.fdopen(file, "wb") as out:
            for part in [data] if isinstance(data, bytes) else data:
                out.write(part)
        try:
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except IsADirectoryError:  # a directory in its place: ours, under .git/modelgit/
            remove(fd, name)
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=fd)
        raise


def append(fd: int, name: str, data: bytes) -> None:
    """Append ``data`` to the regular file ``name`` in one write call (concurrent writers
    interleave whole writes, never bytes within one, on a local file system); a link in its
    place is not followed (``OSError``)."""
    file = os.open(name, APPEND_FLAGS, 0o644, dir_fd=fd)
    try:
        if not stat.S_ISREG(os.fstat(file).st_mode):
            raise IsADirectoryError(name)  # a FIFO or device: not ours to write into
        os.write(file, data)
    finally:
        os.close(file)
