"""Decide whether a committed output is wrong: the rule the contract will apply, nothing looser.

A dispute is won iff the node cannot prove its committed output, i.e. iff some element of the
committed output is more than ``tau`` away from the *circuit's* output for the job's input
(``DisputeManager.defend`` checks exactly that). So the challenger disputes only on that
condition, computed with the circuit witness (ezkl ``gen_witness``): an honest node is never
disputed and an honest challenger never loses its bond.

The witness costs milliseconds, onnxruntime microseconds, so onnxruntime screens first:

1. ``tau == 0`` (exact mode): no screen. Honest nodes commit the circuit's output, which a
   float run need not reproduce; the witness decides.
2. Screen: if every committed element is within ``tau // 2`` of this challenger's quantized
   onnxruntime output, the job is a MATCH without the witness.
3. Otherwise the witness decides: within ``tau`` of it is a MATCH (the float runs merely
   differed), outside is a MISMATCH, and only a MISMATCH is disputed.

The screen can only skip disputes, never create one. What it may skip: a cheat that moved an
element by at most ``tau // 2 + d`` where ``d`` is this machine's onnxruntime-vs-circuit
deviation on that input (registration makes ``d`` well under ``tau``), i.e. a cheat barely
larger than the ``tau`` that is unpunishable by design. Operators who want none of that set
``screen=False``.

Malformed commitments (a batch leaf whose input or output has the wrong length) cannot be
proven by anyone, so they are a MISMATCH without re-execution.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from spotcheck.encoding import max_abs_diff


class Verdict(enum.Enum):
    MATCH = "match"
    MISMATCH = "mismatch"


class Reexecutor(Protocol):
    """Re-runs one model: a cheap float run and the circuit's own output, both quantized."""

    @property
    def input_len(self) -> int: ...

    @property
    def output_len(self) -> int: ...

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        """Quantized onnxruntime output for ``input_q``."""
        ...

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        """The circuit's output (ezkl witness) for ``input_q``."""
        ...


@dataclass(frozen=True)
class Check:
    """The outcome of re-executing one job."""

    verdict: Verdict
    reason: str
    screen_diff: int | None = None  # max |committed - onnxruntime|, if computed
    witness_diff: int | None = None  # max |committed - witness|, if computed

    @property
    def disputable(self) -> bool:
        return self.verdict is Verdict.MISMATCH


def screen_bound(tau: int) -> int:
    """Largest screen deviation accepted as a MATCH without the witness (-1: no screen)."""
    return tau // 2 if tau > 0 else -1


def check_output(
    reexec: Reexecutor,
    input_q: Sequence[int],
    committed: Sequence[int],
    tau: int,
    *,
    screen: bool = True,
) -> Check:
    """Re-execute ``input_q`` and judge ``committed`` by the contract's rule (see module doc)."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if len(input_q) != reexec.input_len:
        return Check(
            Verdict.MISMATCH,
            f"input has {len(input_q)} elements, model takes "
            f"{reexec.input_len}: no valid proof exists",
        )
    if len(committed) != reexec.output_len:
        return Check(
            Verdict.MISMATCH,
            f"output has {len(committed)} elements, model gives "
            f"{reexec.output_len}: no valid proof exists",
        )
    screen_diff: int | None = None
    bound = screen_bound(tau)
    if screen and bound >= 0:
        screen_diff = max_abs_diff(committed, reexec.screen_output(input_q))
        if screen_diff <= bound:
            return Check(Verdict.MATCH, f"screen: within {bound} of onnxruntime", screen_diff)
    witness_diff = max_abs_diff(committed, reexec.witness_output(input_q))
    if witness_diff <= tau:
        return Check(Verdict.MATCH, f"within tau={tau} of the circuit", screen_diff, witness_diff)
    return Check(
        Verdict.MISMATCH,
        f"{witness_diff} from the circuit output, tau={tau}",
        screen_diff,
        witness_diff,
    )
