"""Paid checks in the demo (issue 15): the model's check terms, the challengers' registered VRF
keys, a canary node and a lazy claimant.

- **Terms.** The registry owner sets the demo model's check share and the pool's sampling rate
  (``CheckPool.setModelTerms``); the pool rate equals the diligent challenger's ``p``, so its
  sample and the pool's are the same jobs.
- **The diligent challenger** is the demo's challenger service: its VRF key (``vrf.key`` in its
  state folder) is registered with a bond here, before it starts; the service then claims the
  on-chain jobs it sampled and found correct and collects once they are final
  (``challenger.claims``).
- **The canary** (:class:`Canary`): a staked node that requests ``canary_jobs`` on-chain jobs
  of its own (paying the fee from its operator's second address) and commits outputs that are
  wrong by more than tau on a known schedule (:func:`is_canary_cheat`). Its operator disputes,
  from the second address, every cheat nobody else disputed, just before its challenge window
  closes; settles those disputes; finalizes its correct jobs; and forfeits every claim on an
  invalid on-chain job (anyone may: the collateral is burned, nobody's income).
- **The lazy claimant** (:class:`LazyClaimant`): a registered key that claims every on-chain
  job its VRF samples at the pool's rate as soon as the seed is readable, without re-running
  it, and collects the ones that become final.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from demo.chain_setup import DemoChain
from demo.config import DemoConfig
from demo.prepare import PreparedModel
from demo.progress import Progress
from demo.report import tokens
from demo.threads import LoopThread
from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.chain import ClaimStatus, JobStatus
from spotcheck.encoding import hash_vector, onchain_job_key

log = logging.getLogger(__name__)

MAX_UINT = 2**256 - 1
#: The lazy claimant's VRF secret (any key does: it claims whatever it samples).
LAZY_SECRET = 0x1A27
#: The canary's operator disputes an undisputed cheat once its window has this little left
#: (real time; with time travel, also just before the clock jumps past the deadline).
DISPUTE_MARGIN_S = 10


def is_canary_cheat(i: int, every: int) -> bool:
    """The canary's known schedule: its ``i``-th job (from 0) is wrong iff ``i % every`` is
    not ``every - 1`` (with ``every = 3``: two jobs in three are wrong)."""
    return i % every != every - 1


@dataclass(frozen=True)
class PaidCheckTerms:
    check_share_bps: int
    sampling_bps: int
    collateral: int
    diligent_bond: int
    lazy_bond: int


def setup_paid_checks(
    cfg: DemoConfig, chain: DemoChain, challenger_key_path: Any, progress: Progress
) -> PaidCheckTerms:
    """Set the model's check terms, register the diligent challenger's key and the lazy
    claimant's, stake the canary node and fund its operator's second address."""
    from challenger.sampling import load_or_create_secret, secret_scalar

    c, who = chain.contracts, chain.accounts
    pool, token, d = c.check_pool, c.token, who.deployer
    sampling_bps = round(cfg.sampling * vrf.BPS)
    with progress.stage("paid checks: terms, registered keys, canary"):
        cp.set_model_terms(pool, chain.model_id, cfg.check_share_bps, sampling_bps, sender=d)
        collateral = int(pool.claimCollateral())
        # the diligent challenger: the service's own key (created here if need be)
        secret = secret_scalar(load_or_create_secret(challenger_key_path))
        token.mint(who.challenger, cfg.claim_bond, sender=d)
        token.approve(pool, cfg.claim_bond, sender=who.challenger)
        cp.register(pool, vrf.keypair(secret), cfg.claim_bond, sender=who.challenger)
        # the lazy claimant
        token.mint(who.lazy, cfg.claim_bond, sender=d)
        token.approve(pool, MAX_UINT, sender=who.lazy)
        cp.register(pool, vrf.keypair(LAZY_SECRET), cfg.claim_bond, sender=who.lazy)
        # the canary node stakes for all its jobs at once; its operator pays fees and bonds
        slash = int(chain.model_params.slash_amount)
        stake = max(int(c.stake_manager.minStake()), -(-cfg.canary_jobs * slash * 5 // 4))
        token.mint(who.canary, stake, sender=d)
        token.approve(c.stake_manager, stake, sender=who.canary)
        c.stake_manager.stake(stake, sender=who.canary)
        bond = int(chain.model_params.challenger_bond)
        funds = cfg.canary_jobs * (chain.fee + bond)
        token.mint(who.operator, funds, sender=d)
        token.approve(c.job_manager, MAX_UINT, sender=who.operator)
        token.approve(c.dispute_manager, MAX_UINT, sender=who.operator)
        progress.say(
            f"    CheckPool terms: check share {cfg.check_share_bps / 100:g} % of each fee, "
            f"pool sampling {sampling_bps / 100:g} %, claim collateral {tokens(collateral)}; "
            f"challenger and lazy claimant registered with a bond of {tokens(cfg.claim_bond)}"
        )
        progress.say(
            f"    canary node {who.canary.address} stakes {tokens(stake)}: {cfg.canary_jobs} "
            f"jobs, job i wrong iff i % {cfg.canary_every} != {cfg.canary_every - 1}; its "
            f"operator disputes from {who.operator.address}"
        )
    return PaidCheckTerms(
        cfg.check_share_bps, sampling_bps, collateral, cfg.claim_bond, cfg.claim_bond
    )


def _seed(job: Any) -> bytes | None:
    """The seed of a committed job (hash of block commitBlock + 1), once a claim can use it."""
    from ape import chain

    commit_block = int(job.commitBlock)
    if not cp.seed_readable(commit_block, int(chain.blocks.height) + 1):
        return None
    return bytes(chain.blocks[commit_block + 1].hash)


@dataclass
class LazyClaimant:
    """Claims every on-chain job its VRF samples at the pool's rate, re-running nothing."""

    chain: DemoChain
    sampling_bps: int
    key: vrf.KeyPair = field(default_factory=lambda: vrf.keypair(LAZY_SECRET))
    #: job id -> sampled by the key (decided once the seed was readable)
    decided: dict[int, bool] = field(default_factory=dict)
    claimed: list[int] = field(default_factory=list)
    #: jobs sampled but not claimable any more (disputed or closed before the claim)
    too_late: list[int] = field(default_factory=list)
    collected: set[int] = field(default_factory=set)
    scanned_to: int = -1  # every ResultCommitted up to this block was seen
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.loop = LoopThread("lazy-claimant", self.step, 0.1)
        self._committed: list[int] = []
        self._from = int(self.chain.deployment.deploy_block)

    @property
    def address(self) -> str:
        return str(self.chain.accounts.lazy.address)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def caught_up(self, block: int) -> bool:
        """True when it has decided on every job committed up to ``block``."""
        with self.lock:
            return self.scanned_to >= block and all(j in self.decided for j in self._committed)

    def step(self) -> None:
        from ape import chain as ape_chain

        with self.lock:
            self._step(int(ape_chain.blocks.height))

    def _step(self, head: int) -> None:
        c = self.chain.contracts
        jm, pool, me = c.job_manager, c.check_pool, self.chain.accounts.lazy
        if head >= self._from:
            for ev in jm.ResultCommitted.range(self._from, head + 1):
                self._committed.append(int(ev.event_arguments["jobId"]))
            self._from = head + 1
        ready: list[cp.Claim] = []
        for job_id in self._committed:
            if job_id in self.decided:
                continue
            job = jm.getJob(job_id)
            seed = _seed(job)
            if seed is None:
                continue
            claim = cp.make_claim(self.key, job_id, seed, self.sampling_bps)
            self.decided[job_id] = claim is not None
            if claim is None:
                continue
            if int(job.status) == JobStatus.COMMITTED:
                ready.append(claim)
            else:
                self.too_late.append(job_id)
        for i in range(0, len(ready), cp.MAX_BATCH_CLAIMS):
            part = ready[i : i + cp.MAX_BATCH_CLAIMS]
            try:
                cp.claim_batch(pool, part, sender=me)
                self.claimed += [x.job_id for x in part]
            except Exception as err:  # a dispute landed first: claim one by one
                log.info("lazy claimant: batch claim failed (%s); claiming one by one", err)
                for x in part:
                    try:
                        cp.claim(pool, x, sender=me)
                        self.claimed.append(x.job_id)
                    except Exception:
                        self.too_late.append(x.job_id)
        self.scanned_to = head
        for job_id in self.claimed:
            if job_id in self.collected or int(jm.getJob(job_id).status) != JobStatus.FINAL:
                continue
            if cp.claim_status(pool, job_id, self.address) is ClaimStatus.OPEN:
                cp.collect(pool, job_id, sender=me)
            self.collected.add(job_id)


@dataclass
class CanaryJob:
    index: int
    input_q: list[int]
    output_q: list[int]  # what the canary commits
    cheat: bool
    job_id: int | None = None
    challenge_deadline: int | None = None


class Canary:
    """The canary node and its operator's second address (one actor: one thread)."""

    def __init__(self, cfg: DemoConfig, model: PreparedModel, chain: DemoChain) -> None:
        import numpy as np

        from verifier.witness import witness_output

        self.chain = chain
        who = chain.accounts
        self.node, self.operator = who.canary, who.operator
        m = chain.contracts.model_registry.getModel(chain.model_id)
        rng = np.random.default_rng(cfg.seed + 15)
        tau = model.tau
        self.jobs: list[CanaryJob] = []
        for i in range(cfg.canary_jobs):
            size = int(model.artifacts.input_len)
            q = [int(v) for v in rng.integers(int(m.inLo), int(m.inHi), size=size, endpoint=True)]
            out = witness_output(model.artifacts, q)
            cheat = is_canary_cheat(i, cfg.canary_every)
            if cheat:
                out = [out[0] + 2 * tau + 1, *out[1:]]  # wrong by more than tau
            self.jobs.append(CanaryJob(i, q, out, cheat))
        self.disputed_by_operator: list[int] = []
        self.forfeits_sent = 0
        self.lock = threading.Lock()
        self.loop = LoopThread("canary", self.step, 0.25)
        self._forfeited: set[tuple[int, str]] = set()
        self._claims_from = int(chain.deployment.deploy_block)
        self._claims: list[tuple[int, str]] = []

    @property
    def address(self) -> str:
        return str(self.node.address)

    @property
    def done(self) -> bool:
        """True once every canary job is committed."""
        return all(j.challenge_deadline is not None for j in self.jobs)

    def job_ids(self) -> list[int]:
        return [j.job_id for j in self.jobs if j.job_id is not None]

    def cheat_ids(self) -> set[int]:
        return {j.job_id for j in self.jobs if j.cheat and j.job_id is not None}

    def deadlines(self) -> list[int]:
        """Challenge deadlines of its jobs still committed."""
        jm = self.chain.contracts.job_manager
        return [
            int(j.challenge_deadline)
            for j in self.jobs
            if j.job_id is not None
            and j.challenge_deadline is not None
            and int(jm.getJob(j.job_id).status) == JobStatus.COMMITTED
        ]

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def step(self) -> None:
        from ape import chain as ape_chain

        with self.lock:
            self._submit_next()
            now = int(ape_chain.blocks.head.timestamp)
            self._dispute_due(now + DISPUTE_MARGIN_S)
            self._settle_and_finalize(now)
            self._forfeit_claims()

    def before_jump(self) -> bool:
        """Called when the clock is about to jump (every challenger has decided on every job
        and sent its claims and disputes): dispute every cheat nobody else disputed; True if
        it sent any (the clock then waits a round for the services to see them)."""
        with self.lock:
            return self._dispute_due(None) > 0

    def _submit_next(self) -> None:
        """Request and commit every canary job not committed yet (all in the first round)."""
        while self._submit_one():
            pass

    def _submit_one(self) -> bool:
        nxt = next((j for j in self.jobs if j.challenge_deadline is None), None)
        if nxt is None:
            return False
        jm = self.chain.contracts.job_manager
        if nxt.job_id is None:
            receipt = jm.requestJob(
                self.chain.model_id, nxt.input_q, self.node, self.chain.fee, sender=self.operator
            )
            logs = list(receipt.decode_logs(jm.JobRequested))
            nxt.job_id = int(logs[0].event_arguments["jobId"])
        jm.commitResult(nxt.job_id, hash_vector(nxt.input_q), nxt.output_q, sender=self.node)
        nxt.challenge_deadline = int(jm.getJob(nxt.job_id).challengeDeadline)
        return True

    def _dispute_due(self, by: int | None) -> int:
        """Dispute the undisputed cheats whose window closes by ``by`` (None: all of them)."""
        jm, dm = self.chain.contracts.job_manager, self.chain.contracts.dispute_manager
        sent = 0
        for j in self.jobs:
            if not j.cheat or j.job_id is None or j.challenge_deadline is None:
                continue
            if by is not None and j.challenge_deadline > by:
                continue
            job = jm.getJob(j.job_id)
            if int(job.status) != JobStatus.COMMITTED:
                continue  # disputed by someone else already (or closed)
            dm.openDispute(j.job_id, job.outputHash, sender=self.operator)
            self.disputed_by_operator.append(j.job_id)
            sent += 1
        return sent

    def _settle_and_finalize(self, now: int) -> None:
        from spotcheck.chain import DisputeStatus

        jm, dm = self.chain.contracts.job_manager, self.chain.contracts.dispute_manager
        for job_id in self.disputed_by_operator:
            ref = onchain_job_key(job_id)
            d = dm.getDispute(ref)
            if int(d.status) == DisputeStatus.OPEN and now > int(d.proofDeadline):
                dm.settle(ref, sender=self.operator)
        for j in self.jobs:
            if j.cheat or j.job_id is None or j.challenge_deadline is None:
                continue
            if now > j.challenge_deadline and int(jm.getJob(j.job_id).status) == (
                JobStatus.COMMITTED
            ):
                jm.finalize(j.job_id, sender=self.operator)

    def _forfeit_claims(self) -> None:
        """Forfeit every open claim on an invalid on-chain job (anyone may; the collateral is
        burned), and withdraw the operator's DisputeManager credits (fees of its invalid
        jobs come back to it as the requester, bounties of the disputes it won)."""
        from ape import chain as ape_chain

        c = self.chain.contracts
        jm, pool = c.job_manager, c.check_pool
        head = int(ape_chain.blocks.height)
        if head >= self._claims_from:
            for ev in pool.CheckClaimed.range(self._claims_from, head + 1):
                a = ev.event_arguments
                self._claims.append((int(a["jobId"]), str(a["claimant"])))
            self._claims_from = head + 1
        for job_id, claimant in self._claims:
            if (job_id, claimant) in self._forfeited:
                continue
            if int(jm.getJob(job_id).status) != JobStatus.INVALID:
                continue
            if cp.claim_status(pool, job_id, claimant) is ClaimStatus.OPEN:
                cp.forfeit(pool, job_id, claimant, sender=self.operator)
                self.forfeits_sent += 1
            self._forfeited.add((job_id, claimant))
        if int(c.dispute_manager.credits(self.operator)) > 0:
            c.dispute_manager.withdrawCredits(sender=self.operator)

    def settled(self) -> bool:
        """Every canary job final or invalid, and no open claim left on an invalid job."""
        jm = self.chain.contracts.job_manager
        if not self.done:
            return False
        for job_id in self.job_ids():
            if int(jm.getJob(job_id).status) not in (JobStatus.FINAL, JobStatus.INVALID):
                return False
        with self.lock:
            return all(pair in self._forfeited for pair in self._claims if self._invalid(pair[0]))

    def _invalid(self, job_id: int) -> bool:
        return int(self.chain.contracts.job_manager.getJob(job_id).status) == JobStatus.INVALID


def open_claims(chain: DemoChain, address: str) -> int:
    return int(chain.contracts.check_pool.getChallenger(address).openClaims)


__all__ = [
    "Canary",
    "LazyClaimant",
    "PaidCheckTerms",
    "is_canary_cheat",
    "open_claims",
    "setup_paid_checks",
]
