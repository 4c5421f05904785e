"""Properties of the honesty condition over the whole parameter space."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spotcheck import economics as econ

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
