"""Audit (v2): the node commits an output it has the means to know it cannot defend.

For ``tau > 0`` the node commits its onnxruntime output and never compares it with the
circuit's witness (which it has: ``backend.witness_output``, milliseconds) before committing.
Where the registrar's tau is *empirical* (verifier.tolerance: "an empirical tau: the report
says so"), a requester who out-searches the registrar's hill climb finds an in-domain input
whose honest onnxruntime output is more than tau from the circuit's. It requests that input
on-chain (in domain, at the node's price: the node must commit or count a liveness failure),
then disputes: the node's own pre-check marks the dispute undefendable and it is slashed; the
requester gets its fee back plus the bounty. Simulated here by a backend whose circuit output
deviates by tau + 1 on one input (the calibration gap the attacker found).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from spotcheck.chain import JobStatus
from spotcheck.encoding import hash_vector, max_abs_diff
from tests.fixtures.chain import MOCK_MODEL
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    OwnRunBackend,
    _request,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain
GAP_INPUT = [100, -100, 127, -128]


class GapBackend(OwnRunBackend):
    def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
        out = super().witness_output(model_id, input_q)
        if list(input_q) == GAP_INPUT:
            out[0] += MOCK_MODEL.tau + 1
        return out


def test_audit_tauGapInput_honestNodeCommitsUndefendableOutput(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    requester: Any,
    node: Any,
) -> None:
    n = make_node()
    backend = GapBackend(n.engine)
    n.service.backend = backend
    job_id = _request(spotcheck, requester, node, GAP_INPUT)
    n.service.step()
    view = n.chain.job(job_id)
    assert view.status == JobStatus.COMMITTED
    circuit = backend.witness_output(spotcheck.model_id, GAP_INPUT)
    onnx = n.engine.run(spotcheck.model_id, GAP_INPUT).output_q.tolist()
    assert max_abs_diff(onnx, circuit) > MOCK_MODEL.tau  # the precondition: a calibration gap
    # Property: whatever the node commits is within tau of what a proof will show.
    committed = n.store.onchain_job(job_id).output_q  # type: ignore[union-attr]
    assert view.output_hash == hash_vector(list(committed))
    assert max_abs_diff(list(committed), circuit) <= MOCK_MODEL.tau
