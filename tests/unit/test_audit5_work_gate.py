"""Audit 5 (the node's work gate after the A4-4 fix, ``WorkGate.admit``).

- A5-2: each model's need is checked against the *whole* free stake, but the free stake is
  shared: a burst over two models is admitted up to twice what the stake backs.
- A5-3: jobs admitted before a stake read but still being served (not yet in the store) are in
  neither ``pending`` nor ``during``: the read forgets them and admits as many again.
- A5-4: the API admits a job (counting its slash) before it checks the input, and a refused
  (422) job is never given back until the next read: anyone can close the API for every
  client, for free, with a few malformed requests per step.

- A5-6: on-chain commits asked the state of the last read, not the ledger the API admits
  against: both promised the same free stake.

Each test asserts the SAFE behaviour (all four fixed: one ledger of the free stake in
``prover.work_gate.WorkGate``)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

from prover.api import ApiContext, create_app
from prover.chain_io import StakeView
from prover.metrics import NodeMetrics
from prover.service import NodeService
from prover.store import JobState
from prover.work_gate import WorkGate
from spotcheck.chain import TOKEN
from spotcheck.errors import InputError

A = bytes.fromhex("aa" * 32)
B = bytes.fromhex("bb" * 32)
SLASH = {A: 10 * TOKEN, B: 10 * TOKEN}


def _view(amount: int, locked: int = 0, unbond: int = 0, minimum: int = 1000) -> StakeView:
    return StakeView(
        amount * TOKEN, locked * TOKEN, unbond, 0, (amount - locked) * TOKEN, minimum * TOKEN
    )


def test_audit5_gate_twoModels_shareOneFreeStake() -> None:
    # 1000 staked, 950 locked: 50 free backs 5 jobs in all (10 each, either model).
    pending: dict[bytes, int] = {}
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(pending))
    gate.refresh()
    admitted_slash = 0
    for _ in range(20):  # one burst inside one step, alternating the two models
        for model in (A, B):
            if gate.admit(model) is None:
                pending[model] = pending.get(model, 0) + 1
                admitted_slash += SLASH[model]
    # SAFE: what the admitted jobs lock when committed never exceeds the free stake.
    assert admitted_slash <= 50 * TOKEN, (
        f"admitted {admitted_slash // TOKEN} tokens of slash on 50 free ({pending[A]} of A, "
        f"{pending[B]} of B): the second model's batch reverts InsufficientStake"
    )


def test_audit5_gate_jobsInFlightAtARead_stillCounted() -> None:
    stored: dict[bytes, int] = {}  # the store: a job is in it once its inference is done
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(stored))
    gate.refresh()
    in_flight = 0
    while gate.admit(A) is None:  # concurrent requests (run_in_threadpool), inference running
        in_flight += 1
    assert in_flight == 5
    gate.refresh()  # the chain loop's next step reads the stake while they are still running
    more = 0
    while gate.admit(A) is None and more < 50:
        more += 1
    stored[A] = in_flight + more  # every inference finishes; each job was receipted
    # SAFE: no job beyond the 5 the free stake backs.
    assert more == 0, (
        f"{in_flight} jobs in flight at the read, then {more} more admitted: "
        f"{in_flight + more} receipts on a free stake that backs 5"
    )


class _Runtime:
    def check_input_q(self, input_q: list[int]) -> Any:
        raise InputError(f"input has {len(input_q)} values, the model takes 4")

    def quantize_input(self, values: list[float]) -> Any:
        raise InputError("input has the wrong length")


def _app(gate: WorkGate) -> TestClient:
    ctx = ApiContext(
        server=SimpleNamespace(engine=SimpleNamespace(runtime=lambda mid: _Runtime())),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        metrics=NodeMetrics(),
        auditor=SimpleNamespace(halted_reason_for=lambda mid: None),  # type: ignore[arg-type]
        refuse_work=gate.admit,  # as prover/runner.py build_node wires it
    )
    return TestClient(create_app(ctx))


def test_audit5_api_malformedRequests_doNotUseUpTheFreeStake() -> None:
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, dict)
    gate.refresh()
    client = _app(gate)
    url = f"/v1/models/0x{A.hex()}/infer"
    # An attacker: 5 requests with a wrong-length input, each refused 422 (nothing served).
    codes = [client.post(url, json={"input_q": [1]}).status_code for _ in range(5)]
    assert codes == [422] * 5
    # SAFE: a real client's job is still admitted (nothing was served, nothing is pending).
    why = gate.admit(A)
    assert why is None, f"after 5 malformed requests an honest job is refused: {why}"


def test_audit5_gate_onchainCommit_afterTheApiUsedTheFreeStake_isHeld() -> None:
    pending: dict[bytes, int] = {}
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(pending))
    gate.refresh()
    while gate.admit(A) is None:  # the API receipts 5 jobs of A: the 50 free tokens
        pending[A] = pending.get(A, 0) + 1
    assert pending[A] == 5
    # Same step, later: commit_jobs asks the gate about a requested on-chain job of A
    # (NodeService._refuse_job -> gate.refuse). Committing it locks 10 of the 50 free tokens,
    # and the sealed batch of the 5 receipted jobs then reverts InsufficientStake.
    why = gate.refuse(A)
    # SAFE: the on-chain job is held (or counted) while admitted work already needs the stake.
    assert why is not None, (
        "the on-chain job is committed on stake already promised to 5 receipted API jobs"
    )


# -- the ledger's other edges (attack first: each would break one of the fixes above) ------


def test_audit5_gate_releasedJob_freesItsSlash_storedJob_countsUntilTheReadSeesIt() -> None:
    stored: dict[bytes, int] = {}
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(stored))
    gate.refresh()
    assert [gate.admit(A) for _ in range(5)] == [None] * 5 and gate.admit(B) is not None
    gate.release(A)  # served nothing (the engine refused it)
    assert gate.admit(B) is None  # its 10 are free again, for any model
    for model in (A, A, A, A, B):
        gate.stored(model)
        stored[model] = stored.get(model, 0) + 1
    gate.stored(B)  # a second settle of one admission is ignored, never below zero
    assert gate.admit(A) is not None  # stored, not committed: still counted between reads
    gate.refresh()  # the read sees them in the store (pending), counted once
    assert gate.admit(A) is not None
    stored.clear()  # committed (their lock is on chain) and the operator tops up 10
    gate._read_stake = lambda: _view(1010, locked=1000)
    gate.refresh()
    assert gate.admit(A) is None and gate.admit(B) is not None  # exactly the 10 new tokens


def test_audit5_gate_jobStoredDuringARead_stillCounted() -> None:
    """The store read misses a job stored just after it: ``stored`` during the read counts."""
    stored: dict[bytes, int] = {}
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, lambda: dict(stored))
    gate.refresh()
    assert [gate.admit(A) for _ in range(5)] == [None] * 5

    def pending_then_store() -> dict[bytes, int]:
        seen = dict(stored)  # the store as read: none of the 5 yet
        for _ in range(5):
            gate.stored(A)
        return seen

    gate._pending_jobs = pending_then_store
    gate.refresh()
    assert gate.admit(A) is not None, "5 jobs stored during the read were forgotten"


def test_audit5_gate_concurrentAdmits_neverExceedTheFreeStake() -> None:
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, dict)
    gate.refresh()
    results: list[str | None] = []
    lock = threading.Lock()

    def burst(model: bytes) -> None:
        for _ in range(50):
            why = gate.admit(model)
            with lock:
                results.append(why)

    threads = [threading.Thread(target=burst, args=(m,)) for m in (A, B, A, B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is None for r in results) == 5


def test_audit5_gate_onchainReservations_shareTheLedger_untilMinedAndRead() -> None:
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, dict)
    gate.refresh()
    assert [gate.reserve_job(j, A) for j in range(1, 5)] == [None] * 4  # 40 of the 50
    assert gate.reserve_job(1, A) is None  # already reserved: nothing more
    assert gate.admit(B) is None and gate.admit(A) is not None  # the API gets the last 10
    assert gate.reserve_job(5, A) is not None  # and the chain loop nothing more
    gate.job_dropped(1)
    assert gate.reserve_job(5, A) is None  # a dropped job's slash is free again
    gate.job_mined(2)
    assert gate.reserve_job(6, A) is not None  # mined: held until a read shows its lock
    gate._read_stake = lambda: _view(1000, locked=960)  # the read after job 2 was mined
    gate.refresh()
    # 40 free: jobs 3, 4, 5 (30) and the API's job of B (10) still reserved
    assert gate.reserve_job(6, A) is not None
    gate.keep_jobs({3, 4})  # job 5 was cancelled outside the commit path
    assert gate.reserve_job(6, A) is None


class _Ok:
    def check_input_q(self, input_q: list[int]) -> Any:
        return input_q


def _serving_app(gate: WorkGate, serve: Any) -> TestClient:
    ctx = ApiContext(
        server=SimpleNamespace(engine=SimpleNamespace(runtime=lambda mid: _Ok()), serve=serve),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        metrics=NodeMetrics(),
        auditor=SimpleNamespace(halted_reason_for=lambda mid: None),  # type: ignore[arg-type]
        refuse_work=gate.admit,
        work_stored=gate.stored,
        release_work=gate.release,
    )
    return TestClient(create_app(ctx), raise_server_exceptions=False)


def test_audit5_api_engineRefusal_releases_otherFailure_staysCounted() -> None:
    gate = WorkGate(lambda: _view(1000, locked=950), SLASH, dict)
    gate.refresh()
    url = f"/v1/models/0x{A.hex()}/infer"

    def refused(mid: bytes, input_q: Any) -> Any:
        raise InputError("outside the domain")

    client = _serving_app(gate, refused)
    assert [client.post(url, json={"input_q": [1]}).status_code for _ in range(7)] == [422] * 7
    assert gate.admit(A) is None  # nothing held by the 7 refused jobs
    gate.release(A)

    def broken(mid: bytes, input_q: Any) -> Any:
        raise RuntimeError("receipt signing failed after the job was stored")

    client = _serving_app(gate, broken)
    assert [client.post(url, json={"input_q": [1]}).status_code for _ in range(5)] == [500] * 5
    # It may be in the store: counted until the next read says whether it is.
    assert gate.admit(A) is not None


class _Store:
    def __init__(self) -> None:
        self.marked: list[tuple[int, Any, str]] = []

    def mark_job(self, job_id: int, state: Any, reason: str) -> None:
        self.marked.append((job_id, state, reason))


def test_audit5_service_onchainJobs_reserveThroughTheLedger_theApiSeesIt() -> None:
    gate = WorkGate(lambda: _view(1000, locked=980), SLASH, dict)  # 20 free: 2 jobs
    gate.refresh()
    svc = NodeService.__new__(NodeService)
    svc.work_gate = gate
    svc.chain = SimpleNamespace()  # no journaled transaction
    svc.store = _Store()
    jobs = [SimpleNamespace(job_id=j, model_id=A, status=JobState.REQUESTED) for j in (1, 2, 3)]
    assert [svc._refuse_job(job) for job in jobs] == [False, False, True]  # the third is held
    assert not svc.store.marked  # held, not dropped: the stake is only short for now
    assert gate.admit(B) is not None  # the API cannot promise the stake the commits took
