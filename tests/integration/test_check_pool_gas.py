"""Gas of CheckPool (issue 15): register, recordSeed, one claim, batched claims of 1, 4 and 16
(per claim), collect, forfeit, exit, and what a claimed job adds to JobManager.finalize.
Prints a markdown table (run with -s; docs/contracts.md "Paid checks" quotes it). The
asserted bounds catch regressions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.encoding import hash_vector, onchain_job_key
from tests.fixtures.chain import FUNDING, JOB_OUTPUT, MOCK_MODEL, TEST_PARAMS, advance

pytestmark = pytest.mark.chain

KEY = vrf.keypair(0xC0FFEE)


def _proof(seed: bytes, job_id: int) -> list[int]:
    return list(vrf.prove(KEY.secret, seed, onchain_job_key(job_id)).words())


def test_gas_checkPool(
    spotcheck: Any,
    make_job: Callable[..., int],
    accounts: Any,
    deployer: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    pool, jm, dm, token = (
        spotcheck.contracts.check_pool,
        spotcheck.job_manager,
        spotcheck.dispute_manager,
        spotcheck.token,
    )
    pool.setModelTerms(spotcheck.model_id, 2000, 10_000, sender=deployer)
    who = accounts[6]
    token.mint(who, FUNDING, sender=deployer)
    token.approve(pool, 2**256 - 1, sender=who)
    rows: list[tuple[str, int]] = []

    def gas(label: str, receipt: Any, per: int = 1) -> int:
        g = int(receipt.gas_used)
        rows.append((label, g // per))
        return g

    pk = list(KEY.public.words())
    pop = list(cp.possession(pool, KEY, who.address).words())
    reg = gas(
        "register (PoP check, 4-word key stored)",
        pool.register(pk, pop, 10_000 * 10**18, sender=who),
    )

    def jobs(n: int) -> list[tuple[int, bytes]]:
        ids = [make_job() for _ in range(n)]
        chain.mine(1)
        out = []
        for j in ids:
            block = int(jm.getJob(j).commitBlock)
            out.append((j, bytes(chain.blocks[block + 1].hash)))
        return out

    [(j0, s0)] = jobs(1)
    gas("recordSeed", pool.recordSeed(j0, sender=outsider))
    one = gas("claim (seed already recorded)", pool.claim(j0, _proof(s0, j0), sender=who))
    [(j1, s1)] = jobs(1)
    gas("claim (records the seed)", pool.claim(j1, _proof(s1, j1), sender=who))
    per_claim: dict[int, int] = {}
    for n in (1, 4, 16):
        batch = jobs(n)
        r = pool.claimBatch([j for j, _ in batch], [_proof(s, j) for j, s in batch], sender=who)
        per_claim[n] = gas(f"claimBatch ({n}), per claim", r, per=n) // n

    # finalize with and without claims; collect
    [(plain, _)] = jobs(1)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    fin_plain = gas("JobManager.finalize, no claim", jm.finalize(plain, sender=outsider))
    fin_claimed = gas(
        "JobManager.finalize, claimed (reward to pool)", jm.finalize(j0, sender=outsider)
    )
    gas("collect", pool.collect(j0, sender=who))

    # forfeit: a claimed job disputed and slashed
    [(bad, sb)] = jobs(1)
    pool.claim(bad, _proof(sb, bad), sender=who)
    dm.openDispute(bad, hash_vector(JOB_OUTPUT), sender=challenger)
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(onchain_job_key(bad), sender=outsider)
    gas("forfeit", pool.forfeit(bad, who, sender=outsider))

    # exit: resolve every open claim first
    for j in range(1, int(jm.jobCount()) + 1):
        if int(jm.getJob(j).status) == 2:
            jm.finalize(j, sender=outsider)
        if int(pool.claimOf(onchain_job_key(j), who)) == 1 and int(jm.getJob(j).status) == 4:
            pool.collect(j, sender=who)
    gas("requestExit", pool.requestExit(sender=who))
    advance(chain, TEST_PARAMS.check_exit_delay)
    gas("withdrawBond", pool.withdrawBond(sender=who))

    table = "| CheckPool | gas |\n|---|---:|\n" + "".join(f"| {f} | {g:,} |\n" for f, g in rows)
    print("\n" + table)
    path = os.environ.get("SPOTCHECK_GAS_REPORT")
    if path:
        Path(path).write_text(table)
    # Bounds: one pairing (113k) dominates a single claim; batching pays hash-to-G1 and two
    # ecMul per claim, one pairing for all.
    assert reg < 400_000
    assert one < 300_000
    assert per_claim[16] < per_claim[4] < per_claim[1] and per_claim[16] < one * 3 // 5
    assert fin_claimed - fin_plain < 60_000


def test_gas_checkPoolLeaves(
    spotcheck: Any,
    accounts: Any,
    deployer: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Paid checks of batch leaves: what the check deposit adds to commitBatch (the same for 4
    and 64 leaves: no loop), leaf claims of 1, 4 and 16 (per leaf), finalizeBatch, collectLeaf,
    refundBatchDeposit, and a leaf dispute's settle (burning the deposit) plus forfeitLeaf."""
    from spotcheck.encoding import batch_leaf_key, leaf_hash
    from spotcheck.merkle import MerkleTree

    pool, jm, dm, token = (
        spotcheck.contracts.check_pool,
        spotcheck.job_manager,
        spotcheck.dispute_manager,
        spotcheck.token,
    )
    mid = spotcheck.model_id
    pool.setModelTerms(mid, 2000, 10_000, sender=deployer)
    who = accounts[6]
    token.mint(who, FUNDING, sender=deployer)
    token.approve(pool, 2**256 - 1, sender=who)
    pool.register(
        list(KEY.public.words()),
        list(cp.possession(pool, KEY, who.address).words()),
        10_000 * 10**18,
        sender=who,
    )
    rows: list[tuple[str, int]] = []

    def gas(label: str, receipt: Any, per: int = 1) -> int:
        g = int(receipt.gas_used)
        rows.append((label, g // per))
        return g

    def commit(n: int) -> tuple[int, Any, list[tuple[int, list[int], list[int]]]]:
        jobs = [(900 + i, [i, 1, 2, 3], [i, -i]) for i in range(n)]
        tree = MerkleTree([leaf_hash(j, mid, hash_vector(a), hash_vector(b)) for j, a, b in jobs])
        return jm.commitBatch(mid, tree.root, n, "http://n/b", sender=node), tree, jobs

    def leaf_proof(batch_id: int, index: int) -> list[int]:
        seed = bytes(chain.blocks[int(jm.getBatch(batch_id).commitBlock) + 1].hash)
        return list(vrf.prove(KEY.secret, seed, batch_leaf_key(batch_id, index)).words())

    no_fee = gas("commitBatch (4 leaves), leaf fee 0", commit(4)[0])
    pool.setLeafCheckFee(mid, 10**17, sender=deployer)
    r4, _, _ = commit(4)
    with_fee = gas("commitBatch (4 leaves), with check deposit", r4)
    r64, _, _ = commit(64)
    with_fee_64 = gas("commitBatch (64 leaves), with check deposit", r64)
    big = int(r64.return_value)
    chain.mine(1)
    per_leaf: dict[int, int] = {}
    start = 0
    for n in (1, 4, 16):
        idx = list(range(start, start + n))
        start += n
        r = pool.claimLeaves([big] * n, idx, [leaf_proof(big, i) for i in idx], sender=who)
        per_leaf[n] = gas(f"claimLeaves ({n}), per leaf", r, per=n) // n
    # a claimed leaf that a dispute invalidates: settle burns its deposit; forfeitLeaf
    rb, tree, jobs = commit(4)
    bad = int(rb.return_value)
    chain.mine(1)
    pool.claimLeaves([bad], [0], [leaf_proof(bad, 0)], sender=who)
    j0, a0, b0 = jobs[0]
    dm.openBatchDispute(
        bad, 0, j0, hash_vector(a0), hash_vector(b0), tree.proof(0), sender=challenger
    )
    advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
    gas("DisputeManager.settle of a claimed leaf (burns its deposit)",
        dm.settle(batch_leaf_key(bad, 0), sender=outsider))  # fmt: skip
    gas("forfeitLeaf", pool.forfeitLeaf(bad, 0, who, sender=outsider))
    gas("JobManager.finalizeBatch (64 leaves)", jm.finalizeBatch(big, sender=outsider))
    gas("collectLeaf", pool.collectLeaf(big, 0, sender=who))
    gas("refundBatchDeposit", pool.refundBatchDeposit(big, sender=outsider))

    table = "| CheckPool, batch leaves | gas |\n|---|---:|\n" + "".join(
        f"| {f} | {g:,} |\n" for f, g in rows
    )
    print("\n" + table)
    path = os.environ.get("SPOTCHECK_GAS_REPORT_LEAVES")
    if path:
        Path(path).write_text(table)
    # Bounded: the deposit costs the same for 4 and 64 leaves (no loop over leaves).
    assert with_fee - no_fee < 60_000
    assert abs(with_fee_64 - with_fee) < 5_000
    # One leaf: ~340k-362k (the seed is a block hash: hash-to-G1's try-and-increment rounds and
    # the proof's words vary from run to run).
    assert per_leaf[16] < per_leaf[4] < per_leaf[1] < 400_000
