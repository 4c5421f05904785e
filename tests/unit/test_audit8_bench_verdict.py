"""Audit 8: the network benchmark's missed-job verdict (``bench_network.verdicts``) passes only
on ``could_act == 0``: every miss the challenger marks "seen after window closed" is excused,
whether or not that challenger was down when the deadline passed. A challenger that stayed up
and was simply too slow (its follower or its listing fetches behind the chain by more than a
challenge window) records the commitments after their deadlines: every corrupted job it should
have disputed is then "seen late", and the verdict passes. ``deadline_while_down`` is computed
per job but never used by the verdict. Jobs still ``mismatched``/``sampled`` when the journals
are read (their window closed during the drain, the challenger has not ticked since) are not
counted either (``pending_at_end`` is printed, not judged)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from spotcheck.toolchain import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import bench_network
from network.analysis import SEEN_LATE, missed_jobs


def _result(journal: dict[str, Any], corrupted: set[tuple[str, int]]) -> dict[str, Any]:
    journals = {"challenger0": journal}
    return {
        "slashing": {
            "honest_nodes_slashed": [],
            "cheaters_slashed": ["node2"],
            "cheaters": ["node2"],
            "every_cheater_slashed": True,
        },
        "detection": {
            "disputed": 9,
            "corrupted_closed": 10,
            "rate": 0.9,
            "wilson95": (0.6, 0.98),
            "expected": 0.9,
            "challengers": 2,
            "expected_inside_interval": True,
        },
        "flatness": {},
        "node_accounting": {"node2": {"missed": 0, "duplicates": 0}},
        "challenger_actions": {
            "challenger0": {"duplicate_disputes": 0, "duplicate_leaf_requests": 0, "disputes": 0}
        },
        "challenger_journals": journals,
        "missed_jobs": missed_jobs(
            journals,
            corrupted,
            down={},  # the challenger was never killed: up for the whole run
            ts=lambda block: 10 * block,
            names={"0xabc": "node2"},
        ),
        "load": {"seconds": 1900.0, "jobs_answered": 120_000},
        "drain": {"drain_s": 10.0, "timed_out": False},
    }


def _missed_verdict(r: dict[str, Any]) -> dict[str, Any]:
    args = argparse.Namespace(drain_timeout=600.0)
    (line,) = [v for v in bench_network.verdicts(r, args) if "journals mark missed" in v["check"]]
    return line


def test_audit8_corruptedJobMissedSeenLate_byAChallengerNeverDown_failsTheVerdict() -> None:
    row = {
        "job_key": "0x00",
        "kind": "onchain",
        "ref": 7,
        "job_id": 7,
        "leaf_index": None,
        "model_id": "0x42",
        "node": "0xAbC",
        "commit_block": 50,
        "challenge_deadline": 800,
        "seen_at": 830,  # first recorded 30 s after its deadline while the challenger was up
        "missed_at": 0.0,
        "reason": SEEN_LATE,
        "reorg_fork": None,
    }
    journal = {
        "states": {"missed": 1, "matched": 50},
        "missed_by_reason": {SEEN_LATE: 1},
        "missed_jobs": [row],
    }
    r = _result(journal, corrupted={("0xabc", 7)})
    assert r["missed_jobs"]["challengers"]["challenger0"]["deadline_while_down"] == 0
    line = _missed_verdict(r)
    assert line["ok"] is False, line


def test_audit8_mismatchedJobsLeftPendingAtTheEnd_failTheVerdict() -> None:
    """Three wrong jobs still ``mismatched`` when the journals are read after the drain (every
    window closed: the drain waits for that): never disputed, not yet marked missed."""
    journal = {"states": {"mismatched": 3, "matched": 50}, "missed_by_reason": {}}
    line = _missed_verdict(_result(journal, corrupted=set()))
    assert line["ok"] is False, line
