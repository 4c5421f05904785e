"""The node's chain loop: follow requests and disputes, commit, finalize, defend.

One :meth:`NodeService.step` does, in order, each phase on its own (an exception in one phase,
or on one job, batch or dispute, is logged with its ids and never stops the others):

0. on the first step after a start (and until it succeeds), reconcile every intent left by the
   previous run with the chain: a batch in ``committing`` is looked up in the chain's
   ``BatchCommitted`` events (this node, this root), a job in ``committing`` by its status;
1. follow ``JobRequested`` naming this node, ``LeafRequested`` and ``DisputeOpened`` against
   it (recorded in the same SQLite transaction as the log checkpoint);
   then broadcast again, as signed, the node's journaled transactions the chain node dropped
   (a reorg; :meth:`prover.transactions.TxSender.check_dropped`);
2. leaf requests, most urgent reveal deadline first: every reveal is broadcast back-to-back
   (consecutive nonces, journaled; no wait for each receipt), so one block can mine them all;
3. disputes: settled or expired ones are recorded; the others go to the defence worker, in
   proof-deadline order. The worker (its own thread and queue once :meth:`run` starts it;
   inline when a test calls :meth:`step`) checks the committed output against the circuit's
   witness, proves, and sends ``defend``; proving never holds up commits or finalization;
4. commit on-chain jobs (infer, check against the circuit's witness per ``witness_check``, pin
   the output, send, record);
5. cut due batches and commit their roots; a batch id from a commit's receipt is taken as
   settled only once the commit is ``confirmations`` blocks deep (its BatchCommitted log is
   read again then: a reorg may have moved it), and a batch named by an id the node does not
   know (or whose root on chain is not the stored one) is found by (root, modelId, node) and
   its id corrected (:meth:`NodeService.resolve_batch`);
6. finalize own jobs and confirmed batches whose challenge window has passed (fees); a batch
   seen final is re-read ``confirmations`` blocks later and finalized again if a reorg
   dropped its finalizeBatch, and settled (prunable) only once the finalizeBatch is
   ``confirmations`` deep in the block its log is in now (:meth:`NodeService.confirm_finals`);
7. run queued self-audits; a miss halts that model only (no new commitments or HTTP jobs
   for it; everything else goes on).

Phases 4 to 6 send one transaction per job or batch and wait for each receipt (a block each),
and their length is not the node's to choose: anyone can request K on-chain jobs at the node's
price, and ordinary load finalizes many jobs at once. So before each of their items (at most
every ``urgent_interval_s``) :meth:`NodeService._urgent` reads new events, broadcasts due reveals
(no wait for receipts) and, with the defence worker running, queues new disputes: a leaf request
never waits for a whole phase (audit 2, A2-2). The self-audit calls it before each sample, and
every receipt wait of the chain loop between two polls (``TxSender.on_wait``; audit 3). It
runs on the chain loop's own thread and sends through the same
:class:`prover.transactions.TxSender` and journal as everything else, so there is still one
nonce authority and a restart resumes every reveal.

Every send is preceded by a chain check (``getJob`` status, ``BatchCommitted`` logs,
``getDispute`` status), and every transaction goes through :class:`prover.transactions.TxSender`
(journaled before the broadcast, resumed with its own nonce after a restart, replaced with a
higher fee when stuck), so a restart after a crash at any point neither repeats nor forgets a
transaction. ``crash_hook`` lets tests stop the service at each of those points.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from prover.batching import BatchCutter, defendable_output, needs_witness
from prover.chain_io import NodeChain
from prover.defence import ProofBackend, ProofCancelledError, SelfAuditor
from prover.inference import InferenceEngine, ModelSpec
from prover.metrics import NodeMetrics
from prover.store import (
    UNRESOLVED_DISPUTES,
    WORKING_DISPUTES,
    Batch,
    BatchState,
    Dispute,
    DisputeState,
    JobState,
    LeafRequest,
    OnchainJob,
    Store,
)
from prover.work_gate import WorkGate
from spotcheck.chain import (
    BatchStatus,
    DisputeStatus,
    JobKind,
    JobStatus,
    LeafRequestStatus,
    TxResult,
)
from spotcheck.encoding import batch_leaf_key, hash_vector, max_abs_diff, onchain_job_key, to_hex
from spotcheck.errors import (
    STAKE_ERRORS,
    InputError,
    ProofError,
    RevertError,
    SpotcheckError,
    StateError,
    describe_revert,
    revert_name,
)
from spotcheck.follower import ChainEvent, LogFollower
from spotcheck.kit.loop import run_loop
from spotcheck.kit.ready import Readiness

log = logging.getLogger(__name__)

CrashHook = Callable[[str], None]
T = TypeVar("T")


def _no_crash(point: str) -> None:
    return None


@dataclass
class StepReport:
    """What one step did (for logs and tests); the challenger's ``challenger.service.StepReport``
    is the same kind of record (a plain dataclass, counted as the step runs)."""

    events: int = 0
    committed_jobs: int = 0
    committed_batches: int = 0
    finalized: int = 0
    defended: int = 0
    #: Phases that raised in this step (each was logged; the others ran).
    failed: tuple[str, ...] = ()

    @property
    def failure(self) -> str | None:
        """Why this step counts as failed for readiness (None: every phase ran)."""
        return "phase(s) failed: " + ", ".join(self.failed) if self.failed else None


class NodeService:
    """The long-running side of a node (the HTTP API runs beside it on the same store)."""

    def __init__(
        self,
        chain: NodeChain,
        store: Store,
        engine: InferenceEngine,
        cutter: BatchCutter,
        *,
        backend: ProofBackend | None,
        auditor: SelfAuditor,
        metrics: NodeMetrics,
        batch_uri: Callable[[int], str] = lambda local_id: "",
        confirmations: int = 0,
        start_block: int = 0,
        defend_alert_fraction: float = 0.5,
        crash_hook: CrashHook = _no_crash,
        prices: dict[bytes, int] | None = None,
        withhold_reveals: bool = False,
        reveal_wait_s: float = 2.0,
        urgent_interval_s: float = 1.0,
        ready_max_age_s: float = 300.0,
        work_gate: WorkGate | None = None,
        prune: Callable[[], int] | None = None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.engine = engine
        self.cutter = cutter
        self.backend = backend
        self.auditor = auditor
        self.metrics = metrics
        self.batch_uri = batch_uri
        self.start_block = start_block
        #: Blocks a commitBatch must be buried under before its batch id is taken as settled.
        self.confirmations = confirmations
        self.defend_alert_fraction = defend_alert_fraction
        self._crash = crash_hook
        #: model id -> the lowest fee this node commits an on-chain request for (its price)
        self.prices = dict(prices or {})
        #: WITHHOLDING MODE (tests and demos): leaf requests are recorded and never answered.
        self.withhold_reveals = withhold_reveals
        #: leaf requests already logged as withheld (the warning is said once per request)
        self._withheld: set[bytes] = set()
        #: Whether the stake backs new work (read each step; None: not checked, for tests that
        #: drive the service without a stake).
        self.work_gate = work_gate
        #: One bounded pruning pass of final batches' vectors (``prover.retention``), or None.
        self.prune = prune
        #: After broadcasting a step's reveals, wait at most this long for their receipts
        #: (together); the next step sees the rest.
        self.reveal_wait_s = reveal_wait_s
        #: Inside the long phases (commits, finalizations), look for new leaf requests and
        #: disputes at most this often (:meth:`_urgent`).
        self.urgent_interval_s = urgent_interval_s
        self._urgent_at = 0.0
        self._in_urgent = False
        #: the thread that runs :meth:`step` (the chain loop): the only one `_urgent` runs on
        self._loop_thread: threading.Thread | None = None
        # A receipt wait of the chain loop (up to the fee policy's timeout) answers leaf
        # requests meanwhile (A3-N3).
        sender = getattr(chain, "sender", None)
        if sender is not None:
            sender.on_wait = self._urgent_while_waiting
        self._stop = threading.Event()
        #: ready = the chain was read recently and no phase failed since (``/ready``; set by
        #: :meth:`_follow` and by the run loop at the end of each step).
        self.readiness = Readiness(ready_max_age_s)
        self._failed: list[str] = []
        jm = chain.contracts.job_manager
        dm = chain.contracts.dispute_manager
        self.follower = LogFollower(
            store.path,
            f"node-{chain.address.lower()}",
            [(jm, ["JobRequested"]), (dm, ["DisputeOpened", "LeafRequested"])],
            confirmations=confirmations,
            start_block=start_block,
        )
        self._proof_windows: dict[bytes, int] = {}
        self._taus: dict[bytes, int] = {}
        self._reconciled = False
        #: batch id -> monotonic time until which it is known not to be one of ours (listings
        #: asked for ids the node does not know cost one getBatch each, at most this often)
        self._not_ours: dict[int, float] = {}
        self._resolve_lock = threading.Lock()
        self.worker = DefenceWorker(self)

    # -- loop -------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """True when every served model is halted by its self-audit."""
        ids = self.engine.model_ids
        return bool(ids) and all(self.auditor.is_halted(m) for m in ids)

    def stop(self) -> None:
        self._stop.set()
        self.worker.stop()

    def run(self, poll_interval_s: float = 1.0) -> None:
        """Step until :meth:`stop` (or SIGINT/SIGTERM on the main thread), proving on the
        defence worker's thread: the kit's run loop. Nothing that goes wrong in one step (an
        RPC outage, a bad record, a bug) ends the loop: it is logged, the node is not ready
        until a step succeeds again, and the next step (after a backoff) tries again."""
        node = self.chain.address
        log.info("node running", extra={"node": node})
        self.worker.start()
        try:
            run_loop(
                lambda: self.step(),  # looked up per call: tests replace it
                stop=self._stop,
                interval_s=poll_interval_s,
                name=f"node {node} step",
                readiness=self.readiness,
                failure=lambda report: report.failure,
            )
        finally:
            self.worker.stop()
        log.info("node stopped", extra={"node": node})

    def _phase(self, name: str, fn: Callable[[], T], default: T) -> T:
        """Run one phase of a step; an exception is logged with the phase name (and counted in
        the step's report), never raised."""
        try:
            return fn()
        except Exception as err:
            self._failed.append(name)
            log.error("node phase failed (will retry next step): %s", err, extra={"phase": name})
            return default

    def step(self) -> StepReport:
        self._failed = []
        self._loop_thread = threading.current_thread()
        if not self._reconciled:
            self._phase("reconcile", self.reconcile, None)
        events = self._phase("follow", self._follow, 0)
        # A reorg that dropped our transactions for good: the same signed ones go out again
        # first (a later transaction waits behind a dropped nonce until then).
        self._phase("resend-dropped", self.chain.resend_dropped, 0)
        # Hardest deadlines first: reveals (broadcast back-to-back, then one short wait for all
        # their receipts: `reveal_wait_s`), then disputes
        # (queued for the defence worker), then commits.
        self._phase("reveal-leaves", self.reveal_leaves, 0)
        defended = self._phase("disputes", self.defend_disputes, 0)
        if self.work_gate is not None:
            self._phase("stake", self.work_gate.refresh, None)
        self._urgent_at = time.monotonic()
        # The phases below call `_urgent` before each job or batch: new leaf requests are read
        # and revealed (and new disputes queued) between their transactions.
        committed_jobs = self._phase("commit-jobs", self.commit_jobs, 0)
        committed_batches = self._phase("commit-batches", self.commit_batches, 0)
        self._phase("confirm-batches", self.confirm_batches, 0)
        self._phase("confirm-finals", self.confirm_finals, 0)
        finalized = self._phase("finalize", self.finalize_due, 0)
        self._phase("self-audit", self._audit, None)
        if self.prune is not None:
            self._phase("prune", self.prune, 0)
        self._phase("gauges", self._update_gauges, None)
        failed = tuple(dict.fromkeys(self._failed))
        return StepReport(events, committed_jobs, committed_batches, finalized, defended, failed)

    def _follow(self) -> int:
        events = self.follower.process(self._on_events, rollback=self._on_reorg)
        # The chain answered and every event up to the safe head is recorded: ready, already
        # mid-step (a restarted node's first step may commit a long backlog; a phase that
        # fails later in the step makes it not ready again when the step ends).
        self.readiness.step_ok()
        return events

    def _on_reorg(self, conn: sqlite3.Connection, fork: int) -> None:
        """A reorg replaced handled blocks after ``fork``: what the node answered may be gone
        from the new branch, so every answer is re-checked against it (audit A5-1)."""
        disputes, requests = self.store.reopen_answered(conn)
        log.warning(
            "chain reorg: answered disputes and leaf requests are re-checked on the new branch",
            extra={"fork": fork, "disputes": disputes, "leaf_requests": requests},
        )

    def _audit(self) -> None:
        self.auditor.drain(before_each=self._urgent)  # a witness each: seconds for a real circuit

    def _urgent(self) -> None:
        """Between two items of a long phase: follow new events, broadcast the reveals now due
        (without waiting for their receipts: the next call or step records them) and, when the
        defence worker runs on its own thread, queue new disputes (and cancel the proof of one
        someone else settled). At most every ``urgent_interval_s``; never raises; a call from
        inside another (a receipt wait of its own sends) does nothing."""
        now = time.monotonic()
        if self._in_urgent or now - self._urgent_at < self.urgent_interval_s:
            return
        self._urgent_at = now
        self._in_urgent = True
        try:
            self._phase("follow", self._follow, 0)
            if self.store.leaf_requests("open"):
                self._phase("reveal-leaves", lambda: self.reveal_leaves(wait=False), 0)
            if self.worker.running:
                self._phase("disputes", self.defend_disputes, 0)
        finally:
            self._in_urgent = False

    def _urgent_while_waiting(self) -> None:
        """The sender's hook between two polls of a receipt: :meth:`_urgent`, on the chain
        loop's thread only (the defence worker's ``defend`` waits leave it to the loop)."""
        if threading.current_thread() is self._loop_thread:
            self._urgent()

    # -- 0. reconciliation ------------------------------------------------------------------

    def reconcile(self) -> None:
        """Settle every intent a previous run left (``committing`` batches and jobs) with what
        the chain says, before anything is sent. Per row: one bad row does not stop the rest."""
        ok = True
        for batch in self.store.batches(BatchState.COMMITTING):
            try:
                self._reconcile_batch(batch)
            except Exception as err:
                ok = False
                log.error("reconcile failed: %s", err, extra=_batch_log(batch))
        for job in self.store.onchain_jobs(JobState.COMMITTING):
            try:
                view = self.chain.job(job.job_id)
                if view.status not in (JobStatus.REQUESTED, JobStatus.NONE):
                    self._commit_job(job)  # records the outcome the chain shows
            except Exception as err:
                ok = False
                log.error("reconcile failed: %s", err, extra={"job_id": job.job_id})
        self._reconciled = ok

    def _reconcile_batch(self, batch: Batch) -> bool:
        """True if the batch's commitBatch was mined (and is now recorded as committed)."""
        found = self.chain.committed_batch_log(batch.model_id, batch.root, self.start_block)
        if found is None:
            return False
        self.store.mark_batch_committed(
            batch.local_id, found[0], None, found[1], commit_block=found[2] or None
        )
        log.info("commitBatch found on chain", extra={**_batch_log(batch), "batch_id": found[0]})
        return True

    # -- 1. events --------------------------------------------------------------------------

    def _on_events(self, events: list[ChainEvent], conn: sqlite3.Connection) -> None:
        me = self.chain.address.lower()
        for ev in events:
            args = ev.args
            if str(args.get("node", "")).lower() != me:
                continue
            if ev.name == "JobRequested":
                self.store.record_requested(
                    int(args["jobId"]),
                    bytes(args["modelId"]),
                    [int(v) for v in args["input"]],
                    int(args["commitDeadline"]),
                    fee=int(args["fee"]),
                    input_hash=bytes(args["inputHash"]),
                    conn=conn,
                )
            elif ev.name == "LeafRequested":
                if self.store.record_leaf_request(
                    bytes(args["requestId"]),
                    int(args["batchId"]),
                    int(args["index"]),
                    int(args["revealDeadline"]),
                    conn=conn,
                ):
                    log.warning(
                        "LEAF REQUEST: reveal before its deadline",
                        extra={
                            "request_id": to_hex(args["requestId"]),
                            "batch_id": int(args["batchId"]),
                            "index": int(args["index"]),
                            "reveal_deadline": int(args["revealDeadline"]),
                        },
                    )
            elif ev.name == "DisputeOpened":  # noqa: SIM102 - record, then count new ones
                if self.store.record_dispute(
                    bytes(args["disputeId"]),
                    int(args["kind"]),
                    int(args["ref"]),
                    int(args["jobId"]),
                    int(args["proofDeadline"]),
                    leaf_index=int(args["index"]),
                    conn=conn,
                ):
                    self.metrics.disputes.labels("opened").inc()
                    log.warning(
                        "DISPUTE opened against this node",
                        extra={
                            "dispute_id": to_hex(args["disputeId"]),
                            "job_id": int(args["jobId"]),
                            "proof_deadline": int(args["proofDeadline"]),
                            "tx": ev.tx_hash,
                        },
                    )

    # -- 2. on-chain jobs -------------------------------------------------------------------

    def commit_jobs(self) -> int:
        done = 0
        jobs = list(self.store.onchain_jobs(JobState.REQUESTED, JobState.COMMITTING))
        if self.work_gate is not None:
            self.work_gate.keep_jobs({job.job_id for job in jobs})
        for job in jobs:
            if job.status == JobState.REQUESTED and self.auditor.is_halted(job.model_id):
                continue  # the model is halted: no new commitments for it
            if self._refuse_job(job):
                continue
            self._urgent()
            try:
                committed = self._commit_job(job)
                if self.work_gate is not None:
                    # Mined (now, or a commitment sent before and found on chain, perhaps
                    # after this step's read): reserved until the next read holds its lock.
                    # Dropped before any commitment was sent: nothing to hold.
                    if committed or job.status == JobState.COMMITTING:
                        self.work_gate.job_mined(job.job_id)
                    else:
                        self.work_gate.job_dropped(job.job_id)
                if committed:
                    done += 1
            except RevertError as err:
                if not self._stake_revert("commitResult", err):
                    log.error("commit failed, will retry: %s", err, extra={"job_id": job.job_id})
            except Exception as err:
                log.error("commit failed, will retry: %s", err, extra={"job_id": job.job_id})
        return done

    def _refuse_job(self, job: OnchainJob) -> bool:
        """True when the stake cannot back this job's commitment now (:mod:`prover.work_gate`):
        dropped when the node is unbonding or below the minimum (the requester cancels after
        the commit deadline), held when the free stake is only short for now. False: its slash
        is reserved in the gate's ledger (shared with the HTTP API) until mined or dropped."""
        gate = self.work_gate
        if gate is None:
            return False
        if self._in_flight(f"commitResult:{job.job_id}"):
            gate.reserve_job(job.job_id, job.model_id, force=True)  # already sent
            return False
        why = gate.reserve_job(job.job_id, job.model_id)
        if why is None:
            return False
        if gate.permanent:
            log.error("not accepting work (%s); dropping", why, extra={"job_id": job.job_id})
            self.store.mark_job(job.job_id, JobState.DROPPED, f"not accepting work: {why}"[:500])
            gate.job_dropped(job.job_id)
        return True

    def _in_flight(self, intent: str) -> bool:
        """True when a transaction of ``intent`` is journaled (sent, outcome not seen yet): it
        is seen through whatever the gate says."""
        sender = getattr(self.chain, "sender", None)
        return sender is not None and bool(sender.journal.txs_for(intent))

    def _stake_revert(self, action: str, err: RevertError) -> bool:
        """A commitment reverted because of the node's own stake: the gate closes (one log
        line) and the work is held or dropped by it, not retried. False for other reverts."""
        if err.error not in STAKE_ERRORS or self.work_gate is None:
            return False
        self.work_gate.trip(f"{action} reverts {describe_revert(err)}")
        return True

    def _commit_job(self, job: OnchainJob) -> bool:
        view = self.chain.job(job.job_id)
        if job.status == JobState.COMMITTING and view.status != JobStatus.REQUESTED:
            # The commit was mined before a crash (or the job was cancelled meanwhile).
            if view.status == JobStatus.CANCELLED:
                self.store.mark_job(job.job_id, JobState.DROPPED, "cancelled on chain")
            else:
                self.store.mark_committed(job.job_id, None, view.challenge_deadline)
            return False
        if view.status != JobStatus.REQUESTED:
            self.store.mark_job(job.job_id, JobState.DROPPED, f"chain status {view.status.name}")
            return False
        if self.chain.now() >= job.commit_deadline:
            log.error("commit deadline passed; dropping", extra={"job_id": job.job_id})
            self.store.mark_job(job.job_id, JobState.DROPPED, "commit deadline passed")
            return False
        own_hash = hash_vector(list(job.input_q))
        if view.input_hash != own_hash:
            # The job on chain is not the request the node read (a reorg reordered requests):
            # commitResult would revert InputHashMismatch; never answer another's question.
            reason = (
                f"input hash mismatch: chain 0x{view.input_hash.hex()}, ours 0x{own_hash.hex()}"
            )
            log.error("%s; dropping", reason, extra={"job_id": job.job_id})
            self.store.mark_job(job.job_id, JobState.DROPPED, reason)
            return False
        price = self.prices.get(job.model_id, 0)
        if job.status == JobState.REQUESTED and view.fee < price:
            log.warning(
                "fee below this node's price; ignored",
                extra={
                    "job_id": job.job_id,
                    "fee": view.fee,
                    "price": price,
                    "model_id": to_hex(job.model_id),
                },
            )
            self.store.mark_job(job.job_id, JobState.DROPPED, f"fee {view.fee} below price {price}")
            return False
        output_q = job.output_q
        if output_q is None:
            try:
                result = self.engine.run(job.model_id, job.input_q)
            except InputError as err:  # unknown model, wrong length, outside the domain
                log.error("cannot serve (%s); dropping", err, extra={"job_id": job.job_id})
                self.store.mark_job(job.job_id, JobState.DROPPED, str(err)[:500])
                return False
            self.metrics.jobs_served.labels("onchain").inc()
            self.auditor.maybe_sample(
                f"job {job.job_id}", job.model_id, job.input_q, result.honest_output_q.tolist()
            )
            output_q = tuple(int(v) for v in result.output_q)
            spec = self.engine.runtime(job.model_id).spec
            if not result.corrupted and needs_witness(spec):
                output_q = self._defendable_output(job, spec, output_q)
        self.store.commit_intent(job.job_id, output_q, None)
        self._crash("job:after-intent")
        tx = self.chain.commit_result(job.job_id, own_hash, output_q)
        self._crash("job:after-send")
        self._tx("commitResult", tx)
        deadline = self.chain.job(job.job_id).challenge_deadline
        self.store.mark_committed(job.job_id, tx.tx_hash, deadline)
        self.metrics.commits.labels("onchain").inc()
        log.info("job committed", extra={"job_id": job.job_id, "tx": tx.tx_hash})
        return True

    def _exact_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
        """Exact mode (tau = 0): the circuit's own output (ezkl witness), what a proof shows."""
        if self.backend is None:
            raise ProofError(f"model 0x{model_id.hex()} has tau 0 and no circuit to run")
        return [int(v) for v in self.backend.witness_output(model_id, list(input_q))]

    def _defendable_output(
        self, job: OnchainJob, spec: ModelSpec, output_q: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The output to commit: for tau = 0 the circuit's; for tau > 0 (``witness_check =
        "always"``) onnxruntime's unless it is more than tau from the circuit's witness output,
        then the circuit's (a proof can only show outputs within tau of it)."""
        if spec.tau == 0:
            return tuple(self._exact_output(job.model_id, job.input_q))
        if self.backend is None:
            return output_q
        try:
            circuit = self.backend.witness_output(job.model_id, list(job.input_q))
            chosen = defendable_output(spec, output_q, circuit, f"on-chain job {job.job_id}")
        except Exception as err:  # cannot check: commit onnxruntime's output (within tau as a rule)
            log.error(
                "witness check failed (%s); committing onnxruntime's output",
                err,
                extra={"job_id": job.job_id},
            )
            return output_q
        return output_q if chosen is None else tuple(chosen)

    def _tx(self, action: str, tx: TxResult) -> None:
        self.metrics.record_tx(action, tx.gas_used, tx.fee_wei)

    # -- 3. batches -------------------------------------------------------------------------

    def commit_batches(self) -> int:
        self.cutter.cut()
        done = 0
        gate = self.work_gate
        for batch in self.store.batches(BatchState.SEALED, BatchState.COMMITTING):
            if self.auditor.is_halted(batch.model_id):
                continue
            if (
                gate is not None
                and gate.closed
                and not self._in_flight(f"commitBatch:local:{batch.local_id}")
            ):
                continue  # held: the gate logged why once; committed if the stake recovers
            self._urgent()
            try:
                if self._commit_batch(batch):
                    done += 1
            except RevertError as err:
                if not self._stake_revert("commitBatch", err):
                    log.error("batch commit failed, will retry: %s", err, extra=_batch_log(batch))
            except Exception as err:
                log.error("batch commit failed, will retry: %s", err, extra=_batch_log(batch))
        return done

    def _commit_batch(self, batch: Batch) -> bool:
        # A batch in ``committing`` may have been mined (found in the logs) or be pending; the
        # sender resumes its journaled transaction (same nonce) in the second case, and only
        # sends afresh when that nonce went to another transaction.
        if batch.status == BatchState.COMMITTING and self._reconcile_batch(batch):
            return False
        self.store.batch_intent(batch.local_id, None)
        self._crash("batch:after-intent")
        tx, batch_id, deadline = self.chain.commit_batch(
            batch.model_id,
            batch.root,
            batch.count,
            self.batch_uri(batch.local_id),
            intent=f"commitBatch:local:{batch.local_id}",
        )
        self._crash("batch:after-send")
        if batch_id is None or deadline is None:
            raise StateError(f"batch {batch.local_id}: commitBatch gave no batch id")
        self._tx("commitBatch", tx)
        block = getattr(tx.receipt, "block_number", None)
        self.store.mark_batch_committed(
            batch.local_id,
            batch_id,
            tx.tx_hash,
            deadline,
            commit_block=None if block is None else int(block),
            confirmed=self.confirmations == 0,  # depth 0: the receipt is all there is to see
        )
        self.metrics.commits.labels("batch").inc()
        log.info(
            "batch committed",
            extra={
                **_batch_log(batch),
                "batch_id": batch_id,
                "count": batch.count,
                "tx": tx.tx_hash,
            },
        )
        return True

    # -- 3b. batch ids: confirmed, or corrected after a reorg ---------------------------------

    def confirm_batches(self) -> int:
        """Take a committed batch's id as settled only once its commitBatch is ``confirmations``
        blocks deep, re-reading its BatchCommitted log then: a reorg that re-included the
        commit after another one gave the batch another id (corrected here), one that dropped
        it sends the batch to ``committing`` again."""
        pending = [b for b in self.store.batches(BatchState.COMMITTED) if not b.confirmed]
        if not pending:
            return 0
        head = self.chain.block_number()
        done = 0
        for batch in pending:
            if batch.commit_block is not None and head - batch.commit_block < self.confirmations:
                continue
            self._urgent()
            try:
                done += self._confirm_batch(batch, head)
            except Exception as err:
                log.error("batch confirmation failed, will retry: %s", err, extra=_batch_log(batch))
        return done

    def _confirm_batch(self, batch: Batch, head: int) -> int:
        found = self.chain.committed_batch_log(batch.model_id, batch.root, self.start_block)
        if found is None:
            log.critical(
                "batch's commitBatch is no longer on chain (reorg); committing it again",
                extra=_batch_log(batch),
            )
            self.store.reopen_batch(batch.local_id)
            return 0
        batch_id, deadline, block = found
        deep = head - block >= self.confirmations
        if batch_id != batch.batch_id:
            log.warning(
                "batch moved by a reorg", extra={**_batch_log(batch), "new_batch_id": batch_id}
            )
        self.store.correct_batch_id(
            batch.local_id, batch_id, deadline, commit_block=block or None, confirmed=deep
        )
        return 1 if deep else 0

    def confirm_finals(self) -> int:
        """Re-read a batch the node saw final once that is ``confirmations`` blocks deep: a
        reorg that dropped the finalizeBatch (and whose transaction could not be sent again:
        its nonce went to another one) leaves the batch committed on chain, so it goes back to
        ``committed`` and is finalized again (its fee and stake are released only then). A
        batch still final is settled (prunable) only once its finalizeBatch is
        ``confirmations`` deep where the chain holds it now (:meth:`_settle_final`)."""
        pending = self.store.unsettled_finals()
        if not pending:
            return 0
        head = self.chain.block_number()
        done = 0
        for batch in pending:
            assert batch.final_block is not None
            if batch.batch_id is None:  # id freed by a reorg deeper than confirmations: left
                continue  # unsettled (never pruned), the later batches still checked (audit 7)
            if head - batch.final_block < self.confirmations:
                continue
            self._urgent()
            try:
                status = self.chain.batch(batch.batch_id).status
            except Exception as err:
                log.error("batch final check failed, will retry: %s", err, extra=_batch_log(batch))
                continue
            if status == BatchStatus.FINAL:
                try:
                    done += self._settle_final(batch, head)
                except Exception as err:
                    log.error(
                        "batch final check failed, will retry: %s", err, extra=_batch_log(batch)
                    )
            elif status == BatchStatus.COMMITTED:
                log.critical(
                    "batch's finalizeBatch is no longer on chain (reorg); finalizing it again",
                    extra={**_batch_log(batch), "batch_id": batch.batch_id},
                )
                self.store.reopen_final(batch.local_id)
            else:  # INVALID or another state: the chain's word, nothing to send again
                self.store.settle_final(batch.local_id)
        return done

    def _settle_final(self, batch: Batch, head: int) -> int:
        """Settle a batch the chain shows final once its finalizeBatch is ``confirmations``
        deep in the block its ``BatchFinalized`` log is in now: a reorg may have re-mined it
        after the block the node saw it in, and the wait then starts again from there (a
        second reorg inside that depth may still drop it: its vectors must stay)."""
        assert batch.batch_id is not None and batch.final_block is not None
        since = batch.commit_block if batch.commit_block is not None else self.start_block
        block = self.chain.finalized_batch_block(batch.batch_id, since, head)
        if block is None:  # final by getBatch, its log not seen yet (a lagging RPC): next step
            log.warning(
                "batch final on chain but no BatchFinalized log yet", extra=_batch_log(batch)
            )
            return 0
        if head - block < self.confirmations:
            if block > batch.final_block:
                log.warning(
                    "batch's finalizeBatch re-mined in a later block (reorg): settled only "
                    "`confirmations` blocks past it",
                    extra={**_batch_log(batch), "final_block": block},
                )
                self.store.move_final_block(batch.local_id, block)
            return 0
        self.store.settle_final(batch.local_id)
        return 1

    def resolve_batch(self, batch_id: int, *, listing: bool = False) -> Batch | None:
        """This node's batch committed as ``batch_id``, checked against ``getBatch(batch_id)``.

        The id a commit's receipt gave may be wrong after a reorg (another commitBatch landed
        first): an unknown id, or a known one whose stored root is not the chain's, is looked up
        by the chain's (root, modelId, node) among ALL local batches, and the stored id is
        corrected. ``listing``: a confirmed batch is served without a chain read, and ids found
        not to be ours are remembered for a while (an HTTP client cannot make the node read the
        chain for every id it invents).
        """
        batch = self.store.batch_by_chain_id(batch_id)
        if listing:
            if batch is not None and batch.confirmed:
                return batch
            until = self._not_ours.get(batch_id)
            if until is not None and time.monotonic() < until:
                return None
        with self._resolve_lock:
            view = self.chain.batch(batch_id)
            if batch is not None and batch.root == view.root and batch.model_id == view.model_id:
                return batch
            if batch is not None:  # our stored id holds another batch on chain: stale
                log.warning(
                    "batch id on chain has another root (reorg)",
                    extra={**_batch_log(batch), "chain_root": to_hex(view.root)},
                )
                self.store.unconfirm_batch(batch.local_id)
            match = None
            if view.node.lower() == self.chain.address.lower():
                match = self.store.batch_by_root(view.model_id, view.root)
            if match is None:
                if listing:
                    if len(self._not_ours) > 10_000:
                        self._not_ours.clear()
                    self._not_ours[batch_id] = time.monotonic() + 30.0
                return None
            if match.status in (BatchState.SEALED, BatchState.COMMITTING):
                self.store.mark_batch_committed(
                    match.local_id, batch_id, None, view.challenge_deadline
                )
            elif match.batch_id != batch_id:
                self.store.correct_batch_id(match.local_id, batch_id, view.challenge_deadline)
            if match.batch_id != batch_id:
                log.warning(
                    "batch found on chain by its root",
                    extra={**_batch_log(match), "new_batch_id": batch_id},
                )
            self._not_ours.pop(batch_id, None)
            return self.store.batch(match.local_id)

    # -- 4. finalization --------------------------------------------------------------------

    def finalize_due(self) -> int:
        now = self.chain.now()
        done = 0
        for job in self.store.onchain_jobs(JobState.COMMITTED, JobState.DISPUTED):
            if job.challenge_deadline is not None and now <= job.challenge_deadline:
                continue
            self._urgent()
            try:
                done += self._finalize_job(job)
            except Exception as err:
                log.error("finalize failed, will retry: %s", err, extra={"job_id": job.job_id})
        for batch in self.store.batches(BatchState.COMMITTED):
            if not batch.confirmed or batch.batch_id is None:
                continue  # its id may still move (confirm_batches)
            if batch.challenge_deadline is not None and now <= batch.challenge_deadline:
                continue
            self._urgent()
            try:
                done += self._finalize_batch(batch)
            except Exception as err:
                log.error("batch finalize failed, will retry: %s", err, extra=_batch_log(batch))
        return done

    def _finalize_job(self, job: OnchainJob) -> int:
        status = self.chain.job(job.job_id).status
        if status == JobStatus.COMMITTED:
            try:
                tx = self.chain.finalize(job.job_id)
            except Exception as err:
                # Anyone may finalize: a dApp that did so first is no failure of ours.
                if revert_name(err) != "BadJobStatus":
                    raise
                if self.chain.job(job.job_id).status != JobStatus.FINAL:
                    raise
                log.debug("finalized by someone else first", extra={"job_id": job.job_id})
                self.store.mark_job(job.job_id, JobState.FINAL)
                return 0
            self._tx("finalize", tx)
            self.store.mark_job(job.job_id, JobState.FINAL)
            self.metrics.finalized.labels("onchain").inc()
            return 1
        if status == JobStatus.FINAL:
            self.store.mark_job(job.job_id, JobState.FINAL)
        elif status == JobStatus.INVALID:
            self.store.mark_job(job.job_id, JobState.INVALID)
        elif status == JobStatus.DISPUTED and job.status == JobState.COMMITTED:
            self.store.mark_job(job.job_id, JobState.DISPUTED)
        return 0

    def _finalize_batch(self, batch: Batch) -> int:
        assert batch.batch_id is not None
        view = self.chain.batch(batch.batch_id)
        if view.status == BatchStatus.FINAL:  # finalized by someone else, or before a restart
            self.chain.refund_deposit_if_due(batch.batch_id)
            self.store.mark_batch_final(batch.local_id, final_block=self._final_block(None))
            return 0
        if view.open_claims or self.chain.now() <= view.final_after:
            return 0  # open disputes or leaf requests, or a revealed leaf still disputable
        tx = self.chain.finalize_batch(batch.batch_id)
        self._tx("finalizeBatch", tx)
        self.store.mark_batch_final(
            batch.local_id, final_block=self._final_block(getattr(tx.receipt, "block_number", None))
        )
        self.metrics.finalized.labels("batch").inc()
        return 1

    def _final_block(self, block: int | None) -> int | None:
        """The block to re-read a finalization at (:meth:`confirm_finals`); None when
        ``confirmations`` is 0 (the receipt is all there is to see)."""
        if self.confirmations == 0:
            return None
        return int(block) if block is not None else self.chain.block_number()

    # -- 4b. leaf requests -------------------------------------------------------------------

    def reveal_leaves(self, *, wait: bool = True) -> int:
        """Answer every open leaf request against this node: ``revealLeaf`` with the leaf's
        job id, input, output and positional proof (rebuilt from the batch's stored leaves; most
        urgent first). A failure is recorded and retried next step until the reveal deadline.
        ``wait``: then wait up to ``reveal_wait_s`` for the receipts (all at once)."""
        done = 0
        requests = self.store.leaf_requests("open")  # by reveal deadline
        for request in requests:
            try:
                done += self._reveal(request)
            except Exception as err:
                self.store.leaf_request_error(request.request_id, f"{type(err).__name__}: {err}")
                log.error(
                    "LEAF REQUEST: reveal failed, will retry: %s", err, extra=_request_log(request)
                )
        if done and wait:
            self._await_reveals()
        return done

    def _await_reveals(self) -> None:
        """Record the reveals just broadcast that get mined within ``reveal_wait_s`` (all of
        them at once, never one receipt per send); the rest are seen by the next step."""
        deadline = time.monotonic() + self.reveal_wait_s
        while True:
            pending = [r for r in self.store.leaf_requests("open") if r.tx_hash is not None]
            left = 0
            for request in pending:
                try:
                    left += 0 if self._reveal_mined(request) else 1
                except Exception as err:
                    log.debug("leaf request receipt: %s", err, extra=_request_log(request))
            if not left or time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def _reveal_mined(self, request: LeafRequest) -> bool:
        mined = self.chain.outcome(self.chain.reveal_intent(request.batch_id, request.leaf_index))
        if mined is None:
            return False
        self._tx("revealLeaf", mined)
        self.store.mark_leaf_request(request.request_id, "revealed", tx_hash=mined.tx_hash)
        log.warning("LEAF REQUEST answered", extra={**_request_log(request), "tx": mined.tx_hash})
        return True

    def _reveal(self, request: LeafRequest) -> int:
        """Broadcast the reveal of one requested leaf, without waiting for its receipt: the
        reveals of one step go out back-to-back (consecutive nonces, one block can mine them
        all). The journal (intent ``revealLeaf:<batchId>:<index>``) makes the next step (or a
        restart) resume a pending reveal, never send a second one. 1 if a reveal was sent."""
        rid = request.request_id
        view = self.chain.leaf_request(rid)
        if view.status == LeafRequestStatus.REVEALED:
            self._record_reveal(request)
            return 0
        if view.status == LeafRequestStatus.NONE:
            # Not on the chain's branch (a reorg removed it; a replay reopens it) or the RPC
            # lags: nothing to reveal, and no loss once its deadline has passed.
            if self.chain.now() > request.reveal_deadline:
                self.store.mark_leaf_request(rid, "dropped", error="not on the chain's branch")
                log.warning(
                    "LEAF REQUEST dropped: the chain no longer holds it (a reorg removed it)",
                    extra=_request_log(request),
                )
            return 0
        if view.status == LeafRequestStatus.SLASHED:
            self.store.mark_leaf_request(rid, "lost", error="settled unrevealed")
            log.critical("LEAF REQUEST LOST: the node was slashed", extra=_request_log(request))
            return 0
        deadline = view.reveal_deadline or request.reveal_deadline
        if self.chain.now() > deadline:
            self.store.mark_leaf_request(rid, "lost", error="reveal deadline passed")
            log.critical("LEAF REQUEST: reveal deadline passed", extra=_request_log(request))
            return 0
        if self.withhold_reveals:
            if rid not in self._withheld:  # once per request, not every step
                self._withheld.add(rid)
                log.warning(
                    "WITHHOLDING MODE: not revealing the leaf (expect a slash)",
                    extra=_request_log(request),
                )
            return 0
        batch = self.resolve_batch(request.batch_id)
        served = None if batch is None else self.store.served_at(batch.local_id, request.leaf_index)
        proof = None if batch is None else self.store.leaf_proof(batch.local_id, request.leaf_index)
        if served is None or proof is None:
            raise StateError(f"leaf {request.leaf_index} of batch {request.batch_id} is not ours")
        tx_hash, mined = self.chain.broadcast_reveal(
            request.batch_id,
            request.leaf_index,
            served.job_id,
            served.input_q.tolist(),
            served.output_q.tolist(),
            list(proof),
        )
        if mined is None:
            if tx_hash is not None and tx_hash != request.tx_hash:
                self.store.mark_leaf_request(rid, "open", tx_hash=tx_hash)
                log.info(
                    "LEAF REQUEST: reveal sent", extra={**_request_log(request), "tx": tx_hash}
                )
            return 1
        self._tx("revealLeaf", mined)
        self.store.mark_leaf_request(rid, "revealed", tx_hash=mined.tx_hash)
        log.warning("LEAF REQUEST answered", extra={**_request_log(request), "tx": mined.tx_hash})
        return 1

    def _record_reveal(self, request: LeafRequest) -> None:
        """The chain shows the leaf revealed: record it (with our transaction's cost, if the
        reveal was ours and broadcast without waiting)."""
        tx_hash = None
        try:
            mined = self.chain.outcome(
                self.chain.reveal_intent(request.batch_id, request.leaf_index)
            )
        except Exception as err:  # someone else's reveal won; ours reverted
            log.debug("leaf request: our reveal: %s", err, extra=_request_log(request))
            mined = None
        if mined is not None:
            self._tx("revealLeaf", mined)
            tx_hash = mined.tx_hash
        self.store.mark_leaf_request(request.request_id, "revealed", tx_hash=tx_hash)
        log.warning("LEAF REQUEST answered", extra={**_request_log(request), "tx": tx_hash})

    # -- 5. disputes ------------------------------------------------------------------------

    def defend_disputes(self) -> int:
        """Record settled and expired disputes; hand the others to the defence worker (most
        urgent proof deadline first). Inline (no worker thread): defend them now."""
        done = 0
        for dispute in self.store.disputes(*UNRESOLVED_DISPUTES):  # by proof deadline
            try:
                if self._triage(dispute):
                    done += self.worker.submit(dispute)
            except Exception as err:
                self._dispute_failed(dispute, err)
            try:
                self._alert_if_late(dispute)
            except Exception as err:
                log.debug("dispute alert check failed: %s", err, extra=_dispute_log(dispute))
        return done

    def _dispute_failed(self, dispute: Dispute, err: Exception) -> None:
        try:
            self.store.dispute_error(dispute.dispute_id, f"{type(err).__name__}: {err}")
        except Exception as store_err:
            log.error("dispute: cannot record error: %s", store_err, extra=_dispute_log(dispute))
        log.error("DISPUTE defence failed, will retry: %s", err, extra=_dispute_log(dispute))

    def _triage(self, dispute: Dispute) -> bool:
        """Record what the chain already decided; True if the dispute still needs a defence."""
        did = dispute.dispute_id
        view = self.chain.dispute(did)
        if view.status in (DisputeStatus.DEFENDED, DisputeStatus.SLASHED):
            self.worker.cancel(did)  # settled (by someone else, if we are proving it): stop
        if view.status == DisputeStatus.DEFENDED:
            self.store.mark_defended(did, None)
            return False
        if view.status == DisputeStatus.NONE:
            self._dispute_not_on_chain(dispute)
            return False
        if view.status == DisputeStatus.SLASHED:
            self.store.mark_dispute_lost(did, "settled against the node")
            self.metrics.disputes.labels("lost").inc()
            log.critical("DISPUTE LOST: the node was slashed", extra=_dispute_log(dispute))
            return False
        # The chain's deadline when it has one (a dispute re-mined after a reorg has another).
        deadline = view.proof_deadline or dispute.proof_deadline
        if self.chain.now() > deadline:
            self.store.mark_dispute_lost(did, "proof deadline passed")
            self.metrics.disputes.labels("lost").inc()
            log.critical(
                "DISPUTE: proof deadline passed without a defence", extra=_dispute_log(dispute)
            )
            return False
        return dispute.status != DisputeState.UNDEFENDABLE  # alerted once; settlement marks it

    def _dispute_not_on_chain(self, dispute: Dispute) -> None:
        """The chain holds no such dispute: a reorg removed it (a replayed DisputeOpened records
        it again, reopened), or the RPC lags behind the event. Nothing to defend, and no loss:
        once the recorded deadline has passed the row is closed as dropped, never as lost."""
        if self.chain.now() <= dispute.proof_deadline:
            return
        self.store.mark_dispute_dropped(dispute.dispute_id, "not on the chain's branch")
        self.metrics.disputes.labels("dropped").inc()
        log.warning(
            "DISPUTE dropped: the chain no longer holds it (a reorg removed it)",
            extra=_dispute_log(dispute),
        )

    def _defend(self, dispute: Dispute) -> int:
        """Prove (if no proof is saved) and send ``defend``; runs on the defence worker."""
        did = dispute.dispute_id
        view = self.chain.dispute(did)
        if view.status != DisputeStatus.OPEN:
            return 0  # the next triage records the outcome
        if dispute.status == DisputeState.OPEN:
            if not self._defensible(dispute, view.model_id):
                return 0
            try:
                self._prove(dispute, view.model_id)
            except ProofCancelledError as err:
                log.warning("DISPUTE: %s (settled meanwhile)", err, extra=_dispute_log(dispute))
                return 0
            self._crash("dispute:after-proof")
            refreshed = self.store.dispute(did)
            assert refreshed is not None
            dispute = refreshed
            if self.chain.dispute(did).status != DisputeStatus.OPEN:
                return 0  # settled while we proved (someone else defended): nothing to send
        if dispute.proof is None or dispute.instances is None or dispute.committed_output is None:
            raise StateError(f"dispute 0x{did.hex()}: no saved proof in state {dispute.status}")
        self.store.defend_intent(did, None)
        self._crash("dispute:after-intent")
        tx = self.chain.defend(did, dispute.proof, dispute.instances, dispute.committed_output)
        self._crash("dispute:after-send")
        self._tx("defend", tx)
        self.store.mark_defended(did, tx.tx_hash)
        self.metrics.disputes.labels("defended").inc()
        log.warning("DISPUTE defended", extra={**_dispute_log(dispute), "tx": tx.tx_hash})
        return 1

    def _defensible(self, dispute: Dispute, model_id: bytes) -> bool:
        """False (and the dispute marked undefendable) iff the committed output is outside tau
        of the circuit's witness output: ``defend`` would reject every proof, so proving (minutes)
        and retrying until the deadline would only burn time and gas."""
        if self.backend is None:
            return True  # _prove reports the missing backend
        input_q, committed = self._disputed_job(dispute)
        try:
            reference = self.backend.witness_output(model_id, input_q)
            diff = max_abs_diff(committed, reference)
        except Exception as err:  # could not decide: let the proof attempt decide
            log.warning(
                "DISPUTE: witness pre-check failed (%s); proving anyway",
                err,
                extra=_dispute_log(dispute),
            )
            return True
        tau = self._tau(model_id)
        if diff <= tau:
            return True
        reason = (
            f"cannot defend: committed output outside tau of the circuit's output "
            f"(max diff {diff} > tau {tau})"
        )
        self.store.mark_dispute_undefendable(dispute.dispute_id, reason)
        self.metrics.disputes.labels("undefendable").inc()
        log.critical(
            "DISPUTE: %s; not proving, expect a slash. Check the hardware and the model files.",
            reason,
            extra=_dispute_log(dispute),
        )
        return False

    def _tau(self, model_id: bytes) -> int:
        if model_id not in self._taus:
            self._taus[model_id] = self.chain.model(model_id).tau
        return self._taus[model_id]

    def _prove(self, dispute: Dispute, model_id: bytes) -> None:
        if self.backend is None:
            raise ProofError("this node has no proof backend configured; cannot defend")
        input_q, committed = self._disputed_job(dispute)
        start = time.perf_counter()
        try:
            with self.worker.proving(dispute.dispute_id):
                proof = self.backend.prove(model_id, input_q)
        except ProofCancelledError:
            self.metrics.proofs.labels("cancelled").inc()
            raise
        except SpotcheckError:
            self.metrics.proofs.labels("failed").inc()
            raise
        except Exception as err:  # ezkl raises untyped errors; never let them kill the loop
            self.metrics.proofs.labels("failed").inc()
            raise ProofError(f"proving failed: {err}") from err
        elapsed = time.perf_counter() - start
        self.metrics.proofs.labels("ok").inc()
        self.metrics.proving_seconds.observe(elapsed)
        log.warning("DISPUTE proved in %.1f s", elapsed, extra=_dispute_log(dispute))
        self.store.save_proof(dispute.dispute_id, proof.proof, proof.instances, committed)

    def _disputed_job(self, dispute: Dispute) -> tuple[list[int], list[int]]:
        """(input_q, committed output) of the disputed job, from our own records."""
        if dispute.kind == JobKind.ONCHAIN:
            if dispute.dispute_id != onchain_job_key(dispute.job_id):
                raise StateError(f"dispute 0x{dispute.dispute_id.hex()} is not for its job")
            job = self.store.onchain_job(dispute.job_id)
            if job is None or job.output_q is None:
                raise StateError(f"disputed job {dispute.job_id} is not in the node database")
            return list(job.input_q), list(job.output_q)
        if dispute.kind == JobKind.BATCH:
            batch = self.resolve_batch(dispute.ref)
            index = dispute.leaf_index
            served = (
                None
                if batch is None or index is None
                else self.store.served_at(batch.local_id, index)
            )
            if batch is None or served is None or index is None:
                raise StateError(f"disputed leaf {index} of batch {dispute.ref} is not ours")
            if dispute.dispute_id != batch_leaf_key(dispute.ref, index):
                raise StateError(
                    f"dispute 0x{dispute.dispute_id.hex()} is not for leaf {index} "
                    f"of batch {dispute.ref}"
                )
            return served.input_q.tolist(), served.output_q.tolist()
        raise StateError(f"unknown dispute kind {dispute.kind}")

    def _alert_if_late(self, dispute: Dispute) -> None:
        current = self.store.dispute(dispute.dispute_id)
        if current is None or current.status not in WORKING_DISPUTES:
            return  # resolved, or undefendable (alerted once when it was found out)
        window = self._proof_window(dispute)
        remaining = dispute.proof_deadline - self.chain.now()
        if window and remaining < window * (1 - self.defend_alert_fraction):
            log.critical(
                "ALERT: dispute still undefended with %d s left of %d (last error: %s)",
                remaining,
                window,
                current.last_error,
                extra=_dispute_log(dispute),
            )

    def _proof_window(self, dispute: Dispute) -> int:
        model_id = self.chain.dispute(dispute.dispute_id).model_id
        if model_id not in self._proof_windows:
            self._proof_windows[model_id] = self.chain.model(model_id).proof_window
        return self._proof_windows[model_id]

    # -- gauges -----------------------------------------------------------------------------

    def _update_gauges(self) -> None:
        try:
            stake = self.chain.stake()
        except Exception as err:  # metrics must never break the loop
            log.debug("stake gauge: %s", err)
            return
        self.metrics.stake.set(stake.amount)
        self.metrics.stake_locked.set(stake.locked)
        counts = self.store.counts()
        self.metrics.open_disputes.set(
            sum(counts["disputes"].get(s, 0) for s in UNRESOLVED_DISPUTES)
        )
        self.metrics.pending_jobs.set(counts["served_jobs"]["pending"])
        halted = self.auditor.halted_models()
        self.metrics.halted.set(1 if halted else 0)
        for model_id in self.engine.model_ids:
            self.metrics.model_halted.labels("0x" + model_id.hex()).set(
                1 if model_id in halted else 0
            )


class DefenceWorker:
    """Proves and defends disputes on its own thread, most urgent proof deadline first.

    Proving takes seconds to minutes; on this thread it never holds up the chain loop's commits,
    finalizations or reveals. Until :meth:`start` (tests that drive :meth:`NodeService.step`),
    :meth:`submit` defends inline. A dispute is queued at most once at a time; one that fails is
    recorded (``last_error``) and queued again by the next step.

    Anyone may defend a dispute with a valid proof: when the chain loop finds the dispute being
    proved settled (:meth:`cancel`), the backend's ``cancel`` stops the proof (the ezkl backend
    kills its prover process), so the worker turns to the next dispute at once; a backend
    without ``cancel`` finishes the proof and the worker skips sending ``defend``.
    """

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self._queue: queue.PriorityQueue[tuple[int, bytes]] = queue.PriorityQueue()
        self._queued: set[bytes] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._proving: bytes | None = None  # the dispute whose proof runs now
        #: queued disputes found settled before their proof started: never proved
        self._cancelled: set[bytes] = set()

    @contextlib.contextmanager
    def proving(self, dispute_id: bytes) -> Iterator[None]:
        """Marks the proof of ``dispute_id`` as running. If :meth:`cancel` came for it earlier
        (during the witness pre-check), the proof is cancelled as it starts (the backend's
        ``cancel_next``, else its ``cancel``), or refused when the backend cannot cancel."""
        with self._lock:
            if dispute_id in self._cancelled:
                self._cancelled.discard(dispute_id)
                backend = self.service.backend
                arm = getattr(backend, "cancel_next", None) or getattr(backend, "cancel", None)
                if arm is None:
                    raise ProofCancelledError("dispute settled before its proof started")
                arm()
                log.warning(
                    "DISPUTE settled by someone else before its proof started: cancelled",
                    extra={"dispute_id": to_hex(dispute_id)},
                )
            self._proving = dispute_id
        try:
            yield
        finally:
            with self._lock:
                self._proving = None

    def cancel(self, dispute_id: bytes) -> bool:
        """Stop the proof of ``dispute_id`` if it is the one running (and the backend can); a
        dispute queued or in its witness pre-check is marked, and :meth:`proving` refuses it."""
        with self._lock:
            if self._proving != dispute_id:
                if dispute_id in self._queued:
                    self._cancelled.add(dispute_id)
                return False
            cancel = getattr(self.service.backend, "cancel", None)
            stopped = bool(cancel()) if cancel is not None else False
        if stopped:
            log.warning(
                "DISPUTE settled by someone else: its proof was stopped",
                extra={"dispute_id": to_hex(dispute_id)},
            )
        return stopped

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-defence", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._queue.put((-1, b""))  # wake the thread
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def busy(self) -> int:
        with self._lock:
            return len(self._queued)

    def submit(self, dispute: Dispute) -> int:
        """Queue (or, without a thread, defend now); returns disputes defended inline."""
        if not self.running:
            return self._work(dispute.dispute_id)
        with self._lock:
            if dispute.dispute_id in self._queued:
                return 0
            self._queued.add(dispute.dispute_id)
        self._queue.put((dispute.proof_deadline, dispute.dispute_id))
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            _, dispute_id = self._queue.get()
            if not dispute_id:
                continue
            try:
                self._work(dispute_id)
            finally:
                with self._lock:
                    self._queued.discard(dispute_id)
                    self._cancelled.discard(dispute_id)

    def _work(self, dispute_id: bytes) -> int:
        service = self.service
        dispute = service.store.dispute(dispute_id)
        if dispute is None or dispute.status not in WORKING_DISPUTES:
            return 0
        try:
            return service._defend(dispute)
        except Exception as err:  # one bad record never stops the others
            service._dispute_failed(dispute, err)
            return 0


def _batch_log(batch: Batch) -> dict[str, object]:
    """The log fields of a batch (``spotcheck.kit.logs``: printed after the message)."""
    return {"batch": batch.local_id, "batch_id": batch.batch_id}


def _request_log(request: LeafRequest) -> dict[str, object]:
    return {
        "request_id": to_hex(request.request_id),
        "batch_id": request.batch_id,
        "index": request.leaf_index,
    }


def _dispute_log(dispute: Dispute) -> dict[str, object]:
    return {
        "dispute_id": to_hex(dispute.dispute_id),
        "kind": dispute.kind,
        "ref": dispute.ref,
        "job_id": dispute.job_id,
    }
