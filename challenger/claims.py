"""Paid checks (issue 15): claim the on-chain jobs this challenger sampled and found correct,
collect their rewards once final, and record forfeits.

One :meth:`Claimer.step` per tick, after the service's ``check`` step:

- **plan**: every on-chain job in ``matched`` with a VRF proof gets a claim row. It is
  ``planned`` when the proof's output is below the pool's rate for the model
  (``modelTerms(modelId).samplingBps``: the challenger may sample more than the pool pays for;
  the same VRF output decides both, so the pool's sample is a subset of ours), otherwise
  ``unclaimable``. Batch leaves we sampled and found correct get leaf claim rows the same way
  (:class:`LeafClaimer`, ``claimLeaves``): their reward is the node's check deposit per leaf.
- **send**: planned claims go out in batches (``claimBatch``, at most 32, one pairing
  product) when ``batch_size`` are waiting, when the oldest has waited ``max_wait_s`` (chain
  time), or when one is within ``margin_s`` of its claim deadline (the challenge deadline less
  the pool's ``claimMargin``: claims close before disputes, audit A6-1); never more than the
  free bond backs (``claimCollateral`` each). Before sending, each claim is checked on chain:
  already claimed (``claimOf``: a send whose receipt was lost) -> adopted ``open``; job no
  longer ``Committed``, claim window closed, seed no longer readable -> ``missed``. Seeds
  are recorded early (:mod:`challenger.claim_seeds`, audit A6-8) so a long re-run still finds
  them. The rows are
  moved to ``sending`` (with the head block) in one transaction *before* the transaction is
  sent, so a restart between send and receipt finds them in ``sending`` and adopts them from
  ``claimOf``; a ``sending`` claim absent on chain is planned again only after
  ``resend_after_blocks`` (a transaction still in the mempool is not doubled). A claim whose
  job's block a reorg replaced (the job's commit block on chain differs from the recorded one,
  or the job is marked by ``Store.forget_after``) is ``missed``: its proof may be for a stale
  seed, so it is never sent (unsent claims of such jobs are forgotten and planned afresh).
- **settle**: an ``open`` claim whose job is ``Final`` is collected (``collect``: the reward
  share, collateral freed) -> ``collected`` with the amount; one whose job ended ``Invalid``
  -> ``forfeited`` (an error: the network proved the output wrong although this challenger
  found it correct), its collateral counted as lost. A claim the pool shows collected by a
  collect whose receipt a restart lost is recorded with the amount of its collect event, once
  the RPC shows that event (a lagging load-balanced node shows none yet: read again next step,
  never recorded as 0).

Batch leaves (:class:`LeafClaimer`, same states, table ``ch_leaf_claims``): sent with
``claimLeaves`` while the batch is ``Committed`` and inside its challenge window; settled when
the batch is ``Final`` (``collectLeaf``: the leaf's deposit share) or the leaf is invalidated
(``batchLeafInvalid``: ``forfeited``, collateral counted as lost).

CheckPool burns forfeited collateral (a lazy claimant's loss is nobody's gain), so there is
nothing to withdraw from the pool: a claim's money comes back only through ``collect``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar, runtime_checkable

from challenger.chain_io import JobView, PoolAccount
from challenger.claim_seeds import SeedOps, SeedRecorder
from challenger.sampling import parse_proof
from challenger.store import (
    ClaimRow,
    ClaimState,
    ClaimStore,
    ClaimTable,
    JobRow,
    LeafClaimRow,
    LeafClaimStore,
    Store,
)
from spotcheck import vrf
from spotcheck.chain import BatchStatus, ClaimStatus, JobKind, JobStatus, TxResult
from spotcheck.errors import ChainError, RevertError, revert_name
from spotcheck.kit.db import IllegalTransition

log = logging.getLogger(__name__)

C = TypeVar("C", ClaimRow, LeafClaimRow)

#: ``CheckPool.MAX_BATCH_CLAIMS``.
MAX_BATCH_CLAIMS = 32
#: ``blockhash`` reads the last 256 blocks: an unrecorded seed is lost after that.
BLOCKHASH_WINDOW = 256
#: Reverts that say our proofs are wrong (a bug or a seed mismatch): retrying cannot help.
_PROOF_ERRORS = frozenset({"InvalidProof", "InvalidBatchProof", "NotSampled"})
#: Reverts that refuse one leaf claim for good (a batch of several is retried leaf by leaf).
_LEAF_REFUSALS = frozenset(
    {
        "InvalidLeafProof",
        "InvalidBatchProof",
        "LeafNotSampled",
        "LeafNotClaimable",
        "LeafInvalid",
        "LeafIndexOutOfRange",
        "BatchNotFunded",
        "BatchNotClaimable",
        "BatchClaimWindowClosed",
    }
)


class ClaimPort(Protocol):
    """What the claimer needs from the chain (``challenger.chain_io.ApeChain`` has it)."""

    @property
    def me(self) -> str: ...

    def head(self) -> int: ...

    def timestamp(self) -> int: ...

    def job(self, job_id: int) -> JobView: ...

    def pool_account(self) -> PoolAccount: ...

    def pool_sampling_bps(self, model_id: bytes) -> int: ...

    def pool_claim_status(self, job_id: int) -> ClaimStatus: ...

    def pool_seed_recorded(self, job_id: int) -> bool: ...

    def pool_claim_margin(self) -> int: ...

    def pool_record_seed(self, job_id: int) -> TxResult: ...

    def pool_claim_batch(self, claims: Sequence[tuple[int, vrf.G1Point]]) -> TxResult: ...

    def pool_collect(self, job_id: int) -> tuple[TxResult, int]: ...

    def pool_collected(self, job_id: int, since_block: int) -> int | None: ...

    def pool_forfeit(self, job_id: int) -> TxResult: ...


@runtime_checkable
class LeafClaimPort(Protocol):
    """What leaf claims need besides :class:`ClaimPort` (``challenger.chain_io.ApeChain``)."""

    def batch_state(self, batch_id: int) -> tuple[BatchStatus, int]: ...

    def leaf_invalid(self, batch_id: int, index: int) -> bool: ...

    def pool_leaf_claim_status(self, batch_id: int, index: int) -> ClaimStatus: ...

    def pool_batch_seed_recorded(self, batch_id: int) -> bool: ...

    def pool_batch_sampling_bps(self, batch_id: int) -> int: ...

    def pool_record_batch_seed(self, batch_id: int) -> TxResult: ...

    def pool_claim_leaves(self, claims: Sequence[tuple[int, int, vrf.G1Point]]) -> TxResult: ...

    def pool_collect_leaf(self, batch_id: int, index: int) -> tuple[TxResult, int]: ...

    def pool_leaf_collected(self, batch_id: int, index: int, since_block: int) -> int | None: ...

    def pool_forfeit_leaf(self, batch_id: int, index: int) -> TxResult: ...


@dataclass(frozen=True)
class ClaimOptions:
    #: Claims per transaction (at most ``MAX_BATCH_CLAIMS``).
    batch_size: int = 16
    #: Longest a planned claim waits for a fuller batch (chain seconds).
    max_wait_s: int = 60
    #: Claims are sent at the latest this many chain seconds before the job's deadline.
    margin_s: int = 30
    #: Blocks after a send before a claim still absent on chain is planned again.
    resend_after_blocks: int = 20


@dataclass
class ClaimReport:
    planned: int = 0
    sent: int = 0
    paid: int = 0
    payouts: int = 0
    forfeited: int = 0
    missed: int = 0


class _ClaimRules(Generic[C]):
    """The claim rules every kind of claim follows (on-chain jobs: :class:`Claimer`; batch
    leaves: :class:`LeafClaimer`): adopting interrupted sends, when and how many to send,
    the checks before a send, a refused batch retried claim by claim, and settling. A kind
    says how its claims read the chain (the ``what differs`` methods)."""

    #: Reverts that refuse a claim for good (a batch of several is retried claim by claim).
    REFUSALS: frozenset[str]
    #: The claim transaction and what it claims, in log lines.
    CALL: str
    WHAT: str

    def __init__(
        self,
        claims: ClaimTable[C],
        store: Store,
        pool: ClaimPort,
        options: ClaimOptions,
        claim_margin: Callable[[], int],
    ) -> None:
        self.claims: ClaimTable[C] = claims
        self.store = store
        self.pool = pool
        self.options = options
        self.claim_margin = claim_margin
        #: Claims that were in a batch refused by the pool: sent one per transaction.
        self._alone: set[bytes] = set()

    # -- what differs -----------------------------------------------------------------------

    def key(self, c: C) -> bytes:
        raise NotImplementedError

    def ref(self, c: C) -> object:
        """The claim's reference in the transaction's log line."""
        raise NotImplementedError

    def label(self, c: C) -> str:
        raise NotImplementedError

    def status(self, c: C) -> ClaimStatus:
        raise NotImplementedError

    def rate(self, c: C) -> int:
        """The pool's sampling rate for the claim (bps)."""
        raise NotImplementedError

    def why_not(self, c: C, head: int) -> str | None:
        """Why the claim, inside its window, can no longer be sent (None: it can)."""
        raise NotImplementedError

    def claim_tx(self, batch: list[C]) -> TxResult:
        raise NotImplementedError

    def unbacked(self, planned: list[C], now: int, why: str, report: ClaimReport) -> None:
        """Claims are due but the pool account cannot back them (``why``)."""
        raise NotImplementedError

    def settle_one(self, c: C, report: ClaimReport) -> None:
        """An open claim the pool has neither paid nor forfeited yet."""
        raise NotImplementedError

    def collected(self, c: C) -> int | None:
        """What the pool paid us for the claim (its collect event), for a collect whose
        receipt a restart lost; None while the RPC shows no collect event (it lags)."""
        raise NotImplementedError

    def forfeited_log(self, c: C, collateral: int) -> None:
        raise NotImplementedError

    # -- plan -------------------------------------------------------------------------------

    @staticmethod
    def decide(proof: str, bps: int, zero: str) -> tuple[ClaimState, str | None]:
        """A claim's first state: planned if the VRF output is in the pool's sample."""
        if bps == 0:
            return ClaimState.UNCLAIMABLE, zero
        if not vrf.sampled_bps(parse_proof(proof), bps):
            return ClaimState.UNCLAIMABLE, f"not in the pool's sample ({bps} bps)"
        return ClaimState.PLANNED, None

    # -- send -------------------------------------------------------------------------------

    def adopt_sending(self, head: int) -> None:
        """Claims whose send was interrupted: adopted if on chain, planned again if absent
        long enough (never sent twice while the first transaction may still land)."""
        for c in self.claims.claims(ClaimState.SENDING):
            if self.status(c) is not ClaimStatus.NONE:
                with suppress(IllegalTransition):
                    self.claims.transition(self.key(c), ClaimState.OPEN)
                    log.info("claim on %s found on chain: adopted", self.label(c))
            elif head >= (c.sent_block or 0) + self.options.resend_after_blocks:
                with suppress(IllegalTransition):
                    self.claims.transition(self.key(c), ClaimState.PLANNED)

    def send(self, now: int, head: int, report: ClaimReport) -> None:
        planned = self.claims.claims(ClaimState.PLANNED)
        if not planned:
            return
        o = self.options
        margin = self.claim_margin()
        due = (
            len(planned) >= o.batch_size
            or min(c.planned_at for c in planned) + o.max_wait_s <= now
            or min(c.challenge_deadline for c in planned) - margin - o.margin_s <= now
        )
        if not due:
            return
        account = self.pool.pool_account()
        if not account.registered or account.exiting:
            self.unbacked(planned, now, "exiting" if account.exiting else "not registered", report)
            return
        room = account.free_bond // account.collateral if account.collateral else len(planned)
        if room == 0:
            self.unbacked(planned, now, "bond", report)
            return
        ready = [c for c in planned if self._claimable(c, now, head, report)][:room]
        alone = [c for c in ready if self.key(c) in self._alone]
        together = [c for c in ready if self.key(c) not in self._alone]
        for start in range(0, len(together), o.batch_size):
            self._send_batch(together[start : start + o.batch_size], head, report)
        for c in alone:
            self._send_batch([c], head, report)

    def _claimable(self, c: C, now: int, head: int, report: ClaimReport) -> bool:
        """Check one claim on chain before sending; records why it cannot be sent."""
        if self.status(c) is not ClaimStatus.NONE:
            with suppress(IllegalTransition):
                self.claims.transition(self.key(c), ClaimState.OPEN)  # sent before a restart
            return False
        bps = self.rate(c)
        if not vrf.sampled_bps(parse_proof(c.vrf_proof), bps):  # the rate was lowered
            with suppress(IllegalTransition):
                self.claims.transition(
                    self.key(c),
                    ClaimState.UNCLAIMABLE,
                    reason=f"not in the pool's sample ({bps} bps)",
                )
            return False
        margin = self.claim_margin()
        if now > c.challenge_deadline - margin:
            why: str | None = _closed(c.challenge_deadline, margin)
        else:
            why = self.why_not(c, head)
        if why is None:
            return True
        with suppress(IllegalTransition):
            self.claims.transition(self.key(c), ClaimState.MISSED, reason=why)
            report.missed += 1
            log.warning("claim on %s not sent: %s", self.label(c), why)
        return False

    def _send_batch(self, batch: list[C], head: int, report: ClaimReport) -> None:
        if not batch:
            return
        with self.store.transaction():
            for c in batch:
                self.claims.transition(self.key(c), ClaimState.SENDING, sent_block=head)
        refs = [self.ref(c) for c in batch]
        try:
            tx = self.claim_tx(batch)
        except ChainError as err:
            name = revert_name(err)
            log.warning("%s %s failed: %s", self.CALL, refs, err)  # claimBatch of jobs [..]
            # One refused claim reverts the whole batch: a batch of several goes back to
            # planned and each of its claims is sent alone from now on, so only the refused
            # one is given up (a claim refused alone is missed, loudly).
            alone = name in self.REFUSALS and len(batch) == 1
            for c in batch:
                if self.status(c) is not ClaimStatus.NONE:
                    to, reason = ClaimState.OPEN, None
                elif alone:
                    to, reason = ClaimState.MISSED, f"refused by the pool: {err}"
                    report.missed += 1
                else:
                    to, reason = ClaimState.PLANNED, None  # decided again next tick
                    if name in self.REFUSALS:
                        self._alone.add(self.key(c))
                with suppress(IllegalTransition):
                    self.claims.transition(self.key(c), to, reason=reason)
            if alone:
                log.error("CLAIM REFUSED (%s) on %s: %s", name, self.label(batch[0]), err)
            return
        with self.store.transaction():
            for c in batch:
                self.claims.transition(self.key(c), ClaimState.OPEN, tx_hash=tx.tx_hash)
        report.sent += len(batch)
        log.info("claimed %d checked %s %s (tx %s)", len(batch), self.WHAT, refs, tx.tx_hash)

    def _miss_late(self, planned: list[C], now: int, report: ClaimReport, reason: str) -> None:
        """Unsent claims whose window closed: missed."""
        margin = self.claim_margin()
        for c in planned:
            if now > c.challenge_deadline - margin:
                with suppress(IllegalTransition):
                    self.claims.transition(self.key(c), ClaimState.MISSED, reason=reason)
                    report.missed += 1

    # -- settle -----------------------------------------------------------------------------

    def settle(self, report: ClaimReport) -> None:
        for c in self.claims.claims(ClaimState.OPEN):
            status = self.status(c)
            if status is ClaimStatus.COLLECTED:  # collected before a restart lost the receipt
                self.adopt_collected(c, report)
            elif status is ClaimStatus.FORFEITED:
                self.forfeited(c, report)
            else:
                self.settle_one(c, report)

    def collect(self, c: C, call: Callable[[], tuple[TxResult, int]], report: ClaimReport) -> None:
        try:
            tx, paid = call()
        except ChainError as err:
            log.warning("collecting the claim on %s failed: %s", self.label(c), err)
            return
        with suppress(IllegalTransition):
            self.claims.transition(
                self.key(c), ClaimState.COLLECTED, payout=paid, tx_hash=tx.tx_hash
            )
            report.paid += 1
            report.payouts += paid
            log.info("check reward collected: %s paid %d (tx %s)", self.label(c), paid, tx.tx_hash)

    def adopt_collected(self, c: C, report: ClaimReport) -> None:
        try:
            paid = self.collected(c)
        except ChainError as err:  # read again next step; the other claims go on (audit 7-2)
            log.warning("reading the payout of %s failed: %s", self.label(c), err)
            return
        if paid is None:  # the RPC has not reached the collect's block: never recorded as 0
            log.warning(
                "payout of %s not in the RPC's logs yet (a lagging node?): read again next step",
                self.label(c),
            )
            return
        with suppress(IllegalTransition):
            self.claims.transition(self.key(c), ClaimState.COLLECTED, payout=paid)
            report.paid += 1
            report.payouts += paid
            log.info("check reward collected before a restart: %s paid %d", self.label(c), paid)

    def forfeited(self, c: C, report: ClaimReport) -> None:
        collateral = self.pool.pool_account().collateral
        with suppress(IllegalTransition):
            self.claims.transition(self.key(c), ClaimState.FORFEITED, payout=collateral)
            report.forfeited += 1
            log.error(
                "CLAIM FORFEITED: %s ended invalid although this challenger found it correct; "
                "collateral %d lost (check the model files and tau)",
                self.label(c),
                collateral,
            )


class Claimer(_ClaimRules[ClaimRow]):
    """The claim state machine over a :class:`ClaimPort` and the service's store: on-chain
    jobs here, batch leaves in :attr:`leaves` when the chain can claim them."""

    REFUSALS = _PROOF_ERRORS
    CALL = "claimBatch of jobs"
    WHAT = "job(s)"

    def __init__(self, store: Store, chain: ClaimPort, options: ClaimOptions) -> None:
        if not 0 < options.batch_size <= MAX_BATCH_CLAIMS:
            raise ValueError(f"claim batch_size must be in 1..{MAX_BATCH_CLAIMS}")
        self.claims: ClaimStore = ClaimStore(store)
        super().__init__(self.claims, store, chain, options, self.claim_margin)
        self.chain = chain
        self._bps: dict[bytes, int] = {}
        self._margin: int | None = None
        self._warned: set[str] = set()
        #: Batch leaves, when the chain can claim them.
        self.leaves = (
            LeafClaimer(store, chain, options, self.claim_margin)
            if isinstance(chain, LeafClaimPort)
            else None
        )
        ops = [
            SeedOps(
                JobKind.ONCHAIN,
                chain.pool_seed_recorded,
                chain.pool_record_seed,
                lambda _job_id, model_id: self._sampling_bps(model_id),
            )
        ]
        if isinstance(chain, LeafClaimPort):
            ops.append(
                SeedOps(
                    JobKind.BATCH,
                    chain.pool_batch_seed_recorded,
                    chain.pool_record_batch_seed,
                    lambda batch_id, _model_id: chain.pool_batch_sampling_bps(batch_id),
                )
            )
        #: Records the seeds of what we sampled well within 256 blocks (A6-8).
        self.seeds = SeedRecorder(store.conn, chain, ops, options.resend_after_blocks)

    def claim_margin(self) -> int:
        """``CheckPool.claimMargin`` (immutable: read once): claims close this many seconds
        before the challenge deadline."""
        if self._margin is None:
            self._margin = self.chain.pool_claim_margin()
        return self._margin

    def step(self) -> ClaimReport:
        report = ClaimReport()
        self._bps.clear()  # the registrar may change a model's terms: read them every step
        try:
            self.seeds.step()
        except ChainError as err:  # an RPC failure: the next step tries again
            log.warning("recording claim seeds failed: %s", err)
        self._step_jobs(report)
        if self.leaves is not None:
            self.leaves.step(report)
        return report

    def _step_jobs(self, report: ClaimReport) -> None:
        pending = self.claims.claims(ClaimState.SENDING, ClaimState.PLANNED, ClaimState.OPEN)
        unplanned = self.claims.unplanned()
        if not pending and not unplanned:
            return
        now = self.chain.timestamp()
        self.plan(unplanned, now, report)
        head = self.chain.head()
        self.adopt_sending(head)
        self.send(now, head, report)
        self.settle(report)

    def plan(self, jobs: Sequence[JobRow], now: int, report: ClaimReport) -> None:
        for job in jobs:
            if job.vrf_proof is None:
                continue
            bps = self._sampling_bps(job.model_id)
            state, reason = self.decide(job.vrf_proof, bps, "the model has no check terms")
            if self.claims.plan(job, state, now, reason) and state is ClaimState.PLANNED:
                report.planned += 1

    def _sampling_bps(self, model_id: bytes) -> int:
        if model_id not in self._bps:
            self._bps[model_id] = self.chain.pool_sampling_bps(model_id)
        return self._bps[model_id]

    # -- the job claim ----------------------------------------------------------------------

    def key(self, c: ClaimRow) -> bytes:
        return c.job_key

    def ref(self, c: ClaimRow) -> object:
        return c.job_id

    def label(self, c: ClaimRow) -> str:
        return f"job {c.job_id}"

    def status(self, c: ClaimRow) -> ClaimStatus:
        return self.chain.pool_claim_status(c.job_id)

    def rate(self, c: ClaimRow) -> int:
        return self._sampling_bps(c.model_id)

    def why_not(self, c: ClaimRow, head: int) -> str | None:
        recorded = self.claims.seed_of(c.job_key)
        if recorded is None:
            return "job no longer recorded"
        if recorded[1] is not None:
            # A reorg replaced the job's block after this claim was sent: the proof may be
            # for a seed the chain no longer has; never resent (a lost reward, not collateral).
            return f"a reorg replaced the job's block (fork at {recorded[1]}): proof may be stale"
        job = self.chain.job(c.job_id)
        if job.status is not JobStatus.COMMITTED:
            return f"job is {job.status.name.lower()}"
        if job.commit_block != recorded[0]:
            return (
                f"job moved from block {recorded[0]} to {job.commit_block} (reorg): "
                "its proof is for a stale seed"
            )
        if head > job.commit_block + 1 + BLOCKHASH_WINDOW and not (
            self.chain.pool_seed_recorded(c.job_id)
        ):
            return "seed unavailable (not recorded within 256 blocks)"
        return None

    def claim_tx(self, batch: list[ClaimRow]) -> TxResult:
        return self.chain.pool_claim_batch([(c.job_id, parse_proof(c.vrf_proof)) for c in batch])

    def unbacked(self, planned: list[ClaimRow], now: int, why: str, report: ClaimReport) -> None:
        if why == "bond":
            self._warn_once("bond", "claims waiting: the whole bond is locked by open claims")
            self._miss_late(planned, now, report, "window closed while the bond was locked")
            return
        self._warn_once(
            why,
            f"{len(planned)} claim(s) waiting: this challenger is {why} in the CheckPool "
            "(`spotcheck challenger register --bond AMOUNT`)",
        )
        self._miss_late(planned, now, report, f"window closed while {why}")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def collected(self, c: ClaimRow) -> int | None:
        return self.chain.pool_collected(c.job_id, c.sent_block or 0)

    def settle_one(self, c: ClaimRow, report: ClaimReport) -> None:
        job = self.chain.job(c.job_id)
        if job.status is JobStatus.FINAL:
            self.collect(c, partial(self.chain.pool_collect, c.job_id), report)
        elif job.status is JobStatus.INVALID and close_forfeit(
            partial(self.chain.pool_forfeit, c.job_id), self.label(c)
        ):
            self.forfeited(c, report)


def close_forfeit(send: Callable[[], TxResult], what: str) -> bool:
    """Close our own claim on an invalid job or leaf on chain (``forfeit``/``forfeitLeaf``):
    while it stays open it counts in ``openClaims`` and ``withdrawBond`` reverts ``ClaimsOpen``
    for good. True once it is closed (by us now, or a revert: someone else closed it first);
    False on an RPC failure (tried again next step)."""
    try:
        tx = send()
    except RevertError as err:
        log.info("forfeit of our claim on %s: %s (closed already)", what, err)
        return True
    except ChainError as err:
        log.warning("forfeit of our claim on %s failed, will retry: %s", what, err)
        return False
    log.info("our claim on %s closed as forfeited (tx %s)", what, tx.tx_hash)
    return True


class LeafClaimer(_ClaimRules[LeafClaimRow]):
    """The claim machine for batch leaves (``claimLeaves``, ``collectLeaf``) over
    ``ch_leaf_claims``; the rules are :class:`_ClaimRules`'."""

    REFUSALS = _LEAF_REFUSALS
    CALL = "claimLeaves of"
    WHAT = "batch leaf(s)"

    def __init__(
        self,
        store: Store,
        chain: LeafClaimPort,
        options: ClaimOptions,
        claim_margin: Callable[[], int],
    ) -> None:
        pool: ClaimPort = chain  # type: ignore[assignment]  # Claimer checked ClaimPort
        self.claims: LeafClaimStore = LeafClaimStore(store)
        super().__init__(self.claims, store, pool, options, claim_margin)
        self.chain = chain
        #: batch id -> the batch's rate, snapshot by the pool at its commit (A6-5); per step.
        self._bps: dict[int, int] = {}

    def step(self, report: ClaimReport) -> None:
        pending = self.claims.claims(ClaimState.SENDING, ClaimState.PLANNED, ClaimState.OPEN)
        unplanned = self.claims.unplanned()
        if not pending and not unplanned:
            return
        self._bps.clear()
        now = self.pool.timestamp()
        for job, deadline in unplanned:
            assert job.vrf_proof is not None
            bps = self._batch_bps(int(job.ref))
            state, reason = self.decide(job.vrf_proof, bps, "the batch has no paid checks (rate 0)")
            if self.claims.plan(job, deadline, state, now, reason) and state is ClaimState.PLANNED:
                report.planned += 1
        head = self.pool.head()
        self.adopt_sending(head)
        self.send(now, head, report)
        self.settle(report)

    def _batch_bps(self, batch_id: int) -> int:
        if batch_id not in self._bps:
            self._bps[batch_id] = self.chain.pool_batch_sampling_bps(batch_id)
        return self._bps[batch_id]

    # -- the leaf claim ---------------------------------------------------------------------

    def key(self, c: LeafClaimRow) -> bytes:
        return c.leaf_key

    def ref(self, c: LeafClaimRow) -> object:
        return (c.batch_id, c.index)

    def label(self, c: LeafClaimRow) -> str:
        return f"leaf {c.batch_id}/{c.index}"

    def status(self, c: LeafClaimRow) -> ClaimStatus:
        return self.chain.pool_leaf_claim_status(c.batch_id, c.index)

    def rate(self, c: LeafClaimRow) -> int:
        return self._batch_bps(c.batch_id)

    def why_not(self, c: LeafClaimRow, head: int) -> str | None:
        fork = self.claims.reorged(c.leaf_key)
        if fork is not None:
            return (
                "leaf no longer recorded" if fork == 0 else f"a reorg replaced its batch ({fork})"
            )
        status, commit_block = self.chain.batch_state(c.batch_id)
        if status is not BatchStatus.COMMITTED:
            return f"batch is {status.name.lower()}"
        if commit_block != c.commit_block:
            return f"batch moved from block {c.commit_block} to {commit_block} (reorg)"
        if self.chain.leaf_invalid(c.batch_id, c.index):
            return "leaf invalidated"
        if head > commit_block + 1 + BLOCKHASH_WINDOW and not (
            self.chain.pool_batch_seed_recorded(c.batch_id)
        ):
            return "seed unavailable (not recorded within 256 blocks)"
        return None

    def claim_tx(self, batch: list[LeafClaimRow]) -> TxResult:
        return self.chain.pool_claim_leaves(
            [(c.batch_id, c.index, parse_proof(c.vrf_proof)) for c in batch]
        )

    def unbacked(
        self, planned: list[LeafClaimRow], now: int, why: str, report: ClaimReport
    ) -> None:
        margin = self.claim_margin()
        for c in planned:  # the job claimer warns; leaves only miss their window
            reason = f"unbacked ({_closed(c.challenge_deadline, margin)})"
            self._miss_late([c], now, report, reason)

    def collected(self, c: LeafClaimRow) -> int | None:
        return self.chain.pool_leaf_collected(c.batch_id, c.index, c.commit_block)

    def settle_one(self, c: LeafClaimRow, report: ClaimReport) -> None:
        if self.chain.leaf_invalid(c.batch_id, c.index):
            what = f"leaf {c.index} of batch {c.batch_id}"
            if close_forfeit(partial(self.chain.pool_forfeit_leaf, c.batch_id, c.index), what):
                self.forfeited(c, report)
            return
        batch_status, _ = self.chain.batch_state(c.batch_id)
        if batch_status is BatchStatus.FINAL:
            self.collect(c, partial(self.chain.pool_collect_leaf, c.batch_id, c.index), report)


def _closed(challenge_deadline: int, margin: int) -> str:
    """Why a claim was not sent: its claim window closed (A6-1)."""
    return (
        f"claim window closed at {challenge_deadline - margin} "
        f"(challenge deadline {challenge_deadline} - claim margin {margin})"
    )
