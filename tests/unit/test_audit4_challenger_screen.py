"""Audit 4 (the challenger's check before a paid claim): the onnxruntime screen, safe while a
MATCH only skipped a dispute, now puts collateral behind outputs that no proof can back.

``tau`` is ``max(sound bound, worst deviation found) + slack`` (verifier/tolerance.py): the
onnxruntime-vs-circuit deviation ``d`` of an honest run is allowed up to about ``tau``, not
``tau / 2``. The screen calls a committed output MATCH when it is within ``tau // 2`` of
onnxruntime, so with ``d > tau - tau // 2`` an output up to ``tau // 2 + d > tau`` from the
circuit passes; the service then moves the job to ``matched`` and the claimer claims it
(challenger/service.py ``check`` -> ``JobState.MATCHED`` -> ``Claimer.plan``). Any challenger
using the witness (or a canary operator who builds such an output on purpose) disputes it, the
node cannot prove it, and the claim is forfeited: a challenger that checked by the service's
rule loses its collateral.

FIXED since 1a2a066 (the onnxruntime screen is off by default): the test asserts the safe
behaviour (no xfail marker any more)."""

from __future__ import annotations

from collections.abc import Sequence

from challenger.service import Options
from challenger.verdict import Verdict, check_output

TAU = 10


class Reexec:
    """One-element model: onnxruntime says 0, the circuit says 8 (d = 8 <= tau - slack)."""

    input_len = 1
    output_len = 1

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        return [0]

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        return [8]


def test_audit4_screenMatch_outputNoProofCanBack_isNotClaimedAsCorrect() -> None:
    committed = [-5]  # |c - onnxruntime| = 5 = tau // 2 ; |c - circuit| = 13 > tau
    assert abs(committed[0] - 8) > TAU  # DisputeManager.defend cannot succeed: the dispute wins
    check = check_output(Reexec(), [1], committed, TAU, screen=Options().screen)
    # SAFE: a job the contract will rule invalid is never judged correct (hence never claimed).
    assert check.verdict is not Verdict.MATCH, f"judged {check.verdict.value}: {check.reason}"
