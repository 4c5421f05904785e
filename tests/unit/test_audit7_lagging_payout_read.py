"""Audit 7, left open then: a payout read from a lagging load-balanced RPC was recorded as 0.

A claim found ``COLLECTED`` on chain after a restart lost the collect's receipt is adopted with
its payout read from the pool's collect logs (``ApeChain._paid_to_me``: ``eth_getLogs`` from the
claim's send / commit block to the head). Behind a load balancer the ``claimOf`` read and the
log scan may be answered by different chain nodes: one at the head, one a few blocks behind the
collect. The lagging one returns no log (its head is below the collect's block, or it answers
an empty list for blocks it does not have yet), the sum of no logs was 0, and the claim was
recorded ``collected`` with payout 0 for good (accounting only: the tokens did arrive).

Every ``collect`` / ``collectLeaf`` emits exactly one ``RewardCollected`` /
``LeafRewardCollected`` to its claimant, even for amount 0, so a scan that finds none has not
reached the collect's block: the read says so (None) and the claim stays ``open``, read again
next step; once the log is found it is recorded once, never again after a restart.

Each test failed before the fix (payout 0 recorded; ``pool_collected`` returned 0).
The RPC is faked under the real ``ApeChain`` log scan; the claim machine is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from challenger.chain_io import ApeChain, JobView
from challenger.claims import Claimer
from challenger.store import ClaimState
from spotcheck.chain import BatchStatus, ClaimStatus, JobStatus, TxResult
from tests.unit.test_challenger_claims import DEADLINE, MODEL, _matched
from tests.unit.test_challenger_leaf_claims import BATCH, FakeLeafPool, _claimer, _leaves

ME = "0x" + "cc" * 20
COLLECT_BLOCK = 130


@dataclass
class LaggingLogs:
    """One event's ``range(start, stop, search_topics)`` as a chain node at ``height`` answers
    it: logs of blocks it has not reached are not there (an empty list, no error)."""

    logs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (block, args)
    height: int = 0

    def range(self, start: int, stop: int, search_topics: dict[str, Any]) -> list[Any]:
        return [
            SimpleNamespace(block_number=block, **args)
            for block, args in self.logs
            if start <= block < stop
            and block <= self.height
            and all(args[k] == v for k, v in search_topics.items())
        ]


class LaggingReader(ApeChain):
    """The real ``ApeChain`` log scans, with the head read from another (lagging) node."""

    def __init__(self, pool: Any) -> None:
        super().__init__(
            job_manager=None,
            dispute_manager=None,
            model_registry=None,
            token=None,
            account=SimpleNamespace(address=ME),
            check_pool=pool,
            attempts=1,
            log_range=16,
        )
        self.rpc_head = 0

    def _head(self) -> int:
        return self.rpc_head


@dataclass
class LoadBalancedPool(FakeLeafPool):
    """``claimOf`` answered at the head; the collect logs by a chain node ``lag`` blocks behind
    (the real ``ApeChain`` scan over it)."""

    me: str = ME
    lag: int = 5
    jobs_logs: LaggingLogs = field(default_factory=LaggingLogs)
    leaf_logs: LaggingLogs = field(default_factory=LaggingLogs)
    reader: LaggingReader = field(init=False)

    def __post_init__(self) -> None:
        self.reader = LaggingReader(
            SimpleNamespace(RewardCollected=self.jobs_logs, LeafRewardCollected=self.leaf_logs)
        )

    def behind(self, lag: int) -> None:
        """The log-answering node is ``lag`` blocks behind the head (its head read too)."""
        self.lag = lag
        self.jobs_logs.height = self.leaf_logs.height = self.height - lag
        self.reader.rpc_head = self.height - lag

    def pool_collect(self, job_id: int) -> tuple[TxResult, int]:
        tx, paid = super().pool_collect(job_id)
        self.jobs_logs.logs.append((self.height, {"jobId": job_id, "claimant": ME, "amount": 7}))
        return tx, paid

    def pool_collect_leaf(self, batch_id: int, index: int) -> tuple[TxResult, int]:
        tx, paid = super().pool_collect_leaf(batch_id, index)
        args = {"batchId": batch_id, "index": index, "claimant": ME, "amount": 3}
        self.leaf_logs.logs.append((self.height, args))
        return tx, paid

    def pool_collected(self, job_id: int, since_block: int) -> int | None:
        return self.reader.pool_collected(job_id, since_block)

    def pool_leaf_collected(self, batch_id: int, index: int, since_block: int) -> int | None:
        return self.reader.pool_leaf_collected(batch_id, index, since_block)


def _job_claim(c: Claimer) -> tuple[ClaimState, int | None]:
    [row] = c.claims.claims(*ClaimState)
    return row.state, row.payout


def test_audit7_laggingRpc_payoutReadFindsNoLog_isNotRecordedAsZero() -> None:
    logs = LaggingLogs([(COLLECT_BLOCK, {"jobId": 1, "claimant": ME, "amount": 7})])
    reader = LaggingReader(SimpleNamespace(RewardCollected=logs))
    # The node answering the scan is at 125: the head it reports and the logs it has.
    logs.height = reader.rpc_head = COLLECT_BLOCK - 5
    assert reader.pool_collected(1, since_block=100) is None, "no log seen: no amount"
    # The head from an up-to-date node, the logs from a lagging one (an empty answer).
    reader.rpc_head = COLLECT_BLOCK + 2
    assert reader.pool_collected(1, since_block=100) is None, "no log seen: no amount"
    logs.height = COLLECT_BLOCK + 2  # caught up
    assert reader.pool_collected(1, since_block=100) == 7


def test_audit7_collectFoundAfterRestart_logsFromALaggingRpc_payoutReadAgainNotZero(
    tmp_path: Path,
) -> None:
    pool = LoadBalancedPool(batch_status=BatchStatus.COMMITTED, height=100)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    c.step()
    assert pool.status[1] is ClaimStatus.OPEN
    # The job became final and our collect was mined in block 130; the process died before
    # the receipt came back.
    pool.jobs[1] = JobView(1, JobStatus.FINAL, MODEL, "0xnode", b"", DEADLINE, 90)
    pool.height = COLLECT_BLOCK
    pool.pool_collect(1)
    pool.height = COLLECT_BLOCK + 1
    pool.behind(5)  # claimOf says COLLECTED; the log scan's node is at 126
    again = _claimer(tmp_path, pool)  # the restarted process
    report = again.step()
    state, payout = _job_claim(again)
    assert state is ClaimState.OPEN, (
        f"the claim was recorded {state.value} with payout {payout} from a log scan that never "
        f"reached the collect's block {COLLECT_BLOCK} (the pool paid 7)"
    )
    assert report.payouts == 0 and report.paid == 0
    pool.height = COLLECT_BLOCK + 3
    pool.behind(0)  # the log node caught up
    report = again.step()
    assert _job_claim(again) == (ClaimState.COLLECTED, 7)
    assert report.paid == 1 and report.payouts == 7
    third = _claimer(tmp_path, pool)  # another restart: nothing counted twice
    report = third.step()
    assert _job_claim(third) == (ClaimState.COLLECTED, 7)
    assert report.paid == 0 and report.payouts == 0
    assert pool.collected == [1], "collected once"


def test_audit7_leafCollectFoundAfterRestart_logsFromALaggingRpc_payoutReadAgainNotZero(
    tmp_path: Path,
) -> None:
    pool = LoadBalancedPool(batch_status=BatchStatus.COMMITTED, height=100)
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0], matched=[0])
    c.step()
    assert pool.leaf_status[(BATCH, 0)] is ClaimStatus.OPEN
    pool.batch_status = BatchStatus.FINAL
    pool.height = COLLECT_BLOCK
    pool.pool_collect_leaf(BATCH, 0)  # mined; the receipt lost with the process
    pool.height = COLLECT_BLOCK + 1
    pool.behind(5)
    again = _claimer(tmp_path, pool)
    again.step()
    assert again.leaves is not None
    [row] = again.leaves.claims.claims(*ClaimState)
    assert row.state is ClaimState.OPEN, (
        f"the leaf claim was recorded {row.state.value} with payout {row.payout} from a log "
        "scan that never reached the collect's block (the pool paid 3)"
    )
    pool.height = COLLECT_BLOCK + 3
    pool.behind(0)
    report = again.step()
    [row] = again.leaves.claims.claims(*ClaimState)
    assert (row.state, row.payout) == (ClaimState.COLLECTED, 3)
    assert report.payouts == 3
    report = _claimer(tmp_path, pool).step()
    assert report.payouts == 0 and pool.leaf_collected == [(BATCH, 0)]
