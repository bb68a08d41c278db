"""uvicorn's HTTP protocol with ``TCP_NODELAY`` set on every connection it serves.

asyncio sets ``TCP_NODELAY`` only on sockets that report ``IPPROTO_TCP``; uvicorn's ``--workers``
path binds its listening socket with protocol 0, so the connections it accepts keep Nagle's
algorithm on, and every keep-alive response written as a head and a body waits for the client's
delayed ACK: about 40 ms per request on Linux (uvicorn issue #3149, open in uvicorn 0.54). Setting
the option per connection works whichever way the socket was bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["NoDelayHTTP"]

_TCP = (socket.AF_INET, socket.AF_INET6)


class NoDelayHTTP(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """``uvicorn.run(app, http=NoDelayHTTP)`` or ``--http modelgit.server.nodelay:NoDelayHTTP``."""

    def connection_made(self, transport: asyncio.BaseTransport, *args: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in _TCP:
            with contextlib.suppress(OSError):  # a socket closing already: nothing to speed up
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport, *args)
