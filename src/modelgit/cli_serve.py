"""CLI verbs of the HTTP face: ``serve`` and ``token create``.

FastAPI and uvicorn are imported inside ``serve`` only, so ``modelgit --help`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from modelgit.errors import EXIT_OK, UsageError

if TYPE_CHECKING:  # pathlib is imported where a path is made: 'modelgit serve --help' needs none
    from pathlib import Path

TOKENS_HELP = ("Token file (JSON of sha256 digests); default: .git/modelgit/tokens.json, or MODELGIT_TOKENS "
               "(name:scope:sha256hex,...) when set.")


def _token_path(obj: Any, tokens: str | None) -> Path:
    from pathlib import Path

    from modelgit.server.tokens import tokens_path

    return Path(tokens) if tokens else tokens_path(obj.repo().git_dir)


def register_commands(cli: click.Group, pass_context: Callable[..., Any]) -> None:
    @cli.command()
    @click.option("--ref", default="main", show_default=True, help="Serve the registry committed at this branch.")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind; anything but loopback exposes the API to the network.")
    @click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to bind.")
    @click.option("--tracking-url", default=None, metavar="URL",
                  help="Usage database; default: MODELGIT_TRACKING_URL, then tracking.url in modelgit.yaml, "
                       "then .git/modelgit/usage.sqlite.")
    @click.option("--tokens", default=None, metavar="FILE", help=TOKENS_HELP)
    @click.option("--push", default=None, metavar="REMOTE", help="Push every proposal branch to REMOTE.")
    @click.option("--poll-interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True,
                  help="Seconds between polls of the ref for new commits.")
    @click.option("--rate", type=click.FloatRange(min=0.01), default=50.0, show_default=True,
                  help="Requests per second per token (token bucket).")
    @click.option("--burst", type=click.IntRange(min=1), default=100, show_default=True,
                  help="Burst size of each token's bucket.")
    @click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
                  help="Worker processes; each polls the ref and rate-limits tokens on its own.")
    @pass_context
    def serve(obj: Any, ref: str, host: str, port: int, tracking_url: str | None, tokens: str | None,
              push: str | None, poll_interval: float, rate: float, burst: int, workers: int) -> int:
        """Serve the registry at REF over HTTP (FastAPI): seed 000's /api/model-versions/… endpoints,
        /api/models, /api/usage and /api/feedback; OpenAPI at /openapi.json, docs at /docs.

        Reads follow REF (hot-reloaded); writes only create proposal branches. Every request needs
        a bearer token: create one with 'modelgit token create --scope read'."""
        import json
        import os
        from pathlib import Path

        try:
            import uvicorn

            from modelgit.server.app import SERVE_OPTIONS, create_app
            from modelgit.server.nodelay import NoDelayHTTP
        except ModuleNotFoundError as exc:
            if not exc.name or exc.name.split(".")[0] == "modelgit":
                raise  # our own module missing: a broken install, not a missing extra
            raise UsageError(f"'modelgit serve' needs the server extra: {exc.name} is not installed",
                             hint="pip install 'modelgit[server]'") from None
        from modelgit.server.tokens import ENV_VAR, TokenStore

        path = Path(tokens) if tokens else None
        if path is None and not os.environ.get(ENV_VAR):
            path = _token_path(obj, None)
        store = TokenStore.load(path)
        if not store.tokens:
            raise UsageError(f"no tokens in {path or ENV_VAR}: every request would be refused",
                             hint="create one: modelgit token create --scope read")
        options = {"ref": ref, "tracking_url": tracking_url, "push": push, "poll_interval": poll_interval,
                   "rate": rate, "burst": burst}
        app = create_app(obj.repo_path, tokens=store, **options)  # in this process too: fails early
        if host not in ("127.0.0.1", "::1", "localhost"):
            click.echo(f"warning: binding {host}: the API is reachable from the network", err=True)
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="info", http=NoDelayHTTP)
            return EXIT_OK
        # Each worker process builds its own app from the same options (uvicorn imports it by name).
        os.environ[SERVE_OPTIONS] = json.dumps({**options, "repo": str(Path(obj.repo_path).absolute()),
                                                "tokens": str(path) if path else None})
        uvicorn.run("modelgit.server.app:app_from_environment", factory=True, workers=workers, host=host,
                    port=port, log_level="info", http=NoDelayHTTP)
        return EXIT_OK

    @cli.group()
    def token() -> None:
        """Bearer tokens for 'modelgit serve' (stored as sha256 digests)."""

    @token.command("create")
    @click.option("--scope", type=click.Choice(["read", "propose", "admin"]), required=True,
                  help="read: GET endpoints; propose: also writes (proposal branches, usage); admin: everything.")
    @click.option("--name", default=None, help="A name for logs and rate limits; default SCOPE-N.")
    @click.option("--tokens", default=None, metavar="FILE",
                  help="Token file to add it to; default: .git/modelgit/tokens.json.")
    @pass_context
    def create(obj: Any, scope: str, name: str | None, tokens: str | None) -> int:
        """Create a token, store its sha256 digest (file mode 0600) and print the token once."""
        from modelgit.server.tokens import TokenStore

        store = TokenStore.from_file(_token_path(obj, tokens))
        secret, entry = store.create(scope, name)
        where = store.save()
        click.echo(secret)
        click.echo(f"token '{entry.name}' ({entry.scope}) stored as its sha256 in {where}; "
                   "this is the only time it is shown", err=True)
        return EXIT_OK
