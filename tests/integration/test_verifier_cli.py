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
