"""Pruning: the served vectors of final batches are deleted after the operator's retention.

A final batch can no longer be disputed nor have a leaf requested on chain (``finalizeBatch``
needs no open claim and ``requestLeaf`` a committed batch), so its vectors serve only readers
of its listing; after ``retention_hours`` they go, ``chunk`` rows per step of the node's loop
(one short write transaction, never a long stall of the serving lock). A pruned batch's
listing answers 410. The rows of ``served_jobs`` (hashes, leaf, signature) stay: a leaf's
proof is rebuilt from them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prover.store import Store

log = logging.getLogger(__name__)


class Retention:
    """One bounded pruning pass per call (the node's ``prune`` phase)."""

    def __init__(
        self,
        store: Store,
        retention_s: float,
        chunk: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.retention_s = retention_s
        self.chunk = chunk
        self._clock = clock

    def step(self) -> int:
        """Delete up to ``chunk`` vectors of batches final for longer than the retention."""
        deleted = self.store.prune_final(self._clock() - self.retention_s, self.chunk)
        if deleted:
            log.info("served vectors pruned", extra={"rows": deleted})
        return deleted
