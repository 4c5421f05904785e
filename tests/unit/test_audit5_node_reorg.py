"""Audit 5 (the node's follower has no roll-back): after a reorg below the confirmation depth
replaces a dispute (or a leaf request) against the node and the node's answer to it, and the
new branch carries the same dispute again (same id: ``onchainJobKey(jobId)`` /
``batchLeafKey(batchId, index)``), the node's replay-only follower keeps its old row, already
``defended`` (or ``revealed``): ``INSERT OR IGNORE`` ignores the re-mined event, so the node never
answers it and is slashed at the new deadline.

Each test asserts the SAFE behaviour (A5-1, fixed: the node's rollback reopens what it
answered, the replay takes the event's new deadline, triage reads the chain's). The chain is
faked under LogFollower's three chain reads; the handler and the call are the node's own
(``NodeService._follow``, now with ``rollback=self._on_reorg``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prover.metrics import NodeMetrics
from prover.service import NodeService
from prover.store import UNRESOLVED_DISPUTES, Store
from spotcheck.follower import ChainEvent, LogFollower

NODE = "0x00000000000000000000000000000000000000aa"
JOB = 7
DISPUTE_ID = b"\xd1" * 32
REQUEST_ID = b"\xe2" * 32


class FakeChainFollower(LogFollower):
    chain: dict[str, Any]  # head, hashes {block: hash}, events [ChainEvent]

    def _block_hash(self, number: int) -> bytes:  # type: ignore[override]
        return self.chain["hashes"][number]

    def _head(self) -> int:  # type: ignore[override]
        return int(self.chain["head"])

    def _fetch(self, start: int, stop: int) -> list[ChainEvent]:
        return [e for e in self.chain["events"] if start <= e.block_number <= stop]


def _ev(name: str, block: int, **args: Any) -> ChainEvent:
    return ChainEvent(name, "0xdm", block, 0, "0x" + f"{block:064x}", args)


def _dispute_opened(block: int, deadline: int) -> ChainEvent:
    return _ev(
        "DisputeOpened", block, disputeId=DISPUTE_ID, kind=0, ref=JOB, jobId=JOB, node=NODE,
        index=0, proofDeadline=deadline,
    )  # fmt: skip


def _leaf_requested(block: int, deadline: int) -> ChainEvent:
    return _ev(
        "LeafRequested", block, requestId=REQUEST_ID, batchId=3, index=1, node=NODE,
        revealDeadline=deadline,
    )  # fmt: skip


def _node(tmp_path: Path) -> tuple[Any, FakeChainFollower]:
    """A NodeService with only what ``_follow`` and ``_on_events`` read (the real methods)."""
    store = Store(tmp_path / "node.sqlite")
    svc: Any = object.__new__(NodeService)
    svc.chain = SimpleNamespace(address=NODE)
    svc.store = store
    svc.metrics = NodeMetrics()
    svc.readiness = SimpleNamespace(step_ok=lambda: None)
    follower = FakeChainFollower(store.path, f"node-{NODE}", [], max_range=10)
    svc.follower = follower
    return svc, follower


def _reorg(follower: FakeChainFollower, events: list[ChainEvent]) -> None:
    """Blocks 85.. replaced by a longer branch holding ``events``."""
    follower.chain = {
        "head": 120,
        "hashes": {n: (n if n < 85 else n + 10_000).to_bytes(32, "big") for n in range(0, 200)},
        "events": events,
    }


def test_audit5_reorgDropsDisputeAndDefence_disputeReMined_nodeDefendsAgain(
    tmp_path: Path,
) -> None:
    svc, follower = _node(tmp_path)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_dispute_opened(90, 2000)],
    }
    NodeService._follow(svc)
    assert [d.dispute_id for d in svc.store.disputes(*UNRESOLVED_DISPUTES)] == [DISPUTE_ID]
    # The node proves and defends; `_triage` then reads DEFENDED on chain and records it.
    svc.store.mark_defended(DISPUTE_ID, None)
    # A reorg replaces blocks 85..: the defence is gone, the dispute is mined again in block 95
    # (its sender's transaction re-included, or the challenger sends it again), deadline 2010.
    _reorg(follower, [_dispute_opened(95, 2010)])
    NodeService._follow(svc)
    # SAFE: the node answers the dispute the chain now holds (open, deadline 2010).
    open_ = svc.store.disputes(*UNRESOLVED_DISPUTES)
    row = svc.store.dispute(DISPUTE_ID)
    assert [d.dispute_id for d in open_] == [DISPUTE_ID], (
        f"the re-mined dispute is '{row.status}' in the node's store (deadline "
        f"{row.proof_deadline}): defend_disputes never looks at it, settle slashes the node"
    )
    assert row.proof_deadline == 2010


def test_audit5_reorgDropsLeafRequestAndReveal_requestReMined_nodeRevealsAgain(
    tmp_path: Path,
) -> None:
    svc, follower = _node(tmp_path)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_leaf_requested(90, 3000)],
    }
    NodeService._follow(svc)
    assert [r.request_id for r in svc.store.leaf_requests("open")] == [REQUEST_ID]
    svc.store.mark_leaf_request(REQUEST_ID, "revealed", tx_hash="0xreveal")  # _reveal_mined
    _reorg(follower, [_leaf_requested(95, 3010)])
    NodeService._follow(svc)
    # SAFE: reveal_leaves (which reads the 'open' rows) answers the request the chain holds.
    opened = svc.store.leaf_requests("open")
    assert [r.request_id for r in opened] == [REQUEST_ID], (
        "the re-mined leaf request stays 'revealed' in the node's store: reveal_leaves never "
        "answers it and settleLeafRequest slashes the node"
    )
    assert opened[0].reveal_deadline == 3010


class _Chain(SimpleNamespace):
    """The node's chain port for `_triage` / `_reveal`: the new branch holds neither claim."""

    def dispute(self, _did: bytes) -> Any:
        return SimpleNamespace(status=0, proof_deadline=0, model_id=b"")  # DisputeStatus.NONE

    def leaf_request(self, _rid: bytes) -> Any:
        return SimpleNamespace(status=0, reveal_deadline=0)  # LeafRequestStatus.NONE


def _gone_node(tmp_path: Path, now: int) -> tuple[Any, FakeChainFollower]:
    svc, follower = _node(tmp_path)
    svc.chain = _Chain(address=NODE, now=lambda: now)
    svc.worker = SimpleNamespace(cancel=lambda _did: None)
    svc.withhold_reveals = False
    return svc, follower


def test_reorgRemovesTheDisputeForGood_pastItsDeadline_isDroppedNotReportedLost(
    tmp_path: Path, caplog: Any
) -> None:
    """Low finding of the last audit: a reorg removed a dispute entirely (the new branch never
    holds it); once its recorded deadline passed, the node logged CRITICAL 'proof deadline passed'
    and counted a lost dispute although nothing was slashed."""
    svc, follower = _gone_node(tmp_path, now=2001)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_dispute_opened(90, 2000)],
    }
    NodeService._follow(svc)
    _reorg(follower, [])  # the new branch holds no dispute
    NodeService._follow(svc)
    dispute = svc.store.dispute(DISPUTE_ID)
    with caplog.at_level("WARNING"):
        assert NodeService._triage(svc, dispute) is False
    assert svc.store.dispute(DISPUTE_ID).status == "dropped"
    assert not [r for r in caplog.records if r.levelname == "CRITICAL"], caplog.text
    assert svc.metrics.disputes.labels("lost")._value.get() == 0
    # Mined again later (its sender re-sends it): the replay reopens it, and it is defended.
    follower.chain = {**follower.chain, "head": 140, "events": [_dispute_opened(125, 2600)]}
    NodeService._follow(svc)
    row = svc.store.dispute(DISPUTE_ID)
    assert (row.status, row.proof_deadline) == ("open", 2600)


def test_reorgRemovesTheDispute_beforeItsDeadline_staysOpen(tmp_path: Path) -> None:
    """NONE before the deadline may be an RPC behind the event: the row stays open (re-read
    next step), nothing is closed on one read."""
    svc, follower = _gone_node(tmp_path, now=1500)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_dispute_opened(90, 2000)],
    }
    NodeService._follow(svc)
    assert NodeService._triage(svc, svc.store.dispute(DISPUTE_ID)) is False
    assert svc.store.dispute(DISPUTE_ID).status == "open"


def test_reorgRemovesTheLeafRequestForGood_isDroppedNotReportedLost_andAReplayReopensIt(
    tmp_path: Path, caplog: Any
) -> None:
    svc, follower = _gone_node(tmp_path, now=3001)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_leaf_requested(90, 3000)],
    }
    NodeService._follow(svc)
    _reorg(follower, [])
    NodeService._follow(svc)
    (request,) = svc.store.leaf_requests("open")
    with caplog.at_level("WARNING"):
        assert NodeService._reveal(svc, request) == 0
    assert [r.request_id for r in svc.store.leaf_requests("dropped")] == [REQUEST_ID]
    assert not [r for r in caplog.records if r.levelname == "CRITICAL"], caplog.text
    follower.chain = {**follower.chain, "head": 140, "events": [_leaf_requested(125, 3600)]}
    NodeService._follow(svc)
    assert [r.reveal_deadline for r in svc.store.leaf_requests("open")] == [3600]
