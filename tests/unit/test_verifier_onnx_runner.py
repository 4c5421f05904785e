"""OnnxRunner: one reused session, flattened float64 outputs, one-line InputErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spotcheck.errors import InputError, ModelError
from tests.fixtures import models
from verifier.onnx_runner import OnnxRunner


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> OnnxRunner:
    return OnnxRunner(models.build("tiny_mlp", tmp_path_factory.mktemp("m")))


def _reference_mlp(x: np.ndarray) -> np.ndarray:
    proto = models.tiny_mlp()
    w = {
        t.name: np.frombuffer(t.raw_data, dtype=np.float32).reshape(t.dims)
        for t in proto.graph.initializer
    }
    h = np.maximum(x @ w["W1"].T + w["b1"], 0)
    return (h @ w["W2"].T + w["b2"]).ravel()


def test_runnerShape_matchesModel(runner: OnnxRunner) -> None:
    assert runner.input_shape == (1, 4)
    assert runner.input_len == 4
    assert runner.input_dtype is np.float32


def test_run_matchesNumpyReference(runner: OnnxRunner) -> None:
    x = np.array([[0.3, -0.7, 0.1, 0.9]])
    out = runner.run(x)
    assert out.dtype == np.float64 and out.shape == (2,)
    np.testing.assert_allclose(out, _reference_mlp(x.astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_run_acceptsFlatVectorOfRightLength(runner: OnnxRunner) -> None:
    x = np.array([0.3, -0.7, 0.1, 0.9])
    np.testing.assert_array_equal(runner.run(x), runner.run(x.reshape(1, 4)))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros(5), "5 elements"),
        (np.zeros((2, 2)), "shape"),
        (np.array([0.1, np.nan, 0.0, 0.0]), "NaN"),
        (np.array([0.1, np.inf, 0.0, 0.0]), "infinity"),
        (np.array(["a", "b", "c", "d"]), "not numeric"),
    ],
)
def test_run_badInput_raisesInputError(runner: OnnxRunner, x: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        runner.run(x)


def test_notOnnxFile_raisesModelError(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxRunner(path)
