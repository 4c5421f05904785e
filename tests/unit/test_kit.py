"""The service kit (``spotcheck.kit``): logging fields, readiness, the run loop, SQLite rules."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from spotcheck.errors import ChainError, StateError
from spotcheck.kit.db import IllegalTransition, move, open_db, transaction
from spotcheck.kit.logs import JsonFormatter, KeyValueFormatter, configure_logging
from spotcheck.kit.loop import run_loop
from spotcheck.kit.ready import Readiness
from spotcheck.kit.serve import HttpThread, free_port

DISPUTE = {"job_id": 7, "node": "0xN0de", "tx": "0xabc", "dispute_id": b"\x01\x02"}

# -- logging ------------------------------------------------------------------------------


def test_disputeOpened_isFormatted_withItsJobNodeAndTransaction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="challenger.service")
    logging.getLogger("challenger.service").warning("DISPUTE OPENED", extra=DISPUTE)

    [record] = caplog.records
    line = KeyValueFormatter().format(record)
    assert line.endswith(
        "challenger.service: DISPUTE OPENED job_id=7 node=0xN0de tx=0xabc dispute_id=0x0102"
    )
    data = json.loads(JsonFormatter().format(record))
    assert data["msg"] == "DISPUTE OPENED" and data["level"] == "WARNING"
    assert (data["job_id"], data["node"], data["tx"], data["dispute_id"]) == (
        7,
        "0xN0de",
        "0xabc",
        "0x0102",
    )


def test_keyValue_quotesValuesWithSpaces_andKeepsTheTraceback() -> None:
    log = logging.getLogger("test.kit.quote")
    try:
        raise ValueError("boom")
    except ValueError:
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, 1, "failed", (), None, extra={"reason": "a b"}
        )
        import sys

        record.exc_info = sys.exc_info()
    line = KeyValueFormatter().format(record)
    assert 'failed reason="a b"' in line and "ValueError: boom" in line
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exc"]


@pytest.mark.parametrize("as_json", [False, True])
def test_configureLogging_printsFields_onceEvenWhenCalledTwice(as_json: bool) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        configure_logging(json=as_json, level=logging.INFO, stream=io.StringIO())
        configure_logging(json=as_json, level=logging.INFO, stream=out)
        logging.getLogger("prover.service").info("job committed", extra={"job_id": 3, "tx": "0x1"})
    finally:
        root.handlers[:], root.level = saved
    [line] = out.getvalue().splitlines()
    if as_json:
        assert json.loads(line) | {"ts": 0} == {
            "ts": 0,
            "level": "INFO",
            "logger": "prover.service",
            "msg": "job committed",
            "job_id": 3,
            "tx": "0x1",
        }
    else:
        assert line.endswith("INFO prover.service: job committed job_id=3 tx=0x1")


# -- readiness and the run loop -----------------------------------------------------------


def test_readiness_isFalseUntilAStepSucceeds_falseAfterAFailure_andWhenStale() -> None:
    ready = Readiness(max_age_s=60)
    assert ready.reason() == "starting: no chain step has succeeded yet"
    ready.step_ok()
    assert ready.ready()
    ready.step_failed("RPC down\ntraceback...")
    assert ready.reason() == "last chain step failed: RPC down"
    ready.step_ok()
    assert ready.ready()
    assert ready.last_ok is not None
    ready.last_ok -= 61
    assert not ready.ready() and "no successful chain step for 61 s" in (ready.reason() or "")


def test_runLoop_backsOffOnFailedSteps_reportsReadiness_andStops() -> None:
    stop = threading.Event()
    ready = Readiness()
    calls: list[str] = []
    waits: list[float] = []
    errors: list[BaseException] = []

    def step() -> str:
        calls.append("step")
        if len(calls) <= 3:
            raise ChainError("RPC down")
        return "phase failed" if len(calls) == 4 else "ok"

    def on_step(report: str) -> None:
        if report == "phase failed":
            assert ready.reason() == "last chain step failed: commit-jobs"
        else:
            assert ready.ready()
            stop.set()

    real_wait = stop.wait

    def wait(timeout: float | None = None) -> bool:
        waits.append(timeout or 0)
        return real_wait(0)

    stop.wait = wait  # type: ignore[method-assign]
    steps = run_loop(
        step,
        stop=stop,
        interval_s=1.0,
        name="test",
        readiness=ready,
        failure=lambda r: "commit-jobs" if r == "phase failed" else None,
        on_step=on_step,
        on_error=errors.append,
        max_backoff_s=3.0,
    )
    assert steps == 5 and len(errors) == 3
    assert waits == [1.0, 2.0, 3.0, 1.0, 1.0]  # doubled up to the cap, reset after a success


def test_runLoop_letsAnUnexpectedErrorThrough_whenRetryOnIsNarrow() -> None:
    def step() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_loop(step, stop=threading.Event(), interval_s=0, name="t", retry_on=(ChainError,))


def test_runLoop_stopsAfterMaxSteps() -> None:
    assert run_loop(lambda: None, stop=threading.Event(), interval_s=0, name="t", max_steps=2) == 2


# -- HTTP thread ----------------------------------------------------------------------------


def test_httpThread_servesTheApp_andStops() -> None:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    http = HttpThread(app, "127.0.0.1", free_port(), name="test-http").start(wait_s=15)
    try:
        assert httpx.get(f"{http.url}/ping", timeout=5).json() == {"pong": "yes"}
    finally:
        http.stop()
    assert not http.thread.is_alive()


# -- SQLite: one transaction helper, one state-change rule ----------------------------------


@pytest.fixture()
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = open_db(tmp_path / "kit.sqlite")
    c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, status TEXT, updated_at REAL, note TEXT)")
    c.execute("INSERT INTO t VALUES ('a', 'new', 0, NULL)")
    return c


def test_transaction_rollsBackOnError_andCommitsOtherwise(conn: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError), transaction(conn, threading.RLock()) as c:
        c.execute("INSERT INTO t VALUES ('b', 'new', 0, NULL)")
        raise RuntimeError("crash")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    with transaction(conn) as c:
        c.execute("INSERT INTO t VALUES ('b', 'new', 0, NULL)")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2


def test_move_changesAllowedStates_andRaisesOneErrorOtherwise(conn: sqlite3.Connection) -> None:
    move(conn, "t", ("k", "a"), ["new"], "sent", note="x")
    assert conn.execute("SELECT status, note FROM t").fetchone() == ("sent", "x")
    with pytest.raises(IllegalTransition) as err:
        move(conn, "t", ("k", "a"), ["new"], "sent")  # a replay is illegal too: it raises
    assert (err.value.have, err.value.to) == ("sent", "sent")
    assert isinstance(err.value, StateError)
    with pytest.raises(IllegalTransition, match="no such row"):
        move(conn, "t", ("k", "zz"), ["new"], "sent")
    assert conn.execute("SELECT status FROM t").fetchone() == ("sent",)


def test_checkPort_portInUse_isOneLineStartupError_namingTheFlag() -> None:
    """The node and the challenger share this check (prover/startup.py, challenger/startup.py
    bind their own flag name)."""
    import socket

    from spotcheck.errors import StartupError
    from spotcheck.kit.serve import check_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as err:
            check_port("127.0.0.1", port, flag="--some-port")
    text = str(err.value)
    assert "\n" not in text
    assert text == (
        f"cannot listen on 127.0.0.1:{port}: the port is in use (set [http] port or --some-port)"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    check_port("127.0.0.1", free, flag="--some-port")  # a free port passes
