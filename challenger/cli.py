"""``spotcheck challenger``: run the validator, show its state, withdraw its credits.

``run`` and ``withdraw`` connect through Ape (``--network``, ``--account``); ``status`` reads
only the local database. Ape is imported when a chain command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from challenger.config import TOKEN, load_settings

log = logging.getLogger(__name__)

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Challenger config (TOML); SPOTCHECK_CHALLENGER_* variables override it.",
)
_state_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the database and the sampling secret.",
)
_deployment_option = click.option(
    "--deployment",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Deployment file (default: .spotcheck/deployments/<chain id>.json).",
)


def _amount(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text[:-3]) if text.endswith("wei") else int(Decimal(text) * TOKEN)
    except (InvalidOperation, ValueError) as err:
        raise click.BadParameter(f"{text!r} is not an amount") from err


def _fmt(base_units: int) -> str:
    return f"{Decimal(base_units) / TOKEN:f}"


def _contracts(deployment: Path | None) -> Any:
    from spotcheck.chain import SpotcheckContracts

    return SpotcheckContracts.connect(path=deployment)


def _run_impl(
    account: Any,
    deployment: Path | None,
    config_path: Path | None,
    state_dir: Path | None,
    dry_run: bool,
    max_bond_at_risk: str | None,
    confirmations: int | None,
    http_port: int | None,
    once: bool,
) -> None:
    from challenger.api import Health
    from challenger.metrics import Metrics
    from challenger.runner import build_challenger, make_app, run_loop, serve_http

    overrides: dict[str, Any] = {
        "state_dir": state_dir,
        "deployment_path": deployment,
        "dry_run": True if dry_run else None,
        "max_bond_at_risk": _amount(max_bond_at_risk),
        "confirmations": confirmations,
    }
    settings = load_settings(config_path, **overrides)
    if http_port is not None:
        settings = settings.model_copy(
            update={"http": settings.http.model_copy(update={"port": http_port})}
        )
    if not settings.dry_run and hasattr(account, "set_autosign"):
        # A keyfile account would ask to confirm every dispute: a service cannot wait for that.
        # The passphrase comes from APE_ACCOUNTS_<alias>_PASSPHRASE or is asked once here.
        account.set_autosign(True)
    challenger = build_challenger(settings, account, _contracts(settings.deployment_path))
    if once:  # one tick: wait for the listings it starts (a loop collects them next tick)
        challenger.options = dataclasses.replace(
            challenger.options, fetch_wait_s=settings.batch_timeout_s + 3.0
        )
    metrics = Metrics()
    health = Health(settings.confirmations, settings.ready_slack)
    if settings.http.enabled and not once:
        serve_http(settings, make_app(settings, metrics, health))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    mode = "DRY RUN (nothing is sent)" if settings.dry_run else "live"
    click.echo(
        f"challenger {challenger.chain.me} {mode}; bond cap {_fmt(settings.max_bond_at_risk)}; "
        f"{len(settings.models)} model(s); state in {settings.state_dir}"
    )

    def show(report: Any) -> None:
        if (
            report.events
            or report.sampled
            or report.disputed
            or report.won
            or report.lost
            or report.leaf_requested
            or report.revealed
            or report.leaf_settled
        ):
            click.echo(
                f"events {report.events} sampled {report.sampled} matched {report.matched} "
                f"mismatched {report.mismatched} disputed {report.disputed} "
                f"reported {report.reported} won {report.won} lost {report.lost} "
                f"withheld {report.withheld} leaf requests {report.leaf_requested} "
                f"revealed {report.revealed} settled {report.leaf_settled}"
            )

    try:
        run_loop(
            challenger,
            settings,
            metrics=metrics,
            health=health,
            stop=stop,
            max_ticks=1 if once else None,
            on_tick=show,
        )
    finally:
        challenger.fetcher.close()


def _withdraw_impl(account: Any, deployment: Path | None, dry_run: bool) -> None:
    from challenger.chain_io import ApeChain

    chain = ApeChain.from_contracts(_contracts(deployment), account)
    amount = chain.credits()
    if amount == 0:
        click.echo("no credits to withdraw")
        return
    if dry_run:
        click.echo(f"dry run: would withdraw {_fmt(amount)} tokens; nothing sent")
        return
    tx = chain.withdraw_credits()
    click.echo(f"withdrew {_fmt(amount)} tokens: {tx.tx_hash}")


def _chain_commands() -> dict[str, click.Command]:
    from spotcheck import ape_cli

    def chain_command(name: str, help_text: str) -> Callable[[Callable[..., Any]], click.Command]:
        return lambda fn: ape_cli.chain_command(name, help=help_text)(_deployment_option(fn))

    @chain_command("run", "Follow commitments, sample, re-execute, dispute, settle, withdraw.")
    @_config_option
    @_state_option
    @click.option("--dry-run", is_flag=True, help="Report what would be disputed; send nothing.")
    @click.option("--max-bond-at-risk", default=None, help="Cap on bond in open disputes (tokens).")
    @click.option("--confirmations", type=int, default=None, help="Confirmation depth (blocks).")
    @click.option("--http-port", type=int, default=None, help="Port of /health /ready /metrics.")
    @click.option("--once", is_flag=True, help="Run one tick and exit (cron, tests).")
    def run(account: Any, deployment: Path | None, **kwargs: Any) -> None:
        _run_impl(account, deployment, **kwargs)

    @chain_command("withdraw", "Withdraw credits (returned bonds and bounties).")
    @click.option("--dry-run", is_flag=True, help="Show the amount; send nothing.")
    def withdraw(account: Any, deployment: Path | None, dry_run: bool) -> None:
        _withdraw_impl(account, deployment, dry_run)

    return {"run": run, "withdraw": withdraw}


@click.command("status", help="Job states, disputes and credits from the local database.")
@_config_option
@_state_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path | None, state_dir: Path | None, as_json: bool) -> None:
    from challenger.runner import read_status

    settings = load_settings(config_path, state_dir=state_dir)
    if not settings.db_path.is_file():
        raise click.ClickException(f"no challenger database at {settings.db_path}")
    data = read_status(settings.db_path)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"database: {settings.db_path}")
    for state, n in sorted(data["states"].items()):
        click.echo(f"  {state:<13} {n}")
    for name, n in sorted(data["counters"].items()):
        click.echo(f"  {name:<13} {n}")
    click.echo(f"  withdrawn     {_fmt(data['withdrawn'])} tokens")
    lr = data["leaf_requests"]
    click.echo(
        f"  leaf requests opened {lr['opened']}, revealed {lr['revealed']}, "
        f"settled {lr['settled']}, pending {lr['pending']}, missed {lr['missed']}"
    )
    for d in data["open_disputes"]:
        click.echo(
            f"  open dispute {d['dispute_id']} {d['kind']} {d['ref']}/{d['job_id']} "
            f"node {d['node']} {d['state']} proof deadline {d['proof_deadline']}"
        )
    for r in data["open_leaf_requests"]:
        click.echo(
            f"  leaf request {r['request_id']} batch {r['batch_id']} index {r['index']} "
            f"node {r['node']} {r['state']} reveal deadline {r['reveal_deadline']}"
        )


class _ChallengerGroup(click.Group):
    """Chain commands are built on first use (Ape's CLI options import Ape)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["run", "status", "withdraw"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "status":
            return status
        if cmd_name in ("run", "withdraw"):
            return _chain_commands()[cmd_name]
        return None


@click.group("challenger", cls=_ChallengerGroup)
def challenger() -> None:
    """Validator: sample commitments, re-execute, dispute, settle, withdraw."""
