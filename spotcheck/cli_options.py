"""The options and value helpers every command group shares: one definition each.

``--deployment`` and ``--dry-run`` mean the same in every command that takes them; token
amounts are parsed and shown one way. Nothing here imports Ape or the chain bindings, so a
command group built from these options stays cheap to import (``spotcheck --help`` imports
every group).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def deployment_option(fn: F) -> F:
    """``--deployment FILE``: the deployment file a chain command connects to."""
    option = click.option(
        "--deployment",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Deployment file (default: .spotcheck/deployments/<chain id>.json).",
    )
    return option(fn)


def dry_run_option(
    help: str = "Estimate gas and check the call would succeed; send nothing.",
) -> Callable[[F], F]:
    """``--dry-run``: every transaction-sending command can show what it would do instead."""
    return click.option("--dry-run", is_flag=True, help=help)


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """A token amount ("250", "0.5") in base units; "123wei" is taken as base units."""
    from decimal import Decimal, InvalidOperation

    from spotcheck.chain import TOKEN

    try:
        value = int(text[:-3]) if text.endswith("wei") else int(Decimal(text) * TOKEN)
    except (InvalidOperation, ValueError) as err:
        raise click.BadParameter(f"{text!r} is not an amount") from err
    if value < 0 or (value == 0 and not allow_zero):
        raise click.BadParameter("amount must be > 0" if not allow_zero else "amount must be >= 0")
    return value


def format_tokens(base_units: int) -> str:
    """Base units as whole tokens ("1.5")."""
    from decimal import Decimal

    from spotcheck.chain import TOKEN

    return f"{Decimal(base_units) / TOKEN:f}"


def format_amount(base_units: int) -> str:
    """Base units as whole tokens with the exact base units ("1.5 (1500... base units)")."""
    return f"{format_tokens(base_units)} ({base_units} base units)"


def connect_contracts(deployment: Path | None) -> Any:
    """The deployed contracts on the connected chain (imports Ape: call it inside a command)."""
    from spotcheck.chain import SpotcheckContracts

    return SpotcheckContracts.connect(path=deployment)


def log_json_option(fn: F) -> F:
    """``--log-json``: a service's log lines as JSON objects instead of text with key=value."""
    option = click.option(
        "--log-json",
        is_flag=True,
        help="Log one JSON object per line (default: text with key=value fields).",
    )
    return option(fn)


def configure_service_logging(log_json: bool) -> None:
    """A service's log lines carry their fields (job, node, tx...), as text or JSON, at the
    level ``spotcheck -v`` chose."""
    import logging

    from spotcheck.kit.logs import configure_logging

    configure_logging(json=log_json, level=logging.getLogger().getEffectiveLevel())
