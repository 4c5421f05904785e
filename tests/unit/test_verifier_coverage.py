"""A circuit that covers the domain: chosen from the calibration data or by the registrar,
calibrated over corners and random points of the box, and refused (one line) where it cannot
prove."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spotcheck.errors import ConfigError, ModelError
from tests.fixtures import models
from verifier import coverage
from verifier.artifacts import DEFAULT_CALIBRATION_SAMPLES, build_circuit
from verifier.domain import InputDomain


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_mlp", tmp_path_factory.mktemp("cover"))


def test_prepare_default_isTheDefaultCircuit_coveringMinusOneToOne(onnx_path: Path) -> None:
    p = coverage.prepare(onnx_path, None)
    assert (p.float_lo, p.float_hi) == (-1.0, 1.0)
    assert p.registrar_samples == DEFAULT_CALIBRATION_SAMPLES
    a = build_circuit(onnx_path)  # what nodes and challengers build without a calibration file
    assert np.array_equal(a.calibration_inputs(), p.calibration)
    assert p.domain(a) == InputDomain(-(2**a.input_scale), 2**a.input_scale, a.input_scale)


def test_prepare_fromSamples_takesTheirRange_andCoversIt(onnx_path: Path) -> None:
    cal = np.array([[0.5, -0.25, 0.75, 0.1], [0.0, 0.2, -0.1, 0.3]])
    p = coverage.prepare(onnx_path, cal)
    assert (p.float_lo, p.float_hi, p.registrar_samples) == (-0.25, 0.75, 2)
    assert np.array_equal(p.calibration[:2], cal)
    assert p.calibration.min() == -0.25 and p.calibration.max() == 0.75


def test_prepare_registrarFloatDomain_wins(onnx_path: Path) -> None:
    p = coverage.prepare(onnx_path, None, float_domain=(-2.0, 0.5))
    assert (p.float_lo, p.float_hi) == (-2.0, 0.5)
    assert p.calibration.min() == -2.0 and p.calibration.max() == 0.5


def test_prepare_quantizedDomain_usesTheCircuitScale(onnx_path: Path) -> None:
    p = coverage.prepare(onnx_path, None, in_lo=-4096, in_hi=12288)
    a = build_circuit(onnx_path, calibration=p.calibration)
    assert p.domain(a) == InputDomain(-4096, 12288, a.input_scale)
    assert p.calibration.min() == -4096 / 2**a.input_scale


def test_prepare_badDomainOptions_areRefused(onnx_path: Path) -> None:
    with pytest.raises(ConfigError, match="both"):
        coverage.prepare(onnx_path, None, in_lo=-1)
    with pytest.raises(ConfigError, match="one of"):
        coverage.prepare(onnx_path, None, float_domain=(-1, 1), in_lo=-1, in_hi=1)
    with pytest.raises(ConfigError, match="empty"):
        coverage.prepare(onnx_path, None, float_domain=(1, -1))
    with pytest.raises(ConfigError, match="wider than a point"):
        coverage.prepare(onnx_path, np.full((1, 4), 0.5))


def test_check_coveredDomain_passesAtCornersAndAdversarialPoints(
    onnx_path: Path, zk_covered_circuit_for: Callable[..., Any]
) -> None:
    a, domain = zk_covered_circuit_for(onnx_path)
    report = coverage.check(a, domain, adversarial=[[domain.lo, 0, domain.hi, 1]])
    assert report.points == 4 + coverage.CHECK_RANDOM_CORNERS + 1
    assert "witness + mock prover OK" in report.describe()


def test_check_domainBeyondTheCircuit_isRefusedWithOneLineAndWhatToChange(
    onnx_path: Path, zk_covered_circuit_for: Callable[..., Any]
) -> None:
    a, _ = zk_covered_circuit_for(onnx_path)  # calibrated over [-1, 1]
    huge = InputDomain(-(2**30), 2**30, a.input_scale)
    with pytest.raises(ModelError) as err:
        coverage.check(a, huge)
    text = str(err.value)
    assert "\n" not in text
    assert "does not cover the domain" in text and "corner" in text
    assert "shrink the domain" in text and "--max-logrows" in text


def test_check_adversarialPointOutsideDomain_isAConfigError(
    onnx_path: Path, zk_covered_circuit_for: Callable[..., Any]
) -> None:
    a, domain = zk_covered_circuit_for(onnx_path)
    with pytest.raises(ConfigError, match="outside the domain"):
        coverage.check(a, domain, adversarial=[[domain.hi + 1, 0, 0, 0]], mock=False)


def test_everyBuilder_getsTheRegistrarsCircuit_fromTheRawOrTheCoveringFile(
    onnx_path: Path,
) -> None:
    """Nodes and validators rebuild from the registrar's raw calibration file or from the
    covering file onboarding writes: both give the registrar's circuit (same settings hash)."""
    raw = np.array([[0.5, -0.25, 0.75, 0.1], [0.0, 0.2, -0.1, 0.3]])
    p = coverage.prepare(onnx_path, raw)
    registrar = build_circuit(onnx_path, calibration=p.calibration)
    from_raw = build_circuit(onnx_path, calibration=raw)
    from_cover = build_circuit(onnx_path, calibration=registrar.calibration_inputs())
    assert registrar.settings_hash == from_raw.settings_hash == from_cover.settings_hash
    again = coverage.prepare(onnx_path, registrar.calibration_inputs())
    assert np.array_equal(again.calibration, p.calibration) and again.registrar_samples == 2


def test_explicitDomain_coveringFile_isReproducedAndKeepsTheDomain(onnx_path: Path) -> None:
    raw = np.array([[0.5, -0.25, 0.75, 0.1]])
    p = coverage.prepare(onnx_path, raw, float_domain=(-2.0, 2.0))
    again = coverage.prepare(onnx_path, p.calibration)  # a node's rebuild from the file
    assert (again.float_lo, again.float_hi) == (-2.0, 2.0)
    assert np.array_equal(again.calibration, p.calibration)
