"""``spotcheck job ...``: the dApp side on the command line (request a job, read its output).

``job request`` keeps a record of each request it sends (requester, node, model, input hash)
next to the deployment file; ``job output`` accepts a job's output only if the job on chain is
that request, so an output of a job someone else requested, or of another model or input, is
refused. Without a record (a request sent from elsewhere), give the model and the input you
asked with ``--model`` and ``--input``; the requester is always ``--account``.

``job infer`` sends inputs to a node's HTTP API in one batched request (``--batch`` inputs per
request) and prints each output with its receipt, every receipt checked first
(:mod:`verifier.node_client`): signed by the node asked, for this deployment, over the leaf of
the model, input and output.

``job cancel`` takes back the fee of a request the node did not commit before its commit
deadline (``JobManager.cancelJob``: the refund becomes a credit) and ``job withdraw`` sends the
account's credits. Fees are typed in tokens (``1.5``) or base units with ``wei`` (``1500wei``).
An account without ETH is told so in one line before anything is sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spotcheck.ape_cli import ChainCommand
from spotcheck.cli_options import (
    TOKENS_OR_ZERO,
    connect_contracts,
    deployment_option,
    dry_run_option,
    format_amount,
)

if TYPE_CHECKING:  # pragma: no cover
    from spotcheck.chain import SpotcheckContracts
    from verifier.client import JobRequest


def _model_id(text: str) -> bytes:
    from spotcheck.encoding import parse_bytes32
    from spotcheck.errors import EncodingError

    try:
        return parse_bytes32(text)
    except EncodingError as err:
        raise click.BadParameter(f"{text!r} is not a 0x-prefixed 32-byte model id") from err


def requests_dir(contracts: SpotcheckContracts, deployment: Path | None) -> Path:
    """Where ``job request`` records requests: beside the deployment file, per JobManager."""
    from spotcheck.chain import default_deployment_path

    base = deployment or default_deployment_path(contracts.deployment.chain_id)
    return base.parent / "requests" / contracts.deployment.job_manager.lower()


def save_request(directory: Path, request: JobRequest, deploy_block: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{request.job_id}.json"
    path.write_text(json.dumps({**request.to_json(), "deployBlock": deploy_block}, indent=2))
    return path


def load_request(directory: Path, job_id: int, deploy_block: int) -> JobRequest | None:
    """The recorded request for ``job_id`` on this deployment, if any (a record left by an
    earlier deployment at the same address, e.g. a restarted anvil, is ignored)."""
    from verifier.client import JobRequest

    path = directory / f"{job_id}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if int(data.get("deployBlock", -1)) != deploy_block:
        return None
    return JobRequest.from_json(data)


def require_gas(account: Any) -> None:
    """One line instead of a failed transaction when the account holds no ETH for gas."""
    from spotcheck.errors import ChainError

    if int(account.balance) <= 0:
        raise ChainError(f"{account.address} holds no ETH on this chain: fund it with gas first")


@click.group()
def job() -> None:
    """dApp side: request jobs and read verified outputs of your own requests."""


@job.command(cls=ChainCommand)
@click.argument("model_id")
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help='JSON: {"input": [floats]} or {"input_q": [ints]}.',
)
@click.option("--node", required=True, help="Address of the node that must serve the job.")
@click.option(
    "--fee",
    type=TOKENS_OR_ZERO,
    default=None,
    help="Fee in tokens (1.5) or base units (1500wei), escrowed; default: the node's price "
    "for the model.",
)
@deployment_option
@dry_run_option("Check the input and the fee; send nothing.")
def request(
    account: Any,
    model_id: str,
    input_file: Path,
    node: str,
    fee: int | None,
    deployment: Path | None,
    dry_run: bool,
) -> None:
    """Request inference of MODEL_ID (0x hex) on an input; prints the job id."""
    from spotcheck.errors import ChainError
    from verifier.client import SpotcheckClient
    from verifier.datafiles import load_input_q

    contracts = connect_contracts(deployment)
    client = SpotcheckClient(contracts)
    mid = _model_id(model_id)
    try:
        model = contracts.model_registry.getModel(mid)
    except Exception as err:  # UnknownModel revert
        raise ChainError(f"model {model_id} is not registered on this chain") from err
    input_q = load_input_q(input_file, int(model.inputScale))
    if fee is None:
        fee = client.price_of(node, mid)
    client.check_request(mid, input_q, node, fee)
    token, jm = contracts.token, contracts.job_manager
    balance = int(token.balanceOf(account.address))
    if balance < fee:
        raise ChainError(
            f"{account.address} holds {format_amount(balance)} tokens, less than the fee "
            f"{format_amount(fee)}; fund it first (local chains: `spotcheck contracts mint`)"
        )
    approve = int(token.allowance(account.address, jm.address)) < fee
    if not dry_run:
        require_gas(account)
    if dry_run:
        step = f"approve JobManager for {format_amount(fee)}, then " if approve else ""
        click.echo(f"dry run: would {step}requestJob({model_id}, {input_q}, {node}, {fee})")
        return
    try:
        if approve:  # the fee is escrowed by JobManager
            token.approve(jm.address, fee, sender=account)
        req = client.request_job(mid, input_q, node, fee, account)
    except ChainError:
        raise
    except Exception as err:  # Ape's ContractLogicError and friends
        raise ChainError(f"requestJob failed: {err}") from err
    path = save_request(requests_dir(contracts, deployment), req, contracts.deployment.deploy_block)
    click.echo(f"job id {req.job_id}")
    click.echo(f"request recorded in {path}")


@job.command(cls=ChainCommand)
@click.argument("model_id")
@click.argument(
    "input_files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option("--url", required=True, help="The node's HTTP base URL.")
@click.option("--node", required=True, help="The node's address: receipts must be signed by it.")
@click.option("--batch", "batch", type=click.IntRange(1), default=256, help="Inputs per request.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the outputs and receipts as JSON to this file (default: print them).",
)
@deployment_option
def infer(
    account: Any,
    model_id: str,
    input_files: tuple[Path, ...],
    url: str,
    node: str,
    batch: int,
    out: Path | None,
    deployment: Path | None,
) -> None:
    """Serve the inputs of INPUT_FILES (one or many each: JSON or .npy) on MODEL_ID at a
    node's HTTP API, in batched requests; every receipt is checked before it is printed."""
    from spotcheck.errors import ChainError
    from spotcheck.receipts import ReceiptDomain
    from verifier.datafiles import load_inputs_q
    from verifier.node_client import NodeClient

    contracts = connect_contracts(deployment)
    mid = _model_id(model_id)
    try:
        model = contracts.model_registry.getModel(mid)
    except Exception as err:  # UnknownModel revert
        raise ChainError(f"model {model_id} is not registered on this chain") from err
    inputs = [row for f in input_files for row in load_inputs_q(f, int(model.inputScale))]
    client = NodeClient(url, node, ReceiptDomain.of(contracts.job_manager))
    answers = serve_in_batches(client, mid, inputs, batch)
    text = json.dumps(answers, indent=1)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text)
        click.echo(f"{len(answers)} outputs with checked receipts written to {out}")


def serve_in_batches(
    client: Any, model_id: bytes, inputs: list[list[int]], batch: int
) -> list[dict[str, Any]]:
    """``client.infer`` over ``inputs`` in requests of ``batch``; each answer as JSON (input,
    output, output_q and the checked receipt)."""
    answers: list[dict[str, Any]] = []
    for start in range(0, len(inputs), batch):
        for served in client.infer(model_id, inputs[start : start + batch]):
            answers.append(
                {
                    "input_q": served.input_q,
                    "output": served.output,
                    "output_q": served.output_q,
                    "receipt": served.receipt.to_json(),
                }
            )
    return answers


@job.command(cls=ChainCommand)
@click.argument("job_id", type=int)
@click.option("--model", "model_id", help="Model id you asked for (if no local record).")
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, path_type=Path),
    help="The input you sent (if no local record).",
)
@click.option("--node", help="The node you asked (if no local record; default: the job's).")
@click.option("--wait", "wait_s", type=float, default=0.0, help="Seconds to wait for finality.")
@click.option("--finalize", is_flag=True, help="Call finalize once the window has passed.")
@deployment_option
def output(
    account: Any,
    job_id: int,
    model_id: str | None,
    input_file: Path | None,
    node: str | None,
    wait_s: float,
    finalize: bool,
    deployment: Path | None,
) -> None:
    """Print JOB_ID's output if it is your request (requester --account, the model and
    input you asked), final on-chain, and matches its committed hash."""
    from spotcheck.chain import JobStatus
    from spotcheck.errors import ChainError
    from verifier.client import JobRequest, SpotcheckClient
    from verifier.datafiles import load_input_q

    contracts = connect_contracts(deployment)
    client = SpotcheckClient(contracts)
    try:
        job_ = contracts.job_manager.getJob(job_id)
    except Exception as err:  # UnknownJob revert
        raise ChainError(f"job {job_id} does not exist") from err
    if int(job_.status) == JobStatus.NONE:
        raise ChainError(f"job {job_id} does not exist")

    if model_id is not None or input_file is not None:
        if model_id is None or input_file is None:
            raise click.UsageError("give both --model and --input")
        mid = _model_id(model_id)
        model = contracts.model_registry.getModel(mid)
        input_q = load_input_q(input_file, int(model.inputScale))
        req = JobRequest.of(job_id, str(account.address), node or str(job_.node), mid, input_q)
    else:
        directory = requests_dir(contracts, deployment)
        found = load_request(directory, job_id, contracts.deployment.deploy_block)
        if found is None:
            raise ChainError(
                f"no record of job {job_id} in {directory}: pass --model and --input "
                "(the model and input you asked)"
            )
        if found.requester.lower() != str(account.address).lower():
            raise ChainError(
                f"job {job_id} was recorded as requested by {found.requester}, "
                f"not by {account.address}"
            )
        req = found
    if wait_s > 0:
        out = client.wait_for_output(req, wait_s, finalize_sender=account if finalize else None)
    else:
        out = client.verified_output(req)
    click.echo(
        f"job {out.job_id} (model 0x{out.model_id.hex()}): your request, final, hash verified"
    )
    click.echo(f"output_q {list(out.output_q)}")
    click.echo(f"output   {out.values}")


@job.command(cls=ChainCommand)
@click.argument("job_id", type=int)
@deployment_option
@dry_run_option("Check the job can be cancelled; send nothing.")
def cancel(account: Any, job_id: int, deployment: Path | None, dry_run: bool) -> None:
    """Cancel JOB_ID, your request that its node did not commit before the commit deadline:
    the fee comes back as a JobManager credit (``job withdraw`` sends it)."""
    import time as _time

    from ape import chain

    from spotcheck.chain import JobStatus
    from spotcheck.errors import ChainError, describe_revert

    contracts = connect_contracts(deployment)
    jm = contracts.job_manager
    try:
        job_ = jm.getJob(job_id)
    except Exception as err:  # UnknownJob revert
        raise ChainError(f"job {job_id} does not exist") from err
    status = JobStatus(int(job_.status))
    if status == JobStatus.NONE:
        raise ChainError(f"job {job_id} does not exist")
    if status != JobStatus.REQUESTED:
        raise ChainError(
            f"job {job_id} is {status.name.lower()}: only a request the node has not committed "
            "can be cancelled"
        )
    if str(job_.requester).lower() != str(account.address).lower():
        raise ChainError(
            f"job {job_id} was requested by {job_.requester}, not by {account.address}: only "
            "its requester can cancel it"
        )
    now = int(chain.blocks.head.timestamp)
    deadline = int(job_.commitDeadline)
    if now <= deadline:
        raise ChainError(
            f"job {job_id}: its node may commit until {deadline} "
            f"({deadline - now + 1} s from the last block, "
            f"{_time.strftime('%Y-%m-%d %H:%M:%S UTC', _time.gmtime(deadline))}); "
            "cancel after that"
        )
    fee = int(job_.fee)
    if dry_run:
        click.echo(f"dry run: would cancelJob({job_id}) and credit {format_amount(fee)}")
        return
    require_gas(account)
    try:
        jm.cancelJob(job_id, sender=account)
    except Exception as err:  # Ape's ContractLogicError carries the custom error
        raise ChainError(f"cancelJob({job_id}) failed: {describe_revert(err)}") from err
    credits = int(jm.credits(account.address))
    click.echo(f"cancelled job {job_id}: fee {format_amount(fee)} credited")
    click.echo(f"credits {format_amount(credits)} (send them with `spotcheck job withdraw`)")


@job.command(cls=ChainCommand)
@deployment_option
@dry_run_option("Show the credits; send nothing.")
def withdraw(account: Any, deployment: Path | None, dry_run: bool) -> None:
    """Withdraw your JobManager credits (refunds of cancelled and invalidated jobs)."""
    from spotcheck.errors import ChainError, describe_revert

    contracts = connect_contracts(deployment)
    jm = contracts.job_manager
    credits = int(jm.credits(account.address))
    if credits == 0:
        click.echo(f"no credits for {account.address}")
        return
    if dry_run:
        click.echo(f"dry run: would withdraw {format_amount(credits)}")
        return
    require_gas(account)
    try:
        jm.withdrawCredits(sender=account)
    except Exception as err:
        raise ChainError(f"withdrawCredits failed: {describe_revert(err)}") from err
    click.echo(f"withdrew {format_amount(credits)} to {account.address}")
