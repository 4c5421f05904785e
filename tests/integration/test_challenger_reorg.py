"""The challenger across a reorg on anvil (audit A4-8): a commitment it recorded and judged is
re-mined in a later block of a longer branch (restore a snapshot, mine other blocks); the
challenger forgets its row and records the job again with the new commit block, so its VRF
seed is the new branch's block hash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from challenger.sampling import parse_proof, seed_block
from challenger.store import JobState
from spotcheck import vrf
from spotcheck.encoding import hash_vector, onchain_job_key
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
