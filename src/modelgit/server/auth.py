"""Bearer-token auth as a FastAPI dependency: 401 without a valid token (``WWW-Authenticate:
Bearer``), 403 without the scope, 429 (``Retry-After``) over the token's rate.

>>> @router.get("/x", dependencies=[Depends(require("read"))])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelgit.server.limits import RateLimiter
from modelgit.server.tokens import Token, allows

__all__ = ["SESSION_COOKIE", "ApiError", "bearer", "require"]

SESSION_COOKIE = "modelgit_token"  # HttpOnly, SameSite=Strict: set by POST /login for the dashboard

bearer = HTTPBearer(auto_error=False, description="A token from 'modelgit token create --scope read|propose|admin'.")


class ApiError(HTTPException):
    """An HTTP error with the body ``{error, hint}``."""

    def __init__(self, status: int, error: str, hint: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(status, error, headers)
        self.error = error
        self.hint = hint


def require(scope: str) -> Callable[..., Token]:
    """A dependency that returns the request's token when it has ``scope`` (or a larger one)."""

    def check(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Token:
        context = request.app.state.context
        # A browser on the dashboard sends the token as the cookie /login set; anything else, as a
        # bearer header.
        secret = credentials.credentials if credentials is not None else request.cookies.get(SESSION_COOKIE)
        token = context.tokens.check(secret) if secret else None
        limiter: RateLimiter | None = request.app.state.rate_limiter
        if token is None:
            # Failed attempts share one bucket per client address: guessing tokens is rate-limited too.
            _limit(limiter, f"\0client:{request.client.host if request.client else '?'}", "this client")
            raise ApiError(401, "missing or invalid bearer token",
                           "send Authorization: Bearer <token>; create one with 'modelgit token create'",
                           {"WWW-Authenticate": "Bearer"})
        _limit(limiter, token.name, f"token '{token.name}'")
        if not allows(token.scope, scope):
            raise ApiError(403, f"token '{token.name}' has scope '{token.scope}'; this needs '{scope}'",
                           f"create a token with 'modelgit token create --scope {scope}'")
        request.state.token = token
        return token

    check.__name__ = f"require_{scope}"
    return check


def _limit(limiter: RateLimiter | None, key: str, who: str) -> None:
    if limiter is None:
        return
    wait = limiter.take(key)
    if wait > 0:
        after = RateLimiter.retry_after(wait)
        raise ApiError(429, f"rate limit of {who} exceeded", f"retry after {after} s", {"Retry-After": after})
