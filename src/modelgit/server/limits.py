"""Limits of the HTTP face: request body size (413) and a per-token rate (429).

Both are plain ASGI / pure Python, so they are tested without a server too.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["DEFAULT_MAX_BODY", "BodyLimit", "RateLimiter"]

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a usage record or an upgrade note is a few hundred bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, decided before the body is read — from
    ``Content-Length`` when sent, else while the chunks stream in (the app never sees more)."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reply(send, 400, "invalid Content-Length header", "send the body's size in bytes")
                    return
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        seen = 0
        replied = started = False

        async def limited_receive() -> Message:
            # Past the limit, answer 413 here and tell the app the client left: whatever the
            # app does with a half-read body (a parse error, a disconnect), its reply is dropped.
            nonlocal seen, replied
            if replied:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    replied = True
                    if not started:  # a reply under way cannot become a 413: it is cut off
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not replied:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not replied:
                raise

    async def _too_large(self, send: Send) -> None:
        await self._reply(send, 413, f"request body larger than {self.max_bytes} bytes",
                          "send a smaller body; usage records and notes are small")

    @staticmethod
    async def _reply(send: Send, status: int, error: str, hint: str) -> None:
        body = json.dumps({"error": error, "hint": hint}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """A token bucket per key (a token's name): ``rate`` requests per second on average, bursts of
    up to ``burst``. :meth:`take` returns 0 when the request may go on, else the seconds to wait."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` in whole seconds (at least 1)."""
        return str(max(1, math.ceil(wait)))
