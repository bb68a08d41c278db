"""Where usage goes: resolving and checking a tracking URL (no SQLAlchemy import here).

A tracking URL comes from a flag, the environment or a committed file, so it is hostile: only
SQLite files and PostgreSQL through psycopg 3 are accepted, and an error never shows a password.

>>> check_url("sqlite:////srv/usage.sqlite")
'sqlite:////srv/usage.sqlite'
>>> check_url("postgresql://u:secret@db/usage")
'postgresql+psycopg://u:secret@db/usage'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from modelgit.errors import UsageError, printable

__all__ = ["ENV_VAR", "check_url", "redact", "resolve_url", "sqlite_path"]

ENV_VAR = "MODELGIT_TRACKING_URL"
_DEFAULT_FILE = "usage.sqlite"
_MAX_URL = 4096
_SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
_PG_SCHEMES = ("postgresql", "postgresql+psycopg")
# libpq options that only choose how to reach and trust the server; file-reading ones such as
# `passfile`/`sslkey` or `service` (which reads pg_service.conf) are refused.
_PG_QUERY_KEYS = frozenset({"host", "port", "sslmode", "sslrootcert", "connect_timeout", "application_name",
                            "target_session_attrs", "options"})
_HINT = ("use sqlite:////absolute/path/usage.sqlite, sqlite:///relative/path.sqlite or "
         "postgresql+psycopg://user@host:5432/database")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (only its scheme when it does not parse)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return printable(url)
        netloc = parts.netloc.rsplit("@", 1)
        userinfo = netloc[0].split(":", 1)[0]
        return printable(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}").geturl())
    except ValueError:
        scheme = url.split(":", 1)[0] if ":" in url else "?"
        return printable(f"{scheme}:<unparsable>")


def _refuse(url: str, why: str) -> UsageError:
    return UsageError(f"tracking URL {redact(url)}: {why}", hint=_HINT)


def check_url(url: str) -> str:
    """``url`` normalised (``postgresql://`` means psycopg 3), or a :class:`UsageError` saying why not."""
    if not isinstance(url, str) or not url:
        raise UsageError("tracking URL is empty", hint=_HINT)
    if len(url) > _MAX_URL:
        raise _refuse(url[:64] + "…", f"longer than {_MAX_URL} characters")
    if not url.isprintable() or any(ch.isspace() for ch in url):
        raise _refuse(url, "contains whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _refuse(url, "is not a URL (no scheme://)")
    scheme = scheme.lower()
    if scheme in _SQLITE_SCHEMES:
        if any(ch in rest for ch in "?#%"):
            raise _refuse(url, "a SQLite URL takes no query, fragment or %-escapes")
        if not rest.startswith("/"):
            raise _refuse(url, "a SQLite URL names a file after three slashes, with no host")
        if rest in ("/", "/:memory:"):
            raise _refuse(url, "an in-memory SQLite database would lose every row; name a file")
        return "sqlite:///" + rest[1:]
    if scheme in _PG_SCHEMES:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a port that is not a number
        except ValueError as exc:
            raise _refuse(url, f"does not parse ({exc})") from None
        if parts.fragment:
            raise _refuse(url, "a PostgreSQL URL takes no fragment")
        if not parts.hostname and "host" not in dict(parse_qsl(parts.query)):
            raise _refuse(url, "names no host")
        if not parts.path.strip("/"):
            raise _refuse(url, "names no database")
        for key, _value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _PG_QUERY_KEYS:
                raise _refuse(url, f"query option {printable(key)!r} is not accepted "
                                   f"(accepted: {', '.join(sorted(_PG_QUERY_KEYS))})")
        return "postgresql+psycopg://" + rest
    raise _refuse(url, f"scheme {printable(scheme)!r} is not supported (sqlite or postgresql)")


def sqlite_path(url: str) -> Path | None:
    """The database file of a checked SQLite URL, None for any other URL."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    return None


def resolve_url(explicit: str | None, settings_url: str | None, cache_dir: Path, *,
                repo_root: Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The tracking URL to use, checked: ``explicit`` (``--tracking-url``) > ``$MODELGIT_TRACKING_URL``
    > ``settings_url`` (``tracking.url`` in modelgit.yaml) > ``sqlite:///<cache_dir>/usage.sqlite``.

    A relative SQLite path from modelgit.yaml is relative to ``repo_root`` (default: the parent of
    ``cache_dir``'s parent, as ``cache_dir`` is ``<repo>/.git/modelgit``), so every process of a
    repository writes one file whatever its working directory; one from the flag or the
    environment is relative to the current directory, as a path on a command line is.
    """
    env = os.environ if environ is None else environ
    from_env = env.get(ENV_VAR) or None
    if explicit:
        url, base = check_url(explicit), Path.cwd()
    elif from_env:
        url, base = check_url(from_env), Path.cwd()
    elif settings_url:
        url, base = check_url(settings_url), (repo_root or Path(cache_dir).parent.parent)
    else:
        return check_url("sqlite:///" + str((Path(cache_dir) / _DEFAULT_FILE).absolute()))
    path = sqlite_path(url)
    if path is not None and not path.is_absolute():
        return check_url("sqlite:///" + str((base / path).absolute()))
    return url
