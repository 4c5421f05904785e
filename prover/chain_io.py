"""Thin typed wrappers over the node's contract calls (Ape), one method per protocol action.

Reads are retried with backoff (tenacity) on RPC failures and surface as :class:`ChainError`
after the last attempt; a revert of a view (an unknown model) is not retried. Every sending
method names its *intent* (``commitBatch:local:3``): :class:`prover.transactions.TxSender`
journals each signed transaction of an intent before broadcasting it, resumes it after a
restart (never a second transaction under a fresh nonce while the first may still be mined) and
replaces it with higher fees when it is stuck. ``dry_run`` estimates gas instead of sending (and
fails the same way the transaction would). Reverts surface as :class:`ChainError` carrying the
decoded error.

A concrete class where the challenger has a Protocol (``challenger.chain_io.ChainPort``): the
node's unit tests substitute duck-typed fakes for the few calls a phase makes, and everything
else runs against anvil, so a second declaration of every method would buy nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from prover.transactions import Mined, SentTx, TxSender
from spotcheck.chain import (
    BatchStatus,
    DisputeStatus,
    JobStatus,
    RegisteredModel,
    SpotcheckContracts,
    TxResult,
)
from spotcheck.errors import ChainError, RevertError, chain_failure, describe_revert, is_revert

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobView:
    model_id: bytes
    requester: str
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
    #: finalizeBatch needs ``now > final_after`` (raised by reveals) and no open claims
    final_after: int
    #: open leaf disputes + open leaf requests
    open_claims: int
    status: BatchStatus
    reserved: int


@dataclass(frozen=True)
class LeafRequestView:
    batch_id: int
    index: int
    node: str
    requester: str
    bond: int
    reveal_deadline: int
    dispute_deadline: int
    #: a spotcheck.chain.LeafRequestStatus value
    status: int


#: Not challenger.chain_io.DisputeView: the node reads the whole claim, the challenger its bond.
@dataclass(frozen=True)
class DisputeView:
    kind: int
    ref: int
    index: int
    job_id: int
    model_id: bytes
    node: str
    challenger: str
    input_hash: bytes
    output_hash: bytes
    proof_deadline: int
    status: DisputeStatus


@dataclass(frozen=True)
class StakeView:
    amount: int
    locked: int
    unbond_requested_at: int
    open_disputes: int
    free: int
    min_stake: int


class NodeChain:
    """The node's view of and actions on the Spotcheck contracts, from one account."""

    def __init__(
        self,
        contracts: SpotcheckContracts,
        account: Any,
        dry_run: bool = False,
        *,
        sender: TxSender | None = None,
        read_attempts: int = 4,
        read_backoff_s: float = 0.25,
    ) -> None:
        self.contracts = contracts
        self.account = account
        self.dry_run = dry_run
        self.sender = sender or TxSender(account)
        self.read_attempts = read_attempts
        self.read_backoff_s = read_backoff_s

    def _read(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` retried on RPC failures (not on reverts), as :class:`ChainError`."""
        retrying = Retrying(
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_exponential(multiplier=self.read_backoff_s, max=4),
            retry=retry_if_exception(lambda e: not is_revert(e) and not isinstance(e, ChainError)),
            reraise=True,
        )
        try:
            return retrying(call)
        except ChainError:
            raise
        except Exception as err:
            raise chain_failure(f"reading {what} failed", err) from err

    @property
    def address(self) -> str:
        return str(self.account.address)

    # -- reads ------------------------------------------------------------------------------

    def now(self) -> int:
        """Timestamp of the latest block (what the contracts compare deadlines with)."""
        from ape import chain

        return self._read("the head block", lambda: int(chain.blocks.head.timestamp))

    def block_number(self) -> int:
        from ape import chain

        return self._read("the block height", lambda: int(chain.blocks.height))

    def confirmed_nonce(self) -> int:
        """Transactions from this account already mined (the next nonce to be mined)."""
        return self._read("the nonce", lambda: int(self.account.nonce))

    def pending_nonce(self) -> int:
        from ape import chain

        return self._read(
            "the pending nonce",
            lambda: int(chain.provider.get_nonce(self.account.address, block_id="pending")),
        )

    def job(self, job_id: int) -> JobView:
        j = self._read(f"job {job_id}", lambda: self.contracts.job_manager.getJob(job_id))
        return JobView(
            bytes(j.modelId),
            str(j.requester),
            str(j.node),
            int(j.fee),
            bytes(j.inputHash),
            bytes(j.outputHash),
            int(j.commitDeadline),
            int(j.challengeDeadline),
            JobStatus(int(j.status)),
        )

    def batch(self, batch_id: int) -> BatchView:
        b = self._read(f"batch {batch_id}", lambda: self.contracts.job_manager.getBatch(batch_id))
        return BatchView(
            bytes(b.modelId),
            str(b.node),
            bytes(b.root),
            int(b.count),
            int(b.challengeDeadline),
            int(b.finalAfter),
            int(b.openClaims),
            BatchStatus(int(b.status)),
            int(b.reserved),
        )

    def dispute(self, dispute_id: bytes) -> DisputeView:
        d = self._read(
            f"dispute 0x{dispute_id.hex()}",
            lambda: self.contracts.dispute_manager.getDispute(dispute_id),
        )
        return DisputeView(
            int(d.kind),
            int(d.ref),
            int(d.index),
            int(d.jobId),
            bytes(d.modelId),
            str(d.node),
            str(d.challenger),
            bytes(d.inputHash),
            bytes(d.outputHash),
            int(d.proofDeadline),
            DisputeStatus(int(d.status)),
        )

    def model(self, model_id: bytes) -> RegisteredModel:
        try:
            m = self._read(
                f"model 0x{model_id.hex()}",
                lambda: self.contracts.model_registry.getModel(model_id),
            )
        except RevertError as err:
            reason = describe_revert(err)
            raise RevertError(
                f"model 0x{model_id.hex()} is not registered: {reason}", err.error
            ) from err
        return RegisteredModel.from_struct(model_id, m)

    def leaf_request(self, request_id: bytes) -> LeafRequestView:
        r = self._read(
            f"leaf request 0x{request_id.hex()}",
            lambda: self.contracts.dispute_manager.getLeafRequest(request_id),
        )
        return LeafRequestView(
            int(r.batchId),
            int(r.index),
            str(r.node),
            str(r.requester),
            int(r.bond),
            int(r.revealDeadline),
            int(r.disputeDeadline),
            int(r.status),
        )

    def price_of(self, model_id: bytes) -> int:
        """``priceOf(node, modelId)``: ``max(minFee, posted price)``."""
        jm = self.contracts.job_manager
        return self._read(
            f"the price of model 0x{model_id.hex()}",
            lambda: int(jm.priceOf(self.address, model_id)),
        )

    def posted_price(self, model_id: bytes) -> int:
        jm = self.contracts.job_manager
        return self._read(
            f"the posted price of model 0x{model_id.hex()}",
            lambda: int(jm.postedPrice(self.address, model_id)),
        )

    def stake(self) -> StakeView:
        sm = self.contracts.stake_manager

        def read() -> StakeView:
            s = sm.stakeOf(self.address)
            return StakeView(
                int(s.amount),
                int(s.locked),
                int(s.unbondRequestedAt),
                int(s.openDisputes),
                int(sm.freeStake(self.address)),
                int(sm.minStake()),
            )

        return self._read("the stake", read)

    def credits(self) -> tuple[int, int]:
        """(JobManager credits: fees and refunds, DisputeManager credits: bonds won)."""
        return self._read(
            "credits",
            lambda: (
                int(self.contracts.job_manager.credits(self.address)),
                int(self.contracts.dispute_manager.credits(self.address)),
            ),
        )

    def token_balance(self) -> int:
        return self._read(
            "the token balance", lambda: int(self.contracts.token.balanceOf(self.address))
        )

    def find_committed_batch(
        self, model_id: bytes, root: bytes, from_block: int
    ) -> tuple[int, int] | None:
        """(batchId, challengeDeadline) of a BatchCommitted by this node with this root."""
        found = self.committed_batch_log(model_id, root, from_block)
        return None if found is None else (found[0], found[1])

    def committed_batch_log(
        self, model_id: bytes, root: bytes, from_block: int
    ) -> tuple[int, int, int] | None:
        """(batchId, challengeDeadline, block number) of the BatchCommitted by this node with
        this root, as the chain's logs show it now (after a reorg: its new id)."""
        event = self.contracts.job_manager.BatchCommitted
        stop = self.block_number() + 1
        topics = {"node": self.address, "modelId": model_id}

        def scan() -> tuple[int, int, int] | None:
            for entry in event.range(max(from_block, 0), stop, search_topics=topics):
                args = entry.event_arguments
                if bytes(args["root"]) == root:
                    block = int(getattr(entry, "block_number", 0) or 0)
                    return int(args["batchId"]), int(args["challengeDeadline"]), block
            return None

        return self._read(f"BatchCommitted logs for root 0x{root.hex()}", scan)

    def finalized_batch_block(self, batch_id: int, from_block: int, to_block: int) -> int | None:
        """Block of the ``BatchFinalized`` log of ``batch_id`` in ``[from_block, to_block]``, as
        the chain's logs show it now (a reorg that re-mined the finalizeBatch: its new block);
        None if there is none (not finalized on this branch, or not in the RPC's logs yet)."""
        event = self.contracts.job_manager.BatchFinalized
        stop = to_block + 1
        topics = {"batchId": batch_id}

        def scan() -> int | None:
            found = list(event.range(max(from_block, 0), stop, search_topics=topics))
            return int(getattr(found[-1], "block_number", 0) or 0) if found else None

        return self._read(f"BatchFinalized logs of batch {batch_id}", scan)

    # -- writes -----------------------------------------------------------------------------

    def _send(self, method: Any, *args: Any, intent: str | None = None) -> TxResult:
        """Send (through the :class:`TxSender`) and return the mined transaction."""
        name = _method_name(method)
        if self.dry_run:
            try:
                gas = int(method.estimate_gas_cost(*args, sender=self.account))
            except Exception as err:
                raise chain_failure(f"{name} failed", err) from err
            return TxResult(None, gas_used=gas)
        mined = self.sender.send(intent or f"{name}:{self._oneshot()}", method, *args)
        receipt = mined.receipt
        fee = int(getattr(receipt, "total_fees_paid", 0) or 0)
        return TxResult(mined.tx_hash, gas_used=int(receipt.gas_used), fee_wei=fee, receipt=receipt)

    def _broadcast(
        self, method: Any, *args: Any, intent: str
    ) -> tuple[str | None, TxResult | None]:
        """Broadcast without waiting for the receipt (see :meth:`TxSender.broadcast`):
        (tx hash, the mined result if it is mined already, else None). Dry run: estimated."""
        if self.dry_run:
            return None, self._send(method, *args, intent=intent)
        out = self.sender.broadcast(intent, method, *args)
        if isinstance(out, SentTx):
            return out.tx_hash, None
        return out.tx_hash, self._result(out)

    def resend_dropped(self) -> int:
        """Broadcast again the node's journaled transactions the chain node dropped (a reorg;
        :meth:`TxSender.check_dropped`, at most once per ``drop_check_s``): how many."""
        return 0 if self.dry_run else self.sender.check_dropped()

    def outcome(self, intent: str) -> TxResult | None:
        """The mined transaction of a broadcast intent (ChainError if it reverted), or None."""
        mined = self.sender.poll(intent)
        return None if mined is None else self._result(mined)

    @staticmethod
    def _result(mined: Mined) -> TxResult:
        receipt = mined.receipt
        fee = int(getattr(receipt, "total_fees_paid", 0) or 0)
        return TxResult(mined.tx_hash, gas_used=int(receipt.gas_used), fee_wei=fee, receipt=receipt)

    _serial = 0

    @classmethod
    def _oneshot(cls) -> int:
        cls._serial += 1
        return cls._serial

    def commit_result(self, job_id: int, input_hash: bytes, output_q: Sequence[int]) -> TxResult:
        """``commitResult(jobId, inputHash, output)``: reverts ``InputHashMismatch`` if the job
        is not the one whose input the node answered (a reorg moved it)."""
        return self._send(
            self.contracts.job_manager.commitResult,
            job_id,
            input_hash,
            [int(v) for v in output_q],
            intent=f"commitResult:{job_id}",
        )

    def set_price(self, model_id: bytes, price: int) -> TxResult:
        return self._send(self.contracts.job_manager.setPrice, model_id, price)

    @staticmethod
    def reveal_intent(batch_id: int, index: int) -> str:
        return f"revealLeaf:{batch_id}:{index}"

    def broadcast_reveal(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_q: Sequence[int],
        output_q: Sequence[int],
        proof: Sequence[bytes],
    ) -> tuple[str | None, TxResult | None]:
        """``revealLeaf`` broadcast without waiting for its receipt (many reveals go out
        back-to-back, consecutive nonces, in one step): (tx hash, result if mined already)."""
        return self._broadcast(
            self.contracts.dispute_manager.revealLeaf,
            batch_id,
            index,
            job_id,
            [int(v) for v in input_q],
            [int(v) for v in output_q],
            list(proof),
            intent=self.reveal_intent(batch_id, index),
        )

    def reveal_leaf(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_q: Sequence[int],
        output_q: Sequence[int],
        proof: Sequence[bytes],
    ) -> TxResult:
        return self._send(
            self.contracts.dispute_manager.revealLeaf,
            batch_id,
            index,
            job_id,
            [int(v) for v in input_q],
            [int(v) for v in output_q],
            list(proof),
            intent=f"revealLeaf:{batch_id}:{index}",
        )

    def commit_batch(
        self, model_id: bytes, root: bytes, count: int, uri: str, *, intent: str | None = None
    ) -> tuple[TxResult, int | None, int | None]:
        """Commit a batch root; returns the tx and (batchId, challengeDeadline) from its event.
        Approves JobManager first for the batch's check deposit (``count * leafCheckFee``,
        paid into the CheckPool at commit) when the allowance is short."""
        jm = self.contracts.job_manager
        deposit = self.batch_check_deposit(model_id, count)
        if deposit > 0 and int(self.contracts.token.allowance(self.address, jm.address)) < deposit:
            self._send(
                self.contracts.token.approve,
                jm.address,
                deposit,
                # The amount is in the intent: a retry after the leaf fee changed approves the
                # new deposit instead of finding the old approval journaled (audit A6-7).
                intent=None if intent is None else f"approveDeposit:{intent}:{deposit}",
            )
        tx = self._send(jm.commitBatch, model_id, root, count, uri, intent=intent)
        if tx.receipt is None:
            return tx, None, None
        for entry in tx.receipt.decode_logs(jm.BatchCommitted):
            args = entry.event_arguments
            if bytes(args["root"]) == root:
                return tx, int(args["batchId"]), int(args["challengeDeadline"])
        raise ChainError(f"commitBatch {tx.tx_hash} emitted no BatchCommitted for our root")

    def batch_check_deposit(self, model_id: bytes, count: int) -> int:
        """What ``commitBatch`` of ``count`` leaves of ``model_id`` pays into the CheckPool now:
        ``count * leafCheckFee(model_id)`` (0 without a pool). A cost of the batch: the node
        gets back the deposits of the leaves nobody claimed once the batch is final."""
        if self.contracts.deployment.check_pool is None:
            return 0
        return count * int(self.contracts.check_pool.leafCheckFee(model_id))

    def refund_batch_deposit(self, batch_id: int) -> TxResult:
        """Take back a final batch's unclaimed leaf deposits (``CheckPool.refundBatchDeposit``)."""
        pool = self.contracts.check_pool  # ChainError without one
        return self._send(pool.refundBatchDeposit, batch_id, intent=f"refundDeposit:{batch_id}")

    def finalize(self, job_id: int) -> TxResult:
        return self._send(self.contracts.job_manager.finalize, job_id, intent=f"finalize:{job_id}")

    def finalize_batch(self, batch_id: int) -> TxResult:
        """Finalize the batch, then take back its unclaimed leaf deposits if it paid any (a
        failed refund is logged, not raised: anyone may send ``refundBatchDeposit`` later)."""
        tx = self._send(
            self.contracts.job_manager.finalizeBatch, batch_id, intent=f"finalizeBatch:{batch_id}"
        )
        self.refund_deposit_if_due(batch_id)
        return tx

    def refund_deposit_if_due(self, batch_id: int) -> None:
        """Take back a final batch's unclaimed leaf deposits if it paid any and nobody took them
        back yet (also when someone else finalized it, or the node restarted in between). A
        failure is logged, not raised: anyone may send ``refundBatchDeposit`` later."""
        if self.dry_run or self.contracts.deployment.check_pool is None:
            return
        try:
            d = self.contracts.check_pool.getBatchDeposit(batch_id)
            if d.recorded and not d.refunded and int(d.perLeaf) > 0:
                self.refund_batch_deposit(batch_id)
        except ChainError as err:
            log.warning("refundBatchDeposit(%d) failed: %s", batch_id, err)

    def defend(
        self,
        dispute_id: bytes,
        proof: bytes,
        instances: Sequence[int],
        committed_output: Sequence[int],
    ) -> TxResult:
        return self._send(
            self.contracts.dispute_manager.defend,
            dispute_id,
            proof,
            [int(v) for v in instances],
            [int(v) for v in committed_output],
            intent=f"defend:0x{dispute_id.hex()}",
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
