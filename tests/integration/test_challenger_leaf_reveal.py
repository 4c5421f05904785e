"""Audit A6-4 through the challenger service on anvil: someone else requests a correct batch
leaf the challenger checked (and claimed), the node stays silent, and the challenger reveals
the leaf itself from the listing it fetched before the reveal deadline, so the leaf is not
made invalid and ``forfeitLeaf`` cannot burn its claim's collateral. Restarted afterwards, it
sends nothing again.

The fake node serves the listing over a real socket (``NodeServer``) and never answers the
request; ``requester`` plays the griefer (anyone may ``requestLeaf``). First with
``defend = checked`` (no claim needed), then with ``defend = claimed`` and the service's own
leaf claim (the pool's terms set for the mock model, the challenger's VRF key registered).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from challenger.chain_io import ApeChain
from challenger.claims import Claimer, ClaimOptions
from challenger.defence import DefendMode
from challenger.reveals import Revealer, RevealOptions, RevealState
from challenger.sampling import BatchDecisions, SamplingPolicy
from challenger.service import Challenger
from challenger.store import BatchState, JobState
from spotcheck import check_pool as cp
from spotcheck.chain import TOKEN, ClaimStatus, LeafRequestStatus
from spotcheck.encoding import batch_leaf_key
from tests.fixtures.chain import FUNDING, TEST_PARAMS, advance
from tests.integration.test_challenger_chain import SECRET as CHAIN_SECRET
from tests.integration.test_challenger_withholding import (
    commit,
    leaves_with,
    listing,
    make_challenger,
    tree_of,
)
from tests.unit.test_challenger_fetch import NodeServer, body

pytestmark = pytest.mark.chain

#: We reveal this long before the reveal deadline (the mock model's proof window is 100 s).
RESERVE_S = 30


@pytest.fixture
def node_server() -> Iterator[NodeServer]:
    server = NodeServer()
    server.start()
    yield server
    server.stop()


def _service(db: Path, spotcheck: Any, account: Any) -> Challenger:
    ch = make_challenger(db, spotcheck, account)
    ch.revealer = Revealer(
        ch.store, ch.chain, RevealOptions(mode=DefendMode.CHECKED, reserve_s=RESERVE_S)
    )
    return ch


def test_foreignLeafRequestOnACheckedLeaf_nodeSilent_challengerRevealsIt_leafStaysValid(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    requester: Any,
    chain: Any,
    node_server: NodeServer,
    tmp_path: Path,
) -> None:
    leaves = leaves_with(3, cheat=set())
    tree = tree_of(spotcheck, leaves)
    batch_id = commit(spotcheck, node, node_server.uri, leaves)
    node_server.routes[batch_id] = body(listing(leaves))
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    db = tmp_path / "c.sqlite"
    ch = _service(db, spotcheck, challenger)
    key = batch_leaf_key(batch_id, 1)

    for _ in range(40):  # fetched and judged: every leaf matched
        ch.tick()
        job = ch.store.job(key)
        if job is not None and job.state is JobState.MATCHED:
            break
        advance(chain, 2)
    assert ch.store.batch(batch_id).state is BatchState.FETCHED  # type: ignore[union-attr]
    assert ch.store.job(key).state is JobState.MATCHED  # type: ignore[union-attr]

    dm.requestLeaf(batch_id, 1, tree.root, sender=requester)  # the griefer; the node is silent
    deadline = int(dm.getLeafRequest(key).revealDeadline)
    ch.tick()
    row = ch.revealer.reveals.row(key)  # type: ignore[union-attr]
    assert row is not None and row.state is RevealState.WAITING
    assert row.reveal_deadline == deadline

    sent_at = None
    for _ in range(60):
        advance(chain, 5)
        ch.tick()
        if dm.getLeafRequest(key).status != LeafRequestStatus.OPEN:
            sent_at = int(chain.blocks.head.timestamp)
            break
    assert sent_at is not None, "never revealed"
    r = dm.getLeafRequest(key)
    assert r.status == LeafRequestStatus.REVEALED
    assert sent_at >= deadline - RESERVE_S - 10  # the node had its go first
    row = ch.revealer.reveals.row(key)  # type: ignore[union-attr]
    assert row is not None and row.state is RevealState.WON and row.tx_hash is not None
    assert chain.provider.get_receipt(row.tx_hash).sender == challenger.address  # ours
    assert not jm.batchLeafInvalid(key)
    summary = ch.revealer.reveals.summary()  # type: ignore[union-attr]
    assert summary["won"] == 1 and summary["too_late"] == 0

    # Past the reveal deadline nobody can settle it as unrevealed; a restarted service (same
    # database) sends nothing more.
    advance(chain, 200)
    again = _service(db, spotcheck, challenger)
    for _ in range(3):
        again.tick()
        advance(chain, 5)
    assert again.revealer.reveals.row(key).state is RevealState.WON  # type: ignore[union-attr]
    assert dm.getLeafRequest(key).status == LeafRequestStatus.REVEALED
    assert not jm.batchLeafInvalid(key)


LEAF_FEE = TOKEN // 10


def test_foreignLeafRequestOnAClaimedLeaf_nodeSilent_challengerRevealsIt_keepsItsCollateral(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    requester: Any,
    deployer: Any,
    chain: Any,
    node_server: NodeServer,
    tmp_path: Path,
) -> None:
    """``defend = claimed`` with the service's own leaf claim: the griefer's request is
    revealed by the challenger, so ``forfeitLeaf`` cannot burn its collateral."""
    p = spotcheck.contracts.check_pool
    cp.set_model_terms(p, spotcheck.model_id, 1_000, 10_000, sender=deployer)
    cp.set_leaf_check_fee(p, spotcheck.model_id, LEAF_FEE, sender=deployer)
    port = ApeChain.from_contracts(spotcheck.contracts, challenger)
    if not port.pool_account().registered:
        spotcheck.token.mint(challenger, FUNDING, sender=deployer)
        port.pool_register_key(CHAIN_SECRET, TEST_PARAMS.check_min_bond)
    leaves = leaves_with(3, cheat=set())
    tree = tree_of(spotcheck, leaves)
    batch_id = commit(spotcheck, node, node_server.uri, leaves)
    node_server.routes[batch_id] = body(listing(leaves))
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger)
    ch.policy = SamplingPolicy(secret=CHAIN_SECRET, default_rate=1.0)  # the registered key
    ch.decisions = BatchDecisions(ch.policy)
    ch.claimer = Claimer(ch.store, ch.chain, ClaimOptions(max_wait_s=0))
    ch.revealer = Revealer(
        ch.store, ch.chain, RevealOptions(mode=DefendMode.CLAIMED, reserve_s=RESERVE_S)
    )
    key = batch_leaf_key(batch_id, 1)
    for _ in range(40):  # fetched, judged and claimed
        advance(chain, 2)
        ch.tick()
        if port.pool_leaf_claim_status(batch_id, 1) is ClaimStatus.OPEN:
            break
    assert port.pool_leaf_claim_status(batch_id, 1) is ClaimStatus.OPEN

    dm.requestLeaf(batch_id, 1, tree.root, sender=requester)  # the griefer; the node is silent
    deadline = int(dm.getLeafRequest(key).revealDeadline)
    for _ in range(60):
        advance(chain, 5)
        ch.tick()
        if dm.getLeafRequest(key).status != LeafRequestStatus.OPEN:
            break
    assert dm.getLeafRequest(key).status == LeafRequestStatus.REVEALED
    assert int(chain.blocks.head.timestamp) <= deadline
    row = ch.revealer.reveals.row(key)
    assert row is not None and row.state is RevealState.WON
    assert chain.provider.get_receipt(row.tx_hash).sender == challenger.address
    assert not jm.batchLeafInvalid(key)
    with pytest.raises(Exception):  # noqa: B017 - any revert: the leaf is valid
        p.forfeitLeaf(batch_id, 1, challenger, sender=requester)
    assert port.pool_leaf_claim_status(batch_id, 1) is ClaimStatus.OPEN  # collateral kept
    cp.set_leaf_check_fee(p, spotcheck.model_id, 0, sender=deployer)  # as the session had it
