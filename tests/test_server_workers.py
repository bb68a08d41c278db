"""`modelgit serve --workers N` as a real process, and TCP_NODELAY on every connection whichever
way uvicorn bound its socket (its --workers path binds with protocol 0, which asyncio reads as "not
TCP" and leaves Nagle's algorithm on: ~40 ms per keep-alive response, uvicorn issue #3149)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from conftest import Repo
from modelgit.server.tokens import TokenStore


def _nodelay_seen(base: type) -> int:
    """TCP_NODELAY of the connection a uvicorn server with the HTTP protocol ``base`` accepted on a
    listening socket bound as uvicorn's Config.bind_socket binds it (protocol 0)."""
    import uvicorn

    seen: list[int] = []

    class Probe(base):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any, *args: Any) -> None:
            super().connection_made(transport, *args)
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket(family=socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    assert sock.proto == 0
    server = uvicorn.Server(uvicorn.Config(app, http=Probe, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        host, port = sock.getsockname()
        assert httpx.get(f"http://{host}:{port}/").text == "ok"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert len(seen) == 1
    return seen[0]


def test_every_connection_gets_tcp_nodelay_on_a_socket_bound_with_protocol_0() -> None:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from modelgit.server.nodelay import NoDelayHTTP

    assert _nodelay_seen(AutoHTTPProtocol) == 0  # what uvicorn's --workers path gives
    assert _nodelay_seen(NoDelayHTTP) != 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_with_two_worker_processes(example_repo: Repo, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    store = TokenStore([], tokens)
    secret = store.create("read", name="reader")[0]
    store.save()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODELGIT_TOKENS"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from modelgit.cli import main; main()", "-C", str(example_repo.root), "serve",
         "--workers", "2", "--port", str(port), "--tokens", str(tokens),
         "--tracking-url", f"sqlite:///{tmp_path / 'usage.sqlite'}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/model-versions/local/calling_score/current"
        headers = {"Authorization": f"Bearer {secret}"}
        deadline = time.monotonic() + 90
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(url, headers=headers, timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, proc.poll()
        doc = yaml.safe_load((example_repo.root / "registry/models/calling_score.yaml").read_text())
        active = next(v["version"] for v in doc["versions"] if v["status"] == "active")
        with httpx.Client(headers=headers, timeout=10) as client:
            for _ in range(20):
                assert client.get(url).json()["currentVersion"] == active
            assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    assert "Traceback" not in out, out
    assert out.count("Started server process") == 2, out
