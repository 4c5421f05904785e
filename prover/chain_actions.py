"""Thin typed wrappers over the node's contract calls (Ape), one method per protocol action.

Every sending method takes an optional ``nonce``: the service records the nonce with its
intent before sending, and a retry after a crash re-uses it, so the same transaction can be
mined at most once. ``dry_run`` estimates gas instead of sending (and fails the same way the
transaction would). Reverts surface as :class:`ChainError` carrying the decoded error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spotcheck.chain import BatchStatus, DisputeStatus, JobStatus, SpotcheckContracts
from spotcheck.errors import ChainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TxResult:
    """A mined transaction (or, in a dry run, its gas estimate with ``tx_hash`` None)."""

    tx_hash: str | None
    gas_used: int
    fee_wei: int
    receipt: Any = None

    @property
    def dry_run(self) -> bool:
        return self.tx_hash is None


@dataclass(frozen=True)
class JobView:
    model_id: bytes
    node: str
    fee: int
    input_hash: bytes
    output_hash: bytes
    commit_deadline: int
    challenge_deadline: int
    status: JobStatus


@dataclass(frozen=True)
class BatchView:
    model_id: bytes
    node: str
    root: bytes
    count: int
    challenge_deadline: int
    open_disputes: int
    status: BatchStatus


@dataclass(frozen=True)
class DisputeView:
    kind: int
    ref: int
    job_id: int
    model_id: bytes
    node: str
    challenger: str
    input_hash: bytes
    output_hash: bytes
    proof_deadline: int
    status: DisputeStatus


@dataclass(frozen=True)
class ModelView:
    input_len: int
    output_len: int
    input_scale: int
    output_scale: int
    tau: int
    challenge_window: int
    proof_window: int
    slash_amount: int
    active: bool


@dataclass(frozen=True)
class StakeView:
    amount: int
    locked: int
    unbond_requested_at: int
    open_disputes: int
    free: int
    min_stake: int


def _describe(err: Exception) -> str:
    name = type(err).__name__
    inputs = getattr(err, "inputs", None)
    message = getattr(err, "message", None) or str(err)
    return f"{name}{inputs}" if inputs else f"{name}: {message}"


class NodeChain:
    """The node's view of and actions on the Spotcheck contracts, from one account."""

    def __init__(self, contracts: SpotcheckContracts, account: Any, dry_run: bool = False) -> None:
        self.contracts = contracts
        self.account = account
        self.dry_run = dry_run

    @property
    def address(self) -> str:
        return str(self.account.address)

    # -- reads ------------------------------------------------------------------------------

    def now(self) -> int:
        """Timestamp of the latest block (what the contracts compare deadlines with)."""
        from ape import chain

        return int(chain.blocks.head.timestamp)

    def block_number(self) -> int:
        from ape import chain

        return int(chain.blocks.height)

    def confirmed_nonce(self) -> int:
        """Transactions from this account already mined (the next nonce to be mined)."""
        return int(self.account.nonce)

    def pending_nonce(self) -> int:
        from ape import chain

        return int(chain.provider.get_nonce(self.account.address, block_id="pending"))

    def job(self, job_id: int) -> JobView:
        j = self.contracts.job_manager.getJob(job_id)
        return JobView(
            bytes(j.modelId),
            str(j.node),
            int(j.fee),
            bytes(j.inputHash),
            bytes(j.outputHash),
            int(j.commitDeadline),
            int(j.challengeDeadline),
            JobStatus(int(j.status)),
        )

    def batch(self, batch_id: int) -> BatchView:
        b = self.contracts.job_manager.getBatch(batch_id)
        return BatchView(
            bytes(b.modelId),
            str(b.node),
            bytes(b.root),
            int(b.count),
            int(b.challengeDeadline),
            int(b.openDisputes),
            BatchStatus(int(b.status)),
        )

    def dispute(self, dispute_id: bytes) -> DisputeView:
        d = self.contracts.dispute_manager.getDispute(dispute_id)
        return DisputeView(
            int(d.kind),
            int(d.ref),
            int(d.jobId),
            bytes(d.modelId),
            str(d.node),
            str(d.challenger),
            bytes(d.inputHash),
            bytes(d.outputHash),
            int(d.proofDeadline),
            DisputeStatus(int(d.status)),
        )

    def model(self, model_id: bytes) -> ModelView:
        try:
            m = self.contracts.model_registry.getModel(model_id)
        except Exception as err:  # UnknownModel revert
            reason = _describe(err)
            raise ChainError(f"model 0x{model_id.hex()} is not registered: {reason}") from err
        return ModelView(
            int(m.inputLen),
            int(m.outputLen),
            int(m.inputScale),
            int(m.outputScale),
            int(m.tau),
            int(m.challengeWindow),
            int(m.proofWindow),
            int(m.slashAmount),
            bool(m.active),
        )

    def stake(self) -> StakeView:
        sm = self.contracts.stake_manager
        s = sm.stakeOf(self.address)
        return StakeView(
            int(s.amount),
            int(s.locked),
            int(s.unbondRequestedAt),
            int(s.openDisputes),
            int(sm.freeStake(self.address)),
            int(sm.minStake()),
        )

    def credits(self) -> tuple[int, int]:
        """(JobManager credits: fees and refunds, DisputeManager credits: bonds won)."""
        return (
            int(self.contracts.job_manager.credits(self.address)),
            int(self.contracts.dispute_manager.credits(self.address)),
        )

    def token_balance(self) -> int:
        return int(self.contracts.token.balanceOf(self.address))

    def find_committed_batch(
        self, model_id: bytes, root: bytes, from_block: int
    ) -> tuple[int, int] | None:
        """(batchId, challengeDeadline) of a BatchCommitted by this node with this root."""
        event = self.contracts.job_manager.BatchCommitted
        stop = self.block_number() + 1
        topics = {"node": self.address, "modelId": model_id}
        for entry in event.range(max(from_block, 0), stop, search_topics=topics):
            args = entry.event_arguments
            if bytes(args["root"]) == root:
                return int(args["batchId"]), int(args["challengeDeadline"])
        return None

    # -- writes -----------------------------------------------------------------------------

    def _send(self, method: Any, *args: Any, nonce: int | None = None) -> TxResult:
        kwargs: dict[str, Any] = {"sender": self.account}
        if nonce is not None:
            kwargs["nonce"] = nonce
        try:
            if self.dry_run:
                gas = int(method.estimate_gas_cost(*args, sender=self.account))
                return TxResult(None, gas, 0)
            receipt = method(*args, **kwargs)
        except Exception as err:  # Ape's ContractLogicError and friends: wrap at the boundary
            raise ChainError(f"{_method_name(method)} failed: {_describe(err)}") from err
        fee = int(getattr(receipt, "total_fees_paid", 0) or 0)
        return TxResult(_txhash(receipt.txn_hash), int(receipt.gas_used), fee, receipt)

    def commit_result(
        self, job_id: int, output_q: Sequence[int], nonce: int | None = None
    ) -> TxResult:
        return self._send(
            self.contracts.job_manager.commitResult, job_id, [int(v) for v in output_q], nonce=nonce
        )

    def commit_batch(
        self, model_id: bytes, root: bytes, count: int, uri: str, nonce: int | None = None
    ) -> tuple[TxResult, int | None, int | None]:
        """Commit a batch root; returns the tx and (batchId, challengeDeadline) from its event."""
        jm = self.contracts.job_manager
        tx = self._send(jm.commitBatch, model_id, root, count, uri, nonce=nonce)
        if tx.receipt is None:
            return tx, None, None
        for entry in tx.receipt.decode_logs(jm.BatchCommitted):
            args = entry.event_arguments
            if bytes(args["root"]) == root:
                return tx, int(args["batchId"]), int(args["challengeDeadline"])
        raise ChainError(f"commitBatch {tx.tx_hash} emitted no BatchCommitted for our root")

    def finalize(self, job_id: int) -> TxResult:
        return self._send(self.contracts.job_manager.finalize, job_id)

    def finalize_batch(self, batch_id: int) -> TxResult:
        return self._send(self.contracts.job_manager.finalizeBatch, batch_id)

    def defend(
        self,
        dispute_id: bytes,
        proof: bytes,
        instances: Sequence[int],
        committed_output: Sequence[int],
        nonce: int | None = None,
    ) -> TxResult:
        return self._send(
            self.contracts.dispute_manager.defend,
            dispute_id,
            proof,
            [int(v) for v in instances],
            [int(v) for v in committed_output],
            nonce=nonce,
        )

    def approve_stake(self, amount: int) -> TxResult | None:
        """Approve StakeManager for ``amount`` if the allowance is short (None if not needed)."""
        token, sm = self.contracts.token, self.contracts.stake_manager
        if int(token.allowance(self.address, sm.address)) >= amount:
            return None
        return self._send(token.approve, sm.address, amount)

    def add_stake(self, amount: int) -> TxResult:
        return self._send(self.contracts.stake_manager.stake, amount)

    def request_unbond(self) -> TxResult:
        return self._send(self.contracts.stake_manager.requestUnbond)

    def withdraw_stake(self) -> TxResult:
        return self._send(self.contracts.stake_manager.withdrawStake)

    def withdraw_credits(self) -> list[TxResult]:
        """Withdraw fees (JobManager) and bonds won (DisputeManager), whichever are non-zero."""
        jm_credits, dm_credits = self.credits()
        out: list[TxResult] = []
        if jm_credits:
            out.append(self._send(self.contracts.job_manager.withdrawCredits))
        if dm_credits:
            out.append(self._send(self.contracts.dispute_manager.withdrawCredits))
        return out


def _method_name(method: Any) -> str:
    abis = getattr(method, "abis", None)
    return str(abis[0].name) if abis else str(getattr(method, "__name__", "transaction"))


def _txhash(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text
