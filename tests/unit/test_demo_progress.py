"""The demo's progress lines: a stage is announced when it starts, and a long one says it is
still running, with its elapsed time, while it runs (not only once it ends)."""

from __future__ import annotations

import io
import time

import pytest

from demo.progress import Progress


def _progress(heartbeat_s: float) -> tuple[Progress, io.StringIO]:
    p = Progress(heartbeat_s=heartbeat_s)
    out = io.StringIO()
    p.out = out
    return p, out


def test_stage_longStage_printsStillRunningWhileItRuns() -> None:
    p, out = _progress(0.1)
    with p.stage("setup"):
        assert out.getvalue().endswith("setup ...\n")  # announced at the start
        time.sleep(0.35)
        during = out.getvalue()
        assert during.count("still setup (") >= 2
    text = out.getvalue()
    assert "setup: done in" in text
    assert text.index("still setup") < text.index("setup: done in")
    assert [name for name, _ in p.stages] == ["setup"]


def test_stage_shortStage_noHeartbeat_andTickerStopsAfter() -> None:
    p, out = _progress(0.2)
    with p.stage("quick"):
        pass
    time.sleep(0.3)
    assert "still" not in out.getvalue()


def test_stage_failingStage_stopsTheHeartbeat() -> None:
    p, out = _progress(0.05)
    with pytest.raises(RuntimeError), p.stage("boom"):
        raise RuntimeError("x")
    seen = out.getvalue()
    time.sleep(0.2)
    assert out.getvalue() == seen
    assert p.stages == []
