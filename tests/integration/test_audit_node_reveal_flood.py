"""Audit (v2): a flood of leaf requests slashes an honest node, at a profit for the griefer.

Reveal deadlines are not queued (``requestLeaf``: ``now + proofWindow`` for every request,
unlike disputes' per-node queue), and the reference node reveals one leaf per transaction,
each sent only after the previous one is mined (``NodeService.reveal_leaves`` ->
``TxSender.send`` waits for the receipt): at most ``proofWindow / blockTime`` reveals per
window. A griefer requests more leaves than that in one block. Every leaf the node cannot
reveal in time is settled as invalid: the node loses a slash each, the griefer gets its bond
back plus the bounty. With the defaults (10-minute proof window, 12 s blocks: <= 50 reveals;
slash 100, bond 10, bounty 25 %; a node staked for 256 open leaves) requesting all 256 leaves
costs the griefer 50 bonds (500) and returns 206 bounties (5,150): +4,650 for the griefer,
-20,100 for the honest node.

Here: a 16-leaf batch of a model with a 12 s proof window, 2 s blocks.

Fixed in the contracts: leaf requests and disputes share one per-node queue over open claims
(``DisputeManager.openClaimsOf``): the k-th request made while k - 1 are open gets k proof
windows, so the node's one reveal per block keeps up with any flood.
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
    make_node,
    onnx_path,
    serve_one_batch,
)

pytestmark = pytest.mark.chain
LEAVES = 16
FAST = dataclasses.replace(MOCK_MODEL, challenge_window=300, proof_window=12)


@pytest.fixture()
def fast_model(register_model: Callable[..., bytes], project: Any, deployer: Any) -> bytes:
    return register_model(deployer.deploy(project.MockVerifier), FAST, tag=b"fast")


def test_audit_leafRequestFlood_honestNodeCannotRevealInTime_andIsSlashed(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    fast_model: bytes,
    onnx_path: Any,  # noqa: F811
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    spec = ModelSpec(fast_model, onnx_path, 7, 7, 2, MOCK_IN_LO, MOCK_IN_HI)
    n = make_node(spec=spec, batch_size=LEAVES)
    committed = serve_one_batch(n, spotcheck, fast_model, LEAVES)
    batch_id, root = int(committed["batchId"]), bytes(committed["root"])
    dm, token = spotcheck.dispute_manager, spotcheck.token
    w3 = chain.provider.web3
    griefer_before = token.balanceOf(challenger) + dm.credits(challenger)
    stake_before = n.chain.stake().amount
    nonce = w3.eth.get_transaction_count(challenger.address)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        for i in range(LEAVES):  # every leaf, one block
            data = dm.requestLeaf.encode_input(batch_id, i, root)
            tx = {"from": challenger.address, "to": dm.address, "data": data, "gas": 400_000}
            w3.eth.send_transaction({**tx, "nonce": nonce + i})
        w3.provider.make_request("evm_mine", [])
        keys = [batch_leaf_key(batch_id, i) for i in range(LEAVES)]
        deadline = max(dm.getLeafRequest(k).revealDeadline for k in keys)
        w3.provider.make_request("evm_setIntervalMining", [2])  # 2 s blocks
        while chain.blocks.head.timestamp <= deadline:
            n.service.step()  # the node reveals as fast as it can
            if all(dm.getLeafRequest(k).status != LeafRequestStatus.OPEN for k in keys):
                break
    finally:
        w3.provider.make_request("evm_setIntervalMining", [0])
        w3.provider.make_request("evm_setAutomine", [True])
    advance(chain, 2)
    statuses = [dm.getLeafRequest(batch_leaf_key(batch_id, i)).status for i in range(LEAVES)]
    unrevealed = [i for i, s in enumerate(statuses) if s == LeafRequestStatus.OPEN]
    for i in unrevealed:
        dm.settleLeafRequest(batch_leaf_key(batch_id, i), sender=outsider)
    griefer_after = token.balanceOf(challenger) + dm.credits(challenger)
    slashed = stake_before - n.chain.stake().amount
    print(
        f"revealed {LEAVES - len(unrevealed)}/{LEAVES}; node slashed {slashed / 1e18:g}; "
        f"griefer net {(griefer_after - griefer_before) / 1e18:+g}"
    )
    assert slashed == len(unrevealed) * MOCK_MODEL.slash_amount
    # Property: an honest node is never slashed.
    assert unrevealed == [], (
        f"{len(unrevealed)} honest leaves slashed; griefer net "
        f"{(griefer_after - griefer_before) / 1e18:+g} tokens"
    )
