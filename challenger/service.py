"""The challenger's work loop: follow commitments, sample, re-execute, dispute, settle, withdraw.

One :meth:`Challenger.tick` runs every step once; each step reads its work from the store,
re-checks the chain where money is involved, and records the outcome with an idempotent
transition, so the process can be killed anywhere and restarted:

- ``follow``: the log follower records JobRequested / ResultCommitted / BatchCommitted and
  DisputeOpened (someone else's, on a job we know: for the defender) / LeafRequested
  (someone else's, on a leaf we hold: for the revealer) / DisputeDefended / DisputeSettled
  in the transaction that advances its checkpoint.
- ``sample``: a commitment whose seed block exists is decided by the VRF
  (``challenger.sampling``); a sampled job keeps its VRF proof.
- ``fetch``: a batch whose seed block exists is downloaded whole, in a worker thread, and
  checked against its root; its leaves are recorded already decided, by position. A listing
  that is not usable (any reason) costs that batch only: it is retried, paced by the time left
  in its window, with a last attempt shortly before the window closes; then the batch is
  ``unavailable`` (a warning, counted ``batches_unavailable``, or ``listings_invalid`` if the
  node answered with a listing that is not the committed one) and a leaf request is planned
  for each sampled position. That is not an accusation: an honest node restarting through the
  window looks the same, and answers the leaf requests (``docs/validators.md``, "Withheld
  batches").
- ``leaf requests``: planned requests are sent (bonded), followed, and settled after their
  reveal deadline when the node never revealed; a revealed leaf becomes a sampled job whose
  challenge deadline is the reveal's dispute deadline. A batch with a leaf request that ended
  unrevealed is proven withheld: ``NODE WITHHOLDS BATCH CONTENTS`` (error), counted
  ``batches_withheld``, once per batch.
- ``check``: sampled jobs are re-executed and judged (``challenger.verdict``).
- ``defend``: someone else's dispute on a job we found correct (and claimed, by the
  ``defend`` option) is proven and defended by us if the node has not by the time our proof
  must start (``challenger.defence``).
- ``reveal``: someone else's leaf request on a leaf we found correct (and claimed, by the
  ``defend`` option) is revealed by us from the listing's data if the node has not by
  ``revealDeadline - defend_reveal_reserve_s`` (``challenger.reveals``).
- ``dispute``: before sending, the chain is asked whether the job already has a dispute
  (ours: adopt it; another challenger's: preempted). Then the bond cap and the deadline are
  checked, and the dispute is sent (or only reported, in dry-run mode).
- ``resolve``: our open disputes end as ``lost`` (defended) or ``won`` (settled by us after
  the proof deadline, or by anyone).
- ``withdraw``: credits (returned bonds, bounties) are withdrawn.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from challenger.batches import (
    BatchClient,
    FetchedBatch,
    Fetcher,
    ListingError,
    Outcome,
    domain_of,
)
from challenger.chain_io import MAX_LEAVES_PER_REQUEST, ChainPort
from challenger.claims import Claimer
from challenger.defence import DefenceStore, Defender
from challenger.reveals import Revealer, RevealStore
from challenger.sampling import BatchDecisions, SamplingPolicy, proof_text, seed_block
from challenger.store import (
    MISSED_BEFORE_CHECK,
    MISSED_BEFORE_DISPUTE,
    MISSED_SEEN_LATE,
    BatchRow,
    BatchState,
    JobRow,
    JobState,
    Leaf,
    LeafRequestRow,
    LeafRequestState,
    Store,
    missed_reason,
)
from challenger.verdict import Reexecutor, check_output
from spotcheck.chain import DisputeStatus, JobKind, LeafRequestStatus, RegisteredModel
from spotcheck.encoding import (
    from_hex,
    input_hash,
    keccak256,
    onchain_job_key,
    output_hash,
    to_hex,
)
from spotcheck.errors import ChainError, ConfigError, ModelError, SpotcheckError
from spotcheck.follower import ChainEvent, LogFollower
from spotcheck.kit.db import IllegalTransition
from spotcheck.vrf import G1Point
from verifier.domain import in_domain

log = logging.getLogger(__name__)

#: Events the challenger follows, per contract.
JOB_EVENTS = ("JobRequested", "ResultCommitted", "BatchCommitted")
#: DisputeOpened: someone else's dispute on a job we found correct is defended by us
#: (``challenger.defence``); the other two close our own disputes.
DISPUTE_EVENTS = ("DisputeOpened", "DisputeDefended", "DisputeSettled")
_CLOSING_EVENTS = ("DisputeDefended", "DisputeSettled")
#: DisputeManager events of leaf requests the challenger records (v2): LeafRequested by
#: someone else on a leaf we claimed is revealed by us if the node does not
#: (``challenger.reveals``, audit A6-4).
LEAF_EVENTS = ("LeafRequested", "LeafRevealed")


def dispute_events(dispute_manager: Any) -> tuple[str, ...]:
    """The DisputeManager events to follow (the leaf events only where the contract has them)."""
    return DISPUTE_EVENTS + tuple(e for e in LEAF_EVENTS if hasattr(dispute_manager, e))


ReexecutorFor = Callable[[RegisteredModel], Reexecutor | None]


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    #: Largest total challenger bond locked in our open disputes (token base units).
    max_bond_at_risk: int = 0
    #: The onnxruntime screen before the witness. Off by default: a screen MATCH (within
    #: tau // 2 of onnxruntime) can be more than tau from the circuit, which was harmless
    #: while a MATCH only skipped a dispute, but a paid-check claim puts collateral behind it
    #: (audit A4-9). Screen-only matches are never claimed either way (challenger.claims).
    screen: bool = False
    auto_withdraw: bool = True
    #: Seconds (chain time) between listing attempts: a quarter of the time left before the
    #: challenger gives up, within [retry_min_s, retry_max_s]; never skipping the last one.
    retry_min_s: int = 5
    retry_max_s: int = 30
    #: Seconds before a batch's challenge deadline at which the challenger stops trying its
    #: listing and requests its sampled leaves on chain (the requests must land in time).
    leaf_request_margin_s: int = 30
    #: Longest a tick waits for running listing downloads (they go on in the background).
    fetch_wait_s: float = 0.5


@dataclass(frozen=True)
class _FetchPlan:
    """When, in chain time, a batch's listing attempts end (see ``Options``)."""

    last_attempt_at: int
    give_up_at: int
    hard_stop: int


@dataclass(frozen=True)
class _LeafWindow:
    open: bool  # disputable now, beyond the batch's own deadline
    blocked: bool  # a leaf request is open on it: no dispute until it is revealed or settled
    #: A leaf request on it ended unrevealed: the node was slashed for this leaf and the
    #: contract refuses any dispute on it (``NotDisputable``) for good.
    settled: bool = False


def next_attempt(now: int, plan: _FetchPlan, *, retry_min: int, retry_max: int) -> int:
    """Chain time of the next listing attempt after one failed at ``now``.

    Paced by the time left (a quarter of it, clamped), not by a count of past attempts, so a
    node restarting through the window is tried again and again until the end; and never
    later than the last attempt, shortly before the challenger gives up.
    """
    left = plan.give_up_at - now
    delay = min(retry_max, max(retry_min, left // 4))
    nxt = now + delay
    if now < plan.last_attempt_at < nxt:
        nxt = plan.last_attempt_at
    return nxt


@dataclass
class StepReport:
    """What one tick did (for logs, tests and the status command), counted as it runs: the
    node's ``prover.service.StepReport`` is the same kind of record."""

    events: int = 0
    sampled: int = 0
    skipped: int = 0
    matched: int = 0
    mismatched: int = 0
    disputed: int = 0
    reported: int = 0
    won: int = 0
    lost: int = 0
    withdrawn: int = 0
    deferred_by_cap: int = 0
    #: Batches given up on: no complete answer by the last attempt / an invalid listing.
    unavailable: int = 0
    invalid: int = 0
    #: Batches proven withheld: a leaf request on them ended unrevealed (slashed).
    withheld: int = 0
    leaf_requested: int = 0
    revealed: int = 0
    leaf_settled: int = 0
    undisputable: int = 0
    #: Paid checks (challenger.claims): claims sent, rewards collected (count, base units),
    #: claims forfeited.
    claims_sent: int = 0
    claims_paid: int = 0
    payouts: int = 0
    claims_forfeited: int = 0
    #: Defences of jobs we found correct (challenger.defence): sent (landed or refused), won
    #: (landed), lost (refused), too late, left to the node (it defended first).
    defences_sent: int = 0
    defences_won: int = 0
    defences_lost: int = 0
    defences_too_late: int = 0
    defences_node: int = 0
    #: Reveals of requested leaves we found correct (challenger.reveals): sent, won (landed),
    #: too late, left to the node (it revealed first).
    reveals_sent: int = 0
    reveals_won: int = 0
    reveals_too_late: int = 0
    reveals_node: int = 0
    errors: list[str] = field(default_factory=list)


class Challenger:
    """The challenger's state machine over a :class:`ChainPort` and a :class:`Store`."""

    def __init__(
        self,
        *,
        store: Store,
        chain: ChainPort,
        policy: SamplingPolicy,
        reexecutor_for: ReexecutorFor,
        options: Options,
        follower: LogFollower | None = None,
        batch_client: BatchClient | None = None,
        fetcher: Fetcher | None = None,
        claimer: Claimer | None = None,
        defender: Defender | None = None,
        revealer: Revealer | None = None,
    ) -> None:
        self.store = store
        #: Paid-check claims (None: no CheckPool, dry run, or claims turned off).
        self.claimer = claimer
        #: Defences of disputed jobs we found correct (None: ``defend = never`` or dry run).
        self.defender = defender
        #: Reveals of requested leaves we found correct (None: ``defend = never`` or dry run).
        self.revealer = revealer
        self.chain = chain
        self.policy = policy
        self.reexecutor_for = reexecutor_for
        self.options = options
        self.follower = follower
        self.fetcher = fetcher or Fetcher(batch_client or BatchClient())
        #: batchId -> chain time its running listing attempt started.
        self._started: dict[int, int] = {}
        self._warned_models: set[bytes] = set()
        #: Sampling decisions of batches, computed in a worker thread (one proof per leaf).
        self.decisions = BatchDecisions(policy)
        #: batchId -> its seed (the block hash), read once.
        self._seeds: dict[int, bytes] = {}
        #: Chain time at the start of the tick: when the rows it records were first seen (a
        #: lower bound: it never makes a job look seen later than it was).
        self._tick_time: int | None = None
        self.lock = threading.Lock()  # one tick at a time (the HTTP thread reads status)

    # -- the loop ---------------------------------------------------------------------------

    def tick(self) -> StepReport:
        report = StepReport()
        with self.lock:
            self._tick_time = self.chain.timestamp()
            if self.follower is not None:
                report.events = self.follower.process(self.handle_events, rollback=self.rollback)
            head = self.chain.head()
            self.sample(head, report)
            self.fetch_batches(head, report)
            self.adopt_reveals(report)
            self.check(report)
            if self.claimer is not None:
                self._claim(report)
            if self.defender is not None:
                self._defend(report)
            if self.revealer is not None:
                self._reveal(report)
            self.dispute(report)
            self.leaf_requests(report)
            self.report_withheld(report)
            self.resolve(report)
            if self.options.auto_withdraw and not self.options.dry_run:
                self.withdraw(report)
        return report

    # -- follow -----------------------------------------------------------------------------

    def handle_events(self, events: list[ChainEvent], conn: sqlite3.Connection) -> None:
        """Record events (runs inside the follower's checkpoint transaction: no side effects)."""
        for ev in events:
            a = ev.args
            if ev.name == "JobRequested":
                Store.record_request(
                    conn, int(a["jobId"]), from_hex(a["modelId"]), a["input"], ev.block_number
                )
            elif ev.name == "ResultCommitted":
                self._record_commit(conn, ev)
            elif ev.name == "BatchCommitted":
                Store.record_batch(
                    conn,
                    batch_id=int(a["batchId"]),
                    model_id=from_hex(a["modelId"]),
                    node=str(a["node"]),
                    root=from_hex(a["root"]),
                    count=int(a["count"]),
                    uri=str(a["uri"]),
                    challenge_deadline=int(a["challengeDeadline"]),
                    commit_block=ev.block_number,
                    seen_at=self._tick_time,
                )
            elif ev.name == "LeafRevealed":
                Store.record_reveal(
                    conn,
                    request_id=from_hex(a["requestId"]),
                    batch_id=int(a["batchId"]),
                    index=int(a["index"]),
                    job_id=int(a["jobId"]),
                    input_q=[int(v) for v in a["input"]],
                    output_q=[int(v) for v in a["output"]],
                    input_hash=input_hash([int(v) for v in a["input"]]),
                    output_hash=output_hash([int(v) for v in a["output"]]),
                    dispute_deadline=int(a["disputeDeadline"]),
                    tx_hash=ev.tx_hash,
                    block=ev.block_number,
                )
            elif ev.name == "LeafRequested":
                self._record_leaf_requested(conn, ev)
            elif ev.name == "DisputeOpened":
                self._record_opened(conn, ev)
            elif ev.name in _CLOSING_EVENTS:
                if ev.name == "DisputeDefended" and self.defender is not None:
                    DefenceStore.defended(conn, from_hex(a["disputeId"]), str(a["defender"]))
                to = JobState.LOST if ev.name == "DisputeDefended" else JobState.WON
                with suppress(IllegalTransition):  # not ours, or recorded already
                    Store.transition_in(conn, from_hex(a["disputeId"]), to)
                    log.info("dispute %s", to.value, extra={"dispute_id": to_hex(a["disputeId"])})

    def _record_opened(self, conn: sqlite3.Connection, ev: ChainEvent) -> None:
        """Someone else's dispute on a job we know: the defender decides whether it is ours
        to defend (our own disputes are followed by ``resolve``)."""
        a = ev.args
        if self.defender is None or str(a["challenger"]).lower() == self.chain.me.lower():
            return
        DefenceStore.opened(
            conn,
            dispute_id=from_hex(a["disputeId"]),
            node=str(a["node"]),
            disputer=str(a["challenger"]),
            proof_deadline=int(a["proofDeadline"]),
            block=ev.block_number,
        )

    def _record_leaf_requested(self, conn: sqlite3.Connection, ev: ChainEvent) -> None:
        """Someone else's leaf request on a leaf we hold: the revealer decides whether it is
        ours to reveal (our own requests are followed by ``leaf_requests``)."""
        a = ev.args
        if self.revealer is None or str(a["requester"]).lower() == self.chain.me.lower():
            return
        RevealStore.requested(
            conn,
            request_id=from_hex(a["requestId"]),
            node=str(a["node"]),
            requester=str(a["requester"]),
            reveal_deadline=int(a["revealDeadline"]),
            block=ev.block_number,
        )

    def rollback(self, conn: sqlite3.Connection, fork: int) -> None:
        """A reorg replaced the blocks after ``fork`` (the follower found it below the
        confirmation depth): forget what they recorded that we have not acted on, in the
        follower's transaction, so the replay records it with the new commit blocks, seeds
        and deadlines (``Store.forget_after``)."""
        done = Store.forget_after(conn, fork)
        if self.defender is not None:
            DefenceStore.forget_after(conn, fork)
        if self.revealer is not None:
            RevealStore.forget_after(conn, fork)
        self._seeds.clear()  # batch seeds are block hashes: read them again
        log.warning(
            "chain reorganised after block %d: forgot %d job(s), %d batch(es), %d request(s) "
            "and %d leaf reveal(s) to record again; kept %d job(s) and %d batch(es) already "
            "acted on (re-read on chain before any further send)",
            fork,
            done.jobs,
            done.batches,
            done.requests,
            done.reveals,
            done.kept_jobs,
            done.kept_batches,
        )

    def _record_commit(self, conn: sqlite3.Connection, ev: ChainEvent) -> None:
        a = ev.args
        job_id = int(a["jobId"])
        kwargs: dict[str, Any] = {
            "job_key": onchain_job_key(job_id),
            "job_id": job_id,
            "node": str(a["node"]),
            "output_q": [int(v) for v in a["output"]],
            "output_hash": from_hex(a["outputHash"]),
            "challenge_deadline": int(a["challengeDeadline"]),
            "commit_block": ev.block_number,
            "seen_at": self._tick_time,
        }
        if Store.record_onchain_commit(conn, **kwargs):
            return
        # The request predates our start block: read it from the chain (a plain read).
        found = self.chain.request_input(job_id, before_block=ev.block_number)
        if found is None:
            log.error("ResultCommitted for unknown job", extra={"job_id": job_id})
            return
        model_id, input_q = found
        Store.record_request(conn, job_id, model_id, input_q)
        Store.record_onchain_commit(conn, **kwargs)

    # -- sample -----------------------------------------------------------------------------

    def sample(self, head: int, report: StepReport) -> None:
        """Decide every commitment whose seed block exists (one VRF proof each, a few ms)."""
        hashes: dict[int, bytes] = {}
        decided: list[tuple[JobRow, G1Point | None]] = []
        for job in self.store.jobs(JobState.SEEN):
            number = seed_block(job.commit_block, self.policy.seed_delay)
            if number > head:
                continue  # the seed does not exist yet
            if number not in hashes:
                hashes[number] = self.chain.block_hash(number)
            decided.append((job, self.policy.sample(job.model_id, hashes[number], job.job_key)))
        # One transaction for all decisions (they are deterministic: a crash just redoes them).
        with self.store.transaction():
            for job, proof in decided:
                with suppress(IllegalTransition):
                    if proof is not None:
                        self.store.transition(
                            job.job_key, JobState.SAMPLED, vrf_proof=proof_text(proof)
                        )
                        report.sampled += 1
                        log.info("sampled", extra=_job_log(job))
                    else:
                        self.store.transition(job.job_key, JobState.SKIPPED)
                        report.skipped += 1

    # -- fetch batches ----------------------------------------------------------------------

    def fetch_batches(self, head: int, report: StepReport) -> None:
        """Start due listing attempts in the background, record finished ones, give up late ones.

        Never blocks longer than ``fetch_wait_s``, whatever the nodes do, and a bad listing
        costs only its own batch.
        """
        batches = self.store.batches(BatchState.SEEN)
        now = self.chain.timestamp() if batches or self.fetcher.running() else 0
        self._record_fetches(self.fetcher.collect(0.0), now, report)
        for batch in self.store.batches(BatchState.SEEN):
            self._advance_batch(batch, head, now, report)
        if self.fetcher.running():
            self._record_fetches(self.fetcher.collect(self.options.fetch_wait_s), now, report)

    def _advance_batch(self, batch: BatchRow, head: int, now: int, report: StepReport) -> None:
        bid = batch.batch_id
        if seed_block(batch.commit_block, self.policy.seed_delay) > head:
            return  # the seed does not exist yet
        if not self._judges(batch.model_id):
            if self.store.close_batch(bid, BatchState.NOT_JUDGED):
                log.info("batch of a model we do not judge: not fetched", extra=_batch_log(batch))
            return
        never_tried = batch.attempts == 0 and not self.fetcher.busy(bid)
        if now >= batch.challenge_deadline:
            self._expire(batch, never_tried)
            return
        plan = self._plan(batch)
        if self.fetcher.busy(bid):
            if now < plan.hard_stop:
                return  # an attempt is running; its own deadline bounds it
            self.fetcher.drop(bid)
        if never_tried and now >= plan.give_up_at:
            # First seen this late (the challenger started after the batch was committed, or
            # was down): one attempt if it can end before the deadline, never a give-up (and
            # leaf requests the node must pay to answer) for a listing nobody asked for.
            if now + self._fetch_s() >= batch.challenge_deadline:
                self._expire(batch, never_tried)
                return
            self.decisions.start(bid, batch.model_id, self._batch_seed(batch), batch.count)
            if self.fetcher.submit(batch, domain_of(self.chain.model(batch.model_id))):
                self._started[bid] = now
            return
        last_tried = batch.failed_at is not None and batch.failed_at >= plan.last_attempt_at
        if now >= plan.hard_stop or (now >= plan.give_up_at and last_tried):
            self._give_up(batch, report)
            return
        # Decide the batch's sample in the background while its listing downloads.
        self.decisions.start(bid, batch.model_id, self._batch_seed(batch), batch.count)
        last_call = now >= plan.last_attempt_at and not last_tried
        if last_call or now >= (batch.next_attempt_at or 0):
            model = self.chain.model(batch.model_id)
            if self.fetcher.submit(batch, domain_of(model)):
                self._started[bid] = now

    def _expire(self, batch: BatchRow, never_tried: bool) -> None:
        """The window closed (or is about to) before the batch was checked: ``expired``.

        A batch whose listing was never asked for (first seen after its window, e.g. a
        challenger started on an old deployment) says nothing about its node: an info line
        and the ``batches_seen_late`` counter. One whose attempts ran out of time is an
        error of this challenger (it was down or too slow)."""
        bid = batch.batch_id
        self.fetcher.drop(bid)
        self._forget_batch(bid)
        if not self.store.close_batch(bid, BatchState.EXPIRED):
            return
        if never_tried:
            self.store.bump("batches_seen_late")
            log.info(
                "batch %d seen too late to check (its challenge window closes at %d): "
                "listing not asked for, nothing said about the node; %s",
                bid,
                batch.challenge_deadline,
                _batch_text(batch),
                extra=_batch_log(batch),
            )
        else:
            log.error(
                "challenge window closed before the batch was checked; %s",
                _batch_text(batch),
                extra=_batch_log(batch),
            )

    def _fetch_s(self) -> int:
        """Longest one listing attempt takes, in whole chain seconds (plus one)."""
        return math.ceil(self.fetcher.client.limits.deadline_s) + 1

    def _plan(self, batch: BatchRow) -> _FetchPlan:
        margin = self.options.leaf_request_margin_s
        give_up = batch.challenge_deadline - margin
        fetch_s = self._fetch_s()
        return _FetchPlan(
            last_attempt_at=give_up - fetch_s,
            give_up_at=give_up,
            hard_stop=batch.challenge_deadline - max(1, margin // 2),
        )

    def _record_fetches(
        self, outcomes: list[tuple[BatchRow, Outcome]], now: int, report: StepReport
    ) -> None:
        for batch, outcome in outcomes:
            current = self.store.batch(batch.batch_id)
            if current is None or current.state is not BatchState.SEEN:
                continue  # given up (or recorded) meanwhile
            if (current.root, current.commit_block) != (batch.root, batch.commit_block):
                continue  # a reorg re-recorded the batch meanwhile: fetched again
            if isinstance(outcome, ListingError):
                self._attempt_failed(current, outcome, now)
            else:
                self._fetched(current, outcome, now, report)

    def _attempt_failed(self, batch: BatchRow, err: ListingError, now: int) -> None:
        started = self._started.pop(batch.batch_id, now)
        plan = self._plan(batch)
        nxt = next_attempt(
            started,
            plan,
            retry_min=self.options.retry_min_s,
            retry_max=self.options.retry_max_s,
        )
        attempts = self.store.batch_attempt_failed(
            batch.batch_id, str(err), failed_at=started, next_attempt_at=nxt, invalid=err.invalid
        )
        # Not an accusation: an honest node may be restarting. Nor is giving up (_give_up):
        # only a leaf request the node leaves unrevealed is (report_withheld).
        log.warning(
            "batch listing not usable (attempt %d, %s): %s; next attempt at chain time %d "
            "(gives up at %d); %s",
            attempts,
            "invalid" if err.invalid else "unavailable",
            err,
            nxt,
            plan.give_up_at,
            _batch_text(batch),
            extra={**_batch_log(batch), "attempts": attempts},
        )

    def _fetched(
        self, batch: BatchRow, fetched: FetchedBatch, now: int, report: StepReport
    ) -> None:
        proofs = self._batch_sample(batch)
        decided: list[tuple[Leaf, bool]] = []
        for leaf in fetched.leaves:
            sampled = leaf.index in proofs
            if sampled:
                leaf = dataclasses.replace(leaf, proof=fetched.tree.proof(leaf.index))
            decided.append((leaf, sampled))
        texts = {i: proof_text(p) for i, p in proofs.items()}
        # Its leaves were seen when the batch was (a listing recorded late, after a slow tick,
        # is this challenger's delay, not a batch it never had a chance at); the listing's time
        # only for a row from before the batch's column.
        seen_at = batch.seen_at if batch.seen_at is not None else (now or None)
        if not self.store.fetched_batch(batch, decided, texts, seen_at=seen_at):
            return
        self._forget_batch(batch.batch_id)
        outside = [leaf for leaf, _ in decided if leaf.outside is not None]
        n = sum(1 for leaf, s in decided if s and leaf.outside is None)
        report.sampled += n
        report.skipped += len(decided) - n - len(outside)
        report.undisputable += len(outside)
        self._started.pop(batch.batch_id, None)
        for leaf in outside:
            # Recorded, never disputed (no proof exists for it); a dApp's receipt check
            # refuses its output. The rest of the batch is checked as usual.
            log.warning(
                "batch %d leaf %d not disputable: %s",
                batch.batch_id,
                leaf.index,
                leaf.outside,
                extra={**_batch_log(batch), "index": leaf.index, "job_id": leaf.job_id},
            )
        log.info(
            "batch fetched and checked against its root: %d of %d leaves sampled, "
            "%d outside the domain; %s",
            n,
            len(decided),
            len(outside),
            _batch_text(batch),
            extra={**_batch_log(batch), "sampled": n, "undisputable": len(outside)},
        )

    def _give_up(self, batch: BatchRow, report: StepReport) -> None:
        sampled = sorted(self._batch_sample(batch))
        if not self.store.batch_unavailable(batch, sampled):
            return
        self._forget_batch(batch.batch_id)
        self._started.pop(batch.batch_id, None)
        # Not an accusation: the node may have been restarting at every attempt. The leaf
        # requests decide; a leaf left unrevealed is reported in report_withheld.
        how = "reporting (dry run)" if self.options.dry_run else "requesting"
        extra = {**_batch_log(batch), "attempts": batch.attempts, "sampled": len(sampled)}
        if batch.invalid_attempts:
            report.invalid += 1
            log.warning(
                "batch %d listing invalid after %d attempts (%d answered with a listing that "
                "is not the committed batch; last error: %s); %s %d sampled leaves on chain; %s",
                batch.batch_id,
                batch.attempts,
                batch.invalid_attempts,
                batch.last_error,
                how,
                len(sampled),
                _batch_text(batch),
                extra=extra,
            )
        else:
            report.unavailable += 1
            log.warning(
                "batch %d listing unavailable after %d attempts (last error: %s); %s %d "
                "sampled leaves on chain; %s",
                batch.batch_id,
                batch.attempts,
                batch.last_error,
                how,
                len(sampled),
                _batch_text(batch),
                extra=extra,
            )

    def _batch_seed(self, batch: BatchRow) -> bytes:
        seed = self._seeds.get(batch.batch_id)
        if seed is None:
            seed = self.chain.block_hash(seed_block(batch.commit_block, self.policy.seed_delay))
            self._seeds[batch.batch_id] = seed
        return seed

    def _batch_sample(self, batch: BatchRow) -> dict[int, G1Point]:
        """The sampled positions of ``batch`` with their VRF proofs (waits for the worker
        that started on them when the seed appeared, or computes them now)."""
        seed = self._batch_seed(batch)
        return self.decisions.get(batch.batch_id, batch.model_id, seed, batch.count)

    def _forget_batch(self, batch_id: int) -> None:
        self._seeds.pop(batch_id, None)
        self.decisions.forget(batch_id)

    def close(self) -> None:
        """Stop the worker threads (listing downloads, batch decisions)."""
        self.fetcher.close()
        self.decisions.close()
        if self.defender is not None:
            self.defender.close()

    def _judges(self, model_id: bytes) -> bool:
        """True if this challenger samples and can re-execute the model (cached)."""
        if self.policy.rate(model_id) <= 0:
            return False
        return self._reexecutor(self.chain.model(model_id)) is not None

    def _reexecutor(self, model: RegisteredModel) -> Reexecutor | None:
        """The model's re-executor; None if we cannot judge it (logged once per model)."""
        try:
            reexec = self.reexecutor_for(model)
        except (ConfigError, ModelError) as err:  # permanent: wrong files for this model
            reexec, reason = None, str(err)
        except SpotcheckError as err:  # maybe transient: not cached, tried again later
            log.warning("model 0x%s not usable now: %s", model.model_id.hex(), err)
            return None
        else:
            reason = "no files for this model in the config"
        if reexec is None and model.model_id not in self._warned_models:
            self._warned_models.add(model.model_id)
            log.error("cannot judge model 0x%s: %s", model.model_id.hex(), reason)
        return reexec

    # -- leaf requests ----------------------------------------------------------------------

    def adopt_reveals(self, report: StepReport) -> None:
        """Revealed leaves we asked for (or someone did) become sampled jobs."""
        for req in self.store.adopt_reveals(seen_at=self._tick_time):
            report.revealed += 1
            log.warning(
                "leaf revealed on chain: batch %d index %d will be checked",
                req.batch_id,
                req.index,
                extra=_request_log(req),
            )

    def leaf_requests(self, report: StepReport) -> None:
        """Send planned requests, follow open ones, settle those never revealed."""
        reqs = self.store.leaf_requests(
            LeafRequestState.PLANNED,
            LeafRequestState.SENT,
            LeafRequestState.OPEN,
            LeafRequestState.FOREIGN,
        )
        if not reqs:
            return
        now = self.chain.timestamp()
        self._send_leaf_requests(
            [r for r in reqs if r.state is LeafRequestState.PLANNED], now, report
        )
        for req in reqs:
            if req.state is LeafRequestState.PLANNED:
                continue
            if req.state is LeafRequestState.SENT:
                if not self._adopt_leaf_request(req):
                    # Our transaction did not land (dropped or reverted): decide again.
                    self.store.leaf_request_transition(req.request_id, LeafRequestState.PLANNED)
            else:
                self._follow_leaf_request(req, now, report)

    def report_withheld(self, report: StepReport) -> None:
        """Report each batch proven withheld (a leaf request on it ended unrevealed), once."""
        for batch, req in self.store.report_withheld():
            report.withheld += 1
            log.error(
                "NODE WITHHOLDS BATCH CONTENTS: batch %d leaf %d was not revealed by its reveal "
                "deadline %s (leaf request settled, node slashed); %s",
                batch.batch_id,
                req.index,
                req.reveal_deadline,
                _batch_text(batch),
                extra={**_batch_log(batch), "index": req.index},
            )

    def _send_leaf_requests(
        self, planned: Sequence[LeafRequestRow], now: int, report: StepReport
    ) -> None:
        """Send the planned leaf requests, one ``requestLeaves`` transaction per batch (up to
        :data:`MAX_LEAVES_PER_REQUEST` leaves each), the earliest challenge deadline first.
        A withheld batch's sampled leaves must all be requested; one transaction each took
        ~2-3 s on a loaded chain, and a soak's backlog outlived the challenge window."""
        groups: dict[int, list[LeafRequestRow]] = {}
        for req in planned:
            if self._leaf_request_ready(req, now, report):
                groups.setdefault(req.batch_id, []).append(req)
        if not groups:
            return
        at_risk = self._bond_at_risk()
        order = sorted(groups.values(), key=lambda g: (g[0].challenge_deadline, g[0].batch_id))
        for group in order:
            for start in range(0, len(group), MAX_LEAVES_PER_REQUEST):
                chunk = group[start : start + MAX_LEAVES_PER_REQUEST]
                if not self._send_leaf_group(chunk, at_risk, report):
                    break
                at_risk = self._bond_at_risk()

    def _leaf_request_ready(self, req: LeafRequestRow, now: int, report: StepReport) -> bool:
        """The checks of one planned request before it joins its batch's transaction: dry run
        (reported), a request already on chain (adopted), the window closed (missed)."""
        if self.options.dry_run:
            with suppress(IllegalTransition):
                self.store.leaf_request_transition(req.request_id, LeafRequestState.REPORTED)
                report.reported += 1
                log.warning("DRY RUN: would request leaf", extra=_request_log(req))
            return False
        if self._adopt_leaf_request(req):
            return False
        if now >= req.challenge_deadline:
            with suppress(IllegalTransition):
                self.store.leaf_request_transition(
                    req.request_id, LeafRequestState.MISSED, reason="window closed"
                )
                log.error(
                    "challenge window closed before the leaf request", extra=_request_log(req)
                )
            return False
        return True

    def _send_leaf_group(
        self, group: Sequence[LeafRequestRow], at_risk: int, report: StepReport
    ) -> bool:
        """One ``requestLeaves`` for ``group`` (planned leaves of one batch, at most
        :data:`MAX_LEAVES_PER_REQUEST`), as many of them as the bond cap lets through (the
        group's whole bond counts). False if the cap stopped it (the rest of its batch waits)."""
        first = group[0]
        bond = self.chain.model(first.model_id).challenger_bond
        room = self.options.max_bond_at_risk - at_risk
        fits = max(0, room // bond) if bond > 0 else len(group)
        if fits < len(group):
            report.deferred_by_cap += len(group) - fits
            log.warning(
                "bond cap reached: %d leaf requests of batch %d deferred",
                len(group) - fits,
                first.batch_id,
                extra={**_request_log(first), "at_risk": at_risk, "bond": bond},
            )
            group = group[:fits]
            if not group:
                return False
        if bond > 0:
            # requestLeaves pulls every opened leaf's bond in one transfer: a group the free
            # balance cannot pay reverts whole, every tick, and not one leaf of the batch is
            # requested (audit9 A9-1). As many as the balance pays go now, the rest wait.
            try:
                paid = self.chain.balance() // bond
            except ChainError as err:
                paid = len(group)  # unknown: try the whole group (a revert leaves it planned)
                log.warning("token balance not readable: %s", err)
            if paid < len(group):
                report.deferred_by_cap += len(group) - paid
                log.error(
                    "token balance pays for %d of %d leaf requests of batch %d: the rest "
                    "deferred (fund the challenger's address)",
                    paid,
                    len(group),
                    first.batch_id,
                    extra={**_request_log(first), "bond": bond},
                )
                group = group[: max(0, paid)]
                if not group:
                    return False
        batch = self.store.batch(first.batch_id)
        if batch is None:  # cannot happen: requests are planned with their batch
            report.errors.append(f"leaf request for unknown batch {first.batch_id}")
            return True
        indices = [req.index for req in group]
        try:
            # The root we recorded for the batch: the contract refuses the requests
            # (RootMismatch) if a reorg put another batch at this id.
            tx = self.chain.request_leaves(first.batch_id, indices, batch.root, bond)
        except ChainError as err:
            log.warning(
                "leaf request transaction for batch %d (%d leaves) failed: %s",
                first.batch_id,
                len(group),
                err,
                extra={**_batch_log(batch), "indices": indices},
            )
            report.errors.append(str(err))
            left = [req for req in group if not self._adopt_leaf_request(req)]
            # RootMismatch: the batch at this id is not the one we planned for (a reorg
            # deeper than our confirmations). Retrying cannot help, and no bond was locked.
            # Anything else: planned still, tried again next tick.
            if "RootMismatch" in str(err):
                self._root_mismatch(left, batch)
            return True
        for req in group:
            # Mined: each leaf has a request now, ours or (skipped) another challenger's.
            self.store.leaf_request_transition(
                req.request_id, LeafRequestState.SENT, tx_hash=tx.tx_hash, bond=bond
            )
        log.warning(
            "LEAF REQUESTS SENT: batch %d indices %s (tx %s)",
            first.batch_id,
            indices,
            tx.tx_hash,
            extra={**_batch_log(batch), "indices": indices, "tx": tx.tx_hash},
        )
        for req in group:
            self._adopt_leaf_request(req)
            row = self.store.leaf_request(req.request_id)
            if row is not None and row.state is LeafRequestState.OPEN:
                report.leaf_requested += 1
        return True

    def _root_mismatch(self, reqs: Sequence[LeafRequestRow], batch: BatchRow) -> None:
        for req in reqs:
            with suppress(IllegalTransition):
                self.store.leaf_request_transition(
                    req.request_id,
                    LeafRequestState.MISSED,
                    reason="root mismatch: another batch holds this id (reorg)",
                )
        if reqs:
            log.error(
                "leaf requests refused: batch %d no longer has root 0x%s (reorg); %d missed",
                batch.batch_id,
                batch.root.hex(),
                len(reqs),
                extra=_batch_log(batch),
            )

    def _adopt_leaf_request(self, req: LeafRequestRow) -> bool:
        """If the leaf has a request on chain, record whose it is; True if it has one."""
        v = self.chain.leaf_request(req.request_id)
        if v.status is LeafRequestStatus.NONE:
            return self._preempted_by_dispute(req)
        ours = v.requester.lower() == self.chain.me.lower()
        to = LeafRequestState.OPEN if ours else LeafRequestState.FOREIGN
        with suppress(IllegalTransition):  # adopted already
            self.store.leaf_request_transition(
                req.request_id,
                to,
                requester=v.requester,
                bond=v.bond,
                reveal_deadline=v.reveal_deadline,
                ours=ours,
            )
            if not ours:
                log.info("another challenger requested this leaf first", extra=_request_log(req))
        if v.status is LeafRequestStatus.SLASHED:
            self.store.leaf_request_transition(req.request_id, LeafRequestState.SLASHED)
        return True

    def _preempted_by_dispute(self, req: LeafRequestRow) -> bool:
        """True if the leaf has a dispute (someone else's: a dApp or challenger that had the
        leaf's data, or the node's second address): it can never get a leaf request
        (``requestLeaves`` skips it without a trace), and the dispute decides it. The row ends
        ``preempted``, never sent again nor reported missed (audit9 A9-2)."""
        d = self.chain.dispute(req.request_id)
        if d.status is DisputeStatus.NONE:
            return False
        with suppress(IllegalTransition):  # preempted already
            self.store.leaf_request_transition(
                req.request_id, LeafRequestState.PREEMPTED, reason=f"disputed by {d.challenger}"
            )
            log.info(
                "leaf disputed by %s: no leaf request needed, the dispute decides it",
                d.challenger,
                extra=_request_log(req),
            )
        return True

    def _follow_leaf_request(self, req: LeafRequestRow, now: int, report: StepReport) -> None:
        v = self.chain.leaf_request(req.request_id)
        if v.status is LeafRequestStatus.NONE:
            self._leaf_request_gone(req, report)
        elif v.status is LeafRequestStatus.SLASHED:
            with suppress(IllegalTransition):
                self.store.leaf_request_transition(req.request_id, LeafRequestState.SLASHED)
                report.leaf_settled += 1
                log.warning("leaf request settled: node slashed", extra=_request_log(req))
        elif v.status is LeafRequestStatus.OPEN and now > v.reveal_deadline:
            # Anyone may settle; we settle others' too, so a withheld leaf is always punished.
            try:
                tx = self.chain.settle_leaf_request(req.request_id)
            except ChainError as err:
                report.errors.append(str(err))
                log.warning("settleLeafRequest failed: %s", err, extra=_request_log(req))
                return
            with suppress(IllegalTransition):
                self.store.leaf_request_transition(
                    req.request_id, LeafRequestState.SLASHED, tx_hash=tx.tx_hash
                )
                report.leaf_settled += 1
                log.warning(
                    "LEAF NEVER REVEALED: node slashed (tx %s)",
                    tx.tx_hash,
                    extra={**_request_log(req), "tx": tx.tx_hash},
                )
        # REVEALED: the LeafRevealed event makes it a job (adopt_reveals).

    def _leaf_request_gone(self, req: LeafRequestRow, report: StepReport) -> None:
        """The chain has no request on a leaf we saw requested (a reorg dropped it): planned
        again (the send step adopts a request found on chain, sends ours inside the window,
        or marks it missed), unless our request transaction is pending again (waits)."""
        if req.tx_hash is not None:
            try:
                pending = self.chain.tx_pending(req.tx_hash)
            except ChainError as err:
                report.errors.append(str(err))
                log.warning("cannot read leaf request transaction: %s", err)
                return
            if pending:
                return
        with suppress(IllegalTransition):  # moved on meanwhile
            self.store.leaf_request_transition(req.request_id, LeafRequestState.PLANNED)
            log.warning(
                "leaf request no longer on chain (a reorg dropped it): planned again",
                extra=_request_log(req),
            )

    def _bond_at_risk(self) -> int:
        """Bond locked in our open disputes and open leaf requests (``bondAtRisk`` has both)."""
        return self.chain.bond_at_risk()

    # -- check ------------------------------------------------------------------------------

    def check(self, report: StepReport) -> None:
        jobs = self.store.jobs(JobState.SAMPLED)
        if not jobs:
            return
        now = self.chain.timestamp()
        for job in jobs:
            if now > job.challenge_deadline and not self._leaf_window(job, now).open:
                self._missed(job, MISSED_BEFORE_CHECK)
                continue
            model = self.chain.model(job.model_id)
            reexec = self._reexecutor(model)
            if reexec is None:
                continue
            input_q = job.input_q
            if input_q is None:
                found = self.chain.request_input(job.job_id, before_block=job.commit_block)
                input_q = None if found is None else found[1]
            if input_q is None or job.output_q is None:
                report.errors.append(f"job {job.job_id}: input or output unknown")
                continue
            outside = _outside_domain(input_q, model.in_lo, model.in_hi)
            if outside is not None:
                # No proof exists for such an input: disputing it could slash an honest node.
                with suppress(IllegalTransition):
                    self.store.transition(job.job_key, JobState.UNDISPUTABLE, reason=outside)
                    report.undisputable += 1
                    log.warning("not disputable: %s", outside, extra=_job_log(job))
                continue
            try:
                result = check_output(
                    reexec, input_q, job.output_q, model.tau, screen=self.options.screen
                )
            except SpotcheckError as err:  # could not decide: try again next tick
                report.errors.append(f"job {job.job_id}: {err}")
                log.warning("re-execution failed: %s", err, extra=_job_log(job))
                continue
            to = JobState.MISMATCHED if result.disputable else JobState.MATCHED
            with suppress(IllegalTransition):
                self.store.transition(
                    job.job_key,
                    to,
                    reason=result.reason,
                    screen_diff=result.screen_diff,
                    witness_diff=result.witness_diff,
                )
                if result.disputable:
                    report.mismatched += 1
                    log.warning("MISMATCH: %s", result.reason, extra=_job_log(job))
                else:
                    report.matched += 1

    # -- paid checks ------------------------------------------------------------------------

    def _claim(self, report: StepReport) -> None:
        assert self.claimer is not None
        r = self.claimer.step()
        report.claims_sent += r.sent
        report.claims_paid += r.paid
        report.payouts += r.payouts
        report.claims_forfeited += r.forfeited

    def _defend(self, report: StepReport) -> None:
        assert self.defender is not None
        r = self.defender.step()
        report.defences_sent += r.sent
        report.defences_won += r.won
        report.defences_lost += r.lost
        report.defences_too_late += r.too_late
        report.defences_node += r.node_defended

    def _reveal(self, report: StepReport) -> None:
        assert self.revealer is not None
        r = self.revealer.step()
        report.reveals_sent += r.sent
        report.reveals_won += r.won
        report.reveals_too_late += r.too_late
        report.reveals_node += r.node_revealed

    # -- dispute ----------------------------------------------------------------------------

    def dispute(self, report: StepReport) -> None:
        jobs = dispute_order(self.store.jobs(JobState.MISMATCHED), self.chain.me)
        if not jobs:
            return
        for job in jobs:
            if self.options.dry_run:
                with suppress(IllegalTransition):
                    self.store.transition(job.job_key, JobState.REPORTED)
                    report.reported += 1
                    log.warning("DRY RUN: would dispute", extra=_job_log(job))
                continue
            if self._adopt_existing(job):
                continue
            now = self.chain.timestamp()
            window = self._leaf_window(job, now)
            if window.blocked:
                continue  # a leaf request is open on it: disputable again once revealed
            if window.settled:
                self._settled_by_request(job)
                continue
            if now > job.challenge_deadline and not window.open:
                self._missed(job, MISSED_BEFORE_DISPUTE)
                continue
            bond = self.chain.model(job.model_id).challenger_bond
            at_risk = self._bond_at_risk()
            if at_risk + bond > self.options.max_bond_at_risk:
                report.deferred_by_cap += 1
                log.warning(
                    "bond cap reached: dispute deferred",
                    extra={
                        **_job_log(job),
                        "at_risk": at_risk,
                        "bond": bond,
                        "cap": self.options.max_bond_at_risk,
                    },
                )
                continue
            try:
                tx = self._send_dispute(job, bond)
            except ChainError as err:
                log.warning("dispute transaction failed: %s", err, extra=_job_log(job))
                report.errors.append(str(err))
                self._adopt_existing(job)
                continue
            self.store.transition(job.job_key, JobState.DISPUTE_SENT, tx_hash=tx.tx_hash)
            report.disputed += 1
            log.warning("DISPUTE OPENED", extra={**_job_log(job), "tx": tx.tx_hash})
            self._adopt_existing(job)

    def _missed(self, job: JobRow, step: str) -> None:
        """The window closed before ``step``: ``missed``, with a reason that tells a job this
        challenger saw in time (an error: it was down, slow or capped) from one it first
        recorded after the deadline (a warning: it never had a chance)."""
        reason = missed_reason(job, step)
        with suppress(IllegalTransition):
            self.store.transition(job.job_key, JobState.MISSED, reason=reason)
            if reason == MISSED_SEEN_LATE:
                log.warning(
                    "job first seen at chain time %s, after its challenge deadline %d: missed",
                    job.seen_at,
                    job.challenge_deadline,
                    extra=_job_log(job),
                )
            else:
                log.error(
                    "challenge %s (deadline %d, first seen at chain time %s)",
                    reason,
                    job.challenge_deadline,
                    job.seen_at,
                    extra=_job_log(job),
                )

    def _settled_by_request(self, job: JobRow) -> None:
        """A wrong leaf whose leaf request (someone else's) ended unrevealed: the node was
        slashed for it, and the contract refuses any dispute on it. Retrying the dispute until
        the window closed marked it ``missed``; it is ``preempted`` (punished by another)."""
        with suppress(IllegalTransition):
            self.store.transition(
                job.job_key,
                JobState.PREEMPTED,
                reason="leaf request settled unrevealed: the node was slashed for this leaf",
            )
            log.info(
                "leaf not revealed on someone else's request: node slashed for it, no dispute",
                extra=_job_log(job),
            )

    def _leaf_window(self, job: JobRow, now: int) -> _LeafWindow:
        """Whether a batch leaf's dispute window is extended or blocked by a leaf request.

        Anyone (the node's own second address too) may request a leaf we found wrong: while
        the request is open no dispute can be opened on it, and its reveal reopens the leaf
        until the reveal's dispute deadline, which may be after the batch's challenge
        deadline. So a leaf with a request on it is never given up early.
        """
        if job.kind is not JobKind.BATCH:
            return _LeafWindow(open=False, blocked=False)
        lr = self.chain.leaf_request(job.job_key)
        if lr.status is LeafRequestStatus.OPEN:
            return _LeafWindow(open=True, blocked=True)
        if lr.status is LeafRequestStatus.REVEALED:
            return _LeafWindow(open=now <= lr.dispute_deadline, blocked=False)
        if lr.status is LeafRequestStatus.SLASHED:
            return _LeafWindow(open=False, blocked=False, settled=True)
        return _LeafWindow(open=False, blocked=False)

    def _send_dispute(self, job: JobRow, bond: int) -> Any:
        if job.kind is JobKind.ONCHAIN:
            if job.output_hash is None:
                raise ChainError(f"job {job.job_id} lacks its output hash")
            return self.chain.open_dispute(job.job_id, job.output_hash, bond)
        proof = job.merkle_proof
        if proof is None:  # a revealed leaf: the proof is in the reveal's calldata
            tx = self.store.reveal_tx(job.job_key)
            proof = None if tx is None else self.chain.reveal_proof(tx)
            if proof is not None:
                self.store.set_reveal_proof(job.job_key, proof)
        if job.input_hash is None or job.output_hash is None or proof is None:
            raise ChainError(f"batch {job.ref} leaf {job.leaf_index} lacks hashes or proof")
        if job.leaf_index is None:
            raise ChainError(f"batch {job.ref} leaf of job {job.job_id} has no position")
        return self.chain.open_batch_dispute(
            job.ref, job.leaf_index, job.job_id, job.input_hash, job.output_hash, proof, bond
        )

    def _adopt_existing(self, job: JobRow) -> bool:
        """If the job already has a dispute on chain, record whose it is; True if it has one."""
        d = self.chain.dispute(job.job_key)
        if d.status is DisputeStatus.NONE:
            return False
        if d.challenger.lower() == self.chain.me.lower():
            self.store.transition(
                job.job_key, JobState.DISPUTE_OPEN, bond=d.bond, proof_deadline=d.proof_deadline
            )
        else:
            with suppress(IllegalTransition):
                self.store.transition(job.job_key, JobState.PREEMPTED, reason=d.challenger)
                log.info("another challenger disputed first", extra=_job_log(job))
        return True

    # -- resolve ----------------------------------------------------------------------------

    def resolve(self, report: StepReport) -> None:
        for job in self.store.jobs(JobState.DISPUTE_SENT):
            if not self._adopt_existing(job):
                # Our transaction did not land (dropped or reverted): decide again.
                self._dispute_gone(job, report)
        jobs = self.store.jobs(JobState.DISPUTE_OPEN)
        if not jobs:
            return
        now = self.chain.timestamp()
        for job in jobs:
            d = self.chain.dispute(job.job_key)
            if d.status is DisputeStatus.NONE:
                # A reorg dropped our dispute (audit A5-7): dispute again while the window is
                # open (the dispute step marks it missed after).
                self._dispute_gone(job, report)
            elif d.status is DisputeStatus.DEFENDED:
                with suppress(IllegalTransition):
                    self.store.transition(job.job_key, JobState.LOST)
                    report.lost += 1
                    log.error("dispute LOST: the node proved its output", extra=_job_log(job))
            elif d.status is DisputeStatus.SLASHED:
                with suppress(IllegalTransition):
                    self.store.transition(job.job_key, JobState.WON)
                    report.won += 1
                    log.warning("dispute WON (settled)", extra=_job_log(job))
            elif d.status is DisputeStatus.OPEN and now > d.proof_deadline:
                try:
                    tx = self.chain.settle(job.job_key)
                except ChainError as err:
                    report.errors.append(str(err))
                    log.warning("settle failed: %s", err, extra=_job_log(job))
                    continue
                with suppress(IllegalTransition):
                    self.store.transition(job.job_key, JobState.WON, tx_hash=tx.tx_hash)
                    report.won += 1
                    log.warning(
                        "dispute WON: node slashed", extra={**_job_log(job), "tx": tx.tx_hash}
                    )

    def _dispute_gone(self, job: JobRow, report: StepReport) -> None:
        """The chain has no dispute on a job we disputed: back to ``mismatched`` (disputed
        again by the dispute step, or ``missed`` once the window closed), unless our dispute
        transaction is still pending (a reorg put it back in the mempool): sending another
        would race it, so the job waits until it is mined or gone."""
        if job.tx_hash is not None:
            try:
                pending = self.chain.tx_pending(job.tx_hash)
            except ChainError as err:
                report.errors.append(str(err))
                log.warning("cannot read dispute transaction: %s", err, extra=_job_log(job))
                return
            if pending:
                log.warning(
                    "dispute not on chain, its transaction %s is pending: waiting",
                    job.tx_hash,
                    extra=_job_log(job),
                )
                return
        with suppress(IllegalTransition):  # moved on meanwhile
            self.store.transition(job.job_key, JobState.MISMATCHED)
            log.warning(
                "our dispute is not on chain (dropped, reverted or removed by a reorg): the job "
                "is mismatched again",
                extra=_job_log(job),
            )

    # -- withdraw ---------------------------------------------------------------------------

    def withdraw(self, report: StepReport) -> int:
        amount = self.chain.credits()
        if amount <= 0:
            return 0
        tx = self.chain.withdraw_credits()
        assert tx.tx_hash is not None  # the challenger sends every transaction (no dry-run result)
        self.store.record_withdrawal(tx.tx_hash, amount)
        report.withdrawn += amount
        log.info("credits withdrawn", extra={"amount": amount, "tx": tx.tx_hash})
        return amount


def dispute_order(jobs: Sequence[JobRow], me: str) -> list[JobRow]:
    """The order this challenger disputes wrong jobs in: the closest challenge deadline first,
    and within one deadline (a batch's leaves share it) an order of this challenger's own
    (``keccak(me, jobKey)``). A dispute is one transaction per block or so: challengers that all
    walked a batch's wrong leaves in the same order collided on every one (``DisputeExists``)
    and together disputed little more than one alone before the window closed; in their own
    orders they dispute different leaves first."""
    mine = bytes.fromhex(me.removeprefix("0x").lower().rjust(40, "0"))
    return sorted(jobs, key=lambda j: (j.challenge_deadline, keccak256(mine + j.job_key)))


def _job_log(job: JobRow) -> dict[str, Any]:
    return {
        "job_key": "0x" + job.job_key.hex(),
        "kind": job.kind.name.lower(),
        "ref": job.ref,
        "job_id": job.job_id,
        "node": job.node,
    }


def _batch_log(batch: BatchRow) -> dict[str, Any]:
    return {"batch_id": batch.batch_id, "node": batch.node, "uri": batch.uri}


def _batch_text(batch: BatchRow) -> str:
    return f"batch_id={batch.batch_id} node={batch.node} uri={batch.uri}"


def _request_log(req: LeafRequestRow) -> dict[str, Any]:
    return {
        "request_id": "0x" + req.request_id.hex(),
        "batch_id": req.batch_id,
        "index": req.index,
        "node": req.node,
    }


def _outside_domain(input_q: Sequence[int], lo: int, hi: int) -> str | None:
    """Why ``input_q`` is outside ``[lo, hi]`` (``verifier.domain.in_domain``), or None."""
    i = in_domain([int(v) for v in input_q], lo, hi)
    return None if i is None else f"input[{i}] = {input_q[i]} outside the domain [{lo}, {hi}]"
