"""The FastAPI application of ``modelgit serve``: :func:`create_app`.

>>> app = create_app(".", ref="main", tokens=TokenStore.load(Path("tokens.json")))   # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                                     # doctest: +SKIP

Errors are JSON ``{error, hint}`` (and ``findings`` when a change is invalid), never a traceback:
NotFoundError (unknown model, version or ref) → 404, ConflictError (the proposal branch exists) → 409, other
UsageErrors → 400, InvalidError → 422,
GitError/TransientError → 503, anything else → 500 with "please report".
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelgit import api
from modelgit.errors import (
    ConflictError,
    GitError,
    InvalidError,
    ModelgitError,
    NotFoundError,
    TransientError,
    printable,
)
from modelgit.gitstore import GitRepo
from modelgit.server.auth import SESSION_COOKIE, ApiError, require
from modelgit.server.context import LiveSnapshot, ServerContext
from modelgit.server.limits import DEFAULT_MAX_BODY, BodyLimit, RateLimiter
from modelgit.server.tokens import TokenStore

__all__ = ["OPTIONAL_ROUTERS", "SERVE_OPTIONS", "app_from_environment", "create_app"]

log = logging.getLogger("modelgit.server")

# Routers built elsewhere, included when their module is there (each exposes ``router``).
OPTIONAL_ROUTERS = ("modelgit.server.dashboard", "modelgit.server.feed")

DESCRIPTION = """\
The HTTP face of a git-native model registry. **Reads** answer from the registry committed at the
served ref (hot-reloaded). **Writes never move the served ref**: they commit a proposal on a new
branch `modelgit/<model>/<action>-<version>` and return its name and commit, for a person or CI to merge.

**Model ids.** A registry model id is its file path under `registry/models/` without `.yaml`.
`openrouter/qwen-2.5-7b-instruct` is `/api/model-versions/openrouter/qwen-2.5-7b-instruct/…`;
an id without `/` such as `calling_score` takes the provider `local`:
`/api/model-versions/local/calling_score/…`. Every id (any depth) is also `/api/models/{id}`.

**Auth.** `Authorization: Bearer <token>` from `modelgit token create --scope read|propose|admin`;
reads need `read`, writes (`upgrade`, `auto-upgrade`, `usage`, `feedback`) need `propose`.
"""


def _error(status: int, error: str, hint: str = "", headers: dict[str, str] | None = None,
           findings: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": printable(error), "hint": printable(hint)}
    if findings:
        body["findings"] = findings
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status_code, exc.error, exc.hint, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        hint = "see /docs for the endpoints" if exc.status_code in (404, 405) else ""
        return _error(exc.status_code, str(exc.detail), hint, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        findings = []
        for item in exc.errors()[:20]:
            where = ".".join(str(part) for part in item.get("loc", ()))
            findings.append(printable(f"{where}: {item.get('msg', 'invalid')}"))
        return _error(422, "invalid request", "see /docs for the request's shape", findings=findings)

    @app.exception_handler(ModelgitError)
    async def modelgit_error(request: Request, exc: ModelgitError) -> JSONResponse:
        findings = [f.render() for f in exc.findings]
        if isinstance(exc, (GitError, TransientError)):
            return _error(503, exc.message, exc.hint or "retry later", {"Retry-After": "5"}, findings)
        status = (404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError)
                  else 422 if isinstance(exc, InvalidError) else 400)
        return _error(status, exc.message, exc.hint, findings=findings)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "modelgit failed unexpectedly; this is a bug", "please report it with the server log")


# What the read-token dependency adds to every route of the routers mounted behind it (documented
# in the OpenAPI, so a client and schemathesis know them); 400 for a request the feed cannot serve.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request cannot be carried out (e.g. a ref the feed does not serve)."},
    401: {"description": "Missing or invalid bearer token."},
    403: {"description": "The token lacks the scope."},
    429: {"description": "Rate limit of the token exceeded (see Retry-After)."},
}


def create_app(repo_path: str | os.PathLike[str] = ".", *, ref: str = "main", tokens: TokenStore,
               tracking_url: str | None = None, push: str | None = None, poll_interval: float = 1.0,
               max_body: int = DEFAULT_MAX_BODY, rate: float = 50.0, burst: int = 100) -> FastAPI:
    """The app serving the registry at ``ref`` of the repository at ``repo_path``.

    ``tokens``: the accepted bearer tokens; ``tracking_url``: the usage database (default as the
    CLI's: ``MODELGIT_TRACKING_URL``, ``tracking.url``, ``.git/modelgit/usage.sqlite``);
    ``push``: a remote proposal branches are pushed to; ``poll_interval``: seconds between polls of
    the ref (0: no reloads); ``max_body``: bytes per request body; ``rate``/``burst``: the token
    bucket per token (requests per second, burst size)."""
    from modelgit.server.routes import router

    repo = GitRepo.discover(repo_path)
    live = LiveSnapshot(repo, ref, poll_interval)
    context = ServerContext(Path(repo.root), ref, repo, live, tokens, tracking_url=tracking_url, push=push)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context.tracker = api.open_tracker(context.repo, context.snapshot.current, context.tracking_url)
        live.start()
        try:
            yield
        finally:
            live.stop()
            context.tracker.close()

    from fastapi_offline import FastAPIOffline

    # Swagger UI at /docs from files in the fastapi-offline package: FastAPI's own /docs loads them
    # from a CDN, a blank page on a machine without internet access.
    app = FastAPIOffline(title="modelgit", version=_version(), description=DESCRIPTION, lifespan=lifespan,
                         redoc_url=None, static_url="/docs-assets")
    app.state.context = context
    app.state.rate_limiter = RateLimiter(rate, burst)
    _install_error_handlers(app)
    app.include_router(router)
    app.include_router(_login_router())
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise  # the module is there but needs something missing: say so
            continue
        # The dashboard and the feed show the registry and its usage: a `read` token, like the API
        # (a browser logs in once at /login; a replica sends MODELGIT_FEED_TOKEN).
        app.include_router(module.router, dependencies=[Depends(require("read"))], responses=AUTH_ERRORS)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app


SERVE_OPTIONS = "MODELGIT_SERVE_OPTIONS"


def app_from_environment() -> FastAPI:
    """The app of one worker of ``modelgit serve --workers N``: :func:`create_app` with the options
    the command left in ``$MODELGIT_SERVE_OPTIONS`` (JSON; ``repo``, ``tokens`` the token file or
    null for ``$MODELGIT_TOKENS``, and create_app's keyword arguments)."""
    import json

    options = json.loads(os.environ[SERVE_OPTIONS])
    repo, tokens = options.pop("repo"), options.pop("tokens")
    return create_app(repo, tokens=TokenStore.load(Path(tokens) if tokens else None), **options)


def _login_router() -> Any:
    """GET /login: a form for a token; POST /login: checks it and keeps it in an HttpOnly,
    SameSite=Strict cookie, so the dashboard works in a browser without putting tokens in URLs."""
    from urllib.parse import parse_qs

    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse, RedirectResponse

    login = APIRouter(include_in_schema=False)
    form = ('<!doctype html><title>modelgit: log in</title><form method="post" action="/login">'
            '<label>Token <input name="token" type="password" autocomplete="off"></label> '
            '<button>Log in</button></form><p>{note}</p>')

    @login.get("/login")
    def login_form() -> HTMLResponse:
        return HTMLResponse(form.format(note="Create a token with: modelgit token create --scope read"))

    @login.post("/login")
    async def login_submit(request: Request) -> Any:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        secret = (fields.get("token") or [""])[0].strip()
        if not secret or request.app.state.context.tokens.check(secret) is None:
            return HTMLResponse(form.format(note="That token is not valid."), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    return login


def _version() -> str:
    from modelgit import __version__

    return __version__
