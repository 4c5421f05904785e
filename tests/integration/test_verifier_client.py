"""The dApp client returns an output only when the job is final and the output matches its hash."""

from __future__ import annotations

from typing import Any

import pytest

from spotcheck.encoding import output_hash
from spotcheck.errors import ChainError
from tests.fixtures.chain import JOB_OUTPUT, MOCK_MODEL, TEST_PARAMS, advance
from verifier.client import (
    JobInvalidError,
    JobNotFinalError,
    SpotcheckClient,
    check_committed_output,
)

pytestmark = pytest.mark.chain


@pytest.fixture
def client(spotcheck: Any) -> SpotcheckClient:
    return SpotcheckClient(spotcheck.contracts)


def test_committedButInWindow_isNotFinal(client: SpotcheckClient, make_job: Any) -> None:
    job_id = make_job()
    with pytest.raises(JobNotFinalError, match="not final"):
        client.verified_output(job_id)


def test_afterFinalize_returnsHashCheckedOutput(
    client: SpotcheckClient, make_job: Any, chain: Any, spotcheck: Any, requester: Any
) -> None:
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=requester)
    out = client.verified_output(job_id)
    assert list(out.output_q) == JOB_OUTPUT
    assert out.output_hash == output_hash(JOB_OUTPUT)
    assert out.values == [v / 2**MOCK_MODEL.output_scale for v in JOB_OUTPUT]


def test_waitForOutput_finalizesAfterWindow(
    client: SpotcheckClient, make_job: Any, chain: Any, requester: Any
) -> None:
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    out = client.wait_for_output(job_id, timeout=10, poll_interval=0.1, finalize_sender=requester)
    assert list(out.output_q) == JOB_OUTPUT


def test_waitForOutput_timesOut_whileWindowOpen(client: SpotcheckClient, make_job: Any) -> None:
    job_id = make_job()
    with pytest.raises(JobNotFinalError, match=r"after 0\.3 s"):
        client.wait_for_output(job_id, timeout=0.3, poll_interval=0.1)


def test_invalidatedJob_raises(
    client: SpotcheckClient, make_job: Any, chain: Any, spotcheck: Any, challenger: Any
) -> None:
    job_id = make_job()
    dispute_id = spotcheck.dispute_manager.openDispute(job_id, sender=challenger).return_value
    advance(chain, MOCK_MODEL.proof_window + 1)
    spotcheck.dispute_manager.settle(dispute_id, sender=challenger)
    with pytest.raises(JobInvalidError, match="invalid"):
        client.verified_output(job_id)


def test_uncommittedJob_cancelled_raises(
    client: SpotcheckClient, make_job: Any, chain: Any, spotcheck: Any, requester: Any
) -> None:
    job_id = make_job(commit=False)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    spotcheck.job_manager.cancelJob(job_id, sender=requester)
    with pytest.raises(JobInvalidError, match="cancelled"):
        client.verified_output(job_id)


def test_forgedOutput_failsHashCheck() -> None:
    stored = output_hash(JOB_OUTPUT)
    check_committed_output(JOB_OUTPUT, stored, 1)
    with pytest.raises(ChainError, match="hashes to"):
        check_committed_output([JOB_OUTPUT[0] + 1, JOB_OUTPUT[1]], stored, 1)


def test_requestJob_wrongInputLength_raisesBeforeSending(
    client: SpotcheckClient, spotcheck: Any, node: Any, requester: Any
) -> None:
    with pytest.raises(ChainError, match="model expects 4"):
        client.request_job(spotcheck.model_id, [1, 2, 3], node.address, 10, requester)


def test_requestJob_thenCommit_roundTrips(
    client: SpotcheckClient, spotcheck: Any, node: Any, requester: Any, chain: Any
) -> None:
    job_id = client.request_job(spotcheck.model_id, [1, 2, 3, 4], node.address, 10, requester)
    spotcheck.job_manager.commitResult(job_id, [7, 8], sender=node)
    assert client.committed_output(job_id) == [7, 8]
