"""One demo run, stage by stage: prepare the model, start anvil, set up the chain, start the
actors, watch until the cheater is caught, let the dApp read, gather the report. Every actor
is stopped and anvil is shut down on success, on failure and on Ctrl-C."""

from __future__ import annotations

import shutil

import click

from demo.config import NETWORK, RUN_MARKER, DemoConfig
from demo.progress import Progress, console_to_log, service_logs
from demo.report import DemoReport
from spotcheck.economics import DEFAULTS, Verdict, check_sampling


def run_demo(cfg: DemoConfig) -> DemoReport:
    """Run the demo in a fresh run folder, its output kept off the console."""
    progress = Progress()
    _fresh_run_dir(cfg)
    with service_logs(cfg.log_path), console_to_log(cfg.stdout_log_path, progress):
        return _run(cfg, progress)


def _fresh_run_dir(cfg: DemoConfig) -> None:
    run_dir = cfg.run_dir
    marker = run_dir / RUN_MARKER
    if run_dir.exists():
        # Only ever delete a folder an earlier demo run created.
        if not marker.is_file():
            raise click.ClickException(
                f"{run_dir} exists and was not made by the demo; choose another --workdir"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    marker.write_text("spotcheck demo run folder: replaced by the next run\n")


def _announce(cfg: DemoConfig, progress: Progress) -> None:
    """The sampling rate against the honesty bound (``spotcheck.economics``), and the logs."""
    p = cfg.sampling
    check = check_sampling(DEFAULTS.cost, DEFAULTS.reward, DEFAULTS.slash, DEFAULTS.collusion, p)
    bound = check.minimum
    progress.say(
        f"Spotcheck demo: challenger samples p = {p:.0%}; cheating stops paying above "
        f"p > C/((1-r)(R+S)) = {bound:.2%} (C={DEFAULTS.cost:g}, R={DEFAULTS.reward:g}, "
        f"S={DEFAULTS.slash:g}, r={DEFAULTS.collusion:g}; spotcheck.economics). The "
        f"protocol default is {DEFAULTS.sampling:.0%}"
        + (
            "; the demo samples more to catch the cheater quickly."
            if p > DEFAULTS.sampling
            else "."
        )
    )
    if check.verdict is not Verdict.SAFE:
        progress.say(
            f"WARNING: p = {p:.2%} is {check.verdict.value.upper()} ({check.margin:.2f}x the "
            "bound): at this rate cheating can pay (docs/economics.md)"
        )
    progress.say(
        f"services log to {cfg.log_path} (Ape's call traces of reverted transactions to "
        f"{cfg.stdout_log_path})"
    )


def _run(cfg: DemoConfig, progress: Progress) -> DemoReport:
    from ape import networks

    from demo.actors import challenger_key_path, start_actors
    from demo.chain_setup import setup_chain
    from demo.dapp import dapp_reads
    from demo.gather import gather_report
    from demo.paid_checks import setup_paid_checks
    from demo.paid_report import gather_paid_checks
    from demo.prepare import prepare
    from demo.watch import Watch

    _announce(cfg, progress)
    model = prepare(cfg, progress)
    with progress.stage("start anvil (ape-foundry)"):
        ctx = networks.parse_network_choice(NETWORK, disconnect_after=True)
        provider = ctx.__enter__()
        progress.say(f"    anvil at {getattr(provider, 'uri', '?')}, chain id {provider.chain_id}")
    try:
        chain = setup_chain(cfg, model, progress)
        who = chain.accounts
        holders = (*who.nodes(cfg), who.challenger, who.griefer)
        before = {str(a.address): chain.holdings(str(a.address)) for a in holders}
        terms = setup_paid_checks(cfg, chain, challenger_key_path(cfg.run_dir), progress)
        for a in (who.canary, who.operator, who.lazy, who.challenger):
            before[str(a.address)] = chain.holdings(str(a.address))
        cast = start_actors(cfg, model, chain, progress, terms)
        try:
            watch = Watch(cfg, model, chain, cast, progress)
            with progress.stage("run until the cheater is caught and all jobs resolve"):
                watch.wait()
            dapp = dapp_reads(chain, cast.nodes, watch.workload, progress)
        finally:
            cast.stop()
        report = gather_report(cfg, model, chain, cast, watch, dapp, before, progress)
        report.paid_checks = gather_paid_checks(
            cfg, chain, cast, terms, before, watch.challenger_db
        )
        report.failures += report.paid_checks.failures()
        report.service_errors = dict(cast.service_errors)
        if watch.watch_errors:
            report.service_errors["demo watch loop"] = watch.watch_errors
        report.log_path = str(cfg.log_path)
        report.wall_s = progress.elapsed()
        return report
    finally:
        with progress.stage("stop anvil"):
            ctx.__exit__(None, None, None)
