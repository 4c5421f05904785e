"""The griefing challenger: disputes one CORRECT output of the honest node on purpose, so the
node must answer with a real ezkl proof verified on-chain (and the griefer loses its bond)."""

from __future__ import annotations

from collections.abc import Callable

from demo.chain_setup import DemoChain
from demo.workload import OnchainRequest


class Griefer:
    def __init__(self, chain: DemoChain, victim: str, say: Callable[[str], None]) -> None:
        self.chain = chain
        self.victim = victim  # the honest node's label
        self.say = say
        self.job: int | None = None  # the disputed job, once tried

    def maybe_dispute(self, requests: list[OnchainRequest]) -> None:
        """Dispute the first committed job of the victim whose challenge window has time left."""
        from ape import chain

        from spotcheck.chain import JobStatus

        if self.job is not None:
            return
        jm = self.chain.contracts.job_manager
        dm = self.chain.contracts.dispute_manager
        now = int(chain.blocks.head.timestamp)
        for req in requests:
            if req.node != self.victim:
                continue
            job = jm.getJob(req.job_id)
            if int(job.status) == JobStatus.COMMITTED and int(job.challengeDeadline) > now + 3:
                self.job = req.job_id
                try:
                    # v2: a dispute names the output hash it disputes (a reorg cannot move it)
                    dm.openDispute(
                        req.job_id, bytes(job.outputHash), sender=self.chain.accounts.griefer
                    )
                except Exception as err:
                    self.say(f"    griefing dispute on job {req.job_id} failed: {err}")
                    return
                self.say(
                    f"    GRIEFER disputes the honest node's CORRECT job {req.job_id}: the "
                    "node must prove it with ezkl"
                )
                return
