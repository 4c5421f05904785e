"""The challenger's work loop: follow commitments, sample, re-execute, dispute, settle, withdraw.

One :meth:`Challenger.tick` runs every step once; each step reads its work from the store,
re-checks the chain where money is involved, and records the outcome with an idempotent
transition, so the process can be killed anywhere and restarted:

- ``follow``: the log follower records JobRequested / ResultCommitted / BatchCommitted and
  DisputeDefended / DisputeSettled in the transaction that advances its checkpoint.
- ``sample``: a commitment whose seed block exists is decided (``challenger.sampling``).
- ``fetch``: a batch whose seed block exists is downloaded and verified; its leaves are
  recorded already decided. A node that does not serve is reported and retried until the
  challenge window closes (``docs/validators.md``, "Withheld batches").
- ``check``: sampled jobs are re-executed and judged (``challenger.verdict``).
- ``dispute``: before sending, the chain is asked whether the job already has a dispute
  (ours: adopt it; another challenger's: preempted). Then the bond cap and the deadline are
  checked, and the dispute is sent (or only reported, in dry-run mode).
- ``resolve``: our open disputes end as ``lost`` (defended) or ``won`` (settled by us after
  the proof deadline, or by anyone).
- ``withdraw``: credits (returned bonds, bounties) are withdrawn.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from challenger.batches import BatchClient, WithheldError
from challenger.chain_io import ChainPort, ModelParams
from challenger.sampling import SamplingPolicy, seed_block
from challenger.store import BatchRow, BatchState, JobRow, JobState, Store
from challenger.verdict import Reexecutor, check_output
from spotcheck.chain import DisputeStatus, JobKind
from spotcheck.encoding import batch_job_key, onchain_job_key
from spotcheck.errors import ChainError, SpotcheckError
from spotcheck.follower import ChainEvent, LogFollower

log = logging.getLogger(__name__)

#: Events the challenger follows, per contract.
JOB_EVENTS = ("JobRequested", "ResultCommitted", "BatchCommitted")
DISPUTE_EVENTS = ("DisputeDefended", "DisputeSettled")

ReexecutorFor = Callable[[ModelParams], Reexecutor | None]


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    #: Largest total challenger bond locked in our open disputes (token base units).
    max_bond_at_risk: int = 0
    screen: bool = True
    auto_withdraw: bool = True
    #: Seconds between fetch attempts of a batch its node does not serve (doubles, capped).
    batch_retry: float = 2.0


@dataclass
class TickReport:
    """What one tick did (for logs, tests and the status command)."""

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
    withheld: int = 0
    errors: list[str] = field(default_factory=list)


def _b(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


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
    ) -> None:
        self.store = store
        self.chain = chain
        self.policy = policy
        self.reexecutor_for = reexecutor_for
        self.options = options
        self.follower = follower
        self.batch_client = batch_client or BatchClient()
        self._next_fetch: dict[int, float] = {}
        self._warned_models: set[bytes] = set()
        self.lock = threading.Lock()  # one tick at a time (the HTTP thread reads status)

    # -- the loop ---------------------------------------------------------------------------

    def tick(self) -> TickReport:
        report = TickReport()
        with self.lock:
            if self.follower is not None:
                report.events = self.follower.process(self.handle_events)
            head = self.chain.head()
            self.sample(head, report)
            self.fetch_batches(head, report)
            self.check(report)
            self.dispute(report)
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
                Store.record_request(conn, int(a["jobId"]), _b(a["modelId"]), a["input"])
            elif ev.name == "ResultCommitted":
                self._record_commit(conn, ev)
            elif ev.name == "BatchCommitted":
                Store.record_batch(
                    conn,
                    batch_id=int(a["batchId"]),
                    model_id=_b(a["modelId"]),
                    node=str(a["node"]),
                    root=_b(a["root"]),
                    count=int(a["count"]),
                    uri=str(a["uri"]),
                    challenge_deadline=int(a["challengeDeadline"]),
                    commit_block=ev.block_number,
                )
            elif ev.name in DISPUTE_EVENTS:
                to = JobState.LOST if ev.name == "DisputeDefended" else JobState.WON
                if Store.transition_in(conn, _b(a["disputeId"]), to):
                    log.info("dispute %s", to.value, extra={"dispute_id": _hex(a["disputeId"])})

    def _record_commit(self, conn: sqlite3.Connection, ev: ChainEvent) -> None:
        a = ev.args
        job_id = int(a["jobId"])
        kwargs: dict[str, Any] = {
            "job_key": onchain_job_key(job_id),
            "job_id": job_id,
            "node": str(a["node"]),
            "output_q": [int(v) for v in a["output"]],
            "output_hash": _b(a["outputHash"]),
            "challenge_deadline": int(a["challengeDeadline"]),
            "commit_block": ev.block_number,
        }
        if Store.record_onchain_commit(conn, **kwargs):
            return
        # The request predates our start block: read it from the chain (a plain read).
        found = self.chain.request_input(job_id)
        if found is None:
            log.error("ResultCommitted for unknown job", extra={"job_id": job_id})
            return
        model_id, input_q = found
        Store.record_request(conn, job_id, model_id, input_q)
        Store.record_onchain_commit(conn, **kwargs)

    # -- sample -----------------------------------------------------------------------------

    def sample(self, head: int, report: TickReport) -> None:
        hashes: dict[int, bytes] = {}
        decided: list[tuple[JobRow, bool]] = []
        for job in self.store.jobs(JobState.SEEN):
            number = seed_block(job.commit_block, self.policy.seed_delay)
            if number > head:
                continue  # the seed does not exist yet
            if number not in hashes:
                hashes[number] = self.chain.block_hash(number)
            decided.append((job, self.policy.decide(job.model_id, hashes[number], job.job_key)))
        # One transaction for all decisions (they are deterministic: a crash just redoes them).
        with self.store.transaction():
            for job, sampled in decided:
                to = JobState.SAMPLED if sampled else JobState.SKIPPED
                if self.store.transition(job.job_key, to):
                    if sampled:
                        report.sampled += 1
                        log.info("sampled", extra=_job_log(job))
                    else:
                        report.skipped += 1

    # -- fetch batches ----------------------------------------------------------------------

    def fetch_batches(self, head: int, report: TickReport) -> None:
        now_wall = time.monotonic()
        batches = self.store.batches(BatchState.SEEN)
        chain_now = self.chain.timestamp() if batches else 0
        for batch in batches:
            number = seed_block(batch.commit_block, self.policy.seed_delay)
            if number > head or self._next_fetch.get(batch.batch_id, 0.0) > now_wall:
                continue
            if chain_now > batch.challenge_deadline:
                if self.store.batch_unavailable(batch.batch_id):
                    log.error(
                        "batch contents never served before its challenge deadline",
                        extra=_batch_log(batch),
                    )
                continue
            seed = self.chain.block_hash(number)
            self._fetch_one(batch, seed, report)

    def _fetch_one(self, batch: BatchRow, seed: bytes, report: TickReport) -> None:
        def decide(job_id: int) -> bool:
            return self.policy.decide(batch.model_id, seed, batch_job_key(batch.batch_id, job_id))

        try:
            fetched = self.batch_client.fetch(batch, decide)
        except WithheldError as err:
            attempts = self.store.batch_attempt_failed(batch.batch_id, str(err))
            delay = min(60.0, self.options.batch_retry * 2 ** (attempts - 1))
            self._next_fetch[batch.batch_id] = time.monotonic() + delay
            if attempts == 1:
                self.store.bump("batches_withheld")
                report.withheld += 1
            log.error(
                "NODE WITHHOLDS BATCH CONTENTS: %s",
                err,
                extra={**_batch_log(batch), "attempts": attempts},
            )
            return
        decided = [(leaf, decide(leaf.job_id)) for leaf in fetched.leaves]
        self.store.fetched_batch(batch, decided)
        n = sum(1 for _, s in decided if s)
        report.sampled += n
        report.skipped += len(decided) - n
        self._next_fetch.pop(batch.batch_id, None)
        log.info("batch fetched", extra={**_batch_log(batch), "sampled": n})

    # -- check ------------------------------------------------------------------------------

    def check(self, report: TickReport) -> None:
        jobs = self.store.jobs(JobState.SAMPLED)
        if not jobs:
            return
        now = self.chain.timestamp()
        for job in jobs:
            if now > job.challenge_deadline:
                if self.store.transition(job.job_key, JobState.MISSED, reason="window closed"):
                    log.error("challenge window closed before re-execution", extra=_job_log(job))
                continue
            model = self.chain.model(job.model_id)
            reexec = self.reexecutor_for(model)
            if reexec is None:
                if job.model_id not in self._warned_models:
                    self._warned_models.add(job.model_id)
                    log.error("no circuit for model; cannot check", extra=_job_log(job))
                continue
            input_q = job.input_q
            if input_q is None:
                found = self.chain.request_input(job.job_id)
                input_q = None if found is None else found[1]
            if input_q is None or job.output_q is None:
                report.errors.append(f"job {job.job_id}: input or output unknown")
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
            if self.store.transition(
                job.job_key,
                to,
                reason=result.reason,
                screen_diff=result.screen_diff,
                witness_diff=result.witness_diff,
            ):
                if result.disputable:
                    report.mismatched += 1
                    log.warning("MISMATCH: %s", result.reason, extra=_job_log(job))
                else:
                    report.matched += 1

    # -- dispute ----------------------------------------------------------------------------

    def dispute(self, report: TickReport) -> None:
        jobs = self.store.jobs(JobState.MISMATCHED)
        if not jobs:
            return
        for job in jobs:
            if self.options.dry_run:
                if self.store.transition(job.job_key, JobState.REPORTED):
                    report.reported += 1
                    log.warning("DRY RUN: would dispute", extra=_job_log(job))
                continue
            if self._adopt_existing(job):
                continue
            if self.chain.timestamp() > job.challenge_deadline:
                if self.store.transition(job.job_key, JobState.MISSED, reason="window closed"):
                    log.error("challenge window closed before the dispute", extra=_job_log(job))
                continue
            bond = self.chain.model(job.model_id).challenger_bond
            at_risk = self.chain.bond_at_risk()
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

    def _send_dispute(self, job: JobRow, bond: int) -> Any:
        if job.kind is JobKind.ONCHAIN:
            return self.chain.open_dispute(job.job_id, bond)
        if job.input_hash is None or job.output_hash is None or job.merkle_proof is None:
            raise ChainError(f"batch leaf {job.ref}/{job.job_id} lacks hashes or proof")
        return self.chain.open_batch_dispute(
            job.ref, job.job_id, job.input_hash, job.output_hash, job.merkle_proof, bond
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
            if self.store.transition(job.job_key, JobState.PREEMPTED, reason=d.challenger):
                log.info("another challenger disputed first", extra=_job_log(job))
        return True

    # -- resolve ----------------------------------------------------------------------------

    def resolve(self, report: TickReport) -> None:
        for job in self.store.jobs(JobState.DISPUTE_SENT):
            if not self._adopt_existing(job):
                # Our transaction did not land (dropped or reverted): decide again.
                self.store.transition(job.job_key, JobState.MISMATCHED)
        jobs = self.store.jobs(JobState.DISPUTE_OPEN)
        if not jobs:
            return
        now = self.chain.timestamp()
        for job in jobs:
            d = self.chain.dispute(job.job_key)
            if d.status is DisputeStatus.DEFENDED:
                if self.store.transition(job.job_key, JobState.LOST):
                    report.lost += 1
                    log.error("dispute LOST: the node proved its output", extra=_job_log(job))
            elif d.status is DisputeStatus.SLASHED:
                if self.store.transition(job.job_key, JobState.WON):
                    report.won += 1
                    log.warning("dispute WON (settled)", extra=_job_log(job))
            elif d.status is DisputeStatus.OPEN and now > d.proof_deadline:
                try:
                    tx = self.chain.settle(job.job_key)
                except ChainError as err:
                    report.errors.append(str(err))
                    log.warning("settle failed: %s", err, extra=_job_log(job))
                    continue
                if self.store.transition(job.job_key, JobState.WON, tx_hash=tx.tx_hash):
                    report.won += 1
                    log.warning(
                        "dispute WON: node slashed", extra={**_job_log(job), "tx": tx.tx_hash}
                    )

    # -- withdraw ---------------------------------------------------------------------------

    def withdraw(self, report: TickReport) -> int:
        amount = self.chain.credits()
        if amount <= 0:
            return 0
        tx = self.chain.withdraw_credits()
        self.store.record_withdrawal(tx.tx_hash, amount)
        report.withdrawn += amount
        log.info("credits withdrawn", extra={"amount": amount, "tx": tx.tx_hash})
        return amount


def _hex(value: Any) -> str:
    return "0x" + _b(value).hex()


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
