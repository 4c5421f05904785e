"""``spotcheck challenger run`` refuses a bad configuration at start, in one line on stderr
and a non-zero exit (issue 13), each with the configuration a user tried:

- no ``[models]`` table (it ran "live; 0 model(s)" and judged nothing);
- another ONNX file under a registered model id (checked only at the first job before);
- a model id the registry does not know (``UnknownModel``, decoded by name);
- an HTTP port already in use (it ran on without an HTTP server).

The real process on anvil (``python -m spotcheck.cli``), as an operator starts it."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from tests.fixtures import models
from tests.fixtures.chain import MOCK_MODEL

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_mlp", tmp_path_factory.mktemp("ch-startup-model"))


@pytest.fixture(scope="module")
def other_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_conv", tmp_path_factory.mktemp("ch-startup-other"))


@pytest.fixture()
def own_model(project: Any, deployer: Any, model_registry: Any, onnx_path: Path) -> bytes:
    """MOCK_MODEL registered with the tiny MLP's real ONNX hash (its own MockVerifier)."""
    verifier = deployer.deploy(project.MockVerifier)
    struct = MOCK_MODEL.as_struct(
        str(verifier.address), keccak(onnx_path.read_bytes()), keccak(b"ch-startup-settings")
    )
    model_registry.registerModel(struct, sender=deployer)
    return bytes(
        model_registry.computeModelId(struct["onnxHash"], struct["settingsHash"], verifier.address)
    )


@pytest.fixture()
def deployment_file(spotcheck: Any, tmp_path: Path) -> Path:
    return Path(spotcheck.deployment.save(tmp_path / "deployment.json"))


def _config(tmp_path: Path, models_toml: str = "") -> Path:
    path = tmp_path / "challenger.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\nconfirmations = 0\n' + models_toml)
    return path


def _models(model_id: bytes, onnx: Path) -> str:
    return f'[models."0x{model_id.hex()}"]\nonnx_path = "{onnx}"\n'


def _run(
    chain: Any, deployment_file: Path, config: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    rpc = chain.provider.uri.rstrip("/")
    return subprocess.run(
        [
            sys.executable, "-m", "spotcheck.cli", "challenger", "run",
            "--network", rpc, "--account", "TEST::3",
            "--deployment", str(deployment_file), "--config", str(config), *extra,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _refused(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refused start (non-zero exit, no traceback)."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "challenger 0x" not in proc.stdout  # never got as far as the start line
    return errors[0]


def test_run_noModels_isRefused(chain: Any, deployment_file: Path, tmp_path: Path) -> None:
    line = _refused(_run(chain, deployment_file, _config(tmp_path), "--once"))
    assert "no models configured: a live challenger would sample nothing" in line


def test_run_anotherOnnxUnderARegisteredId_isRefusedAtStart(
    chain: Any, deployment_file: Path, own_model: bytes, other_onnx: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, _models(own_model, other_onnx))
    line = _refused(_run(chain, deployment_file, config, "--once"))
    assert f"model 0x{own_model.hex()}: {other_onnx} is not the registered ONNX file" in line


def test_run_unknownModelId_isRefusedByName(
    chain: Any, deployment_file: Path, onnx_path: Path, tmp_path: Path
) -> None:
    unknown = b"\xab" * 32
    line = _refused(
        _run(chain, deployment_file, _config(tmp_path, _models(unknown, onnx_path)), "--once")
    )
    assert f"model 0x{unknown.hex()} is not registered (UnknownModel(" in line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def test_run_portInUse_isRefused(
    chain: Any, deployment_file: Path, own_model: bytes, onnx_path: Path, tmp_path: Path,
    taken_port: int,
) -> None:  # fmt: skip
    config = _config(tmp_path, _models(own_model, onnx_path))
    proc = _run(chain, deployment_file, config, "--http-port", str(taken_port))
    line = _refused(proc)
    assert f"cannot listen on 127.0.0.1:{taken_port}: the port is in use" in line


def test_run_goodConfig_passesTheChecks_andTicks(
    chain: Any, deployment_file: Path, own_model: bytes, onnx_path: Path, tmp_path: Path
) -> None:
    """The checks refuse what is wrong, not everything: the registered file starts (no
    defences: the model's registered settings hash is a stand-in, so no proof of its circuit
    could be accepted; the next test)."""
    config = _config(tmp_path, 'defend = "never"\n' + _models(own_model, onnx_path))
    proc = _run(chain, deployment_file, config, "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "live; bond cap" in proc.stdout and "1 model(s); no HTTP server" in proc.stdout


def test_run_defendOn_circuitIsNotTheRegisteredOne_isRefusedInOneLine(
    chain: Any, deployment_file: Path, own_model: bytes, onnx_path: Path, tmp_path: Path
) -> None:
    """``defend`` (default ``claimed``) builds the proving keys at start; a model whose
    registered settings hash is not the circuit's could never be defended: refused."""
    config = _config(tmp_path, _models(own_model, onnx_path))
    proc = _run(chain, deployment_file, config, "--once")
    assert proc.returncode == 1
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert f"model 0x{own_model.hex()}: the circuit built from {onnx_path} is not the " in line
