"""The readiness rule of both services: ready = the last chain step succeeded, recently.

The run loop (:mod:`spotcheck.kit.loop`) reports every step; ``/ready`` asks
:meth:`Readiness.reason`. A service that was just built, whose last step failed (RPC down, a
phase that raised), or whose last success is older than ``max_age_s`` (a hung loop) is not
ready. A service may add conditions of its own (the challenger: its lag behind the head).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Readiness:
    """Written by the loop's thread, read by the HTTP thread (single attribute writes)."""

    #: Seconds after the last successful step within which the service is still ready.
    max_age_s: float = 300.0
    started: float = field(default_factory=time.time)
    #: Wall-clock time of the last successful step (None: none yet).
    last_ok: float | None = None
    #: Why the last step failed (None: it succeeded, or none ran yet).
    last_error: str | None = None

    def step_ok(self) -> None:
        self.last_ok, self.last_error = time.time(), None

    def step_failed(self, reason: str) -> None:
        self.last_error = reason.splitlines()[0][:300] if reason else "failed"

    def reason(self) -> str | None:
        """Why the service is not ready, or None when it is."""
        if self.last_error is not None:
            return f"last chain step failed: {self.last_error}"
        if self.last_ok is None:
            return "starting: no chain step has succeeded yet"
        age = time.time() - self.last_ok
        if age > self.max_age_s:
            return f"no successful chain step for {age:.0f} s (max {self.max_age_s:.0f} s)"
        return None

    def ready(self) -> bool:
        return self.reason() is None
