"""The node's start-up checks without a chain (issue 13): each with the bad configuration that
was tried. The same checks against a real registry and stake:
tests/integration/test_node_startup.py.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils import keccak

from prover.chain_io import StakeView
from prover.cli import check_stake_amount
from prover.runner import start_http
from prover.startup import check_models, check_port, check_stake
from spotcheck.chain import TOKEN, RegisteredModel
from spotcheck.cli_options import require_gas_funds
from spotcheck.errors import (
    ConfigError,
    RevertError,
    StartupError,
)
from tests.fixtures import models

MID = bytes.fromhex("22" * 32)


def _registered(onnx: Path, **kw: Any) -> RegisteredModel:
    fields: dict[str, Any] = {
        "model_id": MID,
        "onnx_hash": bytes(keccak(onnx.read_bytes())),
        "input_len": 4,
        "output_len": 2,
        "input_scale": 7,
        "output_scale": 7,
        "tau": 2,
        "challenge_window": 100,
        "proof_window": 100,
        "challenger_bond": TOKEN,
        "slash_amount": 10 * TOKEN,
        "bounty_bps": 5000,
    }
    fields.update(kw)
    return RegisteredModel(**fields)


class FakeChain:
    address = "0x" + "aa" * 20

    def __init__(self, model: RegisteredModel | None, stake: StakeView | None = None) -> None:
        self._model, self._stake = model, stake

    def model(self, model_id: bytes) -> RegisteredModel:
        if self._model is None:
            raise RevertError(f"model 0x{model_id.hex()} is not registered", "UnknownModel")
        return self._model

    def stake(self) -> StakeView:
        assert self._stake is not None
        return self._stake


def _spec(onnx: Path, **kw: Any) -> Any:
    return SimpleNamespace(
        onnx_path=onnx, input_scale=kw.get("i", 7), output_scale=kw.get("o", 7), tau=kw.get("t", 2)
    )


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("startup-models")
    return models.build("tiny_mlp", folder), models.build("tiny_conv", folder)


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# -- models -------------------------------------------------------------------------------


def test_checkModels_anotherOnnxUnderARegisteredId_isRefused(
    onnx_files: tuple[Path, Path],
) -> None:
    """The defect: a 30-element model served under a 4-input id, /ready true."""
    registered_file, other_file = onnx_files
    chain = FakeChain(_registered(registered_file))
    with pytest.raises(StartupError) as err:
        check_models(chain, {MID: _spec(other_file)})  # type: ignore[arg-type]
    text = _one_line(err)
    assert f"{other_file} is not the registered ONNX file" in text
    assert "0x" + keccak(registered_file.read_bytes()).hex() in text


def test_checkModels_theRegisteredOnnx_passes(onnx_files: tuple[Path, Path]) -> None:
    chain = FakeChain(_registered(onnx_files[0]))
    found = check_models(chain, {MID: _spec(onnx_files[0])})  # type: ignore[arg-type]
    assert found[MID].slash_amount == 10 * TOKEN


def test_checkModels_unregisteredModel_isRefused_notWaitedFor(
    onnx_files: tuple[Path, Path],
) -> None:
    with pytest.raises(StartupError) as err:
        check_models(FakeChain(None), {MID: _spec(onnx_files[0])})  # type: ignore[arg-type]
    assert "is not registered" in _one_line(err) and "UnknownModel" in str(err.value)


def test_checkModels_scalesOrTauDiffer_isRefused(onnx_files: tuple[Path, Path]) -> None:
    chain = FakeChain(_registered(onnx_files[0]))
    with pytest.raises(StartupError, match=r"\(7, 7, 3\) differ from the registry's \(7, 7, 2\)"):
        check_models(chain, {MID: _spec(onnx_files[0], t=3)})  # type: ignore[arg-type]


def test_checkModels_missingOnnxFile_isOneLine(
    tmp_path: Path, onnx_files: tuple[Path, Path]
) -> None:
    chain = FakeChain(_registered(onnx_files[0]))
    with pytest.raises(StartupError) as err:
        check_models(chain, {MID: _spec(tmp_path / "gone.onnx")})  # type: ignore[arg-type]
    assert "cannot read ONNX file" in _one_line(err)


# -- stake --------------------------------------------------------------------------------


def _stake(
    amount: int, *, locked: int = 0, unbond: int = 0, minimum: int = 1000, disputes: int = 0
) -> StakeView:
    return StakeView(amount * TOKEN, locked * TOKEN, unbond, disputes, (amount - locked) * TOKEN,
                     minimum * TOKEN)  # fmt: skip


def test_checkStake_zeroStake_isRefused_withTheCommandToRun(onnx_files: tuple[Path, Path]) -> None:
    """The defect: the node started and served with zero stake."""
    chain = FakeChain(None, _stake(0))
    with pytest.raises(StartupError) as err:
        check_stake(chain, {})  # type: ignore[arg-type]
    text = _one_line(err)
    assert "stakes 0 tokens, below the minimum 1000" in text
    assert "spotcheck node stake 1000" in text


def test_checkStake_unbonding_isRefused() -> None:
    """The defect: the node kept accepting work after `node unbond`."""
    with pytest.raises(StartupError) as err:
        check_stake(FakeChain(None, _stake(2000, unbond=1234)), {})  # type: ignore[arg-type]
    assert "is unbonding (requested at 1234)" in _one_line(err)


@pytest.mark.parametrize(
    "view",
    [
        _stake(2000, locked=10, unbond=1234),  # unbonding, a commitment still locked
        _stake(2000, unbond=1234, disputes=1),  # unbonding, a dispute open
        _stake(500, locked=10),  # below the minimum after a withdraw, a commitment locked
    ],
)
def test_checkStake_withCommitmentsLeft_windsDown_insteadOfRefusing(
    view: StakeView, caplog: pytest.LogCaptureFixture
) -> None:
    """Audit 4, A4-7: a node restarted while unbonding must still defend what it committed."""
    with caplog.at_level("ERROR", logger="prover.startup"):
        assert check_stake(FakeChain(None, view), {}) is view  # type: ignore[arg-type]
    [line] = [r.getMessage() for r in caplog.records]
    assert "winding down: no new work, answering the disputes" in line


def test_checkStake_enough_passes(onnx_files: tuple[Path, Path]) -> None:
    m = _registered(onnx_files[0])
    view = check_stake(FakeChain(None, _stake(1000)), {MID: m})  # type: ignore[arg-type]
    assert view.free == 1000 * TOKEN


# -- the HTTP port -------------------------------------------------------------------------


def test_checkPort_aPortInUse_isRefused() -> None:
    """The defect: on a port in use the node kept running with no HTTP server."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as err:
            check_port("127.0.0.1", port)
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in _one_line(err)


def test_checkPort_aFreePort_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check_port("127.0.0.1", port)


def test_startHttp_onAPortTakenMeanwhile_raisesStartupError_notARunningNodeWithoutHttp() -> None:
    from fastapi import FastAPI

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_http(FastAPI(), "127.0.0.1", port, wait_s=10)


# -- checks before anything is spent ----------------------------------------------------------


def test_stakeBelowTheMinimum_isRefusedBeforeSending() -> None:
    """The defect: `node stake 5` succeeded below the minimum."""
    with pytest.raises(ConfigError) as err:
        check_stake_amount(5 * TOKEN, 0, 1000 * TOKEN, 0)
    assert "leaves 5, below the minimum stake 1000: stake at least 1000" in str(err.value)
    check_stake_amount(995 * TOKEN, 5 * TOKEN, 1000 * TOKEN, 0)  # a top-up to the minimum


def test_stakeWhileUnbonding_isRefusedBeforeSending() -> None:
    with pytest.raises(ConfigError, match="unbonding"):
        check_stake_amount(5000 * TOKEN, 2000 * TOKEN, 1000 * TOKEN, 99)
    check_stake_amount(5000 * TOKEN, 0, 1000 * TOKEN, 99)  # slashed to zero: starts afresh


def test_accountWithoutEth_isToldSoInOneLine() -> None:
    broke = SimpleNamespace(address="0x" + "bb" * 20, balance=0)
    with pytest.raises(ConfigError) as err:
        require_gas_funds(broke)
    assert str(err.value).startswith(f"account {broke.address} holds no ETH to pay for gas")
    require_gas_funds(SimpleNamespace(address="0x1", balance=1))
