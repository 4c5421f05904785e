"""Tolerance: tau from measured deviation; honest onnxruntime outputs always land within tau.

The honesty check uses 200 fresh random inputs per model by default (about 2 s per model) and
the full 1,000 per model under ``SPOTCHECK_SLOW=1`` (the ``slow`` marker).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spotcheck.encoding import quantize, within_tolerance
from spotcheck.errors import ConfigError
from tests.fixtures import models
from verifier import tolerance
from verifier.onnx_runner import OnnxRunner
from verifier.witness import witness_output


@pytest.fixture(scope="module", params=sorted(models.BUILDERS))
def model_artifacts(
    request: pytest.FixtureRequest, zk_model_dir: Path, zk_artifacts_for: Callable[..., Any]
) -> Any:
    return zk_artifacts_for(models.build(request.param, zk_model_dir))


@pytest.fixture(scope="module")
def report(model_artifacts: Any) -> tolerance.ToleranceReport:
    return tolerance.measure(model_artifacts, random_samples=100, seed=0)


def _honest_outside_tau(artifacts: Any, tau: int, count: int, seed: int) -> list[int]:
    runner = OnnxRunner(artifacts.onnx_path)
    inputs = tolerance.random_inputs_in_range(artifacts.calibration_inputs(), count, seed)
    bad = []
    for i, row in enumerate(inputs):
        q = quantize(row, artifacts.input_scale)
        honest = tolerance.honest_output_q(runner, artifacts, q)
        if not within_tolerance(honest, witness_output(artifacts, q), tau):
            bad.append(i)
    return bad


def test_chooseTau_appliesMarginThenSlack() -> None:
    assert tolerance.choose_tau(0) == 2
    assert tolerance.choose_tau(3) == 7  # ceil(4.5) + 2
    assert tolerance.choose_tau(8956, margin=0.5, slack=2) == 13436
    assert tolerance.choose_tau(10, margin=0.0, slack=0) == 10
    with pytest.raises(ConfigError):
        tolerance.choose_tau(-1)


def test_report_showsDeviationAndTau(report: tolerance.ToleranceReport) -> None:
    assert report.samples == report.calibration_samples + 100
    assert report.tau == tolerance.choose_tau(report.max_deviation)
    assert report.tau >= report.max_deviation
    assert report.relative_deviation < 0.005  # measured: under 0.02 % for these models
    text = report.describe()
    assert f"tau                 {report.tau} units" in text
    assert f"max deviation       {report.max_deviation} units" in text


def test_honestOutputs_neverOutsideTau_200Inputs(model_artifacts: Any, report: Any) -> None:
    assert _honest_outside_tau(model_artifacts, report.tau, 200, seed=1234) == []


@pytest.mark.slow
def test_honestOutputs_neverOutsideTau_1000Inputs(model_artifacts: Any, report: Any) -> None:
    assert _honest_outside_tau(model_artifacts, report.tau, 1000, seed=98765) == []


def test_exactMode_setsTauZero_andWitnessOutputsPassIt(tiny_mlp_artifacts: Any) -> None:
    exact = tolerance.measure(tiny_mlp_artifacts, random_samples=10, exact=True)
    assert exact.tau == 0 and exact.exact
    q = quantize(np.array([0.5, -0.25, 0.125, 0.0]), tiny_mlp_artifacts.input_scale)
    assert within_tolerance(
        witness_output(tiny_mlp_artifacts, q), witness_output(tiny_mlp_artifacts, q), 0
    )


def test_shiftedOutput_outsideTau_isDetected(tiny_mlp_artifacts: Any) -> None:
    rep = tolerance.measure(tiny_mlp_artifacts, random_samples=10)
    q = quantize(np.array([0.5, -0.25, 0.125, 0.0]), tiny_mlp_artifacts.input_scale)
    circuit = witness_output(tiny_mlp_artifacts, q)
    cheat = [circuit[0] + rep.tau + 1, *circuit[1:]]
    assert not within_tolerance(cheat, circuit, rep.tau)
