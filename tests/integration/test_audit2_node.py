"""Audit 2: the reference node's step order under load (anvil, 2 s blocks, MockVerifier).

``NodeService.step`` reveals first, but every later phase sends its transactions one at a time
and waits for each receipt (``TxSender.send``): ``commit_jobs`` commits *every* requested
on-chain job, ``finalize_due`` finalizes every due job, each a block. A leaf request that
arrives while the node is in those phases is not even read until the step ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from prover.inference import ModelSpec
from spotcheck.chain import LeafRequestStatus
from spotcheck.encoding import batch_leaf_key
from tests.fixtures.chain import MOCK_IN_HI, MOCK_IN_LO, MOCK_MODEL, advance
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    _events,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain
#: A model with a 12 s proof (and reveal) window; 2 s blocks: six blocks to reveal.
WINDOW = 12
MODEL = dataclasses.replace(MOCK_MODEL, challenge_window=300, proof_window=WINDOW)
#: On-chain jobs the griefer requests (at the node's price: 0 by default, so free).
K = 10


@pytest.fixture()
def model(register_model: Callable[..., bytes], project: Any, deployer: Any) -> bytes:
    return register_model(deployer.deploy(project.MockVerifier), MODEL, tag=b"a2-node")


def test_audit2_leafRequestDuringLongCommitPhase_honestNodeMissesReveal_andIsSlashed(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    model: bytes,
    onnx_path: Any,  # noqa: F811
    requester: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The griefer requests K on-chain jobs at the node's price (0: free but for gas), then,
    once the node is committing them (one receipt per block), requests one leaf of the node's
    honest batch: reveal deadline ``now + 12 s`` (nothing else is open). The node reads the
    request only after its K commits (K blocks = 20 s), finds the deadline passed, and the
    leaf is settled as invalid: slash 100, the griefer's bond back plus 25 of bounty.

    Property: an honest node is never slashed; reveals (and defences) are never stuck behind
    a phase whose length an outsider controls."""
    spec = ModelSpec(model, onnx_path, 7, 7, 2, MOCK_IN_LO, MOCK_IN_HI)
    n = make_node(spec=spec, batch_size=4)
    url = f"/v1/models/0x{model.hex()}/infer"
    for i in range(4):
        assert n.http.post(url, json={"input_q": [i, 1, 2, 3]}).status_code == 200
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    root = bytes(ev.event_arguments["root"])
    jm, dm = spotcheck.job_manager, spotcheck.dispute_manager
    for i in range(K):
        jm.requestJob(model, [i, 2, 3, 4], n.chain.address, 0, sender=requester)

    w3 = chain.provider.web3
    sent: list[bool] = []
    original = n.chain.commit_result

    def commit_result(*args: Any, **kwargs: Any) -> Any:
        if not sent:  # the node is committing now: the griefer's leaf request lands
            data = dm.requestLeaf.encode_input(batch_id, 0, root)
            w3.eth.send_transaction(
                {"from": challenger.address, "to": dm.address, "data": data, "gas": 400_000}
            )
            sent.append(True)
        return original(*args, **kwargs)

    n.chain.commit_result = commit_result  # type: ignore[method-assign]
    key = batch_leaf_key(batch_id, 0)
    stake_before = n.chain.stake().amount
    w3.provider.make_request("evm_setAutomine", [False])
    w3.provider.make_request("evm_setIntervalMining", [2])  # 2 s blocks
    try:
        n.service.step()  # follows the K requests, commits them one block each
        assert sent
        deadline = int(dm.getLeafRequest(key).revealDeadline)
        while chain.blocks.head.timestamp <= deadline:
            n.service.step()
            if dm.getLeafRequest(key).status != LeafRequestStatus.OPEN:
                break
    finally:
        w3.provider.make_request("evm_setIntervalMining", [0])
        w3.provider.make_request("evm_setAutomine", [True])
    advance(chain, 2)
    if dm.getLeafRequest(key).status == LeafRequestStatus.OPEN:
        dm.settleLeafRequest(key, sender=outsider)
    slashed = stake_before - n.chain.stake().amount
    assert dm.getLeafRequest(key).status == LeafRequestStatus.REVEALED, (
        f"honest leaf unrevealed: node slashed {slashed / 1e18:g} "
        f"(slash {MOCK_MODEL.slash_amount / 1e18:g})"
    )
