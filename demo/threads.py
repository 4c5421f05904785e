"""The step loop of an in-process actor: the services' run loop (``spotcheck.kit.loop``) in a
thread. It survives failed rounds, stops on request and never outlives the demo."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from spotcheck.kit.loop import run_loop

log = logging.getLogger(__name__)


class LoopThread:
    """:func:`~spotcheck.kit.loop.run_loop` calling ``step`` every ``interval`` seconds in a
    daemon thread until :meth:`stop`; failed steps are logged by the loop and kept in
    ``errors``. (Off the main thread the loop installs no signal handlers: the demo's CLI
    handles Ctrl-C and SIGTERM and stops every actor.)"""

    def __init__(self, name: str, step: Callable[[], object], interval: float) -> None:
        self.name = name
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_loop,
            args=(step,),
            kwargs={
                "stop": self._stop,
                "interval_s": interval,
                "name": name,
                # the demo's windows are seconds long: retry at the poll interval, no backoff
                "max_backoff_s": interval,
                "on_error": self._failed,
            },
            name=name,
            daemon=True,
        )

    def _failed(self, err: BaseException) -> None:
        self.errors.append(f"{type(err).__name__}: {err}")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s did not stop within %.0f s", self.name, timeout)
