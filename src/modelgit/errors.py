"""Errors and findings: the one place that knows how a failure is shown and which exit code it has.

This module imports nothing else from the package (like pip's ``exceptions``), so every other
module can raise from it without import cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_BUG = 3


def printable(text: str) -> str:
    """``text`` with control characters (newlines, escape sequences, …) written as escapes, so
    that a file name or a value from a committed file cannot forge a line of output or drive the
    terminal: ``evil\\nfile`` stays on one line."""
    if text.isprintable():
        return text  # the common case, without building a new string
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def shown_url(url: str) -> str:
    """A URL as messages show it: scheme, host, port and path only — no credentials, no query
    string (it may hold a key) — and printable."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return printable(f"{parts.scheme}://{host}{parts.path}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a registry: where it is, a stable code, what is wrong and how to fix it."""

    path: str
    line: int | None
    col: int | None
    code: str
    message: str
    hint: str = ""

    def location(self) -> str:
        if self.line is None:
            return self.path
        return f"{self.path}:{self.line}:{self.col or 1}"

    def render(self) -> str:
        """One line: ``path:line:col: CODE message (hint: …)``, control characters escaped."""
        text = f"{self.location()}: {self.code} {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return printable(text)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


class ModelgitError(Exception):
    """An expected failure with a message for the user. The CLI maps it to ``exit_code``."""

    exit_code = EXIT_INVALID

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        path: str | None = None,
        line: int | None = None,
        col: int | None = None,
        findings: list[Finding] | tuple[Finding, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        self.line = line
        self.col = col
        self.findings = tuple(findings)

    def render(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}:{self.col or 1}"
            where += ": "
        text = printable(f"{where}{self.message}")
        for finding in self.findings:
            text += "\n  " + finding.render()
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class InvalidError(ModelgitError):
    """The input (a registry, a file, an artifact) is invalid: exit 1."""

    exit_code = EXIT_INVALID


class UsageError(ModelgitError):
    """The command was called wrongly (unknown model, bad option value, not a repo): exit 2."""

    exit_code = EXIT_USAGE


class NotFoundError(UsageError):
    """The thing named does not exist: an unknown model, version or git ref (exit 2; HTTP 404)."""


class ConflictError(UsageError):
    """What would be created exists already: a proposal branch made before (exit 2; HTTP 409)."""


class InputError(UsageError, ValueError):
    """An input array does not fit the model (names, shape, dtype): raised by ``Registry.run``.
    Also a ValueError, what numpy-minded callers catch for a wrong shape."""


class GitError(ModelgitError):
    """A git command failed in a way the user can act on."""

    exit_code = EXIT_INVALID


class TransientError(InvalidError):
    """A failure that may not happen again (out of memory, no thread, an I/O error): never cached
    as a fact, and a runtime reload refused for it is retried on the next poll."""


class LimitError(InvalidError):
    """A model that breaks a limit of the model check (memory or time) while it loads or runs once:
    refused like an invalid one, with the limit named (``limit``)."""

    def __init__(self, message: str, *, limit: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.limit = limit


class SourceError(InvalidError):
    """A source of new versions (``settings.sources``) could not be read: its catalog did not
    answer, answered with something that is not a catalog, or its folder cannot be listed. The
    message names the source; check-upgrades reports it and goes on with the other sources."""

    def __init__(self, source: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"source '{source}': {message}", hint=hint)
        self.source = source


# onnxruntime reports C++ std::bad_alloc, a failed thread start or a failed allocation in its own
# RuntimeError-like types (Fail, RuntimeException); these words mark them as transient.
_TRANSIENT_WORDS = ("bad_alloc", "out of memory", "failed to allocate", "cannot allocate memory",
                    "resource temporarily unavailable", "pthread_create", "thread creation",
                    "failed to create thread")


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says nothing about the input: memory, threads, I/O. A model file that
    fails to load for one of these reasons may load on the next try."""
    if isinstance(exc, (MemoryError, OSError, TransientError)):
        return True
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)
