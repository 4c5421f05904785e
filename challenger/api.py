"""``/health``, ``/ready``, ``/metrics`` and ``/status`` of a running challenger (FastAPI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from challenger.metrics import Metrics


@dataclass
class Health:
    """What the work loop last reported (written by the loop, read by the HTTP thread)."""

    confirmations: int
    ready_slack: int
    started: float = field(default_factory=time.time)
    last_tick: float | None = None
    lag: int | None = None
    last_error: str | None = None

    def ready(self) -> bool:
        return (
            self.last_error is None
            and self.lag is not None
            and self.lag <= self.confirmations + self.ready_slack
        )


def create_app(health: Health, metrics: Metrics, status: Callable[[], dict[str, Any]]) -> FastAPI:
    app = FastAPI(title="Spotcheck challenger", version="1")

    @app.get("/health")
    def get_health() -> dict[str, Any]:
        """The process is alive."""
        return {"status": "ok", "uptime_s": round(time.time() - health.started, 1)}

    @app.get("/ready")
    def get_ready(response: Response) -> dict[str, Any]:
        """Caught up with the chain: lag <= confirmations + slack, and the last tick worked."""
        ok = health.ready()
        response.status_code = 200 if ok else 503
        return {
            "ready": ok,
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
