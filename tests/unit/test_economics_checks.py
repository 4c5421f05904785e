"""The challenger's side: paid checks, canaries, and a lazy claimant losing to a diligent one."""

from __future__ import annotations

import dataclasses

import pytest

from spotcheck import simulation as sim
from spotcheck.economics_checks import CHECK_DEFAULTS, CheckTerms, check_game, min_leaf_fee
from spotcheck.economics_penalty import race_share
from spotcheck.errors import ConfigError


def test_checkGame_defaults_closedFormsByHand() -> None:
    t = CHECK_DEFAULTS
    g = check_game(t)
    h4 = (1 - 0.95**4) / (4 * 0.05)
    h3 = (1 - 0.95**3) / (3 * 0.05)

    assert g.check_reward == pytest.approx(0.5 * 1.25)  # checkShareBps 5000 of the fee
    assert g.claim_reward == pytest.approx(0.625 * h4)
    assert g.dispute_income == pytest.approx(0.25 * 100 * h3)  # forfeits are burned
    w, beta = g.claim_reward, g.dispute_income
    assert g.diligent == pytest.approx(0.95 * (w - 0.01) + 0.05 * (beta - 0.01) - 1.0)
    assert g.lazy == pytest.approx(0.95 * (w - 0.01) - 0.05 * (50 + 0.01))
    assert g.diligent > 0 > g.lazy


def test_checkGame_defaults_checkRewardAloneDoesNotPayForAReRun() -> None:
    g = check_game()

    # W <= R / 2 = 0.625 < K = 1: the canaries' disputes pay the diligent checkers.
    assert not g.checks_pay_alone


def test_checkingBeatsBlind_flipsExactlyAtKEqualsKTimesLPlusBeta() -> None:
    g = check_game()
    edge = CHECK_DEFAULTS.canary_rate * (CHECK_DEFAULTS.claim_collateral + g.dispute_income)

    below = check_game(dataclasses.replace(CHECK_DEFAULTS, rerun_cost=edge * 0.99))
    above = check_game(dataclasses.replace(CHECK_DEFAULTS, rerun_cost=edge * 1.01))

    assert below.checking_beats_blind and below.diligent > below.lazy
    assert not above.checking_beats_blind and above.diligent < above.lazy


def test_minCanaryRate_lazyBreaksEvenThere() -> None:
    g = check_game()
    k = g.min_canary_rate

    at = check_game(dataclasses.replace(CHECK_DEFAULTS, canary_rate=k))

    assert at.lazy == pytest.approx(0.0, abs=1e-12)
    assert check_game(dataclasses.replace(CHECK_DEFAULTS, canary_rate=k * 1.1)).lazy < 0
    assert check_game(dataclasses.replace(CHECK_DEFAULTS, canary_rate=k * 0.9)).lazy > 0


def test_noCanaries_lazyClaimingBeatsChecking() -> None:
    """Without canaries (or cheats), a claim never forfeits: re-running is pure cost."""
    g = check_game(dataclasses.replace(CHECK_DEFAULTS, canary_rate=0.0))

    assert g.lazy > g.diligent
    assert not g.checking_beats_blind


def test_canaryCost_isTheSlashWhenCheckersDisputeFirst() -> None:
    t = dataclasses.replace(CHECK_DEFAULTS, sampling=1.0)

    assert check_game(t).canary_cost == pytest.approx(t.slash - t.rerun_cost)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"check_share": 0.6}, "check share must be >= 0 and <= 0.5"),
        ({"sampling": 0.0}, "sampling probability p must be > 0"),
        ({"diligent": 0, "lazy": 0}, "needs at least one challenger"),
        ({"lazy": -1}, "lazy claimants must be a whole number >= 0"),
        ({"claim_collateral": float("nan")}, "claim collateral L must be >= 0"),
    ],
)
def test_checkTerms_invalid_raisesConfigError(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CheckTerms(**kwargs)  # type: ignore[arg-type]


def test_raceShare_isWhatTheClaimRewardUses() -> None:
    t = dataclasses.replace(CHECK_DEFAULTS, diligent=5, lazy=2, sampling=0.2)

    assert check_game(t).claim_reward == pytest.approx(0.625 * race_share(7, 0.2))


# --- the simulated run with a canary: the lazy claimant loses, the diligent one earns ---------


def test_simulateChecks_withACanary_lazyLosesAndDiligentEarns_manySigmasFromZero() -> None:
    res = sim.simulate_checks(CHECK_DEFAULTS, n_jobs=2_000_000, seed=20261202)

    # Fixed seed AND a margin: each mean is more than 20 standard errors from zero (measured:
    # ~43 and ~56), so a correct simulator with another seed would not flip either sign.
    assert res.diligent.mean > 0 and res.diligent.sigmas_from_zero > 20, res.diligent
    assert res.lazy.mean < 0 and res.lazy.sigmas_from_zero > 20, res.lazy
    low, _ = res.diligent.ci
    _, high = res.lazy.ci
    assert low > 0 > high
    assert res.lazy_forfeits > 1000  # the lazy claimant really claimed canaries
    assert 0 < res.canaries_disputed_by_checkers < res.canaries


@pytest.mark.parametrize(
    "terms",
    [
        CHECK_DEFAULTS,
        dataclasses.replace(CHECK_DEFAULTS, diligent=1, lazy=3, sampling=0.3, canary_rate=0.1),
        dataclasses.replace(CHECK_DEFAULTS, diligent=0, lazy=2, sampling=0.5),
        dataclasses.replace(CHECK_DEFAULTS, diligent=4, lazy=0, canary_rate=0.0, sampling=0.5),
    ],
)
def test_simulateChecks_agreesWithTheClosedForms(terms: CheckTerms) -> None:
    res = sim.simulate_checks(terms, n_jobs=400_000, seed=3, confidence=1 - 1e-6)

    for est in (res.diligent, res.lazy):
        if est.mean == est.mean:  # not NaN: that kind of challenger exists
            assert est.agrees, est


def test_lazyLate_skippingDisputedJobs_meetsFewerCanariesButStillLosesAtTheDefaults() -> None:
    g = check_game()
    t = CHECK_DEFAULTS
    met = t.canary_rate * (1 - t.sampling) ** t.diligent

    assert g.lazy_late == pytest.approx(
        (1 - t.canary_rate) * (g.claim_reward - t.tx_gas) - met * (t.claim_collateral + t.tx_gas)
    )
    assert g.lazy < g.lazy_late < 0  # the dodge helps a little: 3 checkers rarely overlap


# ---------------------------------------------------------------- batch leaves


def test_leafGame_closedFormsByHand() -> None:
    t = dataclasses.replace(CHECK_DEFAULTS, leaf_fee=2.0)
    g = check_game(t)
    h4 = (1 - 0.95**4) / (4 * 0.05)
    w = 2.0 * h4
    beta = g.dispute_income
    assert g.leaf_claim_reward == pytest.approx(w)
    assert g.leaf_diligent == pytest.approx(0.95 * (w - 0.01) + 0.05 * (beta - 0.01) - 1.0)
    assert g.leaf_lazy == pytest.approx(0.95 * (w - 0.01) - 0.05 * (50 + 0.01))
    assert g.leaf_min_canary_rate == pytest.approx((w - 0.01) / (w + 50))
    # an honest node pays F on a leaf iff somebody claimed it (the rest comes back)
    assert g.node_leaf_cost == pytest.approx(2.0 * (1 - 0.95**4))


@pytest.mark.parametrize("k", [0.0, 0.01, 0.02])
def test_minLeafFee_isTheBreakEvenOfADiligentChallenger(k: float) -> None:
    t = dataclasses.replace(CHECK_DEFAULTS, canary_rate=k)
    f = min_leaf_fee(t)
    assert f > 0
    assert check_game(dataclasses.replace(t, leaf_fee=f)).leaf_diligent == pytest.approx(
        0, abs=1e-9
    )
    assert check_game(dataclasses.replace(t, leaf_fee=f * 0.9)).leaf_diligent < 0
    assert check_game(dataclasses.replace(t, leaf_fee=f * 1.1)).leaf_diligent > 0


def test_minLeafFee_canaryIncomeAlonePays_zero_allCanaries_inf() -> None:
    assert min_leaf_fee(CHECK_DEFAULTS) == 0.0  # k = 5 %: disputes of canaries pay the re-runs
    assert min_leaf_fee(dataclasses.replace(CHECK_DEFAULTS, canary_rate=1.0, slash=0.0)) == float(
        "inf"
    )


def test_leafFee_negative_refused() -> None:
    with pytest.raises(ConfigError, match="leaf check fee F"):
        CheckTerms(leaf_fee=-1.0)
