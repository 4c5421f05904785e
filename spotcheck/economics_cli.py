"""``spotcheck economics``: the honesty condition, parameter recommendations, the simulation.

Probabilities are accepted as fractions (``0.05``) or percentages (``5%``). Every option
defaults to the protocol's defaults (:data:`spotcheck.economics.DEFAULTS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from spotcheck import economics as econ
from spotcheck import economics_penalty as penalty
from spotcheck.economics import DEFAULTS
from spotcheck.economics_checks import CHECK_DEFAULTS, CheckTerms, check_game, min_leaf_fee

F = TypeVar("F", bound=Callable[..., Any])


class Probability(click.ParamType):
    """A probability written as a fraction (``0.05``) or a percentage (``5%``)."""

    name = "probability"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            return float(text) * scale
        except ValueError:
            self.fail(f"{value!r} is not a number or a percentage like 5%", param, ctx)


PROBABILITY = Probability()


def _model_options(func: F) -> F:
    """The four parameters of the bound, plus the value at risk."""
    options = [
        click.option(
            "--cost",
            "-C",
            type=float,
            default=DEFAULTS.cost,
            show_default=True,
            help="C: cost of honest inference per job (tokens).",
        ),
        click.option(
            "--reward",
            "-R",
            type=float,
            default=DEFAULTS.reward,
            show_default=True,
            help="R: reward (fee) per job.",
        ),
        click.option(
            "--slash",
            "-S",
            type=float,
            default=DEFAULTS.slash,
            show_default=True,
            help="S: tokens slashed from a node caught cheating.",
        ),
        click.option(
            "--collusion",
            "-r",
            type=PROBABILITY,
            default=DEFAULTS.collusion,
            show_default=True,
            help="r: share of challengers colluding with the node (they never report).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _value_option(func: F) -> F:
    return click.option(
        "--value-at-risk",
        "-V",
        type=float,
        default=0.0,
        show_default=True,
        help="V: value one bad output can move (a price, a loan); the gain is then C + V.",
    )(func)


def _pct(x: float) -> str:
    """A probability as a percentage: ``0.05 -> '5 %'``, ``0.010974 -> '1.10 %'``."""
    percent = x * 100
    if percent == round(percent):
        return f"{percent:.0f} %"
    return f"{percent:.2f} %" if percent >= 0.01 else f"{percent:.2g} %"


def _num(x: float) -> str:
    """A signed amount with three decimals, without a "-0.000" from rounding noise."""
    return f"{round(x, 3) + 0.0:+.3f}"


def _amount(x: float) -> str:
    """A token amount: whole numbers with thousands separators, else six significant digits."""
    return f"{x:,.0f}" if x == round(x) and abs(x) < 1e21 else f"{x:,.6g}"


def _params_line(cost: float, reward: float, slash: float, collusion: float, value: float) -> str:
    line = f"C = {cost:g}, R = {reward:g}, S = {slash:g}, r = {_pct(collusion)}"
    return line + (f", V = {value:g}" if value else "")


def _need_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(
            "--plot needs matplotlib: pip install 'spotcheck[plot]' (make setup installs it)"
        )


@click.group(name="economics")
def economics_group() -> None:
    """Honesty condition, what the contracts take, the challenger's side, recommendations.

    Proof of Sampling: a node that skips inference on a job saves C; if an honest challenger
    samples the job (probability p (1 - r)) the node loses its reward R and is slashed S.
    Cheating does not pay when

    \b
        p > C / ((1 - r)(R + S))

    That flat bound is the on-chain-job case with no self-dispute and jobs of equal value.
    `threshold` gives what the contracts take (the bounty a self-disputing node recovers, the
    fee a batch does not escrow) and the job value above which cheating pays; `checks` the
    challenger's side (paid checks, canaries, claim collateral).
    """


@economics_group.command("bound")
@_model_options
@_value_option
@click.option(
    "--p",
    "sampling",
    type=PROBABILITY,
    default=None,
    help="A proposed sampling probability to check against the bound (e.g. 5%).",
)
@click.option(
    "--safety",
    type=float,
    default=econ.DEFAULT_SAFETY_FACTOR,
    show_default=True,
    help="Wanted margin: a proposal is SAFE at this multiple of the minimum.",
)
def bound(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    value_at_risk: float,
    sampling: float | None,
    safety: float,
) -> None:
    """Minimum sampling probability, and a verdict on a proposed --p."""
    minimum = econ.min_sampling_probability(
        cost, reward, slash, collusion, value_at_risk=value_at_risk
    )
    gain = cost + value_at_risk
    click.echo("Cheating does not pay when  p > (C + V) / ((1 - r)(R + S))")
    click.echo(f"  with {_params_line(cost, reward, slash, collusion, value_at_risk)}")
    click.echo("")
    if minimum >= 1:
        needed = gain / (1.0 - collusion) - reward
        click.echo(
            "No sampling probability is enough: even if every job is re-run, cheating gains "
            f"{gain:g} per job and risks only {(1 - collusion) * (reward + slash):g}."
        )
        click.echo(f"Raise the slash S above {needed:.6g} (and keep p well above the bound).")
    else:
        click.echo(
            f"Minimum sampling probability: p > {_pct(minimum)} ({minimum:.6f}), "
            f"i.e. re-run more than 1 job in {1 / minimum:,.0f}."
        )
    if sampling is None:
        return
    check = econ.check_sampling(
        cost,
        reward,
        slash,
        collusion,
        sampling,
        value_at_risk=value_at_risk,
        safety_factor=safety,
    )
    verdict = check.verdict
    click.echo("")
    headline = {
        econ.Verdict.SAFE: f"SAFE: {check.margin:.2f}x the minimum (wanted >= {safety:g}x).",
        econ.Verdict.THIN: (
            f"THIN: above the minimum, but only {check.margin:.2f}x (wanted >= {safety:g}x)."
        ),
        econ.Verdict.UNSAFE: (
            f"UNSAFE: {check.margin:.2f}x the minimum; cheating pays (or breaks even)."
        ),
    }[verdict]
    click.echo(f"Proposed p = {_pct(sampling)}: {headline}")
    profit = check.cheater_profit_per_job
    if profit < 0:
        click.echo(
            f"A node that cheats on every job loses {-profit:.4g} per job on average "
            "compared with honest work."
        )
    else:
        click.echo(
            f"A node that cheats on every job gains {profit:.4g} per job on average "
            "compared with honest work."
        )


@economics_group.command("recommend")
@_model_options
@_value_option
@click.option(
    "--safety",
    type=float,
    default=econ.DEFAULT_SAFETY_FACTOR,
    show_default=True,
    help="Margin: recommended p is this multiple of the minimum.",
)
@click.option(
    "--max-sampling",
    type=PROBABILITY,
    default=0.10,
    show_default=True,
    help="Highest p worth paying for; above it the slash is raised instead.",
)
@click.option(
    "--bounty-share",
    type=PROBABILITY,
    default=DEFAULTS.bounty_share,
    show_default=True,
    help="b: share of the slash paid to the challenger (a front-running node gets it back).",
)
@click.option(
    "--proving-cost",
    type=float,
    default=DEFAULTS.proving_cost,
    show_default=True,
    help="Node's cost to answer one dispute with a zk proof (the bond must cover it).",
)
@click.option(
    "--detection-latency",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a challenger needs to see a commitment, re-run it and dispute.",
)
@click.option(
    "--proving-time",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds a node needs to prove a job and get its defence included.",
)
@click.option(
    "--throughput",
    type=float,
    default=None,
    help="Jobs/s a node should serve: also print the stake that backs them.",
)
@click.option(
    "--fee-escrowed/--fee-not-escrowed",
    default=False,
    show_default=True,
    help="An on-chain job's fee is refunded when invalid (a caught node loses R too); a "
    "batch's fee is paid off the chain and is not at risk (the conservative default).",
)
@click.option(
    "--stake",
    "have",
    type=float,
    default=None,
    help="The node's stake: the slash is capped at stake / --open-jobs and p sized to it.",
)
@click.option(
    "--open-jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs the stake must keep open at once (each reserves one slash).",
)
def recommend(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    value_at_risk: float,
    safety: float,
    max_sampling: float,
    bounty_share: float,
    proving_cost: float,
    detection_latency: float,
    proving_time: float,
    throughput: float | None,
    fee_escrowed: bool,
    have: float | None,
    open_jobs: int,
) -> None:
    """Recommended p and slash for a value at risk (and a stake), bond, windows."""
    rec = econ.recommend(
        cost,
        reward,
        slash,
        collusion,
        value_at_risk=value_at_risk,
        safety_factor=safety,
        max_sampling=max_sampling,
        bounty_share=bounty_share,
        proving_cost=proving_cost,
        detection_latency_s=detection_latency,
        proving_time_s=proving_time,
        fee_escrowed=fee_escrowed,
        stake=have,
        open_jobs=open_jobs,
    )
    click.echo(f"Recommended parameters for {_params_line(cost, reward, slash, collusion, 0)}")
    if value_at_risk:
        click.echo(f"  and outputs that can move V = {value_at_risk:g}")
    click.echo("")
    slash_why = "as requested" if not rec.slash_raised else f"raised from {rec.slash_requested:g}"
    rows = [
        (
            "sampling probability p",
            _pct(rec.sampling),
            f"{rec.margin:.2f}x the minimum {_pct(rec.minimum_sampling)}",
        ),
        ("slash S", f"{rec.slash:g}", slash_why),
        (
            "challenger bond",
            f"{rec.challenger_bond:g}",
            f"covers the node's proving cost {proving_cost:g} with margin",
        ),
        (
            "bounty share",
            _pct(rec.bounty_share),
            f"bountyBps {round(rec.bounty_share * 10_000)}; the rest of a slash is burned",
        ),
        (
            "challenge window",
            f"{rec.challenge_window_s} s",
            f"vs {detection_latency:g} s a challenger needs",
        ),
        ("proof window", f"{rec.proof_window_s} s", f"vs {proving_time:g} s a node needs"),
        ("unbonding delay", f"{rec.unbonding_delay_s} s", "2x (challenge + proof window)"),
        ("stake per open job", f"{rec.stake_per_open_job:g}", "each open job reserves one slash"),
        (
            "cheat threshold V*",
            _amount(max(rec.cheat_threshold, 0.0)),
            "jobs worth more than this pay to cheat on: keep every output's value below it",
        ),
    ]
    if have is not None:
        rows.append(
            (
                "stake",
                _amount(have),
                f"backs {int(have // rec.slash):,} open job(s) at this slash",
            )
        )
    if throughput is not None:
        need = rec.stake_for(throughput)
        rows.append(
            (
                f"stake at {throughput:g} jobs/s",
                _amount(need.stake),
                f"{need.open_jobs:,} jobs open over window + proof window {need.open_time_s:g} s",
            )
        )
    # Batch leaves: the node's check deposit per leaf, sized so that a diligent challenger's
    # re-run of a sampled leaf breaks even on the deposit alone (no canary income, k = 0), at
    # the recommended p and with the default challenger counts.
    leaf_terms = CheckTerms(
        fee=reward,
        rerun_cost=cost,
        slash=rec.slash,
        bounty_share=rec.bounty_share,
        sampling=rec.sampling,
        canary_rate=0.0,
    )
    leaf_fee = min_leaf_fee(leaf_terms)
    leaf_cost = check_game(CheckTerms(**{**leaf_terms.__dict__, "leaf_fee": leaf_fee}))
    rows.append(
        (
            "leaf check fee F",
            _amount(leaf_fee),
            f"leafCheckFee: a checked leaf pays its re-run (K = {cost:g}) without canaries; "
            f"costs an honest node {_amount(leaf_cost.node_leaf_cost)} per leaf",
        )
    )
    for name, value, why in rows:
        click.echo(f"  {name:<24}{value:>12}   {why}")
    click.echo("")
    click.echo("Notes:")
    for note in rec.notes:
        click.echo(f"  - {note}")
    click.echo("  - on a public chain, lengthen both windows to the censorship horizon you trust")


@economics_group.command("stake")
@click.option(
    "--throughput",
    type=float,
    required=True,
    help="Jobs per second the node commits (on-chain and batched together).",
)
@click.option(
    "--challenge-window",
    type=float,
    default=600.0,
    show_default=True,
    help="The model's challenge window (s): every commitment is open at least this long.",
)
@click.option(
    "--proof-time",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds a disputed commitment (or a requested leaf) stays open while the node "
    "proves or reveals; at most the proof window.",
)
@click.option(
    "--slash",
    "-S",
    type=float,
    default=DEFAULTS.slash,
    show_default=True,
    help="S: the model's slashAmount, reserved per open job.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs per committed batch (a batch reserves all of them at its commit).",
)
@click.option(
    "--stake",
    "have",
    type=float,
    default=None,
    help="Stake the node has: also print the throughput it backs.",
)
def stake(
    throughput: float,
    challenge_window: float,
    proof_time: float,
    slash: float,
    batch_size: int,
    have: float | None,
) -> None:
    """The stake a node needs for a throughput: every open commitment fully backed.

    \b
        stake = jobs/s x (challengeWindow + proof time) x slash
    """
    need = econ.stake_for_throughput(
        throughput, challenge_window, proof_time, slash, batch_size=batch_size
    )
    click.echo(
        "Every open commitment is fully backed: a batch of n jobs reserves n x S until final."
    )
    click.echo("  stake = jobs/s x (challengeWindow + proof time) x S")
    click.echo(
        f"  with {throughput:g} jobs/s, window {challenge_window:g} s + proof time "
        f"{proof_time:g} s, S = {slash:g}"
        + (f", batches of {batch_size:,}" if batch_size > 1 else "")
    )
    click.echo("")
    click.echo(
        f"Open jobs at once: {need.open_jobs:,} "
        f"({throughput:g} x {need.open_time_s:g} s"
        + (", in whole batches)" if batch_size > 1 else ")")
    )
    click.echo(f"Stake needed:      {_amount(need.stake)}")
    if have is not None:
        rate = econ.max_throughput(have, challenge_window, proof_time, slash)
        verdict = "enough" if have >= need.stake else "NOT enough"
        click.echo(
            f"Stake {_amount(have)} is {verdict}: it backs {rate:,.4g} jobs/s at these windows."
        )
    click.echo(
        "Keep headroom: batches finalize a little after their windows, and disputes or leaf "
        "requests keep a batch open until they resolve."
    )


@economics_group.command("simulate")
@_model_options
@click.option(
    "--p",
    "samplings",
    type=PROBABILITY,
    multiple=True,
    help="Sampling probability to simulate (repeatable). Default: 0.5x, 1x, 2x the bound "
    "and the protocol default.",
)
@click.option(
    "--q",
    "cheat_fractions",
    type=PROBABILITY,
    multiple=True,
    help="Share of jobs the cheater skips (repeatable). Default: 0 (honest), 10 %, 100 %.",
)
@click.option("--jobs", type=click.IntRange(min=2), default=200_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write a PNG of the cheater's profit against p for several slashes.",
)
def simulate(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    samplings: tuple[float, ...],
    cheat_fractions: tuple[float, ...],
    jobs: int,
    seed: int,
    plot_path: str | None,
) -> None:
    """Monte-Carlo of honest and cheating nodes (with --plot, a PNG)."""
    from spotcheck import simulation

    minimum = econ.min_sampling_probability(cost, reward, slash, collusion)
    if not samplings:
        candidates = [f * minimum for f in (0.5, 1.0, 2.0)] + [DEFAULTS.sampling]
        samplings = tuple(sorted({round(p, 12) for p in candidates if p <= 1}))
    fractions = cheat_fractions or (0.0, 0.1, 1.0)
    strategies = [
        simulation.HONEST if q == 0 else simulation.Strategy(f"cheat {_pct(q)}", q)
        for q in fractions
    ]
    results = simulation.sweep(
        cost, reward, slash, collusion, samplings, strategies, n_jobs=jobs, seed=seed
    )
    click.echo(
        f"{jobs:,} simulated jobs per row (seed {seed}); "
        f"{_params_line(cost, reward, slash, collusion, 0)}"
    )
    click.echo(
        f"Bound: cheating does not pay when p > {_pct(minimum)}.\nProfit is per job, compared "
        f"with an honest node (which earns R - C = {reward - cost:g}); 99 % intervals."
    )
    click.echo("")
    header = (
        f"{'p':>8}  {'strategy':<16}{'simulated profit [99 % CI]':<30}"
        f"{'closed form':>11}{'caught':>8}  verdict"
    )
    click.echo(header)
    click.echo("-" * (len(header) + 10))
    for res in results:
        low, high = res.ci
        if res.strategy.cheat_fraction == 0:
            verdict = "honest baseline"
        else:
            verdict = {
                True: "cheating pays",
                False: "cheating loses",
                None: "too close to call",
            }[res.cheating_pays]
        simulated = f"{_num(res.mean_profit)} [{_num(low)}, {_num(high)}]"
        click.echo(
            f"{_pct(res.sampling):>8}  {res.strategy.name:<16}{simulated:<30}"
            f"{_num(res.closed_form_profit):>11}{res.cheats_caught:>8}  {verdict}"
        )
    if plot_path is not None:
        _need_matplotlib()
        below_max = max([*samplings, 3 * minimum])
        path = simulation.plot_profit_vs_p(
            plot_path,
            cost=cost,
            reward=reward,
            slashes=(slash / 4, slash / 2, slash, 2 * slash),
            collusion=collusion,
            p_max=min(1.0, 1.2 * below_max),
            simulate_slash=slash,
            n_jobs=jobs,
            seed=seed,
        )
        click.echo("")
        click.echo(f"plot written to {path}")


@economics_group.command("threshold")
@_model_options
@click.option("--p", "sampling", type=PROBABILITY, default=DEFAULTS.sampling, show_default=True)
@click.option(
    "--bounty-share",
    type=PROBABILITY,
    default=DEFAULTS.bounty_share,
    show_default=True,
    help="b: share of a slash the disputer gets (a self-disputing node gets it back).",
)
@click.option(
    "--self-dispute",
    type=PROBABILITY,
    default=1.0,
    show_default=True,
    help="f: probability that a caught node front-runs the dispute from a second address.",
)
@click.option(
    "--fee-escrowed/--fee-not-escrowed",
    default=False,
    show_default=True,
    help="On-chain job (fee refunded when invalid) or batch job (fee paid off the chain).",
)
@click.option(
    "--mean-value",
    type=float,
    default=None,
    help="Jobs' values are exponential with this mean: print what choosing pays.",
)
@click.option(
    "--simulate",
    "batches",
    type=click.IntRange(min=2),
    default=None,
    help="Also simulate this many batches of --batch-size jobs under the contracts' rules.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write a PNG (needs matplotlib).",
)
def threshold(
    cost: float,
    reward: float,
    slash: float,
    collusion: float,
    sampling: float,
    bounty_share: float,
    self_dispute: float,
    fee_escrowed: bool,
    mean_value: float | None,
    batches: int | None,
    batch_size: int,
    seed: int,
    plot_path: str | None,
) -> None:
    """What a caught job costs under the contracts, and the job value above which cheating pays.

    \b
        L  = fee (if escrowed) + S - f b S
        V* = p (1 - r) L - C          cheat on a job worth V  <=>  V > V*
    """
    loss = penalty.caught_loss(
        slash, bounty_share, fee=reward, fee_escrowed=fee_escrowed, self_dispute=self_dispute
    )
    detection = econ.detection_probability(sampling, collusion)
    v_star = penalty.cheat_threshold(cost, detection, loss.total)
    kind = "on-chain job (fee escrowed)" if fee_escrowed else "batch job (fee not escrowed)"
    click.echo(f"A caught {kind}, {_params_line(cost, reward, slash, collusion, 0)}:")
    click.echo(f"  slash taken            {loss.slash:>10g}   min(S, reservation, locked) = S")
    click.echo(
        f"  bounty recovered       {loss.bounty_back:>10g}   f b S, f = {self_dispute:g}, "
        f"b = {bounty_share:g}"
    )
    click.echo(f"  fee lost               {loss.fee_lost:>10g}")
    click.echo(f"  loss L                 {loss.total:>10g}")
    click.echo("")
    click.echo(
        f"Detection d = p (1 - r) = {detection:.6g}; expected loss per cheated job "
        f"d L = {detection * loss.total:.6g}."
    )
    if v_star < 0:
        click.echo(f"V* = {v_star:.6g} < 0: cheating pays on every job, even worth nothing.")
    else:
        click.echo(f"V* = d L - C = {v_star:.6g}: a job worth more than this pays to cheat on.")
    if mean_value is not None:
        profit = penalty.selective_profit_exponential(cost, mean_value, detection, loss.total)
        click.echo(
            f"Values exponential with mean {mean_value:g}: a node that cheats exactly above V* "
            f"gains {profit:.6g} per job over honest work."
        )
    if batches is not None:
        from spotcheck import simulation

        res = simulation.simulate_contract_node(
            cost=cost,
            fee=reward,
            slash=slash,
            collusion=collusion,
            sampling=sampling,
            bounty_share=bounty_share,
            mean_value=mean_value or 0.0,
            cheat_fraction=None if mean_value else 1.0,
            self_dispute=self_dispute,
            fee_escrowed=fee_escrowed,
            batch_size=batch_size,
            n_batches=batches,
            seed=seed,
        )
        low, high = res.profit.ci
        what = "cheating above V*" if mean_value else "cheating on every job"
        click.echo(
            f"Simulated {res.jobs:,} jobs ({what}, seed {seed}): profit per job "
            f"{_num(res.profit.mean)} [{_num(low)}, {_num(high)}] (99 %), closed form "
            f"{_num(res.profit.closed_form)}; {res.leaves_caught:,} caught."
        )
    if plot_path is not None:
        _need_matplotlib()
        from spotcheck import simulation

        path = simulation.plot_selective_profit(
            plot_path,
            cost=cost,
            fee=reward,
            slash=slash,
            collusion=collusion,
            bounty_share=bounty_share,
            seed=seed,
        )
        click.echo(f"plot written to {path}")


@economics_group.command("checks")
@click.option("--fee", "-R", type=float, default=CHECK_DEFAULTS.fee, show_default=True)
@click.option(
    "--check-share",
    type=PROBABILITY,
    default=CHECK_DEFAULTS.check_share,
    show_default=True,
    help="checkShareBps: share of a claimed final job's fee split among its claimants "
    "(at most 50 %).",
)
@click.option(
    "--collateral",
    "-L",
    type=float,
    default=CHECK_DEFAULTS.claim_collateral,
    show_default=True,
    help="L: claim collateral, forfeited on a job that ends invalid.",
)
@click.option(
    "--rerun-cost",
    "-K",
    type=float,
    default=CHECK_DEFAULTS.rerun_cost,
    show_default=True,
    help="K: one re-run.",
)
@click.option("--gas", type=float, default=CHECK_DEFAULTS.tx_gas, show_default=True)
@click.option("--slash", "-S", type=float, default=CHECK_DEFAULTS.slash, show_default=True)
@click.option(
    "--bounty-share", type=PROBABILITY, default=CHECK_DEFAULTS.bounty_share, show_default=True
)
@click.option(
    "--p", "sampling", type=PROBABILITY, default=CHECK_DEFAULTS.sampling, show_default=True
)
@click.option(
    "--canary-rate",
    "-k",
    type=PROBABILITY,
    default=CHECK_DEFAULTS.canary_rate,
    show_default=True,
    help="k: share of jobs that are canaries (cheated on purpose; they end invalid).",
)
@click.option(
    "--diligent", type=click.IntRange(min=0), default=CHECK_DEFAULTS.diligent, show_default=True
)
@click.option("--lazy", type=click.IntRange(min=0), default=CHECK_DEFAULTS.lazy, show_default=True)
@click.option(
    "--leaf-fee",
    "-F",
    type=float,
    default=CHECK_DEFAULTS.leaf_fee,
    show_default=True,
    help="F: leafCheckFee, the node's check deposit per batch leaf (paid to its claimants).",
)
@click.option(
    "--simulate",
    "jobs",
    type=click.IntRange(min=2),
    default=None,
    help="Also simulate this many jobs and compare with the closed forms.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write a PNG (needs matplotlib).",
)
def checks(
    fee: float,
    check_share: float,
    collateral: float,
    rerun_cost: float,
    gas: float,
    slash: float,
    bounty_share: float,
    sampling: float,
    canary_rate: float,
    diligent: int,
    lazy: int,
    leaf_fee: float,
    jobs: int | None,
    seed: int,
    plot_path: str | None,
) -> None:
    """The challenger's side: paid checks, canaries, and when checking beats claiming blindly.

    \b
        checking beats blind claiming  <=>  K < k (L + beta)
        a lazy claimant loses money    <=>  k > (w - g) / (w + L)
    """
    terms = CheckTerms(
        fee=fee,
        check_share=check_share,
        claim_collateral=collateral,
        rerun_cost=rerun_cost,
        tx_gas=gas,
        slash=slash,
        bounty_share=bounty_share,
        sampling=sampling,
        canary_rate=canary_rate,
        diligent=diligent,
        lazy=lazy,
        leaf_fee=leaf_fee,
    )
    game = check_game(terms)
    click.echo(
        f"Paid checks: W = {check_share:g} x R = {game.check_reward:g}, L = {collateral:g}, "
        f"K = {rerun_cost:g}, "
        f"g = {gas:g}, p = {_pct(sampling)}, canaries k = {_pct(canary_rate)}, "
        f"{diligent} diligent + {lazy} lazy challengers"
    )
    click.echo("")
    click.echo(f"  claim reward w            {game.claim_reward:>10.4f}   W x E[1/claimCount]")
    click.echo(
        f"  dispute income beta       {game.dispute_income:>10.4f}   b S x first-dispute-wins share"
    )
    click.echo(f"  diligent, per sampled job {_num(game.diligent):>10}")
    click.echo(f"  lazy, per sampled job     {_num(game.lazy):>10}")
    click.echo(
        f"  lazy, claiming late       {_num(game.lazy_late):>10}   skips disputed jobs: meets "
        "only canaries no diligent challenger sampled"
    )
    click.echo(f"  lazy loses above k =      {_pct(game.min_canary_rate):>10}")
    click.echo(f"  an honest node gives up   {game.node_fee_given_up:>10.4f}   per job, to checks")
    click.echo(f"  one canary costs its operator {game.canary_cost:.4g}")
    click.echo("")
    click.echo(f"Batch leaves: the node deposits F = {leaf_fee:g} per leaf at commitBatch")
    click.echo(
        f"  leaf claim reward w_leaf   {game.leaf_claim_reward:>10.4f}   F x E[1/claimCount]"
    )
    click.echo(f"  diligent, per sampled leaf {_num(game.leaf_diligent):>10}")
    click.echo(f"  lazy, per sampled leaf     {_num(game.leaf_lazy):>10}")
    click.echo(f"  lazy loses above k =       {_pct(game.leaf_min_canary_rate):>10}")
    click.echo(f"  an honest node pays        {game.node_leaf_cost:>10.4f}   per leaf, to checks")
    click.echo(f"  break-even leaf fee F*     {_amount(min_leaf_fee(terms)):>10}")
    click.echo("")
    if not game.checks_pay_alone:
        click.echo(
            f"The check reward alone (w - g = {game.claim_reward - gas:.4g}) does not pay for a "
            f"re-run (K = {rerun_cost:g}): diligent checkers live on canary disputes."
        )
    verdict = "beats" if game.checking_beats_blind else "does NOT beat"
    click.echo(
        f"Checking {verdict} claiming blindly: K = {rerun_cost:g} vs k (L + beta) = "
        f"{canary_rate * (collateral + game.dispute_income):.4g}."
    )
    if jobs is not None:
        from spotcheck import simulation

        res = simulation.simulate_checks(terms, n_jobs=jobs, seed=seed)
        click.echo(f"Simulated {jobs:,} jobs (seed {seed}), income per job of the network, 99 %:")
        for name, est in (("diligent", res.diligent), ("lazy", res.lazy)):
            if math.isnan(est.mean):
                continue
            low, high = est.ci
            click.echo(
                f"  {name:<9}{_num(est.mean)} [{_num(low)}, {_num(high)}]  closed form "
                f"{_num(est.closed_form)}  ({est.sigmas_from_zero:.0f} standard errors from 0)"
            )
        click.echo(
            f"  {res.canaries:,} canaries, {res.canaries_disputed_by_checkers:,} disputed by "
            f"diligent challengers, {res.lazy_forfeits:,} lazy claims forfeited"
        )
    if plot_path is not None:
        _need_matplotlib()
        from spotcheck import simulation

        path = simulation.plot_checks_vs_canary_rate(
            plot_path, terms, k_max=max(0.1, 2 * canary_rate), seed=seed
        )
        click.echo(f"plot written to {path}")
