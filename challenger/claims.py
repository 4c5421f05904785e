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
  found it correct), its collateral counted as lost.

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
from typing import Protocol, runtime_checkable

from challenger.chain_io import JobView, PoolAccount
from challenger.claim_seeds import SeedOps, SeedRecorder
from challenger.sampling import parse_proof
from challenger.store import (
    ClaimRow,
    ClaimState,
    ClaimStore,
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


class Claimer:
    """The claim state machine over a :class:`ClaimPort` and the service's store."""

    def __init__(self, store: Store, chain: ClaimPort, options: ClaimOptions) -> None:
        if not 0 < options.batch_size <= MAX_BATCH_CLAIMS:
            raise ValueError(f"claim batch_size must be in 1..{MAX_BATCH_CLAIMS}")
        self.claims = ClaimStore(store)
        self.store = store
        self.chain = chain
        self.options = options
        self._bps: dict[bytes, int] = {}
        self._warned: set[str] = set()
        #: Claims that were in a batch refused for a proof: sent one per transaction.
        self._alone: set[bytes] = set()
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
        self._margin: int | None = None

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

    # -- plan -------------------------------------------------------------------------------

    def plan(self, jobs: Sequence[JobRow], now: int, report: ClaimReport) -> None:
        for job in jobs:
            if job.vrf_proof is None:
                continue
            bps = self._sampling_bps(job.model_id)
            proof = parse_proof(job.vrf_proof)
            if bps == 0:
                state, reason = ClaimState.UNCLAIMABLE, "the model has no check terms"
            elif not vrf.sampled_bps(proof, bps):
                state, reason = ClaimState.UNCLAIMABLE, f"not in the pool's sample ({bps} bps)"
            else:
                state, reason = ClaimState.PLANNED, None
            if self.claims.plan(job, state, now, reason) and state is ClaimState.PLANNED:
                report.planned += 1

    def _sampling_bps(self, model_id: bytes) -> int:
        if model_id not in self._bps:
            self._bps[model_id] = self.chain.pool_sampling_bps(model_id)
        return self._bps[model_id]

    # -- send -------------------------------------------------------------------------------

    def adopt_sending(self, head: int) -> None:
        """Claims whose send was interrupted: adopted if on chain, planned again if absent
        long enough (never sent twice while the first transaction may still land)."""
        for c in self.claims.claims(ClaimState.SENDING):
            status = self.chain.pool_claim_status(c.job_id)
            if status is not ClaimStatus.NONE:
                with suppress(IllegalTransition):
                    self.claims.transition(c.job_key, ClaimState.OPEN)
                    log.info("claim on job %d found on chain: adopted", c.job_id)
            elif head >= (c.sent_block or 0) + self.options.resend_after_blocks:
                with suppress(IllegalTransition):
                    self.claims.transition(c.job_key, ClaimState.PLANNED)

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
        account = self.chain.pool_account()
        if not account.registered or account.exiting:
            why = "exiting" if account.exiting else "not registered"
            self._warn_once(
                why,
                f"{len(planned)} claim(s) waiting: this challenger is {why} in the CheckPool "
                "(`spotcheck challenger register --bond AMOUNT`)",
            )
            self._miss_late(planned, now, report, f"window closed while {why}")
            return
        room = account.free_bond // account.collateral if account.collateral else len(planned)
        if room == 0:
            self._warn_once("bond", "claims waiting: the whole bond is locked by open claims")
            self._miss_late(planned, now, report, "window closed while the bond was locked")
            return
        ready = [c for c in planned if self._claimable(c, now, head, report)][:room]
        alone = [c for c in ready if c.job_key in self._alone]
        together = [c for c in ready if c.job_key not in self._alone]
        for start in range(0, len(together), o.batch_size):
            self._send_batch(together[start : start + o.batch_size], head, report)
        for c in alone:
            self._send_batch([c], head, report)

    def _claimable(self, c: ClaimRow, now: int, head: int, report: ClaimReport) -> bool:
        """Check one claim on chain before sending; records why it cannot be sent."""
        if self.chain.pool_claim_status(c.job_id) is not ClaimStatus.NONE:
            with suppress(IllegalTransition):
                self.claims.transition(c.job_key, ClaimState.OPEN)  # sent before a restart
            return False
        bps = self._sampling_bps(c.model_id)
        if not vrf.sampled_bps(parse_proof(c.vrf_proof), bps):  # the rate was lowered
            with suppress(IllegalTransition):
                self.claims.transition(
                    c.job_key,
                    ClaimState.UNCLAIMABLE,
                    reason=f"not in the pool's sample ({bps} bps)",
                )
            return False
        why: str | None = None
        recorded = self.claims.seed_of(c.job_key)
        if now > c.challenge_deadline - self.claim_margin():
            why = _closed(c.challenge_deadline, self.claim_margin())
        elif recorded is None:
            why = "job no longer recorded"
        elif recorded[1] is not None:
            # A reorg replaced the job's block after this claim was sent: the proof may be
            # for a seed the chain no longer has; never resent (a lost reward, not collateral).
            why = f"a reorg replaced the job's block (fork at {recorded[1]}): proof may be stale"
        else:
            job = self.chain.job(c.job_id)
            if job.status is not JobStatus.COMMITTED:
                why = f"job is {job.status.name.lower()}"
            elif job.commit_block != recorded[0]:
                why = (
                    f"job moved from block {recorded[0]} to {job.commit_block} (reorg): "
                    "its proof is for a stale seed"
                )
            elif head > job.commit_block + 1 + BLOCKHASH_WINDOW and not (
                self.chain.pool_seed_recorded(c.job_id)
            ):
                why = "seed unavailable (not recorded within 256 blocks)"
        if why is None:
            return True
        with suppress(IllegalTransition):
            self.claims.transition(c.job_key, ClaimState.MISSED, reason=why)
            report.missed += 1
            log.warning("claim on job %d not sent: %s", c.job_id, why)
        return False

    def _send_batch(self, batch: list[ClaimRow], head: int, report: ClaimReport) -> None:
        if not batch:
            return
        with self.store.transaction():
            for c in batch:
                self.claims.transition(c.job_key, ClaimState.SENDING, sent_block=head)
        ids = [c.job_id for c in batch]
        try:
            tx = self.chain.pool_claim_batch([(c.job_id, parse_proof(c.vrf_proof)) for c in batch])
        except ChainError as err:
            name = revert_name(err)
            log.warning("claimBatch of jobs %s failed: %s", ids, err)
            # One refused proof reverts the whole batch: a batch of several goes back to
            # planned and each of its claims is sent alone from now on, so only the refused
            # one is given up (a claim alone refused for its proof is missed, loudly).
            alone = name in _PROOF_ERRORS and len(batch) == 1
            for c in batch:
                if self.chain.pool_claim_status(c.job_id) is not ClaimStatus.NONE:
                    to, reason = ClaimState.OPEN, None
                elif alone:
                    to, reason = ClaimState.MISSED, f"refused by the pool: {err}"
                    report.missed += 1
                else:
                    to, reason = ClaimState.PLANNED, None  # decided again next tick
                    if name in _PROOF_ERRORS:
                        self._alone.add(c.job_key)
                with suppress(IllegalTransition):
                    self.claims.transition(c.job_key, to, reason=reason)
            if alone:
                log.error(
                    "CLAIM REFUSED (%s): our VRF proof for job %d does not verify", name, ids[0]
                )
            return
        with self.store.transaction():
            for c in batch:
                self.claims.transition(c.job_key, ClaimState.OPEN, tx_hash=tx.tx_hash)
        report.sent += len(batch)
        log.info("claimed %d checked job(s) %s (tx %s)", len(batch), ids, tx.tx_hash)

    def _miss_late(
        self, planned: list[ClaimRow], now: int, report: ClaimReport, reason: str
    ) -> None:
        margin = self.claim_margin()
        for c in planned:
            if now > c.challenge_deadline - margin:
                with suppress(IllegalTransition):
                    self.claims.transition(c.job_key, ClaimState.MISSED, reason=reason)
                    report.missed += 1

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    # -- settle -----------------------------------------------------------------------------

    def settle(self, report: ClaimReport) -> None:
        for c in self.claims.claims(ClaimState.OPEN):
            status = self.chain.pool_claim_status(c.job_id)
            if status is ClaimStatus.COLLECTED:  # collected before a restart
                with suppress(IllegalTransition):
                    self.claims.transition(c.job_key, ClaimState.COLLECTED)
                continue
            if status is ClaimStatus.FORFEITED:
                self._forfeited(c, report)
                continue
            job = self.chain.job(c.job_id)
            if job.status is JobStatus.FINAL:
                try:
                    tx, paid = self.chain.pool_collect(c.job_id)
                except ChainError as err:
                    log.warning("collect(%d) failed: %s", c.job_id, err)
                    continue
                with suppress(IllegalTransition):
                    self.claims.transition(
                        c.job_key, ClaimState.COLLECTED, payout=paid, tx_hash=tx.tx_hash
                    )
                    report.paid += 1
                    report.payouts += paid
                    log.info(
                        "check reward collected: job %d paid %d (tx %s)", c.job_id, paid, tx.tx_hash
                    )
            elif job.status is JobStatus.INVALID and close_forfeit(
                partial(self.chain.pool_forfeit, c.job_id), f"job {c.job_id}"
            ):
                self._forfeited(c, report)

    def _forfeited(self, c: ClaimRow, report: ClaimReport) -> None:
        collateral = self.chain.pool_account().collateral
        with suppress(IllegalTransition):
            self.claims.transition(c.job_key, ClaimState.FORFEITED, payout=collateral)
            report.forfeited += 1
            log.error(
                "CLAIM FORFEITED: job %d ended invalid although this challenger found its "
                "output correct; collateral %d lost (check the model files and tau)",
                c.job_id,
                collateral,
            )


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


class LeafClaimer:
    """The claim machine for batch leaves (``claimLeaves``, ``collectLeaf``): the same states,
    journaling and send rules as :class:`Claimer`, over ``ch_leaf_claims``."""

    def __init__(
        self,
        store: Store,
        chain: LeafClaimPort,
        options: ClaimOptions,
        claim_margin: Callable[[], int],
    ) -> None:
        self.claims = LeafClaimStore(store)
        self.claim_margin = claim_margin
        self.store = store
        self.chain = chain
        self.base: ClaimPort = chain  # type: ignore[assignment]  # Claimer checked ClaimPort
        self.options = options
        self._alone: set[bytes] = set()
        self._warned: set[str] = set()

    def step(self, report: ClaimReport) -> None:
        pending = self.claims.claims(ClaimState.SENDING, ClaimState.PLANNED, ClaimState.OPEN)
        unplanned = self.claims.unplanned()
        if not pending and not unplanned:
            return
        bps: dict[int, int] = {}

        def rate(batch_id: int) -> int:
            """The batch's rate, snapshot by the pool at its commit (A6-5)."""
            if batch_id not in bps:
                bps[batch_id] = self.chain.pool_batch_sampling_bps(batch_id)
            return bps[batch_id]

        now = self.base.timestamp()
        for job, deadline in unplanned:
            assert job.vrf_proof is not None
            p = rate(int(job.ref))
            if p == 0:
                state, reason = ClaimState.UNCLAIMABLE, "the batch has no paid checks (rate 0)"
            elif not vrf.sampled_bps(parse_proof(job.vrf_proof), p):
                state, reason = ClaimState.UNCLAIMABLE, f"not in the pool's sample ({p} bps)"
            else:
                state, reason = ClaimState.PLANNED, None
            if self.claims.plan(job, deadline, state, now, reason) and state is ClaimState.PLANNED:
                report.planned += 1
        head = self.base.head()
        self._adopt_sending(head)
        self._send(now, head, rate, report)
        self._settle(report)

    def _status(self, c: LeafClaimRow) -> ClaimStatus:
        return self.chain.pool_leaf_claim_status(c.batch_id, c.index)

    def _adopt_sending(self, head: int) -> None:
        for c in self.claims.claims(ClaimState.SENDING):
            if self._status(c) is not ClaimStatus.NONE:
                with suppress(IllegalTransition):
                    self.claims.transition(c.leaf_key, ClaimState.OPEN)
            elif head >= (c.sent_block or 0) + self.options.resend_after_blocks:
                with suppress(IllegalTransition):
                    self.claims.transition(c.leaf_key, ClaimState.PLANNED)

    def _send(self, now: int, head: int, rate: Callable[[int], int], report: ClaimReport) -> None:
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
        account = self.base.pool_account()
        if (
            not account.registered
            or account.exiting
            or (account.collateral and account.free_bond < account.collateral)
        ):
            for c in planned:  # the job claimer warns; leaves only miss their window
                if now > c.challenge_deadline - margin:
                    with suppress(IllegalTransition):
                        self.claims.transition(
                            c.leaf_key,
                            ClaimState.MISSED,
                            reason=f"unbacked ({_closed(c.challenge_deadline, margin)})",
                        )
                        report.missed += 1
            return
        room = account.free_bond // account.collateral if account.collateral else len(planned)
        ready = [c for c in planned if self._claimable(c, now, head, rate, report)][:room]
        alone = [c for c in ready if c.leaf_key in self._alone]
        together = [c for c in ready if c.leaf_key not in self._alone]
        for start in range(0, len(together), o.batch_size):
            self._send_batch(together[start : start + o.batch_size], head, report)
        for c in alone:
            self._send_batch([c], head, report)

    def _claimable(
        self,
        c: LeafClaimRow,
        now: int,
        head: int,
        rate: Callable[[int], int],
        report: ClaimReport,
    ) -> bool:
        if self._status(c) is not ClaimStatus.NONE:
            with suppress(IllegalTransition):
                self.claims.transition(c.leaf_key, ClaimState.OPEN)  # sent before a restart
            return False
        p = rate(c.batch_id)
        if not vrf.sampled_bps(parse_proof(c.vrf_proof), p):
            with suppress(IllegalTransition):
                self.claims.transition(
                    c.leaf_key, ClaimState.UNCLAIMABLE, reason=f"not in the pool's sample ({p} bps)"
                )
            return False
        why: str | None = None
        fork = self.claims.reorged(c.leaf_key)
        if now > c.challenge_deadline - self.claim_margin():
            why = _closed(c.challenge_deadline, self.claim_margin())
        elif fork is not None:
            why = "leaf no longer recorded" if fork == 0 else f"a reorg replaced its batch ({fork})"
        else:
            status, commit_block = self.chain.batch_state(c.batch_id)
            if status is not BatchStatus.COMMITTED:
                why = f"batch is {status.name.lower()}"
            elif commit_block != c.commit_block:
                why = f"batch moved from block {c.commit_block} to {commit_block} (reorg)"
            elif self.chain.leaf_invalid(c.batch_id, c.index):
                why = "leaf invalidated"
            elif head > commit_block + 1 + BLOCKHASH_WINDOW and not (
                self.chain.pool_batch_seed_recorded(c.batch_id)
            ):
                why = "seed unavailable (not recorded within 256 blocks)"
        if why is None:
            return True
        with suppress(IllegalTransition):
            self.claims.transition(c.leaf_key, ClaimState.MISSED, reason=why)
            report.missed += 1
            log.warning("claim on leaf %d/%d not sent: %s", c.batch_id, c.index, why)
        return False

    def _send_batch(self, batch: list[LeafClaimRow], head: int, report: ClaimReport) -> None:
        if not batch:
            return
        with self.store.transaction():
            for c in batch:
                self.claims.transition(c.leaf_key, ClaimState.SENDING, sent_block=head)
        refs = [(c.batch_id, c.index) for c in batch]
        try:
            tx = self.chain.pool_claim_leaves(
                [(c.batch_id, c.index, parse_proof(c.vrf_proof)) for c in batch]
            )
        except ChainError as err:
            name = revert_name(err)
            log.warning("claimLeaves of %s failed: %s", refs, err)
            # As for jobs: one refused leaf reverts the batch; its leaves are retried alone, and
            # a leaf refused alone (its proof, its window, its verdict) is missed.
            alone = name in _LEAF_REFUSALS and len(batch) == 1
            for c in batch:
                if self._status(c) is not ClaimStatus.NONE:
                    to, reason = ClaimState.OPEN, None
                elif alone:
                    to, reason = ClaimState.MISSED, f"refused by the pool: {err}"
                    report.missed += 1
                else:
                    to, reason = ClaimState.PLANNED, None
                    if name in _LEAF_REFUSALS:
                        self._alone.add(c.leaf_key)
                with suppress(IllegalTransition):
                    self.claims.transition(c.leaf_key, to, reason=reason)
            return
        with self.store.transaction():
            for c in batch:
                self.claims.transition(c.leaf_key, ClaimState.OPEN, tx_hash=tx.tx_hash)
        report.sent += len(batch)
        log.info("claimed %d checked batch leaf(s) %s (tx %s)", len(batch), refs, tx.tx_hash)

    def _settle(self, report: ClaimReport) -> None:
        for c in self.claims.claims(ClaimState.OPEN):
            status = self._status(c)
            if status is ClaimStatus.COLLECTED:
                with suppress(IllegalTransition):
                    self.claims.transition(c.leaf_key, ClaimState.COLLECTED)
                continue
            if status is ClaimStatus.FORFEITED:
                self._forfeited(c, report)
                continue
            if self.chain.leaf_invalid(c.batch_id, c.index):
                what = f"leaf {c.index} of batch {c.batch_id}"
                if close_forfeit(partial(self.chain.pool_forfeit_leaf, c.batch_id, c.index), what):
                    self._forfeited(c, report)
                continue
            batch_status, _ = self.chain.batch_state(c.batch_id)
            if batch_status is not BatchStatus.FINAL:
                continue
            try:
                tx, paid = self.chain.pool_collect_leaf(c.batch_id, c.index)
            except ChainError as err:
                log.warning("collectLeaf(%d, %d) failed: %s", c.batch_id, c.index, err)
                continue
            with suppress(IllegalTransition):
                self.claims.transition(
                    c.leaf_key, ClaimState.COLLECTED, payout=paid, tx_hash=tx.tx_hash
                )
                report.paid += 1
                report.payouts += paid
                log.info("leaf check reward collected: %d/%d paid %d", c.batch_id, c.index, paid)

    def _forfeited(self, c: LeafClaimRow, report: ClaimReport) -> None:
        collateral = self.base.pool_account().collateral
        with suppress(IllegalTransition):
            self.claims.transition(c.leaf_key, ClaimState.FORFEITED, payout=collateral)
            report.forfeited += 1
            log.error(
                "CLAIM FORFEITED: leaf %d of batch %d ended invalid although this challenger "
                "found it correct; collateral %d lost (check the model files and tau)",
                c.index,
                c.batch_id,
                collateral,
            )


def _closed(challenge_deadline: int, margin: int) -> str:
    """Why a claim was not sent: its claim window closed (A6-1)."""
    return (
        f"claim window closed at {challenge_deadline - margin} "
        f"(challenge deadline {challenge_deadline} - claim margin {margin})"
    )
