"""``--deployment`` falls back to ``$SPOTCHECK_DEPLOYMENT`` (issue 13); the flag wins over it,
and ``--help`` says so."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from spotcheck.cli_options import deployment_option


@click.command()
@deployment_option
def show(deployment: Path | None) -> None:
    click.echo(f"deployment={deployment}")


def test_deployment_fromTheEnvironment_whenNoFlag() -> None:
    result = CliRunner().invoke(show, [], env={"SPOTCHECK_DEPLOYMENT": "/tmp/d.json"})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "deployment=/tmp/d.json"


def test_deployment_flagWinsOverTheEnvironment() -> None:
    result = CliRunner().invoke(
        show, ["--deployment", "/tmp/flag.json"], env={"SPOTCHECK_DEPLOYMENT": "/tmp/env.json"}
    )
    assert result.output.strip() == "deployment=/tmp/flag.json"


def test_deployment_neither_isNone() -> None:
    result = CliRunner().invoke(show, [], env={"SPOTCHECK_DEPLOYMENT": None})
    assert result.output.strip() == "deployment=None"


def test_deployment_help_namesTheVariable() -> None:
    result = CliRunner().invoke(show, ["--help"])
    assert "SPOTCHECK_DEPLOYMENT" in " ".join(result.output.split())
