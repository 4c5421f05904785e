"""The node's batch ids across reorgs: confirmed ``confirmations`` blocks deep, corrected by
(root, modelId, node) when the chain names an id the node does not know (listings too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from prover.store import BatchState
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    _events,
    _infer,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain


def test_reorgMovesBatchId_listingServedByChainId_andConfirmationCorrectsIt(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    node: Any,
    node2: Any,
    chain: Any,
) -> None:
    n = make_node(batch_size=2)
    n.service.confirmations = 3
    for i in range(2):
        _infer(n, spotcheck, [0.1, 0.1 * i, 0.2, 0.3])
    jm = spotcheck.job_manager
    fork_point = chain.snapshot()
    n.service.step()
    [ev] = _events(jm.BatchCommitted, node=n.chain.address)
    args = ev.event_arguments
    recorded = int(args["batchId"])
    root, count, uri = bytes(args["root"]), int(args["count"]), str(args["uri"])
    [batch] = n.store.batches(BatchState.COMMITTED)
    assert batch.batch_id == recorded and not batch.confirmed  # not deep enough yet

    chain.restore(fork_point)
    jm.commitBatch(spotcheck.model_id, b"\x22" * 32, 1, "other", sender=node2)
    actual = int(jm.commitBatch(spotcheck.model_id, root, count, uri, sender=node).return_value)
    assert actual != recorded

    # The old id now holds node2's batch: not ours. The real id is found by its root.
    assert n.http.get(f"/v1/batches/{recorded}").status_code == 404
    resp = n.http.get(f"/v1/batches/{actual}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["root"] == "0x" + root.hex() and resp.json()["batchId"] == actual
    got = n.store.batch(batch.local_id)
    assert got is not None and got.batch_id == actual and not got.confirmed

    n.service.step()  # still shallower than `confirmations`: not settled
    assert not n.store.batch(batch.local_id).confirmed  # type: ignore[union-attr]
    chain.mine(3)
    n.service.step()
    got = n.store.batch(batch.local_id)
    assert got is not None and got.batch_id == actual and got.confirmed
    assert got.challenge_deadline == int(jm.getBatch(actual).challengeDeadline)
