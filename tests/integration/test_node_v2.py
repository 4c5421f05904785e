"""Attack tests for the node's v2 rules (docs/v2-protocol.md, section 8; issues 10 and 11).

- out-of-domain inputs: refused over HTTP with a one-line 422, never stored or committed;
- work the node never agreed to: requests below its price are ignored (no commit, no stake
  locked);
- a reordered request cannot receive the node's commit (its input hash is not the one the node
  answered);
- a leaf request is answered automatically with ``revealLeaf`` from the stored batch.

The node is assembled as in ``test_node_service.py`` (MockVerifier, the tiny MLP).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from prover.inference import ModelSpec
from prover.store import BatchState, JobState
from spotcheck.chain import JobStatus, LeafRequestStatus, ModelParams
from spotcheck.encoding import batch_leaf_key, hash_vector
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    FEE,
    Node,
    _events,
    _infer,
    _request,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain

#: A narrow domain: |q| <= 100 at input scale 7 (|x| <= 0.78).
NARROW = ModelParams(
    input_len=4,
    output_len=2,
    input_scale=7,
    output_scale=7,
    tau=2,
    challenge_window=100,
    proof_window=100,
    in_lo=-100,
    in_hi=100,
)


@pytest.fixture()
def narrow_model(register_model: Callable[..., bytes], project: Any, deployer: Any) -> bytes:
    return register_model(deployer.deploy(project.MockVerifier), NARROW, tag=b"narrow")


def test_outOfDomainHttpJob_isRefusedWithOneLine422_andNothingIsCommitted(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    narrow_model: bytes,
    onnx_path: Any,  # noqa: F811
    node: Any,
    requester: Any,
) -> None:
    spec = ModelSpec(narrow_model, onnx_path, 7, 7, 2, NARROW.in_lo, NARROW.in_hi)
    n = make_node(spec=spec, batch_size=1)
    url = f"/v1/models/0x{narrow_model.hex()}/infer"

    for body in ({"input_q": [0, 101, 0, 0]}, {"input": [0.0, 0.0, -2.0, 0.0]}):
        resp = n.http.post(url, json=body)
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"]
        assert "outside the model's domain [-100, 100]" in detail and "\n" not in detail
    assert n.http.post(url, json={"input_q": [0, 100, -100, 0]}).status_code == 200

    n.service.step()

    [batch] = n.store.batches(BatchState.COMMITTED)
    assert batch.count == 1  # only the in-domain job
    # on-chain, an out-of-domain request does not exist: requestJob reverts
    with pytest.raises(Exception) as refused:
        spotcheck.job_manager.requestJob(narrow_model, [0, 0, 0, 500], node, 0, sender=requester)
    assert type(refused.value).__name__ == "InputOutOfDomain"


def test_requestBelowTheNodesPrice_isIgnored_andLocksNoStake(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    requester: Any,
    node: Any,
) -> None:
    price = 2 * FEE
    n = make_node(prices={spotcheck.model_id: price})
    locked = n.chain.stake().locked
    cheap = _request(spotcheck, requester, node, [1, 2, 3, 4])  # FEE < price
    paid = int(
        spotcheck.job_manager.requestJob(
            spotcheck.model_id, [4, 3, 2, 1], node, price, sender=requester
        ).return_value
    )

    n.service.step()

    assert n.chain.job(cheap).status == JobStatus.REQUESTED  # no commit
    assert n.store.onchain_job(cheap).status == JobState.DROPPED  # type: ignore[union-attr]
    assert n.chain.job(paid).status == JobStatus.COMMITTED
    assert n.chain.stake().locked == locked + MOCK_MODEL.slash_amount  # the paid job only


def test_reorderedRequest_cannotReceiveTheCommitMeantForAnother(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    requester: Any,
    node: Any,
) -> None:
    """The node read job N with input A (before a reorg); on the chain now, job N has input B.
    The node must not commit its answer for A onto B's job."""
    n = make_node()
    job_id = _request(spotcheck, requester, node, [7, 7, 7, 7])  # chain: input B
    deadline = n.chain.job(job_id).commit_deadline
    n.store.record_requested(job_id, spotcheck.model_id, [1, 1, 1, 1], deadline)  # input A

    n.service.step()

    assert _events(spotcheck.job_manager.ResultCommitted, jobId=job_id) == []
    job = n.store.onchain_job(job_id)
    assert job is not None and job.status == JobState.DROPPED
    assert "input hash mismatch" in (job.note or "")
    # and the contract refuses such a commit anyway
    with pytest.raises(Exception) as refused:
        spotcheck.job_manager.commitResult(job_id, hash_vector([1, 1, 1, 1]), [0, 0], sender=node)
    assert type(refused.value).__name__ == "InputHashMismatch"


def test_leafRequest_isAnsweredWithRevealLeaf_fromTheStoredBatch(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    chain: Any,
) -> None:
    n = make_node(batch_size=3)
    answers = [_infer(n, spotcheck, [0.1 * i, 0.2, -0.3, 0.4]) for i in range(3)]
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    root = bytes(ev.event_arguments["root"])
    dm = spotcheck.dispute_manager
    dm.requestLeaf(batch_id, 1, root, sender=challenger)
    bonds_before = n.chain.credits()[1]

    n.service.step()

    request = n.chain.leaf_request(batch_leaf_key(batch_id, 1))
    assert request.status == LeafRequestStatus.REVEALED
    [revealed] = _events(dm.LeafRevealed)
    args = revealed.event_arguments
    assert int(args["index"]) == 1 and int(args["jobId"]) == answers[1]["receipt"]["jobId"]
    assert [int(v) for v in args["output"]] == answers[1]["output_q"]
    assert n.chain.credits()[1] == bonds_before + MOCK_MODEL.challenger_bond
    assert n.store.leaf_requests("open") == []

    advance(chain, 2 * MOCK_MODEL.challenge_window + 2)  # past the revealed leaf's window
    n.service.step()
    assert n.store.batch_by_chain_id(batch_id).status == BatchState.FINAL  # type: ignore[union-attr]


def test_withholdingMode_neverReveals_andTheRequesterSettlesASlash(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    chain: Any,
) -> None:
    """The demo's labelled fault (``withhold_reveals``): the request lapses and is slashed."""
    n = make_node(batch_size=2)
    n.service.withhold_reveals = True
    for i in range(2):
        _infer(n, spotcheck, [0.1, 0.1 * i, 0.2, 0.3])
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    root = bytes(ev.event_arguments["root"])
    dm = spotcheck.dispute_manager
    dm.requestLeaf(batch_id, 0, root, sender=challenger)
    stake = n.chain.stake().amount

    n.service.step()
    assert _events(dm.LeafRevealed) == []
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settleLeafRequest(batch_leaf_key(batch_id, 0), sender=challenger)

    assert n.chain.stake().amount == stake - MOCK_MODEL.slash_amount
    n.service.step()
    assert n.store.leaf_requests("open") == []  # recorded as lost
