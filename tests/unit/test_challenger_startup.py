"""The challenger's start-up checks, each against the bad configuration it refuses (issue 13).

No chain: a fake registry answers ``model``. The same checks through the real
``spotcheck challenger run`` process are in ``tests/integration/test_challenger_startup.py``."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_utils import keccak

from challenger.defence import ModelFiles
from challenger.startup import (
    check_model_count,
    check_models,
    check_port,
    check_proving_keys,
    serve_checked,
)
from spotcheck.chain import RegisteredModel
from spotcheck.errors import ChainError, RevertError, StartupError

MODEL = b"\x42" * 32


class Registry:
    """``model(id)``: the registered model, ``UnknownModel`` (a revert), or an RPC failure."""

    def __init__(self, onnx_hash: bytes, *, rpc_down: bool = False) -> None:
        self.onnx_hash = onnx_hash
        self.rpc_down = rpc_down

    def model(self, model_id: bytes) -> RegisteredModel:
        if self.rpc_down:
            raise ChainError("getModel: RPC failed 6 times: connection refused")
        if model_id != MODEL:
            raise RevertError(f"UnknownModel(modelId=0x{model_id.hex()})", error="UnknownModel")
        return RegisteredModel(4, 1, 8, 8, 3, model_id=model_id, onnx_hash=self.onnx_hash)


@pytest.fixture
def onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"registered onnx bytes")
    return path


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_noModels_live_isRefused() -> None:
    with pytest.raises(StartupError) as err:
        check_model_count(0, dry_run=False)
    assert "no models configured" in _one_line(err)


def test_noModels_dryRun_onlyWarns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_model_count(0, dry_run=True)
    assert any("no models configured" in r.getMessage() for r in caplog.records)
    check_model_count(1, dry_run=False)  # a model: nothing to say


def test_registeredOnnx_passes(onnx: Path) -> None:
    found = check_models(Registry(keccak(onnx.read_bytes())), {MODEL: onnx})
    assert found[MODEL].onnx_hash == keccak(onnx.read_bytes())


def test_anotherOnnxUnderTheRegisteredId_isRefusedAtStart(onnx: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(b"a 30-element model under a 4-input id")
    with pytest.raises(StartupError) as err:
        check_models(Registry(keccak(onnx.read_bytes())), {MODEL: other})
    text = _one_line(err)
    assert f"model 0x{MODEL.hex()}: {other} is not the registered ONNX file" in text
    assert "0x" + keccak(onnx.read_bytes()).hex() in text


def test_unknownModelId_isRefused_byTheRevertsName(onnx: Path) -> None:
    unknown = b"\xab" * 32
    with pytest.raises(StartupError) as err:
        check_models(Registry(b"\x00" * 32), {unknown: onnx})
    assert f"model 0x{unknown.hex()} is not registered (UnknownModel" in _one_line(err)


def test_missingOnnxFile_isOneLine(tmp_path: Path) -> None:
    with pytest.raises(StartupError) as err:
        check_models(Registry(b"\x00" * 32), {MODEL: tmp_path / "nope.onnx"})
    assert "cannot read ONNX file" in _one_line(err)


def test_rpcDown_isNotReportedAsAnUnknownModel(onnx: Path) -> None:
    with pytest.raises(ChainError) as err:
        check_models(Registry(b"\x00" * 32, rpc_down=True), {MODEL: onnx})
    assert not isinstance(err.value, StartupError)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def test_portInUse_isRefusedBeforeAnythingIsBuilt(taken_port: int) -> None:
    with pytest.raises(StartupError) as err:
        check_port("127.0.0.1", taken_port)
    assert f"cannot listen on 127.0.0.1:{taken_port}: the port is in use" in _one_line(err)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_serverThatCannotListen_isAStartupError_notASilentThread(taken_port: int) -> None:
    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        return None

    # uvicorn's thread exits with SystemExit on the failed bind (the ignored warning).
    with pytest.raises(StartupError) as err:
        serve_checked(app, "127.0.0.1", taken_port, wait_s=10)
    assert "did not start" in _one_line(err)


def test_claimRateBelowThePools_warns_atOrAbove_doesNot(caplog: pytest.LogCaptureFixture) -> None:
    from challenger.sampling import SamplingPolicy
    from challenger.startup import check_claim_rates

    class Pool:
        def pool_sampling_bps(self, model_id: bytes) -> int:
            return 500

    low = SamplingPolicy(secret=b"\x05" * 32, default_rate=0.0, rates={MODEL: 0.04})
    with caplog.at_level(logging.WARNING):
        check_claim_rates(Pool(), low)
    assert any("below the CheckPool's 500 bps" in r.getMessage() for r in caplog.records)
    caplog.clear()
    enough = SamplingPolicy(secret=b"\x05" * 32, default_rate=0.0, rates={MODEL: 0.05})
    with caplog.at_level(logging.WARNING):
        check_claim_rates(Pool(), enough)
    assert not caplog.records


# -- proving keys for defences (defend != never) ---------------------------------------------


def _files(onnx: Path) -> dict[bytes, ModelFiles]:
    return {MODEL: ModelFiles(onnx, None, None, None)}


def test_provingKeys_built_pass(onnx: Path) -> None:
    built = check_proving_keys(
        _files(onnx),
        {MODEL: RegisteredModel(4, 1, 8, 8, 3, model_id=MODEL, settings_hash=b"\x05" * 32)},
        load=lambda f: SimpleNamespace(settings_hash=b"\x05" * 32, files=f),
    )
    assert set(built) == {MODEL}


def test_provingKeys_cannotBeBuilt_isOneLine(onnx: Path) -> None:
    def fail(_: ModelFiles) -> None:
        raise ValueError("srs file /x/kzg.srs: sha256 differs\nlong ezkl trace")

    with pytest.raises(StartupError) as err:
        check_proving_keys(_files(onnx), {}, load=fail)
    text = _one_line(err)
    assert "0x" + MODEL.hex() in text and "sha256 differs" in text and 'defend = "never"' in text


def test_provingKeys_ofAnotherCircuit_areRefused(onnx: Path) -> None:
    with pytest.raises(StartupError) as err:
        check_proving_keys(
            _files(onnx),
            {MODEL: RegisteredModel(4, 1, 8, 8, 3, model_id=MODEL, settings_hash=b"\x05" * 32)},
            load=lambda _f: SimpleNamespace(settings_hash=b"\x06" * 32),
        )
    assert "not the registered one" in _one_line(err)
