"""A daemon thread that calls a function every ``interval`` seconds until stopped: the runtime's
``watch`` and ``modelgit serve``'s ref poll share it."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

__all__ = ["Poller"]


class Poller:
    """Calls ``poll`` every ``interval`` seconds, each wait drawn in ``interval · (1 ± jitter)`` so
    that many processes started together do not poll in step. An exception from ``poll`` is
    logged and handed to ``on_error``; it never ends the thread (the next poll retries)."""

    def __init__(self, poll: Callable[[], object], interval: float, *, jitter: float = 0.0, name: str,
                 log: logging.Logger, on_error: Callable[[Exception], None] | None = None) -> None:
        self._poll = poll
        self.interval = interval
        self.jitter = min(max(jitter, 0.0), 1.0)
        self._name = name
        self._log = log
        self._on_error = on_error
        self._draw = random.Random()  # private: the host's global generator is not ours to move
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval * (1.0 + self._draw.uniform(-self.jitter, self.jitter))):
            try:
                self._poll()
            except Exception as exc:  # a poll must never end the thread
                self._log.exception("%s: poll failed", self._name)
                if self._on_error is not None:
                    self._on_error(exc)
