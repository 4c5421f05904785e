"""``max_bond_at_risk`` is tokens everywhere a person writes it (TOML, environment, the
``--max-bond-at-risk`` flag), held as base units, as the node's ``price``."""

from __future__ import annotations

from pathlib import Path

import pytest

from challenger.cli import run_settings
from challenger.config import load_settings
from spotcheck.chain import TOKEN
from spotcheck.errors import ConfigError


def _toml(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "challenger.toml"
    path.write_text(line + "\n")
    return path


def test_maxBondAtRisk_default_is100Tokens() -> None:
    assert load_settings(None).max_bond_at_risk == 100 * TOKEN


@pytest.mark.parametrize(
    ("line", "base_units"),
    [
        ("max_bond_at_risk = 400", 400 * TOKEN),
        ("max_bond_at_risk = 2.5", 5 * TOKEN // 2),
        ('max_bond_at_risk = "0.5"', TOKEN // 2),
        ('max_bond_at_risk = "1500wei"', 1500),
        ("max_bond_at_risk = 0", 0),
    ],
)
def test_maxBondAtRisk_toml_isTokens(tmp_path: Path, line: str, base_units: int) -> None:
    assert load_settings(_toml(tmp_path, line)).max_bond_at_risk == base_units


def test_maxBondAtRisk_environment_isTokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTCHECK_CHALLENGER_MAX_BOND_AT_RISK", "7")
    assert load_settings(None).max_bond_at_risk == 7 * TOKEN


def test_maxBondAtRisk_flag_isTokens_andWinsOverTheFile(tmp_path: Path) -> None:
    config = _toml(tmp_path, "max_bond_at_risk = 400")
    assert run_settings(config).max_bond_at_risk == 400 * TOKEN
    assert run_settings(config, max_bond_at_risk="50").max_bond_at_risk == 50 * TOKEN
    assert run_settings(None, max_bond_at_risk="1.25").max_bond_at_risk == 5 * TOKEN // 4


@pytest.mark.parametrize("value", ["-1", "lots", str(100 * TOKEN)])
def test_maxBondAtRisk_badAmount_isOneLineConfigError(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="max_bond_at_risk") as err:
        run_settings(None, max_bond_at_risk=value)
    assert "\n" not in str(err.value)


def test_defend_default_isClaimed_withAReserveOf300s() -> None:
    s = load_settings()
    assert s.defend == "claimed" and s.defend_reserve_s == 300


@pytest.mark.parametrize("mode", ["claimed", "checked", "never"])
def test_defend_modes_fromToml(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'defend = "{mode}"\ndefend_reserve_s = 60\n')
    s = load_settings(path)
    assert s.defend == mode and s.defend_reserve_s == 60


def test_defend_unknownMode_isRefused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('defend = "always"\n')
    with pytest.raises(ConfigError, match="defend"):
        load_settings(path)
