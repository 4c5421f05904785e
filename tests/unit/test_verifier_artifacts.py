"""The artifacts cache: content-addressed, instant on a hit, never stale, never half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spotcheck.errors import ConfigError, ModelError
from tests.fixtures import models
from verifier import artifacts as art
from verifier import ezkl_backend, resources
from verifier.ezkl_backend import CircuitParams
from verifier.srs import SrsSource

CAL = np.random.default_rng(1).uniform(-1, 1, size=(8, 4))


def test_circuitKey_changesWithModelCalibrationParamsAndEzklVersion() -> None:
    onnx_bytes = models.tiny_mlp().SerializeToString()
    base = art.circuit_key(onnx_bytes, CAL, CircuitParams(), "23.0.5")
    assert base == art.circuit_key(onnx_bytes, CAL.copy(), CircuitParams(), "23.0.5")
    other_model = models.linear_sigmoid().SerializeToString()
    variants = {
        art.circuit_key(other_model, CAL, CircuitParams(), "23.0.5"),
        art.circuit_key(onnx_bytes, CAL * 1.0001, CircuitParams(), "23.0.5"),
        art.circuit_key(onnx_bytes, CAL, CircuitParams(max_logrows=16), "23.0.5"),
        art.circuit_key(onnx_bytes, CAL, CircuitParams(calibration_target="accuracy"), "23.0.5"),
        art.circuit_key(onnx_bytes, CAL, CircuitParams(), "23.0.6"),
    }
    assert base not in variants and len(variants) == 5


def test_crashDuringBuild_leavesNoEntry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_path = models.build("avgpool", tmp_path)

    def boom(*_: object) -> None:
        raise ModelError("simulated crash in compile")

    monkeypatch.setattr(ezkl_backend, "compile_circuit", boom)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="simulated"):
        art.build_artifacts(onnx_path, cache_root=cache)
    entries = list((cache / "models").iterdir())
    assert len(entries) == 1
    assert list(entries[0].iterdir()) == []  # neither circuit/ nor a leftover temp folder


def test_notOnnx_raisesModelErrorBeforeEzkl(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("hello")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        art.build_artifacts(path, cache_root=tmp_path / "cache")


def test_unsupportedOp_raisesModelError(tmp_path: Path) -> None:
    path = models.save(models.unsupported_op(), tmp_path / "nonzero.onnx")
    with pytest.raises(ModelError):
        art.build_artifacts(path, cache_root=tmp_path / "cache")


def test_calibrationWithNan_raisesInputError(tmp_path: Path) -> None:
    from spotcheck.errors import InputError

    path = models.build("tiny_mlp", tmp_path)
    bad = CAL.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        art.build_artifacts(path, calibration=bad, cache_root=tmp_path / "cache")


def test_circuitTooLarge_raisesBeforeSetup() -> None:
    with pytest.raises(ModelError, match="too large"):
        resources.check_fits(20, available_bytes=2 * 2**30)
    assert resources.check_fits(15, available_bytes=2 * 2**30).fits


def test_srsFromConfig_noPathIsDev_pathNeedsItsHash(tmp_path: Path) -> None:
    assert SrsSource.from_config(None, None).is_dev
    with pytest.raises(ConfigError, match="srs_path needs srs_sha256"):
        SrsSource.from_config(tmp_path / "kzg.srs", None)
    src = SrsSource.from_config(tmp_path / "kzg.srs", "AB" * 32)
    assert (src.path, src.sha256) == (tmp_path / "kzg.srs", "ab" * 32)
