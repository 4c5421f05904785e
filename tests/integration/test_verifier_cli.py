"""Onboarding on anvil is instant and cached the second time; `spotcheck model` commands work."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spotcheck.cli import cli
from verifier import registry, tolerance
from verifier.artifacts import build_artifacts
from verifier.domain import InputDomain
from verifier.srs import SrsSource

pytestmark = pytest.mark.chain
WINDOWS = {"challenge_window": 100, "proof_window": 100}


def test_onboard_registersModel_thenSecondRunIsInstantAndCached(
    tiny_mlp_onnx: Path, spotcheck: Any, deployer: Any
) -> None:
    # The flow behind `spotcheck model onboard` (its Ape command starts its own provider, so
    # under pytest the flow is called directly on the test chain).
    events: list[Any] = []
    artifacts = build_artifacts(tiny_mlp_onnx, srs=SrsSource.dev(), progress=events.append)
    tau = tolerance.measure(artifacts, random_samples=10).tau
    first = registry.onboard(artifacts, tau, spotcheck.contracts, deployer, **WINDOWS)
    assert not first.cached
    m = spotcheck.model_registry.getModel(first.registration.model_id)
    assert bytes(m.onnxHash) == artifacts.onnx_hash and m.tau == tau
    assert (m.inLo, m.inHi, m.minFee) == (-(2**13), 2**13, 0)  # default domain [-1, 1]

    start = time.perf_counter()
    events.clear()
    again = build_artifacts(tiny_mlp_onnx, srs=SrsSource.dev(), progress=events.append)
    second = registry.onboard(again, tau, spotcheck.contracts, deployer, **WINDOWS)
    assert time.perf_counter() - start < 2.0
    assert second.cached and second.registration == first.registration
    assert {e.stage for e in events if e.cached} == {"circuit", "keys"}


def test_onboard_changedTau_registersNewModel(
    tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any
) -> None:
    a = registry.onboard(tiny_mlp_artifacts, 7, spotcheck.contracts, deployer, **WINDOWS)
    b = registry.onboard(tiny_mlp_artifacts, 8, spotcheck.contracts, deployer, **WINDOWS)
    assert not b.cached and b.registration.model_id != a.registration.model_id


def test_prove_writesBundleInDefendForm(
    tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"input": [0.5, -0.5, 0.25, 0.0]}))
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "prove",
            str(tiny_mlp_onnx),
            "--dev-srs",
            "--input",
            str(tmp_path / "in.json"),
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "off-chain verify OK" in result.output
    bundle = json.loads(out.read_text())
    assert len(bundle["instances"]) == tiny_mlp_artifacts.input_len + tiny_mlp_artifacts.output_len


def test_build_withoutSrsChoice_failsWithOneLine(tiny_mlp_onnx: Path) -> None:
    result = CliRunner().invoke(cli, ["model", "info", str(tiny_mlp_onnx)])
    assert result.exit_code != 0
    assert "--dev-srs" in str(result.exception) or "--dev-srs" in result.output


def test_onboard_domainAndMinFee_areRegistered(
    tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any
) -> None:
    domain = InputDomain(-4096, 4096, tiny_mlp_artifacts.input_scale)
    r = registry.onboard(
        tiny_mlp_artifacts, 9, spotcheck.contracts, deployer, domain, 5 * 10**15, **WINDOWS
    )
    m = spotcheck.model_registry.getModel(r.registration.model_id)
    assert (m.inLo, m.inHi, m.minFee) == (-4096, 4096, 5 * 10**15)


def test_tolerance_oneSampleCalibration_warnsAndReportsDomainKindAndTau(
    tiny_mlp_onnx: Path, tmp_path: Path
) -> None:
    (tmp_path / "one.json").write_text(json.dumps({"input_data": [[0.5, -0.25, 0.75, 0.1]]}))
    result = CliRunner().invoke(
        cli,
        ["model", "tolerance", str(tiny_mlp_onnx), "--dev-srs", "--calibration",
         str(tmp_path / "one.json"), "--samples", "20", "--climb-steps", "20",
         "--write-calibration", str(tmp_path / "nodes.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "WARNING: the calibration file has a single sample" in result.output
    assert "domain              [-2048, 6144] at scale 2**13" in result.output
    assert "tau kind            sound" in result.output
    cover = json.loads((tmp_path / "nodes.json").read_text())["input_data"][0]
    assert min(cover) == -0.25 and max(cover) == 0.75 and len(cover) > 4


def test_build_domainTheCircuitCannotCover_failsWithOneLine(tiny_mlp_onnx: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["model", "build", str(tiny_mlp_onnx), "--dev-srs", "--domain", "-1e9", "1e9",
         "--max-logrows", "15"],
    )  # fmt: skip
    assert result.exit_code != 0
    message = str(result.exception) if result.exception else result.output
    assert "\n" not in message.strip()
    assert "shrink the domain" in message and "--max-logrows" in message


def test_onboard_domainWiderThanTheCircuit_isRefusedBeforeAnyTransaction(
    tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any
) -> None:
    from spotcheck.errors import ModelError

    nonce = deployer.nonce
    huge = InputDomain(-(2**30), 2**30, tiny_mlp_artifacts.input_scale)
    with pytest.raises(ModelError) as err:
        registry.onboard(tiny_mlp_artifacts, 9, spotcheck.contracts, deployer, huge, **WINDOWS)
    assert "\n" not in str(err.value) and "shrink the domain" in str(err.value)
    assert deployer.nonce == nonce
