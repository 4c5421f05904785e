"""A manual dispute of one on-chain job or one batch leaf (``spotcheck challenger dispute``).

Read what the node committed (the job's ResultCommitted, or the leaf from the batch's listing
checked against the committed root), re-run it with the configured model files exactly as the
service does (``challenger.verdict.check_output``), and say what the verdict is. Sending is a
separate, explicit step (:func:`send`): the command asks for ``--yes`` first, and refuses to
send for a job whose output matches (the bond would be lost to a valid proof), a job outside
its challenge window, an input outside the model's domain (no proof exists for it), or a job
someone already disputed.

A manual dispute is not recorded in the service's database: a running challenger adopts it
when it samples the same job (``_adopt_existing``), and anyone may settle it after the proof
deadline (``settle``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from challenger.batches import BatchClient, domain_of
from challenger.chain_io import ApeChain
from challenger.store import BatchRow, BatchState
from challenger.verdict import Check, Reexecutor, check_output
from spotcheck.chain import DisputeStatus, JobKind, JobStatus, RegisteredModel, TxResult
from spotcheck.encoding import batch_leaf_key, input_hash, onchain_job_key
from spotcheck.errors import InputError
from verifier.domain import in_domain


@dataclass(frozen=True)
class Target:
    """One commitment to judge: what the node committed and where a dispute must point."""

    label: str
    kind: JobKind
    job_id: int
    model_id: bytes
    node: str
    input_q: list[int]
    output_q: list[int]
    output_hash: bytes
    challenge_deadline: int
    batch_id: int | None = None
    index: int | None = None
    merkle_proof: list[bytes] | None = None

    @property
    def key(self) -> bytes:
        """The dispute id (``onchainJobKey`` / ``batchLeafKey``)."""
        if self.kind is JobKind.BATCH:
            assert self.batch_id is not None and self.index is not None
            return batch_leaf_key(self.batch_id, self.index)
        return onchain_job_key(self.job_id)


def onchain_target(chain: ApeChain, job_id: int) -> Target:
    """On-chain job ``job_id`` as committed (``InputError`` if it is not committed)."""
    job = chain.job(job_id)
    if job.status is not JobStatus.COMMITTED:
        raise InputError(
            f"job {job_id} is {job.status.name.lower()}: only a committed job (not yet "
            "disputed or final) can be disputed"
        )
    found = chain.request_input(job_id, before_block=job.commit_block or None)
    output_q = chain.committed_output(job_id, at_block=job.commit_block or None)
    if found is None or output_q is None:
        raise InputError(f"job {job_id}: its JobRequested or ResultCommitted event is not found")
    return Target(
        label=f"job {job_id}",
        kind=JobKind.ONCHAIN,
        job_id=job_id,
        model_id=job.model_id,
        node=job.node,
        input_q=found[1],
        output_q=output_q,
        output_hash=job.output_hash,
        challenge_deadline=job.challenge_deadline,
    )


def leaf_target(chain: ApeChain, batch_id: int, index: int, client: BatchClient) -> Target:
    """Leaf ``index`` of batch ``batch_id``, from the node's listing checked against the root
    (a ``ListingError`` if the node does not serve it: request the leaf on chain instead)."""
    b = chain.batch(batch_id)
    if b.count == 0:
        raise InputError(f"batch {batch_id} is unknown")
    if not 0 <= index < b.count:
        raise InputError(f"batch {batch_id} has {b.count} leaves; index {index} is not one")
    row = BatchRow(
        batch_id, b.model_id, b.node, b.root, b.count, b.uri, b.commit_block,
        b.challenge_deadline, BatchState.SEEN, 0, None,
    )  # fmt: skip
    fetched = client.fetch(row, domain_of(chain.model(b.model_id)))
    leaf = fetched.leaves[index]
    return Target(
        label=f"batch {batch_id} leaf {index} (job {leaf.job_id})",
        kind=JobKind.BATCH,
        job_id=leaf.job_id,
        model_id=b.model_id,
        node=b.node,
        input_q=leaf.input_q,
        output_q=leaf.output_q,
        output_hash=leaf.output_hash,
        challenge_deadline=b.challenge_deadline,
        batch_id=batch_id,
        index=index,
        merkle_proof=fetched.tree.proof(index),
    )


def outside_domain(target: Target, model: RegisteredModel) -> str | None:
    i = in_domain(list(target.input_q), model.in_lo, model.in_hi)
    if i is None:
        return None
    return f"input[{i}] = {target.input_q[i]} outside the domain [{model.in_lo}, {model.in_hi}]"


def judge(target: Target, model: RegisteredModel, reexec: Reexecutor, screen: bool) -> Check:
    """The service's verdict on ``target`` (a mismatch is a result, not an exception)."""
    return check_output(reexec, target.input_q, target.output_q, model.tau, screen=screen)


def refusal(chain: ApeChain, target: Target, model: RegisteredModel, check: Check) -> str | None:
    """Why this dispute must not be sent (None: it may)."""
    if not check.disputable:
        return f"the committed output matches the re-run ({check.reason}): a dispute would lose"
    outside = outside_domain(target, model)
    if outside is not None:
        return f"not disputable: {outside} (no proof exists for it)"
    now = chain.timestamp()
    if now > target.challenge_deadline:
        return f"the challenge window closed at {target.challenge_deadline} (now {now})"
    d = chain.dispute(target.key)
    if d.status is not DisputeStatus.NONE:
        return f"already disputed by {d.challenger} ({d.status.name.lower()})"
    return None


def send(chain: ApeChain, target: Target, bond: int) -> TxResult:
    """``openDispute`` / ``openBatchDispute`` (a revert raises a ChainError naming the error)."""
    if target.kind is JobKind.ONCHAIN:
        return chain.open_dispute(target.job_id, target.output_hash, bond)
    assert target.batch_id is not None and target.index is not None
    proof: Sequence[bytes] = target.merkle_proof or []
    return chain.open_batch_dispute(
        target.batch_id,
        target.index,
        target.job_id,
        input_hash(target.input_q),
        target.output_hash,
        proof,
        bond,
    )
