"""What a caught cheat costs a node, as the contracts compute it, and which jobs pay to cheat on.

The flat "-S per caught job" of :mod:`spotcheck.economics` is refined here to what
``JobManager``, ``DisputeManager`` and ``StakeManager`` do:

- **The clamp.** A slash is drawn only from the caught job's own commitment:
  ``onBatchLeafInvalidated`` takes ``min(slashAmount, batch.reserved)`` and
  ``StakeManager.slash`` takes ``min(amount, locked)``. A batch of ``n`` jobs reserves
  ``n x S`` at ``commitBatch``, so the clamp never bites on the deployed contracts (each leaf is
  slashed at most once); :func:`slash_taken` and :func:`batch_slashed` model it anyway, so a
  change to the reservation rule shows up in the numbers (``reservation < n x S``).
- **The bounty a cheater recovers.** The first dispute wins. A node that sees an honest dispute
  coming opens its own from a second address, does not defend, and is credited its bond back
  plus ``bountyBps`` of its own slash: it loses ``S (1 - b)`` (the burned part), not ``S``.
- **The fee.** An on-chain job's fee is escrowed and goes back to the requester when the job
  is invalid (``onJobInvalidated``): a caught node also loses ``R``. A batch's fee is paid off
  the chain; the contracts cannot take it back: a caught batch job loses only the slash.
- **The value an output moves.** A job whose output moves value ``V`` gains ``C + V`` when
  cheated. A node that sees the values before it commits cheats exactly on the jobs above the
  threshold :func:`cheat_threshold`: ``V* = p (1 - r) L - C`` with ``L`` the caught loss.
- **First-dispute-wins.** Only one challenger earns a job's bounty (the others' ``openDispute``
  reverts ``DisputeExists``): :func:`race_share` is an honest challenger's expected share.

Money is in token units (floats); probabilities are fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from spotcheck.economics import MAX_BOUNTY_SHARE
from spotcheck.errors import ConfigError

__all__ = [
    "CaughtLoss",
    "batch_slashed",
    "caught_loss",
    "cheat_threshold",
    "expected_batch_loss",
    "race_share",
    "selective_profit",
    "selective_profit_exponential",
    "slash_taken",
]


def _number(name: str, value: float, *, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        upper = "" if high == math.inf else f", <= {high:g}"
        raise ConfigError(f"{name} must be finite, >= {low:g}{upper}, got {value!r}")
    return float(value)


def _count(name: str, value: int, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# The clamp: a slash comes out of its own commitment's reservation, and out of locked stake.


def slash_taken(slash: float, reserved: float, locked: float) -> float:
    """The tokens one invalid leaf (or job) actually loses: ``min(S, reserved, locked)``.

    ``reserved`` is what is left of the commitment's reservation (``Batch.reserved``; an
    on-chain job's is ``S``), ``locked`` the node's locked stake (``StakeManager.slash``).
    """
    s = _number("slash S", slash)
    return min(s, _number("reservation", reserved), _number("locked stake", locked))


def batch_slashed(
    count: int, invalid: int, slash: float, reservation: float | None = None
) -> float:
    """Total slashed from one batch of ``count`` leaves with ``invalid`` of them proven bad.

    Each invalid leaf takes ``min(S, what is left)`` of the batch's reservation, which the
    contracts set to ``count x S`` (``None``): then every leaf loses a full ``S``. A smaller
    ``reservation`` shows the clamp: the batch never loses more than it reserved.
    """
    n = _count("batch size", count, low=1)
    k = _count("invalid leaves", invalid)
    if k > n:
        raise ConfigError(f"invalid leaves must be <= batch size {n}, got {k}")
    s = _number("slash S", slash)
    reserved = n * s if reservation is None else _number("reservation", reservation)
    return min(k * s, reserved)


# ---------------------------------------------------------------------------------------------
# What one caught job costs.


@dataclass(frozen=True)
class CaughtLoss:
    """The parts of what a caught job costs its node (token units)."""

    slash: float  # taken from the reservation
    bounty_back: float  # credited to the node's own second address when it disputed itself
    fee_lost: float  # an escrowed fee refunded to the requester (0 for a batch job)

    @property
    def total(self) -> float:
        """``fee_lost + slash - bounty_back``: the node's loss, the burn included."""
        return self.fee_lost + self.slash - self.bounty_back

    @property
    def burned(self) -> float:
        """The part of the slash nobody gets back when the node disputes itself."""
        return self.slash - self.bounty_back


def caught_loss(
    slash: float,
    bounty_share: float,
    *,
    fee: float = 0.0,
    fee_escrowed: bool = False,
    self_dispute: float = 1.0,
) -> CaughtLoss:
    """What a caught job costs: ``S - f b S`` plus the fee when it was escrowed.

    ``self_dispute`` ``f`` is the probability that the node front-runs the honest dispute with
    its own (1: always, the worst case the defaults are designed for; 0: never). Its own
    dispute's bond comes back with the bounty (``credits[claimant] += bond + bounty``), so the
    bond costs it nothing but gas.
    """
    s = _number("slash S", slash)
    b = _number("bounty share b", bounty_share, high=MAX_BOUNTY_SHARE)
    f = _number("self-dispute probability f", self_dispute, high=1.0)
    r = _number("fee R", fee)
    return CaughtLoss(slash=s, bounty_back=f * b * s, fee_lost=r if fee_escrowed else 0.0)


def cheat_threshold(cost: float, detection: float, loss: float) -> float:
    """The value above which a job pays to cheat on: ``V* = d L - C``.

    ``d = p (1 - r)`` is the probability that an honest challenger samples the job, ``L`` the
    :attr:`CaughtLoss.total`. Cheating on a job worth ``V`` pays iff ``C + V > d L``: a node
    that knows the values when it commits cheats on every job above ``V*`` (negative ``V*``:
    on every job). At the defaults (``C = 1, p = 5 %, r = 0.3, S = 100, b = 0.25``, a batch job,
    front-running) ``V* = 0.035 x 75 - 1 = 1.625``.
    """
    c = _number("cost of inference C", cost)
    d = _number("detection probability d", detection, high=1.0)
    return d * _number("caught loss L", loss) - c


def race_share(challengers: int, sampling: float) -> float:
    """An honest challenger's expected share of a first-wins prize, given it sampled the job.

    The other ``challengers - 1`` sample independently with probability ``p``; the prize goes
    to one of the ``1 + X`` who did, each equally likely: ``E[1 / (1 + X)]`` with
    ``X ~ Binomial(n - 1, p)``, which is ``(1 - (1 - p)^n) / (n p)`` (1 when ``p = 0``).
    """
    n = _count("challengers", challengers, low=1)
    p = _number("sampling probability p", sampling, high=1.0)
    if p == 0:
        return 1.0
    return -math.expm1(n * math.log1p(-p)) / (n * p) if p < 1 else 1.0 / n


# ---------------------------------------------------------------------------------------------
# A node that chooses which jobs to cheat on.


def selective_profit(cost: float, values: Sequence[float], detection: float, loss: float) -> float:
    """Mean profit per job over honest play of cheating exactly on jobs above ``V*``.

    ``mean(max(C + V - d L, 0))`` over the jobs' values: the best a node that sees the values
    can do; positive as soon as one job is worth more than ``V*``.
    """
    threshold = cheat_threshold(cost, detection, loss)
    if not values:
        raise ConfigError("selective profit needs at least one job value")
    vs = [_number("job value V", v) for v in values]
    return sum(max(v - threshold, 0.0) for v in vs) / len(vs)


def selective_profit_exponential(
    cost: float, mean_value: float, detection: float, loss: float
) -> float:
    """The same for values drawn exponentially with mean ``mu`` (many small jobs, a few big).

    ``E[(V - V*)^+]`` is ``mu e^(-V*/mu)`` for ``V* >= 0`` and ``mu - V*`` below 0 (every job
    cheated). Never zero for ``mu > 0``: a node facing jobs of unequal value always finds some
    worth cheating on, which is why ``S`` must be sized to the largest value one output moves.
    """
    mu = _number("mean job value", mean_value)
    threshold = cheat_threshold(cost, detection, loss)
    if threshold < 0:
        return mu - threshold
    if mu == 0:
        return 0.0
    return mu * math.exp(-threshold / mu)


def expected_batch_loss(
    count: int,
    caught_probability: float,
    slash: float,
    bounty_share: float,
    *,
    reservation: float | None = None,
    self_dispute: float = 1.0,
) -> float:
    """Expected tokens a batch loses to slashes, the clamp included (an exact binomial sum).

    Each of ``count`` leaves is caught independently with ``caught_probability``; the batch
    loses ``min(k S, reservation)`` for ``k`` caught leaves, less the bounty share ``b`` of each
    leaf's slash the node gets back when it disputes itself (probability ``f``). With the
    contracts' reservation ``count x S`` this is ``count q S (1 - f b)``; a smaller one shows
    what the clamp would forgive.
    """
    n = _count("batch size", count, low=1)
    q = _number("caught probability", caught_probability, high=1.0)
    b = _number("bounty share b", bounty_share, high=MAX_BOUNTY_SHARE)
    keep = 1.0 - b * _number("self-dispute probability f", self_dispute, high=1.0)
    if q in (0.0, 1.0):
        return batch_slashed(n, round(q * n), slash, reservation) * keep
    total = 0.0
    for k in range(n + 1):
        log_weight = (
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(q)
            + (n - k) * math.log1p(-q)
        )
        total += math.exp(log_weight) * batch_slashed(n, k, slash, reservation)
    return total * keep
