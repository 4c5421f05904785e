"""One unit for amounts (issue 13): tokens with decimals, base units only with the ``wei`` suffix.

Before: ``node stake`` took tokens, ``--fee``/``--slash``/``--challenger-bond`` base units, the
node's TOML ``price`` base units; ``parse_amount("1.0000000000000000001")`` silently truncated.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from spotcheck.chain import TOKEN
from spotcheck.cli_options import (
    MAX_TOKENS,
    TOKEN_DECIMALS,
    TOKENS,
    TOKENS_OR_ZERO,
    format_tokens,
    parse_amount,
    parse_tokens,
)


def test_tokenDecimals_matchTheChainsToken() -> None:
    assert 10**TOKEN_DECIMALS == TOKEN


@pytest.mark.parametrize(
    ("text", "base"),
    [
        ("1.5", 15 * 10**17),
        ("250", 250 * TOKEN),
        (" 2 ", 2 * TOKEN),
        ("0.000000000000000001", 1),
        ("1e3", 1000 * TOKEN),
        ("1500wei", 1500),
        ("1500 wei", 1500),
        ("7WEI", 7),
        (2, 2 * TOKEN),
        (0.1, TOKEN // 10),
    ],
)
def test_parseTokens_readsTokensWithDecimals_andBaseUnitsOnlyWithTheSuffix(
    text: str | int | float, base: int
) -> None:
    assert parse_tokens(text) == base


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("-1", "cannot be negative"),
        ("-1wei", "whole number"),
        ("abc", "is not an amount"),
        ("", "is not an amount"),
        ("1.5wei", "whole number"),
        ("1.0000000000000000001", "more than 18 decimals"),
        ("nan", "is not an amount"),
        ("inf", "is not an amount"),
        ("0", "must be > 0"),
        ("0wei", "must be > 0"),
        # a base-units value typed where tokens are meant (the old `price` and `--fee`)
        ("5000000000000000000", "amounts are in tokens"),
        (True, "is not an amount"),
    ],
)
def test_parseTokens_refusesInOneLine(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as err:
        parse_tokens(text)
    assert "\n" not in str(err.value)


def test_parseTokens_zeroOnlyWhenAllowed() -> None:
    assert parse_tokens("0", allow_zero=True) == 0
    assert parse_tokens(str(MAX_TOKENS)) == MAX_TOKENS * TOKEN


def test_parseAmount_isAClickError() -> None:
    with pytest.raises(click.BadParameter, match="more than 18 decimals"):
        parse_amount("0.0000000000000000001")


@given(st.integers(min_value=1, max_value=MAX_TOKENS * TOKEN))
def test_formatTokens_roundTripsEveryAmountExactly(base: int) -> None:
    assert parse_tokens(format_tokens(base)) == base
    assert parse_tokens(f"{base}wei") == base


def test_formatTokens_showsNoExponentOrTrailingZeros() -> None:
    assert format_tokens(15 * 10**17) == "1.5"
    assert format_tokens(1000 * TOKEN) == "1000"
    assert format_tokens(1) == "0.000000000000000001"
    assert format_tokens(0) == "0"


def test_tokensType_givesBaseUnits_andOneLineUsageErrors() -> None:
    @click.command()
    @click.option("--fee", type=TOKENS, required=True)
    @click.option("--slash", type=TOKENS_OR_ZERO, default="0")
    def cmd(fee: int, slash: int) -> None:
        click.echo(f"{fee} {slash}")

    runner = CliRunner()
    assert runner.invoke(cmd, ["--fee", "2.5"]).output.strip() == f"{25 * 10**17} 0"
    assert runner.invoke(cmd, ["--fee", "9wei", "--slash", "1"]).output.strip() == f"9 {TOKEN}"
    bad = runner.invoke(cmd, ["--fee", "-1"])
    assert bad.exit_code == 2
    assert "Invalid value for '--fee': '-1': an amount cannot be negative" in bad.output
