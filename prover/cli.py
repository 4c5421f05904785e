"""``spotcheck node``: the node operator's commands.

Every command connects through Ape (``--network``, ``--account``); every command that sends a
transaction takes ``--dry-run`` (gas estimate, nothing sent). Ape is imported only when a
command runs, so ``spotcheck node --help`` stays fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import click

from spotcheck.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN = 10**18


def _amount(text: str) -> int:
    """Token amount ("250", "0.5") -> base units; "123wei" is taken as base units."""
    try:
        value = int(text[:-3]) if text.endswith("wei") else int(Decimal(text) * TOKEN)
    except (InvalidOperation, ValueError) as err:
        raise click.BadParameter(f"{text!r} is not an amount") from err
    if value <= 0:
        raise click.BadParameter("amount must be > 0")
    return value


def _fmt(base_units: int) -> str:
    return f"{Decimal(base_units) / TOKEN:f} ({base_units} base units)"


def _contracts(deployment: Path | None) -> Any:
    from spotcheck.chain import SpotcheckContracts

    return SpotcheckContracts.connect(path=deployment)


def _chain(account: Any, deployment: Path | None, dry_run: bool = False) -> Any:
    from prover.chain_actions import NodeChain

    return NodeChain(_contracts(deployment), account, dry_run=dry_run)


def _report(action: str, tx: Any) -> None:
    if tx.dry_run:
        click.echo(f"dry run: {action} would use about {tx.gas_used} gas; nothing sent")
    else:
        click.echo(f"{action}: {tx.tx_hash} (gas {tx.gas_used})")


_deployment_option = click.option(
    "--deployment",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Deployment file (default: .spotcheck/deployments/<chain id>.json).",
)
_dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Estimate gas and check the call would succeed; send nothing."
)


def _patient_chain_command(
    name: str, help_text: str
) -> Callable[[Callable[..., Any]], click.Command]:
    """Like ``chain_command``, but connecting waits out an unreachable RPC (with backoff,
    logging each attempt) instead of failing: a node started while its RPC is down waits for
    it, it does not exit and crash-loop under its supervisor."""
    from ape.cli import ConnectedProviderCommand, network_option
    from ape.cli.commands import parse_network
    from ape.exceptions import ProviderError

    from spotcheck import ape_cli

    class PatientProviderCommand(ConnectedProviderCommand):
        def invoke(self, ctx: click.Context) -> Any:
            delay = 1.0
            while True:
                network_ctx = parse_network(ctx)
                if network_ctx is None:
                    return super().invoke(ctx)
                try:
                    provider = network_ctx.__enter__()
                except ProviderError as err:
                    log.error("RPC unreachable (retrying in %.0f s): %s", delay, err)
                    time.sleep(delay)
                    delay = min(2 * delay, 30.0)
                    continue
                try:
                    return self._invoke(ctx, provider=provider)
                finally:
                    network_ctx.__exit__(None, None, None)

    def wrap(fn: Callable[..., Any]) -> click.Command:
        command = click.command(name, cls=PatientProviderCommand, help=help_text)
        return command(network_option()(ape_cli.account_option()(_deployment_option(fn))))

    return wrap


def _build_commands() -> dict[str, click.Command]:
    from spotcheck import ape_cli

    def chain_command(name: str, help_text: str) -> Callable[[Callable[..., Any]], click.Command]:
        return lambda fn: ape_cli.chain_command(name, help=help_text)(_deployment_option(fn))

    def stake_impl(account: Any, deployment: Path | None, amount: str, dry_run: bool) -> None:
        value = _amount(amount)
        chain = _chain(account, deployment, dry_run)
        balance = chain.token_balance()
        if balance < value:
            raise ConfigError(
                f"{chain.address} holds {_fmt(balance)} tokens, less than {_fmt(value)}; "
                "fund it first (local chains: `spotcheck contracts mint`)"
            )
        approve = chain.approve_stake(value) if not dry_run else None
        if (
            dry_run
            and int(
                chain.contracts.token.allowance(
                    chain.address, chain.contracts.stake_manager.address
                )
            )
            < value
        ):
            click.echo(f"dry run: would approve StakeManager for {_fmt(value)}, then stake")
            return
        if approve is not None:
            _report("approve", approve)
        _report(f"stake {_fmt(value)}", chain.add_stake(value))

    @chain_command("stake", "Stake AMOUNT tokens (approves StakeManager if needed).")
    @click.argument("amount")
    @_dry_run_option
    def stake(account: Any, deployment: Path | None, amount: str, dry_run: bool) -> None:
        stake_impl(account, deployment, amount, dry_run)

    @chain_command("top-up", "Add AMOUNT tokens to the stake (same as `stake`).")
    @click.argument("amount")
    @_dry_run_option
    def top_up(account: Any, deployment: Path | None, amount: str, dry_run: bool) -> None:
        stake_impl(account, deployment, amount, dry_run)

    @chain_command("unbond", "Request unbonding: blocks new commitments from now on.")
    @_dry_run_option
    def unbond(account: Any, deployment: Path | None, dry_run: bool) -> None:
        chain = _chain(account, deployment, dry_run)
        _report("requestUnbond", chain.request_unbond())
        click.echo(f"withdraw after {chain.contracts.stake_manager.unbondingDelay()} s")

    @chain_command("withdraw", "Withdraw the stake after the unbonding delay.")
    @_dry_run_option
    def withdraw(account: Any, deployment: Path | None, dry_run: bool) -> None:
        _report("withdrawStake", _chain(account, deployment, dry_run).withdraw_stake())

    @chain_command("claim", "Withdraw credits: fees earned and dispute bonds won.")
    @_dry_run_option
    def claim(account: Any, deployment: Path | None, dry_run: bool) -> None:
        txs = _chain(account, deployment, dry_run).withdraw_credits()
        if not txs:
            click.echo("no credits to claim")
        for tx in txs:
            _report("withdrawCredits", tx)

    @chain_command("price", "Post this node's price for on-chain jobs of MODEL_ID (setPrice).")
    @click.argument("model_id")
    @click.argument("amount")
    @_dry_run_option
    def price(
        account: Any, deployment: Path | None, model_id: str, amount: str, dry_run: bool
    ) -> None:
        from spotcheck.encoding import parse_bytes32

        mid = parse_bytes32(model_id)
        value = 0 if amount.strip() in ("0", "0wei") else _amount(amount)
        chain = _chain(account, deployment, dry_run)
        _report(f"setPrice {_fmt(value)}", chain.set_price(mid, value))
        if not dry_run:
            click.echo(f"price of model {model_id}: {_fmt(chain.price_of(mid))}")

    @chain_command("status", "Stake, locked stake, credits, open disputes and local work.")
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
        click.echo(f"stake          {_fmt(s.amount)}")
        click.echo(f"locked         {_fmt(s.locked)}")
        click.echo(f"free           {_fmt(s.free)} (minimum {_fmt(s.min_stake)})")
        unbonding = "no" if not s.unbond_requested_at else f"since {s.unbond_requested_at}"
        click.echo(f"unbonding      {unbonding}")
        click.echo(f"open disputes  {s.open_disputes}")
        click.echo(f"credits        fees {_fmt(fees)}, bonds {_fmt(bonds)}")
        if config_path is not None:
            from prover.config import load_settings
            from prover.store import Store

            store = Store(load_settings(config_path).db_path)
            for table, counts in store.counts().items():
                shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
                click.echo(f"{table:<14} {shown}")
            store.close()

    @_patient_chain_command("run", "Serve the configured models, commit, finalize and defend.")
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
    def run(
        account: Any,
        deployment: Path | None,
        config_path: Path,
        fault_rate: float | None,
        port: int | None,
    ) -> None:
        from prover.config import load_settings
        from prover.node import run_node

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
        contracts = _contracts(deployment or settings.deployment_path)
        run_node(settings, account, contracts)

    return {
        "stake": stake,
        "top-up": top_up,
        "unbond": unbond,
        "withdraw": withdraw,
        "claim": claim,
        "status": status,
        "price": price,
        "run": run,
    }


class _LazyNodeGroup(click.Group):
    """Builds the Ape-backed commands on first use, so importing this module never imports Ape."""

    HELP: ClassVar[dict[str, str]] = {
        "claim": "Withdraw credits: fees earned and dispute bonds won.",
        "price": "Post this node's price for on-chain jobs of MODEL_ID (setPrice).",
        "run": "Serve the configured models, commit, finalize and defend.",
        "stake": "Stake AMOUNT tokens (approves StakeManager if needed).",
        "status": "Stake, locked stake, credits, open disputes and local work.",
        "top-up": "Add AMOUNT tokens to the stake (same as `stake`).",
        "unbond": "Request unbonding: blocks new commitments from now on.",
        "withdraw": "Withdraw the stake after the unbonding delay.",
    }
    _built: ClassVar[dict[str, click.Command] | None] = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.HELP)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(sorted(self.HELP.items()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.HELP:
            return None
        if _LazyNodeGroup._built is None:
            _LazyNodeGroup._built = _build_commands()
        return _LazyNodeGroup._built[cmd_name]


@click.group(cls=_LazyNodeGroup)
def node() -> None:
    """Node operator: stake, serve inference, commit, defend."""
