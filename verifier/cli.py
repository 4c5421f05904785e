"""``spotcheck model ...``: onboard ONNX models, measure tolerance, prove jobs, show artifacts.

Offline commands (``build``, ``tolerance``, ``prove``, ``info``) never touch a chain; ``onboard``
is an Ape command (``--network``, ``--account``) that builds, measures ``tau``, deploys the
verifier and registers the model. Every stage prints its time; cached stages say so.

Every build command takes the input domain (``--domain LO HI`` floats, or ``--in-lo/--in-hi``
quantized; default the calibration's value range): the circuit is calibrated over its corners
and box points and checked there (``verifier.coverage``), and ``tolerance``/``onboard`` bound
``tau`` over it (``verifier.tolerance``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from spotcheck.ape_cli import ChainCommand
from spotcheck.cli_options import connect_contracts, deployment_option, dry_run_option
from spotcheck.errors import ConfigError, ModelError

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
        click.option(
            "--domain",
            "float_domain",
            type=(float, float),
            default=None,
            metavar="LO HI",
            help="Input domain in floats, every element (default: the smallest and largest "
            "calibration value). Nodes refuse inputs outside it.",
        ),
        click.option(
            "--in-lo", type=int, default=None, help="Input domain low bound, quantized units."
        ),
        click.option(
            "--in-hi", type=int, default=None, help="Input domain high bound, quantized units."
        ),
        click.option(
            "--write-calibration",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the calibration the circuit is built from (samples + the domain's "
            "covering points): node operators and validators rebuild the circuit from it.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


class Built:
    """What a build command produced: the artifacts and the input domain they cover."""

    def __init__(self, artifacts: Any, domain: Any, registrar_samples: int) -> None:
        self.artifacts, self.domain, self.registrar_samples = artifacts, domain, registrar_samples


def _artifacts(
    onnx_file: Path,
    calibration: Path | None,
    dev_srs: bool,
    srs_file: Path | None,
    srs_sha256: str | None,
    max_logrows: int | None,
    target: str,
    cache: Path | None,
    float_domain: tuple[float, float] | None = None,
    in_lo: int | None = None,
    in_hi: int | None = None,
    write_calibration: Path | None = None,
    quiet: bool = False,
    check_coverage: bool = True,
) -> Built:
    import json

    from verifier import coverage
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
    prepared = coverage.prepare(onnx_file, cal, float_domain, in_lo, in_hi, cache, params)
    if prepared.registrar_samples == 1:
        from verifier.tolerance import ONE_SAMPLE_WARNING

        click.secho(f"WARNING: {ONE_SAMPLE_WARNING}", fg="yellow", err=True)
    if not quiet:
        click.echo(f"building artifacts for {onnx_file.name}", err=True)
    try:
        artifacts = build_artifacts(
            onnx_file,
            calibration=prepared.calibration,
            cache_root=cache,
            srs=srs,
            progress=None if quiet else _progress,
            params=params,
        )
    except ModelError as err:
        if "calibrate" not in str(err):
            raise
        raise ModelError(
            f"{err} over the domain [{prepared.float_lo:g}, {prepared.float_hi:g}]; "
            f"{coverage.WHAT_TO_CHANGE}"
        ) from err
    domain = prepared.domain(artifacts)
    if not quiet:
        click.echo(f"  domain     {domain.describe()} (from {prepared.source})", err=True)
    if check_coverage:
        report = coverage.check(artifacts, domain)
        if not quiet:
            click.echo(f"  {report.describe()}", err=True)
    if write_calibration is not None:
        data = {"input_data": [prepared.calibration.ravel().tolist()]}
        write_calibration.write_text(json.dumps(data))
        if not quiet:
            click.echo(f"  calibration for nodes and validators: {write_calibration}", err=True)
    return Built(artifacts, domain, prepared.registrar_samples)


def _describe(built: Built) -> str:
    a = built.artifacts
    compiled = a.compiled_verifier()
    return "\n".join(
        [
            f"input domain     {built.domain.describe()}",
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
    click.echo(_describe(_artifacts(**kw, quiet=True, check_coverage=False)))


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
        click.option(
            "--climb-steps",
            type=int,
            default=300,
            show_default=True,
            help="Hill-climb evaluations of the adversarial search.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _measure(
    built: Built, samples: int, margin: float, slack: int, exact: bool, climb_steps: int
) -> Any:
    from verifier import coverage
    from verifier import tolerance as tol

    click.echo(
        f"measuring tolerance over the domain {built.domain.describe()}: sound bound where the "
        f"ops allow it, adversarial search ({samples} random, corners, rounding edges, "
        f"{climb_steps} hill-climb steps)",
        err=True,
    )
    report = tol.measure(
        built.artifacts,
        random_samples=samples,
        margin=margin,
        slack=slack,
        exact=exact,
        domain=built.domain,
        climb_steps=climb_steps,
        registrar_samples=built.registrar_samples,
    )
    click.echo(report.describe())  # starts with the report's warnings
    # the worst input the search found must be provable too, not only the corners
    coverage.check(built.artifacts, built.domain, adversarial=[report.worst_input_q])
    return report


@model.command()
@build_options
@tolerance_options
def tolerance(
    samples: int, margin: float, slack: int, exact: bool, climb_steps: int, **kw: Any
) -> None:
    """Bound onnxruntime vs circuit deviation over the input domain; print the chosen tau."""
    _measure(_artifacts(**kw), samples, margin, slack, exact, climb_steps)


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

    built = _artifacts(**kw)
    a = built.artifacts
    input_q = load_input_q(input_file, a.input_scale)
    bad = built.domain.first_outside(input_q)
    if bad is not None:
        raise ConfigError(
            f"input element {bad} = {input_q[bad]} is outside the domain {built.domain.describe()}"
        )
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


@model.command(cls=ChainCommand)
@build_options
@tolerance_options
@click.option("--tau", type=int, default=None, help="Use this tau instead of measuring it.")
@click.option("--challenge-window", type=int, default=None, help="Seconds (default 600).")
@click.option("--proof-window", type=int, default=None, help="Seconds (default 600).")
@click.option("--challenger-bond", type=int, default=None, help="Token base units.")
@click.option("--slash", "slash_amount", type=int, default=None, help="Token base units.")
@click.option("--bounty-bps", type=int, default=None, help="Challenger share of the slash.")
@click.option(
    "--min-fee",
    type=int,
    default=0,
    show_default=True,
    help="Minimum fee of an on-chain job (token base units); requestJob reverts below it.",
)
@deployment_option
@dry_run_option("Build and measure; print the registration only.")
def onboard(
    account: Any,
    samples: int,
    margin: float,
    slack: int,
    exact: bool,
    climb_steps: int,
    tau: int | None,
    challenge_window: int | None,
    proof_window: int | None,
    challenger_bond: int | None,
    slash_amount: int | None,
    bounty_bps: int | None,
    min_fee: int,
    deployment: Path | None,
    dry_run: bool,
    **kw: Any,
) -> None:
    """Build over the input domain, bound tau, deploy the verifier, register the model."""
    from verifier import registry

    built = _artifacts(**kw)
    a = built.artifacts
    if tau is None:
        tau = _measure(built, samples, margin, slack, exact, climb_steps).tau
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
    contracts = connect_contracts(deployment)
    if dry_run:
        params = registry.model_params(a, tau, built.domain, min_fee, **economics)
        click.echo(f"dry run: would deploy a Halo2Verifier and register {params}")
        return
    import time

    start = time.perf_counter()
    result = registry.onboard(a, tau, contracts, account, built.domain, min_fee, **economics)
    reg = result.registration
    if result.cached:
        click.echo("  register   cached (already registered on this chain)", err=True)
    else:
        click.echo(f"  register   {time.perf_counter() - start:7.2f} s", err=True)
    click.echo(f"model id         0x{reg.model_id.hex()}")
    click.echo(f"verifier         {reg.verifier}")
    click.echo(f"tau              {reg.tau}")
    click.echo(f"input domain     [{result.params.in_lo}, {result.params.in_hi}]")
    click.echo(f"min fee          {result.params.min_fee}")
    click.echo(f"calibration      {a.calibration_path} (nodes and validators build from it)")
    click.echo(f"input scale      {a.input_scale}")
    click.echo(f"output scale     {a.output_scale}")
