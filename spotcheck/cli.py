"""The `spotcheck` command line: the root that every role's command group plugs into.

A command group registers itself under the ``spotcheck.commands`` entry-point group of its
package (``[project.entry-points."spotcheck.commands"]`` in ``pyproject.toml``), as Ape's
plugins register theirs, so this root names no package above core. A group is imported only
when it is used (``spotcheck --help`` imports each group's module, which imports nothing
heavy: Ape, ezkl and the services are imported inside the commands). Errors end as one line.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from spotcheck import __version__
from spotcheck.errors import SpotcheckError

if TYPE_CHECKING:  # pragma: no cover
    from importlib.metadata import EntryPoint

#: The entry-point group command groups register under.
COMMANDS_GROUP = "spotcheck.commands"


class EntryPointGroup(click.Group):
    """A click group whose subcommands are the entry points of :data:`COMMANDS_GROUP`, each
    loaded on first use."""

    _entry_points: dict[str, EntryPoint] | None = None

    def entry_points(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            from importlib.metadata import entry_points

            self._entry_points = {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}
        return self._entry_points

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.entry_points()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry_point = self.entry_points().get(cmd_name)
        if entry_point is None:
            return None
        command = entry_point.load()
        if not isinstance(command, click.Command):
            raise TypeError(f"entry point {entry_point.value} is not a click command")
        self.add_command(command, cmd_name)  # loaded once
        return command


@click.group(cls=EntryPointGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotcheck")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Spotcheck: verifiable ONNX inference with optimistic sampling and zk disputes."""
    import logging

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
