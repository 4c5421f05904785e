"""``spotcheck model onboard``'s pieces that need no chain: who may register (checked before any
build), the config tables it prints and appends, and build stages announced when they start."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from verifier import artifacts, cli, registry
from verifier.artifacts import StageEvent

OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
MODEL_ID = "0x" + "ab" * 32


def test_registrarProblem_nonOwner_isOneLineNamingTheOwner() -> None:
    problem = registry.registrar_problem(OWNER.lower(), OTHER, 10**18)
    assert problem is not None and "\n" not in problem
    assert f"{OTHER} is not the ModelRegistry owner ({OWNER})" in problem


def test_registrarProblem_ownerWithoutEth_saysFundItWithGas() -> None:
    assert registry.registrar_problem(OWNER, OWNER, 0) == (
        f"{OWNER} holds no ETH on this chain: fund it with gas first"
    )


def test_registrarProblem_ownerWithEth_isNone() -> None:
    assert registry.registrar_problem(OWNER, OWNER.lower(), 1) is None


def test_configTables_areWhatNodeAndChallengerConfigsRead(tmp_path: Path) -> None:
    from challenger.config import ModelConfig as ChallengerModel
    from prover.config import ModelConfig as NodeModel

    onnx, cal = tmp_path / "m" / "model.onnx", tmp_path / "m" / "calibration.json"
    node, challenger = cli.config_tables(MODEL_ID, onnx, cal, 13, 12, 9, relative_to=tmp_path)
    node_table = tomllib.loads(node)["models"][MODEL_ID]
    assert node_table == {
        "onnx_path": "m/model.onnx",
        "calibration_path": "m/calibration.json",
        "input_scale": 13,
        "output_scale": 12,
        "tau": 9,
    }
    NodeModel(**node_table)  # extra="forbid": a key the node does not know would fail here
    ChallengerModel(**tomllib.loads(challenger)["models"][MODEL_ID])
    absolute, _ = cli.config_tables(MODEL_ID, onnx, None, 13, 12, 9)
    assert tomllib.loads(absolute)["models"][MODEL_ID]["onnx_path"] == str(onnx.resolve())
    assert "calibration_path" not in absolute


def test_appendTable_keepsTheConfigAndParsesAsToml(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('db_path = "node.sqlite"\n[http]\nport = 9545')  # no final newline
    node, _ = cli.config_tables(MODEL_ID, tmp_path / "model.onnx", None, 13, 13, 4, tmp_path)
    cli._append_table(config, node, "node config")
    data = tomllib.loads(config.read_text())
    assert data["http"] == {"port": 9545} and data["models"][MODEL_ID]["tau"] == 4


def test_stageProgress_announcesASlowStageWhenItStarts_neverACachedOne() -> None:
    @cli.click.command()
    def build() -> None:
        progress = cli.StageProgress()
        progress(StageEvent("srs", 0.1, cached=False))
        progress(StageEvent("setup", 0.0, cached=False, started=True))
        progress(StageEvent("setup", 0.3, cached=False))
        progress(StageEvent("keys", 0.0, cached=True))

    lines = CliRunner().invoke(build).output.splitlines()
    assert [ln.split()[0] for ln in lines] == ["srs", "setup", "setup", "keys"]
    assert lines[1].strip() == "setup      started ..."
    assert lines[2].strip().startswith("setup") and "0.30 s" in lines[2]
    assert lines[3].strip() == "keys       cached"


def test_timed_announcesOnlyStagesMarkedSlow_beforeTheyRun() -> None:
    events: list[StageEvent] = []
    with artifacts._timed(events.append, "compile"):
        assert events == []
    with artifacts._timed(events.append, "setup", slow=True):
        assert [(e.stage, e.started) for e in events] == [("compile", False), ("setup", True)]
    assert [(e.stage, e.started) for e in events][-1] == ("setup", False)


class _Registry:
    def owner(self) -> str:
        return OWNER


class _Contracts:
    model_registry = _Registry()


class _Account:
    address = OTHER
    balance = 10**18


def test_checkRegistrar_nonOwner_raisesForARealRun_warnsForADryRun() -> None:
    from spotcheck.errors import ChainError

    with pytest.raises(ChainError, match="is not the ModelRegistry owner"):
        cli._check_registrar(_Contracts(), _Account(), dry_run=False)

    @cli.click.command()
    def dry() -> None:
        cli._check_registrar(_Contracts(), _Account(), dry_run=True)

    result = CliRunner().invoke(dry)
    assert result.exit_code == 0
    assert result.output.startswith(f"WARNING: {OTHER} is not the ModelRegistry owner")
