"""The network run's statistics (``benchmarks/network/analysis.py``)."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from spotcheck.toolchain import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from network.analysis import wilson


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_alwaysHoldsTheObservedRate_withinZeroOne(case: tuple[int, int]) -> None:
    # at k = n the upper end rounded to 1 - 1e-16 once: the plot's error bar went negative
    k, n = case
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_allOfThirtyOne_isTheKnownInterval() -> None:
    lo, hi = wilson(31, 31)
    assert hi == 1.0 and abs(lo - 0.88974) < 1e-5
