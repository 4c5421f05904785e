"""Spotcheck's encoding agrees with ezkl's: quantization (half away from zero), field elements
and ezkl's little-endian hex. If these drifted apart, an honest node's proof would carry
input instances that no longer hash to the job's input, and it would be slashed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotcheck.encoding import BN254_R, dequantize, from_field, quantize, to_field
from verifier.ezkl_backend import felt_from_le_hex, felt_to_le_hex

ezkl = pytest.importorskip("ezkl")

scales = st.integers(min_value=0, max_value=26)
signed = st.integers(min_value=-(2**52), max_value=2**52)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), scale=scales)
def test_quantize_equalsEzklFloatToFelt(x: float, scale: int) -> None:
    ours = quantize([x], scale)[0]
    theirs = from_field(felt_from_le_hex(ezkl.float_to_felt(x, scale)))
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(k=st.integers(min_value=-(2**20), max_value=2**20), scale=st.integers(1, 20))
def test_exactHalves_roundAwayFromZero_likeEzkl(k: int, scale: int) -> None:
    x = (k + 0.5) / 2**scale  # exactly half a unit: the tie case
    expected = k + 1 if k >= 0 else k  # away from zero
    assert quantize([x], scale)[0] == expected
    assert from_field(felt_from_le_hex(ezkl.float_to_felt(x, scale))) == expected


@settings(max_examples=300, deadline=None)
@given(q=signed, scale=scales)
def test_dequantizeThenQuantize_isIdentity(q: int, scale: int) -> None:
    # what witness.py relies on: ezkl re-quantizes q / 2**s to exactly q
    assert quantize(dequantize([q], scale), scale) == [q]


@settings(max_examples=300, deadline=None)
@given(v=st.integers(min_value=-(BN254_R // 2), max_value=BN254_R // 2))
def test_fieldElements_roundTripThroughEzklHex(v: int) -> None:
    felt = to_field(v)
    hex_le = felt_to_le_hex(felt)
    assert felt_from_le_hex(hex_le) == felt
    assert from_field(felt) == v


@settings(max_examples=200, deadline=None)
@given(v=st.integers(min_value=-(2**62), max_value=2**62))
def test_felt_decodesLikeEzklFeltToInt(v: int) -> None:
    assert ezkl.felt_to_int(felt_to_le_hex(to_field(v))) == v


def test_negativeFelt_isRMinusAbs() -> None:
    assert to_field(-1) == BN254_R - 1
    assert math.isclose(float(dequantize([-8192], 13)[0]), -1.0)
