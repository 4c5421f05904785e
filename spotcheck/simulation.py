"""Monte-Carlo simulation of node strategies and challenger strategies, checked against the
closed forms of :mod:`spotcheck.economics`, :mod:`spotcheck.economics_penalty` and
:mod:`spotcheck.economics_checks`.

Three simulations, each seeded (same seed, same numbers) and vectorised with numpy:

- :func:`simulate`: the flat model of the Proof-of-Sampling bound. Each job: the node cheats
  with probability ``q``, a challenger samples with probability ``p`` and colludes with
  probability ``r``. Honest job ``R - C``; cheated and not caught ``R``; caught ``-S`` (fee
  forfeited, slashed ``S``). This is the on-chain-job case with no self-dispute.
- :func:`simulate_contract_node`: what the contracts do. Jobs come in batches of ``n`` that
  reserve ``reservation`` (``n S`` on the contracts); each job carries a value ``V`` (drawn
  exponentially); the node cheats on every job above the threshold ``V*`` (or on a share
  ``q``, blind); a caught leaf loses ``min(S, what is left of the reservation)``, the node gets
  ``b`` of it back when it disputes itself (probability ``f``), and an escrowed fee goes back
  to the requester (batch fees are not escrowed).
- :func:`simulate_checks`: the paid-checks game with canaries: diligent challengers and lazy
  claimants sampling each job, ``reward / claimCount`` per claim on a final job, collateral
  forfeited (burned) on an invalid one.

Each reports means with normal-approximation confidence intervals next to the closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from spotcheck import economics
from spotcheck import economics_penalty as penalty
from spotcheck.economics_checks import CheckGame, CheckTerms
from spotcheck.errors import ConfigError

__all__ = [
    "HONEST",
    "CheckSimulation",
    "ContractNodeResult",
    "Estimate",
    "SimulationResult",
    "Strategy",
    "cheat",
    "plot_checks_vs_canary_rate",
    "plot_profit_vs_p",
    "plot_selective_profit",
    "simulate",
    "simulate_checks",
    "simulate_contract_node",
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


def _save_plot(fig: Any, ax: Any, out: Path, legend: str = "upper right") -> Path:
    """The plots' common ending: grid, legend, layout, written as PNG to ``out``."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc=legend)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


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
    return _save_plot(fig, ax, out)


# ---------------------------------------------------------------------------------------------
# What the contracts do: batches, the clamp, the self-dispute bounty, fees, job values.


@dataclass(frozen=True)
class Estimate:
    """A simulated mean with its confidence half-width, next to the closed form."""

    mean: float
    half_width: float
    closed_form: float

    @property
    def ci(self) -> tuple[float, float]:
        return (self.mean - self.half_width, self.mean + self.half_width)

    @property
    def agrees(self) -> bool:
        """The closed form lies inside the interval."""
        low, high = self.ci
        return low <= self.closed_form <= high

    @property
    def sigmas_from_zero(self) -> float:
        """``|mean| / standard error``: how many standard errors the mean is from zero."""
        if self.half_width == 0:
            return math.inf
        return abs(self.mean) / self.half_width * self.z

    z: float = 1.0  # half_width / standard error (the confidence level's normal quantile)


def _estimate(
    total: float, total_sq: float, units: int, per: int, closed: float, z: float
) -> Estimate:
    """Mean per job of ``units`` independent units of ``per`` jobs each."""
    mean_unit = total / units
    var_unit = max(total_sq / units - mean_unit * mean_unit, 0.0) * units / max(units - 1, 1)
    half = z * math.sqrt(var_unit / units) / per
    return Estimate(mean=mean_unit / per, half_width=half, closed_form=closed, z=z)


def _z_of(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class ContractNodeResult:
    """A node against the contracts' rules: profit per job over honest play."""

    profit: Estimate
    threshold: float  # V*: the node cheats on jobs worth more (selective strategy)
    jobs: int
    jobs_cheated: int
    leaves_caught: int
    slashed: float  # total taken from reservations
    bounty_back: float  # total the node recovered by disputing itself


def simulate_contract_node(
    *,
    cost: float = economics.DEFAULTS.cost,
    fee: float = economics.DEFAULTS.reward,
    slash: float = economics.DEFAULTS.slash,
    collusion: float = economics.DEFAULTS.collusion,
    sampling: float = economics.DEFAULTS.sampling,
    bounty_share: float = economics.DEFAULTS.bounty_share,
    mean_value: float = 0.0,
    cheat_fraction: float | None = None,
    self_dispute: float = 1.0,
    fee_escrowed: bool = False,
    batch_size: int = 64,
    reservation: float | None = None,
    n_batches: int = 20_000,
    seed: int = 0,
    confidence: float = 0.99,
) -> ContractNodeResult:
    """Simulate ``n_batches`` batches of ``batch_size`` jobs of a node under the contracts.

    ``cheat_fraction`` None: the node cheats exactly on jobs worth more than ``V*`` (it sees
    each job's value ``V``, exponential with mean ``mean_value``, when it commits); a number
    ``q``: it cheats blindly on that share. ``reservation`` None is the contracts'
    ``batch_size x S``. The closed form is the gain ``E[1{cheat}(C + V)]`` less
    ``E[fee lost]`` less :func:`economics_penalty.expected_batch_loss` per job.
    """
    z = _z_of(confidence)
    loss = penalty.caught_loss(
        slash, bounty_share, fee=fee, fee_escrowed=fee_escrowed, self_dispute=self_dispute
    )
    detection = economics.detection_probability(sampling, collusion)
    threshold = penalty.cheat_threshold(cost, detection, loss.total)
    mu = float(mean_value)
    if mu < 0 or not math.isfinite(mu):
        raise ConfigError(f"mean job value must be finite and >= 0, got {mean_value!r}")
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 2:
        raise ConfigError(f"number of batches must be an integer >= 2, got {n_batches!r}")
    n = batch_size
    reserved = n * slash if reservation is None else float(reservation)
    # Closed form, per job.
    if cheat_fraction is None:
        if threshold < 0:
            p_cheat, gain = 1.0, cost + mu
        elif mu == 0:
            p_cheat, gain = 0.0, 0.0
        else:
            p_cheat = math.exp(-threshold / mu)
            gain = p_cheat * (cost + threshold + mu)  # E[1{V > t}(C + V)], memoryless
    else:
        q = economics._fraction("cheat fraction q", cheat_fraction)
        p_cheat, gain = q, q * (cost + mu)
    caught_p = p_cheat * detection
    fee_lost = caught_p * loss.fee_lost
    slash_loss = penalty.expected_batch_loss(
        n, caught_p, slash, bounty_share, reservation=reserved, self_dispute=self_dispute
    )
    closed = gain - fee_lost - slash_loss / n

    rng = np.random.default_rng(seed)
    per_chunk = max(1, _BATCH // n)
    total = total_sq = slashed_sum = bounty_sum = 0.0
    cheated = caught = 0
    remaining = n_batches
    while remaining:
        rows = min(remaining, per_chunk)
        remaining -= rows
        values = rng.exponential(mu, (rows, n)) if mu > 0 else np.zeros((rows, n))
        if cheat_fraction is None:
            is_cheat = values > threshold
        else:
            is_cheat = rng.random((rows, n)) < cheat_fraction
        is_caught = (
            is_cheat & (rng.random((rows, n)) < sampling) & (rng.random((rows, n)) >= collusion)
        )
        self_disputed = rng.random((rows, n)) < self_dispute
        # The clamp, leaf by leaf in order: the k-th caught leaf takes min(S, what is left).
        before: np.ndarray = np.cumsum(is_caught, axis=1) - is_caught  # caught before this one
        left = np.maximum(reserved - before * slash, 0.0)
        taken = np.where(is_caught, np.minimum(slash, left), 0.0)
        back = np.where(is_caught & self_disputed, taken * bounty_share, 0.0)
        profit = (
            np.where(is_cheat, cost + values, 0.0)
            - taken
            + back
            - np.where(is_caught, loss.fee_lost, 0.0)
        )
        per_batch = profit.sum(axis=1)
        total += float(per_batch.sum())
        total_sq += float((per_batch**2).sum())
        slashed_sum += float(taken.sum())
        bounty_sum += float(back.sum())
        cheated += int(is_cheat.sum())
        caught += int(is_caught.sum())
    return ContractNodeResult(
        profit=_estimate(total, total_sq, n_batches, n, closed, z),
        threshold=threshold,
        jobs=n_batches * n,
        jobs_cheated=cheated,
        leaves_caught=caught,
        slashed=slashed_sum,
        bounty_back=bounty_sum,
    )


# ---------------------------------------------------------------------------------------------
# The challenger's side: paid checks with canaries.


@dataclass(frozen=True)
class CheckSimulation:
    """One diligent challenger and one lazy claimant, income per job of the network."""

    terms: CheckTerms
    jobs: int
    diligent: Estimate  # challenger 0 of the diligent ones
    lazy: Estimate  # claimant 0 of the lazy ones (NaN estimate when there is none)
    canaries: int
    canaries_disputed_by_checkers: int  # the rest the canary operator disputed itself
    lazy_forfeits: int  # claims on canaries, all lazy claimants
    pool_paid: float  # total check rewards paid


def simulate_checks(
    terms: CheckTerms,
    *,
    n_jobs: int = 2_000_000,
    seed: int = 0,
    confidence: float = 0.99,
) -> CheckSimulation:
    """Simulate ``n_jobs`` jobs under the paid-checks rules (see :mod:`economics_checks`).

    Per job: a canary with probability ``k`` (it ends invalid); each of ``D + Z`` challengers
    samples it with probability ``p``. A final job pays ``W / claimCount`` to each claimant
    (``W = check_share x R``)
    (every lazy claimant that sampled it, and every diligent one); on a canary every lazy
    claimant that sampled it forfeits ``L`` (burned), and the first diligent disputer (chosen
    uniformly among the diligent that sampled it: first-dispute-wins) gets ``b S``; with no
    diligent disputer the operator disputes it. Every sampling diligent challenger pays ``K``
    and one transaction ``g``; every lazy claim pays ``g``. Means are per job of the network;
    the closed forms are :class:`CheckGame`'s per-sampled-job incomes times ``p``.
    """
    z = _z_of(confidence)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 2:
        raise ConfigError(f"number of jobs must be an integer >= 2, got {n_jobs!r}")
    game = CheckGame(terms)
    d, lz = terms.diligent, terms.lazy
    m = d + lz
    rng = np.random.default_rng(seed)
    sums = np.zeros(4)  # diligent, diligent^2, lazy, lazy^2
    canaries = by_checkers = forfeits = 0
    paid = 0.0
    per_chunk = max(1, _BATCH // max(m, 1))
    remaining = n_jobs
    while remaining:
        size = min(remaining, per_chunk)
        remaining -= size
        canary = rng.random(size) < terms.canary_rate
        sampled = rng.random((m, size)) < terms.sampling
        dil, laz = sampled[:d], sampled[d:]
        n_claims = sampled.sum(axis=0)
        final = ~canary
        reward = game.check_reward
        share = np.where(final & (n_claims > 0), reward / np.maximum(n_claims, 1), 0.0)
        # First dispute wins: a random priority per diligent challenger, the highest sampler wins.
        if d:
            priority = np.where(dil, rng.random((d, size)), -1.0)
            winner = np.argmax(priority, axis=0)
            any_dil = dil.any(axis=0)
        else:
            winner = np.zeros(size, dtype=np.intp)
            any_dil = np.zeros(size, dtype=bool)
        lazy_on = laz.sum(axis=0) if lz else np.zeros(size)
        prize = terms.bounty_share * terms.slash  # forfeited collateral is burned
        # Diligent challenger 0.
        if d:
            s0 = dil[0]
            won = canary & any_dil & (winner == 0) & s0
            inc_d = np.where(s0, -terms.rerun_cost - terms.tx_gas, 0.0)
            inc_d += np.where(s0 & final, share, 0.0) + np.where(won, prize, 0.0)
            sums[0] += inc_d.sum()
            sums[1] += (inc_d**2).sum()
        if lz:
            s0 = laz[0]
            inc_l = np.where(s0, -terms.tx_gas, 0.0)
            inc_l += np.where(s0 & final, share, 0.0)
            inc_l -= np.where(s0 & canary, terms.claim_collateral, 0.0)
            sums[2] += inc_l.sum()
            sums[3] += (inc_l**2).sum()
        canaries += int(canary.sum())
        by_checkers += int((canary & any_dil).sum())
        forfeits += int((canary * lazy_on).sum())
        paid += float(np.where(final & (n_claims > 0), reward, 0.0).sum())
    p = terms.sampling
    nan = Estimate(math.nan, math.nan, math.nan)
    return CheckSimulation(
        terms=terms,
        jobs=n_jobs,
        diligent=_estimate(sums[0], sums[1], n_jobs, 1, p * game.diligent, z) if d else nan,
        lazy=_estimate(sums[2], sums[3], n_jobs, 1, p * game.lazy, z) if lz else nan,
        canaries=canaries,
        canaries_disputed_by_checkers=by_checkers,
        lazy_forfeits=forfeits,
        pool_paid=paid,
    )


def plot_checks_vs_canary_rate(
    path: str | Path,
    terms: CheckTerms,
    *,
    k_max: float = 0.1,
    n_jobs: int = 400_000,
    seed: int = 0,
) -> Path:
    """Write a PNG of a diligent challenger's and a lazy claimant's income per sampled job
    against the canary rate: closed forms as lines, simulated points with 99 % bars."""
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not 0 < k_max <= 1:
        raise ConfigError(f"plot canary-rate range must be in (0, 1], got {k_max!r}")
    out = Path(path)
    ks = np.linspace(0.0, k_max, 201)
    games = [CheckGame(dataclasses.replace(terms, canary_rate=float(k))) for k in ks]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.plot(ks * 100, [g.diligent for g in games], color="C0", label="diligent (closed form)")
    ax.plot(ks * 100, [g.lazy for g in games], color="C3", label="lazy claimant (closed form)")
    points = np.linspace(0.0, k_max, 6)
    sims = [
        simulate_checks(
            dataclasses.replace(terms, canary_rate=float(k)), n_jobs=n_jobs, seed=seed + i
        )
        for i, k in enumerate(points)
    ]
    p = terms.sampling
    for kind, color in (("diligent", "C0"), ("lazy", "C3")):
        ests = [getattr(s, kind) for s in sims]
        if any(math.isnan(e.mean) for e in ests):
            continue
        ax.errorbar(
            points * 100,
            [e.mean / p for e in ests],
            yerr=[e.half_width / p for e in ests],
            fmt=".",
            color=color,
            capsize=3,
            label=f"{kind}, simulated ({n_jobs:,} jobs, 99 % CI)",
        )
    k_min = CheckGame(terms).min_canary_rate
    if k_min <= k_max:
        ax.axvline(k_min * 100, color="C3", linestyle=":", linewidth=1.2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("canary rate k (% of jobs)")
    ax.set_ylabel("income per sampled job (tokens)")
    ax.set_title(
        f"Paid checks: W = {terms.check_share:g} R, L = {terms.claim_collateral:g}, "
        f"K = {terms.rerun_cost:g}, p = {terms.sampling:g}, "
        f"{terms.diligent} diligent + {terms.lazy} lazy",
        fontsize=10,
    )
    return _save_plot(fig, ax, out, legend="lower left")


def plot_selective_profit(
    path: str | Path,
    *,
    cost: float = economics.DEFAULTS.cost,
    fee: float = economics.DEFAULTS.reward,
    slash: float = economics.DEFAULTS.slash,
    collusion: float = economics.DEFAULTS.collusion,
    bounty_share: float = economics.DEFAULTS.bounty_share,
    mean_values: Sequence[float] = (0.25, 0.5, 1.0, 2.0),
    p_max: float = 0.12,
    n_batches: int = 4_000,
    seed: int = 0,
) -> Path:
    """Write a PNG of the profit per job of a node that cheats only on jobs above ``V*``
    (values exponential with each mean), batch jobs with self-dispute, against ``p``; the flat
    model's blind cheater (values ignored) for comparison; simulated points at one mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not 0 < p_max <= 1:
        raise ConfigError(f"plot p range must be in (0, 1], got {p_max!r}")
    out = Path(path)
    loss = penalty.caught_loss(slash, bounty_share, fee=fee, fee_escrowed=False).total
    ps = np.linspace(0.0, p_max, 241)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for i, mu in enumerate(mean_values):
        ys = [
            penalty.selective_profit_exponential(cost, mu, float(p) * (1 - collusion), loss)
            for p in ps
        ]
        ax.plot(ps * 100, ys, color=f"C{i}", label=f"selective, mean value {mu:g}")
    blind = cost - ps * (1 - collusion) * loss
    ax.plot(
        ps * 100,
        blind,
        color="grey",
        linestyle="--",
        label="blind, every job, V = 0 (the flat model)",
    )
    mu = mean_values[len(mean_values) // 2]
    pts = np.linspace(p_max / 6, p_max, 6)
    results = [
        simulate_contract_node(
            cost=cost,
            fee=fee,
            slash=slash,
            collusion=collusion,
            sampling=float(p),
            bounty_share=bounty_share,
            mean_value=mu,
            n_batches=n_batches,
            seed=seed + j,
        )
        for j, p in enumerate(pts)
    ]
    ax.errorbar(
        pts * 100,
        [r.profit.mean for r in results],
        yerr=[r.profit.half_width for r in results],
        fmt="k.",
        capsize=3,
        label=f"simulated, mean value {mu:g} ({n_batches * 64:,} jobs, 99 % CI)",
    )
    ax.axvline(economics.DEFAULTS.sampling * 100, color="grey", linewidth=2, alpha=0.5)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylim(-1.5 * cost, 1.5 * cost)
    ax.set_xlim(0, p_max * 100)
    ax.set_xlabel("sampling probability p (%)")
    ax.set_ylabel("profit per job over honest play")
    ax.set_title(
        f"Choosing which jobs to cheat on: never below zero   [C = {cost:g}, S = {slash:g}, "
        f"b = {bounty_share:g}, r = {collusion:g}, batch jobs, self-dispute]",
        fontsize=9,
    )
    return _save_plot(fig, ax, out)
