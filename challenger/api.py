"""``/health``, ``/ready``, ``/metrics`` and ``/status`` of a running challenger (FastAPI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from challenger.metrics import Metrics
from spotcheck.kit.ready import Readiness


class Health(Readiness):
    """The kit's readiness (the last tick succeeded, recently) and the lag behind the head
    (written by the work loop, read by the HTTP thread)."""

    def __init__(self, confirmations: int, ready_slack: int, max_age_s: float = 300.0) -> None:
        super().__init__(max_age_s)
        self.confirmations = confirmations
        self.ready_slack = ready_slack
        self.lag: int | None = None

    @property
    def last_tick(self) -> float | None:
        return self.last_ok

    def reason(self) -> str | None:
        why = super().reason()
        if why is None and (self.lag is None or self.lag > self.confirmations + self.ready_slack):
            why = f"{self.lag} blocks behind the head (max {self.confirmations + self.ready_slack})"
        return why


def create_app(health: Health, metrics: Metrics, status: Callable[[], dict[str, Any]]) -> FastAPI:
    app = FastAPI(title="Spotcheck challenger", version="1")

    @app.get("/health")
    def get_health() -> dict[str, Any]:
        """The process is alive."""
        return {"status": "ok", "uptime_s": round(time.time() - health.started, 1)}

    @app.get("/ready")
    def get_ready(response: Response) -> dict[str, Any]:
        """The last tick succeeded (within ``ready_max_age_s``) and the checkpoint is caught up
        with the chain: lag <= confirmations + slack."""
        why = health.reason()
        response.status_code = 200 if why is None else 503
        return {
            "ready": why is None,
            "reason": why,
            "lag": health.lag,
            "max_lag": health.confirmations + health.ready_slack,
            "last_tick": health.last_tick,
            "last_error": health.last_error,
        }

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status")
    def get_status() -> dict[str, Any]:
        """Job states, counters and withdrawals from the local database."""
        return status()

    return app
