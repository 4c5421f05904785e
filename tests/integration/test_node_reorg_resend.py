# ruff: noqa: F811 - the node fixtures are imported from test_node_service
"""Issue 14: the node after a reorg that drops its transactions for good (``anvil_reorg``: the
transactions of the replaced blocks do not come back to the pool).

- A dropped ``commitBatch`` (mined, or under a later transaction of the node that now waits
  behind the nonce gap) is sent again within seconds: the same signed transaction (same hash,
  same nonce), never a second transaction for the intent; not after the stuck timeout.
- A dropped ``finalizeBatch`` whose nonce went to another transaction is noticed once the
  node's FINAL is ``confirmations`` deep (the chain still shows the batch committed) and the
  batch is finalized again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from prover.store import BatchState
from prover.transactions import FeePolicy
from spotcheck.chain import BatchStatus
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_node_faults import _hex, _rpc
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    _events,
    _infer,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain

#: How long the node may take to send a dropped transaction again (the stuck timeout of these
#: nodes is 30 s and their send timeout 20 s: what today's code waits).
RESEND_WITHIN_S = 5.0
POLICY = FeePolicy(stuck_after_s=30, timeout_s=20, poll_s=0.1)


def _committed_roots(sc: Any, node: Any) -> list[bytes]:
    return [
        bytes(e.event_arguments["root"])
        for e in _events(sc.job_manager.BatchCommitted, node=node.address)
    ]


def _reorg(depth: int) -> None:
    """Replace the last ``depth`` blocks with empty ones; their transactions are gone."""
    _rpc("anvil_reorg", depth, [])


def test_reorgDropsMinedCommitBatch_nodeSendsTheSameTransactionAgainWithinSeconds(
    make_node: Callable[..., Node], spotcheck: Any, node: Any
) -> None:
    n = make_node(batch_size=1, policy=POLICY)
    _infer(n, spotcheck, [0.1, 0.2, 0.3, 0.4])
    n.service.step()
    [batch] = n.store.batches(BatchState.COMMITTED)
    intent = f"commitBatch:local:{batch.local_id}"
    [sent] = n.store.txs_for(intent)
    nonce_after = node.nonce
    assert _committed_roots(spotcheck, node) == [batch.root]

    _reorg(1)
    assert _committed_roots(spotcheck, node) == [] and node.nonce == sent.nonce

    start = time.monotonic()
    while time.monotonic() - start < RESEND_WITHIN_S and not _committed_roots(spotcheck, node):
        n.service.step()
        time.sleep(0.2)

    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=node.address)
    assert bytes(ev.event_arguments["root"]) == batch.root
    assert _hex(ev.transaction_hash) == sent.tx_hash.lower()  # the same transaction again
    assert [t.tx_hash for t in n.store.txs_for(intent)] == [sent.tx_hash]
    assert node.nonce == nonce_after


def test_reorgDropsCommitBatchUnderAPendingOne_bothMinedWithinSeconds_notAfterTheTimeout(
    make_node: Callable[..., Node], spotcheck: Any, node: Any
) -> None:
    n = make_node(batch_size=1, policy=POLICY)
    _infer(n, spotcheck, [0.1, 0.2, 0.3, 0.4])
    n.service.step()
    [first] = n.store.batches(BatchState.COMMITTED)
    [first_tx] = n.store.txs_for(f"commitBatch:local:{first.local_id}")

    _rpc("evm_setAutomine", False)
    try:
        _infer(n, spotcheck, [0.5, 0.6, 0.7, 0.8])
        step = threading.Thread(target=n.service.step)
        step.start()  # broadcasts the second commitBatch, then waits for its receipt
        start = time.monotonic()
        while time.monotonic() - start < 10 and not n.store.batches(BatchState.COMMITTING):
            time.sleep(0.05)
        [second] = n.store.batches(BatchState.COMMITTING)
        while time.monotonic() - start < 10 and not n.store.txs_for(
            f"commitBatch:local:{second.local_id}"
        ):
            time.sleep(0.05)
        time.sleep(0.3)  # broadcast
        _reorg(1)  # the first commitBatch is gone: the second waits behind a nonce gap
    finally:
        _rpc("evm_setAutomine", True)
    assert node.nonce == first_tx.nonce

    dropped_at = time.monotonic()
    step.join(timeout=POLICY.timeout_s + 10)
    took = time.monotonic() - dropped_at

    assert sorted(_committed_roots(spotcheck, node)) == sorted([first.root, second.root])
    assert took < RESEND_WITHIN_S, f"the node stalled {took:.1f} s"
    assert n.store.batch(second.local_id).status == BatchState.COMMITTED  # type: ignore[union-attr]
    [again] = [
        e
        for e in _events(spotcheck.job_manager.BatchCommitted, node=node.address)
        if bytes(e.event_arguments["root"]) == first.root
    ]
    assert _hex(again.transaction_hash) == first_tx.tx_hash.lower()


def test_reorgDropsFinalizeBatch_nonceTakenByAnotherTx_nodeFinalizesAgain(
    make_node: Callable[..., Node], spotcheck: Any, node: Any, chain: Any
) -> None:
    n = make_node(batch_size=1, policy=POLICY)
    n.service.confirmations = 2
    _infer(n, spotcheck, [0.1, 0.2, 0.3, 0.4])
    n.service.step()
    chain.mine(2)
    n.service.step()
    [batch] = n.store.batches(BatchState.COMMITTED)
    assert batch.confirmed and batch.batch_id is not None
    advance(chain, MOCK_MODEL.challenge_window + 1)
    before = chain.blocks.height
    n.service.step()
    assert n.store.batch(batch.local_id).status == BatchState.FINAL  # type: ignore[union-attr]
    jm = spotcheck.job_manager
    assert jm.getBatch(batch.batch_id).status == BatchStatus.FINAL

    _reorg(chain.blocks.height - before)  # finalizeBatch (and the deposit refund) gone
    assert jm.getBatch(batch.batch_id).status == BatchStatus.COMMITTED
    # Its nonce goes to another transaction of the account: it can never be mined again.
    spotcheck.token.approve(node.address, 0, sender=node)

    for _ in range(3):
        n.service.step()
        chain.mine(1)
    n.service.step()

    assert jm.getBatch(batch.batch_id).status == BatchStatus.FINAL
    assert n.store.batch(batch.local_id).status == BatchState.FINAL  # type: ignore[union-attr]
