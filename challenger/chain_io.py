"""What the challenger needs from the chain, as a small typed port, and its Ape implementation.

The service logic (``challenger.service``) talks to :class:`ChainPort` only, so its state
machine is tested without a chain and runs on anvil or any EVM network through
:class:`ApeChain`. Reads retry with exponential backoff (tenacity); transactions are never
retried blindly: a failed send raises :class:`ChainError` and the service re-reads the chain
before deciding again (a second ``openDispute`` could only revert, but it would waste gas).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from spotcheck.chain import (
    BatchStatus,
    ClaimStatus,
    DisputeStatus,
    JobStatus,
    LeafRequestStatus,
    RegisteredModel,
    TxResult,
)
from spotcheck.encoding import batch_leaf_key, from_hex, onchain_job_key
from spotcheck.errors import ChainError, RevertError, describe_revert, revert_name
from spotcheck.vrf import G1Point

log = logging.getLogger(__name__)

T = TypeVar("T")
ZERO_ADDRESS = "0x" + "00" * 20
#: Bonds approved at once when the allowance is short (see ApeChain._approve).
APPROVE_AHEAD = 32


#: ``DisputeManager.MAX_LEAVES_PER_REQUEST``: the most leaves one ``requestLeaves`` takes.
MAX_LEAVES_PER_REQUEST = 32

#: Gas limit of a DisputeManager transaction: its estimate times ``GAS_MARGIN`` plus
#: ``GAS_HEADROOM`` (``ApeChain._dm``). Ape's live-network default sends the bare estimate, and
#: the node can make a call dearer between the estimate and the block: closing its own last
#: open claim first zeroes its queue slot (``_queues``), or its open-dispute count, so the
#: challenger's ``_enqueue`` pays a zero-to-non-zero write (~17,100 gas each) and the whole
#: dispute or leaf request runs out of gas; repeated before every attempt, nothing is ever
#: opened (audit9 A9-3).
GAS_MARGIN = 1.3
GAS_HEADROOM = 40_000


@dataclass(frozen=True)
class LeafRequestView:
    status: LeafRequestStatus
    requester: str
    bond: int
    reveal_deadline: int
    dispute_deadline: int


#: Not prover.chain_io.DisputeView: the challenger reads its own bond, the node the whole claim.
@dataclass(frozen=True)
class DisputeView:
    status: DisputeStatus
    challenger: str
    bond: int
    proof_deadline: int


@dataclass(frozen=True)
class JobView:
    """An on-chain job as ``JobManager.getJob`` returns it (the fields the challenger reads)."""

    job_id: int
    status: JobStatus
    model_id: bytes
    node: str
    output_hash: bytes
    challenge_deadline: int
    commit_block: int


@dataclass(frozen=True)
class BatchView:
    batch_id: int
    model_id: bytes
    node: str
    root: bytes
    count: int
    uri: str
    challenge_deadline: int
    commit_block: int


@dataclass(frozen=True)
class PoolAccount:
    """This challenger in the CheckPool: registration, exit, bond not locked by claims."""

    registered: bool
    exiting: bool
    free_bond: int
    collateral: int  # claimCollateral(): locked per open claim


class ChainPort(Protocol):
    """The chain as the challenger sees it (``me`` is the challenger's account address)."""

    @property
    def me(self) -> str: ...

    def head(self) -> int: ...

    def block_hash(self, number: int) -> bytes: ...

    def timestamp(self) -> int:
        """Timestamp of the newest block (deadlines compare against it)."""
        ...

    def model(self, model_id: bytes) -> RegisteredModel: ...

    def dispute(self, dispute_id: bytes) -> DisputeView: ...

    def bond_at_risk(self) -> int: ...

    def credits(self) -> int: ...

    def balance(self) -> int: ...

    def request_input(
        self, job_id: int, before_block: int | None = None
    ) -> tuple[bytes, list[int]] | None:
        """``(modelId, inputQ)`` of on-chain job ``job_id`` from its JobRequested event, which
        is at or before ``before_block`` (its commitment's block; None: the head)."""
        ...

    def leaf_request(self, request_id: bytes) -> LeafRequestView: ...

    def reveal_proof(self, tx_hash: str) -> list[bytes] | None:
        """The Merkle proof in the calldata of a ``revealLeaf`` transaction (None if unreadable)."""
        ...

    def tx_pending(self, tx_hash: str) -> bool:
        """Whether the node holds ``tx_hash`` unmined (a reorg dropped its block and it went
        back to the mempool): sending its effect again would race it."""
        ...

    def open_dispute(self, job_id: int, output_hash: bytes, bond: int) -> TxResult: ...

    def open_batch_dispute(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_hash: bytes,
        output_hash: bytes,
        proof: Sequence[bytes],
        bond: int,
    ) -> TxResult: ...

    def request_leaf(self, batch_id: int, index: int, root: bytes, bond: int) -> TxResult:
        """``requestLeaf(batchId, index, root)``: ``root`` is the one the challenger recorded
        for the batch; the contract reverts ``RootMismatch`` if the batch's root differs (a
        reorg cannot move the request, and its bond, onto another batch)."""
        ...

    def request_leaves(
        self, batch_id: int, indices: Sequence[int], root: bytes, bond_each: int
    ) -> TxResult:
        """``requestLeaves(batchId, indices, root)``: up to ``MAX_LEAVES_PER_REQUEST`` leaves of
        one batch in one transaction, ``bond_each`` per leaf (the total is approved). The
        contract skips a leaf that already has a request or a dispute (another challenger's):
        read each leaf's request after it is mined to see whose it is."""
        ...

    def settle_leaf_request(self, request_id: bytes) -> TxResult: ...

    def settle(self, dispute_id: bytes) -> TxResult: ...

    def withdraw_credits(self) -> TxResult: ...


def _check_pool_of(contracts: Any) -> Any:
    """The deployment's CheckPool, or None for a deployment from before paid checks."""
    deployment = getattr(contracts, "deployment", None)
    if deployment is None or getattr(deployment, "check_pool", None) is None:
        return None
    return contracts.check_pool


#: Blocks per ``eth_getLogs`` of a log lookup (many providers cap a call's range near this).
LOG_RANGE = 2000


def _deploy_block(contracts: Any) -> int:
    deployment = getattr(contracts, "deployment", None)
    return int(getattr(deployment, "deploy_block", 0) or 0)


def _transient(err: BaseException) -> bool:
    """Retry anything but a contract revert (a revert is an answer, not a hiccup)."""
    from ape.exceptions import ContractLogicError

    return not isinstance(err, ContractLogicError | ChainError | KeyboardInterrupt)


class ApeChain:
    """:class:`ChainPort` over Ape contract instances, sending as ``account``."""

    def __init__(
        self,
        *,
        job_manager: Any,
        dispute_manager: Any,
        model_registry: Any,
        token: Any,
        account: Any,
        check_pool: Any = None,
        attempts: int = 6,
        max_backoff: float = 8.0,
        start_block: int = 0,
        log_range: int = LOG_RANGE,
    ) -> None:
        self.jobs = job_manager
        self.disputes = dispute_manager
        self.registry = model_registry
        self.token = token
        self.account = account
        self._attempts = attempts
        self._max_backoff = max_backoff
        self._models: dict[bytes, RegisteredModel] = {}
        self.pool = check_pool
        #: Log lookups go no lower than the deployment's block, ``log_range`` blocks per call.
        self.start_block = start_block
        self.log_range = log_range

    @classmethod
    def from_contracts(cls, contracts: Any, account: Any, **kwargs: Any) -> ApeChain:
        """From a ``spotcheck.chain.SpotcheckContracts``."""
        return cls(
            job_manager=contracts.job_manager,
            dispute_manager=contracts.dispute_manager,
            model_registry=contracts.model_registry,
            token=contracts.token,
            account=account,
            check_pool=_check_pool_of(contracts),
            **{"start_block": _deploy_block(contracts), **kwargs},
        )

    # -- reads (retried) --------------------------------------------------------------------

    def _read(self, what: str, call: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.25, max=self._max_backoff),
            retry=retry_if_exception(_transient),
            reraise=False,
        )
        try:
            return retrying(call)
        except RetryError as err:
            cause = err.last_attempt.exception()
            raise ChainError(f"{what}: RPC failed {self._attempts} times: {cause}") from cause

    @property
    def me(self) -> str:
        return str(self.account.address)

    def head(self) -> int:
        from ape import chain

        return self._read("head", lambda: int(chain.blocks.height))

    def block_hash(self, number: int) -> bytes:
        from ape import chain

        return self._read(f"block {number}", lambda: from_hex(chain.blocks[number].hash))

    def timestamp(self) -> int:
        from ape import chain

        return self._read("timestamp", lambda: int(chain.blocks.head.timestamp))

    def model(self, model_id: bytes) -> RegisteredModel:
        cached = self._models.get(model_id)
        if cached is not None:
            return cached
        m = self._read("getModel", lambda: self.registry.getModel(model_id))
        params = RegisteredModel.from_struct(model_id, m)
        self._models[model_id] = params  # registry parameters are immutable per modelId
        return params

    def dispute(self, dispute_id: bytes) -> DisputeView:
        d = self._read("getDispute", lambda: self.disputes.getDispute(dispute_id))
        return DisputeView(
            status=DisputeStatus(int(d.status)),
            challenger=str(d.challenger),
            bond=int(d.bond),
            proof_deadline=int(d.proofDeadline),
        )

    def leaf_request(self, request_id: bytes) -> LeafRequestView:
        r = self._read("getLeafRequest", lambda: self.disputes.getLeafRequest(request_id))
        return LeafRequestView(
            status=LeafRequestStatus(int(r.status)),
            requester=str(r.requester),
            bond=int(r.bond),
            reveal_deadline=int(r.revealDeadline),
            dispute_deadline=int(r.disputeDeadline),
        )

    def reveal_proof(self, tx_hash: str) -> list[bytes] | None:
        def read() -> list[bytes] | None:
            from ape import chain

            tx = chain.provider.get_receipt(tx_hash).transaction
            _abi, args = self.disputes.decode_input(bytes(tx.data))
            proof = args.get("proof")
            return None if proof is None else [from_hex(p) for p in proof]

        try:
            return self._read(f"reveal tx {tx_hash}", read)
        except (ChainError, ValueError, KeyError, AttributeError) as err:
            log.warning("cannot read the proof of reveal %s: %s", tx_hash, err)
            return None

    def tx_pending(self, tx_hash: str) -> bool:
        def read() -> bool:
            from ape import chain
            from web3.exceptions import TransactionNotFound

            try:
                tx = chain.provider.web3.eth.get_transaction(tx_hash)  # type: ignore[attr-defined]
            except TransactionNotFound:
                return False
            return tx.get("blockNumber") is None

        return self._read(f"transaction {tx_hash}", read)

    def bond_at_risk(self) -> int:
        return int(self._read("bondAtRisk", lambda: self.disputes.bondAtRisk(self.me)))

    def credits(self) -> int:
        return int(self._read("credits", lambda: self.disputes.credits(self.me)))

    def balance(self) -> int:
        return int(self._read("balanceOf", lambda: self.token.balanceOf(self.me)))

    def _head(self) -> int:
        from ape import chain

        return int(self._read("head", lambda: chain.blocks.height))

    def _find_log(self, event: Any, job_id: int, top: int) -> Any:
        """The newest ``event`` log of ``job_id`` at or below block ``top``: scanned downwards
        from ``top`` in ranges of ``log_range`` blocks (one bounded ``eth_getLogs`` each, not
        one from block 0), no lower than ``start_block``; None if there is none."""
        hi = top
        while hi >= self.start_block:
            lo = max(self.start_block, hi - self.log_range + 1)
            found = list(event.range(lo, hi + 1, search_topics={"jobId": job_id}))
            if found:
                return found[-1]
            hi = lo - 1
        return None

    def request_input(
        self, job_id: int, before_block: int | None = None
    ) -> tuple[bytes, list[int]] | None:
        top = self._head() if before_block is None else before_block

        def find() -> tuple[bytes, list[int]] | None:
            entry = self._find_log(self.jobs.JobRequested, job_id, top)
            if entry is None:
                return None
            args = entry.event_arguments
            return from_hex(args["modelId"]), [int(v) for v in args["input"]]

        return self._read("JobRequested", find)

    def job(self, job_id: int) -> JobView:
        """``getJob(jobId)`` (reverts ``UnknownJob`` for an id never requested)."""
        j = self._read(f"getJob({job_id})", lambda: self.jobs.getJob(job_id))
        return JobView(
            job_id=job_id,
            status=JobStatus(int(j.status)),
            model_id=from_hex(j.modelId),
            node=str(j.node),
            output_hash=from_hex(j.outputHash),
            challenge_deadline=int(j.challengeDeadline),
            commit_block=int(getattr(j, "commitBlock", 0)),
        )

    def batch(self, batch_id: int) -> BatchView:
        b = self._read(f"getBatch({batch_id})", lambda: self.jobs.getBatch(batch_id))
        return BatchView(
            batch_id=batch_id,
            model_id=from_hex(b.modelId),
            node=str(b.node),
            root=from_hex(b.root),
            count=int(b.count),
            uri=str(b.uri),
            challenge_deadline=int(b.challengeDeadline),
            commit_block=int(getattr(b, "commitBlock", 0)),
        )

    def committed_output(self, job_id: int, at_block: int | None = None) -> list[int] | None:
        """The output the node committed for on-chain job ``job_id`` (its ResultCommitted), in
        block ``at_block`` (the job's ``commitBlock``; None: scanned down from the head)."""
        top = self._head() if at_block is None else at_block

        def find() -> list[int] | None:
            if at_block is not None:
                found = list(
                    self.jobs.ResultCommitted.range(
                        at_block, at_block + 1, search_topics={"jobId": job_id}
                    )
                )
                entry = found[-1] if found else None
            else:
                entry = self._find_log(self.jobs.ResultCommitted, job_id, top)
            return None if entry is None else [int(v) for v in entry.event_arguments["output"]]

        return self._read("ResultCommitted", find)

    # -- the CheckPool (paid checks) ---------------------------------------------------------

    def _need_pool(self) -> Any:
        if self.pool is None:
            raise ChainError("this deployment has no CheckPool: paid checks are not available")
        return self.pool

    def pool_account(self) -> PoolAccount:
        pool = self._need_pool()
        c = self._read("getChallenger", lambda: pool.getChallenger(self.me))
        return PoolAccount(
            registered=bool(c.registered),
            exiting=int(c.exitRequestedAt) != 0,
            free_bond=int(self._read("freeBond", lambda: pool.freeBond(self.me))),
            collateral=int(self._read("claimCollateral", lambda: pool.claimCollateral())),
        )

    def pool_sampling_bps(self, model_id: bytes) -> int:
        pool = self._need_pool()
        terms = self._read("modelTerms", lambda: pool.modelTerms(model_id))
        return int(terms[1])

    def pool_claim_status(self, job_id: int) -> ClaimStatus:
        pool = self._need_pool()
        key = onchain_job_key(job_id)
        return ClaimStatus(int(self._read("claimOf", lambda: pool.claimOf(key, self.me))))

    def pool_seed_recorded(self, job_id: int) -> bool:
        pool = self._need_pool()
        key = onchain_job_key(job_id)
        return any(bytes(self._read("seedOf", lambda: pool.seedOf(key))))

    def pool_claim_margin(self) -> int:
        """``claimMargin()``: claims close this many seconds before the challenge deadline."""
        pool = self._need_pool()
        return int(self._read("claimMargin", lambda: pool.claimMargin()))

    def pool_record_seed(self, job_id: int) -> TxResult:
        """``recordSeed(jobId)``: store the job's seed while ``blockhash`` can read it."""
        pool = self._need_pool()
        return self._send(
            f"recordSeed({job_id})", lambda: pool.recordSeed(job_id, sender=self.account)
        )

    def pool_claim_batch(self, claims: Sequence[tuple[int, G1Point]]) -> TxResult:
        pool = self._need_pool()
        ids = [job_id for job_id, _ in claims]
        proofs = [list(p.words()) for _, p in claims]
        return self._send(
            f"claimBatch({ids})", lambda: pool.claimBatch(ids, proofs, sender=self.account)
        )

    def pool_collect(self, job_id: int) -> tuple[TxResult, int]:
        """``collect(jobId)``; returns the transaction and the amount paid (its event)."""
        pool = self._need_pool()
        receipt: list[Any] = []

        def call() -> Any:
            receipt.append(pool.collect(job_id, sender=self.account))
            return receipt[0]

        tx = self._send(f"collect({job_id})", call)
        paid = sum(int(e.amount) for e in receipt[0].events.filter(pool.RewardCollected))
        return tx, paid

    def pool_collected(self, job_id: int, since_block: int) -> int | None:
        """What our earlier ``collect(jobId)`` paid (its ``RewardCollected`` log from
        ``since_block``): a claim found collected after a restart lost the receipt. None while
        the RPC shows no such log (see :meth:`_paid_to_me`)."""
        pool = self._need_pool()
        return self._paid_to_me(pool.RewardCollected, {"jobId": job_id}, since_block)

    def _paid_to_me(self, event: Any, topics: dict[str, int], since_block: int) -> int | None:
        """The ``amount`` of the ``event`` log to us matching ``topics`` between
        ``since_block`` and the head, in ranges of ``log_range`` blocks.

        None when the scan finds no log: every collect emits one to its claimant (amount 0
        too), so a claim the pool shows collected has one, and an RPC that shows none has not
        reached the collect's block (a load-balanced RPC whose log or head reads come from a
        node behind the one that answered ``claimOf``). Read again later, never taken as 0."""
        search = {**topics, "claimant": self.me}
        top = self._head()

        def scan() -> list[int]:
            amounts: list[int] = []
            for lo in range(max(since_block, self.start_block), top + 1, self.log_range):
                hi = min(top, lo + self.log_range - 1)
                amounts += [int(e.amount) for e in event.range(lo, hi + 1, search_topics=search)]
            return amounts

        amounts = self._read("eth_getLogs", scan)
        return sum(amounts) if amounts else None

    def pool_forfeit(self, job_id: int) -> TxResult:
        """``forfeit(jobId, me)``: close our claim on an invalid job (its collateral is burned
        either way; until it is closed the claim counts as open and the bond cannot leave)."""
        pool = self._need_pool()
        return self._send(
            f"forfeit({job_id})", lambda: pool.forfeit(job_id, self.me, sender=self.account)
        )

    def pool_forfeit_leaf(self, batch_id: int, index: int) -> TxResult:
        """``forfeitLeaf(batchId, index, me)``: the same for a claim on an invalid leaf."""
        pool = self._need_pool()
        return self._send(
            f"forfeitLeaf({batch_id}, {index})",
            lambda: pool.forfeitLeaf(batch_id, index, self.me, sender=self.account),
        )

    # -- leaf claims (paid checks of batch leaves) -------------------------------------------

    def pool_leaf_claim_status(self, batch_id: int, index: int) -> ClaimStatus:
        pool = self._need_pool()
        key = batch_leaf_key(batch_id, index)
        return ClaimStatus(int(self._read("claimOf", lambda: pool.claimOf(key, self.me))))

    def pool_batch_seed_recorded(self, batch_id: int) -> bool:
        pool = self._need_pool()
        return any(bytes(self._read("batchSeedOf", lambda: pool.batchSeedOf(batch_id))))

    def pool_batch_sampling_bps(self, batch_id: int) -> int:
        """The rate the batch's leaves are claimed at (``getBatchDeposit``, snapshot at commit;
        0 for a batch without a deposit)."""
        pool = self._need_pool()
        d = self._read("getBatchDeposit", lambda: pool.getBatchDeposit(batch_id))
        return int(d.samplingBps)

    def pool_record_batch_seed(self, batch_id: int) -> TxResult:
        """``recordBatchSeed(batchId)``: store the batch's seed while it is readable."""
        pool = self._need_pool()
        return self._send(
            f"recordBatchSeed({batch_id})",
            lambda: pool.recordBatchSeed(batch_id, sender=self.account),
        )

    def batch_state(self, batch_id: int) -> tuple[BatchStatus, int]:
        """``getBatch(batchId)``'s status and commit block."""
        b = self._read(f"getBatch({batch_id})", lambda: self.jobs.getBatch(batch_id))
        return BatchStatus(int(b.status)), int(getattr(b, "commitBlock", 0))

    def leaf_invalid(self, batch_id: int, index: int) -> bool:
        """``batchLeafInvalid(batchLeafKey(batchId, index))``."""
        key = batch_leaf_key(batch_id, index)
        return bool(self._read("batchLeafInvalid", lambda: self.jobs.batchLeafInvalid(key)))

    def pool_claim_leaves(self, claims: Sequence[tuple[int, int, G1Point]]) -> TxResult:
        pool = self._need_pool()
        batches = [b for b, _, _ in claims]
        indices = [i for _, i, _ in claims]
        proofs = [list(p.words()) for _, _, p in claims]
        return self._send(
            f"claimLeaves({list(zip(batches, indices, strict=True))})",
            lambda: pool.claimLeaves(batches, indices, proofs, sender=self.account),
        )

    def pool_collect_leaf(self, batch_id: int, index: int) -> tuple[TxResult, int]:
        """``collectLeaf(batchId, index)``; returns the transaction and the amount paid."""
        pool = self._need_pool()
        receipt: list[Any] = []

        def call() -> Any:
            receipt.append(pool.collectLeaf(batch_id, index, sender=self.account))
            return receipt[0]

        tx = self._send(f"collectLeaf({batch_id}, {index})", call)
        paid = sum(int(e.amount) for e in receipt[0].events.filter(pool.LeafRewardCollected))
        return tx, paid

    def pool_leaf_collected(self, batch_id: int, index: int, since_block: int) -> int | None:
        """What our earlier ``collectLeaf(batchId, index)`` paid (``LeafRewardCollected``);
        None while the RPC shows no such log."""
        pool = self._need_pool()
        return self._paid_to_me(
            pool.LeafRewardCollected, {"batchId": batch_id, "index": index}, since_block
        )

    def pool_register(self, public_key: Sequence[int], pop: Sequence[int], bond: int) -> TxResult:
        pool = self._need_pool()
        spender = pool.address
        allowance = self._read("allowance", lambda: self.token.allowance(self.me, spender))
        if int(allowance) < bond:
            self._send("approve", lambda: self.token.approve(spender, bond, sender=self.account))
        return self._send(
            "CheckPool.register",
            lambda: pool.register(list(public_key), list(pop), bond, sender=self.account),
        )

    def pool_register_key(self, secret: bytes, bond: int) -> TxResult:
        """Register the VRF key ``secret`` (32 bytes) with its proof of possession, bound to
        this account, this pool and this chain, and a bond of ``bond`` base units."""
        from challenger.sampling import secret_scalar
        from spotcheck import vrf
        from spotcheck.check_pool import possession

        pool = self._need_pool()
        key = vrf.keypair(secret_scalar(secret))
        pop = self._read("proof of possession", lambda: possession(pool, key, self.me))
        return self.pool_register(list(key.public.words()), list(pop.words()), bond)

    def pool_min_bond(self) -> int:
        pool = self._need_pool()
        return int(self._read("minBond", lambda: pool.minBond()))

    # -- transactions (never retried blindly) ------------------------------------------------

    def _send(self, what: str, call: Callable[[], Any]) -> TxResult:
        try:
            receipt = call()
        except Exception as err:  # Ape raises its own and web3's exception types
            # A custom error by name with its arguments (``RootMismatch(batchId=...)``), also
            # when Ape left it as raw revert data (spotcheck.errors.describe_revert).
            name = revert_name(err)
            message = f"{what} failed: {describe_revert(err)}"
            if name is not None:
                raise RevertError(message, error=name) from err
            raise ChainError(message) from err
        if getattr(receipt, "failed", False):
            raise ChainError(f"{what} reverted in {receipt.txn_hash}")
        return TxResult(tx_hash=str(receipt.txn_hash), block_number=int(receipt.block_number))

    def _dm(self, method: Any, *args: Any) -> Any:
        """Send ``method(*args)`` (a DisputeManager write) with a gas limit of its estimate
        times :data:`GAS_MARGIN` plus :data:`GAS_HEADROOM`, whatever the network's
        ``gas_limit`` setting (audit9 A9-3). A revert surfaces at the estimate, as before."""
        gas = int(method.estimate_gas_cost(*args, sender=self.account))
        return method(*args, sender=self.account, gas=math.ceil(gas * GAS_MARGIN) + GAS_HEADROOM)

    def _approve(self, amount: int) -> None:
        """Approve DisputeManager for ``amount`` if the allowance is short, then for
        :data:`APPROVE_AHEAD` bonds at once: an approve per dispute doubled the transactions
        (and blocks) a run of disputes waits for."""
        if amount <= 0:
            return
        spender = self.disputes.address
        allowance = self._read("allowance", lambda: self.token.allowance(self.me, spender))
        if int(allowance) < amount:
            ahead = amount * APPROVE_AHEAD
            self._send("approve", lambda: self.token.approve(spender, ahead, sender=self.account))

    def open_dispute(self, job_id: int, output_hash: bytes, bond: int) -> TxResult:
        self._approve(bond)
        return self._send(
            f"openDispute({job_id})",
            lambda: self._dm(self.disputes.openDispute, job_id, output_hash),
        )

    def open_batch_dispute(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_hash: bytes,
        output_hash: bytes,
        proof: Sequence[bytes],
        bond: int,
    ) -> TxResult:
        self._approve(bond)
        return self._send(
            f"openBatchDispute({batch_id}, index {index})",
            lambda: self._dm(
                self.disputes.openBatchDispute,
                batch_id,
                index,
                job_id,
                input_hash,
                output_hash,
                list(proof),
            ),
        )

    def request_leaf(self, batch_id: int, index: int, root: bytes, bond: int) -> TxResult:
        self._approve(bond)
        return self._send(
            f"requestLeaf({batch_id}, {index}, 0x{bytes(root).hex()})",
            lambda: self._dm(self.disputes.requestLeaf, batch_id, index, bytes(root)),
        )

    def request_leaves(
        self, batch_id: int, indices: Sequence[int], root: bytes, bond_each: int
    ) -> TxResult:
        idx = [int(i) for i in indices]
        self._approve(bond_each * len(idx))
        return self._send(
            f"requestLeaves({batch_id}, {len(idx)} leaves {idx}, 0x{bytes(root).hex()})",
            lambda: self._dm(self.disputes.requestLeaves, batch_id, idx, bytes(root)),
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
        """``revealLeaf``: open to anyone; a claimant reveals a leaf it claimed when the node
        does not (``challenger.reveals``, audit A6-4). No bond, no proof."""
        return self._send(
            f"revealLeaf({batch_id}, index {index})",
            lambda: self._dm(
                self.disputes.revealLeaf,
                batch_id,
                index,
                job_id,
                [int(v) for v in input_q],
                [int(v) for v in output_q],
                [bytes(p) for p in proof],
            ),
        )

    def settle_leaf_request(self, request_id: bytes) -> TxResult:
        return self._send(
            f"settleLeafRequest(0x{request_id.hex()})",
            lambda: self._dm(self.disputes.settleLeafRequest, request_id),
        )

    def settle(self, dispute_id: bytes) -> TxResult:
        return self._send(
            f"settle(0x{dispute_id.hex()})",
            lambda: self._dm(self.disputes.settle, dispute_id),
        )

    def defend(
        self,
        dispute_id: bytes,
        proof: bytes,
        instances: Sequence[int],
        committed_output: Sequence[int],
    ) -> TxResult:
        """``defend(disputeId, proof, instances, committedOutput)``: anyone may send a valid
        proof (``challenger.defence``); the bond goes to the node whoever defends."""
        return self._send(
            f"defend(0x{dispute_id.hex()})",
            lambda: self._dm(
                self.disputes.defend,
                dispute_id,
                bytes(proof),
                [int(v) for v in instances],
                [int(v) for v in committed_output],
            ),
        )

    def withdraw_credits(self) -> TxResult:
        return self._send(
            "withdrawCredits", lambda: self.disputes.withdrawCredits(sender=self.account)
        )
