"""``spotcheck demo``: the click command, its options, and signal handling (SIGTERM stops the
run like Ctrl-C)."""

from __future__ import annotations

import logging
import signal
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click

from demo.config import DEFAULT_WORKDIR, DemoConfig


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@click.command(name="demo")
@click.option("--quick", is_flag=True, help="Shorter run for CI: fewer jobs, higher fault rate.")
@click.option(
    "--onchain-jobs", type=click.IntRange(min=0), default=None, help="On-chain jobs per node."
)
@click.option(
    "--batch-jobs", type=click.IntRange(min=0), default=None, help="Batched (HTTP) jobs per node."
)
@click.option(
    "--fault-rate",
    type=float,
    default=None,
    help="Share of the dishonest node's outputs corrupted beyond tau.",
)
@click.option("--sampling", type=float, default=None, help="The challenger's sampling rate p.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Seconds from the first job until the demo gives up.",
)
@click.option(
    "--no-time-travel",
    is_flag=True,
    help="Wait out every window in real time instead of moving anvil's clock.",
)
@click.option(
    "--no-grief",
    is_flag=True,
    help="Skip the griefing dispute (no zk proof is then verified on-chain).",
)
@click.option(
    "--no-withholding",
    is_flag=True,
    help="Run without the withholding node (then no leaf request is shown).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help=f"State folder (default {DEFAULT_WORKDIR}).",
)
@click.option(
    "--report-json",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report as JSON here.",
)
def demo(
    quick: bool,
    onchain_jobs: int | None,
    batch_jobs: int | None,
    fault_rate: float | None,
    sampling: float | None,
    timeout_s: float | None,
    no_time_travel: bool,
    no_grief: bool,
    no_withholding: bool,
    workdir: Path | None,
    report_json: Path | None,
) -> None:
    """End-to-end demo on a local anvil chain: an honest, a dishonest and a withholding node,
    a challenger, a dApp; runs until the cheater is slashed through a dispute and the
    withholding node through a leaf request, and prints a report (exit 1 on failure)."""
    cfg = DemoConfig()
    if quick:
        cfg = cfg.quick()
    overrides: dict[str, Any] = {
        "onchain_jobs": onchain_jobs,
        "batch_jobs": batch_jobs,
        "fault_rate": fault_rate,
        "sampling": sampling,
        "timeout_s": timeout_s,
        "workdir": workdir,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    cfg = replace(
        cfg, time_travel=not no_time_travel, grief=not no_grief, withholding=not no_withholding
    )
    if not 0 < cfg.sampling <= 1 or not 0 < cfg.fault_rate <= 1:
        raise click.BadParameter("sampling and fault rate must be in (0, 1]")
    if cfg.onchain_jobs + cfg.batch_jobs == 0:
        raise click.BadParameter("the dApp needs at least one job per node")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    from demo.run import run_demo  # the run's imports (Ape, the services) wait until it runs

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = run_demo(cfg)
    except (KeyboardInterrupt, click.ClickException):
        raise
    except Exception as err:  # one clear line; the services' log has the details
        raise click.ClickException(f"demo failed: {type(err).__name__}: {err}") from err
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(report.render())
    if report_json is not None:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        report_json.write_text(report.to_json())
    if not report.ok:
        raise SystemExit(1)
