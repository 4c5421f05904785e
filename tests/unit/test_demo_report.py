"""The demo report's note under the node table: unsampled cheats next to RESULT: OK are
explained (sampling lets some through by design; the economics make them a loss)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from demo.report import DemoReport


def _report(*finals: int) -> Any:
    report = DemoReport.__new__(DemoReport)  # only the fields the note reads
    report.economics = {"sampling": 0.5, "bound": 0.0141}
    report.nodes = [SimpleNamespace(corrupted_final=f) for f in finals]
    return report


def test_unsampledNote_cheatsWentFinal_saysWhyThatIsExpected() -> None:
    note = _report(0, 9, 0).unsampled_note()
    assert note.startswith("  9 output(s) outside tau went final unsampled: expected")
    assert "secret 50% of the commitments" in note and "bound 1.41%" in note
    assert "loses money on average" in note
    assert all(len(line) <= 100 for line in note.splitlines())


def test_unsampledNote_noneWentFinal_saysEveryCheatWasCaught() -> None:
    assert "was caught" in _report(0, 0).unsampled_note()
