"""The `spotcheck` command line: the one place that assembles every role's commands.

Subcommands live with their roles and are imported only when invoked, so ``--help`` stays
fast and a user who never proves anything never imports ezkl. Errors end as one line.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from spotcheck import __version__
from spotcheck.errors import SpotcheckError

#: name -> (module, attribute, one-line help). The module owns the command.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "contracts": ("spotcheck.deploy", "contracts", "Deploy and inspect the Spotcheck contracts."),
    "model": ("verifier.cli", "model", "Onboard ONNX models, measure tolerance, prove jobs."),
    "job": ("verifier.client_cli", "job", "dApp side: request jobs and read verified outputs."),
    "node": ("prover.cli", "node", "Node operator: stake, serve inference, commit, defend."),
    "challenger": ("challenger.cli", "challenger", "Validator: sample, re-run, dispute, settle."),
    "economics": ("spotcheck.economics_cli", "economics", "Honesty condition and simulation."),
    "demo": ("spotcheck.demo", "demo", "End-to-end demo on a local anvil chain."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module_name, attr, help_text = SUBCOMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                return _not_built(cmd_name, help_text, module_name)
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _not_built(name: str, help_text: str, module_name: str) -> click.Command:
    @click.command(name=name, help=f"{help_text} [NOT BUILT YET]")
    def placeholder() -> None:
        raise click.ClickException(f"`spotcheck {name}` is not built yet ({module_name} missing)")

    return placeholder


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotcheck")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Spotcheck: verifiable ONNX inference with optimistic sampling and zk disputes."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Ape logs through its own handler; propagating too would print every line twice.
    logging.getLogger("ape").propagate = False


def main(argv: list[str] | None = None) -> Any:
    """Entry point: Spotcheck errors end as one clear line and exit code 1."""
    try:
        return cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except SpotcheckError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:
        ape_exceptions = sys.modules.get("ape.exceptions")
        if ape_exceptions is None or not isinstance(err, ape_exceptions.ApeException):
            raise
        # A chain that is not running, a revert, a rejected transaction: one line, no traceback.
        click.echo(f"error: {describe_ape_error(err)}", err=True)
        sys.exit(1)


def describe_ape_error(err: Exception) -> str:
    """One line for an Ape error; a revert's raw custom-error data is decoded if possible."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if text.startswith("0x") and len(text) >= 10:
        text = _decode_custom_error(text) or text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _decode_custom_error(data: str) -> str | None:
    """Decode revert data with the errors of every compiled contract (tokens included)."""
    try:
        from ape import project
        from eth_abi import decode
        from eth_utils import keccak

        raw = bytes.fromhex(data[2:])
        for contract_type in project.contracts.values():
            for abi in contract_type.abi:
                if abi.type == "error" and keccak(text=abi.selector)[:4] == raw[:4]:
                    types = [i.canonical_type for i in abi.inputs]
                    values = decode(types, raw[4:])
                    args = ", ".join(
                        f"{i.name}={v}" for i, v in zip(abi.inputs, values, strict=True)
                    )
                    return f"{abi.name}({args})"
    except Exception:  # decoding is best effort: fall back to the raw data
        return None
    return None


if __name__ == "__main__":
    main()
