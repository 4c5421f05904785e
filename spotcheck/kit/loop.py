"""The run loop of both services: step every ``interval_s`` until stopped.

A step that raises is logged, reported to the service's :class:`~spotcheck.kit.ready.Readiness`
and retried after a backoff that doubles from ``interval_s`` up to ``max_backoff_s``; nothing
is lost, because every step restarts from the persisted state. SIGINT and SIGTERM (Ctrl-C,
systemd, docker, kill) set the stop event when the loop runs on the main thread: the step in
progress finishes, then the loop returns and the caller closes its resources.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from spotcheck.errors import SpotcheckError
from spotcheck.kit.ready import Readiness

log = logging.getLogger(__name__)
R = TypeVar("R")

MAX_BACKOFF_S = 60.0
#: Failures that are part of a service's life (RPC down, chain errors): logged without a
#: traceback. Anything else is a bug and is logged with one.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (SpotcheckError, OSError)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop`` (only possible on the main thread); a
    second signal raises KeyboardInterrupt (a step that hangs can still be interrupted). The
    previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in sigs}

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s: stopping after the current step", signal.Signals(signum).name)
        stop.set()

    for sig in sigs:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_loop(
    step: Callable[[], R],
    *,
    stop: threading.Event,
    interval_s: float,
    name: str = "step",
    readiness: Readiness | None = None,
    failure: Callable[[R], str | None] = lambda report: None,
    on_step: Callable[[R], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    max_backoff_s: float = MAX_BACKOFF_S,
    max_steps: int | None = None,
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> int:
    """Call ``step()`` until ``stop`` is set (or ``max_steps`` calls); returns the calls made.
    ``name`` names a step in the log ("<name> failed, retrying in 2.0 s: <why>").

    A step that raises one of ``retry_on`` is a failed step: logged, counted by ``on_error``,
    then retried after the backoff (anything else propagates and ends the loop). A step that
    returns is reported to ``readiness`` as failed when ``failure(report)`` names a reason (a
    service whose phases catch their own errors), as successful otherwise, and handed to
    ``on_step``."""
    backoff = interval_s
    steps = 0
    with stop_on_signals(stop):
        while not stop.is_set() and (max_steps is None or steps < max_steps):
            steps += 1
            try:
                report = step()
            except retry_on as err:
                reason = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
                log.warning(
                    "%s failed, retrying in %.1f s: %s",
                    name,
                    backoff,
                    reason,
                    exc_info=not isinstance(err, EXPECTED_FAILURES),
                )
                if readiness is not None:
                    readiness.step_failed(reason)
                if on_error is not None:
                    on_error(err)
                stop.wait(backoff)
                backoff = min(max_backoff_s, backoff * 2)
                continue
            backoff = interval_s
            if readiness is not None:
                why = failure(report)
                if why is None:
                    readiness.step_ok()
                else:
                    readiness.step_failed(why)
            if on_step is not None:
                on_step(report)
            stop.wait(interval_s)
    return steps
