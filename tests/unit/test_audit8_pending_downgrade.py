"""Audit 8: the node's pending-job counts after a downgrade.

Since a6a7595 the node keeps ``pending_counts`` by explicit statements and drops the old
per-row triggers when it opens a database. A node binary from before that commit (an operator
rolling back a bad upgrade) opens the same database, sees ``state_counts`` and assumes the
triggers are there (its ``_add_counts`` returns early): nothing moves the counts any more. A
count frozen at 0 (every job sealed at the moment of the upgrade or downgrade) hides every job
served afterwards: the batch cutter never seals them (receipts signed, never committed: the
node can be accused) and the work gate counts no uncommitted work against the free stake.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from prover.batching import BatchCutter
from prover.store import Store
from spotcheck.toolchain import PROJECT_ROOT

MODEL = bytes.fromhex("ab" * 32)
#: The last commit before the counts were kept per statement.
BEFORE = "7fe0dc9"


def _old_store_module(tmp_path: Path) -> ModuleType:
    src = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "show", f"{BEFORE}:prover/store.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp_path / "old_store.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("audit8_old_store", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _serve(store: object, n: int) -> None:
    for _ in range(n):
        store.record_served(  # type: ignore[attr-defined]
            MODEL,
            np.arange(3, dtype=np.int64),
            np.arange(2, dtype=np.int64),
            b"\x01" * 32,
            b"\x02" * 32,
            lambda job_id: (job_id.to_bytes(32, "big"), b"\x03" * 65),
        )


def test_audit8_downgradeAfterUpgrade_oldNodeStopsLoudly_recoveryThenUpgradeCountsRight(
    tmp_path: Path,
) -> None:
    db = tmp_path / "node.sqlite"
    old = _old_store_module(tmp_path)
    # a node of the old release: triggers keep the counts
    store = old.Store(db)
    _serve(store, 3)
    store.seal_batch(MODEL, 10)
    store.close()
    # upgrade: the new release drops the triggers, keeps the counts by its own statements
    store = Store(db)
    _serve(store, 2)
    store.seal_batch(MODEL, 10)
    assert store.pending_counts() == {}
    store.close()
    # roll the node back to the old release: it must not serve on counts nothing updates
    store = old.Store(db)
    with pytest.raises(sqlite3.OperationalError, match="no such table: pending_counts"):
        store.pending_counts()
    store.close()
    # the recovery docs/node-operators.md gives: the old release rebuilds its counts
    conn = sqlite3.connect(db)
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (name,) in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE state_counts")
    conn.commit()
    conn.close()
    store = old.Store(db)
    _serve(store, 5)
    assert store.pending_counts()[MODEL][0] == 5
    store.close()
    # upgrade again: the old triggers are found, the counts are rebuilt from the jobs
    store = Store(db)
    _serve(store, 1)
    assert {m: n for m, (n, _) in store.pending_counts().items()} == {MODEL: 6}
    assert store.pending_counts()[MODEL][0] == store.pending_recount()[MODEL][0]
    sealed = BatchCutter(store, batch_size=4, interval_s=0.0).cut(force=True)
    assert sum(b.count for b in sealed) == 6
    assert store.pending_counts() == {}
