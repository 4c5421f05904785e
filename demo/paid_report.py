"""The report's paid-checks section, gathered from CheckPool, JobManager and StakeManager
events and the challengers' own counts (never from what the demo intended)."""

from __future__ import annotations

from typing import Any

from demo.actors import Cast
from demo.chain_setup import DemoChain
from demo.challenger_db import ChallengerDb
from demo.config import DemoConfig
from demo.paid_checks import PaidCheckTerms, open_claims
from demo.report import ClaimantReport, Holdings, PaidChecksReport
from spotcheck.chain import JobStatus


def _args(events: list[Any], **match: str) -> list[dict[str, Any]]:
    out = []
    for e in events:
        a = e.event_arguments
        if all(str(a[k]) == v for k, v in match.items()):
            out.append(a)
    return out


def _claimant(
    label: str, address: str, sampled: int, pool_log: dict[str, list[Any]], cheats: set[int]
) -> ClaimantReport:
    r = ClaimantReport(label, address, sampled=sampled)
    claims = _args(pool_log["claimed"], claimant=address)
    r.claims = len(claims)
    paid = _args(pool_log["collected"], claimant=address)
    r.collected, r.rewards = len(paid), sum(int(a["amount"]) for a in paid)
    lost = _args(pool_log["forfeited"], claimant=address)
    r.forfeited = len(lost)
    r.collateral_lost = sum(int(a["amount"]) for a in lost)
    r.canary_claims = sum(int(a["jobId"]) in cheats for a in claims)
    r.canary_forfeited = sum(int(a["jobId"]) in cheats for a in lost)
    return r


def gather_paid_checks(
    cfg: DemoConfig,
    chain: DemoChain,
    cast: Cast,
    terms: PaidCheckTerms,
    before: dict[str, Holdings],
    challenger_db: ChallengerDb,
) -> PaidChecksReport:
    assert cast.canary is not None and cast.lazy is not None
    c = chain.contracts
    pool, jm, dm = c.check_pool, c.job_manager, c.dispute_manager
    pool_log = {
        "claimed": chain.events(pool, "CheckClaimed"),
        "collected": chain.events(pool, "RewardCollected"),
        "forfeited": chain.events(pool, "CollateralForfeited"),
    }
    canary = cast.canary
    cheats = canary.cheat_ids()
    diligent = _claimant(
        "diligent (the challenger)",
        cast.challenger.address,
        challenger_db.onchain_sampled(),
        pool_log,
        cheats,
    )
    lazy = _claimant(
        "lazy claimant",
        cast.lazy.address,
        sum(cast.lazy.decided.values()),
        pool_log,
        cheats,
    )
    diligent.open_at_end = open_claims(chain, diligent.address)
    lazy.open_at_end = open_claims(chain, lazy.address)
    statuses = {j: int(jm.getJob(j).status) for j in canary.job_ids()}
    opened = chain.events(dm, "DisputeOpened")
    # On-chain disputes only: a batch leaf's dispute names a job id of the node's own
    # numbering, which can equal a canary's on-chain job id (kind 0: on-chain, ref = jobId).
    by_challenger = {
        int(e.event_arguments["ref"])
        for e in opened
        if str(e.event_arguments["challenger"]) == cast.challenger.address
        and int(e.event_arguments["kind"]) == 0
    }
    node, operator = str(chain.accounts.canary.address), str(chain.accounts.operator.address)
    slashed = [
        int(e.event_arguments["slashed"])
        for e in chain.events(c.stake_manager, "Slashed")
        if str(e.event_arguments["node"]) == node
    ]
    cost = 0
    for addr in (node, operator):
        after = chain.holdings(addr)
        cost += before[addr].total - after.total
    p = terms.sampling_bps / 10_000
    return PaidChecksReport(
        check_share_bps=terms.check_share_bps,
        sampling_bps=terms.sampling_bps,
        collateral=terms.collateral,
        fee=chain.fee,
        diligent=diligent,
        lazy=lazy,
        canary_address=node,
        canary_jobs=len(canary.jobs),
        canary_cheats=len(cheats),
        canary_every=cfg.canary_every,
        canary_invalid=sum(s == JobStatus.INVALID for s in statuses.values()),
        canary_final=sum(s == JobStatus.FINAL for s in statuses.values()),
        canary_disputed_by_challenger=len(cheats & by_challenger),
        canary_disputed_by_operator=len(canary.disputed_by_operator),
        canary_slashed=sum(slashed),
        canary_cost=cost,
        miss_chance=(1 - p) ** len(cheats),
    )
