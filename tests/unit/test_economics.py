"""The honesty condition: worked example, closed form, checks, recommendations, defaults."""

from __future__ import annotations

import math

import pytest

from spotcheck import economics as econ
from spotcheck.chain import TOKEN, DeployParams, ModelParams
from spotcheck.economics import DEFAULTS, Verdict
from spotcheck.errors import ConfigError

# The worked example of DESIGN.md ("Economics"): C = 1, R = 1.25, S = 100, r = 0.1 -> p > 1.10 %.
EXAMPLE = (1.0, 1.25, 100.0, 0.1)


def test_minSamplingProbability_workedExample_is1Point10Percent() -> None:
    p_min = econ.min_sampling_probability(*EXAMPLE)

    assert p_min == pytest.approx(1 / (0.9 * 101.25), rel=1e-15)
    assert p_min == pytest.approx(0.010974, abs=5e-7)
    assert f"{p_min:.2%}" == "1.10%"


def test_cheaterProfit_workedExample_flipsSignAtTheBound() -> None:
    p_min = econ.min_sampling_probability(*EXAMPLE)

    assert econ.cheater_expected_profit(*EXAMPLE, p_min * 0.99) > 0
    assert econ.cheater_expected_profit(*EXAMPLE, p_min) == pytest.approx(0.0, abs=1e-12)
    assert econ.cheater_expected_profit(*EXAMPLE, p_min * 1.01) < 0


def test_cheaterProfit_matchesTheWordedModel() -> None:
    # Skip inference on q of the jobs: save C each; sampled by an honest challenger with
    # probability p (1 - r): lose R + S.
    q, p = 0.3, 0.02
    c, r_, s, r = EXAMPLE
    expected = q * c - q * p * (1 - r) * (r_ + s)

    assert econ.cheater_expected_profit(*EXAMPLE, p, q) == pytest.approx(expected)
    assert econ.node_expected_income(*EXAMPLE, p, q) == pytest.approx(r_ - c + expected)
    assert econ.honest_profit_per_job(c, r_) == pytest.approx(0.25)


def test_cheaterProfit_honestStrategy_isZero() -> None:
    assert econ.cheater_expected_profit(*EXAMPLE, 0.001, 0.0) == 0.0


def test_minSamplingProbability_valueAtRisk_addsToTheGain() -> None:
    with_value = econ.min_sampling_probability(*EXAMPLE, value_at_risk=9.0)

    assert with_value == pytest.approx(10 * econ.min_sampling_probability(*EXAMPLE))


def test_minSamplingProbability_canExceedOne_whenSlashTooSmall() -> None:
    assert econ.min_sampling_probability(10.0, 0.0, 1.0, 0.5) == pytest.approx(20.0)


def test_detectionProbability_isSamplingTimesHonestShare() -> None:
    assert econ.detection_probability(0.05, 0.3) == pytest.approx(0.035)


def test_effectiveSlash_frontRunningKeepsTheBountyShare() -> None:
    assert econ.effective_slash(100.0, 0.25) == pytest.approx(75.0)
    assert econ.effective_slash(100.0, 0.0) == 100.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 1.25, 100.0, 0.1), "cost of inference C must be > 0"),
        ((-1.0, 1.25, 100.0, 0.1), "cost of inference C must be > 0"),
        ((1.0, -0.5, 100.0, 0.1), "reward R must be >= 0"),
        ((1.0, 1.25, 0.0, 0.1), "slash S must be > 0"),
        ((1.0, 1.25, 100.0, 1.0), r"collusion fraction r must be in \[0, 1\)"),
        ((1.0, 1.25, 100.0, -0.1), r"collusion fraction r must be in \[0, 1\)"),
        ((math.nan, 1.25, 100.0, 0.1), "cost of inference C must be finite"),
        ((1.0, math.inf, 100.0, 0.1), "reward R must be finite"),
        ((1.0, 1.25, True, 0.1), "slash S must be a number"),
    ],
)
def test_minSamplingProbability_invalidInput_raisesOneLineConfigError(
    args: tuple[float, float, float, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        econ.min_sampling_probability(*args)

    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_minSamplingProbability_zeroRewardAndZeroCollusion_areAllowed() -> None:
    assert econ.min_sampling_probability(1.0, 0.0, 50.0, 0.0) == pytest.approx(0.02)


@pytest.mark.parametrize("p", [-0.01, 1.01, math.nan])
def test_cheaterProfit_samplingOutsideUnitInterval_raises(p: float) -> None:
    with pytest.raises(ConfigError, match="sampling probability p"):
        econ.cheater_expected_profit(*EXAMPLE, p)


def test_cheaterProfit_cheatFractionAboveOne_raises() -> None:
    with pytest.raises(ConfigError, match="cheat fraction q must be in"):
        econ.cheater_expected_profit(*EXAMPLE, 0.05, 1.5)


@pytest.mark.parametrize(
    ("p", "verdict"),
    [(0.005, Verdict.UNSAFE), (0.015, Verdict.THIN), (0.05, Verdict.SAFE)],
)
def test_checkSampling_workedExample_verdicts(p: float, verdict: Verdict) -> None:
    check = econ.check_sampling(*EXAMPLE, p)

    assert check.verdict is verdict
    assert check.margin == pytest.approx(p * 0.9 * 101.25)
    assert (check.cheater_profit_per_job < 0) == (verdict is not Verdict.UNSAFE)


def test_checkSampling_exactlyAtTheBound_isUnsafe() -> None:
    p_min = econ.min_sampling_probability(*EXAMPLE)

    assert econ.check_sampling(*EXAMPLE, p_min).verdict is Verdict.UNSAFE


def test_checkSampling_safetyFactorBelowOne_raises() -> None:
    with pytest.raises(ConfigError, match="safety factor must be >= 1"):
        econ.check_sampling(*EXAMPLE, 0.05, safety_factor=0.5)


# --- recommendations ---------------------------------------------------------------------------


def test_recommend_workedExample_pIsTwiceTheBoundRoundedUp() -> None:
    # An on-chain job: its escrowed fee is refunded when invalid, so the bound counts R.
    rec = econ.recommend(*EXAMPLE, bounty_share=0.0, fee_escrowed=True)

    assert rec.minimum_sampling == pytest.approx(econ.min_sampling_probability(*EXAMPLE))
    assert rec.sampling == pytest.approx(0.022)  # 2 x 1.0974 % = 2.195 % -> 2.2 %
    assert rec.margin >= 2.0
    assert rec.slash == 100.0
    assert not rec.slash_raised


def test_recommend_bountyShare_evaluatesTheBoundWithTheSlashAFrontRunnerKeeps() -> None:
    rec = econ.recommend(*EXAMPLE, bounty_share=0.5, fee_escrowed=True)

    assert rec.minimum_sampling == pytest.approx(econ.min_sampling_probability(1, 1.25, 50, 0.1))
    assert rec.margin >= 2.0
    assert any("front-runs" in note for note in rec.notes)


def test_recommend_valueAtRisk_raisesTheSlashToDeterTheValue() -> None:
    rec = econ.recommend(
        *EXAMPLE, value_at_risk=1000.0, bounty_share=0.0, max_sampling=0.1, fee_escrowed=True
    )

    assert rec.slash_raised
    assert rec.sampling == pytest.approx(0.1)

    def profit_at_half_p(slash: float) -> float:
        return econ.cheater_expected_profit(
            1.0, 1.25, slash, 0.1, rec.sampling / 2, value_at_risk=1000.0
        )

    # The raised slash deters a gain of C + V with margin 2 at p = 10 % (still at p = 5 %) ...
    assert profit_at_half_p(rec.slash) <= 1e-9
    # ... and is the smallest whole-token slash that does.
    assert profit_at_half_p(rec.slash - 1) > 0
    assert rec.slash > 1000.0  # sized to the value moved, not to the compute cost
    assert any("sized to that value" in note for note in rec.notes)


def test_recommend_valueAtRisk_belowMaxSampling_keepsSlashAndRaisesP() -> None:
    plain = econ.recommend(*EXAMPLE, bounty_share=0.0, fee_escrowed=True)
    risky = econ.recommend(*EXAMPLE, bounty_share=0.0, value_at_risk=1.0, fee_escrowed=True)

    assert not risky.slash_raised
    assert risky.sampling == pytest.approx(2 * plain.sampling, rel=0.05)
    assert risky.margin >= 2.0


def test_recommend_challengerBond_coversProvingCostWithMargin() -> None:
    rec = econ.recommend(*EXAMPLE, proving_cost=7.0, bond_factor=1.5)

    assert rec.challenger_bond == 11.0  # ceil(1.5 x 7)
    assert rec.challenger_bond >= 7.0


def test_recommend_windows_unbondingOutlastsChallengePlusProof() -> None:
    rec = econ.recommend(*EXAMPLE, detection_latency_s=10, proving_time_s=60, window_factor=3)

    assert rec.challenge_window_s == 30
    assert rec.proof_window_s == 180
    assert rec.unbonding_delay_s > rec.challenge_window_s + rec.proof_window_s
    assert rec.stake_per_open_job == rec.slash


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value_at_risk": -1.0}, "value at risk V must be >= 0"),
        ({"safety_factor": 1.0}, "safety factor must be > 1"),
        ({"max_sampling": 0.0}, "max sampling must be > 0"),
        ({"bounty_share": 1.0}, r"bounty share b must be <= 0.5 \(bountyBps <= 5000\)"),
        ({"bounty_share": 0.51}, r"bounty share b must be <= 0.5"),
        ({"bounty_share": -0.1}, r"bounty share b must be in \[0, 1\]"),
        ({"proving_cost": 0.0}, "proving cost must be > 0"),
        ({"bond_factor": 0.5}, "bond factor must be >= 1"),
        ({"window_factor": 0.5}, "window factor must be >= 1"),
        ({"detection_latency_s": 0.0}, "detection latency must be > 0"),
    ],
)
def test_recommend_invalidInput_raisesConfigError(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        econ.recommend(*EXAMPLE, **kwargs)  # type: ignore[arg-type]


# --- protocol defaults -------------------------------------------------------------------------


def test_defaults_satisfyTheBoundWithMarginAtLeastTwo() -> None:
    check = econ.check_sampling(
        DEFAULTS.cost, DEFAULTS.reward, DEFAULTS.slash, DEFAULTS.collusion, DEFAULTS.sampling
    )

    assert check.margin >= 2.0
    assert check.verdict is Verdict.SAFE


def test_defaults_satisfyTheBoundWithMarginAtLeastTwo_evenWhenTheCheaterFrontRuns() -> None:
    slash = econ.effective_slash(DEFAULTS.slash, DEFAULTS.bounty_share)
    check = econ.check_sampling(
        DEFAULTS.cost, DEFAULTS.reward, slash, DEFAULTS.collusion, DEFAULTS.sampling
    )

    assert check.margin >= 2.0


@pytest.mark.parametrize("collusion", [0.0, 0.1, 0.2, 0.3])
def test_defaults_withstandCollusionUpToThirtyPercent(collusion: float) -> None:
    check = econ.check_sampling(
        DEFAULTS.cost, DEFAULTS.reward, DEFAULTS.slash, collusion, DEFAULTS.sampling
    )

    assert check.margin >= 2.0


def test_contractRegistrationDefaults_satisfyTheBoundWithMarginAtLeastTwo() -> None:
    # What `spotcheck.chain` registers models with, read back in tokens.
    params = ModelParams(input_len=1, output_len=1, input_scale=0, output_scale=0, tau=0)
    slash = params.slash_amount / TOKEN
    slash_kept = econ.effective_slash(slash, params.bounty_bps / 10_000)

    for collusion in (0.0, 0.1, 0.3):
        check = econ.check_sampling(
            DEFAULTS.cost, DEFAULTS.reward, slash_kept, collusion, DEFAULTS.sampling
        )
        assert check.margin >= 2.0, collusion
    assert params.challenger_bond / TOKEN >= DEFAULTS.proving_cost


def test_contractRegistrationDefaults_windowsAtLeastTheRecommendedOnes() -> None:
    params = ModelParams(input_len=1, output_len=1, input_scale=0, output_scale=0, tau=0)
    rec = econ.recommend()

    assert params.challenge_window >= rec.challenge_window_s
    assert params.proof_window >= rec.proof_window_s
    assert DeployParams().unbonding_delay >= rec.unbonding_delay_s
    assert DeployParams().unbonding_delay > params.challenge_window + params.proof_window


def test_defaults_challengerBondCoversProvingCostAndIsWhatRecommendGives() -> None:
    rec = econ.recommend()

    assert DEFAULTS.challenger_bond >= DEFAULTS.proving_cost
    assert rec.challenger_bond == DEFAULTS.challenger_bond
    assert rec.sampling <= DEFAULTS.sampling  # the default p is at least the recommended one


def test_protocolDefaults_invalidValue_raises() -> None:
    with pytest.raises(ConfigError, match="collusion fraction r"):
        econ.ProtocolDefaults(collusion=1.5)


def test_protocolDefaults_bountyShareAboveTheContractCap_raises() -> None:
    """``ModelRegistry`` refuses bountyBps > 5000: a default above it could not register."""
    with pytest.raises(ConfigError, match=r"bountyBps <= 5000"):
        econ.ProtocolDefaults(bounty_share=0.6)
    assert econ.ProtocolDefaults(bounty_share=0.5).bounty_bps == 5000
    assert DEFAULTS.bounty_share <= econ.MAX_BOUNTY_SHARE


# --- stake: every open commitment is fully backed ------------------------------------------


def test_stakeForThroughput_isJobsPerSecondTimesOpenTimeTimesSlash() -> None:
    need = econ.stake_for_throughput(10, 600, 600, 100)

    assert need.open_time_s == 1200
    assert need.open_jobs == 12_000
    assert need.stake == 1_200_000  # 10 jobs/s x 1200 s x 100


def test_stakeForThroughput_fractionalOpenJobs_roundUp_withoutFloatNoise() -> None:
    assert econ.stake_for_throughput(0.1, 700, 300, 100).open_jobs == 100  # not 101
    assert econ.stake_for_throughput(0.001, 100, 0, 100).open_jobs == 1  # 0.1 job -> one
    assert econ.stake_for_throughput(0.001, 100, 0, 100).stake == 100


def test_stakeForThroughput_batches_reserveWholeBatches() -> None:
    """A batch reserves ``count x slash`` at its commit: the open work comes in whole batches."""
    single = econ.stake_for_throughput(10, 600, 600, 100)
    batched = econ.stake_for_throughput(10, 600, 600, 100, batch_size=64)

    assert batched.open_jobs == 188 * 64  # ceil(12,000 / 64) batches
    assert batched.open_jobs >= single.open_jobs
    assert batched.stake == batched.open_jobs * 100
    assert econ.stake_for_throughput(10, 600, 600, 100, batch_size=12_000).open_jobs == 12_000


def test_maxThroughput_invertsStakeForThroughput() -> None:
    need = econ.stake_for_throughput(7.5, 120, 480, 100)

    assert econ.max_throughput(need.stake, 120, 480, 100) == pytest.approx(7.5)
    assert econ.max_throughput(0, 120, 480, 100) == 0


def test_recommendation_stakeFor_usesItsWindowsAndSlash() -> None:
    rec = econ.recommend()
    need = rec.stake_for(5)

    assert need.open_time_s == rec.challenge_window_s + rec.proof_window_s
    assert need.stake == pytest.approx(
        5 * (rec.challenge_window_s + rec.proof_window_s) * rec.slash
    )
    assert any("challenge window + proof window" in note for note in rec.notes)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 600, 600, 100), {}, r"throughput \(jobs/s\) must be > 0"),
        ((1, 0, 600, 100), {}, "challenge window must be > 0"),
        ((1, 600, -1, 100), {}, "proof time must be >= 0"),
        ((1, 600, 600, 0), {}, "slash S must be > 0"),
        ((1, 600, 600, 100), {"batch_size": 0}, "batch size must be a whole number >= 1"),
    ],
)
def test_stakeForThroughput_invalidInput_raisesConfigError(
    args: tuple[float, ...], kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        econ.stake_for_throughput(*args, **kwargs)
