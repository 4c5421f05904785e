"""The dApp side: request on-chain jobs and read outputs only for its own, final requests.

An output is bound to its question (``../shared/DESIGN.md``, v2). :meth:`SpotcheckClient.
request_job` returns a :class:`JobRequest`: who asked (the requester), the node asked, the model
and the hash of the input. :meth:`SpotcheckClient.verified_output` takes that request and
returns an output only if

1. the job on chain is that request: same requester, node, ``modelId`` and ``inputHash`` (a job
   someone else requested, for any model or input, is refused with :class:`JobMismatchError`,
   however final and correct it is);
2. ``JobManager.isJobFinal(jobId)``: finalized after the challenge window, or proven by a
   valid defence;
3. the output emitted in ``ResultCommitted`` hashes to the stored ``outputHash`` (an RPC node
   that serves a forged event is caught);
4. the job's input (from ``JobRequested``, checked against the stored ``inputHash``) is inside
   the model's domain ``[inLo, inHi]``: challengers never dispute an input outside it, so such
   an output would be unchecked however final (``requestJob`` refuses such inputs, and a
   model's domain never changes, so this holds for every job; it is checked all the same).

:meth:`SpotcheckClient.check_receipt` does the same for a batched output a node served
off-chain: :func:`spotcheck.receipts.check_receipt_onchain` with this deployment's JobManager
and ModelRegistry (``ok`` requires the input in the model's domain too).

An invalidated job (its node failed to defend a dispute) or a cancelled one is an error, never
an output. ``wait_for_output`` polls until final or a timeout; with ``finalize_sender`` it
also calls ``finalize`` once the challenge window has passed (anyone may).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spotcheck.chain import JobStatus, SpotcheckContracts
from spotcheck.encoding import dequantize, from_hex, input_hash, output_hash
from spotcheck.errors import ChainError, EncodingError, InputError

log = logging.getLogger(__name__)


class JobNotFinalError(ChainError, TimeoutError):
    """The job did not become final before the timeout (or is not final yet)."""


class JobInvalidError(ChainError):
    """The job was invalidated (its node failed to defend a dispute) or cancelled."""


class JobMismatchError(ChainError, ValueError):
    """The job on chain is not the caller's request (requester, node, model or input)."""


class JobOutOfDomainError(JobInvalidError):
    """The job's input is outside the model's domain: no challenger disputes it, so its
    output is unchecked (a :class:`JobInvalidError`: never use the output)."""


@dataclass(frozen=True)
class JobRequest:
    """The question a dApp asked on chain: the only job whose output it may accept."""

    job_id: int
    requester: str
    node: str
    model_id: bytes
    input_hash: bytes

    @classmethod
    def of(
        cls, job_id: int, requester: str, node: str, model_id: bytes, input_q: Sequence[int]
    ) -> JobRequest:
        """The request for ``input_q`` (hashed here, as ``requestJob`` hashes it)."""
        return cls(int(job_id), str(requester), str(node), bytes(model_id), input_hash(input_q))

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "requester": self.requester,
            "node": self.node,
            "modelId": "0x" + self.model_id.hex(),
            "inputHash": "0x" + self.input_hash.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRequest:
        try:
            return cls(
                job_id=int(data["jobId"]),
                requester=str(data["requester"]),
                node=str(data["node"]),
                model_id=from_hex(data["modelId"]),
                input_hash=from_hex(data["inputHash"]),
            )
        except (KeyError, ValueError) as err:
            raise EncodingError(f"invalid job request record: {err}") from err


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


def check_job_matches(request: JobRequest, job: Any) -> None:
    """Raise :class:`JobMismatchError` unless the on-chain ``job`` is ``request``."""
    mismatches = []
    if str(job.requester).lower() != request.requester.lower():
        mismatches.append(f"requester {job.requester} (you are {request.requester})")
    if str(job.node).lower() != request.node.lower():
        mismatches.append(f"node {job.node} (you asked {request.node})")
    if bytes(job.modelId) != request.model_id:
        mismatches.append(
            f"model 0x{bytes(job.modelId).hex()} (you asked 0x{request.model_id.hex()})"
        )
    if bytes(job.inputHash) != request.input_hash:
        mismatches.append(
            f"input hash 0x{bytes(job.inputHash).hex()} (yours 0x{request.input_hash.hex()})"
        )
    if mismatches:
        raise JobMismatchError(
            f"job {request.job_id} is not your request: " + "; ".join(mismatches)
        )


class SpotcheckClient:
    """Thin typed client over the deployed contracts (Ape instances)."""

    def __init__(self, contracts: SpotcheckContracts, clock: Callable[[], float] = time.monotonic):
        self.contracts = contracts
        self._clock = clock

    def price_of(self, node: str, model_id: bytes) -> int:
        """``JobManager.priceOf(node, modelId)``: the least fee ``requestJob`` accepts."""
        return int(self.contracts.job_manager.priceOf(node, model_id))

    def check_request(self, model_id: bytes, input_q: Sequence[int], node: str, fee: int) -> None:
        """What ``requestJob`` would revert on, checked before anything is sent: the model,
        the input's length and domain ``[inLo, inHi]``, and ``fee >= priceOf(node, model)``."""
        try:
            model = self.contracts.model_registry.getModel(model_id)
        except Exception as err:  # UnknownModel revert
            raise ChainError(f"model 0x{bytes(model_id).hex()} is not registered") from err
        if not bool(model.active):
            raise ChainError(f"model 0x{bytes(model_id).hex()} is not active")
        if len(input_q) != int(model.inputLen):
            raise InputError(
                f"input has {len(input_q)} elements; model expects {int(model.inputLen)}"
            )
        lo, hi = int(model.inLo), int(model.inHi)
        for i, v in enumerate(input_q):
            if not lo <= int(v) <= hi:
                raise InputError(f"input[{i}] = {v} is outside the model's domain [{lo}, {hi}]")
        price = self.price_of(node, model_id)
        if fee < price:
            raise ChainError(f"fee {fee} is below node {node}'s price {price} for this model")

    def request_job(
        self, model_id: bytes, input_q: Sequence[int], node: str, fee: int, sender: Any
    ) -> JobRequest:
        """Escrow ``fee`` (needs allowance); request ``model_id`` on ``input_q`` from ``node``.

        Returns the request: keep it, it is what :meth:`verified_output` checks the job against.
        """
        self.check_request(model_id, input_q, node, fee)
        receipt = self.contracts.job_manager.requestJob(
            model_id, list(input_q), node, fee, sender=sender
        )
        return JobRequest.of(
            int(receipt.return_value), str(sender.address), node, model_id, input_q
        )

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

    def requested_input(self, job_id: int, stored_hash: bytes) -> list[int]:
        """The input emitted in ``JobRequested`` for ``job_id``, checked against the job's
        stored ``inputHash`` (ChainError if missing or forged)."""
        jm = self.contracts.job_manager
        from ape import chain

        start = self.contracts.deployment.deploy_block
        logs = list(
            jm.JobRequested.range(start, chain.blocks.height + 1, search_topics={"jobId": job_id})
        )
        if not logs:
            raise ChainError(f"job {job_id} has no JobRequested event")
        input_q = [int(v) for v in logs[-1].input]
        if input_hash(input_q) != bytes(stored_hash):
            raise ChainError(
                f"job {job_id}: emitted input hashes to 0x{input_hash(input_q).hex()}, "
                f"chain stores 0x{bytes(stored_hash).hex()}"
            )
        return input_q

    def check_receipt(
        self,
        receipt: Any,
        *,
        node: str,
        model_id: bytes | str,
        input_q: Sequence[int],
        output_q: Sequence[int],
        batch_id: int,
        index: int,
        proof: Sequence[bytes | str],
    ) -> Any:
        """:func:`spotcheck.receipts.check_receipt_onchain` on this deployment (its JobManager
        and ModelRegistry). Use the output only if the result's ``ok`` holds."""
        from spotcheck.receipts import check_receipt_onchain

        return check_receipt_onchain(
            receipt,
            node=node,
            model_id=model_id,
            input_q=input_q,
            output_q=output_q,
            batch_id=batch_id,
            index=index,
            proof=proof,
            job_manager=self.contracts.job_manager,
            registry=self.contracts.model_registry,
        )

    def verified_output(self, request: JobRequest) -> VerifiedOutput:
        """The output of ``request`` if the job on chain is that request, is final, and its
        emitted output matches the stored hash; else raise."""
        job_id = request.job_id
        jm = self.contracts.job_manager
        try:
            job = jm.getJob(job_id)
        except Exception as err:  # UnknownJob revert
            raise ChainError(f"job {job_id} does not exist") from err
        status = JobStatus(int(job.status))
        if status == JobStatus.NONE:
            raise ChainError(f"job {job_id} does not exist")
        check_job_matches(request, job)
        if status in (JobStatus.INVALID, JobStatus.CANCELLED):
            raise JobInvalidError(f"job {job_id} is {status.name.lower()}: no usable output")
        if not jm.isJobFinal(job_id):
            raise JobNotFinalError(f"job {job_id} is not final (status {status.name.lower()})")
        output_q = self.committed_output(job_id)
        check_committed_output(output_q, bytes(job.outputHash), job_id)
        model = self.contracts.model_registry.getModel(job.modelId)
        input_q = self.requested_input(job_id, bytes(job.inputHash))
        lo, hi = int(model.inLo), int(model.inHi)
        outside = next((i for i, v in enumerate(input_q) if not lo <= v <= hi), None)
        if outside is not None:
            raise JobOutOfDomainError(
                f"job {job_id}: input[{outside}] = {input_q[outside]} is outside the model's "
                f"domain [{lo}, {hi}]: no challenger checks it, do not use its output"
            )
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
        request: JobRequest,
        timeout: float,
        poll_interval: float = 1.0,
        finalize_sender: Any | None = None,
    ) -> VerifiedOutput:
        """Poll until :meth:`verified_output` succeeds; JobNotFinalError after ``timeout`` s."""
        deadline = self._clock() + timeout
        while True:
            try:
                return self.verified_output(request)
            except JobNotFinalError:
                if self._clock() >= deadline:
                    raise JobNotFinalError(
                        f"job {request.job_id} not final after {timeout:g} s"
                    ) from None
            if finalize_sender is not None:
                self._try_finalize(request.job_id, finalize_sender)
            time.sleep(poll_interval)
