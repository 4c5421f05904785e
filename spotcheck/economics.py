"""The honesty condition: when sampling makes cheating a losing strategy.

Hyperbolic's Proof of Sampling: a node that skips honest inference saves the cost ``C`` of the
job; a challenger samples the job with probability ``p``; a fraction ``r`` of challengers
collude with the node and never report; an honest challenger who samples a cheated job gets the
node slashed ``S`` and the reward ``R`` is forfeited. Per skipped job the cheater's expected
profit over playing honest is ``C - p (1 - r) (R + S)``, so cheating does not pay when

    p > C / ((1 - r) (R + S)).

Two caveats live next to the formula (see ``docs/economics.md``). When an output moves value
``V`` the gain from a bad output is ``C + V``, not ``C``, and the slash must be sized to it.
When the cheater can front-run the honest challenger's dispute with its own (the first dispute
wins), it gets the bounty share ``b`` of its own slash back, so the slash that deters is
``S (1 - b)``; ``ModelRegistry`` caps ``bountyBps`` at 5000, so that is at least ``S / 2``.

Every open commitment is fully backed (``../shared/DESIGN.md``, v2): a batch of ``n`` jobs
reserves ``n S`` of the node's stake until it is final, so stake caps a node's throughput.
:func:`stake_for_throughput` gives the stake a throughput needs:
``jobs/s x (challengeWindow + proof time) x S``.

This is the flat model (every job worth the same, the slash lost in full). What the contracts
take from a caught job (the clamp, the bounty a self-disputing node recovers, escrowed and
unescrowed fees) and which jobs pay to cheat on when values differ are in
:mod:`spotcheck.economics_penalty`; the challenger's side in :mod:`spotcheck.economics_checks`.

Money is in token units (floats); probabilities are fractions in [0, 1].
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from spotcheck.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "MAX_BOUNTY_SHARE",
    "ProtocolDefaults",
    "Recommendation",
    "SamplingCheck",
    "StakeRequirement",
    "Verdict",
    "cheater_expected_profit",
    "check_sampling",
    "detection_probability",
    "effective_slash",
    "honest_profit_per_job",
    "max_throughput",
    "min_sampling_probability",
    "node_expected_income",
    "recommend",
    "stake_for_throughput",
]

#: A sampling probability is called SAFE at or above this multiple of the minimum.
DEFAULT_SAFETY_FACTOR = 2.0
#: ``ModelRegistry.MAX_BOUNTY_BPS / 10_000``: a cheater's second address disputing itself
#: recovers at most half of the slash (docs/v2-protocol.md, 1).
MAX_BOUNTY_SHARE = 0.5


# ---------------------------------------------------------------------------------------------
# Validation: one line per bad value, naming the parameter and the value.


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


def _positive(name: str, value: float) -> float:
    v = _finite(name, value)
    if v <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return v


def _non_negative(name: str, value: float) -> float:
    v = _finite(name, value)
    if v < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    return v


def _fraction(name: str, value: float, *, below_one: bool = False) -> float:
    v = _finite(name, value)
    if below_one and not 0 <= v < 1:
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    if not 0 <= v <= 1:
        raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _bounty_share(value: float) -> float:
    b = _fraction("bounty share b", value)
    if b > MAX_BOUNTY_SHARE:
        raise ConfigError(
            f"bounty share b must be <= {MAX_BOUNTY_SHARE:g} (bountyBps <= 5000), got {value!r}"
        )
    return b


def _validate(cost: float, reward: float, slash: float, collusion: float) -> None:
    _positive("cost of inference C", cost)
    _non_negative("reward R", reward)
    _positive("slash S", slash)
    _fraction("collusion fraction r", collusion, below_one=True)


# ---------------------------------------------------------------------------------------------
# The closed form.


def min_sampling_probability(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    *,
    value_at_risk: float = 0.0,
) -> float:
    """The Proof-of-Sampling bound ``(C + V) / ((1 - r)(R + S))``: cheating pays below it.

    ``value_at_risk`` ``V`` is the value a bad output can move (0 for pure compute savings).
    The result may exceed 1: then no sampling rate deters, and the slash must grow.
    """
    _validate(cost, reward, slash, collusion)
    gain = cost + _non_negative("value at risk V", value_at_risk)
    return gain / ((1.0 - collusion) * (reward + slash))


def detection_probability(sampling: float, collusion: float) -> float:
    """Probability that a cheated job is sampled by an honest challenger: ``p (1 - r)``."""
    p = _fraction("sampling probability p", sampling)
    r = _fraction("collusion fraction r", collusion, below_one=True)
    return p * (1.0 - r)


def cheater_expected_profit(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    sampling: float,
    cheat_fraction: float = 1.0,
    *,
    value_at_risk: float = 0.0,
) -> float:
    """Expected extra profit per job of cheating on a fraction ``q`` of jobs, over honest play.

    ``q * (C + V - p (1 - r) (R + S))``: each skipped job saves ``C`` (and moves ``V``); if an
    honest challenger samples it, the node forfeits ``R`` and is slashed ``S``. Positive below
    the bound of :func:`min_sampling_probability`, zero at it, negative above it.
    """
    _validate(cost, reward, slash, collusion)
    q = _fraction("cheat fraction q", cheat_fraction)
    gain = cost + _non_negative("value at risk V", value_at_risk)
    return q * (gain - detection_probability(sampling, collusion) * (reward + slash))


def honest_profit_per_job(cost: float, reward: float) -> float:
    """What an honest node earns per job: ``R - C``."""
    return _non_negative("reward R", reward) - _positive("cost of inference C", cost)


def node_expected_income(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    sampling: float,
    cheat_fraction: float = 0.0,
) -> float:
    """A node's expected income per job: honest ``R - C`` plus the cheating profit."""
    return honest_profit_per_job(cost, reward) + cheater_expected_profit(
        cost, reward, slash, collusion, sampling, cheat_fraction
    )


def effective_slash(slash: float, bounty_share: float) -> float:
    """The slash that deters when a caught node can front-run the challenger's dispute.

    The first dispute wins; a node that sees an honest dispute coming can open its own from
    another address, fail to defend, and collect the bounty share ``b`` of its own slash.
    """
    return _positive("slash S", slash) * (1.0 - _fraction("bounty share b", bounty_share))


# ---------------------------------------------------------------------------------------------
# Stake: every open commitment is fully backed.


@dataclass(frozen=True)
class StakeRequirement:
    """The stake a node needs to serve ``jobs_per_s`` with every open commitment backed.

    A commitment of ``n`` jobs reserves ``n x slash`` from its commit until it is final: the
    challenge window, plus, when it is disputed or a leaf is requested, the time the node
    takes to prove or reveal (``proof_time_s``, at most the model's proof window). At a steady
    ``jobs_per_s`` that is ``jobs_per_s x open_time_s`` jobs open at once, rounded up to whole
    batches (a batch reserves all its jobs at its commit), plus one batch being cut.
    """

    jobs_per_s: float
    challenge_window_s: float
    proof_time_s: float
    slash: float
    batch_size: int

    @property
    def open_time_s(self) -> float:
        """How long one commitment holds its reservation: ``challengeWindow + proof time``."""
        return self.challenge_window_s + self.proof_time_s

    @property
    def open_jobs(self) -> int:
        """Jobs reserved at once: ``jobs/s x open time``, in whole batches."""
        steady = self.jobs_per_s * self.open_time_s
        # Relative tolerance: 0.1 x 1000 s is 100 jobs, not 101 from float rounding.
        batches = math.ceil(steady / self.batch_size * (1 - 1e-12))
        return max(batches, 1) * self.batch_size

    @property
    def stake(self) -> float:
        """``open_jobs x slash``: the stake that backs every open commitment in full."""
        return self.open_jobs * self.slash


def stake_for_throughput(
    jobs_per_s: float,
    challenge_window_s: float,
    proof_time_s: float,
    slash: float,
    *,
    batch_size: int = 1,
) -> StakeRequirement:
    """The stake a node needs for ``jobs_per_s``: ``jobs/s x (challengeWindow + proof time)
    x slash`` (see :class:`StakeRequirement`; batches round it up to whole batches).

    A node with less stake cannot commit (``commitBatch`` reverts ``InsufficientStake``): its
    stake caps its open work, so a slash always finds its reservation.
    """
    rate = _positive("throughput (jobs/s)", jobs_per_s)
    window = _positive("challenge window", challenge_window_s)
    proof = _non_negative("proof time", proof_time_s)
    s = _positive("slash S", slash)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    return StakeRequirement(rate, window, proof, s, batch_size)


def max_throughput(
    stake: float, challenge_window_s: float, proof_time_s: float, slash: float
) -> float:
    """The inverse, for single-job commitments: the jobs/s a ``stake`` backs,
    ``stake / ((challengeWindow + proof time) x slash)``."""
    available = _non_negative("stake", stake)
    window = _positive("challenge window", challenge_window_s)
    proof = _non_negative("proof time", proof_time_s)
    return available / ((window + proof) * _positive("slash S", slash))


# ---------------------------------------------------------------------------------------------
# Checking a proposed sampling probability.


class Verdict(enum.Enum):
    """Is a proposed sampling probability enough?"""

    SAFE = "safe"  # at least the safety factor above the bound
    THIN = "thin"  # above the bound, but by less than the safety factor
    UNSAFE = "unsafe"  # at or below the bound: cheating pays (or breaks even)


@dataclass(frozen=True)
class SamplingCheck:
    """A proposed ``p`` against the bound."""

    sampling: float
    minimum: float
    safety_factor: float
    cheater_profit_per_job: float  # at q = 1, over honest play

    @property
    def margin(self) -> float:
        """``p / p_min``: how many times the bound the proposal is."""
        return self.sampling / self.minimum

    @property
    def verdict(self) -> Verdict:
        if self.sampling <= self.minimum:
            return Verdict.UNSAFE
        if self.margin < self.safety_factor:
            return Verdict.THIN
        return Verdict.SAFE


def check_sampling(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    sampling: float,
    *,
    value_at_risk: float = 0.0,
    safety_factor: float = DEFAULT_SAFETY_FACTOR,
) -> SamplingCheck:
    """Compare a proposed sampling probability with the bound."""
    p = _fraction("sampling probability p", sampling)
    factor = _finite("safety factor", safety_factor)
    if factor < 1:
        raise ConfigError(f"safety factor must be >= 1, got {safety_factor!r}")
    minimum = min_sampling_probability(cost, reward, slash, collusion, value_at_risk=value_at_risk)
    profit = cheater_expected_profit(
        cost, reward, slash, collusion, p, 1.0, value_at_risk=value_at_risk
    )
    return SamplingCheck(p, minimum, factor, profit)


# ---------------------------------------------------------------------------------------------
# Protocol defaults and recommendations.


@dataclass(frozen=True)
class ProtocolDefaults:
    """The protocol's default economic parameters (token units; fractions for probabilities).

    Contracts, demo and docs take their defaults from here. ``collusion`` is the worst case
    the defaults are designed for, not an estimate. ``proving_cost`` is the node's cost of one
    ezkl proof plus the gas of ``defend`` (an assumption; measure it per model).
    """

    cost: float = 1.0  # C: honest inference, per job
    reward: float = 1.25  # R: fee per job
    slash: float = 100.0  # S: slashAmount per model
    collusion: float = 0.3  # r: colluding challengers the defaults withstand
    sampling: float = 0.05  # p: share of jobs an honest challenger re-runs
    proving_cost: float = 5.0  # node's cost to answer one dispute with a proof
    challenger_bond: float = 10.0  # B_c: 2x proving_cost
    bounty_share: float = 0.25  # b: bountyBps = 2500; the rest of the slash is burned

    def __post_init__(self) -> None:
        _validate(self.cost, self.reward, self.slash, self.collusion)
        _fraction("sampling probability p", self.sampling)
        _positive("proving cost", self.proving_cost)
        _positive("challenger bond", self.challenger_bond)
        _bounty_share(self.bounty_share)

    @property
    def bounty_bps(self) -> int:
        """The bounty share in basis points, as ``ModelRegistry`` takes it."""
        return round(self.bounty_share * 10_000)


DEFAULTS = ProtocolDefaults()


@dataclass(frozen=True)
class Recommendation:
    """Recommended protocol parameters for one model, with the reasoning's numbers."""

    sampling: float  # p to use
    minimum_sampling: float  # the bound at the recommended slash (with front-running)
    slash: float  # S to register (raised above the input when needed)
    slash_requested: float  # the S that was asked for
    challenger_bond: float  # B_c: covers the node's proving cost with margin
    challenge_window_s: int
    proof_window_s: int
    unbonding_delay_s: int  # > challenge + proof window, as the design requires
    value_at_risk: float
    bounty_share: float
    notes: tuple[str, ...]
    collusion: float = DEFAULTS.collusion
    cost: float = DEFAULTS.cost
    fee_at_risk: float = 0.0  # the fee a caught job forfeits: R on-chain, 0 for a batch job
    stake: float | None = None  # the node's stake, when the slash was sized to it
    open_jobs: int = 1  # jobs the stake must keep open at once

    @property
    def cheat_threshold(self) -> float:
        """``V* = p (1 - r)(R + S (1 - b)) - C``: a job worth more than this pays to cheat on
        at the recommended ``p`` and ``S`` (a self-disputing node keeps ``b`` of the slash)."""
        loss = self.fee_at_risk + self.slash * (1.0 - self.bounty_share)
        return self.sampling * (1.0 - self.collusion) * loss - self.cost

    @property
    def margin(self) -> float:
        """``p / p_min`` at the recommended parameters."""
        return self.sampling / self.minimum_sampling

    @property
    def slash_raised(self) -> bool:
        return self.slash > self.slash_requested

    @property
    def stake_per_open_job(self) -> float:
        """Each open job reserves one slash: stake bounds a node's open work."""
        return self.slash

    def stake_for(self, jobs_per_s: float, *, batch_size: int = 1) -> StakeRequirement:
        """The stake a node serving ``jobs_per_s`` needs with these parameters (the proof
        window as the proof time: the longest a disputed commitment stays open)."""
        return stake_for_throughput(
            jobs_per_s,
            self.challenge_window_s,
            self.proof_window_s,
            self.slash,
            batch_size=batch_size,
        )


def _ceil_significant(x: float, digits: int = 2) -> float:
    """Round ``x > 0`` up to ``digits`` significant figures (0.02195 -> 0.022)."""
    exponent = math.floor(math.log10(x)) - digits + 1
    steps = math.ceil(x / 10.0**exponent)
    return max(round(steps * 10.0**exponent, -exponent), x)


def recommend(
    cost: float = DEFAULTS.cost,
    reward: float = DEFAULTS.reward,
    slash: float = DEFAULTS.slash,
    collusion: float = DEFAULTS.collusion,
    *,
    value_at_risk: float = 0.0,
    safety_factor: float = DEFAULT_SAFETY_FACTOR,
    max_sampling: float = 0.10,
    bounty_share: float = DEFAULTS.bounty_share,
    proving_cost: float = DEFAULTS.proving_cost,
    bond_factor: float = 2.0,
    detection_latency_s: float = 30.0,
    proving_time_s: float = 120.0,
    window_factor: float = 4.0,
    fee_escrowed: bool = False,
    stake: float | None = None,
    open_jobs: int = 1,
) -> Recommendation:
    """Recommend ``p``, ``S``, the challenger bond and the windows for one model.

    ``p`` is ``safety_factor`` times the bound, evaluated with the slash a front-running node
    keeps (``S (1 - b)``) and the gain ``C + V``, rounded up to two significant figures. When
    that ``p`` would exceed ``max_sampling`` (re-running more jobs defeats the point of
    optimistic verification), ``p = max_sampling`` and ``S`` is raised until it satisfies the
    bound with the same margin: the value-at-risk caveat, sized.

    The challenger bond is ``bond_factor`` times the node's proving cost, so a griefer pays
    for every proof it forces. Windows are ``window_factor`` times the time an honest party
    needs: a challenger to see, re-run and dispute (``detection_latency_s``), a node to prove
    and defend (``proving_time_s``). On a public chain, add the censorship horizon you trust.

    ``fee_escrowed``: an on-chain job's fee is refunded when the job is invalid, so a caught
    node also loses ``R``; a batch's fee is paid off the chain and is not at risk (the default,
    the conservative case). ``stake`` (with ``open_jobs``, the jobs the node must keep open at
    once): each open job reserves one slash, so ``S <= stake / open_jobs``; when the slash the
    value needs is larger, ``S`` is that cap and ``p`` is raised to meet the bound with the same
    margin, above ``max_sampling`` if it must (a note says so); when even ``p = 1`` cannot
    deter, a :class:`ConfigError` names the stake that would.
    """
    _validate(cost, reward, slash, collusion)
    value = _non_negative("value at risk V", value_at_risk)
    factor = _finite("safety factor", safety_factor)
    if factor <= 1:  # at factor 1 the cheater breaks even: no margin at all
        raise ConfigError(f"safety factor must be > 1, got {safety_factor!r}")
    p_max = _fraction("max sampling", max_sampling)
    if p_max <= 0:
        raise ConfigError(f"max sampling must be > 0, got {max_sampling!r}")
    b = _bounty_share(bounty_share)
    proving = _positive("proving cost", proving_cost)
    bond_k = _finite("bond factor", bond_factor)
    if bond_k < 1:
        raise ConfigError(f"bond factor must be >= 1, got {bond_factor!r}")
    latency = _positive("detection latency", detection_latency_s)
    proving_time = _positive("proving time", proving_time_s)
    window_k = _finite("window factor", window_factor)
    if window_k < 1:
        raise ConfigError(f"window factor must be >= 1, got {window_factor!r}")

    jobs_open = open_jobs
    if isinstance(jobs_open, bool) or not isinstance(jobs_open, int) or jobs_open < 1:
        raise ConfigError(f"open jobs must be a whole number >= 1, got {open_jobs!r}")
    have = None if stake is None else _positive("stake", stake)

    notes: list[str] = []
    gain = cost + value
    at_risk = reward if fee_escrowed else 0.0  # the fee a caught job forfeits
    new_slash = float(slash)

    def bound_at(s: float) -> float:
        # (C + V) / ((1 - r)(R_at_risk + S (1 - b))); R_at_risk may be 0, S (1 - b) > 0.
        return gain / ((1.0 - collusion) * (at_risk + s * (1.0 - b)))

    p = factor * bound_at(new_slash)
    if p > p_max:
        # Smallest whole-token S with factor * gain / ((1-r)(R + S(1-b))) <= p_max.
        needed = (factor * gain / ((1.0 - collusion) * p_max) - at_risk) / (1.0 - b)
        new_slash = float(math.ceil(needed))
        p = p_max
        notes.append(
            f"slash raised from {slash:g} to {new_slash:g}: at p <= {p_max:.3g} a smaller "
            f"slash cannot deter a gain of {gain:g} per bad output"
        )
    else:
        p = min(_ceil_significant(p), p_max)
    if have is not None and new_slash * jobs_open > have:
        cap = math.floor(have / jobs_open)
        if cap <= 0 or factor * bound_at(cap) > 1:
            # p = 1 with margin `factor` needs factor * gain / ((1-r)(R + S(1-b))) <= 1.
            least = max(factor * gain / (1.0 - collusion) - at_risk, 0.0) / (1.0 - b)
            raise ConfigError(
                f"stake {have:g} for {jobs_open} open job(s) caps the slash at {cap:g}: no "
                f"sampling probability deters a gain of {gain:g} with margin {factor:g}; "
                f"it needs a stake of at least {math.ceil(least) * jobs_open:g}"
            )
        new_slash = float(cap)
        p = min(_ceil_significant(factor * bound_at(new_slash)), 1.0)
        notes.append(
            f"slash capped at {cap:g} = stake {have:g} / {jobs_open} open job(s) (each open "
            f"job reserves one slash); p raised to {p:.3g} to deter with the same margin"
            + (f", above max sampling {p_max:.3g}" if p > p_max else "")
        )
    minimum = bound_at(new_slash)
    if value > 0:
        notes.append(
            f"outputs move up to {value:g}: the slash is sized to that value, not to the "
            f"compute cost {cost:g}"
        )
    if b > 0:
        notes.append(
            f"the bound uses S x (1 - {b:g}) = {effective_slash(new_slash, b):g}: a caught "
            "node that front-runs the challenger's dispute gets the bounty share back"
        )
    notes.append(
        "the fee is counted as lost when caught (on-chain jobs: escrowed, refunded)"
        if fee_escrowed
        else "the fee is not counted as lost when caught: a batch's fee is paid off the chain"
    )
    notes.append(
        f"each open job reserves one slash ({new_slash:g}): a node serving k jobs/s needs "
        "k x (challenge window + proof window) x slash of stake"
    )
    challenge_window = math.ceil(window_k * latency)
    proof_window = math.ceil(window_k * proving_time)
    return Recommendation(
        sampling=p,
        minimum_sampling=minimum,
        slash=new_slash,
        slash_requested=float(slash),
        challenger_bond=float(math.ceil(bond_k * proving)),
        challenge_window_s=challenge_window,
        proof_window_s=proof_window,
        unbonding_delay_s=2 * (challenge_window + proof_window),
        value_at_risk=value,
        bounty_share=b,
        notes=tuple(notes),
        collusion=float(collusion),
        cost=float(cost),
        fee_at_risk=at_risk,
        stake=have,
        open_jobs=jobs_open,
    )
