"""witness_output: the circuit's output for a quantized input, fast and exact on the input."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spotcheck.encoding import quantize
from spotcheck.errors import InputError
from verifier.onnx_runner import OnnxRunner
from verifier.witness import compute, witness_output


def test_witnessOutput_isCloseToOnnxruntime(tiny_mlp_artifacts: Any) -> None:
    a = tiny_mlp_artifacts
    runner = OnnxRunner(a.onnx_path)
    rng = np.random.default_rng(7)
    for _ in range(10):
        q = quantize(rng.uniform(-1, 1, 4), a.input_scale)
        x = np.asarray(q, dtype=np.float64) / 2**a.input_scale
        float_q = quantize(runner.run(x), a.output_scale)
        circuit_q = witness_output(a, q)
        assert len(circuit_q) == a.output_len
        # 0.5 % of the output range is the documented bound (docs/toolchain facts: <= 0.4 %)
        assert (
            max(abs(u - v) for u, v in zip(float_q, circuit_q, strict=True))
            <= 2**a.output_scale // 200
        )


def test_witness_isDeterministicAndFast(tiny_mlp_artifacts: Any) -> None:
    q = quantize([0.1, 0.2, -0.3, 0.4], tiny_mlp_artifacts.input_scale)
    start = time.perf_counter()
    first = compute(tiny_mlp_artifacts, q)
    assert time.perf_counter() - start < 2.0
    assert compute(tiny_mlp_artifacts, q) == first
    assert len(first.instances) == tiny_mlp_artifacts.input_len + tiny_mlp_artifacts.output_len


@pytest.mark.parametrize(
    ("input_q", "message"),
    [
        ([1, 2, 3], "3 elements"),
        ([1, 2, 3, 0.5], "not an integer"),
        ([1, 2, 3, 2**53], "too large"),
    ],
)
def test_badQuantizedInput_raisesInputError(
    tiny_mlp_artifacts: Any, input_q: list[Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        witness_output(tiny_mlp_artifacts, input_q)


def test_extremeInputs_roundTripExactly(tiny_mlp_artifacts: Any) -> None:
    # odd values and negatives near the calibration bounds must reach the circuit unchanged
    q = [2**tiny_mlp_artifacts.input_scale - 1, -(2**tiny_mlp_artifacts.input_scale) + 1, 1, -1]
    assert len(witness_output(tiny_mlp_artifacts, q)) == 2


def test_tinyMlpOnnx_fixtureBytesAreDeterministic(tmp_path: Path, tiny_mlp_onnx: Path) -> None:
    from tests.fixtures import models

    assert models.build("tiny_mlp", tmp_path).read_bytes() == tiny_mlp_onnx.read_bytes()
