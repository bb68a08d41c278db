"""A real uvicorn server on 127.0.0.1 (a free port), in a thread, for the HTTP API tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feed_support import serve
from modelgit.server.app import create_app
from modelgit.server.tokens import TokenStore


@dataclass
class Live:
    """A running server: its base URL, one token per scope, the app (for its context)."""

    url: str
    tokens: dict[str, str]
    app: Any
    tracking_url: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


def token_store() -> tuple[TokenStore, dict[str, str]]:
    store = TokenStore([])
    tokens = {scope: store.create(scope, name=f"test-{scope}")[0] for scope in ("read", "propose", "admin")}
    return store, tokens


@contextmanager
def live_server(repo_root: Path, tmp_path: Path, **options: Any) -> Iterator[Live]:
    """Serve ``repo_root`` (branch main) with uvicorn on a free loopback port until the block ends."""
    store, tokens = token_store()
    tracking_url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    options.setdefault("poll_interval", 0.2)
    app = create_app(repo_root, ref="main", tokens=store, tracking_url=tracking_url, **options)
    with serve(app, lifespan="on") as url:
        yield Live(url, tokens, app, tracking_url)
