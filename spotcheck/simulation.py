"""Monte-Carlo simulation of node strategies against sampling challengers.

Each job is one draw: the node cheats on it with probability ``q`` (it cannot do better by
choosing which jobs: the sampling seed is fixed only after the commitment); a challenger
samples it with probability ``p``; the sampling challenger colludes with probability ``r`` and
then never reports. Cash flows per job, as the contracts pay them:

- honest job: reward ``R`` minus inference cost ``C`` (an honest challenger never disputes it);
- cheated job, not caught: ``R`` (no inference paid for);
- cheated job, caught by an honest challenger: reward forfeited and slash ``S``: ``-S``.

The simulation reports the node's mean income per job and its profit over honest play
(income minus ``R - C``), each with a normal-approximation confidence interval over jobs, and
the closed form of :mod:`spotcheck.economics` for comparison. Seeded: same seed, same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from spotcheck import economics
from spotcheck.errors import ConfigError

__all__ = [
    "HONEST",
    "SimulationResult",
    "Strategy",
    "cheat",
    "plot_profit_vs_p",
    "simulate",
    "sweep",
]

#: Jobs drawn per numpy batch: bounds memory (~3 x 8 bytes x batch) whatever ``n_jobs`` is.
_BATCH = 1 << 20


@dataclass(frozen=True)
class Strategy:
    """A node strategy: skip inference on a fraction ``cheat_fraction`` of jobs."""

    name: str
    cheat_fraction: float

    def __post_init__(self) -> None:
        q = self.cheat_fraction
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 1:
            raise ConfigError(f"cheat fraction q must be in [0, 1], got {q!r}")


HONEST = Strategy("always honest", 0.0)


def cheat(fraction: float) -> Strategy:
    """The strategy that skips inference on ``fraction`` of its jobs."""
    return Strategy(f"cheat {fraction:.0%}", fraction)


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of one strategy over ``n_jobs`` simulated jobs."""

    strategy: Strategy
    sampling: float
    collusion: float
    n_jobs: int
    confidence: float
    mean_income: float  # per job
    half_width: float  # of the confidence interval on the mean, per job
    honest_income: float  # R - C
    closed_form_profit: float  # economics.cheater_expected_profit at these parameters
    jobs_cheated: int
    cheats_caught: int  # sampled by an honest challenger: slashed
    cheats_covered: int  # sampled by a colluding challenger: never reported

    @property
    def mean_profit(self) -> float:
        """Mean profit per job over honest play (the quantity the bound is about)."""
        return self.mean_income - self.honest_income

    @property
    def ci(self) -> tuple[float, float]:
        """Confidence interval on :attr:`mean_profit`."""
        return (self.mean_profit - self.half_width, self.mean_profit + self.half_width)

    @property
    def cheating_pays(self) -> bool | None:
        """True/False when the interval excludes 0; None when it cannot tell."""
        low, high = self.ci
        if low > 0:
            return True
        if high < 0:
            return False
        return None


def simulate(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    sampling: float,
    strategy: Strategy,
    *,
    n_jobs: int = 200_000,
    seed: int = 0,
    confidence: float = 0.99,
) -> SimulationResult:
    """Simulate ``n_jobs`` jobs of one node playing ``strategy``; vectorised, seeded."""
    closed = economics.cheater_expected_profit(
        cost, reward, slash, collusion, sampling, strategy.cheat_fraction
    )
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 2:
        raise ConfigError(f"number of jobs must be an integer >= 2, got {n_jobs!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(seed)
    income_if = np.array([reward - cost, reward, -slash])  # honest, cheated, caught
    total = 0.0
    total_sq = 0.0
    cheated = caught = covered = 0
    remaining = n_jobs
    while remaining:
        size = min(remaining, _BATCH)
        remaining -= size
        draws = rng.random((3, size))
        is_cheat = draws[0] < strategy.cheat_fraction
        sampled = draws[1] < sampling
        colluding = draws[2] < collusion
        is_caught = is_cheat & sampled & ~colluding
        outcome = is_cheat.astype(np.intp) + is_caught  # 0 honest, 1 cheated, 2 caught
        counts = np.bincount(outcome, minlength=3)
        total += float(counts @ income_if)
        total_sq += float(counts @ income_if**2)
        cheated += int(is_cheat.sum())
        caught += int(counts[2])
        covered += int((is_cheat & sampled & colluding).sum())
    mean = total / n_jobs
    variance = max(total_sq / n_jobs - mean * mean, 0.0) * n_jobs / (n_jobs - 1)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return SimulationResult(
        strategy=strategy,
        sampling=sampling,
        collusion=collusion,
        n_jobs=n_jobs,
        confidence=confidence,
        mean_income=mean,
        half_width=z * math.sqrt(variance / n_jobs),
        honest_income=reward - cost,
        closed_form_profit=closed,
        jobs_cheated=cheated,
        cheats_caught=caught,
        cheats_covered=covered,
    )


def sweep(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    samplings: Sequence[float],
    strategies: Sequence[Strategy],
    *,
    n_jobs: int = 200_000,
    seed: int = 0,
    confidence: float = 0.99,
) -> list[SimulationResult]:
    """Every strategy at every sampling probability; each cell has its own derived seed."""
    seeds = np.random.SeedSequence(seed).spawn(len(samplings) * len(strategies))
    results: list[SimulationResult] = []
    for i, p in enumerate(samplings):
        for j, strategy in enumerate(strategies):
            cell_seed = int(seeds[i * len(strategies) + j].generate_state(1)[0])
            results.append(
                simulate(
                    cost,
                    reward,
                    slash,
                    collusion,
                    p,
                    strategy,
                    n_jobs=n_jobs,
                    seed=cell_seed,
                    confidence=confidence,
                )
            )
    return results


def plot_profit_vs_p(
    path: str | Path,
    *,
    cost: float = economics.DEFAULTS.cost,
    reward: float = economics.DEFAULTS.reward,
    slashes: Sequence[float] = (25.0, 50.0, 100.0, 200.0),
    collusion: float = 0.1,
    p_max: float = 0.06,
    simulate_slash: float | None = 100.0,
    mark_sampling: float | None = economics.DEFAULTS.sampling,
    n_jobs: int = 200_000,
    seed: int = 0,
) -> Path:
    """Write a PNG of a full cheater's (q = 1) expected profit per job against ``p``.

    One closed-form curve per slash, the bound of each marked by a dotted vertical line, and
    simulated points with confidence bars for ``simulate_slash`` (None: no simulation), and
    the protocol's default ``p`` as a grey line (``mark_sampling``; None: not marked).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not slashes:
        raise ConfigError("plot needs at least one slash value")
    if not 0 < p_max <= 1:
        raise ConfigError(f"plot p range must be in (0, 1], got {p_max!r}")
    out = Path(path)
    ps = np.linspace(0.0, p_max, 241)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for k, s in enumerate(slashes):
        bound = economics.min_sampling_probability(cost, reward, s, collusion)
        profit = cost - ps * (1.0 - collusion) * (reward + s)
        color = f"C{k}"
        ax.plot(ps * 100, profit, color=color, label=f"S = {s:g}  (bound p > {bound:.2%})")
        if bound <= p_max:
            ax.axvline(bound * 100, color=color, linestyle=":", linewidth=1.2)
            ax.plot([bound * 100], [0.0], marker="o", color=color)
    if simulate_slash is not None:
        bound = economics.min_sampling_probability(cost, reward, simulate_slash, collusion)
        points = [p for p in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0) if p * bound <= p_max]
        results = sweep(
            cost,
            reward,
            simulate_slash,
            collusion,
            [f * bound for f in points],
            [cheat(1.0)],
            n_jobs=n_jobs,
            seed=seed,
        )
        ax.errorbar(
            [r.sampling * 100 for r in results],
            [r.mean_profit for r in results],
            yerr=[r.half_width for r in results],
            fmt="k.",
            capsize=3,
            label=f"simulated, S = {simulate_slash:g} ({n_jobs:,} jobs, 99 % CI)",
        )
    if mark_sampling is not None and mark_sampling <= p_max:
        ax.axvline(
            mark_sampling * 100,
            color="grey",
            linewidth=2,
            alpha=0.6,
            label=f"protocol default p = {mark_sampling:.0%}",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlim(0, p_max * 100)
    ax.set_ylim(-3 * cost, 1.5 * cost)
    ax.set_xlabel("sampling probability p (%)")
    ax.set_ylabel("cheater's expected profit per job over honest play")
    ax.set_title(
        f"Cheating pays only below p = C / ((1 - r)(R + S))   [C = {cost:g}, R = {reward:g}, "
        f"r = {collusion:g}]",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
