"""The work gate (issue 13): a node whose stake cannot back the next commitment stops taking
work (503 with the reason), logs the change once, and holds instead of retrying reverts."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from prover.api import ApiContext, create_app
from prover.chain_io import StakeView
from prover.defence import SelfAuditor
from prover.metrics import NodeMetrics
from prover.work_gate import WorkGate, decide
from spotcheck.chain import TOKEN

A = bytes.fromhex("aa" * 32)
B = bytes.fromhex("bb" * 32)
SLASH = {A: 10 * TOKEN, B: 100 * TOKEN}


def _view(amount: int, locked: int = 0, unbond: int = 0, minimum: int = 1000) -> StakeView:
    return StakeView(
        amount * TOKEN, locked * TOKEN, unbond, 0, (amount - locked) * TOKEN, minimum * TOKEN
    )


def test_decide_unbonding_refusesEverything() -> None:
    state = decide(_view(5000, unbond=77), SLASH, {})
    assert state.reason(A) == state.reason(B)
    assert "is unbonding (requested at 77)" in (state.reason(A) or "")


def test_decide_belowTheMinimum_refusesEverything() -> None:
    assert "below the minimum 1000" in (decide(_view(999), SLASH, {}).reason(A) or "")


def test_decide_freeStakeShort_refusesOnlyTheModelItCannotBack() -> None:
    # 1000 staked, 950 locked: 50 free backs one more job of A (10) but none of B (100)
    state = decide(_view(1000, locked=950), SLASH, {})
    assert state.reason(A) is None
    assert "cannot back the next commitment" in (state.reason(B) or "")


def test_decide_countsPendingWork_beforeTakingMore() -> None:
    # 50 free: 4 pending jobs of A need 40, one more 50: accepted; 5 pending: refused
    assert decide(_view(1000, locked=950), SLASH, {A: 4}).reason(A) is None
    assert decide(_view(1000, locked=950), SLASH, {A: 5}).reason(A) is not None


def test_gate_logsEachChangeOnce(caplog: pytest.LogCaptureFixture) -> None:
    views = [_view(5000), _view(5000, unbond=9), _view(5000, unbond=9), _view(5000, unbond=9)]
    gate = WorkGate(lambda: views.pop(0), SLASH, node="0xnode")
    with caplog.at_level(logging.WARNING, logger="prover.work_gate"):
        for _ in range(4):
            gate.refresh()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("not accepting work: node 0xnode is unbonding")
    assert gate.permanent and gate.refuse_all() is not None


def test_gate_trippedByARevert_staysClosedUntilTheStakeChanges() -> None:
    views = [_view(5000), _view(5000), _view(6000)]
    gate = WorkGate(lambda: views[0], SLASH)
    gate.refresh()
    gate.trip("commitBatch reverts InsufficientStake(node=0x1, have=1, need=2)")
    assert gate.closed and not gate.permanent  # batches held; on-chain jobs held, not dropped
    assert gate.refresh().reason(A) == (
        "commitBatch reverts InsufficientStake(node=0x1, have=1, need=2)"
    )
    views.pop(0)
    assert gate.refresh().reason(A) is not None  # the same stake: still closed
    views.pop(0)
    assert gate.refresh().reason(A) is None  # topped up: decided afresh


def test_api_refusesNewJobsWith503AndTheReason_andReadyToo() -> None:
    gate = WorkGate(lambda: _view(5000, unbond=9), SLASH)
    runtime = SimpleNamespace(check_input_q=lambda values: values)  # a valid input
    server = SimpleNamespace(engine=SimpleNamespace(model_ids=[A, B], runtime=lambda m: runtime))
    metrics = NodeMetrics()
    auditor = SelfAuditor(None, 0.0, {A: 2, B: 2})  # type: ignore[arg-type]
    ctx = ApiContext(
        server,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        metrics,
        auditor,
        not_ready=gate.refuse_all,
        refuse_work=gate.refuse,
    )
    http = TestClient(create_app(ctx))
    assert http.get("/ready").status_code == 200  # the gate is open until it reads the stake
    gate.refresh()

    refused = http.post(f"/v1/models/0x{A.hex()}/infer", json={"input_q": [1, 2]})
    assert refused.status_code == 503
    assert refused.json()["detail"].startswith("not accepting work: node is unbonding")
    ready = http.get("/ready")
    assert ready.status_code == 503 and "unbonding" in ready.json()["reason"]
    sample = metrics.registry.get_sample_value(
        "spotcheck_node_requests_rejected_total", {"reason": "not_accepting"}
    )
    assert sample == 1
