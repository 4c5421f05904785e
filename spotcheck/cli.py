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


if __name__ == "__main__":
    main()
