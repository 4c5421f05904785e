"""Serve a FastAPI (ASGI) app with uvicorn on a thread of its own, beside the service's loop."""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

from spotcheck.errors import StartupError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for tests and in-process services)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int, *, flag: str) -> None:
    """The HTTP port can be bound now (as uvicorn will bind it, with SO_REUSEADDR); else a
    one-line StartupError naming the setting and the service's ``flag`` that change it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise StartupError(f"cannot listen on {host}:{port}: {err}") from err
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as err:
            why = "the port is in use" if err.errno == errno.EADDRINUSE else err.strerror
            raise StartupError(
                f"cannot listen on {host}:{port}: {why} (set [http] port or {flag})"
            ) from err


class HttpThread:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread; :meth:`stop` ends it."""

    def __init__(self, app: Any, host: str, port: int, name: str = "http") -> None:
        import uvicorn  # here, so that importing a service's modules does not import uvicorn

        self.host, self.port = host, port
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, wait_s: float | None = None) -> HttpThread:
        """Start serving; with ``wait_s``, wait that long for the socket to be listening
        (RuntimeError if it is not: the port is taken, the app failed to start)."""
        self.thread.start()
        if wait_s is not None:
            deadline = time.monotonic() + wait_s
            while not self._server.started:
                if time.monotonic() > deadline or not self.thread.is_alive():
                    raise RuntimeError(f"HTTP server on {self.url} did not start")
                time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)


def serve(app: Any, host: str, port: int, name: str = "http") -> HttpThread:
    """Start serving ``app`` in a thread (see :class:`HttpThread`)."""
    return HttpThread(app, host, port, name).start()
