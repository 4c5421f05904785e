"""Tolerance: tau bounds every honest output over the whole input domain.

Each test model is built the way onboarding builds it (calibration extended with the domain's
corners and random points, ``verifier.coverage``). Fast tests check in-domain adversarial inputs
(corners, rounding edges, a hill climb's worst) and 200 random ones against tau; the ``slow``
test runs 10,000 inputs per model (random and adversarial). Where the sound bound applies, no
deviation found may exceed it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spotcheck.encoding import max_abs_diff
from spotcheck.errors import ConfigError
from tests.fixtures import models
from verifier import coverage, error_bound, tolerance
from verifier.domain import InputDomain
from verifier.onnx_runner import OnnxRunner
from verifier.witness import witness_output


@pytest.fixture(scope="module", params=sorted(models.BUILDERS))
def covered(
    request: pytest.FixtureRequest, zk_model_dir: Path, zk_covered_circuit_for: Callable[..., Any]
) -> tuple[Any, InputDomain]:
    return zk_covered_circuit_for(models.build(request.param, zk_model_dir))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def report(covered: tuple[Any, InputDomain]) -> tolerance.ToleranceReport:
    artifacts, domain = covered
    return tolerance.measure(artifacts, domain=domain, random_samples=100, seed=0)


def _deviations(artifacts: Any, inputs: list[list[int]]) -> list[int]:
    runner = OnnxRunner(artifacts.onnx_path)
    return [
        max_abs_diff(tolerance.honest_output_q(runner, artifacts, q), witness_output(artifacts, q))
        for q in inputs
    ]


def _adversarial(artifacts: Any, domain: InputDomain, seed: int, climb: int) -> list[list[int]]:
    """Corners, rounding edges and a hill climb's visits, with a seed the report did not use."""
    search, _ = tolerance.search_deviation(
        artifacts, domain, random_samples=0, corner_count=16, edge_samples=20,
        climb_steps=climb, seed=seed,
    )  # fmt: skip
    return [q for _, _, q in search.scores]


def test_chooseTau_appliesMarginThenSlack() -> None:
    assert tolerance.choose_tau(0) == 2
    assert tolerance.choose_tau(3) == 7  # ceil(4.5) + 2
    assert tolerance.choose_tau(8956, margin=0.5, slack=2) == 13436
    assert tolerance.choose_tau(10, margin=0.0, slack=0) == 10
    with pytest.raises(ConfigError):
        tolerance.choose_tau(-1)


def test_report_namesDomainKindWorstDeviationAndTau(
    report: tolerance.ToleranceReport, covered: tuple[Any, InputDomain]
) -> None:
    _, domain = covered
    assert report.domain == domain
    assert report.samples == (
        report.calibration_samples + 100 + report.corner_samples + report.edge_samples
        + report.climb_samples
    )  # fmt: skip
    assert report.corner_samples >= 4 and report.edge_samples > 0 and report.climb_samples > 0
    assert report.relative_deviation < 0.005
    text = report.describe()
    assert f"tau                 {report.tau} units" in text
    assert f"worst deviation     {report.max_deviation} units" in text
    assert f"tau kind            {report.kind}" in text
    assert domain.describe() in text


def test_soundBound_appliesToEveryTestModel_andIsNeverBelowWorstFound(
    report: tolerance.ToleranceReport,
) -> None:
    assert report.kind == tolerance.KIND_SOUND, report.sound_note
    assert report.sound_bound is not None and report.sound_bound >= report.max_deviation
    assert report.tau == max(report.sound_bound, report.max_deviation) + report.slack


def test_inDomainAdversarialInputs_neverBeyondTau(
    covered: tuple[Any, InputDomain], report: tolerance.ToleranceReport
) -> None:
    artifacts, domain = covered
    inputs = [*_adversarial(artifacts, domain, seed=4242, climb=60), list(report.worst_input_q)]
    assert all(domain.first_outside(q) is None for q in inputs)
    devs = _deviations(artifacts, inputs)
    assert max(devs) <= report.tau
    assert report.sound_bound is not None and max(devs) <= report.sound_bound


def test_honestOutputs_neverOutsideTau_200RandomInDomain(
    covered: tuple[Any, InputDomain], report: tolerance.ToleranceReport
) -> None:
    artifacts, domain = covered
    inputs = tolerance.random_inputs_in_domain(domain, artifacts.input_len, 200, seed=1234)
    assert max(_deviations(artifacts, inputs)) <= report.tau


@pytest.mark.slow
def test_honestOutputs_neverOutsideTau_10000InputsOverTheDomain(
    covered: tuple[Any, InputDomain], report: tolerance.ToleranceReport
) -> None:
    """9,000 random points of the box and 1,000 adversarial ones (corners, rounding edges,
    hill climb) per model: none beyond tau, none beyond the sound bound."""
    artifacts, domain = covered
    search, counts = tolerance.search_deviation(
        artifacts, domain, random_samples=9000, corner_count=300, edge_samples=300,
        climb_steps=396, seed=98765,
    )  # fmt: skip
    assert sum(counts.values()) - counts["calibration"] >= 10_000
    assert search.worst <= report.tau
    assert report.sound_bound is not None and search.worst <= report.sound_bound


def test_oneSampleCalibration_warnsLoudly(
    tmp_path: Path, zk_covered_circuit_for: Callable[..., Any]
) -> None:
    onnx_path = models.build("tiny_mlp", tmp_path)
    one = np.array([[0.5, -0.25, 0.75, 0.1]])
    prepared = coverage.prepare(onnx_path, one)
    assert prepared.registrar_samples == 1
    assert (prepared.float_lo, prepared.float_hi) == (-0.25, 0.75)
    artifacts, domain = zk_covered_circuit_for(onnx_path, one)
    rep = tolerance.measure(
        artifacts, domain=domain, random_samples=5, climb_steps=10, edge_samples=2,
        registrar_samples=1,
    )  # fmt: skip
    assert rep.warnings == (tolerance.ONE_SAMPLE_WARNING,)
    assert rep.describe().startswith("WARNING: the calibration file has a single sample")


def test_unsupportedOp_tauIsEmpirical_andSaysWhy(
    tmp_path: Path, zk_covered_circuit_for: Callable[..., Any]
) -> None:
    onnx_path = models.save(models.gemm_softmax(), tmp_path / "gemm_softmax.onnx")
    artifacts, domain = zk_covered_circuit_for(onnx_path)
    assert error_bound.bound(artifacts, domain).units is None
    rep = tolerance.measure(artifacts, domain=domain, random_samples=10, climb_steps=20)
    assert rep.kind == tolerance.KIND_EMPIRICAL and rep.sound_bound is None
    assert "Softmax" in rep.sound_note and "Softmax" in rep.describe()
    assert rep.tau == tolerance.choose_tau(rep.max_deviation)


def test_domainAtAnotherScale_isRefused(covered: tuple[Any, InputDomain]) -> None:
    artifacts, domain = covered
    with pytest.raises(ConfigError, match="scale"):
        tolerance.measure(artifacts, domain=InputDomain(-1, 1, domain.scale + 1))


#: pytorch-converted models (batch > 1, Conv1d/2d, BatchNorm, LeakyRelu, pooling, lookups)
#: whose every op the sound bound supports.
SOUND_PYTORCH = [
    "test_Linear",
    "test_Conv1d",
    "test_Conv2d",
    "test_BatchNorm2d_eval",
    "test_LeakyReLU",
    "test_AvgPool2d",
    "test_MaxPool1d",
    "test_Sigmoid",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SOUND_PYTORCH)
def test_soundBound_pytorchConverted_neverBelowWorstFound(
    name: str, zk_model_dir: Path, zk_covered_circuit_for: Callable[..., Any]
) -> None:
    artifacts, domain = zk_covered_circuit_for(models.model_file(name, zk_model_dir))
    bound = error_bound.bound(artifacts, domain)
    assert bound.units is not None, bound.note
    search, _ = tolerance.search_deviation(artifacts, domain, random_samples=100, seed=7)
    assert 0 <= search.worst <= bound.units
