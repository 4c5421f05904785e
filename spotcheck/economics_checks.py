"""The challenger's side: paid checks, claim collateral, canaries, and when checking pays.

Paid checks (issue 15), as ``contracts/CheckPool.sol`` (its names in brackets) states them:

- a registered challenger claims, with its VRF proof, an on-chain job its key sampled at the
  model's rate (``samplingBps``, ``p`` here); a job that ends final pays a share of its own
  fee (``checkShareBps``, at most ``MAX_CHECK_SHARE_BPS`` = 50 %) split equally among its
  claimants: ``W / claimCount`` each with ``W = check_share x R``; an unclaimed job pays none;
- a claim on a job that ends invalid forfeits the claimant's collateral (``claimCollateral``,
  ``L``), which is burned (``forfeit``): paid to the disputer, a lazy claimant could win it
  back by front-running the dispute, and a node could earn it by disputing its own correct,
  claimed job from a second address (audit A4-1, A4-2);
- canaries: a node that cheats on a known schedule, on a share ``canary_rate`` (``k``) of the
  jobs; its operator disputes every canary nobody else disputed, so every canary ends invalid.

Per job a challenger samples (probability ``p``, independently of the others), with ``D``
diligent challengers (re-run at cost ``K``, claim correct jobs, dispute wrong ones) and ``Z``
lazy claimants (claim every sampled job without re-running), ``M = D + Z``, and ``g`` the gas
of one claim or dispute transaction:

- claim reward ``w = W h(M)``, ``h(n) = (1 - (1 - p)^n) / (n p)`` the expected ``1/claimCount``;
- dispute income ``beta = b S h(D)``: the first dispute wins the bounty share of the
  canary's slash;
- diligent, per sampled job: ``(1 - k)(w - g) + k (beta - g) - K``;
- lazy, per sampled job:     ``(1 - k)(w - g) - k (L + g)``.

So checking beats claiming blindly iff ``K < k (L + beta)`` (the gas cancels), a lazy claimant
loses money iff ``k > (w - g) / (w + L)``, and a diligent one earns iff
``(1 - k)(w - g) + k (beta - g) > K``.

Batch leaves (their fees are paid off the chain, so nothing is escrowed to share): at
``commitBatch`` the node deposits ``leafCheckFee`` (``F`` here) per leaf into the pool. A leaf
claimed and never invalidated pays ``F`` to its claimants once the batch is final (``F h(M)``
per claim); an unclaimed valid leaf's deposit goes back to the node; an invalidated leaf's
deposit is burned (a cheating node never gets it back). The formulas above hold for leaves
with ``w_leaf = F h(M)`` in place of ``w``: checking beats blind claiming on the same
``K < k (L + beta)``, a lazy claimant loses iff ``k > (w_leaf - g) / (w_leaf + L)``. An honest
node's checks cost it ``F (1 - (1 - p)^M)`` per leaf (the chance someone claims it); a diligent
challenger breaks even on leaves at ``F* = (K + (1 - k) g - k (beta - g)) / ((1 - k) h(M))``
(:func:`min_leaf_fee`). Real cheats that someone disputes count in ``k`` the
same way; a wrong job nobody disputes ends final and pays the lazy claimant (not modelled: it
only happens when nobody checks, the case canaries exist to rule out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spotcheck.economics import DEFAULTS, MAX_BOUNTY_SHARE
from spotcheck.economics_penalty import race_share
from spotcheck.errors import ConfigError

__all__ = [
    "CHECK_DEFAULTS",
    "MAX_CHECK_SHARE",
    "CheckGame",
    "CheckTerms",
    "check_game",
    "min_leaf_fee",
]


#: ``CheckPool.MAX_CHECK_SHARE_BPS / 10_000``: the node keeps at least half of a claimed fee.
MAX_CHECK_SHARE = 0.5


def _number(name: str, value: float, *, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not 0 <= value <= high:
        upper = "" if high == math.inf else f" and <= {high:g}"
        raise ConfigError(f"{name} must be >= 0{upper}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CheckTerms:
    """The paid-checks parameters and the challengers' costs (token units, fractions)."""

    fee: float = DEFAULTS.reward  # R: a job's fee
    check_share: float = 0.5  # checkShareBps / 10_000: W = check_share x R, split by claimants
    claim_collateral: float = 50.0  # L (claimCollateral): forfeited on a job that ends invalid
    rerun_cost: float = DEFAULTS.cost  # K: one re-run (the inference a node also pays)
    tx_gas: float = 0.01  # g: one claim or dispute transaction
    slash: float = DEFAULTS.slash  # S of the canary's model
    bounty_share: float = DEFAULTS.bounty_share  # b
    sampling: float = DEFAULTS.sampling  # p: each challenger's sampling probability
    canary_rate: float = 0.05  # k: share of jobs that end invalid (canaries)
    diligent: int = 3  # D
    lazy: int = 1  # Z
    #: F (leafCheckFee): the node's check deposit per batch leaf, paid to a claimed leaf's
    #: claimants; the default pays a leaf's check like a claimed job's (W at the defaults).
    leaf_fee: float = 0.5 * DEFAULTS.reward

    def __post_init__(self) -> None:
        _number("fee R", self.fee)
        _number("check share", self.check_share, high=MAX_CHECK_SHARE)
        _number("claim collateral L", self.claim_collateral)
        _number("re-run cost K", self.rerun_cost)
        _number("gas per transaction g", self.tx_gas)
        _number("slash S", self.slash)
        _number("bounty share b", self.bounty_share, high=MAX_BOUNTY_SHARE)
        p = _number("sampling probability p", self.sampling, high=1.0)
        if p == 0:
            raise ConfigError("sampling probability p must be > 0 for a challenger to claim")
        _number("canary rate k", self.canary_rate, high=1.0)
        _number("leaf check fee F", self.leaf_fee)
        for name, n in (("diligent challengers", self.diligent), ("lazy claimants", self.lazy)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ConfigError(f"{name} must be a whole number >= 0, got {n!r}")
        if self.diligent + self.lazy < 1:
            raise ConfigError("the check game needs at least one challenger")


CHECK_DEFAULTS = CheckTerms()


@dataclass(frozen=True)
class CheckGame:
    """Closed forms of one challenger's income, per job it samples, under :class:`CheckTerms`."""

    terms: CheckTerms

    @property
    def check_reward(self) -> float:
        """``W = check_share x R``: what one claimed final job pays its claimants together."""
        return self.terms.check_share * self.terms.fee

    @property
    def claim_reward(self) -> float:
        """``w = W h(D + Z)``: the expected payout of one claim on a final job."""
        t = self.terms
        return self.check_reward * race_share(t.diligent + t.lazy, t.sampling)

    @property
    def dispute_income(self) -> float:
        """``beta = b S h(D)``: a diligent challenger's expected prize on a canary."""
        t = self.terms
        if t.diligent == 0:
            return 0.0
        return t.bounty_share * t.slash * race_share(t.diligent, t.sampling)

    @property
    def diligent(self) -> float:
        """A diligent challenger's expected income per job it samples."""
        t = self.terms
        k = t.canary_rate
        w = self.claim_reward
        return (1 - k) * (w - t.tx_gas) + k * (self.dispute_income - t.tx_gas) - t.rerun_cost

    @property
    def lazy(self) -> float:
        """A lazy claimant's expected income per job it samples (it claims every one)."""
        t = self.terms
        k = t.canary_rate
        return (1 - k) * (self.claim_reward - t.tx_gas) - k * (t.claim_collateral + t.tx_gas)

    @property
    def lazy_late(self) -> float:
        """A lazy claimant that claims at the end of the window and skips jobs already disputed
        (``claim`` reverts ``NotClaimable`` on a Disputed job): it meets only the canaries no
        diligent challenger sampled, ``k (1 - p)^D``, which the operator disputes last.
        The model's other incomes assume claims land before disputes."""
        t = self.terms
        met = t.canary_rate * (1.0 - t.sampling) ** t.diligent
        return (1 - t.canary_rate) * (self.claim_reward - t.tx_gas) - met * (
            t.claim_collateral + t.tx_gas
        )

    @property
    def checking_beats_blind(self) -> bool:
        """``K < k (L + beta)``: re-running is worth more than claiming blindly."""
        t = self.terms
        return t.rerun_cost < t.canary_rate * (t.claim_collateral + self.dispute_income)

    @property
    def min_canary_rate(self) -> float:
        """``(w - g) / (w + L)``: the canary rate above which a lazy claimant loses money."""
        t = self.terms
        w = self.claim_reward
        if w + t.claim_collateral == 0:
            return 0.0 if w <= t.tx_gas else 1.0
        return max(w - t.tx_gas, 0.0) / (w + t.claim_collateral)

    @property
    def checks_pay_alone(self) -> bool:
        """``w - g > K``: the check reward alone pays for a re-run (without canary income)."""
        t = self.terms
        return self.claim_reward - t.tx_gas > t.rerun_cost

    @property
    def node_fee_given_up(self) -> float:
        """What checks cost an honest node per job: ``W`` on every job somebody claimed."""
        t = self.terms
        n = t.diligent + t.lazy
        claimed = 1.0 if t.sampling == 1 else -math.expm1(n * math.log1p(-t.sampling))
        return (1 - t.canary_rate) * claimed * self.check_reward

    @property
    def canary_cost(self) -> float:
        """Expected cost of one canary to its operator: the slash when a diligent challenger
        disputes first (the bounty is theirs), else the burned part (it disputes itself and
        recovers the bounty); less the inference it skipped."""
        t = self.terms
        nobody = math.exp(t.diligent * math.log1p(-t.sampling)) if t.sampling < 1 else 0.0
        if t.diligent == 0:
            nobody = 1.0
        self_disputed = t.slash * (1 - t.bounty_share)
        return (1 - nobody) * t.slash + nobody * self_disputed - t.rerun_cost

    # -- batch leaves (the node's check deposit) ---------------------------------------------

    def _claimed(self) -> float:
        """``1 - (1 - p)^M``: the chance at least one challenger samples (and claims) an item."""
        t = self.terms
        n = t.diligent + t.lazy
        return 1.0 if t.sampling == 1 else -math.expm1(n * math.log1p(-t.sampling))

    @property
    def leaf_claim_reward(self) -> float:
        """``w_leaf = F h(D + Z)``: the expected payout of one claim on a valid leaf."""
        t = self.terms
        return t.leaf_fee * race_share(t.diligent + t.lazy, t.sampling)

    @property
    def leaf_diligent(self) -> float:
        """A diligent challenger's expected income per batch leaf it samples."""
        t = self.terms
        k = t.canary_rate
        w = self.leaf_claim_reward
        return (1 - k) * (w - t.tx_gas) + k * (self.dispute_income - t.tx_gas) - t.rerun_cost

    @property
    def leaf_lazy(self) -> float:
        """A lazy claimant's expected income per batch leaf it samples (it claims every one)."""
        t = self.terms
        k = t.canary_rate
        return (1 - k) * (self.leaf_claim_reward - t.tx_gas) - k * (t.claim_collateral + t.tx_gas)

    @property
    def leaf_min_canary_rate(self) -> float:
        """``(w_leaf - g) / (w_leaf + L)``: the canary rate above which lazy leaf claims lose."""
        t = self.terms
        w = self.leaf_claim_reward
        if w + t.claim_collateral == 0:
            return 0.0 if w <= t.tx_gas else 1.0
        return max(w - t.tx_gas, 0.0) / (w + t.claim_collateral)

    @property
    def node_leaf_cost(self) -> float:
        """What checks cost an honest node per batch leaf: ``F`` when someone claims the leaf
        (the deposit of an unclaimed leaf comes back). A cheating node also loses ``F`` on every
        leaf that ends invalid (burned)."""
        return self._claimed() * self.terms.leaf_fee

    @property
    def leaf_checks_pay_alone(self) -> bool:
        """``w_leaf - g > K``: the leaf reward alone pays for a re-run."""
        t = self.terms
        return self.leaf_claim_reward - t.tx_gas > t.rerun_cost


def min_leaf_fee(terms: CheckTerms = CHECK_DEFAULTS) -> float:
    """``F*``: the smallest leaf check fee at which a diligent challenger's income per sampled
    leaf is >= 0, ``(K + (1 - k) g - k (beta - g)) / ((1 - k) h(M))`` (0 when canary income
    alone pays; ``inf`` when every leaf is a canary, ``k = 1``)."""
    game = CheckGame(terms)
    k = terms.canary_rate
    need = terms.rerun_cost + (1 - k) * terms.tx_gas - k * (game.dispute_income - terms.tx_gas)
    if need <= 0:
        return 0.0
    per_fee = (1 - k) * race_share(terms.diligent + terms.lazy, terms.sampling)
    return math.inf if per_fee == 0 else need / per_fee


def check_game(terms: CheckTerms = CHECK_DEFAULTS) -> CheckGame:
    """The closed forms for ``terms``."""
    return CheckGame(terms)
