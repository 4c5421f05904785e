"""``spotcheck economics``: the honesty condition, parameter recommendations, the simulation.

Probabilities are accepted as fractions (``0.05``) or percentages (``5%``). Every option
defaults to the protocol's defaults (:data:`spotcheck.economics.DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from spotcheck import economics as econ
from spotcheck.economics import DEFAULTS

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


@click.group(name="economics")
def economics_group() -> None:
    """Honesty condition, recommended parameters and a simulation of cheating strategies.

    Proof of Sampling: a node that skips inference on a job saves C; if an honest challenger
    samples the job (probability p (1 - r)) the node loses its reward R and is slashed S.
    Cheating does not pay when

    \b
        p > C / ((1 - r)(R + S))
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
) -> None:
    """Recommended p, slash, challenger bond, windows and stake."""
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
    ]
    if throughput is not None:
        need = rec.stake_for(throughput)
        rows.append(
            (
                f"stake at {throughput:g} jobs/s",
                _amount(need.stake),
                f"{need.open_jobs:,} jobs open over window + proof window {need.open_time_s:g} s",
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
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise click.ClickException(
                "--plot needs matplotlib: pip install 'spotcheck[plot]' (make setup installs it)"
            )
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
