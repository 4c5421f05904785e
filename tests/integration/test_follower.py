"""The log follower hands every event to its handler exactly once, across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spotcheck.errors import ChainError
from spotcheck.follower import ChainEvent, LogFollower

pytestmark = pytest.mark.chain


def _record(events: list[ChainEvent], conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS seen (tx TEXT, idx INTEGER, value INTEGER)")
    conn.executemany(
        "INSERT INTO seen VALUES (?, ?, ?)",
        [(e.tx_hash, e.log_index, int(e.args["value"])) for e in events],
    )


def test_follower_restart_handlesEachTransferExactlyOnce(
    project, accounts, chain, tmp_path: Path
) -> None:
    owner, other = accounts[0], accounts[1]
    token = owner.deploy(project.TestToken)
    start = chain.blocks.height
    db = tmp_path / "follower.sqlite"
    for amount in (1, 2, 3):
        token.mint(owner, amount, sender=owner)

    first = LogFollower(db, "t", [(token, ["Transfer"])], start_block=start, max_range=2)
    assert first.process(_record) == 3
    first.conn.close()

    token.transfer(other, 5, sender=owner)
    second = LogFollower(db, "t", [(token, ["Transfer"])], start_block=start)
    assert second.process(_record) == 1
    assert second.process(_record) == 0
    values = sorted(v for (v,) in second.conn.execute("SELECT value FROM seen"))
    assert values == [1, 2, 3, 5]
    assert second.lag() == 0


def test_follower_handlerFails_checkpointAndRowsRollBack(
    project, accounts, chain, tmp_path: Path
) -> None:
    owner = accounts[0]
    token = owner.deploy(project.TestToken)
    start = chain.blocks.height
    token.mint(owner, 7, sender=owner)
    follower = LogFollower(tmp_path / "f.sqlite", "t", [(token, ["Transfer"])], start_block=start)

    def explode(events: list[ChainEvent], conn: sqlite3.Connection) -> None:
        _record(events, conn)
        raise RuntimeError("crash inside the handler")

    with pytest.raises(RuntimeError):
        follower.process(explode)
    assert follower.checkpoint == start - 1
    assert follower.process(_record) == 1
    assert [v for (v,) in follower.conn.execute("SELECT value FROM seen")] == [7]


def test_follower_confirmations_holdBackRecentBlocks(
    project, accounts, chain, tmp_path: Path
) -> None:
    owner = accounts[0]
    token = owner.deploy(project.TestToken)
    start = chain.blocks.height
    token.mint(owner, 1, sender=owner)
    follower = LogFollower(
        tmp_path / "c.sqlite", "t", [(token, ["Transfer"])], start_block=start, confirmations=3
    )
    assert follower.process(_record) == 0
    chain.mine(3)
    assert follower.process(_record) == 1


def _record_blocks(events: list[ChainEvent], conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS seen_at (block INTEGER, value INTEGER)")
    conn.executemany(
        "INSERT INTO seen_at VALUES (?, ?)",
        [(e.block_number, int(e.args["value"])) for e in events],
    )


def _forget_after(conn: sqlite3.Connection, fork: int) -> None:
    conn.execute("DELETE FROM seen_at WHERE block > ?", (fork,))


def _values(follower: LogFollower) -> list[int]:
    return [v for (v,) in follower.conn.execute("SELECT value FROM seen_at ORDER BY block")]


def test_follower_reorgReplacesHandledBlocks_rollsBackAndReplaysTheNewOnes(
    project, accounts, chain, tmp_path: Path
) -> None:
    """A reorg deeper than the confirmation depth (anvil: restore a snapshot, mine other
    blocks) replaced blocks the follower had handled: their events are forgotten through the
    caller's rollback and the replacing blocks' events are handled, each once."""
    owner = accounts[0]
    token = owner.deploy(project.TestToken)
    start = chain.blocks.height
    token.mint(owner, 1, sender=owner)
    fork_block = chain.blocks.height
    snapshot = chain.snapshot()
    token.mint(owner, 2, sender=owner)
    token.mint(owner, 3, sender=owner)
    follower = LogFollower(
        tmp_path / "r.sqlite", "t", [(token, ["Transfer"])], start_block=start, max_range=1
    )
    assert follower.process(_record_blocks, rollback=_forget_after) == 3
    assert _values(follower) == [1, 2, 3]

    chain.restore(snapshot)
    token.mint(owner, 20, sender=owner)
    chain.mine(3)  # the new branch is longer than the old one
    assert follower.process(_record_blocks, rollback=_forget_after) == 1
    assert _values(follower) == [1, 20]
    assert follower.checkpoint == chain.blocks.height
    # Nothing changes on the next call: the kept hashes are the new branch's.
    assert follower.process(_record_blocks, rollback=_forget_after) == 0
    assert _values(follower) == [1, 20]
    assert fork_block < follower.checkpoint


def test_follower_reorgDeeperThanKeptHashes_stopsWithChainError(
    project, accounts, chain, tmp_path: Path
) -> None:
    owner = accounts[0]
    token = owner.deploy(project.TestToken)
    start = chain.blocks.height
    snapshot = chain.snapshot()
    token.mint(owner, 1, sender=owner)
    token.mint(owner, 2, sender=owner)
    follower = LogFollower(
        tmp_path / "d.sqlite",
        "t",
        [(token, ["Transfer"])],
        start_block=start,
        max_range=1,
        keep_hashes=1,
    )
    assert follower.process(_record_blocks) == 2
    chain.restore(snapshot)
    chain.mine(4)
    with pytest.raises(ChainError, match="resync"):
        follower.process(_record_blocks)
    assert _values(follower) == [1, 2]  # nothing handled from a chain it cannot place


def test_follower_catchUpInLargeRanges_stillKeepsHashesNearTheHead_andRollsBack(
    project, accounts, chain, tmp_path: Path
) -> None:
    """A first run that catches up over many blocks in one large range still keeps hashes in
    the tail (the last blocks go in small ranges), so a reorg of a recent block rolls back
    instead of stopping with 'resync'."""
    owner = accounts[0]
    token = owner.deploy(project.TestToken)
    start = chain.blocks.height
    chain.mine(100)
    token.mint(owner, 1, sender=owner)
    chain.mine(20)
    snapshot = chain.snapshot()
    token.mint(owner, 2, sender=owner)
    follower = LogFollower(
        tmp_path / "t.sqlite", "t", [(token, ["Transfer"])], start_block=start, tail_blocks=16
    )
    assert follower.process(_record_blocks, rollback=_forget_after) == 2  # max_range 2000
    chain.restore(snapshot)
    token.mint(owner, 30, sender=owner)
    chain.mine(2)
    assert follower.process(_record_blocks, rollback=_forget_after) == 1
    assert _values(follower) == [1, 30]
