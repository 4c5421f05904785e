"""The challenger across a reorg on anvil (audit A4-8): a commitment it recorded and judged is
re-mined in a later block of a longer branch (restore a snapshot, mine other blocks); the
challenger forgets its row and records the job again with the new commit block, so its VRF
seed is the new branch's block hash. A dispute of ours that the new branch lacks is sent again
(audit A5-7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from challenger.sampling import parse_proof, seed_block
from challenger.store import JobState
from spotcheck import vrf
from spotcheck.chain import DisputeStatus
from spotcheck.encoding import hash_vector, onchain_job_key
from tests.fixtures.chain import MOCK_MODEL
from tests.integration.test_challenger_chain import FakeNode, circuit, inputs, make_challenger, run

pytestmark = pytest.mark.chain


def test_reorgMovesACommit_challengerRejudgesItWithTheNewCommitBlock(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    make_job: Callable[..., int],
    chain: Any,
    tmp_path: Path,
) -> None:
    x = inputs(4)
    job_id = make_job(input=x, commit=False)
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger, FakeNode(), rate=1.0)
    ch.tick()  # the request is recorded; the follower keeps this head's hash
    snapshot = chain.snapshot()
    jm = spotcheck.job_manager
    first = jm.commitResult(job_id, hash_vector(x), circuit(x), sender=node)
    run(ch, chain)
    key = onchain_job_key(job_id)
    row = ch.store.job(key)
    assert row is not None and row.state is JobState.MATCHED
    assert row.commit_block == int(first.block_number)
    seen = ch.store.counters()["jobs_seen"]

    # The branch with the commit is replaced by a longer one where it lands later.
    chain.restore(snapshot)
    chain.mine(2)
    second = jm.commitResult(job_id, hash_vector(x), circuit(x), sender=node)
    chain.mine(4)
    moved = int(second.block_number)
    assert moved > int(first.block_number)
    run(ch, chain)
    row = ch.store.job(key)
    assert row is not None
    assert row.commit_block == moved == int(jm.getJob(job_id).commitBlock)
    assert row.challenge_deadline == int(jm.getJob(job_id).challengeDeadline)
    assert row.state is JobState.MATCHED  # judged again, on the new seed
    # Its VRF proof is for the new branch's seed block (the hash of the block after the commit).
    seed = bytes(chain.blocks[seed_block(moved, ch.policy.seed_delay)].hash)
    assert row.vrf_proof is not None
    assert parse_proof(row.vrf_proof) == vrf.prove(ch.policy.sk, seed, key)
    assert ch.store.counters()["jobs_seen"] == seen  # forgotten, then counted once more


def test_reorgDropsOurDispute_challengerDisputesAgain(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    make_job: Callable[..., int],
    chain: Any,
    tmp_path: Path,
) -> None:
    """Audit A5-7 on anvil: our openDispute is mined, then a longer branch without it replaces
    its block (the node's wrong commit, before the fork, stays). The challenger reads no
    dispute on the job, finds its transaction not pending (``ApeChain.tx_pending``), and
    disputes again inside the window."""
    x = inputs(3)
    bad = [circuit(x)[0] + MOCK_MODEL.tau + 1, circuit(x)[1]]
    job_id = make_job(input=x, output=bad)
    snapshot = chain.snapshot()
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger, FakeNode(), rate=1.0)
    run(ch, chain, ticks=1)
    key = onchain_job_key(job_id)
    first = ch.store.job(key)
    assert first is not None and first.state is JobState.DISPUTE_OPEN
    run(ch, chain)  # the follower handles (and keeps the hashes of) the dispute's blocks

    chain.restore(snapshot)  # the dispute's branch is gone
    chain.mine(8)
    dm = spotcheck.dispute_manager
    assert dm.getDispute(key).status == DisputeStatus.NONE
    assert not ch.chain.tx_pending(str(first.tx_hash))
    run(ch, chain, ticks=3)
    row = ch.store.job(key)
    assert row is not None and row.state is JobState.DISPUTE_OPEN
    d = dm.getDispute(key)
    assert d.status == DisputeStatus.OPEN
    assert str(d.challenger).lower() == str(challenger.address).lower()
