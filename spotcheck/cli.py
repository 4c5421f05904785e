"""The `spotcheck` command line: the root that every role's command group plugs into.

A command group registers itself under the ``spotcheck.commands`` entry-point group of its
package (``[project.entry-points."spotcheck.commands"]`` in ``pyproject.toml``), as Ape's
plugins register theirs, so this root names no package above core. A group is imported only
when it runs; ``--help`` reads the groups' one-line helps from an index kept beside the other
caches (rebuilt when a package or a group changes). Errors end as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from spotcheck import __version__
from spotcheck.errors import SpotcheckError, describe_revert

#: The entry-point group command groups register under.
COMMANDS_GROUP = "spotcheck.commands"
_INDEX_VERSION = 1


class EntryPointGroup(click.Group):
    """A click group whose subcommands are the entry points of :data:`COMMANDS_GROUP`.

    A group is imported only when it runs. Scanning the installed packages for entry points
    and importing every group for its one-line help (what ``--help`` shows) costs more than the
    rest of start-up, so the result is kept in an index file (:func:`index_path`), valid while
    no folder on ``sys.path`` (where packages are installed) and no group's module changed;
    otherwise it is rebuilt from ``importlib.metadata`` on the spot.
    """

    _index: dict[str, tuple[str, str]] | None = None  # name -> (module:attr, one-line help)

    def index(self) -> dict[str, tuple[str, str]]:
        if self._index is None:
            self._index = _read_index() or _build_index()
        return self._index

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.index()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.index():
            command = _load(self.index()[cmd_name][0])
            self.add_command(command, cmd_name)  # loaded once
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append(
                    (name, click.utils.make_default_short_help(self.index()[name][1], limit))
                )
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _load(target: str) -> click.Command:
    """The click command an entry point names (``module:attribute``)."""
    import importlib

    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, click.Command):
        raise TypeError(f"entry point {target} is not a click command")
    return obj


def index_path() -> Path:
    """Where the command index of this environment and import path is kept."""
    import os
    import zlib

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = zlib.crc32("\0".join([sys.prefix, *sys.path]).encode())
    return base / "spotcheck" / f"commands-{key:08x}.json"


def _mtimes(paths: list[str]) -> dict[str, int]:
    import os

    out = {}
    for path in paths:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = -1
    return out


def _read_index() -> dict[str, tuple[str, str]] | None:
    """The saved index, if nothing it was built from has changed since."""
    import json

    try:
        saved = json.loads(index_path().read_text())
        if saved["version"] != _INDEX_VERSION or saved["sys_path"] != sys.path:
            return None
        if _mtimes(list(saved["mtimes"])) != saved["mtimes"]:
            return None
        return {name: (target, text) for name, (target, text) in saved["commands"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build_index() -> dict[str, tuple[str, str]]:
    """Scan the entry points, import every group for its help, and save the index."""
    import json
    import os
    from importlib.metadata import entry_points

    index: dict[str, tuple[str, str]] = {}
    files: list[str] = []
    for entry_point in entry_points(group=COMMANDS_GROUP):
        if entry_point.name in index:  # the first on sys.path wins, as for imports
            continue
        command = _load(entry_point.value)
        index[entry_point.name] = (entry_point.value, command.get_short_help_str(limit=300))
        module = sys.modules.get(entry_point.module)
        if module is not None and getattr(module, "__file__", None):
            files.append(str(module.__file__))
    saved = {
        "version": _INDEX_VERSION,
        "sys_path": sys.path,
        # the current folder ("" on sys.path) is not watched: it changes with every file
        "mtimes": _mtimes([*(p for p in sys.path if p), *files]),
        "commands": index,
    }
    path = index_path()
    try:  # best effort: without a writable cache the next start scans again
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(saved))
        tmp.replace(path)
    except OSError:
        pass
    return index


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
    """One line for an Ape error: a revert's custom error by name with its arguments (raw
    data, anvil's ``custom error 0x...`` text or Ape's decoded error), else type and first
    line (:func:`spotcheck.errors.describe_revert`)."""
    return describe_revert(err)


if __name__ == "__main__":
    main()
