"""The input domain: one membership rule, the quantized box, and calibration that covers it."""

from __future__ import annotations

import numpy as np
import pytest

from spotcheck.errors import ConfigError
from verifier.domain import (
    InputDomain,
    covering_calibration,
    covering_points,
    float_domain_of,
    in_domain,
)


def test_inDomain_returnsFirstBadIndex_orNone() -> None:
    assert in_domain([0, -5, 5], -5, 5) is None
    assert in_domain([0, -6, 9], -5, 5) == 1
    assert in_domain([0, 1, 6], -5, 5) == 2
    assert in_domain([], -5, 5) is None


def test_inputDomain_fromFloats_isTheLargestQuantizedBoxInside() -> None:
    d = InputDomain.from_floats(-0.99939, 0.994385, 13)
    assert (d.lo, d.hi) == (-8187, 8146)
    assert d.float_lo >= -0.99939 and d.float_hi <= 0.994385
    assert InputDomain.from_floats(-1.0, 1.0, 13) == InputDomain(-8192, 8192, 13)
    assert d.first_outside([-8187, 8146]) is None and d.first_outside([0, 8147]) == 1
    assert "[-8187, 8146] at scale 2**13" in d.describe()


def test_inputDomain_emptyOrHuge_isRefused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        InputDomain(2, 1, 13)
    with pytest.raises(ConfigError, match="2\\*\\*53"):
        InputDomain(0, 2**60, 13)


def test_coveringCalibration_keepsSamples_addsCornersAndBoxPoints_deterministically() -> None:
    cal = np.array([[0.1, 0.2, 0.3], [0.0, -0.1, 0.05]])
    cover = covering_calibration(cal, -0.5, 2.0)
    assert np.array_equal(cover[:2], cal)
    rest = cover[2:]
    assert rest.min() == -0.5 and rest.max() == 2.0
    assert any(np.all(r == -0.5) for r in rest) and any(np.all(r == 2.0) for r in rest)
    assert np.array_equal(cover, covering_calibration(cal, -0.5, 2.0))
    assert len(covering_points(-1, 1, 3)) == 4 + 8 + 32


def test_floatDomainOf_isGlobalMinAndMax_evenForOneSample() -> None:
    assert float_domain_of(np.array([[0.5, -0.25, 0.75, 0.1]])) == (-0.25, 0.75)
    with pytest.raises(ConfigError):
        float_domain_of(np.zeros((0, 4)))
