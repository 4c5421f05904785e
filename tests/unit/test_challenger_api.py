"""/health, /ready, /metrics, the status command and the config of the challenger."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from challenger.api import Health, create_app
from challenger.cli import challenger
from challenger.config import load_settings
from challenger.metrics import Metrics
from challenger.runner import read_status
from challenger.store import JobState, Store
from spotcheck.encoding import onchain_job_key, output_hash
from spotcheck.errors import ConfigError
from spotcheck.follower import open_db

MODEL = b"\x11" * 32


def _db_with_a_won_dispute(path: Path) -> Store:
    store = Store(open_db(path))
    Store.record_request(store.conn, 1, MODEL, [1])
    Store.record_onchain_commit(
        store.conn,
        job_key=onchain_job_key(1),
        job_id=1,
        node="0xn",
        output_q=[2],
        output_hash=output_hash([2]),
        challenge_deadline=9,
        commit_block=3,
    )
    key = onchain_job_key(1)
    for to in (JobState.SAMPLED, JobState.MISMATCHED, JobState.DISPUTE_OPEN, JobState.WON):
        store.transition(key, to)
    return store


def test_ready_isFalseUntilCaughtUp_thenTrueWithinConfirmationsPlusSlack(tmp_path: Path) -> None:
    health = Health(confirmations=2, ready_slack=1)
    client = TestClient(create_app(health, Metrics(), lambda: {}))
    assert client.get("/health").status_code == 200
    health.lag = 3
    assert client.get("/ready").status_code == 503  # no tick yet
    health.step_ok()
    health.lag = 4
    assert client.get("/ready").status_code == 503
    health.lag = 3
    assert client.get("/ready").json()["ready"] is True
    health.last_error = "RPC down"
    assert client.get("/ready").status_code == 503
    health.step_ok()
    assert health.last_ok is not None
    health.last_ok -= health.max_age_s + 1  # the loop has not ticked for too long
    assert "no successful chain step" in client.get("/ready").json()["reason"]


def test_metrics_exposeStateCountsFromTheDatabase(tmp_path: Path) -> None:
    store = _db_with_a_won_dispute(tmp_path / "c.sqlite")
    metrics = Metrics()
    metrics.update_from_store(store)
    metrics.blocks_behind.set(7)
    text = TestClient(create_app(Health(0, 0), metrics, lambda: {})).get("/metrics").text
    for line in (
        "spotcheck_challenger_jobs_seen 1.0",
        "spotcheck_challenger_jobs_sampled 1.0",
        "spotcheck_challenger_jobs_disputed 1.0",
        "spotcheck_challenger_disputes_won 1.0",
        "spotcheck_challenger_disputes_lost 0.0",
        "spotcheck_challenger_blocks_behind_head 7.0",
        "spotcheck_challenger_leaf_requests_opened 0.0",
        "spotcheck_challenger_leaf_requests_settled 0.0",
    ):
        assert line in text


def test_statusCommand_readsTheLocalDatabase(tmp_path: Path) -> None:
    _db_with_a_won_dispute(tmp_path / "challenger.sqlite")
    result = CliRunner().invoke(challenger, ["status", "--state-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"won": 1' in result.output
    assert read_status(tmp_path / "challenger.sqlite")["states"] == {"won": 1}
    plain = CliRunner().invoke(challenger, ["status", "--state-dir", str(tmp_path)])
    assert plain.exit_code == 0, plain.output
    assert "leaf requests opened 0, revealed 0, settled 0, pending 0" in plain.output


def test_statusCommand_withoutDatabase_failsWithOneLine(tmp_path: Path) -> None:
    result = CliRunner().invoke(challenger, ["status", "--state-dir", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no challenger database" in result.output


def test_config_perModelRates_environmentOverridesFile(tmp_path: Path, monkeypatch) -> None:
    model = "0x" + "ab" * 32
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'default_rate = 0.1\n[models."{model}"]\nonnx_path = "m.onnx"\n'
        f'[models."0x{"cd" * 32}"]\nonnx_path = "n.onnx"\nrate = 0.5\n'
    )
    monkeypatch.setenv("SPOTCHECK_CHALLENGER_DEFAULT_RATE", "0.2")
    settings = load_settings(cfg)
    assert settings.rates() == {bytes.fromhex("ab" * 32): 0.2, bytes.fromhex("cd" * 32): 0.5}
    assert settings.models[model].onnx_path == tmp_path / "m.onnx"


def test_config_badModelId_isConfigError(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models."0x12"]\nonnx_path = "m.onnx"\n')
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_status_andMetrics_reportDefences(tmp_path: Path) -> None:
    """A4-1: the defences of disputed jobs we found correct, in /status, the status command
    and /metrics."""
    from challenger.defence import DefenceState, DefenceStore

    store = _db_with_a_won_dispute(tmp_path / "challenger.sqlite")
    key = onchain_job_key(1)
    defences = DefenceStore(store)
    store.conn.execute(
        "INSERT INTO ch_defences(dispute_id, node, disputer, proof_deadline, block, state, "
        "updated_at) VALUES (?, '0xn', '0xs', 99, 3, ?, 0)",
        (key, DefenceState.SENDING.value),
    )
    defences.transition(key, DefenceState.WON, tx_hash="0x01")
    status = read_status(tmp_path / "challenger.sqlite")["defences"]
    assert status["sent"] == 1 and status["won"] == 1 and status["too_late"] == 0
    app = create_app(Health(0, 0), Metrics(), lambda: read_status(tmp_path / "challenger.sqlite"))
    assert TestClient(app).get("/status").json()["defences"]["won"] == 1
    metrics = Metrics()
    metrics.update_from_store(store)
    assert "spotcheck_challenger_defences_won 1.0" in metrics.render().decode()
    plain = CliRunner().invoke(challenger, ["status", "--state-dir", str(tmp_path)])
    assert "defences of jobs we found correct: sent 1, won 1, lost 0, too late 0" in plain.output
