"""Attacks on the challenger's batch checks, on the real contracts (issue 11, points 2-4).

- A node serves its batches to users but withholds them from challengers: the challenger
  requests its sampled leaves on chain; the node either never reveals (slashed through
  ``settleLeafRequest``) or reveals a wrong leaf (disputed from the reveal and slashed).
- Malformed listings and a server dripping one byte at a time: the challenger still disputes
  the cheats of every other commitment in its first tick and settles them on time.

The fake node speaks the node's batch API over a real socket (``NodeServer``); the mock
model's circuit is ``f(x) = [x0 + x1, x2 - x3]``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from challenger.batches import BatchClient, Fetcher, FetchLimits
from challenger.chain_io import ApeChain
from challenger.sampling import SamplingPolicy
from challenger.service import JOB_EVENTS, Challenger, Options, dispute_events
from challenger.store import BatchState, JobState, LeafRequestState, Store
from spotcheck.chain import TOKEN, DisputeStatus, LeafRequestStatus
from spotcheck.encoding import (
    INT256_MAX,
    batch_leaf_key,
    input_hash,
    leaf_hash,
    onchain_job_key,
    output_hash,
)
from spotcheck.errors import ChainError
from spotcheck.follower import LogFollower, open_db
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_challenger_chain import FakeReexec, circuit, inputs
from tests.unit.test_challenger_fetch import NodeServer, body, drip, status

pytestmark = pytest.mark.chain
TAU = MOCK_MODEL.tau
SECRET = b"\x2e" * 32  # a BN254 scalar below r (the VRF key)
Leaves = list[tuple[int, list[int], list[int]]]


@pytest.fixture
def node_server() -> Iterator[NodeServer]:
    server = NodeServer()
    server.start()
    yield server
    server.stop()


def leaves_with(n: int, cheat: set[int]) -> Leaves:
    out = []
    for k in range(n):
        x = inputs(k)
        y = circuit(x)
        if k in cheat:
            y = [y[0] + TAU + 1, y[1]]
        out.append((7000 + k, x, y))
    return out


def tree_of(spotcheck: Any, leaves: Leaves) -> MerkleTree:
    return MerkleTree(
        [leaf_hash(j, spotcheck.model_id, input_hash(x), output_hash(y)) for j, x, y in leaves]
    )


def commit(spotcheck: Any, node: Any, uri: str, leaves: Leaves) -> int:
    root = tree_of(spotcheck, leaves).root
    receipt = spotcheck.job_manager.commitBatch(
        spotcheck.model_id, root, len(leaves), uri, sender=node
    )
    return int(receipt.return_value)


def listing(leaves: Leaves) -> bytes:
    return json.dumps(
        {"leaves": [{"jobId": j, "inputQ": x, "outputQ": y} for j, x, y in leaves]}
    ).encode()


def make_challenger(db: Path, spotcheck: Any, account: Any, **opts: Any) -> Challenger:
    store = Store(open_db(db))
    follower = LogFollower(
        store.conn,
        "challenger",
        [
            (spotcheck.job_manager, JOB_EVENTS),
            (spotcheck.dispute_manager, dispute_events(spotcheck.dispute_manager)),
        ],
        confirmations=0,
        start_block=spotcheck.deployment.deploy_block,
    )
    return Challenger(
        store=store,
        chain=ApeChain.from_contracts(spotcheck.contracts, account),
        policy=SamplingPolicy(secret=SECRET, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(max_bond_at_risk=10**6 * TOKEN, **opts),
        follower=follower,
        fetcher=Fetcher(BatchClient(limits=FetchLimits(deadline_s=1.0, read_timeout_s=0.5))),
    )


def tick_until(ch: Challenger, chain: Any, until: Callable[[], bool], step: int = 5) -> None:
    for _ in range(200):
        if until():
            return
        advance(chain, step)
        ch.tick()
    raise AssertionError("condition never reached")


def test_withholdingFromChallengers_neverRevealed_nodeSlashedThroughLeafRequests(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    chain: Any,
    stake_manager: Any,
    node_server: NodeServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaves = leaves_with(3, cheat={1})
    batch_id = commit(spotcheck, node, node_server.uri, leaves)
    node_server.routes[batch_id] = status(404)  # users got their answers; challengers get none
    dm, jm, erc20 = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.token
    stake_before = stake_manager.stakeOf(node).amount
    balance_before = erc20.balanceOf(challenger)
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger)

    def all_requested() -> bool:
        return len(ch.store.leaf_requests(LeafRequestState.OPEN)) == 3

    with caplog.at_level(logging.WARNING, logger="challenger.service"):
        tick_until(ch, chain, all_requested)
    # The batch's sampled leaves went in one requestLeaves transaction, one bond transfer.
    [tx_hash] = {r.tx_hash for r in ch.store.leaf_requests(LeafRequestState.OPEN)}
    receipt = chain.provider.get_receipt(tx_hash)
    assert len(receipt.events.filter(dm.LeafRequested)) == 3
    assert ch.store.batch(batch_id).state is BatchState.UNAVAILABLE  # type: ignore[union-attr]
    assert not jm.isBatchLeafFinal(batch_id, 0)  # nothing final with an open request
    # Giving up on the listing is no accusation yet: an honest node may have been restarting.
    assert ch.store.counters()["batches_unavailable"] == 1
    assert "batches_withheld" not in ch.store.counters()
    assert not [r for r in caplog.records if "WITHHOLDS" in r.getMessage()]

    def all_settled() -> bool:
        return ch.store.leaf_request_summary()["settled"] == 3

    with caplog.at_level(logging.WARNING, logger="challenger.service"):
        tick_until(ch, chain, all_settled, step=20)
        for _ in range(3):
            advance(chain, 20)
            ch.tick()
    # Proven now (leaf requests settled unrevealed): reported once for the batch.
    (withheld,) = [r for r in caplog.records if "WITHHOLDS" in r.getMessage()]
    assert withheld.levelno == logging.ERROR and f"batch {batch_id} " in withheld.getMessage()
    assert ch.store.counters()["batches_withheld"] == 1
    for i in range(3):
        key = batch_leaf_key(batch_id, i)
        assert dm.getLeafRequest(key).status == LeafRequestStatus.SLASHED
        assert jm.batchLeafInvalid(key)
    slashed = 3 * MOCK_MODEL.slash_amount
    assert stake_manager.stakeOf(node).amount == stake_before - slashed
    bounty = MOCK_MODEL.slash_amount * MOCK_MODEL.bounty_bps // 10_000
    assert erc20.balanceOf(challenger) == balance_before + 3 * bounty  # withdrawn
    assert dm.bondAtRisk(challenger) == 0


def test_withholdingFromChallengers_revealsWrongLeaf_disputedFromTheRevealAndSlashed(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    chain: Any,
    stake_manager: Any,
    node_server: NodeServer,
    tmp_path: Path,
) -> None:
    leaves = leaves_with(4, cheat={2})
    tree = tree_of(spotcheck, leaves)
    batch_id = commit(spotcheck, node, node_server.uri, leaves)
    node_server.routes[batch_id] = status(503)
    dm = spotcheck.dispute_manager
    stake_before = stake_manager.stakeOf(node).amount
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger)
    tick_until(ch, chain, lambda: len(ch.store.leaf_requests(LeafRequestState.OPEN)) == 4)

    for i, (job_id, x, y) in enumerate(leaves):  # the node answers every request on chain
        dm.revealLeaf(batch_id, i, job_id, x, y, tree.proof(i), sender=node)
    ch.tick()
    key = batch_leaf_key(batch_id, 2)
    assert ch.store.leaf_request_summary()["revealed"] == 4
    assert ch.store.job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]
    assert dm.getDispute(key).status == DisputeStatus.OPEN
    for i in (0, 1, 3):
        assert ch.store.job(batch_leaf_key(batch_id, i)).state is JobState.MATCHED  # type: ignore[union-attr]

    tick_until(
        ch,
        chain,
        lambda: ch.store.job(key).state is JobState.WON,  # type: ignore[union-attr]
        step=20,
    )
    assert dm.getDispute(key).status == DisputeStatus.SLASHED
    assert spotcheck.job_manager.batchLeafInvalid(key)
    assert stake_manager.stakeOf(node).amount == stake_before - MOCK_MODEL.slash_amount
    # Every requested leaf was revealed: the node cheated, but did not withhold.
    counters = ch.store.counters()
    assert counters["batches_unavailable"] == 1 and "batches_withheld" not in counters


def test_malformedListingsAndSlowDrip_otherCheatsDisputedFirstTick_andSettledOnTime(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    chain: Any,
    make_job: Callable[..., int],
    node_server: NodeServer,
    tmp_path: Path,
) -> None:
    good = leaves_with(3, cheat={0})
    good_id = commit(spotcheck, node, node_server.uri, good)
    node_server.routes[good_id] = body(listing(good))
    overflow = leaves_with(2, cheat=set())
    overflow_id = commit(spotcheck, node, node_server.uri, overflow)
    served = [(j, x, [INT256_MAX + 1, y[1]]) for j, x, y in overflow]
    node_server.routes[overflow_id] = body(listing(served))
    negative = leaves_with(2, cheat=set())
    negative_id = commit(spotcheck, node, node_server.uri, negative)
    node_server.routes[negative_id] = body(listing([(-1, x, y) for _, x, y in negative]))
    drip_id = commit(spotcheck, node, node_server.uri, leaves_with(2, cheat=set()))
    node_server.routes[drip_id] = drip(interval=0.02)
    x = inputs(3)
    job_id = make_job(input=x, output=[circuit(x)[0], circuit(x)[1] + TAU + 1])

    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger)
    chain.mine(1)  # the seed block
    start = time.monotonic()
    report = ch.tick()
    assert time.monotonic() - start < 8.0  # chain calls, not the drip's 30 s
    assert report.errors == []
    dm = spotcheck.dispute_manager
    assert dm.getDispute(onchain_job_key(job_id)).status == DisputeStatus.OPEN
    assert dm.getDispute(batch_leaf_key(good_id, 0)).status == DisputeStatus.OPEN

    # Two disputes against one node: the proof queue gives the second its own window.
    advance(chain, 2 * MOCK_MODEL.proof_window + 1)
    ch.tick()
    assert dm.getDispute(onchain_job_key(job_id)).status == DisputeStatus.SLASHED
    assert dm.getDispute(batch_leaf_key(good_id, 0)).status == DisputeStatus.SLASHED
    assert ch.store.state_counts()["won"] == 2
    for bad in (overflow_id, negative_id, drip_id):
        row = ch.store.batch(bad)
        assert row is not None and row.state is not BatchState.FETCHED
    # The overflowing listing (fetched first, two at a time per node) answered with bytes
    # that are not the committed listing: an invalid attempt. The bad batches' window closed
    # while this test jumped ahead: expired, never counted as given up, never accused.
    assert ch.store.batch(overflow_id).invalid_attempts >= 1  # type: ignore[union-attr]
    assert not {"batches_unavailable", "listings_invalid", "batches_withheld"} & set(
        ch.store.counters()
    )


def test_requestLeaf_namesTheRecordedRoot_anotherRootIsRefused_noBondLocked(
    spotcheck: Any, node: Any, challenger: Any, node_server: NodeServer
) -> None:
    """``requestLeaf(batchId, index, root)``: the challenger passes the root it recorded; the
    contract refuses another (RootMismatch, as after a reorg moved a batch id) before any
    bond moves, and the challenger's error names it (the service then gives the request up)."""
    leaves = leaves_with(2, cheat=set())
    batch_id = commit(spotcheck, node, node_server.uri, leaves)
    io = ApeChain.from_contracts(spotcheck.contracts, challenger)
    dm = spotcheck.dispute_manager
    with pytest.raises(ChainError, match="RootMismatch"):
        io.request_leaf(batch_id, 0, b"\x99" * 32, MOCK_MODEL.challenger_bond)
    assert dm.bondAtRisk(challenger) == 0
    io.request_leaf(batch_id, 0, tree_of(spotcheck, leaves).root, MOCK_MODEL.challenger_bond)
    assert dm.getLeafRequest(batch_leaf_key(batch_id, 0)).status == LeafRequestStatus.OPEN
    assert dm.bondAtRisk(challenger) == MOCK_MODEL.challenger_bond
