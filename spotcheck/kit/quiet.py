"""Third-party log lines that are chatter, not events: demoted to DEBUG at their logger.

A service logs one line per event at INFO; these come from libraries at INFO or WARNING, once
per call, and tell an operator nothing they must act on:

- Ape (logger ``ape``): ``Using cached key for <alias>`` on every signature of an unlocked
  keyfile account with autosign (the node signs a receipt per request);
- ezkl (logger ``ezkl.execute``, through pyo3-log): the ``Numerical Fidelity Report`` table
  that calibration prints (a dozen lines per calibration);
- httpx (logger ``httpx``, INFO): ``HTTP Request: POST ... "HTTP/1.1 200 OK"`` for every
  request a client sends (a challenger's listing fetches, the demo dApp's jobs).

:func:`demote_chatter` installs a filter on each logger that rewrites those records to DEBUG
and lets them through only when that logger is enabled for DEBUG (``spotcheck -vv``). Every
other record of those loggers is untouched. Idempotent.

:func:`ape_traces_to_debug` does the same for the call traces Ape *prints* (not logs) to
stdout for every revert, before the error that a command reports in one line.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

#: (logger name, predicate on the formatted message) of the chatter
CHATTER: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("ape", lambda message: message.startswith("Using cached key for ")),
    ("ezkl.execute", lambda message: "Numerical Fidelity Report" in message),
    ("httpx", lambda message: message.startswith("HTTP Request: ")),
)


@dataclass(frozen=True)
class DemoteToDebug(logging.Filter):
    """Rewrites matching records of ``logger_name`` to DEBUG; drops them unless that logger
    is enabled for DEBUG."""

    logger_name: str
    matches: Callable[[str], bool]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        if not self.matches(message):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(self.logger_name).isEnabledFor(logging.DEBUG)


def demote_chatter() -> None:
    """Install :class:`DemoteToDebug` for every entry of :data:`CHATTER` (once each)."""
    for name, matches in CHATTER:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DemoteToDebug) for f in logger.filters):
            logger.addFilter(DemoteToDebug(name, matches))


#: Where the call traces that Ape would print go instead (DEBUG: ``spotcheck -vv`` shows them).
trace_log = logging.getLogger("spotcheck.ape_trace")


def show_to_debug_log(cls: type) -> None:
    """Make ``cls.show(verbose=False, file=...)`` log at DEBUG on :data:`trace_log` when it is
    called without a ``file`` (Ape's default, the process's stdout); an explicit ``file`` is
    still written. Idempotent."""
    original = cls.__dict__.get("show")
    if original is None or getattr(original, "_spotcheck_to_debug", False):
        return

    def show(self: Any, verbose: bool = False, file: IO[str] | None = None) -> None:
        if file is not None:
            original(self, verbose=verbose, file=file)
            return
        if not trace_log.isEnabledFor(logging.DEBUG):
            return  # rendering a call tree costs RPC calls: skip it when nobody reads it
        buffer = io.StringIO()
        original(self, verbose=verbose, file=buffer)
        trace_log.debug("call trace:\n%s", buffer.getvalue().rstrip())

    show._spotcheck_to_debug = True  # type: ignore[attr-defined]
    cls.show = show  # type: ignore[attr-defined]


def ape_traces_to_debug() -> None:
    """Ape 0.8 prints the call trace of every reverted call or transaction to stdout
    (``ape_ethereum.provider``: ``trace.show()`` in its execution-error handler), before the
    exception the caller turns into one clean line. Route those traces to DEBUG (imports Ape:
    call it where a command connects)."""
    from ape_ethereum.trace import Trace

    show_to_debug_log(Trace)
