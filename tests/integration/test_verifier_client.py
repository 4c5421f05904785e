"""The dApp client returns an output only for the caller's own request (requester, node, model,
input), only when the job is final, and only when the output matches its hash."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spotcheck.encoding import input_hash, output_hash
from spotcheck.errors import ChainError, InputError
from tests.fixtures.chain import JOB_FEE, JOB_INPUT, JOB_OUTPUT, MOCK_MODEL, TEST_PARAMS, advance
from verifier.client import (
    JobInvalidError,
    JobMismatchError,
    JobNotFinalError,
    JobOutOfDomainError,
    JobRequest,
    SpotcheckClient,
    check_committed_output,
)

pytestmark = pytest.mark.chain


@pytest.fixture
def client(spotcheck: Any) -> SpotcheckClient:
    return SpotcheckClient(spotcheck.contracts)


@pytest.fixture
def own(spotcheck: Any, requester: Any, node: Any) -> Any:
    """``own(job_id, input_q=JOB_INPUT)``: the request ``requester`` made (as ``make_job``)."""

    def _own(job_id: int, input_q: list[int] = JOB_INPUT) -> JobRequest:
        return JobRequest.of(job_id, requester.address, node.address, spotcheck.model_id, input_q)

    return _own


def test_committedButInWindow_isNotFinal(client: SpotcheckClient, make_job: Any, own: Any) -> None:
    job_id = make_job()
    with pytest.raises(JobNotFinalError, match="not final"):
        client.verified_output(own(job_id))


def test_afterFinalize_returnsHashCheckedOutput(
    client: SpotcheckClient, make_job: Any, own: Any, chain: Any, spotcheck: Any, requester: Any
) -> None:
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=requester)
    out = client.verified_output(own(job_id))
    assert list(out.output_q) == JOB_OUTPUT
    assert out.output_hash == output_hash(JOB_OUTPUT)
    assert out.values == [v / 2**MOCK_MODEL.output_scale for v in JOB_OUTPUT]


def test_attack_finalJobRequestedBySomeoneElse_isRefused(
    client: SpotcheckClient,
    own: Any,
    chain: Any,
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
) -> None:
    """Issue 11, 6: a consumer offered a job it never requested (same node, model and input,
    final and correct) is refused: the job's requester is someone else."""
    jm = spotcheck.job_manager
    fee = max(int(jm.priceOf(node, spotcheck.model_id)), 1)
    spotcheck.token.approve(jm, fee, sender=challenger)
    theirs = int(
        jm.requestJob(spotcheck.model_id, JOB_INPUT, node, fee, sender=challenger).return_value
    )
    jm.commitResult(theirs, input_hash(JOB_INPUT), JOB_OUTPUT, sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalize(theirs, sender=requester)
    assert jm.isJobFinal(theirs)
    with pytest.raises(JobMismatchError, match="not your request: requester"):
        client.verified_output(own(theirs))
    with pytest.raises(JobMismatchError):
        client.wait_for_output(own(theirs), timeout=1, poll_interval=0.1)


def test_ownJob_butAnotherInputOrModelOrNode_isRefused(
    client: SpotcheckClient, make_job: Any, own: Any, chain: Any, spotcheck: Any, requester: Any
) -> None:
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=requester)
    mine = own(job_id)
    assert client.verified_output(mine).job_id == job_id
    with pytest.raises(JobMismatchError, match="input hash"):
        client.verified_output(own(job_id, [4, 3, 2, 1]))
    with pytest.raises(JobMismatchError, match="model"):
        client.verified_output(replace(mine, model_id=b"\x01" * 32))
    with pytest.raises(JobMismatchError, match="node"):
        client.verified_output(replace(mine, node="0x" + "ee" * 20))


def test_waitForOutput_finalizesAfterWindow(
    client: SpotcheckClient, make_job: Any, own: Any, chain: Any, requester: Any
) -> None:
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    out = client.wait_for_output(
        own(job_id), timeout=10, poll_interval=0.1, finalize_sender=requester
    )
    assert list(out.output_q) == JOB_OUTPUT


def test_waitForOutput_timesOut_whileWindowOpen(
    client: SpotcheckClient, make_job: Any, own: Any
) -> None:
    job_id = make_job()
    with pytest.raises(JobNotFinalError, match=r"after 0\.3 s"):
        client.wait_for_output(own(job_id), timeout=0.3, poll_interval=0.1)


def test_invalidatedJob_raises(
    client: SpotcheckClient,
    make_job: Any,
    own: Any,
    chain: Any,
    spotcheck: Any,
    challenger: Any,
) -> None:
    job_id = make_job()
    dm = spotcheck.dispute_manager
    dispute_id = dm.openDispute(job_id, output_hash(JOB_OUTPUT), sender=challenger).return_value
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=challenger)
    with pytest.raises(JobInvalidError, match="invalid"):
        client.verified_output(own(job_id))


def test_uncommittedJob_cancelled_raises(
    client: SpotcheckClient, make_job: Any, own: Any, chain: Any, spotcheck: Any, requester: Any
) -> None:
    job_id = make_job(commit=False)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    spotcheck.job_manager.cancelJob(job_id, sender=requester)
    with pytest.raises(JobInvalidError, match="cancelled"):
        client.verified_output(own(job_id))


def test_finalJob_inputReadBack_outOfDomainIsNeverAnOutput(
    client: SpotcheckClient,
    make_job: Any,
    own: Any,
    chain: Any,
    spotcheck: Any,
    requester: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``requestJob`` refuses such inputs and domains never change, so no real job has one;
    the client checks all the same (an unchecked output must never be handed out)."""
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=requester)
    stored = bytes(spotcheck.job_manager.getJob(job_id).inputHash)
    assert client.requested_input(job_id, stored) == JOB_INPUT
    with pytest.raises(ChainError, match="emitted input hashes to"):
        client.requested_input(job_id, input_hash([0, 0, 0, 0]))
    model = spotcheck.model_registry.getModel(spotcheck.model_id)
    outside = [int(model.inHi) + 1, 0, 0, 0]
    monkeypatch.setattr(client, "requested_input", lambda _j, _h: outside)
    with pytest.raises(JobOutOfDomainError, match=r"input\[0\].*outside the model's domain"):
        client.verified_output(own(job_id))


def test_forgedOutput_failsHashCheck() -> None:
    stored = output_hash(JOB_OUTPUT)
    check_committed_output(JOB_OUTPUT, stored, 1)
    with pytest.raises(ChainError, match="hashes to"):
        check_committed_output([JOB_OUTPUT[0] + 1, JOB_OUTPUT[1]], stored, 1)


def test_requestJob_wrongInputLength_raisesBeforeSending(
    client: SpotcheckClient, spotcheck: Any, node: Any, requester: Any
) -> None:
    with pytest.raises(InputError, match="model expects 4"):
        client.request_job(spotcheck.model_id, [1, 2, 3], node.address, JOB_FEE, requester)


def test_requestJob_inputOutsideDomain_raisesBeforeSending(
    client: SpotcheckClient, spotcheck: Any, node: Any, requester: Any
) -> None:
    model = spotcheck.model_registry.getModel(spotcheck.model_id)
    bad = [0, 0, int(model.inHi) + 1, 0]
    with pytest.raises(InputError, match=r"input\[2\].*outside the model's domain"):
        client.request_job(spotcheck.model_id, bad, node.address, JOB_FEE, requester)


def test_requestJob_feeBelowNodePrice_raisesBeforeSending(
    client: SpotcheckClient, spotcheck: Any, node: Any, requester: Any
) -> None:
    spotcheck.job_manager.setPrice(spotcheck.model_id, 2 * JOB_FEE, sender=node)
    assert client.price_of(node.address, spotcheck.model_id) == 2 * JOB_FEE
    with pytest.raises(ChainError, match=r"below node .* price"):
        client.request_job(spotcheck.model_id, JOB_INPUT, node.address, JOB_FEE, requester)
    req = client.request_job(spotcheck.model_id, JOB_INPUT, node.address, 2 * JOB_FEE, requester)
    assert int(spotcheck.job_manager.getJob(req.job_id).fee) == 2 * JOB_FEE


def test_requestJob_returnsTheRequest_thenCommit_roundTrips(
    client: SpotcheckClient, spotcheck: Any, node: Any, requester: Any
) -> None:
    req = client.request_job(spotcheck.model_id, JOB_INPUT, node.address, JOB_FEE, requester)
    assert req == JobRequest.of(
        req.job_id, requester.address, node.address, spotcheck.model_id, JOB_INPUT
    )
    assert JobRequest.from_json(req.to_json()) == req
    spotcheck.job_manager.commitResult(req.job_id, req.input_hash, [7, 8], sender=node)
    assert client.committed_output(req.job_id) == [7, 8]


# --- batched outputs: receipts checked against the real JobManager --------------------------


def test_batchReceipt_checkOnchain_okOnlyForTheDappsOwnQuestion_andOnlyOnceFinal(
    spotcheck: Any, node: Any, chain: Any, requester: Any
) -> None:
    from spotcheck.encoding import leaf_hash
    from spotcheck.merkle import MerkleTree
    from spotcheck.receipts import ApeSigner, Receipt, ReceiptDomain, check_receipt_onchain

    jm = spotcheck.job_manager
    signer = ApeSigner(node, ReceiptDomain.of(jm))
    model = spotcheck.model_registry.getModel(spotcheck.model_id)
    served = [([1, 2, 3, 4], [10, -10]), ([4, 3, 2, 1], [7, 7]), ([0, 0, 0, 0], [1, 2])]
    served.append(([0, int(model.inHi) + 1, 0, 0], [5, 5]))  # outside: no challenger checks it
    receipts = []
    for job_id, (x, y) in enumerate(served, start=1):
        in_h, out_h = input_hash(x), output_hash(y)
        sig = signer.sign_leaf(leaf_hash(job_id, spotcheck.model_id, in_h, out_h))
        receipts.append(
            Receipt(job_id, spotcheck.model_id, in_h, out_h, node.address, sig, *_domain(signer))
        )
    tree = MerkleTree([r.leaf for r in receipts])
    batch_id = int(jm.commitBatch(spotcheck.model_id, tree.root, 4, "", sender=node).return_value)
    client = SpotcheckClient(spotcheck.contracts)

    def check(i: int, x: list[int], y: list[int]) -> Any:
        return check_receipt_onchain(
            receipts[i],
            node=node.address,
            model_id=spotcheck.model_id,
            input_q=x,
            output_q=y,
            batch_id=batch_id,
            index=i,
            proof=["0x" + p.hex() for p in tree.proof(i)],
            job_manager=jm,
        )

    before = check(1, *served[1])
    assert before.in_batch and before.signed_by_node and not before.leaf_final
    assert not before.ok  # not final yet
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalizeBatch(batch_id, sender=requester)
    for i, (x, y) in enumerate(served[:3]):
        assert check(i, x, y).ok
    # Receipt 0 offered for the input and output of job 1: refused.
    assert not check(0, *served[1]).ok
    # A final leaf whose input is outside the model's domain: refused (the registry is the
    # one JobManager.registry() names), and the same through the client.
    outside = check(3, *served[3])
    assert outside.leaf_final and not outside.ok and outside.failures == ["in_domain"]
    for i, (x, y) in enumerate(served):
        via_client = client.check_receipt(
            receipts[i], node=node.address, model_id=spotcheck.model_id, input_q=x,
            output_q=y, batch_id=batch_id, index=i,
            proof=["0x" + p.hex() for p in tree.proof(i)],
        )  # fmt: skip
        assert via_client.ok is (i < 3) and via_client.in_domain is (i < 3)


def _domain(signer: Any) -> tuple[int, str]:
    return signer.domain.chain_id, signer.domain.job_manager


def test_cliRequestRecord_roundTrips_andIgnoresAnotherDeploymentsRecord(tmp_path: Any) -> None:
    """``job request`` records the question; ``job output`` reads it back for the same
    deployment only (a restarted anvil reuses addresses and job ids)."""
    from verifier.client_cli import load_request, save_request

    req = JobRequest.of(3, "0x" + "aa" * 20, "0x" + "bb" * 20, b"\x01" * 32, JOB_INPUT)
    save_request(tmp_path, req, deploy_block=5)
    assert load_request(tmp_path, 3, deploy_block=5) == req
    assert load_request(tmp_path, 3, deploy_block=6) is None
    assert load_request(tmp_path, 4, deploy_block=5) is None
