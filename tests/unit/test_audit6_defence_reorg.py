"""Audit 6, A6-6: a reorg re-mines a dispute on a claimed correct job with an EARLIER proof
deadline; the defence keeps the old start time and is too late.

A dispute's proof deadline depends on the node's queue when it lands (``_enqueue``): re-mined
on another branch (the claims ahead of it dropped or reordered) it can be much earlier. The
rollback (``DefenceStore.forget_after``) forgets only ``watching`` rows; a row already
``waiting`` keeps the ``start_at`` computed from the old deadline, and the replayed
``DisputeOpened`` (``INSERT OR IGNORE``) changes nothing. The proof starts after the new
deadline: ``too_late``, the claim's collateral burned although the job is correct. Safe: the
defence is proven and sent before the deadline the chain now holds. Fakes from
test_challenger_defence.py."""

from __future__ import annotations

from pathlib import Path

from challenger.chain_io import DisputeView
from challenger.defence import DefenceState, DefenceStore
from challenger.store import ClaimState
from spotcheck.chain import DisputeStatus
from tests.unit.test_challenger_defence import (
    DEADLINE,
    NODE,
    OPENED_AT,
    SYBIL,
    FakeDisputes,
    FakeWorker,
    _claim,
    _defender,
    _job,
    _state,
)

#: The first branch's deadline: the dispute landed behind other claims against the node.
LATE = OPENED_AT + 5 * (DEADLINE - OPENED_AT)


def test_audit6_reorgReMinesDisputeWithEarlierDeadline_defenceStillInTime(tmp_path: Path) -> None:
    chain, worker = FakeDisputes(), FakeWorker()
    d = _defender(tmp_path / "c.sqlite", chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    # first branch: the dispute lands at block 95 behind other work, deadline LATE
    chain.disputes[key] = DisputeView(DisputeStatus.OPEN, SYBIL, 10, LATE)
    DefenceStore.opened(
        d.store.conn, dispute_id=key, node=NODE, disputer=SYBIL, proof_deadline=LATE, block=95
    )
    d.step()
    assert _state(d, key) is DefenceState.WAITING  # start at LATE - RESERVE
    # reorg after block 90: the follower rolls back, then replays the re-mined dispute (block
    # 97) with the deadline of the new branch, DEADLINE
    DefenceStore.forget_after(d.store.conn, 90)
    chain.open(key)  # now OPEN with proof deadline DEADLINE
    DefenceStore.opened(
        d.store.conn, dispute_id=key, node=NODE, disputer=SYBIL, proof_deadline=DEADLINE, block=97
    )
    for t in [*range(OPENED_AT, DEADLINE, 50), DEADLINE, DEADLINE + 1]:
        chain.now = t
        d.step()
    assert _state(d, key) is DefenceState.WON, d.defences.row(key)
