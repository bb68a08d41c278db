"""Bearer tokens for ``modelgit serve``: scopes, digests, the token file and ``MODELGIT_TOKENS``.

A token is shown once, when it is created; only its sha256 digest is stored. A request's token is
hashed and compared with every stored digest by :func:`hmac.compare_digest` (constant time, and
every digest is compared, so the time taken says nothing about which digest nearly matched).

>>> store = TokenStore([])
>>> token, entry = store.create("read", name="ci")
>>> store.check(token).scope
'read'

This module imports neither FastAPI nor anything heavy: ``modelgit token create`` uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelgit.errors import InvalidError, UsageError

__all__ = ["ENV_VAR", "SCOPES", "Token", "TokenStore", "allows", "digest", "tokens_path"]

ENV_VAR = "MODELGIT_TOKENS"
# Ordered: each scope holds the ones before it (propose may read, admin may propose).
SCOPES = ("read", "propose", "admin")
TOKEN_PREFIX = "mgt_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def digest(token: str) -> str:
    """The sha256 hex digest a token is stored as."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def allows(scope: str, needed: str) -> bool:
    """True when a token of ``scope`` may do what needs ``needed`` (read < propose < admin)."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def tokens_path(git_dir: Path) -> Path:
    """The default token file of a repository: ``.git/modelgit/tokens.json``."""
    return git_dir / "modelgit" / "tokens.json"


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token: a name for people and logs, its scope, its digest (never the token)."""

    name: str
    scope: str
    sha256: str
    created: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "scope": self.scope, "sha256": self.sha256, "created": self.created}


def _checked(name: str, scope: str, sha256: str, where: str) -> Token:
    if scope not in SCOPES:
        raise InvalidError(f"{where}: token '{name}' has scope '{scope}'", hint=f"scopes are {', '.join(SCOPES)}")
    if not _HEX.match(sha256):
        raise InvalidError(f"{where}: token '{name}' has no sha256 hex digest",
                           hint="store the 64 lowercase hex digits of sha256(token), never the token")
    if not _NAME.match(name):
        raise InvalidError(f"{where}: token name {name!r} is not valid",
                           hint="use letters, digits and '_.@-', at most 64 characters")
    return Token(name, scope, sha256)


class TokenStore:
    """The tokens a server accepts: from a JSON file (``{"tokens": [{name, scope, sha256, created}]}``)
    or from ``MODELGIT_TOKENS`` (``name:scope:sha256hex,...``)."""

    def __init__(self, tokens: Iterable[Token], path: Path | None = None) -> None:
        self.tokens = list(tokens)
        self.path = path

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, text: str) -> TokenStore:
        tokens = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            parts = item.split(":")
            if len(parts) != 3 or not parts[0]:
                raise InvalidError(f"{ENV_VAR}: {item[:20]!r}… is not name:scope:sha256hex",
                                   hint="e.g. MODELGIT_TOKENS=ci:read:<64 hex digits>,bot:propose:<…>")
            tokens.append(_checked(*parts, ENV_VAR))
        return cls(tokens)

    @classmethod
    def from_file(cls, path: Path) -> TokenStore:
        """The tokens in ``path``; an empty store when the file does not exist yet."""
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls([], path)
        except (OSError, ValueError) as exc:
            raise InvalidError(f"{path}: cannot read the token file: {exc}",
                               hint="it is JSON written by 'modelgit token create'") from None
        items = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise InvalidError(f"{path}: not a token file", hint='expected {"tokens": [{name, scope, sha256}, …]}')
        tokens = []
        for item in items:
            token = _checked(str(item.get("name", "")), str(item.get("scope", "")), str(item.get("sha256", "")),
                             str(path))
            tokens.append(Token(token.name, token.scope, token.sha256, str(item.get("created", ""))))
        return cls(tokens, path)

    @classmethod
    def load(cls, path: Path | None, env: Mapping[str, str] | None = None) -> TokenStore:
        """``MODELGIT_TOKENS`` when set (and no file is named), else the file at ``path``."""
        env = os.environ if env is None else env
        if path is None and env.get(ENV_VAR):
            return cls.from_env(env[ENV_VAR])
        if path is None:
            raise UsageError("no token file given", hint=f"pass --tokens FILE or set {ENV_VAR}")
        return cls.from_file(path)

    # -- checking ----------------------------------------------------------------------------
    def check(self, token: str) -> Token | None:
        """The stored token whose digest is the request token's, compared in constant time."""
        if not token or len(token) > 256:
            return None
        wanted = digest(token).encode("ascii")
        found = None
        for entry in self.tokens:  # no early exit: every digest is compared
            if hmac.compare_digest(wanted, entry.sha256.encode("ascii")) and found is None:
                found = entry
        return found

    # -- creating ----------------------------------------------------------------------------
    def create(self, scope: str, name: str | None = None) -> tuple[str, Token]:
        """A new token of ``scope`` (returned once, with its stored entry); not saved until :meth:`save`."""
        if scope not in SCOPES:
            raise UsageError(f"unknown scope '{scope}'", hint=f"use one of {', '.join(SCOPES)}")
        name = name or f"{scope}-{len(self.tokens) + 1}"
        if not _NAME.match(name):
            raise UsageError(f"token name {name!r} is not valid", hint="use letters, digits and '_.@-'")
        if any(entry.name == name for entry in self.tokens):
            raise UsageError(f"a token named '{name}' exists already", hint="pick another --name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = Token(name, scope, digest(token), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.tokens.append(entry)
        return token, entry

    def save(self) -> Path:
        """Write the file atomically (temp file in the same directory, mode 0600, renamed over it)."""
        if self.path is None:
            raise UsageError("these tokens come from the environment; there is no file to write",
                             hint="pass --tokens FILE")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"tokens": [t.as_dict() for t in self.tokens]}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".tokens.", suffix=".tmp", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path
