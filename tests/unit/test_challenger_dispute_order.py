"""The order a challenger disputes wrong jobs in (network run finding: every challenger walked a
batch's wrong leaves in the same order, one dispute per block each, and they collided on every
leaf with ``DisputeExists``: at p = 1 and a 50 % cheater, 8 of 61 wrong leaves were disputed
before a 30 s window closed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from challenger.service import dispute_order
from challenger.store import JobRow, JobState
from spotcheck.chain import JobKind
from spotcheck.encoding import batch_leaf_key

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20


def _leaf(index: int, deadline: int = 1000, batch: int = 7) -> JobRow:
    return JobRow(
        job_key=batch_leaf_key(batch, index), kind=JobKind.BATCH, ref=batch, job_id=index,
        model_id=b"\x01" * 32, node="0x" + "cc" * 20, commit_block=5,
        challenge_deadline=deadline, state=JobState.MISMATCHED, input_q=None, output_q=None,
        input_hash=None, output_hash=None, merkle_proof=None, reason=None, tx_hash=None,
        bond=None, proof_deadline=None, leaf_index=index,
    )  # fmt: skip


def test_twoChallengers_walkABatchsWrongLeavesInDifferentOrders() -> None:
    leaves = [_leaf(i) for i in range(60)]
    a = [j.leaf_index for j in dispute_order(leaves, A)]
    b = [j.leaf_index for j in dispute_order(leaves, B)]
    assert sorted(a) == sorted(b) == list(range(60))  # every leaf, once
    # Each one's first 15 (a 30 s window at one dispute per 2 s block) overlap little: together
    # they dispute far more than one alone (the same order covered 15 in all).
    assert len(set(a[:15]) | set(b[:15])) >= 24


def test_theClosestDeadlineComesFirst_whateverTheChallenger() -> None:
    late = [_leaf(i, deadline=2000, batch=8) for i in range(5)]
    soon = [_leaf(i, deadline=1000, batch=7) for i in range(5)]
    for me in (A, B):
        order = dispute_order(late + soon, me)
        assert [j.challenge_deadline for j in order] == [1000] * 5 + [2000] * 5


@given(st.lists(st.integers(0, 500), unique=True, max_size=40), st.sampled_from([A, B]))
def test_theOrderIsAPermutation_andStableForOneChallenger(indices: list[int], me: str) -> None:
    jobs = [_leaf(i) for i in indices]
    order = dispute_order(jobs, me)
    assert sorted(j.job_key for j in order) == sorted(j.job_key for j in jobs)
    assert order == dispute_order(list(reversed(jobs)), me)  # a restart resumes the same walk
    assert order == dispute_order(jobs, me.upper().replace("0X", "0x"))
