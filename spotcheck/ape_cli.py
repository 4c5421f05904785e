"""Ape's ``--account`` option with a non-interactive unlock of keyfile accounts, and
:func:`chain_command`, the one way Spotcheck's commands get ``--network`` and ``--account``
(without importing Ape until the command runs).

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
            # Ape would prompt with a raw "[0..{len_test_accounts}]" menu: say what to give.
            raise click.UsageError(
                "--account is required: an account alias (`ape accounts list`) or TEST::<i> "
                "for a local test account"
            )
        unlock_from_env(value)
        return value

    return click.option("--account", type=AccountAliasPromptChoice(), callback=callback)


class ChainCommand(click.Command):
    """A command that talks to a chain, declared without importing Ape.

    The first time it is parsed (run, ``--help``, completion) it builds Ape's connected-provider
    command from the same callback, with ``--network`` and ``--account`` (unlocked from the
    environment), and hands the work to it. Listing it in its group's help imports nothing.
    With ``wait_for_rpc``, connecting waits out an unreachable RPC (with backoff, logging each
    attempt) instead of failing: a service started while its RPC is down waits for it rather
    than exit and crash-loop under its supervisor.
    """

    def __init__(self, *args: Any, wait_for_rpc: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait_for_rpc = wait_for_rpc
        self._ape_command: click.Command | None = None

    #: whether the command signs (``--account``); a read-only command has ``--network`` only
    signs = True

    def ape_command(self) -> click.Command:
        """Ape's command for this one (built once; imports Ape)."""
        if self._ape_command is None:
            from ape.cli import ConnectedProviderCommand, network_option

            from spotcheck.kit.quiet import ape_traces_to_debug

            ape_traces_to_debug()  # revert traces go to DEBUG; the command reports one line
            cls = _patient_command_class() if self.wait_for_rpc else ConnectedProviderCommand
            assert self.callback is not None
            fn = account_option()(self.callback) if self.signs else self.callback
            fn = network_option()(fn)
            ape_params = list(reversed(getattr(fn, "__click_params__", [])))
            for param in ape_params:
                if param.name == "network":
                    shorten_network_errors(param.type)
            self._ape_command = cls(
                self.name,
                callback=fn,
                params=[*ape_params, *self.params],
                help=self.help,
                short_help=self.short_help,
                context_settings=self.context_settings,
            )
        return self._ape_command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.ape_command().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self.ape_command().invoke(ctx)


def shorten_network_errors(choice: Any) -> None:
    """Make Ape's network choice ``choice`` fail in one line: Ape lists every network it knows
    (60 lines) for a value it cannot parse, such as ``localhost:8545``. Re-classes the instance
    (Ape finds its network option by ``isinstance``; a wrapper would make it add another)."""
    base = type(choice)

    class ShortNetworkChoice(base):  # type: ignore[valid-type, misc]
        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return super().convert(value, param, ctx)
            except click.BadParameter as err:
                why = (err.message.splitlines() or ["invalid network"])[0]
                raise click.BadParameter(
                    f"{why.removesuffix(' Options:')} Give ecosystem:network:provider, e.g. "
                    "ethereum:local:foundry or ethereum:local:http://127.0.0.1:8545 "
                    "(`ape networks list` shows them all).",
                    ctx=ctx,
                    param=param,
                ) from None

    choice.__class__ = ShortNetworkChoice


class ReadChainCommand(ChainCommand):
    """A :class:`ChainCommand` that only reads: Ape's ``--network`` without ``--account`` (an
    account option would ask for one that a read never uses)."""

    signs = False


def chain_command(
    name: str | None = None, **attrs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """``click.command`` for a command that talks to a chain: a :class:`ChainCommand` (Ape's
    connected-provider command with ``--network`` and ``--account``, built on first use), so
    command groups declare it at module level and still import Ape only when it runs. In a
    group: ``@group.command(cls=ChainCommand)``."""
    return click.command(name, cls=ChainCommand, **attrs)


def _patient_command_class() -> type[click.Command]:
    """Ape's connected-provider command that retries an unreachable RPC (imports Ape)."""
    import logging
    import time

    from ape.cli import ConnectedProviderCommand
    from ape.cli.commands import parse_network
    from ape.exceptions import ProviderError

    log = logging.getLogger(__name__)

    class PatientProviderCommand(ConnectedProviderCommand):
        def invoke(self, ctx: click.Context) -> Any:
            delay = 1.0
            while True:
                network_ctx = parse_network(ctx)
                if network_ctx is None:
                    return super().invoke(ctx)
                try:
                    provider = network_ctx.__enter__()
                except ProviderError as err:
                    log.error("RPC unreachable (retrying in %.0f s): %s", delay, err)
                    time.sleep(delay)
                    delay = min(2 * delay, 30.0)
                    continue
                try:
                    return self._invoke(ctx, provider=provider)
                finally:
                    network_ctx.__exit__(None, None, None)

    return PatientProviderCommand
