"""``spotcheck challenger``: run the validator, show its state, withdraw its credits.

``run`` and ``withdraw`` connect through Ape (``--network``, ``--account``); ``status`` reads
only the local database. Ape is imported when a chain command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spotcheck.ape_cli import ChainCommand
from spotcheck.cli_options import (
    TOKENS,
    configure_service_logging,
    connect_contracts,
    deployment_option,
    dry_run_option,
    format_tokens,
    log_json_option,
)

if TYPE_CHECKING:
    from challenger.config import ChallengerSettings

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


@click.group("challenger")
def challenger() -> None:
    """Validator: sample commitments, re-execute, dispute, settle, withdraw."""


def run_settings(
    config_path: Path | None,
    *,
    state_dir: Path | None = None,
    deployment: Path | None = None,
    dry_run: bool = False,
    max_bond_at_risk: str | None = None,
    confirmations: int | None = None,
) -> ChallengerSettings:
    """``challenger run``'s settings: the TOML file, then its flags (a flag given wins)."""
    from challenger.config import load_settings

    overrides: dict[str, Any] = {
        "state_dir": state_dir,
        "deployment_path": deployment,
        "dry_run": True if dry_run else None,
        # tokens, as in the TOML file (the settings parse and check them: one-line errors)
        "max_bond_at_risk": max_bond_at_risk,
        "confirmations": confirmations,
    }
    return load_settings(config_path, **overrides)


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
    from challenger.metrics import Metrics
    from challenger.runner import build_challenger, make_app, make_health, run_loop
    from challenger.startup import (
        check_claim_rates,
        check_model_count,
        check_models,
        check_port,
        check_proving_keys,
        serve_checked,
    )
    from spotcheck.kit.serve import free_port

    settings = run_settings(
        config_path,
        state_dir=state_dir,
        deployment=deployment,
        dry_run=dry_run,
        max_bond_at_risk=max_bond_at_risk,
        confirmations=confirmations,
    )
    if http_port is not None:
        settings = settings.model_copy(
            update={"http": settings.http.model_copy(update={"port": http_port})}
        )
    # Start-up checks (challenger/startup.py): each failure is one line and exit code 1.
    check_model_count(len(settings.models), dry_run=settings.dry_run)
    serving = settings.http.enabled and not once
    if serving:
        if settings.http.port == 0:  # "any free port": chosen here, so it can be printed
            port = free_port(settings.http.host)
            settings = settings.model_copy(
                update={"http": settings.http.model_copy(update={"port": port})}
            )
        check_port(settings.http.host, settings.http.port)
    if not settings.dry_run and hasattr(account, "set_autosign"):
        # A keyfile account would ask to confirm every dispute: a service cannot wait for that.
        # The passphrase comes from APE_ACCOUNTS_<alias>_PASSPHRASE or is asked once here.
        account.set_autosign(True)
    challenger = build_challenger(settings, account, connect_contracts(settings.deployment_path))
    try:
        registered = check_models(
            challenger.chain,
            {bytes.fromhex(k[2:]): m.onnx_path for k, m in settings.models.items()},
        )
        if challenger.defender is not None:
            from challenger.runner import model_files

            check_proving_keys(model_files(settings), registered)
        if challenger.claimer is not None:
            check_claim_rates(challenger.claimer.chain, challenger.policy)
        if once:  # one tick: wait for the listings it starts (a loop collects them next tick)
            challenger.options = dataclasses.replace(
                challenger.options, fetch_wait_s=settings.batch_timeout_s + 3.0
            )
        metrics = Metrics()
        health = make_health(settings)
        where = "no HTTP server"
        if serving:
            serve_checked(
                make_app(settings, metrics, health), settings.http.host, settings.http.port
            )
            where = f"http://{settings.http.host}:{settings.http.port}"
    except BaseException:
        challenger.close()
        raise
    stop = threading.Event()  # the kit's loop sets it on SIGINT / SIGTERM
    mode = "DRY RUN (nothing is sent)" if settings.dry_run else "live"
    click.echo(
        f"challenger {challenger.chain.me} {mode}; "
        f"bond cap {format_tokens(settings.max_bond_at_risk)}; "
        f"{len(settings.models)} model(s); {where}; state in {settings.state_dir}"
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
            or report.claims_sent
            or report.claims_paid
            or report.claims_forfeited
            or report.defences_sent
            or report.defences_too_late
        ):
            click.echo(
                f"events {report.events} sampled {report.sampled} matched {report.matched} "
                f"mismatched {report.mismatched} disputed {report.disputed} "
                f"reported {report.reported} won {report.won} lost {report.lost} "
                f"withheld {report.withheld} leaf requests {report.leaf_requested} "
                f"revealed {report.revealed} settled {report.leaf_settled} "
                f"claims sent {report.claims_sent} paid {report.claims_paid} "
                f"forfeited {report.claims_forfeited} defences sent {report.defences_sent} "
                f"won {report.defences_won} too late {report.defences_too_late}"
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
        challenger.close()


def _withdraw_impl(account: Any, deployment: Path | None, dry_run: bool) -> None:
    from challenger.chain_io import ApeChain

    chain = ApeChain.from_contracts(connect_contracts(deployment), account)
    amount = chain.credits()
    if amount == 0:
        click.echo("no credits to withdraw")
        return
    if dry_run:
        click.echo(f"dry run: would withdraw {format_tokens(amount)} tokens; nothing sent")
        return
    tx = chain.withdraw_credits()
    click.echo(f"withdrew {format_tokens(amount)} tokens: {tx.tx_hash}")


@challenger.command(
    "run",
    cls=ChainCommand,
    help="Follow commitments, sample, re-execute, dispute, settle, withdraw.",
)
@deployment_option
@_config_option
@_state_option
@dry_run_option("Report what would be disputed; send nothing.")
@click.option("--max-bond-at-risk", default=None, help="Cap on bond in open disputes (tokens).")
@click.option("--confirmations", type=int, default=None, help="Confirmation depth (blocks).")
@click.option("--http-port", type=int, default=None, help="Port of /health /ready /metrics.")
@click.option("--once", is_flag=True, help="Run one tick and exit (cron, tests).")
@log_json_option
def run(account: Any, deployment: Path | None, log_json: bool, **kwargs: Any) -> None:
    configure_service_logging(log_json)
    _run_impl(account, deployment, **kwargs)


@challenger.command(
    "withdraw", cls=ChainCommand, help="Withdraw credits (returned bonds and bounties)."
)
@deployment_option
@dry_run_option("Show the amount; send nothing.")
def withdraw(account: Any, deployment: Path | None, dry_run: bool) -> None:
    _withdraw_impl(account, deployment, dry_run)


def _dispute_impl(
    account: Any,
    deployment: Path | None,
    config_path: Path | None,
    job_id: int | None,
    batch_id: int | None,
    index: int | None,
    yes: bool,
    dry_run: bool,
) -> None:
    from challenger.batches import BatchClient, FetchLimits
    from challenger.chain_io import ApeChain
    from challenger.config import load_settings
    from challenger.manual import judge, leaf_target, onchain_target, refusal, send
    from challenger.runner import ModelCatalog

    if (job_id is None) == (batch_id is None) or (batch_id is None) != (index is None):
        raise click.UsageError("give a JOB_ID, or --batch with --index for a batch leaf")
    settings = load_settings(config_path, deployment_path=deployment)
    chain = ApeChain.from_contracts(connect_contracts(settings.deployment_path), account)
    if job_id is not None:
        target = onchain_target(chain, job_id)
    else:
        assert batch_id is not None and index is not None
        limits = FetchLimits(
            deadline_s=settings.batch_timeout_s, max_bytes=settings.max_listing_bytes
        )
        client = BatchClient(limits=limits)
        try:
            target = leaf_target(chain, batch_id, index, client)
        finally:
            client.close()
    model = chain.model(target.model_id)
    mid = "0x" + target.model_id.hex()
    click.echo(f"{target.label}: model {mid}, node {target.node}")
    click.echo(f"  committed output {target.output_q}")
    click.echo("  re-running with the configured model files ...")
    reexec = ModelCatalog(settings)(model)
    if reexec is None:
        raise click.ClickException(
            f'model {mid} has no files in the challenger config: add [models."{mid}"]'
        )
    check = judge(target, model, reexec, settings.screen)
    diffs = f"screen diff {check.screen_diff}, witness diff {check.witness_diff}, tau {model.tau}"
    click.echo(f"verdict: {check.verdict.name} ({check.reason}; {diffs})")
    why = refusal(chain, target, model, check)
    if why is not None:
        if not check.disputable:
            click.echo(f"nothing to dispute: {why}")
            return
        raise click.ClickException(f"not sending: {why}")
    bond = model.challenger_bond
    call = "openDispute" if target.batch_id is None else "openBatchDispute"
    if dry_run or not yes:
        click.echo(
            f"would send {call} for {target.label} with a bond of {format_tokens(bond)} tokens; "
            + ("dry run, nothing sent" if dry_run else "run again with --yes to send it")
        )
        return
    if hasattr(account, "set_autosign"):
        account.set_autosign(True)  # --yes is the confirmation
    tx = send(chain, target, bond)
    d = chain.dispute(target.key)
    click.echo(
        f"dispute opened on {target.label}: {tx.tx_hash}; bond {format_tokens(bond)} tokens; "
        f"the node may prove until {d.proof_deadline}, then `settle` pays the bounty"
    )


@challenger.command(
    "dispute",
    cls=ChainCommand,
    help="Re-run one job (JOB_ID) or batch leaf (--batch/--index), show the verdict, and "
    "open a dispute only with --yes.",
)
@deployment_option
@_config_option
@click.argument("job_id", type=int, required=False)
@click.option("--batch", "batch_id", type=int, default=None, help="Batch id of the leaf.")
@click.option("--index", type=int, default=None, help="Position of the leaf in the batch.")
@click.option("--yes", is_flag=True, help="Send the dispute (bonded) when the verdict allows.")
@dry_run_option("Show the verdict and the dispute; send nothing.")
def dispute(
    account: Any,
    deployment: Path | None,
    config_path: Path | None,
    job_id: int | None,
    batch_id: int | None,
    index: int | None,
    yes: bool,
    dry_run: bool,
) -> None:
    _dispute_impl(account, deployment, config_path, job_id, batch_id, index, yes, dry_run)


def _register_impl(
    account: Any,
    deployment: Path | None,
    config_path: Path | None,
    state_dir: Path | None,
    bond: int,
    dry_run: bool,
) -> None:

    from challenger.chain_io import ApeChain
    from challenger.config import load_settings
    from challenger.sampling import load_or_create_secret, public_key_words

    settings = load_settings(config_path, state_dir=state_dir, deployment_path=deployment)
    secret = load_or_create_secret(settings.key_path)
    chain = ApeChain.from_contracts(connect_contracts(settings.deployment_path), account)
    minimum = chain.pool_min_bond()
    if bond < minimum:
        raise click.ClickException(
            f"bond {format_tokens(bond)} tokens is below the CheckPool minimum "
            f"{format_tokens(minimum)}"
        )
    account_now = chain.pool_account()
    if account_now.registered:
        raise click.ClickException(f"{chain.me} is registered already (one key per address)")
    if chain.balance() < bond:
        raise click.ClickException(
            f"{chain.me} holds {format_tokens(chain.balance())} tokens, less than the bond"
        )
    words = public_key_words(secret)
    click.echo(f"VRF key {settings.key_path}; public key {words[0]}...")
    if dry_run:
        click.echo(f"dry run: would register with a bond of {format_tokens(bond)} tokens")
        return
    tx = chain.pool_register_key(secret, bond)
    click.echo(f"registered {chain.me} with a bond of {format_tokens(bond)} tokens: {tx.tx_hash}")


@challenger.command(
    "register",
    cls=ChainCommand,
    help="Register the VRF key (with its proof of possession) and a bond in the CheckPool.",
)
@deployment_option
@_config_option
@_state_option
@click.option("--bond", type=TOKENS, required=True, help="Bond in tokens (1500wei: base units).")
@dry_run_option("Check everything; send nothing.")
def register(
    account: Any,
    deployment: Path | None,
    config_path: Path | None,
    state_dir: Path | None,
    bond: int,
    dry_run: bool,
) -> None:
    _register_impl(account, deployment, config_path, state_dir, bond, dry_run)


def _key_path(config_path: Path | None, state_dir: Path | None) -> Path:
    from challenger.config import load_settings

    return load_settings(config_path, state_dir=state_dir).key_path


def _show_key(path: Path, secret: bytes, as_json: bool) -> None:
    from challenger.sampling import public_key_words

    words = public_key_words(secret)
    if as_json:
        click.echo(json.dumps({"key_path": str(path), "public_key": words}, indent=2))
        return
    click.echo(f"VRF key: {path}")
    click.echo("public key (uint256[4], EIP-197 order x_im, x_re, y_im, y_re):")
    for w in words:
        click.echo(f"  {w}")
    click.echo(
        "its proof of possession is made by `spotcheck challenger register` (bound to the "
        "registering address, the pool and the chain)"
    )


_json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@challenger.command(
    "keygen", help="Create the VRF key (vrf.key, mode 0600) if there is none; show its public key."
)
@_config_option
@_state_option
@_json_option
def keygen(config_path: Path | None, state_dir: Path | None, as_json: bool) -> None:
    from challenger.sampling import load_or_create_secret

    path = _key_path(config_path, state_dir)
    existed = path.exists()
    secret = load_or_create_secret(path)
    if not as_json:
        click.echo("kept the existing VRF key" if existed else "created a VRF key")
    _show_key(path, secret, as_json)


@challenger.group("key", help="The challenger's VRF key.")
def key() -> None:
    """The VRF key's public parts."""


@key.command("show", help="Print the VRF public key (the key `register` registers).")
@_config_option
@_state_option
@_json_option
def key_show(config_path: Path | None, state_dir: Path | None, as_json: bool) -> None:
    from challenger.sampling import read_secret

    path = _key_path(config_path, state_dir)
    if not path.exists():
        raise click.ClickException(f"no VRF key at {path}: run `spotcheck challenger keygen`")
    _show_key(path, read_secret(path), as_json)


@challenger.command("status", help="Job states, disputes and credits from the local database.")
@_config_option
@_state_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path | None, state_dir: Path | None, as_json: bool) -> None:
    from challenger.config import load_settings
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
    click.echo(f"  withdrawn     {format_tokens(data['withdrawn'])} tokens")
    c = data["claims"]
    click.echo(
        f"  paid checks: claims sent {c['sent']}, open {c['open']}, paid {c['paid']} "
        f"({format_tokens(c['payouts'])} tokens), forfeited {c['forfeited']} "
        f"({format_tokens(c['forfeits'])} tokens), pending {c['pending']}, missed {c['missed']}"
    )
    dd = data["defences"]
    click.echo(
        f"  defences of jobs we found correct: sent {dd['sent']}, won {dd['won']}, "
        f"lost {dd['lost']}, too late {dd['too_late']}, left to the node "
        f"{dd['node_defended']}, pending {dd['pending']}"
    )
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
