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
    """``--deployment FILE``: the deployment file a chain command connects to (or
    ``$SPOTCHECK_DEPLOYMENT`` when the flag is not given)."""
    option = click.option(
        "--deployment",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        envvar="SPOTCHECK_DEPLOYMENT",
        help=(
            "Deployment file (env SPOTCHECK_DEPLOYMENT; "
            "default: .spotcheck/deployments/<chain id>.json)."
        ),
    )
    return option(fn)


def dry_run_option(
    help: str = "Estimate gas and check the call would succeed; send nothing.",
) -> Callable[[F], F]:
    """``--dry-run``: every transaction-sending command can show what it would do instead."""
    return click.option("--dry-run", is_flag=True, help=help)


#: Decimals of the protocol token (``spotcheck.chain.TOKEN`` = 10**TOKEN_DECIMALS base units).
TOKEN_DECIMALS = 18
#: A token amount above this many tokens is refused as a likely base-units value typed where
#: tokens are meant (5e18 "tokens" is 5 tokens in base units); write ``...wei`` for base units.
MAX_TOKENS = 10**15
#: The suffix that marks an amount as base units ("1500wei").
BASE_UNITS_SUFFIX = "wei"


def parse_tokens(value: str | int | float, *, allow_zero: bool = False) -> int:
    """A token amount in base units: ``"1.5"`` (tokens, at most 18 decimals) -> 1.5 * 10**18;
    ``"1500wei"`` -> 1500 (base units, said by the suffix). ValueError (one line) for garbage,
    a negative amount, more than 18 decimals, zero unless ``allow_zero``, or more than
    :data:`MAX_TOKENS` tokens. This is the one amount parser (options, TOML, environment)."""
    from decimal import Decimal, InvalidOperation, localcontext

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not an amount (tokens, e.g. 1.5, or base units, 1500wei)")
    text = value.strip() if isinstance(value, str) else repr(value)
    if text.lower().endswith(BASE_UNITS_SUFFIX):
        digits = text[: -len(BASE_UNITS_SUFFIX)].strip()
        if not digits.isdigit():
            raise ValueError(f"{text!r} is not an amount: base units are a whole number (1500wei)")
        base = int(digits)
    else:
        try:
            tokens = Decimal(text)
        except InvalidOperation as err:
            raise ValueError(
                f"{text!r} is not an amount (tokens, e.g. 1.5, or base units, 1500wei)"
            ) from err
        if not tokens.is_finite():
            raise ValueError(f"{text!r} is not an amount")
        if tokens < 0:
            raise ValueError(f"{text!r}: an amount cannot be negative")
        if tokens > MAX_TOKENS:
            raise ValueError(
                f"{text} tokens is more than {MAX_TOKENS:,}: amounts are in tokens "
                f"(for base units write {text}{BASE_UNITS_SUFFIX})"
            )
        with localcontext() as exact:  # the default 28 digits would round large amounts
            exact.prec = 200
            scaled = tokens.scaleb(TOKEN_DECIMALS)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{text!r} has more than {TOKEN_DECIMALS} decimals")
        base = int(scaled)
    if base == 0 and not allow_zero:
        raise ValueError("amount must be > 0")
    return base


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """:func:`parse_tokens` for a command-line value (click.BadParameter, one line)."""
    try:
        return parse_tokens(text, allow_zero=allow_zero)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


class TokenAmount(click.ParamType):
    """A click type for an amount option: tokens (``--fee 1.5``), or base units with the
    ``wei`` suffix (``--fee 1500wei``); the command receives base units (int)."""

    name = "TOKENS"

    def __init__(self, *, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # a default already in base units
        try:
            return parse_tokens(value, allow_zero=self.allow_zero)
        except ValueError as err:
            self.fail(str(err), param, ctx)


#: ``type=TOKENS`` for an amount option (> 0); ``TOKENS_OR_ZERO`` where 0 is meaningful.
TOKENS = TokenAmount()
TOKENS_OR_ZERO = TokenAmount(allow_zero=True)


def format_tokens(base_units: int) -> str:
    """Base units as tokens, exact ("1.5", "0.000000000000000001")."""
    whole, frac = divmod(abs(base_units), 10**TOKEN_DECIMALS)
    sign = "-" if base_units < 0 else ""
    decimals = f"{frac:0{TOKEN_DECIMALS}d}".rstrip("0")
    return f"{sign}{whole}.{decimals}" if decimals else f"{sign}{whole}"


def format_amount(base_units: int) -> str:
    """Base units as whole tokens with the exact base units ("1.5 (1500... base units)")."""
    return f"{format_tokens(base_units)} ({base_units} base units)"


def connect_contracts(deployment: Path | None) -> Any:
    """The deployed contracts on the connected chain (imports Ape: call it inside a command)."""
    from spotcheck.chain import SpotcheckContracts

    return SpotcheckContracts.connect(path=deployment)


def require_gas_funds(account: Any) -> None:
    """ConfigError (one line) when ``account`` holds no ETH to pay for a transaction's gas:
    call it before anything is sent (imports nothing; ``account.balance`` is Ape's, in wei)."""
    from spotcheck.errors import ConfigError

    balance = int(getattr(account, "balance", 0) or 0)
    if balance == 0:
        raise ConfigError(
            f"account {account.address} holds no ETH to pay for gas: fund it first "
            "(local chains: anvil's accounts are funded; send ETH from one of them)"
        )


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
