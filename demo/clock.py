"""anvil time travel: move the chain's clock to the next deadline, but only when nothing can
change before it, so time travel never decides an outcome (``docs/demo.md``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from demo.actors import Cast
from demo.chain_setup import DemoChain
from demo.challenger_db import ChallengerDb
from demo.prepare import PreparedModel

log = logging.getLogger(__name__)

#: One jump passes every deadline up to this many seconds after the next one (proof deadlines
#: of disputes opened a few seconds apart are passed together, not one jump each).
JUMP_SPAN_S = 60


class TimeTravel:
    """Decides, each round of the watch loop, whether anvil's clock may jump; ``jumped_s`` is
    the chain time skipped so far."""

    def __init__(
        self,
        model: PreparedModel,
        chain: DemoChain,
        cast: Cast,
        say: Callable[[str], None],
    ) -> None:
        self.model = model
        self.chain = chain
        self.cast = cast
        self.challenger_db = ChallengerDb(cast.challenger.db_path)
        self.say = say
        self.jumped_s = 0
        self._undefendable: dict[bytes, bool] = {}
        self._scan_from = 0
        self._last_log_block = 0

    def maybe_jump(self) -> None:
        """Move anvil's clock to the next deadline when nothing can happen before it.

        Call only once the dApp has sent all its jobs. Order matters: the services' states are
        read first, then the newest block with a protocol event, which the challenger must
        have handled (so a commitment mined in between is already in its state), then the
        open disputes are judged from the chain.
        """
        from ape import chain

        if any(n.busy() for n in self.cast.nodes) or self.challenger_db.busy():
            return
        canary, lazy = self.cast.canary, self.cast.lazy
        # paid checks: the canary has committed all its jobs, the challenger has sent every
        # claim it planned (claims close with the challenge window)
        if (canary is not None and not canary.done) or self.challenger_db.claims_pending():
            return
        last = self._last_event_block(int(chain.blocks.height))
        if self.challenger_db.checkpoint() < last:
            return
        # the lazy claimant has decided on (and claimed) every job committed so far
        if lazy is not None and not lazy.caught_up(last):
            return
        if self.challenger_db.busy() or self._defence_pending() or self._reveal_pending():
            return
        if self.challenger_db.claims_pending():
            return
        now = int(chain.blocks.head.timestamp)
        target = self._next_deadline(now)
        if target is None or target + 1 - now <= 2:
            return
        # the canary's operator disputes its undisputed cheats before their windows close
        if canary is not None and canary.before_jump():
            return
        jump = target + 1 - now
        try:
            chain.mine(1, timestamp=target + 1)
        except Exception as err:  # a block with a later timestamp was mined meanwhile
            log.info("time travel skipped this round: %s", err)
            return
        self.jumped_s += jump
        self.say(f"    anvil time travel +{jump} s: nothing can change before the next deadline")

    def _defence_pending(self) -> bool:
        """True while some node has an open dispute it may still win.

        Read from the chain (every open ``DisputeOpened``), not from the nodes' followers, so
        a dispute a node has not seen yet still counts. A dispute blocks time travel unless
        the committed output is outside ``tau`` of the circuit's own output for the job's
        input: then no valid proof exists (the contract's rule), and skipping the rest of the
        proof window takes nothing from the node.
        """
        from spotcheck.encoding import max_abs_diff
        from verifier.witness import witness_output

        tau = self.model.tau
        for ev in self.chain.open_disputes():
            did = bytes(ev.event_arguments["disputeId"])
            if did not in self._undefendable:
                pair = self._disputed_job(ev)
                if pair is None:
                    return True
                diff = max_abs_diff(pair[1], witness_output(self.model.artifacts, pair[0]))
                self._undefendable[did] = diff > tau
                if diff > tau:
                    node = str(ev.event_arguments["node"])
                    actor = self.cast.node_at(node)
                    label = node if actor is None else actor.label
                    canary = self.cast.canary
                    if canary is not None and node == canary.address:
                        label = "CANARY node"
                    self.say(
                        f"    {label}: disputed output is {diff} units from the circuit "
                        f"(tau {tau}): no valid proof exists"
                    )
            if not self._undefendable[did]:
                return True
        return False

    def _reveal_pending(self) -> bool:
        """True while some node has an open leaf request it may still answer.

        Read from the chain. Only a node the demo runs in withholding mode (it never reveals:
        the labelled fault, like the dishonest node's corruption) does not block: skipping the
        rest of its reveal window takes nothing from it.
        """
        for ev in self.chain.open_leaf_requests():
            node = self.cast.node_at(str(ev.event_arguments["node"]))
            if node is None or not node.withholding:
                return True
            rid = bytes(ev.event_arguments["requestId"])
            if rid not in self._undefendable:
                self._undefendable[rid] = True
                self.say(
                    f"    {node.label}: leaf request on batch {ev.event_arguments['batchId']} "
                    f"index {ev.event_arguments['index']}: it withholds, it will not reveal"
                )
        return False

    def _disputed_job(self, ev: Any) -> tuple[list[int], list[int]] | None:
        """(input_q, committed output) of a disputed job: chain events, or the node's leaf."""
        from spotcheck.chain import JobKind

        args = ev.event_arguments
        job_id = int(args["jobId"])
        if int(args["kind"]) == JobKind.ONCHAIN:
            jm = self.chain.contracts.job_manager
            req = self.chain.events(jm, "JobRequested", jobId=job_id)
            com = self.chain.events(jm, "ResultCommitted", jobId=job_id)
            if not req or not com:
                return None
            return (
                [int(v) for v in req[0].event_arguments["input"]],
                [int(v) for v in com[0].event_arguments["output"]],
            )
        node = self.cast.node_at(str(args["node"]))
        served = None if node is None else node.store.served_job(job_id)
        if served is None:
            return None
        return served.input_q.tolist(), served.output_q.tolist()

    def _last_event_block(self, head: int) -> int:
        """The newest block up to ``head`` with a JobManager or DisputeManager event."""
        from ape import chain

        if head >= self._scan_from:
            deployment = self.chain.deployment
            logs = chain.provider.web3.eth.get_logs(
                {
                    "address": [deployment.job_manager, deployment.dispute_manager],
                    "fromBlock": self._scan_from,
                    "toBlock": head,
                }
            )
            for entry in logs:
                self._last_log_block = max(self._last_log_block, int(entry["blockNumber"]))
            self._scan_from = head + 1
        return self._last_log_block

    def _next_deadline(self, now: int) -> int | None:
        """The next future deadline (the last within ``JUMP_SPAN_S`` of the earliest): a
        challenge deadline (on-chain jobs; batches, whose
        ``finalAfter`` a reveal raises), a proof deadline or a reveal deadline."""
        from prover.store import JobState
        from spotcheck.chain import BatchStatus

        deadlines: list[int] = []
        for node in self.cast.nodes:
            for job in node.store.onchain_jobs(JobState.COMMITTED, JobState.DISPUTED):
                if job.challenge_deadline is not None:
                    deadlines.append(job.challenge_deadline)
        jm = self.chain.contracts.job_manager
        for ev in self.chain.events(jm, "BatchCommitted"):
            batch = jm.getBatch(ev.event_arguments["batchId"])
            if int(batch.status) != BatchStatus.FINAL:
                deadlines += [int(batch.challengeDeadline), int(batch.finalAfter)]
        for ev in self.chain.open_disputes():
            deadlines.append(int(ev.event_arguments["proofDeadline"]))
        for ev in self.chain.open_leaf_requests():
            deadlines.append(int(ev.event_arguments["revealDeadline"]))
        if self.cast.canary is not None:
            deadlines += self.cast.canary.deadlines()
        future = [t for t in deadlines if t >= now]
        if not future:
            return None
        # Every deadline in reach is one nothing can change before (maybe_jump's rules), so
        # the clock may pass several at once: the last within JUMP_SPAN_S of the next one.
        first = min(future)
        return max(t for t in future if t <= first + JUMP_SPAN_S)
