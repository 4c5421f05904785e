"""The demo's paid-checks section (issue 15): the canary's schedule, what makes the run fail,
and what the report claims (it never claims a result the run did not show)."""

from __future__ import annotations

from demo.paid_checks import is_canary_cheat
from demo.report import ClaimantReport, PaidChecksReport
from spotcheck.chain import TOKEN

COLLATERAL = 10 * TOKEN


def _report(lazy: ClaimantReport, diligent: ClaimantReport | None = None) -> PaidChecksReport:
    d = diligent or ClaimantReport(
        "diligent (the challenger)", "0xd", sampled=10, claims=6, collected=6, rewards=3 * TOKEN
    )
    return PaidChecksReport(
        check_share_bps=5000,
        sampling_bps=5000,
        collateral=COLLATERAL,
        fee=TOKEN + TOKEN // 4,
        diligent=d,
        lazy=lazy,
        canary_address="0xc",
        canary_jobs=12,
        canary_cheats=8,
        canary_every=3,
        canary_invalid=8,
        canary_final=4,
        canary_disputed_by_challenger=4,
        canary_disputed_by_operator=4,
        canary_slashed=800 * TOKEN,
        canary_cost=700 * TOKEN,
        miss_chance=0.5**8,
    )


def _lazy(canary_claims: int, canary_forfeited: int, rewards: int = 2 * TOKEN) -> ClaimantReport:
    return ClaimantReport(
        "lazy claimant",
        "0xz",
        sampled=10,
        claims=10,
        collected=10 - canary_forfeited,
        rewards=rewards,
        forfeited=canary_forfeited,
        collateral_lost=canary_forfeited * COLLATERAL,
        canary_claims=canary_claims,
        canary_forfeited=canary_forfeited,
    )


def test_canarySchedule_twoInThreeWrong_knownInAdvance() -> None:
    assert [is_canary_cheat(i, 3) for i in range(6)] == [True, True, False] * 2
    assert sum(is_canary_cheat(i, 3) for i in range(12)) == 8


def test_lazyMetCanaries_allForfeited_reportSaysItLoses_andRunPasses() -> None:
    r = _report(_lazy(canary_claims=3, canary_forfeited=3))
    assert r.failures() == []
    assert r.lazy.net == 2 * TOKEN - 3 * COLLATERAL < 0
    text = "\n".join(r.render())
    assert "the lazy claimant claimed 3 of the canary's wrong jobs: 3 forfeited" in text
    assert "(LOSES)" in text and "(EARNS)" in text


def test_lazyMetNoCanary_reportSaysTheRunShowsNothing_insteadOfAResult() -> None:
    r = _report(_lazy(canary_claims=0, canary_forfeited=0))
    text = "\n".join(r.render())
    assert "this run shows nothing about laziness" in text and "LOSES" not in text
    assert "chance 0.4%" in text


def test_lazyCanaryClaimNotForfeited_failsTheRun() -> None:
    failures = _report(_lazy(canary_claims=3, canary_forfeited=2)).failures()
    assert any("2 of the lazy claimant's 3 claims" in f for f in failures)


def test_diligentClaimForfeitedOrUncollected_failsTheRun() -> None:
    diligent = ClaimantReport(
        "diligent",
        "0xd",
        sampled=10,
        claims=6,
        collected=5,
        forfeited=1,
        collateral_lost=COLLATERAL,
    )
    failures = _report(_lazy(3, 3), diligent).failures()
    assert any("lost 1 claim(s) to forfeits" in f for f in failures)
    assert any("collected 5 of 6 claims" in f for f in failures)
    assert "does not earn" in "\n".join(_report(_lazy(3, 3), diligent).render())


def test_diligentClaimedNothing_reportSaysTheRunShowsNothing_notThatItEarns() -> None:
    idle = ClaimantReport("diligent", "0xd", sampled=3)
    text = "\n".join(_report(_lazy(3, 3), idle).render())
    assert "shows nothing about what diligence earns" in text and "EARNS" not in text
