"""What a caught job costs under the contracts, the cheat threshold, and the contract simulation."""

from __future__ import annotations

import math

import pytest

from spotcheck import economics as econ
from spotcheck import economics_penalty as pen
from spotcheck import simulation as sim
from spotcheck.economics import DEFAULTS, Verdict
from spotcheck.errors import ConfigError

D_DEFAULT = econ.detection_probability(DEFAULTS.sampling, DEFAULTS.collusion)  # 0.05 x 0.7


# --- the clamp ---------------------------------------------------------------------------------


def test_slashTaken_isTheSmallestOfSlashReservationAndLockedStake() -> None:
    assert pen.slash_taken(100, 6400, 10_000) == 100
    assert pen.slash_taken(100, 30, 10_000) == 30  # onBatchLeafInvalidated: min(S, reserved)
    assert pen.slash_taken(100, 6400, 20) == 20  # StakeManager.slash: min(amount, locked)


def test_batchSlashed_contractReservation_everyInvalidLeafLosesAFullSlash() -> None:
    # commitBatch reserves count x S: the clamp never bites, even with every leaf invalid.
    assert pen.batch_slashed(64, 0, 100) == 0
    assert pen.batch_slashed(64, 3, 100) == 300
    assert pen.batch_slashed(64, 64, 100) == 6400


def test_batchSlashed_smallerReservation_neverTakesMoreThanReserved() -> None:
    assert pen.batch_slashed(64, 3, 100, reservation=250) == 250
    assert pen.batch_slashed(64, 2, 100, reservation=250) == 200


def test_batchSlashed_moreInvalidLeavesThanTheBatch_raises() -> None:
    with pytest.raises(ConfigError, match="invalid leaves must be <= batch size 4, got 5"):
        pen.batch_slashed(4, 5, 100)


# --- the caught loss ---------------------------------------------------------------------------


def test_caughtLoss_batchJobWithSelfDispute_isTheBurnedPartOnly() -> None:
    loss = pen.caught_loss(100, 0.25, fee=1.25, fee_escrowed=False, self_dispute=1.0)

    assert (loss.slash, loss.bounty_back, loss.fee_lost) == (100, 25, 0)
    assert loss.total == loss.burned == 75


def test_caughtLoss_onchainJob_alsoLosesTheEscrowedFee() -> None:
    loss = pen.caught_loss(100, 0.25, fee=1.25, fee_escrowed=True, self_dispute=1.0)

    assert loss.total == pytest.approx(76.25)


def test_caughtLoss_noSelfDispute_losesTheWholeSlash() -> None:
    assert pen.caught_loss(100, 0.25, self_dispute=0.0).total == 100
    assert pen.caught_loss(100, 0.25, self_dispute=0.5).total == pytest.approx(87.5)


def test_caughtLoss_bountyAboveTheRegistryCap_raises() -> None:
    with pytest.raises(ConfigError, match=r"bounty share b must be finite, >= 0, <= 0\.5"):
        pen.caught_loss(100, 0.6)


# --- the threshold -----------------------------------------------------------------------------


def test_cheatThreshold_defaults_batchJob_is1Point625() -> None:
    loss = pen.caught_loss(DEFAULTS.slash, DEFAULTS.bounty_share)

    assert pen.cheat_threshold(DEFAULTS.cost, D_DEFAULT, loss.total) == pytest.approx(1.625)


def test_cheatThreshold_defaults_onchainJob_isAbout1Point7() -> None:
    loss = pen.caught_loss(
        DEFAULTS.slash, DEFAULTS.bounty_share, fee=DEFAULTS.reward, fee_escrowed=True
    )
    v_star = pen.cheat_threshold(DEFAULTS.cost, D_DEFAULT, loss.total)

    assert v_star == pytest.approx(0.035 * 76.25 - 1)  # 1.66875
    # A job worth 1.7 pays to cheat on, one worth 1.6 does not.
    assert DEFAULTS.cost + 1.7 - D_DEFAULT * loss.total > 0
    assert DEFAULTS.cost + 1.6 - D_DEFAULT * loss.total < 0


def test_choosingJobs_paysAtTheDefaults_althoughTheFlatBoundCallsThemSafe() -> None:
    """The attack on the old docs' claim "choosing which jobs to cheat on does not help"."""
    flat = econ.check_sampling(
        DEFAULTS.cost, DEFAULTS.reward, DEFAULTS.slash, DEFAULTS.collusion, DEFAULTS.sampling
    )
    loss = pen.caught_loss(DEFAULTS.slash, DEFAULTS.bounty_share).total

    assert flat.verdict is Verdict.SAFE
    # Jobs worth 1 on average (exponential): cheating above V* earns ~0.197 per job.
    profit = pen.selective_profit_exponential(DEFAULTS.cost, 1.0, D_DEFAULT, loss)
    assert profit == pytest.approx(math.exp(-1.625), rel=1e-12)
    assert profit > 0.19
    # And one job worth 10 among 99 worth nothing: cheating on that one alone pays.
    assert pen.selective_profit(DEFAULTS.cost, [0.0] * 99 + [10.0], D_DEFAULT, loss) > 0


def test_selectiveProfitExponential_matchesTheMeanOverManyValues() -> None:
    mu, loss = 2.0, 75.0
    n = 200_000
    # Exponential quantiles at evenly spaced probabilities: a deterministic sample.
    values = [-mu * math.log1p(-(i + 0.5) / n) for i in range(n)]

    exact = pen.selective_profit_exponential(1.0, mu, D_DEFAULT, loss)

    assert pen.selective_profit(1.0, values, D_DEFAULT, loss) == pytest.approx(exact, rel=1e-3)


def test_selectiveProfitExponential_negativeThreshold_cheatsOnEveryJob() -> None:
    # d L = 0.5 < C = 1: V* = -0.5, every job is cheated: gain C + mu - d L.
    assert pen.selective_profit_exponential(1.0, 3.0, 0.01, 50.0) == pytest.approx(3.5)


# --- first dispute wins ------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p"), [(1, 0.3), (3, 0.05), (10, 0.5), (7, 1.0)])
def test_raceShare_matchesTheBinomialSum(n: int, p: float) -> None:
    brute = sum(math.comb(n - 1, x) * p**x * (1 - p) ** (n - 1 - x) / (1 + x) for x in range(n))

    assert pen.race_share(n, p) == pytest.approx(brute, rel=1e-12)


def test_raceShare_nobodyElseSamples_isTheWholePrize() -> None:
    assert pen.race_share(5, 0.0) == 1.0
    assert pen.race_share(1, 0.7) == pytest.approx(1.0)


# --- expected batch loss -----------------------------------------------------------------------


def test_expectedBatchLoss_contractReservation_isLinear() -> None:
    assert pen.expected_batch_loss(64, 0.01, 100, 0.25) == pytest.approx(64 * 0.01 * 75)
    assert pen.expected_batch_loss(64, 0.01, 100, 0.25, self_dispute=0) == pytest.approx(64)


def test_expectedBatchLoss_smallReservation_clampForgivesTheRest() -> None:
    clamped = pen.expected_batch_loss(64, 0.5, 100, 0.0, reservation=1000)

    assert clamped < 1000 + 1e-9
    assert clamped < 64 * 0.5 * 100
    assert pen.expected_batch_loss(8, 1.0, 100, 0.0, reservation=250) == 250


# --- the contract simulation agrees with the closed forms ------------------------------------

# z for 1 - 1e-6: a correct simulator falls outside for fewer than one seed in a million.
CONFIDENCE = 1 - 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mean_value": 1.0},  # defaults, selective: cheats above V* = 1.625
        {"mean_value": 0.0, "cheat_fraction": 1.0},  # blind, every job
        {"mean_value": 0.5, "cheat_fraction": 0.5, "fee_escrowed": True, "self_dispute": 0.5},
        {"mean_value": 0.0, "cheat_fraction": 1.0, "sampling": 0.3, "reservation": 300.0},
        {"mean_value": 5.0, "sampling": 0.2, "collusion": 0.0, "batch_size": 8},
    ],
)
def test_simulateContractNode_agreesWithTheClosedForm(kwargs: dict[str, float]) -> None:
    res = sim.simulate_contract_node(**kwargs, n_batches=20_000, seed=7, confidence=CONFIDENCE)  # type: ignore[arg-type]

    assert res.profit.agrees, res.profit
    assert res.slashed >= 0 and res.bounty_back <= res.slashed * DEFAULTS.bounty_share + 1e-9


def test_simulateContractNode_selectiveAtDefaults_profitsBeyondDoubt() -> None:
    res = sim.simulate_contract_node(mean_value=1.0, n_batches=20_000, seed=1)

    low, _ = res.profit.ci
    assert low > 0  # 99 % interval entirely above zero
    assert res.profit.sigmas_from_zero > 10


def test_simulateContractNode_smallReservation_slashesNoMoreThanReserved() -> None:
    res = sim.simulate_contract_node(
        mean_value=0.0,
        cheat_fraction=1.0,
        sampling=1.0,
        collusion=0.0,
        bounty_share=0.0,
        batch_size=8,
        reservation=250.0,
        n_batches=100,
        seed=0,
    )

    assert res.slashed == pytest.approx(100 * 250.0)  # 8 caught leaves, only 250 reserved each
