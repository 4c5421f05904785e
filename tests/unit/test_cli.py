"""The top-level `spotcheck` command: command groups by entry point, version, one-line errors,
Ape plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click
from click.testing import CliRunner

from spotcheck import __version__
from spotcheck.ape_cli import ChainCommand
from spotcheck.cli import COMMANDS_GROUP, cli

VENV_BIN = Path(sys.executable).parent
#: Every command group, as registered in pyproject.toml.
GROUPS = (
    "challenger",
    "contracts",
    "dashboard",
    "demo",
    "economics",
    "job",
    "model",
    "node",
    "status",
)


def test_entryPoints_registerEveryCommandGroup() -> None:
    assert sorted(entry_points(group=COMMANDS_GROUP).names) == sorted(GROUPS)


def test_help_listsEveryRoleCommand_withoutImportingThem() -> None:
    code = (
        "import sys; from spotcheck.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('ezkl', 'onnxruntime', 'ape', 'pydantic', 'fastapi', 'numpy') "
        "or (m.split('.')[0] in ('prover', 'challenger') and m.count('.') "
        "and not m.endswith('.cli'))]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for name in GROUPS:
        assert name in out
    assert "HEAVY []" in out


def test_version_printsPackageVersion() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_everySubcommand_resolvesToAClickCommand() -> None:
    ctx = cli.make_context("spotcheck", ["--help"], resilient_parsing=True)
    for name in GROUPS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.help, f"{name} has no help"


def test_unknownSubcommand_failsWithUsageError() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_apePlugin_exposesSpotcheckAsApeSubcommand() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "ape"), "spotcheck", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "Usage: ape spotcheck" in out.stdout


def test_chainCommand_listedWithoutApe_parsedWithNetworkAndAccount() -> None:
    code = (
        "import sys; from spotcheck.cli import main\n"
        "try:\n    main(['node', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('APE', 'ape' in sys.modules)\n"
        "try:\n    main(['node', 'stake', '--help'])\nexcept SystemExit:\n    pass\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "APE False" in out
    assert "stake" in out.split("APE")[0]
    stake_help = out.split("APE False")[1]
    for option in ("--network", "--account", "--deployment", "--dry-run"):
        assert option in stake_help


def test_chainCommand_isTheOneLazyCommandClass() -> None:
    node = cli.get_command(
        cli.make_context("spotcheck", ["--help"], resilient_parsing=True), "node"
    )
    assert isinstance(node, click.Group)
    assert isinstance(node.commands["run"], ChainCommand)
    assert node.commands["run"].wait_for_rpc  # type: ignore[attr-defined]


_HELP_AND_IMPORTS = (
    "import sys; from spotcheck.cli import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    "print('LOADED', sorted(m for m in sys.modules\n"
    "                       if m.endswith('cli') or m == 'importlib.metadata'))\n"
)


def _help_in_subprocess(cache: Path) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", _HELP_AND_IMPORTS],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout


def test_commandIndex_warm_helpImportsNoGroupAndNoMetadata(tmp_path: Path) -> None:
    first = _help_in_subprocess(tmp_path)
    assert "prover.cli" in first  # built: every group imported once for its help
    second = _help_in_subprocess(tmp_path)
    assert "LOADED ['spotcheck.cli']" in second
    for name in GROUPS:
        assert name in second


def test_commandIndex_staleFolder_isRebuiltFromEntryPoints(tmp_path: Path) -> None:
    _help_in_subprocess(tmp_path)
    (index,) = (tmp_path / "spotcheck").glob("commands-*.json")
    saved = json.loads(index.read_text())
    saved["commands"]["zzz-only-in-the-index"] = ["spotcheck.cli:cli", "from the index"]
    index.write_text(json.dumps(saved))
    assert "zzz-only-in-the-index" in _help_in_subprocess(tmp_path)  # a valid index is used
    saved["mtimes"][next(iter(saved["mtimes"]))] = 0  # a package folder changed since
    index.write_text(json.dumps(saved))
    assert "zzz-only-in-the-index" not in _help_in_subprocess(tmp_path)


def test_chainCommand_withoutAccount_failsInOneLine_insteadOfApesPrompt() -> None:
    result = CliRunner().invoke(cli, ["contracts", "mint", "1"])
    assert result.exit_code == 2, result.output
    assert "--account is required" in result.output
    assert "len_test_accounts" not in result.output


def test_chainCommand_unparsableNetwork_failsInOneLine() -> None:
    result = CliRunner().invoke(
        cli, ["contracts", "mint", "1", "--network", "localhost:8545", "--account", "TEST::0"]
    )
    assert result.exit_code == 2, result.output
    assert "ethereum:local:foundry" in result.output
    assert len(result.output.strip().splitlines()) <= 4, result.output
