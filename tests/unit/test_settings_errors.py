"""Config errors are one line per problem (field: problem), without pydantic's URL (issue 13);
token amounts in settings are tokens (``wei`` suffix for base units)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prover.config import load_settings
from spotcheck.chain import TOKEN
from spotcheck.errors import ConfigError

MID = "0x" + "11" * 32


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(body)
    return path


def _model(extra: str = "") -> str:
    return (
        f'[models."{MID}"]\nonnx_path = "m.onnx"\ninput_scale = 7\noutput_scale = 7\n'
        f"tau = 2\n{extra}"
    )


def test_typeErrors_areOneLineEach_withTheField_andNoUrl(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'batch_size = "many"\n[http]\nport = 70000\n' + _model().replace("2", "-1")
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = str(err.value)
    assert "\n" not in text
    assert "errors.pydantic.dev" not in text and "https://" not in text
    assert text.startswith(f"invalid node config {path}: ")
    assert "batch_size: Input should be a valid integer" in text and "(got 'many')" in text
    assert "http.port: Input should be less than or equal to 65535 (got 70000)" in text
    assert f"models.{MID}.tau: Input should be greater than or equal to 0 (got -1)" in text


def test_unknownKey_isNamed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"batch_sise: Extra inputs are not permitted$"):
        load_settings(_write(tmp_path, "batch_sise = 3\n"))


def test_modelPrice_isTokens_andBaseUnitsWithTheSuffix(tmp_path: Path) -> None:
    tokens = load_settings(_write(tmp_path, _model('price = "2.5"\n')))
    assert tokens.models[MID].price == 25 * TOKEN // 10
    number = load_settings(_write(tmp_path, _model("price = 3\n")))
    assert number.models[MID].price == 3 * TOKEN
    base = load_settings(_write(tmp_path, _model('price = "2500wei"\n')))
    assert base.models[MID].price == 2500


def test_modelPrice_inOldBaseUnits_isRefused_notTakenAsTokens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"price: .*amounts are in tokens"):
        load_settings(_write(tmp_path, _model("price = 5000000000000000000\n")))


def test_modelPrice_fromTheEnvironment_isTokensToo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTCHECK_NODE_BATCH_SIZE", "x")
    with pytest.raises(ConfigError, match=r"batch_size: Input should be a valid integer"):
        load_settings(_write(tmp_path, _model()))
