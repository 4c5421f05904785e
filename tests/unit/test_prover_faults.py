"""Node faults without a chain: chain reads retried and typed, a self-audit miss halts one model,
transactions priced and bumped by the EIP-1559 replacement rule."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from prover.api import ApiContext, create_app
from prover.chain_io import NodeChain
from prover.defence import SelfAuditor
from prover.metrics import NodeMetrics
from prover.transactions import MIN_BUMP, FeePolicy, TxSender
from spotcheck.chain import JobStatus
from spotcheck.errors import ChainError, ConfigError
from spotcheck.kit.ready import Readiness

A = bytes.fromhex("aa" * 32)
B = bytes.fromhex("bb" * 32)
ACCOUNT = SimpleNamespace(address="0x" + "12" * 20)


def _job_struct() -> Any:
    return SimpleNamespace(
        modelId=A,
        requester="0x" + "34" * 20,
        node=ACCOUNT.address,
        fee=1,
        inputHash=b"\x01" * 32,
        outputHash=b"\x02" * 32,
        commitDeadline=10,
        challengeDeadline=20,
        status=int(JobStatus.COMMITTED),
    )


def _chain(get_job: Any) -> NodeChain:
    contracts = SimpleNamespace(job_manager=SimpleNamespace(getJob=get_job))
    return NodeChain(contracts, ACCOUNT, read_backoff_s=0.001)  # type: ignore[arg-type]


def test_chainRead_isRetriedOnRpcErrors_thenSucceeds() -> None:
    calls = {"n": 0}

    def flaky(job_id: int) -> Any:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("connection refused")
        return _job_struct()

    view = _chain(flaky).job(7)
    assert view.status == JobStatus.COMMITTED and calls["n"] == 3


def test_chainRead_thatKeepsFailing_isAChainError_namingWhatWasRead() -> None:
    def down(job_id: int) -> Any:
        raise ConnectionError("connection refused")

    with pytest.raises(ChainError, match=r"job 7.*connection refused"):
        _chain(down).job(7)


# -- self-audit: one model halts, the others go on ------------------------------------------


class SkewedBackend:
    """The circuit of model A disagrees with the served outputs by 100; B agrees."""

    def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
        return [100, 100] if model_id == A else [0, 0]

    def prove(self, model_id: bytes, input_q: Sequence[int]) -> Any:
        raise NotImplementedError


def test_selfAuditMiss_haltsThatModelOnly_andSaysWhy() -> None:
    auditor = SelfAuditor(SkewedBackend(), rate=1.0, taus={A: 2, B: 2})
    results: list[str] = []
    auditor.on_result = results.append
    auditor.maybe_sample("served job 1", A, [1, 2], [0, 0])
    auditor.maybe_sample("served job 2", B, [1, 2], [0, 0])
    auditor.drain()

    assert auditor.is_halted(A) and not auditor.is_halted(B)
    assert "served job 1" in (auditor.halted_reason_for(A) or "")
    assert sorted(results) == ["miss", "ok"]


def test_ready_andInfer_sayWhichModelIsHalted_andWhy() -> None:
    auditor = SelfAuditor(SkewedBackend(), rate=1.0, taus={A: 2, B: 2})
    auditor.maybe_sample("served job 1", A, [1, 2], [0, 0])
    auditor.drain()
    server = SimpleNamespace(engine=SimpleNamespace(model_ids=[A, B]))
    metrics = NodeMetrics()
    http = TestClient(create_app(ApiContext(server, None, metrics, auditor)))  # type: ignore[arg-type]

    ready = http.get("/ready")
    assert ready.status_code == 200  # B is still served
    assert "served job 1" in ready.json()["halted"]["0x" + A.hex()]
    refused = http.post(f"/v1/models/0x{A.hex()}/infer", json={"input_q": [1, 2]})
    assert refused.status_code == 503 and "halted" in refused.json()["detail"]
    assert (
        metrics.registry.get_sample_value(
            "spotcheck_node_requests_rejected_total", {"reason": "model_halted"}
        )
        == 1
    )

    auditor.maybe_sample("served job 2", B, [1, 2], [5, 5])  # now B misses too
    auditor.backend = SimpleNamespace(witness_output=lambda m, i: [100, 100])
    auditor.drain()
    assert http.get("/ready").status_code == 503


def test_ready_isFalse_untilTheChainLoopSucceeds_andAgainWhenItFails() -> None:
    """The defect of issue 12: /ready was true as soon as the node was built."""
    auditor = SelfAuditor(SkewedBackend(), rate=0.0, taus={A: 2})
    server = SimpleNamespace(engine=SimpleNamespace(model_ids=[A]))
    readiness = Readiness()
    ctx = ApiContext(server, None, NodeMetrics(), auditor, not_ready=readiness.reason)  # type: ignore[arg-type]
    http = TestClient(create_app(ctx))

    built = http.get("/ready")
    assert built.status_code == 503 and "no chain step has succeeded" in built.json()["reason"]
    readiness.step_ok()
    assert http.get("/ready").json() == {"ready": True}
    readiness.step_failed("phase(s) failed: follow")
    failing = http.get("/ready")
    assert failing.status_code == 503 and "follow" in failing.json()["reason"]


# -- fees -------------------------------------------------------------------------------------


def test_feePolicy_refusesABumpBelowTheReplacementRule() -> None:
    with pytest.raises(ConfigError):
        FeePolicy(bump=1.1)
    FeePolicy(bump=MIN_BUMP)


def test_bumpedFees_raiseBothFields_byAtLeastTheRule() -> None:
    sender = TxSender(ACCOUNT, policy=FeePolicy(bump=MIN_BUMP))
    sender._base_fee = lambda: 7  # type: ignore[method-assign]
    for max_fee, tip in [(1, 1), (10, 1), (2 * 10**9, 10**9), (10**12, 3)]:
        new_max, new_tip = sender.bumped_fees(max_fee, tip)
        assert new_max >= max_fee * MIN_BUMP and new_max > max_fee
        assert new_tip >= tip * MIN_BUMP and new_tip > tip
        assert new_max >= 2 * 7 + new_tip  # covers today's base fee too
