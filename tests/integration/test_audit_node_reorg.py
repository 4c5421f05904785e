"""Audit (v2): a reorg re-includes the node's commitBatch under another batch id.

The node records ``batchId`` from the commit's receipt at once (the event follower waits
``confirmations`` blocks, the commit path does not), and later finds its batch for a leaf
request or a dispute only by that recorded id (``Store.batch_by_chain_id``; the fallback
``_batch_for_chain_id`` looks only at sealed/committing batches). After a reorg in which
another commitBatch lands first, the node's own batch has a new id: the node answers the leaf
request of its real batch with "not ours" and is slashed although it is honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spotcheck.chain import LeafRequestStatus
from spotcheck.encoding import batch_leaf_key
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    _events,
    _infer,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain


def test_audit_reorgMovesBatchId_honestNodeCannotRevealItsLeaf_andIsSlashed(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    node: Any,
    node2: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    n = make_node(batch_size=2)
    for i in range(2):
        _infer(n, spotcheck, [0.1, 0.1 * i, 0.2, 0.3])
    jm, dm = spotcheck.job_manager, spotcheck.dispute_manager
    fork_point = chain.snapshot()
    n.service.step()  # seals and commits the batch; records the id from the receipt
    [ev] = _events(jm.BatchCommitted, node=n.chain.address)
    args = ev.event_arguments
    recorded = int(args["batchId"])
    root, count, uri = bytes(args["root"]), int(args["count"]), str(args["uri"])
    assert n.store.batch_by_chain_id(recorded) is not None
    height = chain.blocks.height

    # Reorg: the block holding the node's commitBatch is replaced; in the new branch another
    # node's commitBatch is mined first and the node's own transaction (same nonce, same data)
    # is re-included after it.
    chain.restore(fork_point)
    jm.commitBatch(spotcheck.model_id, b"\x11" * 32, 1, "other", sender=node2)
    receipt = jm.commitBatch(spotcheck.model_id, root, count, uri, sender=node)
    actual = int(receipt.return_value)
    assert actual != recorded and jm.getBatch(actual).root == root
    chain.mine(max(1, height - chain.blocks.height + 2))  # past the follower's checkpoint

    dm.requestLeaf(actual, 0, root, sender=challenger)
    rid = batch_leaf_key(actual, 0)
    for _ in range(3):
        n.service.step()
    if dm.getLeafRequest(rid).status == LeafRequestStatus.OPEN:
        advance(chain, MOCK_MODEL.proof_window + 1)
        stake = n.chain.stake().amount
        dm.settleLeafRequest(rid, sender=outsider)
        assert n.chain.stake().amount == stake - MOCK_MODEL.slash_amount  # honest, slashed
    assert dm.getLeafRequest(rid).status == LeafRequestStatus.REVEALED
