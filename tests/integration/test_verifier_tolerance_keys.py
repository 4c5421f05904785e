"""Tolerance checked on a built model's witness outputs (its artifacts include the EVM verifier,
compiled with solc: the Solidity toolchain; the other tolerance tests are in tests/unit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from spotcheck.encoding import quantize, within_tolerance
from verifier import tolerance
from verifier.witness import witness_output


def test_exactMode_setsTauZero_andWitnessOutputsPassIt(tiny_mlp_artifacts: Any) -> None:
    exact = tolerance.measure(tiny_mlp_artifacts, random_samples=10, climb_steps=10, exact=True)
    assert exact.tau == 0 and exact.exact
    q = quantize(np.array([0.5, -0.25, 0.125, 0.0]), tiny_mlp_artifacts.input_scale)
    assert within_tolerance(
        witness_output(tiny_mlp_artifacts, q), witness_output(tiny_mlp_artifacts, q), 0
    )


def test_shiftedOutput_outsideTau_isDetected(tiny_mlp_artifacts: Any) -> None:
    rep = tolerance.measure(tiny_mlp_artifacts, random_samples=10, climb_steps=10)
    q = quantize(np.array([0.5, -0.25, 0.125, 0.0]), tiny_mlp_artifacts.input_scale)
    circuit = witness_output(tiny_mlp_artifacts, q)
    cheat = [circuit[0] + rep.tau + 1, *circuit[1:]]
    assert not within_tolerance(cheat, circuit, rep.tau)
