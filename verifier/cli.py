"""``spotcheck model ...``: onboard ONNX models, measure tolerance, prove jobs, show artifacts.

Offline commands (``build``, ``tolerance``, ``prove``, ``info``) never touch a chain; ``onboard``
is an Ape command (``--network``, ``--account``) that builds, measures ``tau``, deploys the
verifier and registers the model. Every stage prints its time; cached stages say so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from spotcheck.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _progress(event: Any) -> None:
    status = "cached" if event.cached else f"{event.seconds:7.2f} s"
    detail = f"  ({event.detail})" if event.detail else ""
    click.echo(f"  {event.stage:<10} {status}{detail}", err=True)


def build_options(fn: F) -> F:
    """Options shared by every command that needs a model's artifacts."""
    options = [
        click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option(
            "--calibration",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="JSON calibration inputs (default: 32 uniform samples in [-1, 1]).",
        ),
        click.option(
            "--dev-srs", is_flag=True, help="Generate a local SRS. INSECURE: tests/demos only."
        ),
        click.option(
            "--srs", "srs_file", type=click.Path(path_type=Path), help="SRS file (production)."
        ),
        click.option("--srs-sha256", help="Expected SHA-256 of --srs (required with --srs)."),
        click.option(
            "--max-logrows", type=int, default=None, help="Calibration upper bound on logrows."
        ),
        click.option(
            "--target",
            type=click.Choice(["resources", "accuracy"]),
            default="resources",
            show_default=True,
            help="Calibration target: smaller circuit or higher scales.",
        ),
        click.option(
            "--cache",
            type=click.Path(path_type=Path),
            help="Cache root (default $SPOTCHECK_CACHE).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _artifacts(
    onnx_file: Path,
    calibration: Path | None,
    dev_srs: bool,
    srs_file: Path | None,
    srs_sha256: str | None,
    max_logrows: int | None,
    target: str,
    cache: Path | None,
    quiet: bool = False,
) -> Any:
    from verifier.artifacts import build_artifacts
    from verifier.datafiles import load_calibration
    from verifier.ezkl_backend import CircuitParams
    from verifier.srs import DEV_SRS_WARNING, SrsSource

    if srs_file is not None:
        if dev_srs:
            raise ConfigError("choose one of --dev-srs and --srs")
        if not srs_sha256:
            raise ConfigError("--srs needs --srs-sha256 (the hash published with the SRS)")
        srs = SrsSource.file(srs_file, srs_sha256)
    elif dev_srs:
        click.secho(f"WARNING: {DEV_SRS_WARNING}", fg="yellow", err=True)
        srs = SrsSource.dev()
    else:
        raise ConfigError("give --srs FILE --srs-sha256 HEX, or --dev-srs for tests and demos")
    cal = load_calibration(calibration) if calibration is not None else None
    params = CircuitParams(calibration_target=target, max_logrows=max_logrows)
    if not quiet:
        click.echo(f"building artifacts for {onnx_file.name}", err=True)
    return build_artifacts(
        onnx_file,
        calibration=cal,
        cache_root=cache,
        srs=srs,
        progress=None if quiet else _progress,
        params=params,
    )


def _describe(a: Any) -> str:
    compiled = a.compiled_verifier()
    return "\n".join(
        [
            f"onnx hash        0x{a.onnx_hash.hex()}",
            f"settings hash    0x{a.settings_hash.hex()}",
            f"input            shape {a.input_shape}, {a.input_len} elements, "
            f"scale 2**{a.input_scale}",
            f"output           shapes {a.output_shapes}, {a.output_len} elements, "
            f"scale 2**{a.output_scale}",
            f"logrows          {a.logrows}",
            f"proving key      {a.pk_path.stat().st_size / 1e6:.1f} MB",
            f"verifier         {len(compiled.runtime_bytecode)} bytes runtime code "
            f"(solc {compiled.solc_version})",
            f"srs              {'DEV (insecure)' if a.dev_srs else 'user'} sha256 {a.srs_sha256}",
            f"artifacts        {a.entry_dir}",
        ]
    )


@click.group()
def model() -> None:
    """Onboard ONNX models, measure tolerance, prove jobs."""


@model.command()
@build_options
def build(**kw: Any) -> None:
    """Build (or load from cache) settings, circuit, keys and the Solidity verifier."""
    click.echo(_describe(_artifacts(**kw)))


@model.command()
@build_options
def info(**kw: Any) -> None:
    """Show a model's circuit parameters, hashes and artifact paths."""
    click.echo(_describe(_artifacts(**kw, quiet=True)))


def tolerance_options(fn: F) -> F:
    options = [
        click.option("--samples", type=int, default=200, show_default=True, help="Random inputs."),
        click.option(
            "--margin", type=float, default=0.5, show_default=True, help="Relative margin."
        ),
        click.option(
            "--slack", type=int, default=2, show_default=True, help="Absolute slack (units)."
        ),
        click.option("--exact", is_flag=True, help="Exact mode: tau = 0."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _measure(a: Any, samples: int, margin: float, slack: int, exact: bool) -> Any:
    from verifier import tolerance as tol

    click.echo(f"measuring tolerance on {samples} random inputs + the calibration set", err=True)
    report = tol.measure(a, random_samples=samples, margin=margin, slack=slack, exact=exact)
    click.echo(report.describe())
    return report


@model.command()
@build_options
@tolerance_options
def tolerance(samples: int, margin: float, slack: int, exact: bool, **kw: Any) -> None:
    """Measure onnxruntime vs circuit deviation and print the chosen tau."""
    _measure(_artifacts(**kw), samples, margin, slack, exact)


@model.command()
@build_options
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help='JSON: {"input": [floats]} or {"input_q": [ints]}.',
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the proof bundle (JSON) here.")
@click.option("--onchain", "verifier_address", help="Also call verifyProof on this verifier.")
@click.option(
    "--network", default="ethereum:local:foundry", show_default=True, help="For --onchain."
)
def prove(
    input_file: Path, out: Path | None, verifier_address: str | None, network: str, **kw: Any
) -> None:
    """Prove a job input; print the instances and output, verify off-chain (and on-chain)."""
    import time

    from verifier import prove as proving
    from verifier.datafiles import load_input_q

    a = _artifacts(**kw)
    input_q = load_input_q(input_file, a.input_scale)
    start = time.perf_counter()
    bundle = proving.prove(a, input_q)
    click.echo(f"  prove      {time.perf_counter() - start:7.2f} s", err=True)
    ok = proving.verify_offchain(a, bundle)
    click.echo(f"input_q          {input_q}")
    click.echo(f"output_q         {bundle.output_q}")
    click.echo(f"proof            {len(bundle.proof)} bytes, {len(bundle.instances)} instances")
    click.echo(f"off-chain verify {'OK' if ok else 'REJECTED'}")
    if out is not None:
        out.write_text(bundle.to_json())
        click.echo(f"bundle           {out}")
    if verifier_address:
        onchain_ok = _onchain_check(network, verifier_address, bundle)
        click.echo(f"on-chain verify  {'OK' if onchain_ok else 'REJECTED'}")
    if not ok:
        raise click.ClickException("the proof did not verify off-chain")


def _onchain_check(network: str, address: str, bundle: Any) -> bool:
    from ape import networks

    from spotcheck.toolchain import ensure_anvil_on_path
    from verifier import solidity

    ensure_anvil_on_path()
    with networks.parse_network_choice(network):
        from ape import Contract

        contract = Contract(address, abi=solidity.IHALO2_VERIFIER_ABI)
        try:
            return bool(contract.verifyProof.call(bundle.proof, bundle.instances))
        except Exception:  # the ezkl verifier reverts on an invalid proof
            return False


def _onboard_command() -> click.Command:
    from spotcheck.ape_cli import chain_command

    @chain_command()
    @build_options
    @tolerance_options
    @click.option("--tau", type=int, default=None, help="Use this tau instead of measuring it.")
    @click.option("--challenge-window", type=int, default=None, help="Seconds (default 600).")
    @click.option("--proof-window", type=int, default=None, help="Seconds (default 600).")
    @click.option("--challenger-bond", type=int, default=None, help="Token base units.")
    @click.option("--slash", "slash_amount", type=int, default=None, help="Token base units.")
    @click.option("--bounty-bps", type=int, default=None, help="Challenger share of the slash.")
    @click.option("--deployment", type=click.Path(path_type=Path), help="Deployment file.")
    @click.option("--dry-run", is_flag=True, help="Build and measure; print the registration only.")
    def onboard(
        account: Any,
        samples: int,
        margin: float,
        slack: int,
        exact: bool,
        tau: int | None,
        challenge_window: int | None,
        proof_window: int | None,
        challenger_bond: int | None,
        slash_amount: int | None,
        bounty_bps: int | None,
        deployment: Path | None,
        dry_run: bool,
        **kw: Any,
    ) -> None:
        """Build, measure tau, deploy the verifier and register the model (one command)."""
        from spotcheck.chain import SpotcheckContracts
        from verifier import registry

        a = _artifacts(**kw)
        if tau is None:
            tau = _measure(a, samples, margin, slack, exact).tau
        economics = {
            k: v
            for k, v in {
                "challenge_window": challenge_window,
                "proof_window": proof_window,
                "challenger_bond": challenger_bond,
                "slash_amount": slash_amount,
                "bounty_bps": bounty_bps,
            }.items()
            if v is not None
        }
        contracts = SpotcheckContracts.connect(path=deployment)
        if dry_run:
            params = registry.model_params(a, tau, **economics)
            click.echo(f"dry run: would deploy a Halo2Verifier and register {params}")
            return
        import time

        start = time.perf_counter()
        result = registry.onboard(a, tau, contracts, account, **economics)
        reg = result.registration
        if result.cached:
            click.echo("  register   cached (already registered on this chain)", err=True)
        else:
            click.echo(f"  register   {time.perf_counter() - start:7.2f} s", err=True)
        click.echo(f"model id         0x{reg.model_id.hex()}")
        click.echo(f"verifier         {reg.verifier}")
        click.echo(f"tau              {reg.tau}")
        click.echo(f"input scale      {a.input_scale}")
        click.echo(f"output scale     {a.output_scale}")

    model.add_command(onboard)
    return onboard


_onboard_command()
