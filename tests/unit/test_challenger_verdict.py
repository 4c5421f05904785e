"""Verdicts follow the contract's rule: dispute only outside tau of the circuit's output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from challenger.verdict import Verdict, check_output, screen_bound


@dataclass
class FakeReexec:
    """A model whose float run and circuit differ by a fixed per-element offset."""

    circuit: list[int]
    float_offset: list[int]
    input_len: int = 3
    calls: dict[str, int] = field(default_factory=lambda: {"screen": 0, "witness": 0})

    @property
    def output_len(self) -> int:
        return len(self.circuit)

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        self.calls["screen"] += 1
        return [c + o for c, o in zip(self.circuit, self.float_offset, strict=True)]

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        self.calls["witness"] += 1
        return list(self.circuit)


INPUT = [1, 2, 3]
vec = st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=6)


@given(circuit=vec, tau=st.integers(0, 1000), data=st.data())
def test_honestNode_isNeverDisputed(circuit: list[int], tau: int, data: st.DataObject) -> None:
    """Honest: every committed element within tau of the circuit (the node's float run)."""
    n = len(circuit)
    node_dev = data.draw(st.lists(st.integers(-tau, tau), min_size=n, max_size=n))
    our_dev = data.draw(st.lists(st.integers(-tau, tau), min_size=n, max_size=n))
    committed = [c + d for c, d in zip(circuit, node_dev, strict=True)]
    reexec = FakeReexec(circuit, our_dev)
    assert check_output(reexec, INPUT, committed, tau).verdict is Verdict.MATCH


@given(circuit=vec, tau=st.integers(0, 1000), data=st.data())
def test_outsideTauOfCircuit_isAlwaysMismatch(
    circuit: list[int], tau: int, data: st.DataObject
) -> None:
    """An element beyond tau of the circuit output is disputed (screen cannot hide it here)."""
    n = len(circuit)
    i = data.draw(st.integers(0, n - 1))
    shift = data.draw(st.integers(tau + 1, tau + 10**6)) * data.draw(st.sampled_from([-1, 1]))
    committed = list(circuit)
    committed[i] += shift
    reexec = FakeReexec(circuit, [0] * n)  # our float run equals the circuit here
    check = check_output(reexec, INPUT, committed, tau)
    assert check.verdict is Verdict.MISMATCH
    assert check.witness_diff == abs(shift)


def test_outputExactlyAtTauEdge_isMatch_andOnePastIsMismatch() -> None:
    reexec = FakeReexec([100, -100], [0, 0])
    assert check_output(reexec, INPUT, [110, -110], tau=10).verdict is Verdict.MATCH
    assert check_output(reexec, INPUT, [111, -100], tau=10).verdict is Verdict.MISMATCH


def test_screenMatch_skipsTheWitness() -> None:
    reexec = FakeReexec([100, 200], [1, -1])
    check = check_output(reexec, INPUT, [100, 200], tau=10)
    assert check.verdict is Verdict.MATCH
    assert reexec.calls == {"screen": 1, "witness": 0}
    assert check.witness_diff is None


def test_screenDisagreement_isSettledByWitness_notDisputedOnFloatAlone() -> None:
    """Our float run is 8 off the circuit, the node 8 the other way: 16 apart, yet honest."""
    reexec = FakeReexec([100], [8])
    check = check_output(reexec, INPUT, [92], tau=10)
    assert check.verdict is Verdict.MATCH
    assert reexec.calls["witness"] == 1
    assert check.screen_diff == 16


def test_exactMode_alwaysUsesWitness() -> None:
    reexec = FakeReexec([5, 6], [1, 0])
    assert screen_bound(0) == -1
    assert check_output(reexec, INPUT, [6, 6], tau=0).verdict is Verdict.MISMATCH
    assert check_output(reexec, INPUT, [5, 6], tau=0).verdict is Verdict.MATCH
    assert reexec.calls["screen"] == 0


def test_screenDisabled_alwaysUsesWitness() -> None:
    reexec = FakeReexec([5], [0])
    check_output(reexec, INPUT, [5], tau=4, screen=False)
    assert reexec.calls == {"screen": 0, "witness": 1}


@pytest.mark.parametrize(
    ("input_q", "committed"), [([1, 2], [0, 0]), ([1, 2, 3], [0]), ([1, 2, 3], [0, 0, 0])]
)
def test_malformedLengths_areMismatchWithoutReexecution(
    input_q: list[int], committed: list[int]
) -> None:
    reexec = FakeReexec([0, 0], [0, 0])
    check = check_output(reexec, input_q, committed, tau=3)
    assert check.verdict is Verdict.MISMATCH
    assert reexec.calls == {"screen": 0, "witness": 0}
    assert "no valid proof" in check.reason
