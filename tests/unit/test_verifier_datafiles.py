"""Calibration and input files: the documented formats load; bad files fail with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spotcheck.errors import InputError
from verifier.datafiles import load_calibration, load_input_q
from verifier.resources import estimate


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "f.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "data",
    [
        {"inputs": [[0.1, 0.2], [0.3, 0.4]]},
        {"input_data": [[0.1, 0.2, 0.3, 0.4]]},
        [[0.1, 0.2], [0.3, 0.4]],
    ],
)
def test_calibrationFormats_loadSameValues(tmp_path: Path, data: object) -> None:
    arr = load_calibration(_write(tmp_path, data))
    np.testing.assert_allclose(arr.ravel(), [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize(
    ("data", "message"),
    [({"x": 1}, "input_data"), ({"inputs": [["a"]]}, "numbers"), ({"inputs": [[1e400]]}, "NaN")],
)
def test_badCalibration_raisesInputError(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_calibration(_write(tmp_path, data))


def test_inputFloats_areQuantizedAtScale(tmp_path: Path) -> None:
    assert load_input_q(_write(tmp_path, {"input": [0.5, -0.25]}), 4) == [8, -4]


def test_inputQ_isTakenAsIs_andMustBeIntegers(tmp_path: Path) -> None:
    assert load_input_q(_write(tmp_path, {"input_q": [3, -7]}), 13) == [3, -7]
    with pytest.raises(InputError, match="integers"):
        load_input_q(_write(tmp_path, {"input_q": [1.5]}), 13)


def test_inputWithNan_raisesInputError(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text('{"input": [NaN, 1.0]}')
    with pytest.raises(InputError, match="NaN"):
        load_input_q(path, 13)


def test_memoryEstimate_growsWithLogrows_andMatchesMeasurements() -> None:
    small, large = estimate(15, available_bytes=10**12), estimate(20, available_bytes=10**12)
    assert large.peak_bytes > 20 * small.peak_bytes // 2
    # measured: 138 MB proving key at logrows 15, 4.2 GB at logrows 20
    assert 100e6 < small.proving_key_bytes < 200e6 and 3e9 < large.proving_key_bytes < 6e9
    assert 6e9 < large.peak_bytes < 9e9
