"""The dApp's HTTP calls to a node, retried where a user's client would retry.

``POST /v1/models/{id}/infer`` is not idempotent: every request the node reads becomes a new
job (a new job id, a new receipt, a leaf in a batch). So a request is retried only when the
node cannot have read it:

- the connection could not be made (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``):
  nothing was sent;
- the node answered ``503`` (halted model, not ready): it refused the request and served
  nothing.

Anything after the request may have reached the node (a reset while reading the answer, a read
timeout, a broken response) is not retried: it raises :class:`AnswerLost`, and the caller
counts a job whose answer it never got (the node may still have served and committed it; the
dApp holds no receipt for it and never uses it).

Connections are not kept alive between requests: a kept-alive connection that the server closes
after its idle timeout (uvicorn: 5 s) while the client sends on it is reset by the server
*before* it reads the request, and on a machine busy proving the gap between two requests to
the same node easily exceeds 5 s. A fresh connection per request removes that race.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class AnswerLost(RuntimeError):  # noqa: N818 - a fact, not a programming error
    """The request may have reached the node, but its answer did not reach us."""


class NodeUnavailable(RuntimeError):  # noqa: N818
    """Every attempt within the deadline failed before the node read the request."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff ``first_delay_s * 2**attempt`` capped at ``max_delay_s``, for at most
    ``deadline_s`` in total (the last attempt starts before the deadline)."""

    deadline_s: float = 60.0
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.first_delay_s * 2**attempt))


def new_client(timeout_s: float = 60.0) -> Any:
    """An ``httpx.Client`` that opens a fresh connection for every request (see the module)."""
    import httpx

    return httpx.Client(
        timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=0, max_connections=4)
    )


def post_json(
    client: Any, url: str, body: dict[str, Any], policy: RetryPolicy | None = None
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON answer; retry only what the node cannot have
    read (see the module). Raises :class:`AnswerLost`, :class:`NodeUnavailable`, or
    ``httpx.HTTPStatusError`` for any other 4xx/5xx answer."""
    import httpx

    policy = policy or RetryPolicy()
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            r = client.post(url, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            why = f"{type(err).__name__}: {err}"
        except httpx.TransportError as err:
            raise AnswerLost(
                f"{url}: {type(err).__name__}: {err} (not retried: the node may have served it)"
            ) from err
        else:
            if r.status_code != 503:
                r.raise_for_status()
                result: dict[str, Any] = r.json()
                return result
            why = f"503 {r.text[:200]}"
        wait = policy.delay(attempt)
        elapsed = time.monotonic() - start
        if elapsed + wait > policy.deadline_s:
            raise NodeUnavailable(
                f"{url}: gave up after {attempt + 1} attempts in {elapsed:.1f} s: {why}"
            )
        log.info("dApp: %s not reached (%s); retry %d in %.1f s", url, why, attempt + 1, wait)
        time.sleep(wait)
        attempt += 1
