"""Ape's ``--account`` option with a non-interactive unlock of keyfile accounts, and
:func:`chain_command`, the one way Spotcheck's commands get ``--network`` and ``--account``.

Ape (0.8) reads ``APE_ACCOUNTS_<alias>_PASSPHRASE`` only in ``KeyfileAccount.unlock()``; signing
with a locked account prompts for the passphrase whatever the environment says. This option
unlocks the chosen keyfile account from that variable when it is set, so scripts and services
never wait for a passphrase. Ape still asks to confirm each transaction of a keyfile account
(``Sign: [y/N]``), except in the services (``node run``, ``challenger run``), which enable
autosign. Ape test accounts (``TEST::<i>``) never prompt.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click


def passphrase_variable(alias: str) -> str:
    """The environment variable Ape reads the passphrase of keyfile account ``alias`` from."""
    return f"APE_ACCOUNTS_{alias}_PASSPHRASE"


def unlock_from_env(account: Any) -> None:
    """Unlock a locked keyfile account if its passphrase variable is set (else do nothing)."""
    alias = getattr(account, "alias", None)
    if not alias or not getattr(account, "locked", False) or not hasattr(account, "unlock"):
        return
    if os.environ.get(passphrase_variable(alias)):
        account.unlock()  # reads the variable; a wrong passphrase raises, never prompts


def account_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--account ALIAS|TEST::<i>`` (Ape's option) that also unlocks from the environment."""
    from ape.cli.choices import AccountAliasPromptChoice

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if not value:
            value = param.type.select_account()  # type: ignore[attr-defined]
        unlock_from_env(value)
        return value

    return click.option("--account", type=AccountAliasPromptChoice(), callback=callback)


def chain_command(
    name: str | None = None, **attrs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """``click.command`` for a command that talks to a chain: Ape's connected-provider command
    with ``--network`` and ``--account`` (unlocked from the environment). It imports Ape, so
    call it where the command is built lazily, not at module import."""
    from ape.cli import ConnectedProviderCommand, network_option

    def wrap(fn: Callable[..., Any]) -> click.Command:
        command = click.command(name, cls=ConnectedProviderCommand, **attrs)
        return command(network_option()(account_option()(fn)))

    return wrap
