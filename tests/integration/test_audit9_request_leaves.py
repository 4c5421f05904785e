"""Audit 9: ``requestLeaves`` against the two promises, on anvil.

- An honest node answers many leaf requests that land at once (two ``requestLeaves`` of 32
  and 8 leaves and a single ``requestLeaf``, in one block, timed at the batch's last second):
  every leaf revealed, nothing slashed, every bond credited to the node.
- A9-3: a gas limit at the call's estimate (what Ape sends on a live network: ``gas_limit:
  auto``, multiplier 1.0) is broken by the node: with one of its own claims open (its second
  address's leaf request on its own leaf), the challenger's estimate sees a queue slot that is
  not zero; the node closes that claim first (a reveal, front-run), the slot is zero again,
  and the first ``_enqueue`` of the challenger's call costs a zero-to-non-zero write (about
  17,000 gas more than estimated): the whole call runs out of gas, no leaf is requested, and
  the node can do it again before every attempt until the window closes (its second address
  re-opens a claim on another of its own leaves after each failed attempt: gas only, the bond
  comes back to the node on the reveal). Disputes (``openBatchDispute``) the same. The premise
  tests show the mechanism on the contract; the service test is the challenger's own send.
- A9-1's premise: ``requestLeaves`` pulls all its bonds at once, so a balance short of the
  whole group opens none of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest

from challenger.chain_io import GAS_HEADROOM, GAS_MARGIN
from prover.inference import ModelSpec
from spotcheck.chain import LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, hash_vector
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import (
    MOCK_IN_HI,
    MOCK_IN_LO,
    MOCK_MODEL,
    BatchJobs,
    commit_test_batch,
)
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    make_node,
    onnx_path,
    serve_one_batch,
)

pytestmark = pytest.mark.chain
LEAVES = 41
FAST = dataclasses.replace(MOCK_MODEL, challenge_window=300, proof_window=12)


@pytest.fixture()
def fast_model(register_model: Callable[..., bytes], project: Any, deployer: Any) -> bytes:
    return register_model(deployer.deploy(project.MockVerifier), FAST, tag=b"fast9")


def test_audit9_fortyOneLeafRequestsInOneBlock_atTheWindowsEnd_honestNodeRevealsAll(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    fast_model: bytes,
    onnx_path: Any,  # noqa: F811
    challenger: Any,
    requester: Any,
    outsider: Any,
    chain: Any,
) -> None:
    spec = ModelSpec(fast_model, onnx_path, 7, 7, 2, MOCK_IN_LO, MOCK_IN_HI)
    n = make_node(spec=spec, batch_size=LEAVES)
    committed = serve_one_batch(n, spotcheck, fast_model, LEAVES)
    batch_id, root = int(committed["batchId"]), bytes(committed["root"])
    deadline = int(committed["challengeDeadline"])
    dm = spotcheck.dispute_manager
    stake_before = n.chain.stake().amount
    credits_before = int(dm.credits(n.chain.address))
    w3 = chain.provider.web3
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        # The batch's last second: every request lands in the block at its challenge deadline.
        calls = [
            (challenger, dm.requestLeaves.encode_input(batch_id, list(range(31, -1, -1)), root)),
            (requester, dm.requestLeaves.encode_input(batch_id, list(range(32, 40)), root)),
        ]
        for who, data in calls:
            nonce = w3.eth.get_transaction_count(who.address)
            tx = {"from": who.address, "to": dm.address, "data": data, "gas": 8_000_000}
            w3.eth.send_transaction({**tx, "nonce": nonce})
        data = dm.requestLeaf.encode_input(batch_id, 40, root)
        nonce = w3.eth.get_transaction_count(requester.address, "pending")
        tx = {"from": requester.address, "to": dm.address, "data": data, "gas": 600_000}
        w3.eth.send_transaction({**tx, "nonce": nonce})
        w3.provider.make_request("evm_mine", [deadline])
        keys = [batch_leaf_key(batch_id, i) for i in range(LEAVES)]
        assert all(dm.getLeafRequest(k).status == LeafRequestStatus.OPEN for k in keys)
        last = max(int(dm.getLeafRequest(k).revealDeadline) for k in keys)
        w3.provider.make_request("evm_setIntervalMining", [2])  # 2 s blocks
        while chain.blocks.head.timestamp <= last:
            n.service.step()
            if all(dm.getLeafRequest(k).status != LeafRequestStatus.OPEN for k in keys):
                break
    finally:
        w3.provider.make_request("evm_setIntervalMining", [0])
        w3.provider.make_request("evm_setAutomine", [True])
    statuses = [dm.getLeafRequest(k).status for k in keys]
    unrevealed = [i for i, s in enumerate(statuses) if s != LeafRequestStatus.REVEALED]
    assert unrevealed == [], f"leaves not revealed in time: {unrevealed}"
    assert n.chain.stake().amount == stake_before
    assert int(dm.credits(n.chain.address)) - credits_before == LEAVES * FAST.challenger_bond
    assert dm.openClaimsOf(n.chain.address) == 0


@pytest.fixture
def small_batch(spotcheck: Any, node: Any) -> tuple[int, BatchJobs, MerkleTree]:
    jobs = [(300 + i, [i, 1, 2, 3], [i, -i]) for i in range(8)]
    batch_id, tree = commit_test_batch(spotcheck, node, jobs)
    return batch_id, jobs, tree


def _front_run_then_send(
    small_batch: Any,
    spotcheck: Any,
    node: Any,
    challenger: Any,
    requester: Any,
    call: str,
    margin: bool,
) -> tuple[Any, int]:
    """The challenger estimates ``call``; the node front-runs it by closing the one claim it
    kept open (its second address, ``requester`` here, asked for the node's own leaf 0), so its
    queue slot is zero again and the first ``_enqueue`` pays a zero-to-non-zero write; then the
    call is sent at the bare estimate, or at the challenger's margin. (receipt, gas limit)."""
    batch_id, jobs, tree = small_batch
    dm = spotcheck.dispute_manager
    dm.requestLeaf(batch_id, 0, tree.root, sender=requester)  # the node's second address
    assert dm.openClaimsOf(node) == 1
    if call == "openBatchDispute":
        job_id, inp, out = jobs[3]
        method: Any = dm.openBatchDispute
        args: tuple[Any, ...] = (
            batch_id,
            3,
            job_id,
            hash_vector(inp),
            hash_vector(out),
            tree.proof(3),
        )
    else:
        method, args = (
            dm.requestLeaves,
            (batch_id, list(range(1, 2 if call[-1] == "1" else 5)), tree.root),
        )
    gas = int(method.estimate_gas_cost(*args, sender=challenger))
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)
    assert dm.openClaimsOf(node) == 0 and dm.claimBusyUntil(node) == 0
    limit = math.ceil(gas * GAS_MARGIN) + GAS_HEADROOM if margin else gas
    return method(*args, sender=challenger, gas=limit, raise_on_revert=False), limit


CALLS = ["requestLeaves1", "requestLeaves4", "openBatchDispute"]


@pytest.mark.parametrize("call", CALLS)
def test_audit9_premise_nodeClosesItsOwnLastClaimFirst_callAtItsBareEstimate_runsOutOfGas(
    small_batch: Any, spotcheck: Any, node: Any, challenger: Any, requester: Any, call: str
) -> None:
    """A9-3's mechanism on the contract: a challenger's call sent with the gas limit its
    estimate gave (Ape's live-network default) runs out of gas after the node's front-run.
    Disputes (``openBatchDispute``) the same."""
    args = (small_batch, spotcheck, node, challenger, requester, call)
    receipt, gas = _front_run_then_send(*args, margin=False)
    assert receipt.failed, f"{call} at its bare estimate {gas} did not run out of gas"
    assert spotcheck.dispute_manager.openClaimsOf(node) == 0


@pytest.mark.parametrize("call", CALLS)
def test_audit9_nodeClosesItsOwnLastClaimFirst_callAtTheChallengersGasMargin_stillOpens(
    small_batch: Any, spotcheck: Any, node: Any, challenger: Any, requester: Any, call: str
) -> None:
    """The fix of A9-3: the challenger's gas limit (``ApeChain._dm``: the estimate times
    ``GAS_MARGIN`` plus ``GAS_HEADROOM``) outlasts the same front-run."""
    args = (small_batch, spotcheck, node, challenger, requester, call)
    receipt, limit = _front_run_then_send(*args, margin=True)
    assert not receipt.failed, f"{call} ran out of gas at {limit}"
    opened = 1 if call == "openBatchDispute" else int(call[-1])
    assert spotcheck.dispute_manager.openClaimsOf(node) == opened


def test_audit9_challengersRequestLeaves_liveNetworkGasLimit_nodeFrontRunsItsLastClose_stillOpens(
    monkeypatch: pytest.MonkeyPatch,
    small_batch: Any,
    spotcheck: Any,
    node: Any,
    challenger: Any,
    requester: Any,
    chain: Any,
) -> None:
    """The challenger service's own send (``ApeChain.request_leaves``) on a network with Ape's
    live default ``gas_limit: auto``: the node sees the transaction and closes its one open
    claim first (its reveal is mined just before the challenger's signed transaction). The
    leaves must still open."""
    from challenger.chain_io import ApeChain

    batch_id, jobs, tree = small_batch
    dm = spotcheck.dispute_manager
    provider = chain.provider
    monkeypatch.setattr(type(provider.network), "gas_limit", property(lambda self: "auto"))
    dm.requestLeaf(batch_id, 0, tree.root, sender=requester)  # the node's second address
    send = type(provider).send_transaction
    fired: list[int] = []

    def front_run(self: Any, txn: Any, *args: Any, **kwargs: Any) -> Any:
        if not fired and str(txn.sender) == challenger.address and txn.receiver == dm.address:
            fired.append(int(txn.gas_limit))
            job_id, inp, out = jobs[0]
            dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)
        return send(self, txn, *args, **kwargs)

    monkeypatch.setattr(type(provider), "send_transaction", front_run)
    ch = ApeChain(
        job_manager=spotcheck.job_manager,
        dispute_manager=dm,
        model_registry=spotcheck.model_registry,
        token=spotcheck.token,
        account=challenger,
    )
    try:
        ch.request_leaves(batch_id, [1, 2], tree.root, MOCK_MODEL.challenger_bond)
    except Exception as err:  # the service logs it and tries again next tick
        pytest.fail(f"requestLeaves failed after the node's front-run ({fired}): {err}")
    assert fired, "the front-run hook never ran"
    for i in (1, 2):
        assert dm.getLeafRequest(batch_leaf_key(batch_id, i)).status == LeafRequestStatus.OPEN


def test_audit9_premise_balanceForTwoBonds_requestLeavesOfFour_revertsWhole_twoSinglesOpen(
    small_batch: Any, spotcheck: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    """A9-1's premise on the contract: ``requestLeaves`` pulls all its bonds after the loop, so
    a caller that can pay two of four bonds opens none; two ``requestLeaf`` open two."""
    batch_id, _, tree = small_batch
    dm, token = spotcheck.dispute_manager, spotcheck.token
    bond = MOCK_MODEL.challenger_bond
    token.transfer(outsider, token.balanceOf(challenger) - 2 * bond, sender=challenger)
    receipt = dm.requestLeaves(
        batch_id, [1, 2, 3, 4], tree.root, sender=challenger, gas=3_000_000, raise_on_revert=False
    )
    assert receipt.failed
    assert dm.openClaimsOf(spotcheck.job_manager.getBatch(batch_id).node) == 0
    dm.requestLeaf(batch_id, 1, tree.root, sender=challenger)
    dm.requestLeaf(batch_id, 2, tree.root, sender=challenger)
    assert int(dm.bondAtRisk(challenger)) == 2 * bond


@pytest.mark.parametrize("margin", [False, True])
def test_audit9_claimantsReveal_nodeWithdrawsItsCreditsFirst_bareEstimateOutOfGas_marginReveals(
    small_batch: Any, spotcheck: Any, node: Any, challenger: Any, requester: Any, margin: bool
) -> None:
    """The same lever against a claimant's ``revealLeaf`` (A6-4: a challenger reveals a leaf it
    claimed when the node does not): the node holds credits when the claimant estimates, then
    withdraws them first, so the reveal's ``credits[node] +=`` is a zero-to-non-zero write. At
    the bare estimate the reveal runs out of gas (the claim's collateral is lost if the
    deadline passes); at the challenger's margin it lands."""
    batch_id, jobs, tree = small_batch
    dm = spotcheck.dispute_manager
    dm.requestLeaves(batch_id, [0, 1], tree.root, sender=requester)  # the node's second address
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)
    assert int(dm.credits(node)) > 0
    job_id, inp, out = jobs[1]
    args = (batch_id, 1, job_id, inp, out, tree.proof(1))
    gas = int(dm.revealLeaf.estimate_gas_cost(*args, sender=challenger))
    dm.withdrawCredits(sender=node)  # front-run
    limit = math.ceil(gas * GAS_MARGIN) + GAS_HEADROOM if margin else gas
    receipt = dm.revealLeaf(*args, sender=challenger, gas=limit, raise_on_revert=False)
    assert receipt.failed is not margin
    status = dm.getLeafRequest(batch_leaf_key(batch_id, 1)).status
    assert status == (LeafRequestStatus.REVEALED if margin else LeafRequestStatus.OPEN)
