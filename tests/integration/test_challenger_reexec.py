"""Re-execution with the real tools (onnxruntime + ezkl witness) on the tiny MLP: an honest
node's committed output (quantized onnxruntime) is never a MISMATCH at the registered tau,
outputs at the tau edge of the circuit match, and one unit past it is a MISMATCH."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from challenger.reexec import ModelReexecutor
from challenger.verdict import Verdict, check_output
from spotcheck.encoding import quantize


@pytest.fixture(scope="module")
def registered_tau(tiny_mlp_artifacts: Any) -> int:
    from verifier.tolerance import measure

    return measure(tiny_mlp_artifacts, random_samples=40, seed=1).tau


@pytest.fixture(scope="module")
def fresh_inputs(tiny_mlp_artifacts: Any) -> list[list[int]]:
    from verifier.tolerance import random_inputs_in_range

    rows = random_inputs_in_range(tiny_mlp_artifacts.calibration_inputs(), 60, seed=12345)
    return [quantize(row, tiny_mlp_artifacts.input_scale) for row in rows]


@pytest.mark.parametrize("screen", [True, False], ids=["screened", "witness-always"])
def test_honestNode_quantizedOnnxruntimeOutput_isNeverMismatch(
    tiny_mlp_artifacts: Any, registered_tau: int, fresh_inputs: list[list[int]], screen: bool
) -> None:
    reexec = ModelReexecutor(tiny_mlp_artifacts)
    for x in fresh_inputs:
        committed = reexec.screen_output(x)  # exactly what an honest node commits
        check = check_output(reexec, x, committed, registered_tau, screen=screen)
        assert check.verdict is Verdict.MATCH, (x, check)


def test_toleranceEdgeOfCircuit_matches_onePastIsMismatch(
    tiny_mlp_artifacts: Any, registered_tau: int, fresh_inputs: list[list[int]]
) -> None:
    reexec = ModelReexecutor(tiny_mlp_artifacts)
    for x in fresh_inputs[:15]:
        circuit = reexec.witness_output(x)
        edge = [v + (registered_tau if i % 2 else -registered_tau) for i, v in enumerate(circuit)]
        assert check_output(reexec, x, edge, registered_tau).verdict is Verdict.MATCH
        past = list(circuit)
        past[0] += registered_tau + 1
        assert check_output(reexec, x, past, registered_tau).verdict is Verdict.MISMATCH


def test_screenOutput_equalsNodeRuleOnDequantizedInput(tiny_mlp_artifacts: Any) -> None:
    from verifier.onnx_runner import OnnxRunner
    from verifier.tolerance import honest_output_q

    x = quantize(np.linspace(-1, 1, tiny_mlp_artifacts.input_len), tiny_mlp_artifacts.input_scale)
    runner = OnnxRunner(tiny_mlp_artifacts.onnx_path)
    expected = honest_output_q(runner, tiny_mlp_artifacts, x)
    assert ModelReexecutor(tiny_mlp_artifacts).screen_output(x) == expected
