"""SQLite for the services: the database file, write transactions, and the state-change rule.

Every service table with a state machine moves a row with :func:`move`: one conditional
``UPDATE ... WHERE <state> IN (allowed)``, so a change is compare-and-set and a replay after a
crash cannot apply twice. A row that is not in an allowed state (or does not exist) is an
:class:`IllegalTransition`, in both services: the caller that expects a row may already have
moved on (an idempotent replay, another actor first) catches it where that is expected.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from spotcheck.errors import StateError


class IllegalTransition(StateError):  # noqa: N818 - named for the failed condition
    """A row was asked to change to a state its current state does not lead to."""

    def __init__(self, table: str, key: object, have: str | None, to: str) -> None:
        self.table, self.key, self.have, self.to = table, key, have, to
        key_text = "0x" + key.hex() if isinstance(key, bytes) else str(key)
        what = "no such row" if have is None else f"cannot move from {have} to {to}"
        super().__init__(f"{table} {key_text}: {what}")


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (and create) a service database in WAL mode with safe defaults (autocommit: writes
    go through :func:`transaction`)."""
    db_path = Path(path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def transaction(
    conn: sqlite3.Connection, lock: threading.RLock | threading.Lock | None = None
) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once) on an
    autocommit connection: committed when the block ends, rolled back on any exception.
    ``lock`` serialises the threads that share ``conn``."""
    with lock if lock is not None else nullcontext():
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def move(
    conn: sqlite3.Connection,
    table: str,
    key: tuple[str, object],
    allowed: Iterable[str],
    to: str,
    *,
    state_column: str = "status",
    **fields: object,
) -> None:
    """Move the row ``key`` (column, value) of ``table`` from one of ``allowed`` states to
    ``to``, setting ``updated_at`` and ``fields`` in the same statement.

    Raises :class:`IllegalTransition` (nothing written) when the row is in another state or
    does not exist."""
    key_column, key_value = key
    allowed = tuple(allowed)
    values: dict[str, Any] = {state_column: to, "updated_at": time.time(), **fields}
    assignments = ", ".join(f"{column} = ?" for column in values)
    marks = ",".join("?" * len(allowed))
    cur = conn.execute(
        f"UPDATE {table} SET {assignments} WHERE {key_column} = ? AND {state_column} IN ({marks})",
        (*values.values(), key_value, *allowed),
    )
    if cur.rowcount:
        return
    row = conn.execute(
        f"SELECT {state_column} FROM {table} WHERE {key_column} = ?", (key_value,)
    ).fetchone()
    raise IllegalTransition(table, key_value, None if row is None else str(row[0]), to)
