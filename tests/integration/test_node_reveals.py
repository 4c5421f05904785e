"""Leaf requests are revealed back-to-back: one step broadcasts every open request's
``revealLeaf`` at consecutive nonces (journaled, no wait for each receipt); a step before they
are mined resends nothing; one block mines them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from prover.chain_io import NodeChain
from spotcheck.chain import JobStatus, LeafRequestStatus
from spotcheck.encoding import batch_leaf_key
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    _events,
    _infer,
    _request,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain
LEAVES = 4


def test_reveals_areBroadcastBackToBack_journaled_andNeverResent(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    chain: Any,
) -> None:
    n = make_node(batch_size=LEAVES)
    n.service.reveal_wait_s = 0.3
    for i in range(LEAVES):
        _infer(n, spotcheck, [0.1 * i, 0.2, -0.3, 0.4])
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id, root = int(ev.event_arguments["batchId"]), bytes(ev.event_arguments["root"])
    dm = spotcheck.dispute_manager
    for i in range(LEAVES):
        dm.requestLeaf(batch_id, i, root, sender=challenger)
    w3 = chain.provider.web3
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        n.service.step()  # follows the requests, broadcasts every reveal; nothing is mined
        intents = [NodeChain.reveal_intent(batch_id, i) for i in range(LEAVES)]
        sent = [n.store.txs_for(intent) for intent in intents]
        assert all(len(txs) == 1 for txs in sent)
        nonces = sorted(txs[0].nonce for txs in sent)
        assert nonces == list(range(nonces[0], nonces[0] + LEAVES))  # consecutive
        n.service.step()  # still pending: resumed from the journal, not sent again
        assert [n.store.txs_for(intent) for intent in intents] == sent
        w3.provider.make_request("evm_mine", [])  # one block mines them all
        block = w3.eth.get_block("latest")
        assert {"0x" + bytes(h).hex() for h in block["transactions"]} == {
            t[0].tx_hash for t in sent
        }
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    n.service.step()
    for i in range(LEAVES):
        assert dm.getLeafRequest(batch_leaf_key(batch_id, i)).status == LeafRequestStatus.REVEALED
    assert n.store.leaf_requests("open") == []
    assert len(_events(dm.LeafRevealed)) == LEAVES


def test_leafRequestDuringLongFinalizePhase_isRevealedBeforeThePhaseEnds(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
    chain: Any,
) -> None:
    """Audit 2, A2-2 (finalize side): a leaf request that lands while the node finalizes many
    jobs (one transaction each) is read and revealed between two finalizations, not after the
    phase (the commit side is ``test_audit2_node.py``)."""
    n = make_node(batch_size=LEAVES)
    n.service.urgent_interval_s = 0.0
    jobs = [_request(spotcheck, requester, node, [i, 2, 3, 4]) for i in range(4)]
    n.service.step()  # commits the jobs
    advance(chain, MOCK_MODEL.challenge_window // 2)
    for i in range(LEAVES):
        _infer(n, spotcheck, [0.1 * i, 0.2, -0.3, 0.4])
    n.service.step()  # commits the batch; its challenge window outlives the jobs'
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id, root = int(ev.event_arguments["batchId"]), bytes(ev.event_arguments["root"])
    advance(chain, MOCK_MODEL.challenge_window // 2 + 5)  # the jobs are due, the batch is not
    dm = spotcheck.dispute_manager
    key = batch_leaf_key(batch_id, 1)
    seen: list[LeafRequestStatus] = []
    original = n.chain.finalize

    def finalize(job_id: int) -> Any:
        if not seen:  # the node is finalizing: a leaf request lands
            dm.requestLeaf(batch_id, 1, root, sender=challenger)
        seen.append(LeafRequestStatus(dm.getLeafRequest(key).status))
        return original(job_id)

    n.chain.finalize = finalize  # type: ignore[method-assign]
    n.service.step()

    assert [n.chain.job(j).status for j in jobs] == [JobStatus.FINAL] * len(jobs)
    assert seen[0] == LeafRequestStatus.OPEN
    assert seen[1:] == [LeafRequestStatus.REVEALED] * (len(jobs) - 1)  # before the 2nd finalize
    assert n.store.leaf_requests("open") == []
