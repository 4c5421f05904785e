"""``spotcheck model ...``: onboard ONNX models, measure tolerance, prove jobs, show artifacts.

Offline commands (``build``, ``tolerance``, ``prove``, ``info``) never touch a chain; ``onboard``
is an Ape command (``--network``, ``--account``) that builds, measures ``tau``, deploys the
verifier and registers the model; ``list`` reads the registry. A build stage that runs for more
than a second is announced when it starts, and every stage prints its time when it ends; cached
stages say so.

``onboard`` checks the account before it builds anything: it must hold ETH for gas and own the
ModelRegistry (registration is owner-only). It ends with the ``[models."0x<id>"]`` tables a
node's and a challenger's config need (printed, and appended to ``--node-config`` /
``--challenger-config`` files when given).

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
from spotcheck.cli_options import (
    TOKENS_OR_ZERO,
    connect_contracts,
    deployment_option,
    dry_run_option,
    format_amount,
)
from spotcheck.errors import ChainError, ConfigError, ModelError

F = TypeVar("F", bound=Callable[..., Any])


def announce(stage: str, what: str = "started") -> None:
    click.echo(f"  {stage:<10} {what} ...", err=True)


class StageProgress:
    """Progress of a build: a ``started ...`` line when a stage that takes seconds starts (so a
    15 s key setup is not silence; a cached stage is never announced), and each stage's time
    when it ends. Printed from the building thread only: ezkl holds the GIL while it works, so
    a timer thread would print its line after the stage it announces."""

    def __call__(self, event: Any) -> None:
        if event.started:
            announce(event.stage)
            return
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
            progress=None if quiet else StageProgress(),
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
        if not quiet:
            announce("coverage", "witness and mock prover at the domain's corners")
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

    announce(
        "tolerance",
        f"over the domain {built.domain.describe()}: sound bound where the ops allow it, "
        f"adversarial search ({samples} random, corners, rounding edges, {climb_steps} "
        "hill-climb steps)",
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


def config_tables(
    model_id: str,
    onnx_file: Path,
    calibration: Path | None,
    input_scale: int,
    output_scale: int,
    tau: int,
    relative_to: Path | None = None,
) -> tuple[str, str]:
    """The ``[models."0x<id>"]`` tables of a node's and a challenger's config for a registered
    model: (node table, challenger table). Paths are relative to ``relative_to`` (the folder of
    the config file they go into) when they are inside it, else absolute."""

    def where(path: Path) -> str:
        full = path.resolve()
        if relative_to is not None and full.is_relative_to(relative_to.resolve()):
            return str(full.relative_to(relative_to.resolve()))
        return str(full)

    files = f'[models."{model_id}"]\nonnx_path = "{where(onnx_file)}"\n'
    if calibration is not None:
        files += f'calibration_path = "{where(calibration)}"\n'
    node = files + f"input_scale = {input_scale}\noutput_scale = {output_scale}\ntau = {tau}\n"
    return node, files


def _append_table(path: Path, table: str, which: str) -> None:
    text = path.read_text() if path.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + ("\n" if text else "") + table)
    click.echo(f"appended the model's table to {which} {path}", err=True)


def _check_registrar(contracts: Any, account: Any, dry_run: bool) -> None:
    """Refuse before anything is built when ``account`` cannot register: not the registry's
    owner, or no ETH for gas. A dry run only warns."""
    from verifier import registry

    problem = registry.registrar_problem(
        contracts.model_registry.owner(), str(account.address), int(account.balance)
    )
    if problem is None:
        return
    if not dry_run:
        raise ChainError(problem)
    click.secho(f"WARNING: {problem}", fg="yellow", err=True)


@model.command(cls=ChainCommand)
@build_options
@tolerance_options
@click.option("--tau", type=int, default=None, help="Use this tau instead of measuring it.")
@click.option("--challenge-window", type=int, default=None, help="Seconds (default 600).")
@click.option("--proof-window", type=int, default=None, help="Seconds (default 600).")
@click.option(
    "--challenger-bond",
    type=TOKENS_OR_ZERO,
    default=None,
    help="Tokens (1.5) or base units (1500wei); default 10 tokens.",
)
@click.option(
    "--slash",
    "slash_amount",
    type=TOKENS_OR_ZERO,
    default=None,
    help="Tokens (1.5) or base units (1500wei); default 100 tokens.",
)
@click.option("--bounty-bps", type=int, default=None, help="Challenger share of the slash.")
@click.option(
    "--min-fee",
    type=TOKENS_OR_ZERO,
    default=0,
    help="Minimum fee of an on-chain job, tokens (0.5) or base units (500wei); requestJob "
    "reverts below it.  [default: 0]",
)
@click.option(
    "--node-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append the model's table to this node.toml (paths relative to its folder).",
)
@click.option(
    "--challenger-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append the model's table to this challenger.toml (paths relative to its folder).",
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
    node_config: Path | None,
    challenger_config: Path | None,
    deployment: Path | None,
    dry_run: bool,
    **kw: Any,
) -> None:
    """Build over the input domain, bound tau, deploy the verifier, register the model.

    The account must own the ModelRegistry and hold ETH: checked before anything is built."""
    import time

    from verifier import registry

    contracts = connect_contracts(deployment)
    _check_registrar(contracts, account, dry_run)
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
    if dry_run:
        params = registry.model_params(a, tau, built.domain, min_fee, **economics)
        click.echo(f"dry run: would deploy a Halo2Verifier and register {params}")
        return
    announce("register", "checking the corners, deploying the verifier, registerModel")
    start = time.perf_counter()
    result = registry.onboard(a, tau, contracts, account, built.domain, min_fee, **economics)
    reg = result.registration
    if result.cached:
        click.echo("  register   cached (already registered on this chain)", err=True)
    else:
        click.echo(f"  register   {time.perf_counter() - start:7.2f} s", err=True)
    model_id = f"0x{reg.model_id.hex()}"
    click.echo(f"model id         {model_id}")
    click.echo(f"verifier         {reg.verifier}")
    click.echo(f"tau              {reg.tau}")
    click.echo(f"input domain     [{result.params.in_lo}, {result.params.in_hi}]")
    click.echo(f"min fee          {format_amount(result.params.min_fee)}")
    click.echo(f"calibration      {a.calibration_path} (nodes and validators build from it)")
    click.echo(f"input scale      {a.input_scale}")
    click.echo(f"output scale     {a.output_scale}")
    calibration = kw.get("write_calibration") or kw.get("calibration")
    args = (model_id, kw["onnx_file"], calibration, a.input_scale, a.output_scale, reg.tau)
    node_table, challenger_table = config_tables(*args)
    click.echo("\n# node.toml: the model's table (give node operators the files it names)")
    click.echo(node_table, nl=False)
    click.echo("\n# challenger.toml: the model's table")
    click.echo(challenger_table, nl=False)
    for path, which, index in (
        (node_config, "node config", 0),
        (challenger_config, "challenger config", 1),
    ):
        if path is not None:
            table = config_tables(*args, relative_to=path.parent)[index]
            _append_table(path, table, which)


@model.command("list")
@click.option(
    "--network",
    required=True,
    help="Ape network choice or RPC URL (http://127.0.0.1:8545). Read-only: no account.",
)
@deployment_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
def list_models(network: str, deployment: Path | None, as_json: bool) -> None:
    """List the models registered on this deployment: id, state, tau, domain, fee, windows."""
    import json

    from ape import networks

    from verifier import registry

    with networks.parse_network_choice(network):
        contracts = connect_contracts(deployment)
        models = registry.registered_models(contracts)
    if as_json:
        for m in models:
            click.echo(json.dumps(registry.model_json(m)))
        return
    if not models:
        click.echo(f"no model registered in ModelRegistry {contracts.deployment.model_registry}")
        return
    for m in models:
        click.echo(registry.describe_model(m))
