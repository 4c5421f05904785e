"""Third-party chatter is DEBUG (spotcheck.kit.quiet, installed by the demo's service logs;
Ape's printed call traces by the status commands):
Ape's per-signature "Using cached key" and ezkl's fidelity table vanish at INFO, show at DEBUG,
and every other record of those loggers is untouched."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from spotcheck.kit.quiet import (
    DemoteToDebug,
    ape_traces_to_debug,
    demote_chatter,
    show_to_debug_log,
)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(n) for n in ("ape", "ezkl.execute", "httpx")]
    saved = [(lg, lg.level, list(lg.filters), lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
    yield handler
    for lg, level, filters, propagate in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.filters[:] = filters
        lg.propagate = propagate


def test_demoteChatter_atInfo_dropsChatterKeepsRealWarnings(captured: Capture) -> None:
    demote_chatter()
    ape, ezkl = logging.getLogger("ape"), logging.getLogger("ezkl.execute")
    ape.setLevel(logging.INFO)
    ezkl.setLevel(logging.INFO)
    ape.warning("Using cached key for %s", "node")
    ezkl.warning("\n <--- Numerical Fidelity Report (input_scale: 13) --->\n| mean_error |")
    httpx = logging.getLogger("httpx")
    httpx.setLevel(logging.INFO)
    httpx.info('HTTP Request: %s %s "%s %d %s"', "POST", "http://n/infer", "HTTP/1.1", 200, "OK")
    ape.warning("Transaction failed: out of gas")
    ezkl.warning("calibration failed for scale 7")
    httpx.warning("something else from httpx")
    assert [r.getMessage() for r in captured.records] == [
        "Transaction failed: out of gas",
        "calibration failed for scale 7",
        "something else from httpx",
    ]
    assert all(r.levelname == "WARNING" for r in captured.records)


def test_demoteChatter_atDebug_showsChatterAsDebug(captured: Capture) -> None:
    demote_chatter()
    logging.getLogger("ape").setLevel(logging.DEBUG)
    logging.getLogger("ape").warning("Using cached key for %s", "node")
    [record] = captured.records
    assert record.levelname == "DEBUG" and record.getMessage() == "Using cached key for node"


def test_demoteChatter_twice_installsOneFilterPerLogger(captured: Capture) -> None:
    demote_chatter()
    demote_chatter()
    for name in ("ape", "ezkl.execute", "httpx"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, DemoteToDebug) for f in filters) == 1


class FakeTrace:
    calls = 0

    def show(self, verbose: bool = False, file: Any = None) -> None:
        FakeTrace.calls += 1
        print("Call trace for 0xabc\nreverted with message: NodeUnbonding", file=file)


def test_showToDebugLog_noFile_logsAtDebugAndPrintsNothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    show_to_debug_log(FakeTrace)
    show_to_debug_log(FakeTrace)  # idempotent: one wrapper
    with caplog.at_level(logging.DEBUG, logger="spotcheck.ape_trace"):
        FakeTrace().show()
    assert capsys.readouterr().out == ""
    [record] = caplog.records
    assert record.levelname == "DEBUG" and "reverted with message: NodeUnbonding" in record.message


def test_showToDebugLog_notDebug_skipsRenderingTheTrace(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    show_to_debug_log(FakeTrace)
    before = FakeTrace.calls
    with caplog.at_level(logging.INFO, logger="spotcheck.ape_trace"):
        FakeTrace().show()
    assert FakeTrace.calls == before and capsys.readouterr().out == "" and not caplog.records


def test_showToDebugLog_explicitFile_stillWritten() -> None:
    show_to_debug_log(FakeTrace)
    out = io.StringIO()
    FakeTrace().show(file=out)
    assert "NodeUnbonding" in out.getvalue()


def test_apeTracesToDebug_patchesApesTraceShow() -> None:
    from ape_ethereum.trace import Trace

    ape_traces_to_debug()
    assert getattr(Trace.show, "_spotcheck_to_debug", False)
