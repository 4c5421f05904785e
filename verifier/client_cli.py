"""``spotcheck job ...``: the dApp side on the command line (request a job, read its output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _model_id(text: str) -> bytes:
    from spotcheck.encoding import parse_bytes32
    from spotcheck.errors import EncodingError

    try:
        return parse_bytes32(text)
    except EncodingError as err:
        raise click.BadParameter(f"{text!r} is not a 0x-prefixed 32-byte model id") from err


@click.group()
def job() -> None:
    """dApp side: request jobs and read verified outputs."""


def _commands() -> None:
    from spotcheck.ape_cli import chain_command

    @chain_command()
    @click.argument("model_id")
    @click.option(
        "--input",
        "input_file",
        required=True,
        type=click.Path(exists=True, path_type=Path),
        help='JSON: {"input": [floats]} or {"input_q": [ints]}.',
    )
    @click.option("--node", required=True, help="Address of the node that must serve the job.")
    @click.option("--fee", type=int, required=True, help="Fee in token base units (escrowed).")
    @click.option("--deployment", type=click.Path(path_type=Path), help="Deployment file.")
    @click.option("--dry-run", is_flag=True, help="Check the input; send nothing.")
    def request(
        account: Any,
        model_id: str,
        input_file: Path,
        node: str,
        fee: int,
        deployment: Path | None,
        dry_run: bool,
    ) -> None:
        """Request inference of MODEL_ID (0x hex) on an input; prints the job id."""
        from spotcheck.chain import SpotcheckContracts
        from spotcheck.errors import ChainError
        from verifier.client import SpotcheckClient
        from verifier.datafiles import load_input_q

        contracts = SpotcheckContracts.connect(path=deployment)
        mid = _model_id(model_id)
        try:
            model = contracts.model_registry.getModel(mid)
        except Exception as err:  # UnknownModel revert
            raise ChainError(f"model {model_id} is not registered on this chain") from err
        input_q = load_input_q(input_file, int(model.inputScale))
        token, jm = contracts.token, contracts.job_manager
        balance = int(token.balanceOf(account.address))
        if balance < fee:
            raise ChainError(f"{account.address} holds {balance} token base units < fee {fee}")
        approve = int(token.allowance(account.address, jm.address)) < fee
        if dry_run:
            step = f"approve JobManager for {fee}, then " if approve else ""
            click.echo(f"dry run: would {step}requestJob({model_id}, {input_q}, {node}, {fee})")
            return
        try:
            if approve:  # the fee is escrowed by JobManager
                token.approve(jm.address, fee, sender=account)
            job_id = SpotcheckClient(contracts).request_job(mid, input_q, node, fee, account)
        except ChainError:
            raise
        except Exception as err:  # Ape's ContractLogicError and friends
            raise ChainError(f"requestJob failed: {err}") from err
        click.echo(f"job id {job_id}")

    @chain_command()
    @click.argument("job_id", type=int)
    @click.option("--wait", "wait_s", type=float, default=0.0, help="Seconds to wait for finality.")
    @click.option("--finalize", is_flag=True, help="Call finalize once the window has passed.")
    @click.option("--deployment", type=click.Path(path_type=Path), help="Deployment file.")
    def output(
        account: Any, job_id: int, wait_s: float, finalize: bool, deployment: Path | None
    ) -> None:
        """Print JOB_ID's output if it is final on-chain and matches its committed hash."""
        from spotcheck.chain import SpotcheckContracts
        from verifier.client import SpotcheckClient

        client = SpotcheckClient(SpotcheckContracts.connect(path=deployment))
        if wait_s > 0:
            out = client.wait_for_output(
                job_id, wait_s, finalize_sender=account if finalize else None
            )
        else:
            out = client.verified_output(job_id)
        click.echo(f"job {out.job_id} (model 0x{out.model_id.hex()}): final, hash verified")
        click.echo(f"output_q {list(out.output_q)}")
        click.echo(f"output   {out.values}")

    job.add_command(request)
    job.add_command(output)


_commands()
