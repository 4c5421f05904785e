"""The top-level `spotcheck` command: lazy subcommands, version, one-line errors, Ape plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from spotcheck import __version__
from spotcheck.cli import SUBCOMMANDS, cli

VENV_BIN = Path(sys.executable).parent


def test_help_listsEveryRoleCommand_withoutImportingThem() -> None:
    code = (
        "import sys; from spotcheck.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('ezkl', 'onnxruntime', 'ape', 'prover', 'challenger') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for name in SUBCOMMANDS:
        assert name in out
    assert "HEAVY []" in out


def test_version_printsPackageVersion() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_everySubcommand_resolvesToAClickCommand() -> None:
    ctx = cli.make_context("spotcheck", ["--help"], resilient_parsing=True)
    for name in SUBCOMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert "NOT BUILT YET" not in (command.help or ""), f"{name} is a placeholder"


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
