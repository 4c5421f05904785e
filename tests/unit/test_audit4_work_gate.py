"""Audit 4 (the node's work gate): work the stake cannot back is signed, and work the stake can
back is dropped for good.

Each test asserts the SAFE behaviour (A4-4 and A4-5, both fixed: the API admits jobs through
WorkGate.admit, which counts them at once; a stake revert holds on-chain jobs)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

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


def test_audit4_gate_countsJobsServedSinceTheLastRefresh() -> None:
    # 1000 staked, 950 locked: 50 free backs exactly 5 more jobs of A (10 each).
    pending: dict[bytes, int] = {}
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(pending))
    gate.refresh()
    assert gate.refuse(A) is None
    # The HTTP API serves (and signs a receipt for) jobs of A; each is a pending job of A.
    signed = 0
    for _ in range(20):  # one burst inside one step interval
        if gate.admit(A) is not None:  # what prover/api.py asks before each job (refuse_work)
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


def test_audit4_gate_jobsAdmittedDuringARead_areStillCounted() -> None:
    """A slow stake read (an RPC round trip) is no window: jobs admitted while the gate reads
    count after it, even though the store read did not see them yet."""
    pending: dict[bytes, int] = {}
    admitted_during_read: list[str | None] = []

    def slow_read() -> Any:
        admitted_during_read.extend(gate.admit(A) for _ in range(3))
        return _view(1000, locked=950)

    gate = WorkGate(slow_read, SLASH, lambda: dict(pending))
    gate.refresh()  # 3 admitted during it (not in `pending`): 2 more fit in 50 free
    assert admitted_during_read == [None, None, None]
    assert [gate.admit(A) is None for _ in range(3)] == [True, True, False]
