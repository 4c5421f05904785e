"""The dApp side: request on-chain jobs and read outputs only once they are final and verified.

An output is returned only if (1) ``JobManager.isJobFinal(jobId)`` — finalized after the
challenge window or proven by a valid defence — and (2) the output emitted in
``ResultCommitted`` hashes to the ``outputHash`` stored for the job (so an RPC node that
serves a forged event is caught). An invalidated job (the node failed to defend a dispute) is
an error, never an output. ``wait_for_output`` polls until final or a timeout; with
``finalize=True`` it also calls ``finalize`` once the challenge window has passed (anyone may).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spotcheck.chain import JobStatus, SpotcheckContracts
from spotcheck.encoding import dequantize, output_hash
from spotcheck.errors import ChainError

log = logging.getLogger(__name__)


class JobNotFinalError(ChainError, TimeoutError):
    """The job did not become final before the timeout (or is not final yet)."""


class JobInvalidError(ChainError):
    """The job was invalidated (its node failed to defend a dispute) or cancelled."""


@dataclass(frozen=True)
class VerifiedOutput:
    job_id: int
    model_id: bytes
    output_q: tuple[int, ...]
    output_scale: int
    output_hash: bytes

    @property
    def values(self) -> list[float]:
        """The output dequantized at the model's output scale."""
        return [float(v) for v in dequantize(list(self.output_q), self.output_scale)]


def check_committed_output(output_q: Sequence[int], stored_hash: bytes, job_id: int) -> None:
    """Raise ChainError unless ``output_q`` hashes to the job's stored ``outputHash``."""
    actual = output_hash(output_q)
    if actual != bytes(stored_hash):
        raise ChainError(
            f"job {job_id}: emitted output hashes to 0x{actual.hex()}, "
            f"chain stores 0x{bytes(stored_hash).hex()}"
        )


class SpotcheckClient:
    """Thin typed client over the deployed contracts (Ape instances)."""

    def __init__(self, contracts: SpotcheckContracts, clock: Callable[[], float] = time.monotonic):
        self.contracts = contracts
        self._clock = clock

    def request_job(
        self, model_id: bytes, input_q: Sequence[int], node: str, fee: int, sender: Any
    ) -> int:
        """Escrow ``fee`` (needs allowance); request ``model_id`` on ``input_q`` from ``node``."""
        model = self.contracts.model_registry.getModel(model_id)
        if len(input_q) != int(model.inputLen):
            raise ChainError(f"input has {len(input_q)} elements; model expects {model.inputLen}")
        receipt = self.contracts.job_manager.requestJob(
            model_id, list(input_q), node, fee, sender=sender
        )
        return int(receipt.return_value)

    def committed_output(self, job_id: int) -> list[int]:
        """The output the node emitted in ``ResultCommitted`` (not yet checked)."""
        jm = self.contracts.job_manager
        from ape import chain

        start = self.contracts.deployment.deploy_block
        logs = list(
            jm.ResultCommitted.range(
                start, chain.blocks.height + 1, search_topics={"jobId": job_id}
            )
        )
        if not logs:
            raise JobNotFinalError(f"job {job_id} has no committed result yet")
        return [int(v) for v in logs[-1].output]

    def verified_output(self, job_id: int) -> VerifiedOutput:
        """The job's output if it is final on-chain and matches the stored hash; else raise."""
        jm = self.contracts.job_manager
        try:
            job = jm.getJob(job_id)
        except Exception as err:  # UnknownJob revert
            raise ChainError(f"job {job_id} does not exist") from err
        status = JobStatus(int(job.status))
        if status in (JobStatus.INVALID, JobStatus.CANCELLED):
            raise JobInvalidError(f"job {job_id} is {status.name.lower()}: no usable output")
        if status == JobStatus.NONE:
            raise ChainError(f"job {job_id} does not exist")
        if not jm.isJobFinal(job_id):
            raise JobNotFinalError(f"job {job_id} is not final (status {status.name.lower()})")
        output_q = self.committed_output(job_id)
        check_committed_output(output_q, bytes(job.outputHash), job_id)
        model = self.contracts.model_registry.getModel(job.modelId)
        return VerifiedOutput(
            job_id=job_id,
            model_id=bytes(job.modelId),
            output_q=tuple(output_q),
            output_scale=int(model.outputScale),
            output_hash=bytes(job.outputHash),
        )

    def _try_finalize(self, job_id: int, sender: Any) -> None:
        from ape import chain

        jm = self.contracts.job_manager
        job = jm.getJob(job_id)
        # The head block's timestamp, not the wall clock: calls and gas estimates run on it,
        # and a chain that mines only on demand (anvil) does not move it while idle.
        if JobStatus(int(job.status)) == JobStatus.COMMITTED and int(
            chain.blocks.head.timestamp
        ) > int(job.challengeDeadline):
            try:
                jm.finalize(job_id, sender=sender)
            except Exception as err:  # someone else finalized first, or a dispute opened
                log.info("finalize(%d) not sent: %s", job_id, err)

    def wait_for_output(
        self,
        job_id: int,
        timeout: float,
        poll_interval: float = 1.0,
        finalize_sender: Any | None = None,
    ) -> VerifiedOutput:
        """Poll until :meth:`verified_output` succeeds; JobNotFinalError after ``timeout`` s."""
        deadline = self._clock() + timeout
        while True:
            try:
                return self.verified_output(job_id)
            except JobNotFinalError:
                if self._clock() >= deadline:
                    raise JobNotFinalError(f"job {job_id} not final after {timeout:g} s") from None
            if finalize_sender is not None:
                self._try_finalize(job_id, finalize_sender)
            time.sleep(poll_interval)
