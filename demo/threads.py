"""Threads for in-process services: a step loop that survives failed rounds, and a uvicorn
HTTP server. Both stop on request and never outlive the demo."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from spotcheck.kit.serve import free_port

log = logging.getLogger(__name__)


class LoopThread:
    """Call ``step`` every ``interval`` seconds until stopped; errors are counted and logged."""

    def __init__(self, name: str, step: Callable[[], object], interval: float) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors: list[str] = []
        self.steps = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
                self.steps += 1
            except Exception as err:  # an actor must survive a failed round, like the services
                message = f"{type(err).__name__}: {err}"
                self.errors.append(message)
                log.warning("%s: step failed (retrying): %s", self.name, message)
            self._stop.wait(self._interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s did not stop within %.0f s", self.name, timeout)


class HttpServer:
    """A FastAPI app served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, app: Any, name: str, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"HTTP server on {self.url} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
