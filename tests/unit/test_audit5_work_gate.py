"""Audit 5 (the node's work gate after the A4-4 fix, ``WorkGate.admit``).

- A5-2: each model's need is checked against the *whole* free stake, but the free stake is
  shared: a burst over two models is admitted up to twice what the stake backs.
- A5-3: jobs admitted before a stake read but still being served (not yet in the store) are in
  neither ``pending`` nor ``during``: the read forgets them and admits as many again.
- A5-4: the API admits a job (counting its slash) before it checks the input, and a refused
  (422) job is never given back until the next read: anyone can close the API for every
  client, for free, with a few malformed requests per step.

Each test asserts the SAFE behaviour and is a strict xfail."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from prover.api import ApiContext, create_app
from prover.chain_io import StakeView
from prover.metrics import NodeMetrics
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


@pytest.mark.xfail(
    strict=True,
    reason="A5-2: WorkGate.admit and decide() check each model's need against the whole free "
    "stake; two models together are admitted twice what the shared free stake backs",
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


@pytest.mark.xfail(
    strict=True,
    reason="A5-3: jobs admitted before a stake read and still being served (not in the store) "
    "are forgotten by refresh(); as many again are admitted",
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


@pytest.mark.xfail(
    strict=True,
    reason="A5-4: the API admits (counts the slash of) a job before checking its input; "
    "malformed requests (422) hold the gate closed for every client until the next read",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="A5-6: on-chain jobs are committed through refuse() (the state of the last read), "
    "not admit(): they take the free stake the API's admitted jobs were counted against",
)
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
