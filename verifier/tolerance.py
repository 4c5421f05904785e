"""Measure how far honest float inference lands from the circuit, and choose ``tau`` from it.

For each input ``q`` (the calibration set, then random inputs drawn uniformly inside the
calibration range, element by element) we compare ``quantize(onnxruntime(q / 2**s_in))`` with
the circuit's witness output for ``q``. The largest element-wise difference ``max_dev`` sets

    tau = ceil(max_dev * (1 + margin)) + slack        (defaults: margin 50 %, slack 2 units)

The margin covers inputs the measurement did not see; the slack covers float differences
between hardware (other CPUs, GPUs) that a single machine cannot observe. ``exact=True`` gives
``tau = 0``: nodes must then commit the circuit's own output (``witness_output``), not a float
result. ``tau`` is also the room a dishonest node has, so keep it as small as honest hardware
allows (docs/model-registrars.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spotcheck.encoding import dequantize, quantize
from spotcheck.errors import ConfigError
from verifier.artifacts import CircuitArtifacts
from verifier.onnx_runner import OnnxRunner
from verifier.witness import witness_output

log = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.5
DEFAULT_SLACK = 2
DEFAULT_RANDOM_SAMPLES = 200


@dataclass(frozen=True)
class Deviation:
    """Worst deviation seen and the input that produced it (for the report)."""

    max_units: int
    mean_units: float
    worst_input_q: tuple[int, ...]
    samples: int


@dataclass(frozen=True)
class ToleranceReport:
    calibration_samples: int
    random_samples: int
    max_deviation: int
    mean_deviation: float
    max_abs_output: int
    output_scale: int
    margin: float
    slack: int
    exact: bool
    tau: int

    @property
    def samples(self) -> int:
        return self.calibration_samples + self.random_samples

    @property
    def relative_deviation(self) -> float:
        """max deviation as a share of the largest output magnitude seen."""
        return self.max_deviation / self.max_abs_output if self.max_abs_output else 0.0

    def describe(self) -> str:
        unit = 2.0**-self.output_scale
        rule = (
            "exact mode: tau = 0 (nodes must commit the circuit output)"
            if self.exact
            else f"tau = ceil({self.max_deviation} * (1 + {self.margin:g})) + {self.slack}"
        )
        return "\n".join(
            [
                f"tolerance over {self.samples} inputs "
                f"({self.calibration_samples} calibration + {self.random_samples} random in range)",
                f"  output scale        2**{self.output_scale} (1 unit = {unit:.3g})",
                f"  max deviation       {self.max_deviation} units "
                f"({self.max_deviation * unit:.3g})",
                f"  mean deviation      {self.mean_deviation:.3f} units",
                f"  largest |output|    {self.max_abs_output} units "
                f"(max deviation = {100 * self.relative_deviation:.4f} % of it)",
                f"  {rule}",
                f"  tau                 {self.tau} units ({self.tau * unit:.3g})",
            ]
        )


def choose_tau(
    max_deviation: int, margin: float = DEFAULT_MARGIN, slack: int = DEFAULT_SLACK
) -> int:
    """``ceil(max_deviation * (1 + margin)) + slack``."""
    if max_deviation < 0 or margin < 0 or slack < 0:
        raise ConfigError(
            f"deviation, margin and slack must be >= 0 ({max_deviation}, {margin}, {slack})"
        )
    return math.ceil(max_deviation * (1 + margin)) + slack


def random_inputs_in_range(calibration: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` inputs uniform in [min, max] of the calibration set, per element."""
    low, high = calibration.min(axis=0), calibration.max(axis=0)
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(count, calibration.shape[1]))


def honest_output_q(
    runner: OnnxRunner, artifacts: CircuitArtifacts, input_q: list[int]
) -> list[int]:
    """What an honest node commits: onnxruntime on the dequantized input, quantized."""
    x = dequantize(input_q, artifacts.input_scale)
    return quantize(runner.run(x), artifacts.output_scale)


def measure_deviation(
    artifacts: CircuitArtifacts,
    inputs: np.ndarray,
    runner: OnnxRunner | None = None,
    on_sample: Callable[[int], None] | None = None,
) -> tuple[Deviation, int]:
    """Worst ``|onnxruntime - circuit|`` over ``inputs``; also the largest |circuit output|."""
    runner = runner or OnnxRunner(artifacts.onnx_path)
    worst, total, count, max_abs = -1, 0, 0, 0
    worst_q: list[int] = []
    for i, row in enumerate(inputs):
        q = quantize(row, artifacts.input_scale)
        circuit = witness_output(artifacts, q)
        honest = honest_output_q(runner, artifacts, q)
        diffs = [abs(a - b) for a, b in zip(honest, circuit, strict=True)]
        total += sum(diffs)
        count += len(diffs)
        max_abs = max(max_abs, *(abs(v) for v in circuit))
        if max(diffs) > worst:
            worst, worst_q = max(diffs), q
        if on_sample is not None:
            on_sample(i)
    return Deviation(max(worst, 0), total / max(count, 1), tuple(worst_q), len(inputs)), max_abs


def measure(
    artifacts: CircuitArtifacts,
    random_samples: int = DEFAULT_RANDOM_SAMPLES,
    margin: float = DEFAULT_MARGIN,
    slack: int = DEFAULT_SLACK,
    exact: bool = False,
    seed: int = 0,
) -> ToleranceReport:
    """Measure the deviation on calibration + random inputs and choose ``tau``."""
    calibration = artifacts.calibration_inputs()
    inputs = np.concatenate(
        [calibration, random_inputs_in_range(calibration, random_samples, seed)]
    )
    deviation, max_abs = measure_deviation(artifacts, inputs)
    tau = 0 if exact else choose_tau(deviation.max_units, margin, slack)
    report = ToleranceReport(
        calibration_samples=len(calibration),
        random_samples=random_samples,
        max_deviation=deviation.max_units,
        mean_deviation=deviation.mean_units,
        max_abs_output=max_abs,
        output_scale=artifacts.output_scale,
        margin=margin,
        slack=slack,
        exact=exact,
        tau=tau,
    )
    if exact and deviation.max_units > 0:
        log.warning(
            "exact mode with max deviation %d: nodes must commit witness outputs, not float ones",
            deviation.max_units,
        )
    return report
