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

__all__ = ["ApiError", "bearer", "require"]

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
        token = context.tokens.check(credentials.credentials) if credentials is not None else None
        if token is None:
            raise ApiError(401, "missing or invalid bearer token",
                           "send Authorization: Bearer <token>; create one with 'modelgit token create'",
                           {"WWW-Authenticate": "Bearer"})
        limiter: RateLimiter | None = request.app.state.rate_limiter
        if limiter is not None:
            wait = limiter.take(token.name)
            if wait > 0:
                raise ApiError(429, f"rate limit of token '{token.name}' exceeded",
                               f"retry after {RateLimiter.retry_after(wait)} s",
                               {"Retry-After": RateLimiter.retry_after(wait)})
        if not allows(token.scope, scope):
            raise ApiError(403, f"token '{token.name}' has scope '{token.scope}'; this needs '{scope}'",
                           f"create a token with 'modelgit token create --scope {scope}'")
        request.state.token = token
        return token

    check.__name__ = f"require_{scope}"
    return check
