"""``spotcheck node``: the node operator's commands.

Every command connects through Ape (``--network``, ``--account``); every command that sends a
transaction takes ``--dry-run`` (gas estimate, nothing sent). Ape is imported only when a
command runs, so ``spotcheck node --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from spotcheck.ape_cli import ChainCommand
from spotcheck.cli_options import (
    configure_service_logging,
    connect_contracts,
    deployment_option,
    dry_run_option,
    format_amount,
    format_tokens,
    log_json_option,
    parse_amount,
    require_gas_funds,
)
from spotcheck.errors import ConfigError


def _chain(account: Any, deployment: Path | None, dry_run: bool = False) -> Any:
    from prover.chain_io import NodeChain

    return NodeChain(connect_contracts(deployment), account, dry_run=dry_run)


def _sending(account: Any, deployment: Path | None, dry_run: bool) -> Any:
    """The chain for a command that sends: refused at once (one line) when the account has no
    ETH for gas, before anything is read or sent."""
    if not dry_run:
        require_gas_funds(account)
    return _chain(account, deployment, dry_run)


def check_stake_amount(amount: int, staked: int, min_stake: int, unbonding_since: int) -> None:
    """Refuse a stake the contract would refuse, or one that leaves the node unable to serve:
    while unbonding (``NodeUnbonding``), or a total below the minimum (the node would hold
    stake it cannot commit with)."""
    if unbonding_since and staked > 0:
        raise ConfigError(
            f"this node is unbonding (since {unbonding_since}): staking reverts NodeUnbonding; "
            "withdraw first (`spotcheck node withdraw`), then stake again"
        )
    if staked + amount < min_stake:
        short = min_stake - staked
        raise ConfigError(
            f"staking {format_tokens(amount)} tokens leaves {format_tokens(staked + amount)}, "
            f"below the minimum stake {format_tokens(min_stake)}: stake at least "
            f"{format_tokens(short)}"
        )


def _report(action: str, tx: Any) -> None:
    if tx.dry_run:
        click.echo(f"dry run: {action} would use about {tx.gas_used} gas; nothing sent")
    else:
        click.echo(f"{action}: {tx.tx_hash} (gas {tx.gas_used})")


@click.group()
def node() -> None:
    """Node operator: stake, serve inference, commit, defend."""


def _stake(account: Any, deployment: Path | None, amount: str, dry_run: bool) -> None:
    value = parse_amount(amount)
    chain = _sending(account, deployment, dry_run)
    balance = chain.token_balance()
    if balance < value:
        raise ConfigError(
            f"{chain.address} holds {format_tokens(balance)} tokens, "
            f"less than {format_tokens(value)}; "
            "fund it first (local chains: `spotcheck contracts mint`)"
        )
    s = chain.stake()
    check_stake_amount(value, s.amount, s.min_stake, s.unbond_requested_at)
    approve = chain.approve_stake(value) if not dry_run else None
    if (
        dry_run
        and int(
            chain.contracts.token.allowance(chain.address, chain.contracts.stake_manager.address)
        )
        < value
    ):
        click.echo(f"dry run: would approve StakeManager for {format_amount(value)}, then stake")
        return
    if approve is not None:
        _report("approve", approve)
    _report(f"stake {format_amount(value)}", chain.add_stake(value))


@node.command(
    "stake",
    cls=ChainCommand,
    help="Stake AMOUNT tokens (1.5; base units: 1500wei); approves StakeManager if needed. "
    "Refused before sending when the total stays below the minimum or the node is unbonding.",
)
@deployment_option
@click.argument("amount")
@dry_run_option()
def stake(account: Any, deployment: Path | None, amount: str, dry_run: bool) -> None:
    _stake(account, deployment, amount, dry_run)


@node.command("top-up", cls=ChainCommand, help="Add AMOUNT tokens to the stake (same as `stake`).")
@deployment_option
@click.argument("amount")
@dry_run_option()
def top_up(account: Any, deployment: Path | None, amount: str, dry_run: bool) -> None:
    _stake(account, deployment, amount, dry_run)


@node.command(
    "unbond", cls=ChainCommand, help="Request unbonding: blocks new commitments from now on."
)
@deployment_option
@dry_run_option()
def unbond(account: Any, deployment: Path | None, dry_run: bool) -> None:
    chain = _sending(account, deployment, dry_run)
    _report("requestUnbond", chain.request_unbond())
    click.echo(f"withdraw after {chain.contracts.stake_manager.unbondingDelay()} s")


@node.command("withdraw", cls=ChainCommand, help="Withdraw the stake after the unbonding delay.")
@deployment_option
@dry_run_option()
def withdraw(account: Any, deployment: Path | None, dry_run: bool) -> None:
    _report("withdrawStake", _sending(account, deployment, dry_run).withdraw_stake())


@node.command(
    "claim", cls=ChainCommand, help="Withdraw credits: fees earned and dispute bonds won."
)
@deployment_option
@dry_run_option()
def claim(account: Any, deployment: Path | None, dry_run: bool) -> None:
    txs = _sending(account, deployment, dry_run).withdraw_credits()
    if not txs:
        click.echo("no credits to claim")
    for tx in txs:
        _report("withdrawCredits", tx)


@node.command(
    "price",
    cls=ChainCommand,
    help="Post this node's price for on-chain jobs of MODEL_ID (setPrice).",
)
@deployment_option
@click.argument("model_id")
@click.argument("amount")
@dry_run_option()
def price(account: Any, deployment: Path | None, model_id: str, amount: str, dry_run: bool) -> None:
    from spotcheck.encoding import parse_bytes32

    mid = parse_bytes32(model_id)
    value = parse_amount(amount.strip(), allow_zero=True)
    chain = _sending(account, deployment, dry_run)
    _report(f"setPrice {format_amount(value)}", chain.set_price(mid, value))
    if not dry_run:
        click.echo(f"price of model {model_id}: {format_amount(chain.price_of(mid))}")


@node.command(
    "status", cls=ChainCommand, help="Stake, locked stake, credits, open disputes and local work."
)
@deployment_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Node config (TOML) to also show the local database.",
)
def status(account: Any, deployment: Path | None, config_path: Path | None) -> None:
    chain = _chain(account, deployment)
    s = chain.stake()
    fees, bonds = chain.credits()
    click.echo(f"node           {chain.address}")
    click.echo(f"stake          {format_amount(s.amount)}")
    click.echo(f"locked         {format_amount(s.locked)}")
    click.echo(f"free           {format_amount(s.free)} (minimum {format_amount(s.min_stake)})")
    unbonding = "no" if not s.unbond_requested_at else f"since {s.unbond_requested_at}"
    click.echo(f"unbonding      {unbonding}")
    click.echo(f"open disputes  {s.open_disputes}")
    click.echo(f"credits        fees {format_amount(fees)}, bonds {format_amount(bonds)}")
    if config_path is not None:
        from prover.config import load_settings
        from prover.store import Store

        store = Store(load_settings(config_path).db_path)
        for table, counts in store.counts().items():
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
            click.echo(f"{table:<14} {shown}")
        store.close()


@node.command(
    "run",
    cls=ChainCommand,
    wait_for_rpc=True,
    help="Serve the configured models, commit, finalize and defend.",
)
@deployment_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="Node config (TOML); environment SPOTCHECK_NODE_* overrides it.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=None,
    help="DISHONEST MODE for tests and demos: share of outputs corrupted beyond tau.",
)
@click.option("--port", type=int, default=None, help="HTTP port (overrides the config).")
@log_json_option
def run(
    account: Any,
    deployment: Path | None,
    config_path: Path,
    fault_rate: float | None,
    port: int | None,
    log_json: bool,
) -> None:
    configure_service_logging(log_json)
    from prover.config import load_settings
    from prover.runner import run_node

    overrides: dict[str, Any] = {}
    settings = load_settings(config_path)
    if fault_rate is not None:
        overrides["fault_injection"] = {
            **settings.fault_injection.model_dump(),
            "corrupt_rate": fault_rate,
        }
    if port is not None:
        overrides["http"] = {**settings.http.model_dump(), "port": port}
    if overrides:
        settings = load_settings(config_path, **overrides)
    if not settings.models:
        raise ConfigError(f'{config_path} serves no model (add a [models."0x..."] table)')
    if settings.fault_injection.corrupt_rate > 0:
        click.secho(
            f"DISHONEST MODE: corrupting {settings.fault_injection.corrupt_rate:.0%} of "
            "outputs. This node will be slashed.",
            fg="red",
            bold=True,
            err=True,
        )
    if hasattr(account, "set_autosign"):
        account.set_autosign(True)  # receipts are signed per request
    contracts = connect_contracts(deployment or settings.deployment_path)
    run_node(settings, account, contracts)
