"""Audit 4 (the node's work gate): work the stake cannot back is signed, and work the stake can
back is dropped for good.

Each test asserts the SAFE behaviour and is marked xfail(strict=True): it fails on the current
code for the reason named in its marker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from prover.chain_io import StakeView
from prover.service import NodeService
from prover.store import JobState
from prover.work_gate import WorkGate
from spotcheck.chain import TOKEN

A = bytes.fromhex("aa" * 32)
B = bytes.fromhex("bb" * 32)
SLASH = {A: 10 * TOKEN, B: 100 * TOKEN}


def _view(amount: int, locked: int = 0, unbond: int = 0, minimum: int = 1000) -> StakeView:
    return StakeView(
        amount * TOKEN, locked * TOKEN, unbond, 0, (amount - locked) * TOKEN, minimum * TOKEN
    )


@pytest.mark.xfail(
    strict=True,
    reason=(
        "A4-4: the HTTP thread's refuse_work (gate.refuse) reads the state of the last "
        "refresh; jobs served since then are not counted, so between two chain steps the node "
        "serves and signs receipts for any number of jobs beyond what its free stake backs"
    ),
)
def test_audit4_gate_countsJobsServedSinceTheLastRefresh() -> None:
    # 1000 staked, 950 locked: 50 free backs exactly 5 more jobs of A (10 each).
    pending: dict[bytes, int] = {}
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(pending))
    gate.refresh()
    assert gate.refuse(A) is None
    # The HTTP API serves (and signs a receipt for) jobs of A; each is a pending job of A.
    signed = 0
    for _ in range(20):  # one burst inside one step interval
        if gate.refuse(A) is not None:  # what prover/api.py serve_one asks before each job
            break
        pending[A] = pending.get(A, 0) + 1
        signed += 1
    # SAFE: never more signed receipts than the free stake backs (5).
    assert signed <= 5, f"signed {signed} receipts; the free stake backs 5"


class _Store:
    def __init__(self) -> None:
        self.marked: list[tuple[int, Any, str]] = []

    def mark_job(self, job_id: int, state: Any, reason: str) -> None:
        self.marked.append((job_id, state, reason))


@pytest.mark.xfail(
    strict=True,
    reason=(
        "A4-5: an InsufficientStake revert (free stake short for now, node above the minimum "
        "and not unbonding) trips the gate into its 'permanent' state, so commit_jobs DROPS "
        "every requested on-chain job, of every model, for good, instead of holding them"
    ),
)
def test_audit4_stakeShortForNow_tripped_onchainJobsHeld_notDropped() -> None:
    # 5000 staked (minimum 1000), not unbonding; batches hold 4990: 10 free.
    gate = WorkGate(lambda: _view(5000, locked=4990), SLASH, dict)
    gate.refresh()
    assert gate.refuse(A) is None and not gate.permanent  # one job of A is still backed
    # A sealed batch (taken between refreshes) reverts InsufficientStake: the service trips.
    gate.trip("commitBatch reverts InsufficientStake(node=0x1, have=10, need=640)")
    svc = NodeService.__new__(NodeService)
    svc.work_gate = gate
    svc.chain = SimpleNamespace()  # no journaled transaction
    svc.store = _Store()
    job = SimpleNamespace(job_id=7, model_id=A, status=JobState.REQUESTED)
    svc._refuse_job(job)
    dropped = [m for m in svc.store.marked if m[1] == JobState.DROPPED]
    # SAFE (work_gate docstring): "held when the free stake is only short for now".
    assert not dropped, f"on-chain job dropped for good: {dropped}"
