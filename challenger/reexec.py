"""Re-execution of one registered model: onnxruntime screen and circuit witness.

The re-run uses the job's canonical quantized input: ``dequantize(input_q)`` goes to
onnxruntime (the same rule nodes follow) and the float output is quantized at the model's
output scale; the witness is the circuit's own output (``verifier.witness``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from spotcheck.encoding import dequantize, quantize

if TYPE_CHECKING:
    from verifier.artifacts import CircuitArtifacts

log = logging.getLogger(__name__)


class ModelReexecutor:
    """Implements :class:`challenger.verdict.Reexecutor` for one model's artifacts."""

    def __init__(self, artifacts: CircuitArtifacts) -> None:
        from verifier.onnx_runner import OnnxRunner

        self.artifacts = artifacts
        self._runner = OnnxRunner(artifacts.onnx_path)

    @property
    def input_len(self) -> int:
        return self.artifacts.input_len

    @property
    def output_len(self) -> int:
        return self.artifacts.output_len

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        x = dequantize(list(input_q), self.artifacts.input_scale)
        return quantize(self._runner.run(x), self.artifacts.output_scale)

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        from verifier.witness import witness_output

        return witness_output(self.artifacts, input_q)
