"""The fast quantization rounding (``round_scaled``: trunc(s + copysign(0.5, s))) is the same
number as the rule it replaces, sign(s) * floor(|s| + 0.5), for every float and scale, and
the node's batch quantizer answers as the one-vector quantizer does, errors included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotcheck.encoding import all_exact, quantize_array, round_scaled
from spotcheck.errors import EncodingError


def _reference(values: np.ndarray, scale: int) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = values.astype(np.float64) * float(2**scale)
        return np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)


any_floats = st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40)
halves = st.integers(-(2**60), 2**60).map(lambda k: k / 2.0)  # ties and large values


@settings(max_examples=500, deadline=None)
@given(
    values=st.one_of(any_floats, st.lists(halves, min_size=1, max_size=40)),
    scale=st.integers(0, 64),
)
def test_round_scaled_equalsSignFloorRule(values: list[float], scale: int) -> None:
    arr = np.array(values, dtype=np.float64)
    ours, ref = round_scaled(arr, scale), _reference(arr, scale)
    assert np.array_equal(ours, ref, equal_nan=True)
    assert all_exact(ours) == bool(np.all(np.abs(ref) < 2**53))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(width=32), min_size=1, max_size=40), scale=st.integers(0, 40))
def test_quantize_array_float32_matchesReference_orRaises(values: list[float], scale: int) -> None:
    arr = np.array(values, dtype=np.float32)
    ref = _reference(arr, scale)
    if np.all(np.abs(ref) < 2**53):
        assert quantize_array(arr, scale).tolist() == ref.astype(np.int64).tolist()
    else:
        with pytest.raises(EncodingError):
            quantize_array(arr, scale)
