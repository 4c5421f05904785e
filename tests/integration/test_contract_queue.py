"""The per-node queue over open work with models of different proof windows (anvil, MockVerifier).

A node serving two models shares one queue between them. The queue once gave a new claim
``(openClaimsOf + 1)`` proof windows of *its own* model: a claim on a fast-window model queued
behind claims on a slow-window model got less time than the work ahead of it needs, so an
honest node answering claims earliest deadline first, each within its model's window, missed
a deadline and was slashed. Now the queue sums the open claims' windows (``openClaimWork``): a
new claim's deadline is ``now + openClaimWork(node) + its own proofWindow``.

Since audit2 A2-1 the queue also keeps an in-flight bound, ``claimBusyUntil(node)``: a defence
or reveal sent by anyone but the node closes the claim while the node's own proof of it may
still be running, so the close records ``min(deadline, now + proofWindow)`` (a max over such
closes) and a new claim's deadline is ``max(now, claimBusyUntil) + openClaimWork + its own
window``.
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


# -------------------------------------------------------------------------------------------
# The in-flight bound (audit2 A2-1). Anyone may defend a dispute or reveal a leaf; the node's
# own proof of that claim, once started, runs on. A close by anyone but the node records
# ``claimBusyUntil(node) = max(claimBusyUntil, min(claim's deadline, now + its window))`` and
# a new claim's deadline is ``max(now, claimBusyUntil) + openClaimWork + its own window``.

INSTANCES = defence_instances(JOB_INPUT, JOB_OUTPUT)


def _open(dm: Any, job_id: int, who: Any) -> tuple[bytes, int]:
    did = bytes(dm.openDispute(job_id, OUT_HASH, sender=who).return_value)
    return did, int(dm.getDispute(did).proofDeadline)


def test_inFlight_thirdPartyClose_setsBusyUntil_minOfDeadlineAndNowPlusWindow_laterClaimWaits(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A slow dispute A (deadline t0 + 100) and a fast one B behind it (t0 + 120). A third
    party defends B at once: the node may still be proving B until t0 + 1 + 20 < its deadline
    (``now + window`` is the smaller). A claim C opened next counts from that bound, plus A's
    open work, plus its own window; A's deadline does not move. Then the third party defends
    A: the bound rises to A's deadline (t0 + 100 < now + 100: the deadline is the smaller). A
    third-party reveal raises it the same way."""
    dm = spotcheck.dispute_manager
    assert dm.claimBusyUntil(node) == 0
    d_a, a_deadline = _open(dm, make_job(), challenger)
    t0 = _now(chain)
    assert a_deadline == t0 + SLOW
    d_b, b_deadline = _open(dm, make_job(model_id=fast_model), challenger)
    assert b_deadline == _now(chain) + SLOW + FAST

    dm.defend(d_b, b"third-party", INSTANCES, JOB_OUTPUT, sender=outsider)
    t_b = _now(chain)
    assert t_b + FAST < b_deadline
    assert dm.claimBusyUntil(node) == t_b + FAST  # min(deadline, now + window)
    assert dm.openClaimWork(node) == SLOW and dm.openClaimsOf(node) == 1
    assert int(dm.getDispute(d_a).proofDeadline) == a_deadline  # open claims keep theirs

    d_c, c_deadline = _open(dm, make_job(model_id=fast_model), challenger)
    t_c = _now(chain)
    assert t_c < t_b + FAST
    assert c_deadline == (t_b + FAST) + SLOW + FAST  # max(now, busyUntil) + work + own

    chain.mine(1, timestamp=_now(chain) + 5)
    dm.defend(d_a, b"third-party", INSTANCES, JOB_OUTPUT, sender=outsider)
    assert _now(chain) + SLOW > a_deadline
    assert dm.claimBusyUntil(node) == a_deadline  # min(deadline, now + window), a max
    assert int(dm.getDispute(d_c).proofDeadline) == c_deadline

    # A third-party reveal just before the bound ends raises it to now + window: the reveal
    # deadline (behind the bound and C's 20 s of work) is the larger.
    chain.mine(1, timestamp=a_deadline - 10)
    batch_id, jobs, tree = _batch(spotcheck, node, fast_model, 900)
    rid = bytes(dm.requestLeaf(batch_id, 0, tree.root, sender=challenger).return_value)
    reveal_deadline = int(dm.getLeafRequest(rid).revealDeadline)
    assert reveal_deadline == a_deadline + FAST + FAST
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=outsider)
    t_rv = _now(chain)
    assert a_deadline < t_rv + FAST < reveal_deadline
    assert dm.claimBusyUntil(node) == t_rv + FAST
    # The node defends C just before its deadline (the defence lands in the next block).
    chain.mine(1, timestamp=c_deadline - MARGIN)
    dm.defend(d_c, b"p", INSTANCES, JOB_OUTPUT, sender=node)
    assert dm.getDispute(d_c).status == DisputeStatus.DEFENDED
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0


def test_inFlight_nodesOwnDefenceAndReveal_andSettles_setNothing(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The node closes its own claims after its proof ended (a defence, a reveal); a settle
    comes after the deadline, by which an honest node's proof has ended: none of them sets
    the bound, and the next claim's deadline is ``now + openClaimWork + its own window``."""
    dm = spotcheck.dispute_manager
    d_own, _ = _open(dm, make_job(), challenger)
    d_late, _ = _open(dm, make_job(model_id=fast_model), challenger)
    batch_id, jobs, tree = _batch(spotcheck, node, fast_model, 910)
    r_own = bytes(dm.requestLeaf(batch_id, 0, tree.root, sender=challenger).return_value)
    r_late = bytes(dm.requestLeaf(batch_id, 1, tree.root, sender=challenger).return_value)

    dm.defend(d_own, b"p", INSTANCES, JOB_OUTPUT, sender=node)
    assert dm.claimBusyUntil(node) == 0
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)
    assert dm.claimBusyUntil(node) == 0
    assert dm.openClaimWork(node) == FAST + FAST

    chain.mine(1, timestamp=int(dm.getLeafRequest(r_late).revealDeadline) + 1)
    dm.settle(d_late, sender=outsider)
    assert dm.getDispute(d_late).status == DisputeStatus.SLASHED
    dm.settleLeafRequest(r_late, sender=outsider)
    assert dm.getLeafRequest(r_late).status == LeafRequestStatus.SLASHED
    assert dm.getLeafRequest(r_own).status == LeafRequestStatus.REVEALED
    assert dm.claimBusyUntil(node) == 0
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0

    _, deadline = _open(dm, make_job(model_id=fast_model), challenger)
    assert deadline == _now(chain) + FAST


def test_inFlight_manySybilThirdPartyDefences_stretchAtMostOneWindow(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A cheater's two addresses (challenger and sybil) open k disputes against the node at
    once and defend them all at once, then keep opening and defending one at a time: the bound
    is a max, not a sum, so it never exceeds ``now + proofWindow`` (the longest window) and an
    honest challenger's claim opened meanwhile waits at most one window more than without the
    sybils."""
    dm = spotcheck.dispute_manager
    sybil_challenger, sybil = challenger, outsider
    k = 5
    opened = [_open(dm, make_job(), sybil_challenger) for _ in range(k)]
    assert dm.openClaimWork(node) == k * SLOW
    for did, _ in opened:
        dm.defend(did, b"sybil", INSTANCES, JOB_OUTPUT, sender=sybil)
        assert dm.claimBusyUntil(node) <= _now(chain) + SLOW
    # The first claim's bound is its deadline; every later one is queued a window or more
    # behind it, so its bound is now + window: the last defence's, one window from now.
    assert dm.claimBusyUntil(node) == _now(chain) + SLOW
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0

    for _ in range(k):  # one at a time: each open counts from the bound, each close resets it
        did, _ = _open(dm, make_job(), sybil_challenger)
        dm.defend(did, b"sybil", INSTANCES, JOB_OUTPUT, sender=sybil)
        assert dm.claimBusyUntil(node) == _now(chain) + SLOW  # now + window: never a sum

    _, honest = _open(dm, make_job(model_id=fast_model), challenger)
    now = _now(chain)
    assert honest <= now + SLOW + FAST  # one window of stretch at most
    assert honest == dm.claimBusyUntil(node) + FAST


def test_inFlight_boundExpires_claimOpenedAfterItGetsNowPlusWorkPlusWindow(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Once ``claimBusyUntil`` has passed it delays nothing: a claim opened after it gets
    ``now + openClaimWork + its own window``."""
    dm = spotcheck.dispute_manager
    d_a, a_deadline = _open(dm, make_job(), challenger)
    dm.defend(d_a, b"third-party", INSTANCES, JOB_OUTPUT, sender=outsider)
    busy = int(dm.claimBusyUntil(node))
    assert busy == a_deadline
    chain.mine(1, timestamp=busy + 30)
    d_slow, slow_deadline = _open(dm, make_job(), challenger)
    assert slow_deadline == _now(chain) + SLOW
    _, fast_deadline = _open(dm, make_job(model_id=fast_model), challenger)
    assert fast_deadline == _now(chain) + SLOW + FAST  # now + work + own window
    assert dm.claimBusyUntil(node) == busy  # the stale value stays; max(now, busy) ignores it
    dm.defend(d_slow, b"p", INSTANCES, JOB_OUTPUT, sender=node)
    assert dm.claimBusyUntil(node) == busy
