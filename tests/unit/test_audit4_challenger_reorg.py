"""Audit 4 (the follower's reorg roll-back, as the challenger uses it): after a reorg below the
confirmation depth re-mines a ResultCommitted in another block, the challenger keeps the old
commit block, so its VRF seed, sampling decision and claim proof are for a block hash that is no
longer the job's seed.

FIXED: the service passes its ``rollback`` (``Store.forget_after``) to the follower, which
deletes the unacted rows recorded after the fork so the replay records them afresh. The test
asserts that safe behaviour (no xfail marker any more). The chain is faked under LogFollower's
three chain reads; the handler, the rollback and the call are the challenger service's
(challenger/service.py tick: ``self.follower.process(self.handle_events,
rollback=self.rollback)``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from challenger.service import Challenger as ChallengerService
from challenger.store import Store
from spotcheck.encoding import onchain_job_key, output_hash
from spotcheck.follower import ChainEvent, LogFollower, open_db

MODEL = b"\x42" * 32
JOB = 5


class FakeChainFollower(LogFollower):
    chain: dict[str, Any]  # head, hashes {block: hash}, events [ChainEvent]

    def _block_hash(self, number: int) -> bytes:  # type: ignore[override]
        return self.chain["hashes"][number]

    def _head(self) -> int:  # type: ignore[override]
        return int(self.chain["head"])

    def _fetch(self, start: int, stop: int) -> list[ChainEvent]:
        return [e for e in self.chain["events"] if start <= e.block_number <= stop]


def _ev(name: str, block: int, **args: Any) -> ChainEvent:
    return ChainEvent(name, "0xjm", block, 0, "0x" + f"{block:064x}", args)


def _requested(block: int) -> ChainEvent:
    return _ev("JobRequested", block, jobId=JOB, modelId=MODEL, input=[1, 2])


def _committed(block: int, deadline: int) -> ChainEvent:
    return _ev(
        "ResultCommitted", block, jobId=JOB, node="0xnode", output=[3],
        outputHash=output_hash([3]), challengeDeadline=deadline,
    )  # fmt: skip


def test_audit4_reorgMovesACommit_challengerRecordsTheNewCommitBlock(tmp_path: Path) -> None:
    store = Store(open_db(tmp_path / "c.sqlite"))
    service: Any = SimpleNamespace(
        chain=None, _seeds={}, defender=None, revealer=None, _tick_time=None
    )
    service._record_commit = lambda conn, ev: ChallengerService._record_commit(service, conn, ev)
    handler = lambda events, conn: ChallengerService.handle_events(service, events, conn)  # noqa: E731
    rollback = lambda conn, fork: ChallengerService.rollback(service, conn, fork)  # noqa: E731
    follower = FakeChainFollower(store.conn, "challenger", [], max_range=10)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_requested(80), _committed(90, 2000)],
    }
    follower.process(handler, rollback=rollback)  # as challenger/service.py tick does
    assert store.job(onchain_job_key(JOB)).commit_block == 90
    # A reorg replaces blocks 85.. : the node's commit is re-mined in block 95.
    follower.chain = {
        "head": 110,
        "hashes": {n: (n if n < 85 else n + 10_000).to_bytes(32, "big") for n in range(0, 200)},
        "events": [_requested(80), _committed(95, 2010)],
    }
    follower.process(handler, rollback=rollback)
    row = store.job(onchain_job_key(JOB))
    # SAFE: the job's commit block (its seed block - 1) and deadline are the chain's.
    assert (row.commit_block, row.challenge_deadline) == (95, 2010), (
        f"after the reorg the challenger still has commit_block {row.commit_block}, "
        f"deadline {row.challenge_deadline}"
    )
