"""A real uvicorn server on 127.0.0.1 in a thread, for the feed tests and the API benchmark."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def feed_app(repo_path: Path, ref: str = "main", recheck: float = 0.0) -> Any:
    """A minimal app serving the feed router of ``repo_path`` at ``ref``, counting its hits by
    (path, status) in ``app.state.hits``."""
    from fastapi import FastAPI, Request

    from modelgit.server.feed import router

    app = FastAPI()
    app.include_router(router)
    app.state.repo_path = repo_path
    app.state.ref = ref
    app.state.feed_recheck = recheck
    app.state.hits = Counter()

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        app.state.hits[(request.url.path, response.status_code)] += 1
        return response

    return app


@contextmanager
def serve(app: Any, *, lifespan: str = "off", timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (held from binding on: no race with
    another process) in a thread; yields its base URL. The one way every server test starts one."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
