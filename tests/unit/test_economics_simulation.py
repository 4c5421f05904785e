"""The Monte-Carlo simulation agrees with the closed form and reproduces the worked example.

Statistical bound: each comparison uses a confidence interval at 1 - 1e-6 (z = 4.89) over
independent jobs; for a correct simulator a comparison fails for fewer than one seed in a
million. The seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spotcheck import economics as econ
from spotcheck import simulation as sim
from spotcheck.errors import ConfigError

EXAMPLE = (1.0, 1.25, 100.0, 0.1)
STRICT = 1 - 1e-6


@pytest.mark.parametrize(
    ("params", "p_factor", "q"),
    [
        (EXAMPLE, 0.5, 1.0),
        (EXAMPLE, 1.0, 1.0),
        (EXAMPLE, 2.0, 0.3),
        ((1.0, 1.25, 25.0, 0.3), 1.5, 1.0),
        ((2.0, 3.0, 200.0, 0.0), 0.8, 0.5),
        # R comparable to S: detects a simulator that forgets to forfeit the reward.
        ((1.0, 20.0, 5.0, 0.2), 2.0, 1.0),
    ],
)
def test_simulate_meanProfit_matchesClosedForm(
    params: tuple[float, float, float, float], p_factor: float, q: float
) -> None:
    p = p_factor * econ.min_sampling_probability(*params)

    res = sim.simulate(*params, p, sim.cheat(q), n_jobs=400_000, seed=7, confidence=STRICT)

    low, high = res.ci
    assert low <= econ.cheater_expected_profit(*params, p, q) <= high
    assert res.closed_form_profit == pytest.approx(econ.cheater_expected_profit(*params, p, q))


def test_simulate_workedExample_cheatingPaysBelowAndLosesAboveTheBound() -> None:
    bound = econ.min_sampling_probability(*EXAMPLE)
    assert bound == pytest.approx(0.010974, abs=5e-7)

    below = sim.simulate(*EXAMPLE, 0.5 * bound, sim.cheat(1.0), n_jobs=400_000, seed=1)
    above = sim.simulate(*EXAMPLE, 1.5 * bound, sim.cheat(1.0), n_jobs=400_000, seed=2)

    assert below.cheating_pays is True
    assert above.cheating_pays is False


def test_simulate_honestNode_earnsRewardMinusCostOnEveryJob() -> None:
    res = sim.simulate(*EXAMPLE, 0.05, sim.HONEST, n_jobs=10_000, seed=0)

    assert res.mean_income == pytest.approx(0.25)
    assert res.mean_profit == pytest.approx(0.0, abs=1e-12)
    assert res.half_width == pytest.approx(0.0, abs=1e-9)
    assert (res.jobs_cheated, res.cheats_caught, res.cheats_covered) == (0, 0, 0)


def test_simulate_colludingChallengers_coverTheirShareOfSampledCheats() -> None:
    res = sim.simulate(1.0, 1.25, 100.0, 0.3, 0.5, sim.cheat(1.0), n_jobs=200_000, seed=3)

    sampled = res.cheats_caught + res.cheats_covered
    covered_share = res.cheats_covered / sampled
    # Binomial(~100k, 0.3): standard deviation ~0.0015; 0.01 is over 6 sigma.
    assert covered_share == pytest.approx(0.3, abs=0.01)
    assert sampled / res.jobs_cheated == pytest.approx(0.5, abs=0.01)


def test_simulate_sameSeed_sameNumbers_otherSeed_otherNumbers() -> None:
    a = sim.simulate(*EXAMPLE, 0.02, sim.cheat(0.5), n_jobs=50_000, seed=11)
    b = sim.simulate(*EXAMPLE, 0.02, sim.cheat(0.5), n_jobs=50_000, seed=11)
    c = sim.simulate(*EXAMPLE, 0.02, sim.cheat(0.5), n_jobs=50_000, seed=12)

    assert a == b
    assert a.mean_income != c.mean_income


def test_simulate_moreJobsThanOneBatch_countsEveryJob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "_BATCH", 1000)

    res = sim.simulate(*EXAMPLE, 0.5, sim.cheat(1.0), n_jobs=2500, seed=0)

    assert res.jobs_cheated == 2500
    # Every job is accounted for in the mean: honest income never appears when q = 1.
    caught_income = -100.0 * res.cheats_caught
    uncaught_income = 1.25 * (2500 - res.cheats_caught)
    assert res.mean_income == pytest.approx((caught_income + uncaught_income) / 2500)


def test_sweep_returnsEveryCellWithDistinctSeeds() -> None:
    results = sim.sweep(*EXAMPLE, [0.01, 0.02], [sim.HONEST, sim.cheat(1.0)], n_jobs=5000)

    assert [(r.sampling, r.strategy.cheat_fraction) for r in results] == [
        (0.01, 0.0),
        (0.01, 1.0),
        (0.02, 0.0),
        (0.02, 1.0),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_jobs": 1}, "number of jobs must be an integer >= 2"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
    ],
)
def test_simulate_invalidInput_raisesConfigError(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sim.simulate(*EXAMPLE, 0.05, sim.HONEST, **kwargs)  # type: ignore[arg-type]


def test_simulate_invalidSampling_raisesConfigError() -> None:
    with pytest.raises(ConfigError, match="sampling probability p"):
        sim.simulate(*EXAMPLE, 1.5, sim.HONEST)


def test_strategy_cheatFractionOutsideUnitInterval_raises() -> None:
    with pytest.raises(ConfigError, match="cheat fraction q"):
        sim.Strategy("bad", 1.2)


def test_plotProfitVsP_writesAPng(tmp_path: Path) -> None:
    out = sim.plot_profit_vs_p(tmp_path / "sub" / "plot.png", n_jobs=20_000)

    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_plotProfitVsP_noSlashes_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one slash"):
        sim.plot_profit_vs_p(tmp_path / "x.png", slashes=())
