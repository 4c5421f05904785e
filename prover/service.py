"""The node's chain loop: follow requests and disputes, commit, finalize, defend.

One :meth:`NodeService.step` does, in order:

1. follow ``JobRequested`` naming this node and ``DisputeOpened`` against it (recorded in the
   same SQLite transaction as the log checkpoint);
2. commit on-chain jobs (infer, pin the output and nonce, send, record);
3. cut due batches and commit their roots;
4. finalize own jobs and batches whose challenge window has passed (fees);
5. prove and defend open disputes, most urgent first, with retries, alerting loudly when the
   deadline gets close; before proving, check the committed output against the circuit's
   witness, and give up at once (one CRITICAL alert, no proving) when it is outside tau;
6. run queued self-audits; a miss halts the node.

Every send is preceded by a chain check (``getJob`` status, ``BatchCommitted`` logs,
``getDispute`` status) so a restart after a crash at any point neither repeats nor forgets a
transaction. ``crash_hook`` lets tests stop the service at each of those points.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from prover.batching import BatchCutter
from prover.chain_actions import NodeChain, TxResult
from prover.defence import ProofBackend, SelfAuditor
from prover.inference import InferenceEngine
from prover.metrics import NodeMetrics
from prover.store import (
    KIND_BATCH,
    KIND_ONCHAIN,
    UNRESOLVED_DISPUTES,
    WORKING_DISPUTES,
    Batch,
    BatchState,
    Dispute,
    DisputeState,
    JobState,
    OnchainJob,
    Store,
)
from spotcheck.chain import BatchStatus, DisputeStatus, JobStatus
from spotcheck.encoding import batch_job_key, max_abs_diff, onchain_job_key
from spotcheck.errors import ChainError, InputError, ProofError, SpotcheckError, StateError
from spotcheck.follower import ChainEvent, LogFollower

log = logging.getLogger(__name__)

CrashHook = Callable[[str], None]


def _no_crash(point: str) -> None:
    return None


@dataclass(frozen=True)
class StepReport:
    events: int
    committed_jobs: int
    committed_batches: int
    finalized: int
    defended: int


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
        self.defend_alert_fraction = defend_alert_fraction
        self._crash = crash_hook
        self._stop = threading.Event()
        jm = chain.contracts.job_manager
        dm = chain.contracts.dispute_manager
        self.follower = LogFollower(
            store.path,
            f"node-{chain.address.lower()}",
            [(jm, ["JobRequested"]), (dm, ["DisputeOpened"])],
            confirmations=confirmations,
            start_block=start_block,
        )
        self._proof_windows: dict[bytes, int] = {}
        self._taus: dict[bytes, int] = {}

    # -- loop -------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        return self.auditor.halted_reason is not None

    def stop(self) -> None:
        self._stop.set()

    def run(self, poll_interval_s: float = 1.0) -> None:
        """Step until :meth:`stop`; a failing step is logged and retried next round."""
        log.info("node %s running", self.chain.address)
        while not self._stop.is_set():
            try:
                self.step()
            except SpotcheckError as err:
                log.error("step failed (will retry): %s", err)
            self._stop.wait(poll_interval_s)
        log.info("node %s stopped", self.chain.address)

    def step(self) -> StepReport:
        events = self.follower.process(self._on_events)
        defended = self.defend_disputes()  # first: disputes have the hardest deadlines
        if self.halted:
            log.critical("node halted (%s): not committing", self.auditor.halted_reason)
            return StepReport(events, 0, 0, 0, defended)
        committed_jobs = self.commit_jobs()
        committed_batches = self.commit_batches()
        finalized = self.finalize_due()
        self.auditor.drain()
        self._update_gauges()
        return StepReport(events, committed_jobs, committed_batches, finalized, defended)

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
                    conn=conn,
                )
            elif ev.name == "DisputeOpened":  # noqa: SIM102 - record, then count new ones
                if self.store.record_dispute(
                    bytes(args["disputeId"]),
                    int(args["kind"]),
                    int(args["ref"]),
                    int(args["jobId"]),
                    int(args["proofDeadline"]),
                    conn=conn,
                ):
                    self.metrics.disputes.labels("opened").inc()
                    log.warning(
                        "DISPUTE opened against this node: 0x%s (job %s), proof deadline %s",
                        bytes(args["disputeId"]).hex(),
                        args["jobId"],
                        args["proofDeadline"],
                    )

    # -- 2. on-chain jobs -------------------------------------------------------------------

    def commit_jobs(self) -> int:
        done = 0
        for job in self.store.onchain_jobs(JobState.REQUESTED, JobState.COMMITTING):
            try:
                if self._commit_job(job):
                    done += 1
            except ChainError as err:
                log.error("job %d: commit failed, will retry: %s", job.job_id, err)
        return done

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
            log.error("job %d: commit deadline passed; dropping", job.job_id)
            self.store.mark_job(job.job_id, JobState.DROPPED, "commit deadline passed")
            return False
        output_q = job.output_q
        if output_q is None:
            try:
                result = self.engine.run(job.model_id, job.input_q)
            except InputError as err:
                log.error("job %d: cannot serve (%s); dropping", job.job_id, err)
                self.store.mark_job(job.job_id, JobState.DROPPED, str(err)[:500])
                return False
            self.metrics.jobs_served.labels("onchain").inc()
            self.auditor.maybe_sample(
                f"job {job.job_id}", job.model_id, job.input_q, result.honest_output_q.tolist()
            )
            output_q = tuple(int(v) for v in result.output_q)
        nonce = self._nonce_for(job.nonce)
        self.store.commit_intent(job.job_id, output_q, nonce)
        self._crash("job:after-intent")
        tx = self.chain.commit_result(job.job_id, output_q, nonce=nonce)
        self._crash("job:after-send")
        self._tx("commitResult", tx)
        deadline = self.chain.job(job.job_id).challenge_deadline
        self.store.mark_committed(job.job_id, tx.tx_hash, deadline)
        self.metrics.commits.labels("onchain").inc()
        log.info("job %d committed (%s)", job.job_id, tx.tx_hash)
        return True

    def _nonce_for(self, recorded: int | None) -> int:
        """Re-use a recorded nonce unless a transaction with it was already mined."""
        confirmed = self.chain.confirmed_nonce()
        if recorded is not None and recorded >= confirmed:
            return recorded
        return max(confirmed, self.chain.pending_nonce())

    def _tx(self, action: str, tx: TxResult) -> None:
        self.metrics.record_tx(action, tx.gas_used, tx.fee_wei)

    # -- 3. batches -------------------------------------------------------------------------

    def commit_batches(self) -> int:
        self.cutter.cut()
        done = 0
        for batch in self.store.batches(BatchState.SEALED, BatchState.COMMITTING):
            try:
                if self._commit_batch(batch):
                    done += 1
            except ChainError as err:
                log.error("batch %d: commit failed, will retry: %s", batch.local_id, err)
        return done

    def _commit_batch(self, batch: Batch) -> bool:
        if batch.status == BatchState.COMMITTING:
            found = self.chain.find_committed_batch(batch.model_id, batch.root, self.start_block)
            if found is not None:
                self.store.mark_batch_committed(batch.local_id, found[0], None, found[1])
                return False
        nonce = self._nonce_for(batch.nonce)
        self.store.batch_intent(batch.local_id, nonce)
        self._crash("batch:after-intent")
        tx, batch_id, deadline = self.chain.commit_batch(
            batch.model_id, batch.root, batch.count, self.batch_uri(batch.local_id), nonce=nonce
        )
        self._crash("batch:after-send")
        if batch_id is None or deadline is None:
            raise StateError(f"batch {batch.local_id}: commitBatch gave no batch id")
        self._tx("commitBatch", tx)
        self.store.mark_batch_committed(batch.local_id, batch_id, tx.tx_hash, deadline)
        self.metrics.commits.labels("batch").inc()
        log.info(
            "batch %d committed as batchId %d (%d jobs, %s)",
            batch.local_id,
            batch_id,
            batch.count,
            tx.tx_hash,
        )
        return True

    # -- 4. finalization --------------------------------------------------------------------

    def finalize_due(self) -> int:
        now = self.chain.now()
        done = 0
        for job in self.store.onchain_jobs(JobState.COMMITTED, JobState.DISPUTED):
            if job.challenge_deadline is not None and now <= job.challenge_deadline:
                continue
            try:
                done += self._finalize_job(job)
            except ChainError as err:
                log.error("job %d: finalize failed, will retry: %s", job.job_id, err)
        for batch in self.store.batches(BatchState.COMMITTED):
            if batch.challenge_deadline is not None and now <= batch.challenge_deadline:
                continue
            try:
                done += self._finalize_batch(batch)
            except ChainError as err:
                log.error("batch %d: finalize failed, will retry: %s", batch.local_id, err)
        return done

    def _finalize_job(self, job: OnchainJob) -> int:
        status = self.chain.job(job.job_id).status
        if status == JobStatus.COMMITTED:
            self._tx("finalize", self.chain.finalize(job.job_id))
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
        if view.status == BatchStatus.FINAL:
            self.store.mark_batch_final(batch.local_id)
            return 0
        if view.open_disputes:
            return 0
        self._tx("finalizeBatch", self.chain.finalize_batch(batch.batch_id))
        self.store.mark_batch_final(batch.local_id)
        self.metrics.finalized.labels("batch").inc()
        return 1

    # -- 5. disputes ------------------------------------------------------------------------

    def defend_disputes(self) -> int:
        done = 0
        for dispute in self.store.disputes(*UNRESOLVED_DISPUTES):
            try:
                done += self._defend(dispute)
            except (ChainError, ProofError) as err:
                self.store.dispute_error(dispute.dispute_id, str(err))
                log.error("DISPUTE 0x%s: defence failed: %s", dispute.dispute_id.hex(), err)
            self._alert_if_late(dispute)
        return done

    def _defend(self, dispute: Dispute) -> int:
        did = dispute.dispute_id
        view = self.chain.dispute(did)
        if view.status == DisputeStatus.DEFENDED:
            self.store.mark_defended(did, None)
            return 0
        if view.status == DisputeStatus.SLASHED:
            self.store.mark_dispute_lost(did, "settled against the node")
            self.metrics.disputes.labels("lost").inc()
            log.critical("DISPUTE 0x%s LOST: the node was slashed", did.hex())
            return 0
        if self.chain.now() > dispute.proof_deadline:
            self.store.mark_dispute_lost(did, "proof deadline passed")
            self.metrics.disputes.labels("lost").inc()
            log.critical("DISPUTE 0x%s: proof deadline passed without a defence", did.hex())
            return 0
        if dispute.status == DisputeState.UNDEFENDABLE:
            return 0  # alerted once; the settlement will mark it lost
        if dispute.status == DisputeState.OPEN:
            if not self._defensible(dispute, view.model_id):
                return 0
            self._prove(dispute, view.model_id)
            self._crash("dispute:after-proof")
            refreshed = self.store.dispute(did)
            assert refreshed is not None
            dispute = refreshed
        assert dispute.proof is not None and dispute.instances is not None
        assert dispute.committed_output is not None
        proof, instances, output = dispute.proof, dispute.instances, dispute.committed_output

        def send() -> TxResult:
            nonce = self._nonce_for(self._current_nonce(did))
            self.store.defend_intent(did, nonce)
            self._crash("dispute:after-intent")
            if self.chain.dispute(did).status == DisputeStatus.DEFENDED:
                return TxResult(None, 0, 0)
            return self.chain.defend(did, proof, instances, output, nonce=nonce)

        retrying = Retrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.5, max=4),
            retry=retry_if_exception_type(ChainError),
            reraise=True,
        )
        tx = retrying(send)
        self._crash("dispute:after-send")
        self._tx("defend", tx)
        self.store.mark_defended(did, tx.tx_hash)
        self.metrics.disputes.labels("defended").inc()
        log.warning("DISPUTE 0x%s defended (%s)", did.hex(), tx.tx_hash)
        return 1

    def _current_nonce(self, dispute_id: bytes) -> int | None:
        d = self.store.dispute(dispute_id)
        return None if d is None else d.nonce

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
                "DISPUTE 0x%s: witness pre-check failed (%s); proving anyway",
                dispute.dispute_id.hex(),
                err,
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
            "DISPUTE 0x%s (job %d): %s; not proving, expect a slash. Check the hardware "
            "and the model files.",
            dispute.dispute_id.hex(),
            dispute.job_id,
            reason,
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
            proof = self.backend.prove(model_id, input_q)
        except SpotcheckError:
            self.metrics.proofs.labels("failed").inc()
            raise
        except Exception as err:  # ezkl raises untyped errors; never let them kill the loop
            self.metrics.proofs.labels("failed").inc()
            raise ProofError(f"proving failed: {err}") from err
        elapsed = time.perf_counter() - start
        self.metrics.proofs.labels("ok").inc()
        self.metrics.proving_seconds.observe(elapsed)
        log.warning("DISPUTE 0x%s: proved in %.1f s", dispute.dispute_id.hex(), elapsed)
        self.store.save_proof(dispute.dispute_id, proof.proof, proof.instances, committed)

    def _disputed_job(self, dispute: Dispute) -> tuple[list[int], list[int]]:
        """(input_q, committed output) of the disputed job, from our own records."""
        if dispute.kind == KIND_ONCHAIN:
            if dispute.dispute_id != onchain_job_key(dispute.job_id):
                raise StateError(f"dispute 0x{dispute.dispute_id.hex()} is not for its job")
            job = self.store.onchain_job(dispute.job_id)
            if job is None or job.output_q is None:
                raise StateError(f"disputed job {dispute.job_id} is not in the node database")
            return list(job.input_q), list(job.output_q)
        if dispute.kind == KIND_BATCH:
            if dispute.dispute_id != batch_job_key(dispute.ref, dispute.job_id):
                raise StateError(f"dispute 0x{dispute.dispute_id.hex()} is not for its leaf")
            batch = self.store.batch_by_chain_id(dispute.ref)
            served = self.store.served_job(dispute.job_id)
            if batch is None or served is None or served.batch_local_id != batch.local_id:
                raise StateError(
                    f"disputed leaf {dispute.job_id} of batch {dispute.ref} is not ours"
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
                "ALERT: dispute 0x%s still undefended with %d s left of %d (last error: %s)",
                dispute.dispute_id.hex(),
                remaining,
                window,
                current.last_error,
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
        self.metrics.halted.set(1 if self.halted else 0)


def check_models_against_registry(chain: NodeChain, specs: dict[bytes, Any]) -> None:
    """Refuse to start when a served model's scales or tau differ from the registry's."""
    from spotcheck.errors import ConfigError

    for model_id, spec in specs.items():
        m = chain.model(model_id)
        mine = (spec.input_scale, spec.output_scale, spec.tau)
        theirs = (m.input_scale, m.output_scale, m.tau)
        if mine != theirs:
            raise ConfigError(
                f"model 0x{model_id.hex()}: configured (inputScale, outputScale, tau) {mine} "
                f"differ from the registry's {theirs}"
            )
        if not m.active:
            log.warning("model 0x%s is deactivated: no new commitments", model_id.hex())
