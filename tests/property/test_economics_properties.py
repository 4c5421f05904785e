"""Properties of the honesty condition over the whole parameter space."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spotcheck import economics as econ
from spotcheck import economics_penalty as pen
from spotcheck.economics_checks import CheckTerms, check_game
from spotcheck.errors import ConfigError

costs = st.floats(min_value=1e-3, max_value=1e3)
rewards = st.floats(min_value=0.0, max_value=1e3)
slashes = st.floats(min_value=1e-3, max_value=1e5)
collusions = st.floats(min_value=0.0, max_value=0.99)
cheat_fractions = st.floats(min_value=0.01, max_value=1.0)
values = st.floats(min_value=0.0, max_value=1e4)


@given(costs, rewards, slashes, slashes, collusions)
def test_bound_decreasesAsTheSlashGrows(
    c: float, r_: float, s1: float, s2: float, r: float
) -> None:
    low, high = sorted((s1, s2))

    p_low = econ.min_sampling_probability(c, r_, low, r)
    p_high = econ.min_sampling_probability(c, r_, high, r)

    assert p_high <= p_low
    if high > low * 1.001:
        assert p_high < p_low


@given(costs, rewards, slashes, collusions, collusions)
def test_bound_increasesWithCollusion(c: float, r_: float, s: float, r1: float, r2: float) -> None:
    low, high = sorted((r1, r2))

    p_low = econ.min_sampling_probability(c, r_, s, low)
    p_high = econ.min_sampling_probability(c, r_, s, high)

    assert p_high >= p_low
    if high > low + 1e-3:
        assert p_high > p_low


@given(costs, rewards, slashes, collusions, cheat_fractions, values)
def test_cheaterProfit_flipsSignAtTheBound(
    c: float, r_: float, s: float, r: float, q: float, v: float
) -> None:
    bound = econ.min_sampling_probability(c, r_, s, r, value_at_risk=v)
    assume(bound < 0.99)

    below = econ.cheater_expected_profit(c, r_, s, r, bound * (1 - 1e-6), q, value_at_risk=v)
    above = econ.cheater_expected_profit(c, r_, s, r, bound * (1 + 1e-6), q, value_at_risk=v)

    assert below > 0
    assert above < 0


@given(costs, rewards, slashes, collusions, st.floats(0.0, 1.0), cheat_fractions)
def test_cheaterProfit_isLinearInTheCheatFraction(
    c: float, r_: float, s: float, r: float, p: float, q: float
) -> None:
    full = econ.cheater_expected_profit(c, r_, s, r, p, 1.0)
    part = econ.cheater_expected_profit(c, r_, s, r, p, q)

    assert abs(part - q * full) <= 1e-9 * max(1.0, abs(full))


@given(costs, rewards, slashes, collusions, st.floats(0.0, 1.0), values)
def test_checkSampling_verdictAgreesWithTheSignOfTheProfit(
    c: float, r_: float, s: float, r: float, p: float, v: float
) -> None:
    check = econ.check_sampling(c, r_, s, r, p, value_at_risk=v)
    assume(abs(check.margin - 1) > 1e-9)

    unsafe = check.verdict is econ.Verdict.UNSAFE
    assert unsafe == (check.cheater_profit_per_job > 0)


@settings(max_examples=200)
@given(
    costs,
    rewards,
    slashes,
    collusions,
    values,
    st.floats(1.01, 5.0),
    st.floats(0.01, 1.0),
    st.floats(0.0, econ.MAX_BOUNTY_SHARE),
)
def test_recommend_alwaysMeetsTheSafetyFactorWithinMaxSampling(
    c: float, r_: float, s: float, r: float, v: float, k: float, p_max: float, b: float
) -> None:
    rec = econ.recommend(
        c, r_, s, r, value_at_risk=v, safety_factor=k, max_sampling=p_max, bounty_share=b
    )

    assert rec.sampling <= p_max * (1 + 1e-12)
    assert rec.slash >= s
    assert rec.margin >= k * (1 - 1e-9)
    # The cheater loses money at the recommended parameters, front-running included, on a
    # batch job (its fee is paid off the chain: a caught job forfeits no fee, R = 0).
    slash_kept = econ.effective_slash(rec.slash, b)
    assert econ.cheater_expected_profit(c, 0.0, slash_kept, r, rec.sampling, value_at_risk=v) < 0
    assert rec.cheat_threshold < 0 or rec.cheat_threshold >= v * (1 - 1e-9)


@given(
    st.floats(1e-3, 1e4),
    st.floats(1.0, 1e6),
    st.floats(0.0, 1e6),
    slashes,
    st.integers(1, 4096),
)
def test_stakeForThroughput_backsEveryOpenJob_andGrowsWithEachInput(
    rate: float, window: float, proof: float, s: float, batch: int
) -> None:
    need = econ.stake_for_throughput(rate, window, proof, s, batch_size=batch)

    # Every job open at the steady state is backed by one slash, in whole batches.
    assert need.open_jobs >= rate * (window + proof) * (1 - 1e-9)
    assert need.open_jobs % batch == 0
    assert need.open_jobs - rate * (window + proof) < batch + 1e-9 * need.open_jobs
    assert need.stake == need.open_jobs * s
    # More throughput, a longer window or a larger slash never needs less stake.
    assert econ.stake_for_throughput(2 * rate, window, proof, s, batch_size=batch).stake >= (
        need.stake
    )
    assert econ.stake_for_throughput(rate, 2 * window, proof, s, batch_size=batch).stake >= (
        need.stake
    )
    assert econ.stake_for_throughput(rate, window, proof, 2 * s, batch_size=batch).stake >= (
        need.stake
    )
    # That stake backs at least the throughput it was sized for.
    assert econ.max_throughput(need.stake, window, proof, s) >= rate * (1 - 1e-9)


# --- what the contracts do (spotcheck.economics_penalty) --------------------------------------

amounts = st.floats(min_value=0.0, max_value=1e6)
probabilities = st.floats(min_value=0.0, max_value=1.0)
bounties = st.floats(min_value=0.0, max_value=econ.MAX_BOUNTY_SHARE)


@given(slashes, amounts, amounts)
def test_slashTaken_isTheClamp(s: float, reserved: float, locked: float) -> None:
    taken = pen.slash_taken(s, reserved, locked)

    assert taken == min(s, reserved, locked)
    assert 0 <= taken <= s


@given(st.integers(1, 512), st.data(), slashes, st.none() | amounts)
def test_batchSlashed_neverExceedsTheReservationAndGrowsWithInvalidLeaves(
    n: int, data: st.DataObject, s: float, reservation: float | None
) -> None:
    k = data.draw(st.integers(0, n - 1))
    reserved = n * s if reservation is None else reservation

    now = pen.batch_slashed(n, k, s, reservation)
    more = pen.batch_slashed(n, k + 1, s, reservation)

    assert now <= reserved * (1 + 1e-12) and now <= k * s * (1 + 1e-12)
    assert more >= now
    if reservation is None:  # the contracts' count x S: every leaf loses a full slash
        assert now == pytest.approx(k * s)


@given(costs, probabilities, slashes, bounties, probabilities, rewards, st.booleans(), values)
def test_cheatThreshold_isWhereCheatingOneJobChangesSign(
    c: float, d: float, s: float, b: float, f: float, fee: float, esc: bool, v: float
) -> None:
    loss = pen.caught_loss(s, b, fee=fee, fee_escrowed=esc, self_dispute=f).total
    v_star = pen.cheat_threshold(c, d, loss)
    profit = c + v - d * loss
    scale = c + v + d * loss

    if v > v_star + 1e-9 * scale:
        assert profit > 0
    elif v < v_star - 1e-9 * scale:
        assert profit < 0


@given(costs, probabilities, probabilities, slashes, slashes, bounties, bounties, probabilities)
def test_cheatThreshold_monotone(
    c: float, p1: float, p2: float, s1: float, s2: float, b1: float, b2: float, f: float
) -> None:
    """More sampling or a larger slash never lowers V*; a larger bounty back never raises it."""
    (p_lo, p_hi), (s_lo, s_hi), (b_lo, b_hi) = sorted((p1, p2)), sorted((s1, s2)), sorted((b1, b2))

    def v_star(p: float, s: float, b: float) -> float:
        return pen.cheat_threshold(c, p, pen.caught_loss(s, b, self_dispute=f).total)

    assert v_star(p_hi, s_lo, b_lo) >= v_star(p_lo, s_lo, b_lo)
    assert v_star(p_lo, s_hi, b_lo) >= v_star(p_lo, s_lo, b_lo)
    assert v_star(p_lo, s_lo, b_hi) <= v_star(p_lo, s_lo, b_lo)


@given(costs, st.floats(0.0, 1e3), st.floats(0.0, 1e3), probabilities, slashes, slashes)
def test_selectiveProfit_positiveForAnySpreadOfValues_andFallsWithTheSlash(
    c: float, mu1: float, mu2: float, d: float, s1: float, s2: float
) -> None:
    (mu_lo, mu_hi), (s_lo, s_hi) = sorted((mu1, mu2)), sorted((s1, s2))

    lo = pen.selective_profit_exponential(c, mu_lo, d, s_lo)
    assert lo >= 0
    if mu_lo > 0 and (pen.cheat_threshold(c, d, s_lo) / mu_lo) < 700:  # not underflowed
        assert lo > 0  # choosing always finds a job worth cheating on
    assert pen.selective_profit_exponential(c, mu_hi, d, s_lo) >= lo
    assert pen.selective_profit_exponential(c, mu_lo, d, s_hi) <= lo


@given(st.integers(1, 200), st.integers(1, 200), st.floats(1e-6, 1.0))
def test_raceShare_betweenOneOverNAndOne_fallingWithMoreChallengers(
    n1: int, n2: int, p: float
) -> None:
    lo, hi = sorted((n1, n2))

    assert 1 / hi - 1e-12 <= pen.race_share(hi, p) <= pen.race_share(lo, p) + 1e-12 <= 1 + 1e-12


@given(st.integers(1, 64), probabilities, probabilities, slashes, bounties)
def test_expectedBatchLoss_neverMoreThanUnclamped_andGrowsWithTheCatchRate(
    n: int, q1: float, q2: float, s: float, b: float
) -> None:
    lo, hi = sorted((q1, q2))
    full = pen.expected_batch_loss(n, lo, s, b)

    assert full == pytest.approx(n * lo * s * (1 - b), rel=1e-9, abs=1e-9)
    clamped = pen.expected_batch_loss(n, lo, s, b, reservation=s)
    assert clamped <= full * (1 + 1e-9) + 1e-9
    assert pen.expected_batch_loss(n, hi, s, b) >= full * (1 - 1e-9)


# --- the challenger's side (spotcheck.economics_checks) ----------------------------------------


@given(
    st.floats(0.0, 0.5),
    st.floats(0.0, 1e4),
    st.floats(0.0, 10.0),
    st.floats(0.01, 1.0),
    st.floats(0.0, 1.0),
    st.integers(0, 10),
    st.integers(0, 10),
)
def test_checkGame_diligentMinusLazy_isKTimesLPlusBetaMinusK(
    share: float, collateral: float, rerun: float, p: float, k: float, d: int, z: int
) -> None:
    assume(d + z >= 1)
    t = CheckTerms(
        check_share=share,
        claim_collateral=collateral,
        rerun_cost=rerun,
        sampling=p,
        canary_rate=k,
        diligent=d,
        lazy=z,
    )
    g = check_game(t)

    gap = k * (collateral + g.dispute_income) - rerun
    assert g.diligent - g.lazy == pytest.approx(gap, rel=1e-9, abs=1e-9)
    if abs(gap) > 1e-9:
        assert g.checking_beats_blind == (gap > 0)
    # More canaries or more collateral never help a lazy claimant.
    more = check_game(CheckTerms(**{**t.__dict__, "canary_rate": min(1.0, k + 0.01)}))
    assert more.lazy <= g.lazy + 1e-12
    richer = check_game(CheckTerms(**{**t.__dict__, "claim_collateral": collateral + 1}))
    assert richer.lazy <= g.lazy + 1e-12


# --- recommend sized to a stake ----------------------------------------------------------------


@settings(deadline=None)
@given(
    costs,
    st.floats(0.0, 1e3),
    collusions,
    values,
    bounties,
    st.floats(1.0, 1e8),
    st.integers(1, 1000),
)
def test_recommend_withStake_slashFitsTheStakeAndStillDeters(
    c: float, v: float, r: float, value: float, b: float, stake: float, open_jobs: int
) -> None:
    try:
        rec = econ.recommend(
            c, v, 100.0, r, value_at_risk=value, bounty_share=b, stake=stake, open_jobs=open_jobs
        )
    except ConfigError as err:
        assert "needs a stake of at least" in str(err)
        return

    assert rec.slash * open_jobs <= stake * (1 + 1e-12)  # each open job reserves one slash
    assert rec.sampling <= 1.0
    assert rec.margin >= 2.0 * (1 - 1e-9)
    assert rec.cheat_threshold >= value * (1 - 1e-9) - 1e-9
