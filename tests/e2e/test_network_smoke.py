"""A tiny network run (``benchmarks/bench_network.py``): real ``spotcheck node run`` and
``spotcheck challenger run`` processes on one anvil, 3 nodes (1 cheating at 10 %), 2
challengers sampling every job (p = 1), ~200 jobs from the dApp load generator, with the kill -9
of a node and a challenger, and one ``anvil_reorg`` of the last 2 blocks (``--reorg-depth 2``,
below the services' 3 confirmations). The reorg drops the transactions of those blocks for good;
the nodes broadcast them again as signed within a second (issue 14: before, a node whose
``commitBatch`` was dropped under a later pending one stalled for its 120 s send timeout, and
once the cheater's batches were never committed, so nothing of it could be disputed; see
tests/integration/test_node_reorg_resend.py).

Asserts what the run measured: no honest node slashed, the cheater slashed (its corrupted
leaves disputed: not necessarily all of them, a challenger that is still re-running a batch when
its window closes misses the rest, see docs/benchmarks.md), no receipt missing from the chain
and no leaf committed twice after the kill -9 and the reorg.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spotcheck.toolchain import PROJECT_ROOT

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_networkRun_tinyNetwork_cheaterCaughtAtPOneAndNoHonestNodeSlashed(tmp_path: Path) -> None:
    out = tmp_path / "network"
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "bench_network.py"),
         "--nodes", "3", "--challengers", "2", "--cheat-rates", "0.1", "--no-withholder",
         "--sampling", "1.0", "--jobs", "200", "--duration", "120", "--threads", "2",
         "--batch-size", "16", "--reorg-depth", "2", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((out / "network.json").read_text())

    assert result["load"]["jobs_answered"] >= 200
    slashing = result["slashing"]
    assert slashing["honest_nodes_slashed"] == []
    assert slashing["cheaters_slashed"] == ["node1"]
    det = result["detection"]["nodes"]["node1"]
    assert det["corrupted_closed"] > 0, det
    assert det["disputed"] >= 1, det
    accounting = result["node_accounting"]
    assert all(v["missed"] == 0 and v["duplicates"] == 0 for v in accounting.values()), accounting
    assert {c["action"] for c in result["chaos"]} == {"kill -9", "restart", "reorg"}
    [reorg] = [c for c in result["chaos"] if c["action"] == "reorg"]
    assert reorg["replaced_blocks"] == 2, reorg
    for png in ("network_resources.png", "network_service.png", "network_detection.png"):
        assert (out / png).stat().st_size > 0
