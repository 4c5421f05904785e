"""The run-until-caught loop: while the dApp's jobs flow, watch the chain until the cheater has
been slashed and every job and dispute is resolved, or the timeout passes."""

from __future__ import annotations

import logging
import time

from demo.actors import Cast
from demo.chain_setup import DemoChain
from demo.challenger_db import ChallengerDb
from demo.clock import TimeTravel
from demo.config import DemoConfig
from demo.grief import Griefer
from demo.prepare import PreparedModel
from demo.progress import Progress
from demo.workload import DappWorkload, Workload

log = logging.getLogger(__name__)

#: Seconds between two rounds of watching, and between two status lines.
ROUND_S = 0.5
STATUS_EVERY_S = 10


class Watch:
    """One watch of a run; what it noted (first dispute and slash, time travel, failed
    rounds, timeout) goes into the report."""

    def __init__(
        self,
        cfg: DemoConfig,
        model: PreparedModel,
        chain: DemoChain,
        cast: Cast,
        progress: Progress,
    ) -> None:
        self.cfg = cfg
        self.chain = chain
        self.cast = cast
        self.progress = progress
        self.say = progress.say
        self.dapp = DappWorkload(cfg, model.artifacts, chain, cast.nodes)
        self.griefer = Griefer(chain, cast.honest.label, self.say) if cfg.grief else None
        self.clock = TimeTravel(model, chain, cast, self.say)
        self.challenger_db = ChallengerDb(cast.challenger.db_path)
        self.first_dispute_at: float | None = None
        self.first_slash_at: float | None = None
        self.first_leaf_request_at: float | None = None
        self.withholder_slashed_at: float | None = None
        self.watch_errors = 0
        self.timed_out = False
        self._announced = False
        self._last_status = 0.0

    @property
    def workload(self) -> Workload:
        return self.dapp.sent

    @property
    def griefed_job(self) -> int | None:
        return None if self.griefer is None else self.griefer.job

    def wait(self) -> None:
        self.say("dApp: submitting jobs (on-chain through ExampleConsumer, batched over HTTP)")
        self.dapp.start()
        deadline = time.perf_counter() + self.cfg.timeout_s
        try:
            while time.perf_counter() < deadline:
                try:
                    if self._poll():
                        return
                except Exception as err:  # an RPC hiccup or a lost race: try again next round
                    self.watch_errors += 1
                    log.warning("demo watch round failed (retrying): %s", err)
                time.sleep(ROUND_S)
            self.timed_out = True
            self.say(f"TIMEOUT after {self.cfg.timeout_s:.0f} s")
        finally:
            self.dapp.stop()

    def _poll(self) -> bool:
        """One round of watching; True when the run is complete."""
        if self.griefer is not None:
            self.griefer.maybe_dispute(self.workload.onchain)
        cheater_slashed = self._watch_cheater()
        if self.workload.done.is_set() and not self._announced:
            self._announced = True
            self.say(
                f"    dApp submitted {len(self.workload.onchain)} on-chain and "
                f"{len(self.workload.http)} batched jobs"
                + (f" (errors: {self.workload.errors})" if self.workload.errors else "")
            )
        withholder_caught = self._watch_withholder()
        if cheater_slashed and withholder_caught and self._all_resolved():
            return True
        if time.perf_counter() - self._last_status > STATUS_EVERY_S:
            self._last_status = time.perf_counter()
            self._status_line()
        if self.cfg.time_travel and self.workload.done.is_set():
            self.clock.maybe_jump()
        return False

    def _watch_cheater(self) -> bool:
        """Note when the cheater is first disputed and slashed; True once it was slashed."""
        c, who = self.chain.contracts, self.chain.accounts
        t0 = self.workload.first_job_at or self.progress.start
        cheater = who.cheater.address
        if self.first_dispute_at is None and self.chain.events(
            c.dispute_manager, "DisputeOpened", node=cheater
        ):
            self.first_dispute_at = time.perf_counter() - t0
            self.say("    the challenger DISPUTED a commitment of the dishonest node")
        slashed = any(
            str(s.event_arguments["node"]) == cheater
            for s in self.chain.events(c.stake_manager, "Slashed")
        )
        if self.first_slash_at is None and slashed:
            self.first_slash_at = time.perf_counter() - t0
            self.say("    the dishonest node was SLASHED")
        return slashed

    def _watch_withholder(self) -> bool:
        """Note the leaf requests against the withholding node and its slash; True once it was
        slashed for a leaf it never revealed (or when the run has no withholding node)."""
        node = self.cast.withholder
        if node is None:
            return True
        dm = self.chain.contracts.dispute_manager
        t0 = self.workload.first_job_at or self.progress.start
        if self.first_leaf_request_at is None and self.chain.events(
            dm, "LeafRequested", node=node.address
        ):
            self.first_leaf_request_at = time.perf_counter() - t0
            self.say(
                "    the challenger got no listing from the WITHHOLDING node: it REQUESTED its "
                "sampled leaves on chain"
            )
        if self.withholder_slashed_at is None and self.chain.events(
            dm, "LeafRequestSettled", node=node.address
        ):
            self.withholder_slashed_at = time.perf_counter() - t0
            self.say("    the WITHHOLDING node never revealed: SLASHED through the leaf request")
        return self.withholder_slashed_at is not None

    def _all_resolved(self) -> bool:
        from spotcheck.chain import BatchStatus, JobStatus

        if not self.workload.done.is_set():
            return False
        jm = self.chain.contracts.job_manager
        for req in self.workload.onchain:
            if int(jm.getJob(req.job_id).status) not in (JobStatus.FINAL, JobStatus.INVALID):
                return False
        if any(node.batching() for node in self.cast.nodes):
            return False
        for ev in self.chain.events(jm, "BatchCommitted"):
            if int(jm.getBatch(ev.event_arguments["batchId"]).status) != BatchStatus.FINAL:
                return False
        if self.chain.open_disputes() or self.chain.open_leaf_requests():
            return False
        if self.challenger_db.disputes_unrecorded():
            return False  # settled on chain (by anyone), not yet won/lost in its store
        return self._paid_checks_settled()

    def _paid_checks_settled(self) -> bool:
        """The canary's jobs resolved, every claim on an invalid job forfeited, and neither
        registered challenger holds an open claim (all collected or forfeited)."""
        from demo.paid_checks import open_claims

        canary, lazy = self.cast.canary, self.cast.lazy
        if canary is None or lazy is None:
            return True
        if not canary.settled() or self.challenger_db.claims_pending():
            return False
        return not any(
            open_claims(self.chain, a) for a in (lazy.address, self.cast.challenger.address)
        )

    def _status_line(self) -> None:
        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n) or "-"

        rows = self.challenger_db.job_states()
        for n in self.cast.nodes:
            c = n.store.counts()
            self.say(
                f"    {n.label:16} jobs: {fmt(c['onchain_jobs'])}; batches: {fmt(c['batches'])}; "
                f"disputes: {fmt(c['disputes'])}"
            )
        self.say(f"    {'challenger':16} commitments: {fmt(rows)}")
