"""The network run's statistics (``benchmarks/network/analysis.py``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotcheck.toolchain import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import bench_network
from network.analysis import SEEN_LATE, down_windows, missed_jobs, wilson


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_alwaysHoldsTheObservedRate_withinZeroOne(case: tuple[int, int]) -> None:
    # at k = n the upper end rounded to 1 - 1e-16 once: the plot's error bar went negative
    k, n = case
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_allOfThirtyOne_isTheKnownInterval() -> None:
    lo, hi = wilson(31, 31)
    assert hi == 1.0 and abs(lo - 0.88974) < 1e-5


def test_downWindows_killToRestart_inChainTime_unrestartedToTheEnd() -> None:
    chaos = [
        {"t": 100.0, "action": "kill -9", "target": "challenger1"},
        {"t": 105.5, "action": "restart", "target": "challenger1"},
        {"t": 200.0, "action": "reorg", "depth": 2},
        {"t": 300.0, "action": "kill -9", "target": "node7"},
    ]
    down = down_windows(chaos, offset=1000.0)
    assert down["challenger1"] == [(1100, 1106)]
    assert down["node7"] == [(1300, 2**63)]


def _journal(missed: list[dict[str, object]], late: int) -> dict[str, object]:
    return {
        "states": {"missed": len(missed), "sampled": 2, "matched": 50},
        "missed_by_reason": {
            SEEN_LATE: late,
            "window closed before the dispute": len(missed) - late,
        },
        "missed_jobs": missed,
    }


def _row(job_id: int, deadline: int, seen: int | None, reason: str) -> dict[str, object]:
    return {
        "job_key": "0x00",
        "kind": "batch_leaf",
        "ref": 7,
        "job_id": job_id,
        "leaf_index": job_id % 64,
        "model_id": "0x42",
        "node": "0xAbC",
        "commit_block": 50,
        "challenge_deadline": deadline,
        "seen_at": seen,
        "missed_at": 0.0,
        "reason": reason,
        "reorg_fork": None,
    }


def test_missedJobs_separatesSeenLate_marksCorruptedAndDeadlineWhileDown() -> None:
    journals = {
        "challenger0": _journal([], 0),
        "challenger1": _journal(
            [
                _row(1, 1103, 900, "window closed before the dispute"),
                _row(2, 1500, 1510, SEEN_LATE),
            ],
            late=1,
        ),
    }
    out = missed_jobs(
        journals,
        corrupted={("0xabc", 1)},
        down={"challenger1": [(1100, 1106)]},
        ts=lambda block: 10 * block,
        names={"0xabc": "node2"},
    )
    assert (out["missed"], out["seen_late"], out["could_act"]) == (2, 1, 1)
    assert out["pending_at_end"] == 4
    c1 = out["challengers"]["challenger1"]
    first, second = c1["jobs"]
    assert first["corrupted"] and first["deadline_while_down"] and first["node_name"] == "node2"
    assert first["seen_minus_deadline_s"] == -203 and first["commit_time"] == 500
    assert not second["corrupted"] and not second["deadline_while_down"]
    assert second["seen_minus_deadline_s"] == 10
    assert out["challengers"]["challenger0"]["missed"] == 0


def test_loadPacing_keepsTheRate_withoutBurstingToCatchUp(monkeypatch: Any) -> None:
    from network import load

    gen = load.LoadGenerator(["http://n"], "0x" + "00" * 32, 64, threads=2, request_batch=10)
    gen.rate = 100.0
    clock = [1000.0]
    monkeypatch.setattr(load.time, "monotonic", lambda: clock[0])
    assert [gen._pace(10) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])  # 0.1 s a request
    clock[0] += 5.0  # the run fell far behind: the next slot is now, not five seconds ago
    assert [gen._pace(10), gen._pace(10)] == pytest.approx([0.0, 0.1])


def test_missedJobs_seenLateExcusedOnlyWhileDown_withGrace_unfinishedAndLeafRequestsCount() -> None:
    rows = [
        _row(1, 1100, 1120, SEEN_LATE),  # deadline while down: excused
        _row(2, 1150, 1160, SEEN_LATE),  # 44 s after the restart: still catching up, excused
        _row(3, 1300, 1310, SEEN_LATE),  # long after the restart: up and too slow
        _row(4, 1400, 900, "window closed before the dispute"),  # seen in time
    ]
    journal = {
        "states": {"missed": 5, "sampled": 1, "mismatched": 2, "dispute_sent": 4},
        "missed_by_reason": {SEEN_LATE: 4, "window closed before the dispute": 1},
        "missed_jobs": rows,  # one seen-late miss beyond the listed rows: counted as up
        "leaf_requests": {"missed": 3},
    }
    out = missed_jobs(
        {"challenger1": journal},
        corrupted=set(),
        down={"challenger1": [(1050, 1106)]},
        ts=lambda block: block,
        names={},
    )
    c1 = out["challengers"]["challenger1"]
    assert (c1["seen_late_down"], c1["seen_late_up"], c1["could_act"]) == (2, 2, 1)
    assert (c1["pending_at_end"], c1["dispute_sent_at_end"]) == (3, 4)
    assert c1["leaf_requests_missed"] == 3 and out["leaf_requests_missed"] == 3
    assert c1["failing"] == 1 + 2 + 3 == out["failing"]


def test_verdict_seenLateWhileDownOnly_passes_summaryPrintsEachNumber() -> None:
    journal = {
        "states": {"missed": 1, "matched": 5},
        "missed_by_reason": {SEEN_LATE: 1},
        "missed_jobs": [_row(1, 1100, 1120, SEEN_LATE)],
        "leaf_requests": {"missed": 0},
    }
    mj = missed_jobs(
        {"challenger1": journal},
        corrupted=set(),
        down={"challenger1": [(1050, 1106)]},
        ts=lambda block: block,
        names={},
    )
    r = {
        "slashing": {
            "honest_nodes_slashed": [],
            "cheaters_slashed": [],
            "cheaters": [],
            "every_cheater_slashed": True,
        },
        "detection": {"corrupted_closed": 0},
        "flatness": {},
        "node_accounting": {},
        "challenger_actions": {
            "challenger1": {"duplicate_disputes": 0, "duplicate_leaf_requests": 0, "disputes": 0}
        },
        "challenger_journals": {"challenger1": journal},
        "missed_jobs": mj,
        "load": {"seconds": 1900.0, "jobs_answered": 120_000},
        "drain": {"drain_s": 10.0, "timed_out": False},
    }
    r["detection"].update(disputed=0, rate=0.0, wilson95=(0.0, 1.0), expected=0.9, challengers=2)
    lines = {
        v["check"]: v for v in bench_network.verdicts(r, argparse.Namespace(drain_timeout=600.0))
    }
    (missed,) = [v for k, v in lines.items() if "journals mark missed" in k]
    (requests,) = [v for k, v in lines.items() if "failed to send in time" in k]
    assert missed["ok"] is True and requests["ok"] is True
    assert "1 seen late, the deadline while down" in missed["measured"]
    (text,) = bench_network.missed_lines(mj)[:1]
    for part in (
        "0 seen in time",
        "1 seen late while down",
        "0 seen late while up",
        "0 still sampled/mismatched at the end",
        "0 leaf requests missed",
    ):
        assert part in text, text
