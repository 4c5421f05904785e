"""Audit 7, left open then: a finalize re-mined a few blocks later was settled without waiting
``confirmations`` again.

The node records the block it saw its batch final at (``final_block``: the finalizeBatch's
receipt) and ``NodeService.confirm_finals`` re-reads the batch once that block is
``confirmations`` deep; a batch still final then was settled, and a settled batch's vectors
may be pruned. A reorg that re-mines the finalizeBatch a few blocks later leaves it shallower
than ``confirmations`` at that re-read: it was settled anyway, and a second reorg inside the
depth the node promised to wait for could drop the finalize again, leaving the batch committed
on chain (leaf requests, disputes) with vectors the node had already deleted.

The safe rule asserted here: a final batch is settled once its finalizeBatch is
``confirmations`` deep *where the chain has it now* (its ``BatchFinalized`` log's block, read
like the commit's ``BatchCommitted``); re-mined later, the wait starts again from the new block
(kept across a restart); dropped meanwhile, the batch is reopened with all its vectors.

Both tests failed before the fix (the batch settled at the first re-read, its vectors pruned).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prover.service import NodeService
from prover.store import BatchState, Store
from spotcheck.chain import BatchStatus
from tests.unit.test_node_flat import _committed_batch

CONFIRMATIONS = 5
SEEN_FINAL = 100  # the node's finalizeBatch receipt
REMINED = 103  # a reorg re-mined it here
JOBS = 6


@dataclass
class FinalsChain:
    """What ``confirm_finals`` reads: the head, ``getBatch(id).status`` and where the chain
    holds the batch's ``BatchFinalized`` log now (None: no finalize on this branch)."""

    head: int
    status: BatchStatus = BatchStatus.FINAL
    final_log: int | None = REMINED

    def block_number(self) -> int:
        return self.head

    def batch(self, batch_id: int) -> Any:
        return SimpleNamespace(status=self.status)

    def finalized_batch_block(self, batch_id: int, from_block: int, to_block: int) -> int | None:
        assert from_block <= SEEN_FINAL and to_block == self.head
        return self.final_log


def _node(store: Store, chain: FinalsChain) -> Any:
    """A NodeService with only what ``confirm_finals`` reads (the real method)."""
    svc: Any = object.__new__(NodeService)
    svc.chain = chain
    svc.store = store
    svc.confirmations = CONFIRMATIONS
    svc.start_block = 0
    svc._urgent = lambda: None
    return svc


def _final_batch(tmp_path: Path) -> tuple[Store, int]:
    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, JOBS)
    store.mark_batch_final(local_id, final_block=SEEN_FINAL)
    return store, local_id


def _vectors(store: Store) -> int:
    return int(store._read("SELECT COUNT(*) FROM served_vectors")[0][0])


def _prune(store: Store) -> int:
    return store.prune_final(final_before=time.time() + 3600, max_rows=1000)


def test_audit7_finalizeReMinedLater_settledOnlyConfirmationsPastItsNewBlock(
    tmp_path: Path,
) -> None:
    store, local_id = _final_batch(tmp_path)
    chain = FinalsChain(head=SEEN_FINAL + CONFIRMATIONS)  # 105: 5 past 100, 2 past 103
    NodeService.confirm_finals(_node(store, chain))
    pending = store.unsettled_finals()
    assert [b.local_id for b in pending] == [local_id], (
        f"settled at head {chain.head} although its finalizeBatch is in block {REMINED}: "
        f"{chain.head - REMINED} deep, not {CONFIRMATIONS}"
    )
    assert pending[0].final_block == REMINED
    assert _prune(store) == 0 and _vectors(store) > 0, "vectors pruned before the finalize settled"
    chain.head = REMINED + CONFIRMATIONS - 1
    restarted = Store(tmp_path / "node.sqlite")  # the new block is kept across a restart
    NodeService.confirm_finals(_node(restarted, chain))
    assert [b.local_id for b in restarted.unsettled_finals()] == [local_id]
    chain.head = REMINED + CONFIRMATIONS
    assert NodeService.confirm_finals(_node(restarted, chain)) == 1
    assert restarted.unsettled_finals() == []
    assert _prune(restarted) > 0  # settled: prunable from now on


def test_audit7_finalizeReMinedLater_thenDropped_batchReopenedWithItsVectors(
    tmp_path: Path,
) -> None:
    store, local_id = _final_batch(tmp_path)
    before = _vectors(store)
    chain = FinalsChain(head=SEEN_FINAL + CONFIRMATIONS)
    NodeService.confirm_finals(_node(store, chain))
    _prune(store)  # the retention's pass
    # A second reorg, inside the depth the node waits for, drops the finalize again.
    chain.status, chain.final_log = BatchStatus.COMMITTED, None
    chain.head = REMINED + CONFIRMATIONS
    NodeService.confirm_finals(_node(store, chain))
    batch = store.batch(local_id)
    assert batch is not None
    assert batch.status is BatchState.COMMITTED, (
        f"the batch is '{batch.status.value}' in the node's store while the chain holds it "
        "committed (finalized again never; leaf requests on it answered from vectors it pruned)"
    )
    assert _vectors(store) == before, "vectors of a batch still committed on chain were pruned"
