"""Deploy the Spotcheck contracts and the ``spotcheck contracts`` commands.

Order: (TestToken), StakeManager, ModelRegistry, JobManager, DisputeManager, then the two
one-time ``initialize`` calls by the deployer that connect them, CheckPool (paid checks,
issue 15) and ``JobManager.setCheckPool``, then ExampleConsumer (owned by
the deployer: only its owner may spend its balance on fees; ``--consumer-owner`` starts the
two-step hand-over to the dApp's account, which then calls ``acceptOwnership``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spotcheck.ape_cli import ChainCommand
from spotcheck.chain import TOKEN, Deployment, DeployParams, default_deployment_path
from spotcheck.cli_options import (
    connect_contracts,
    deployment_option,
    dry_run_option,
    require_gas_funds,
)
from spotcheck.errors import ChainError, describe_revert

if TYPE_CHECKING:  # pragma: no cover
    from ape.api import AccountAPI

log = logging.getLogger(__name__)

#: (contract, constructor arguments in words) in deploy order; shown by --dry-run.
PLAN: tuple[tuple[str, str], ...] = (
    ("TestToken", "() unless --token is given"),
    ("StakeManager", "(token, minStake, unbondingDelay)"),
    ("ModelRegistry", "(stakeManager)"),
    ("JobManager", "(token, stakeManager, registry, commitTimeout)"),
    ("DisputeManager", "(token, stakeManager, registry, jobManager)"),
    ("StakeManager.initialize", "(jobManager, disputeManager)"),
    ("JobManager.initialize", "(disputeManager)"),
    ("CheckPool", "(jobManager, minBond, claimCollateral, exitDelay, claimMargin)"),
    ("JobManager.setCheckPool", "(checkPool)"),
    ("ExampleConsumer", "(jobManager, token); owner: the deployer"),
    ("ExampleConsumer.transferOwnership", "(consumerOwner) if --consumer-owner is given"),
)


def deploy_all(deployer: AccountAPI, params: DeployParams | None = None) -> Deployment:
    """Deploy and wire every contract from ``deployer``; returns the (unsaved) deployment."""
    from ape import chain, project

    from spotcheck.toolchain import ensure_full_compile

    ensure_full_compile()

    params = params or DeployParams()
    first_block = chain.blocks.height + 1
    if params.token is None:
        token = deployer.deploy(project.TestToken)
        token_address = str(token.address)
    else:
        token_address = params.token
    stake = deployer.deploy(
        project.StakeManager, token_address, params.min_stake, params.unbonding_delay
    )
    registry = deployer.deploy(project.ModelRegistry, stake.address)
    jobs = deployer.deploy(
        project.JobManager, token_address, stake.address, registry.address, params.commit_timeout
    )
    disputes = deployer.deploy(
        project.DisputeManager, token_address, stake.address, registry.address, jobs.address
    )
    stake.initialize(jobs.address, disputes.address, sender=deployer)
    jobs.initialize(disputes.address, sender=deployer)
    pool = deployer.deploy(
        project.CheckPool,
        jobs.address,
        params.check_min_bond,
        params.check_claim_collateral,
        params.check_exit_delay,
        params.check_claim_margin,
    )
    jobs.setCheckPool(pool.address, sender=deployer)
    consumer = (
        deployer.deploy(project.ExampleConsumer, jobs.address, token_address)
        if params.deploy_example_consumer
        else None
    )
    if consumer is not None and params.example_consumer_owner is not None:
        # Ownable2Step: the new owner becomes pending and must call acceptOwnership.
        consumer.transferOwnership(params.example_consumer_owner, sender=deployer)
    deployment = Deployment(
        chain_id=chain.chain_id,
        token=token_address,
        stake_manager=str(stake.address),
        model_registry=str(registry.address),
        job_manager=str(jobs.address),
        dispute_manager=str(disputes.address),
        example_consumer=str(consumer.address) if consumer is not None else None,
        deploy_block=first_block,
        check_pool=str(pool.address),
        params={k: v for k, v in asdict(params).items() if k != "token"},
    )
    log.info("deployed Spotcheck on chain %s: %s", deployment.chain_id, deployment)
    return deployment


@click.group()
def contracts() -> None:
    """Deploy and inspect the Spotcheck contracts."""


@contracts.command("deploy", cls=ChainCommand)
@click.option(
    "--min-stake",
    type=int,
    default=DeployParams.min_stake,
    show_default=True,
    help="Minimum stake (token base units).",
)
@click.option(
    "--unbonding-delay",
    type=int,
    default=DeployParams.unbonding_delay,
    show_default=True,
    help="Seconds between requestUnbond and withdrawStake.",
)
@click.option(
    "--commit-timeout",
    type=int,
    default=DeployParams.commit_timeout,
    show_default=True,
    help="Seconds a node has to commit an on-chain job.",
)
@click.option("--token", default=None, help="Existing ERC-20 (default: deploy TestToken).")
@click.option(
    "--consumer-owner",
    default=None,
    help="Hand ExampleConsumer to this address (two-step: it must call acceptOwnership; "
    "default: the deploying account owns it).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Deployment file (default .spotcheck/deployments/<chain id>.json).",
)
@dry_run_option("Print the plan; send no transaction.")
def deploy(
    account: AccountAPI,
    min_stake: int,
    unbonding_delay: int,
    commit_timeout: int,
    token: str | None,
    consumer_owner: str | None,
    out: Path | None,
    dry_run: bool,
) -> None:
    """Deploy and wire StakeManager, ModelRegistry, JobManager, DisputeManager."""
    from ape import chain

    params = DeployParams(
        min_stake=min_stake,
        unbonding_delay=unbonding_delay,
        commit_timeout=commit_timeout,
        token=token,
        example_consumer_owner=consumer_owner,
    )
    if dry_run:
        click.echo(f"dry run on chain {chain.chain_id} from {account.address}: {params}")
        for name, args in PLAN:
            click.echo(f"  {name}{args}")
        click.echo(f"would write {out or default_deployment_path(chain.chain_id)}")
        return
    deployment = deploy_all(account, params)
    path = deployment.save(out)
    click.echo(deployment.to_json(), nl=False)
    click.echo(f"saved {path}")
    if consumer_owner is not None:
        click.echo(
            f"ExampleConsumer ownership pending for {consumer_owner}: "
            "it must call acceptOwnership()"
        )


@contracts.command("mint", cls=ChainCommand)
@click.argument("amount", type=int)
@click.option("--to", "to", default=None, help="Recipient address (default: the account).")
@deployment_option
def mint(account: AccountAPI, amount: int, to: str | None, deployment: Path | None) -> None:
    """Mint AMOUNT whole TestTokens (local and test networks only: anyone can mint)."""
    deployed = connect_contracts(deployment)
    recipient = to or str(account.address)
    balance = mint_tokens(deployed.token, account, recipient, amount)
    click.echo(f"minted {amount} tokens to {recipient} (balance {balance})")


def mint_tokens(token: Any, account: AccountAPI, recipient: str, amount: int) -> int:
    """Mint ``amount`` whole tokens to ``recipient``; the recipient's balance after, in whole
    tokens. ConfigError (one line, nothing sent) when the account holds no ETH for gas;
    ChainError with the decoded revert when the chain refuses."""
    require_gas_funds(account)
    try:
        token.mint(recipient, amount * TOKEN, sender=account)
    except Exception as err:  # the chain refused (a token deployed with --token may not mint)
        raise ChainError(f"mint failed: {describe_revert(err)}") from err
    return int(token.balanceOf(recipient)) // TOKEN


@contracts.command(name="show")
@click.option("--chain-id", type=int, default=None, help="Chain id (default: latest file).")
@click.option(
    "--file", "path", type=click.Path(path_type=Path), default=None, help="Deployment file to show."
)
def show(chain_id: int | None, path: Path | None) -> None:
    """Print a saved deployment."""
    if path is None and chain_id is None:
        folder = default_deployment_path(0).parent
        files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise click.ClickException(f"no deployment in {folder}")
        path = files[-1]
    click.echo(Deployment.load(chain_id=chain_id, path=path).to_json(), nl=False)
