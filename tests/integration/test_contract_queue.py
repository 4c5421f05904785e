"""The per-node queue over open work with models of different proof windows (anvil, MockVerifier).

A node serving two models shares one queue between them. The queue once gave a new claim
``(openClaimsOf + 1)`` proof windows of *its own* model: a claim on a fast-window model queued
behind claims on a slow-window model got less time than the work ahead of it needs, so an
honest node answering claims earliest deadline first, each within its model's window, missed
a deadline and was slashed. Now the queue sums the open claims' windows (``openClaimWork``): a
new claim's deadline is ``now + openClaimWork(node) + its own proofWindow``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spotcheck.chain import DisputeStatus, LeafRequestStatus
from spotcheck.encoding import hash_vector, leaf_hash, onchain_job_key
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import JOB_INPUT, JOB_OUTPUT, MOCK_MODEL, defence_instances

pytestmark = pytest.mark.chain
OUT_HASH = hash_vector(JOB_OUTPUT)
#: Model A: MOCK_MODEL (slow, 100 s). Model B: the same with a 20 s proof window (fast).
SLOW = MOCK_MODEL.proof_window
FAST = 20
#: Seconds before its deadline an honest node lands each defence (proving takes the rest).
MARGIN = 5


@pytest.fixture
def fast_model(spotcheck: Any, register_model: Any, project: Any, deployer: Any) -> bytes:
    """Model B (fast window), served by the same node as the session's model A."""
    fast = replace(MOCK_MODEL, proof_window=FAST)
    return bytes(register_model(deployer.deploy(project.MockVerifier), fast, tag=b"fast-window"))


def _now(chain: Any) -> int:
    return int(chain.blocks.head.timestamp)


def test_mixedProofWindows_fastClaimBehindSlowClaims_getsTheWorkAheadPlusItsOwnWindow(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Attack (mixed proof windows): k disputes on slow model A, then one on fast model B. The
    B dispute got ``(k + 1) * P_B`` (80 s for k = 3) though the A disputes ahead of it need
    ``k * P_A`` (300 s): the node, proving in deadline order, either misses B or, doing B first,
    misses A's first dispute, and is slashed although every answer was right. Property: B's
    deadline is at least ``now + k * P_A + P_B``, and an honest node proving one claim at a time
    in deadline order, each in its model's window, meets every deadline."""
    dm = spotcheck.dispute_manager
    k = 3
    slow_jobs = [make_job() for _ in range(k)]
    fast_job = make_job(model_id=fast_model)
    opened: list[tuple[bytes, int, int]] = []  # (disputeId, opened at, window)
    for job_id in slow_jobs:
        did = bytes(dm.openDispute(job_id, OUT_HASH, sender=challenger).return_value)
        opened.append((did, _now(chain), SLOW))
    assert dm.openClaimsOf(node) == k
    did = bytes(dm.openDispute(fast_job, OUT_HASH, sender=challenger).return_value)
    now = _now(chain)
    opened.append((did, now, FAST))
    deadline = int(dm.getDispute(did).proofDeadline)
    # Property: the work ahead of the fast claim, then its own window.
    assert deadline >= now + k * SLOW + FAST, (
        f"fast dispute gets {deadline - now} s behind {k * SLOW} s of open work"
    )
    assert deadline == now + k * SLOW + FAST
    assert dm.openClaimWork(node) == k * SLOW + FAST

    # The honest node proves one claim at a time, earliest deadline first, starting with the
    # first dispute; each proof takes its model's window less MARGIN. Every defence lands.
    order = sorted(opened, key=lambda c: int(dm.getDispute(c[0]).proofDeadline))
    cursor = opened[0][1]
    work = k * SLOW + FAST
    for dispute_id, opened_at, window in order:
        cursor = max(cursor, opened_at) + window - MARGIN
        chain.mine(1, timestamp=cursor)
        assert _now(chain) < int(dm.getDispute(dispute_id).proofDeadline)
        dm.defend(
            dispute_id, b"p", defence_instances(JOB_INPUT, JOB_OUTPUT), JOB_OUTPUT, sender=node
        )
        assert dm.getDispute(dispute_id).status == DisputeStatus.DEFENDED
        work -= window
        # The same window leaves the queue that entered it.
        assert dm.openClaimWork(node) == work
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0
    assert dm.credits(node) == 4 * MOCK_MODEL.challenger_bond  # nothing was slashed
    # A drained queue starts from now again, for either model.
    late = make_job(model_id=fast_model)
    d = dm.getDispute(dm.openDispute(late, OUT_HASH, sender=challenger).return_value)
    assert d.proofDeadline == _now(chain) + FAST
    assert dm.getDispute(onchain_job_key(late)).status == DisputeStatus.OPEN


def _batch(
    spotcheck: Any, node: Any, model_id: bytes, seed: int
) -> tuple[int, list[Any], MerkleTree]:
    jobs = [(seed + i, [i, seed, 0, 1], [seed, i]) for i in range(4)]
    tree = MerkleTree([leaf_hash(j, model_id, hash_vector(a), hash_vector(b)) for j, a, b in jobs])
    receipt = spotcheck.job_manager.commitBatch(model_id, tree.root, len(jobs), "", sender=node)
    return int(receipt.return_value), jobs, tree


def test_mixedProofWindows_everyCloseTakesOutTheWindowItsClaimBrought(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Disputes and leaf requests on both models share the queue; ``openClaimWork`` is the sum
    of the open claims' windows after every open and after each of the four ways out (defend,
    settle, revealLeaf, settleLeafRequest), and every new claim's deadline is ``now +
    openClaimWork + its own window``."""
    dm = spotcheck.dispute_manager
    slow_batch, _, slow_tree = _batch(spotcheck, node, spotcheck.model_id, 500)
    fast_batch, fast_jobs, fast_tree = _batch(spotcheck, node, fast_model, 600)
    open_windows: dict[bytes, int] = {}

    def check(deadline: int, claim: bytes, window: int) -> None:
        ahead = sum(open_windows.values())
        assert deadline == _now(chain) + ahead + window, (deadline, _now(chain), ahead, window)
        open_windows[claim] = window
        assert dm.openClaimWork(node) == sum(open_windows.values())
        assert dm.openClaimsOf(node) == len(open_windows)

    def close(claim: bytes) -> None:
        del open_windows[claim]
        assert dm.openClaimWork(node) == sum(open_windows.values())
        assert dm.openClaimsOf(node) == len(open_windows)

    r_fast = bytes(dm.requestLeaf(fast_batch, 0, fast_tree.root, sender=challenger).return_value)
    check(int(dm.getLeafRequest(r_fast).revealDeadline), r_fast, FAST)
    r_slow = bytes(dm.requestLeaf(slow_batch, 0, slow_tree.root, sender=challenger).return_value)
    check(int(dm.getLeafRequest(r_slow).revealDeadline), r_slow, SLOW)
    j_slow = make_job()
    d_slow = bytes(dm.openDispute(j_slow, OUT_HASH, sender=challenger).return_value)
    check(int(dm.getDispute(d_slow).proofDeadline), d_slow, SLOW)
    j_fast = make_job(model_id=fast_model)
    d_fast = bytes(dm.openDispute(j_fast, OUT_HASH, sender=challenger).return_value)
    check(int(dm.getDispute(d_fast).proofDeadline), d_fast, FAST)
    job_id, inp, out = fast_jobs[1]
    d_leaf = bytes(
        dm.openBatchDispute(
            fast_batch,
            1,
            job_id,
            hash_vector(inp),
            hash_vector(out),
            fast_tree.proof(1),
            sender=challenger,
        ).return_value
    )
    check(int(dm.getDispute(d_leaf).proofDeadline), d_leaf, FAST)

    # revealLeaf (fast request) and defend (slow dispute) take out 20 s and 100 s.
    job_id, inp, out = fast_jobs[0]
    dm.revealLeaf(fast_batch, 0, job_id, inp, out, fast_tree.proof(0), sender=node)
    assert dm.getLeafRequest(r_fast).status == LeafRequestStatus.REVEALED
    close(r_fast)
    dm.defend(d_slow, b"p", defence_instances(JOB_INPUT, JOB_OUTPUT), JOB_OUTPUT, sender=node)
    close(d_slow)
    # A claim opened now queues behind what is still open only.
    j2 = make_job(model_id=fast_model)
    d2 = bytes(dm.openDispute(j2, OUT_HASH, sender=challenger).return_value)
    check(int(dm.getDispute(d2).proofDeadline), d2, FAST)
    # settle and settleLeafRequest, past every deadline: each takes out its own claim's window.
    deadlines = [int(dm.getLeafRequest(r_slow).revealDeadline)]
    deadlines += [int(dm.getDispute(c).proofDeadline) for c in (d_fast, d_leaf, d2)]
    chain.mine(1, timestamp=max(deadlines) + 1)
    dm.settleLeafRequest(r_slow, sender=outsider)
    close(r_slow)
    for claim in (d_fast, d_leaf, d2):
        dm.settle(claim, sender=outsider)
        assert dm.getDispute(claim).status == DisputeStatus.SLASHED
        close(claim)
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0
