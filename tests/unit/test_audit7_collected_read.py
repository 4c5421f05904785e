"""AUDIT7-2 (LOW): a claim found COLLECTED on chain is adopted with its payout read from the
pool's collect logs (``_ClaimRules.adopt_collected`` -> ``pool_collected`` /
``pool_leaf_collected``, an ``eth_getLogs`` scan from ``sent_block``/``commit_block`` to the
head). That read is the only RPC in ``settle`` whose failure is not handled: a ``ChainError``
from it leaves ``Claimer._step_jobs`` and ``Claimer.step``, so while it fails (an RPC that
caps ``eth_getLogs``, a slow archive range, a flaky provider) every later open claim is neither
collected nor forfeited, and the leaf claimer (``self.leaves.step``) does not run at all: due
leaf claims are not sent and miss their claim window. Before this change the adoption needed
no RPC (the payout was left empty).

Expected behaviour asserted here (failed on 00d28cc, before the fix):
a failed collect-log read is logged
and retried next step; the rest of the step (leaf claims) goes on.
"""

from __future__ import annotations

from pathlib import Path

from challenger.chain_io import JobView
from challenger.store import ClaimState
from spotcheck.chain import BatchStatus, ClaimStatus, JobStatus
from spotcheck.errors import ChainError
from tests.unit.test_challenger_claims import DEADLINE, MODEL, _matched
from tests.unit.test_challenger_leaf_claims import BATCH, FakeLeafPool, _claimer, _leaves


class LogsDown(FakeLeafPool):
    def pool_collected(self, job_id: int, since_block: int) -> int:
        raise ChainError("eth_getLogs: RPC failed 5 times: query exceeds max block range")


def test_audit7_collectLogReadFails_leafClaimsAreNotSent_untilItSucceeds(tmp_path: Path) -> None:
    pool = LogsDown(batch_status=BatchStatus.COMMITTED)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    c.step()  # job 1 claimed: OPEN
    assert pool.status[1] is ClaimStatus.OPEN
    # The job became final and our collect was mined; the process died before the receipt.
    pool.jobs[1] = JobView(1, JobStatus.FINAL, MODEL, "0xnode", b"", DEADLINE, 90)
    pool.pool_collect(1)
    # Meanwhile a batch's leaves were sampled and found correct: due claims.
    _leaves(c.store, [0, 1], matched=[0, 1])
    again = _claimer(tmp_path, pool)  # the restarted process
    try:
        again.step()
    except ChainError as err:
        raise AssertionError(
            f"one failed collect-log read aborts the whole claim step: {err}; "
            f"leaf claims sent: {pool.leaf_sends}"
        ) from err
    assert pool.leaf_sends, "due leaf claims were not sent"
    assert again.leaves is not None
    assert {r.index: r.state for r in again.leaves.claims.claims(*ClaimState)} == {
        0: ClaimState.OPEN,
        1: ClaimState.OPEN,
    }
    assert BATCH  # the batch of the leaves
