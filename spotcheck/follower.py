"""Follow contract events from a persisted checkpoint, exactly once, behind a confirmation depth.

A service hands the follower its SQLite connection; for every block range the follower calls
the service's handler and advances its checkpoint *in the same transaction*. A crash either
keeps both (the range is done) or neither (the range is handled again on restart, with
nothing half-recorded), so no event is missed and none is handled twice. Side effects on
chain (transactions) are taken later from the recorded state, never inside the handler.

Only blocks at least ``confirmations`` deep are read, so a reorg shallower than that depth
cannot change what was handled. A deeper one is caught: the follower keeps the hash of the last
block of each range it handled (the newest ``keep_hashes``), and before reading on it checks
the checkpoint's hash against the chain (the newest ``tail_blocks`` before the safe head are
handled in ranges of at most ``tail_step`` blocks, so a catch-up in large ranges still keeps
hashes close to the head). When it changed, it walks back to the newest kept
block the chain still has (the fork point), calls the caller's ``rollback(conn, fork)`` (to
forget what it recorded from the replaced blocks) and moves the checkpoint back to the fork, in
one transaction, then handles the replacing blocks' events as usual. Without a ``rollback`` the
events are only replayed, which keeps whatever the caller recorded from the replaced blocks:
both services pass one (the node reopens what it answered, the challenger forgets what it has
not acted on). A reorg deeper than the kept hashes raises
:class:`ChainError`: nothing is handled until an operator resyncs.

RPC failures back off and retry; after the last attempt they surface as :class:`ChainError`
and the caller's loop tries again later from the checkpoint.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tenacity import (
    RetryError,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from spotcheck.encoding import to_hex
from spotcheck.errors import ChainError, ConfigError
from spotcheck.kit.db import open_db, transaction

__all__ = ["ChainEvent", "LogFollower", "open_db"]  # open_db: where the services import it from

log = logging.getLogger(__name__)

Handler = Callable[[list["ChainEvent"], sqlite3.Connection], None]
#: ``rollback(conn, fork)``: forget what was recorded from blocks after ``fork`` (same transaction)
Rollback = Callable[[sqlite3.Connection, int], None]
#: (Ape contract instance, event names to follow on it)
Source = tuple[Any, Sequence[str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS follower_checkpoint (
    name TEXT PRIMARY KEY,
    block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS follower_blocks (
    name TEXT NOT NULL,
    block INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (name, block)
);
"""


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract log."""

    name: str
    address: str
    block_number: int
    log_index: int
    tx_hash: str
    args: dict[str, Any] = field(hash=False)


class LogFollower:
    """Reads the events of ``sources`` in order and hands them to a handler exactly once."""

    def __init__(
        self,
        db: sqlite3.Connection | str | Path,
        name: str,
        sources: Sequence[Source],
        *,
        confirmations: int = 0,
        start_block: int = 0,
        max_range: int = 2000,
        attempts: int = 5,
        max_backoff: float = 8.0,
        keep_hashes: int = 256,
        tail_blocks: int = 64,
        tail_step: int = 8,
    ) -> None:
        if confirmations < 0 or max_range < 1 or start_block < 0 or keep_hashes < 1:
            raise ConfigError(
                "confirmations and start_block must be >= 0, max_range and keep_hashes >= 1"
            )
        if tail_blocks < 0 or tail_step < 1:
            raise ConfigError("tail_blocks must be >= 0 and tail_step >= 1")
        self.conn = db if isinstance(db, sqlite3.Connection) else open_db(db)
        self.name = name
        self.confirmations = confirmations
        self.max_range = max_range
        self._start_block = start_block
        self._attempts = attempts
        self._max_backoff = max_backoff
        self._keep_hashes = keep_hashes
        self._tail_blocks = tail_blocks
        self._tail_step = tail_step
        self._addresses: list[str] = []
        self._abis: list[Any] = []
        for contract, events in sources:
            self._addresses.append(str(contract.address))
            for event in events:
                self._abis.append(getattr(contract, event).abi)
        self.conn.executescript(_SCHEMA)

    # -- checkpoint -------------------------------------------------------------------------

    @property
    def checkpoint(self) -> int:
        """The last block whose events were handled (``start_block - 1`` before the first)."""
        row = self.conn.execute(
            "SELECT block FROM follower_checkpoint WHERE name = ?", (self.name,)
        ).fetchone()
        return int(row[0]) if row else self._start_block - 1

    def safe_head(self) -> int:
        """The newest block deep enough to read."""
        return self._rpc(self._head) - self.confirmations

    def lag(self) -> int:
        """Blocks between the chain head and the checkpoint (including the confirmation depth)."""
        return max(0, self._rpc(self._head) - self.checkpoint)

    # -- processing -------------------------------------------------------------------------

    def process(
        self, handler: Handler, *, until: int | None = None, rollback: Rollback | None = None
    ) -> int:
        """Handle every new event up to the safe head (or ``until``); returns how many.

        First undoes a reorg that replaced handled blocks (see the module's docstring)."""
        self._undo_reorg(rollback)
        target = self.safe_head() if until is None else min(until, self.safe_head())
        handled = 0
        start = self.checkpoint + 1
        tail = target - self._tail_blocks + 1  # the first block of the tail
        while start <= target:
            # Large ranges end where the tail begins; the tail goes in small steps.
            limit = tail - 1 if start < tail else start + self._tail_step - 1
            stop = min(target, start + self.max_range - 1, limit)
            # The hash first: if a reorg lands between the two reads, the kept hash is the old
            # one and the next call sees the change (the other order could hide it).
            stop_hash: bytes = self._rpc(partial(self._block_hash, stop))
            events: list[ChainEvent] = self._rpc(partial(self._fetch, start, stop))
            with transaction(self.conn) as conn:
                if events:
                    handler(events, conn)
                self._set_checkpoint(conn, stop)
                conn.execute(
                    "INSERT OR REPLACE INTO follower_blocks(name, block, hash) VALUES(?, ?, ?)",
                    (self.name, stop, stop_hash),
                )
                conn.execute(
                    "DELETE FROM follower_blocks WHERE name = ? AND block NOT IN (SELECT block "
                    "FROM follower_blocks WHERE name = ? ORDER BY block DESC LIMIT ?)",
                    (self.name, self.name, self._keep_hashes),
                )
            log.debug("%s: handled %d events in blocks %d..%d", self.name, len(events), start, stop)
            handled += len(events)
            start = stop + 1
        return handled

    def _set_checkpoint(self, conn: sqlite3.Connection, block: int) -> None:
        conn.execute(
            "INSERT INTO follower_checkpoint(name, block) VALUES(?, ?) "
            "ON CONFLICT(name) DO UPDATE SET block = excluded.block",
            (self.name, block),
        )

    def _undo_reorg(self, rollback: Rollback | None) -> None:
        """If the chain replaced handled blocks, rewind to the fork point (see the docstring)."""
        kept = self.conn.execute(
            "SELECT block, hash FROM follower_blocks WHERE name = ? ORDER BY block DESC",
            (self.name,),
        ).fetchall()
        if not kept or self._rpc(partial(self._block_hash, int(kept[0][0]))) == bytes(kept[0][1]):
            return
        fork = next(
            (
                int(block)
                for block, old in kept[1:]
                if self._rpc(partial(self._block_hash, int(block))) == bytes(old)
            ),
            None,
        )
        if fork is None:
            raise ChainError(
                f"{self.name}: a reorg replaced every block whose hash is kept (from block "
                f"{int(kept[-1][0])}); resync this service's database from a deeper checkpoint"
            )
        with transaction(self.conn) as conn:
            if rollback is not None:
                rollback(conn, fork)
            conn.execute(
                "DELETE FROM follower_blocks WHERE name = ? AND block > ?", (self.name, fork)
            )
            self._set_checkpoint(conn, fork)
        log.warning(
            "chain reorg below the confirmation depth",
            extra={"follower": self.name, "replaced_after": fork, "was_checkpoint": kept[0][0]},
        )

    # -- chain access -----------------------------------------------------------------------

    @staticmethod
    def _block_hash(number: int) -> bytes:
        from ape import chain

        return bytes(chain.provider.get_block(number).hash)

    @staticmethod
    def _head() -> int:
        from ape import chain

        return int(chain.blocks.height)

    def _fetch(self, start: int, stop: int) -> list[ChainEvent]:
        from ape import chain
        from ape.types.events import LogFilter

        log_filter = LogFilter(
            addresses=self._addresses,  # type: ignore[arg-type]  # checksummed by Ape
            events=self._abis,
            start_block=start,
            stop_block=stop,
        )
        events = [
            ChainEvent(
                name=entry.event_name,
                address=str(entry.contract_address),
                block_number=int(entry.block_number),
                log_index=int(entry.log_index),
                tx_hash=to_hex(entry.transaction_hash),
                args=dict(entry.event_arguments),
            )
            for entry in chain.provider.get_contract_logs(log_filter)
        ]
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return events

    def _rpc(self, call: Callable[[], Any]) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.25, max=self._max_backoff),
            retry=retry_if_not_exception_type((ConfigError, KeyboardInterrupt)),
            reraise=False,
        )
        try:
            return retrying(call)
        except RetryError as err:
            cause = err.last_attempt.exception()
            raise ChainError(f"{self.name}: RPC failed {self._attempts} times: {cause}") from cause
