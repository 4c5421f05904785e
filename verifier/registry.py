"""Register a model on-chain: deploy its Halo2 verifier through Ape, then ``registerModel``.

``modelId = keccak256(abi.encode(onnxHash, settingsHash, verifier))``. Registrations are
remembered next to the model's keys (``registrations.json``); onboarding again on the same
chain reuses a registration only after reading it back from the registry (so a restarted
local chain is never trusted from the record alone).

Before anything is built, :func:`registrar_problem` says why an account cannot register (not the
registry's owner, no ETH for gas); :func:`registered_models` lists what a registry holds (from
its ``ModelRegistered`` events since the deployment block, each read back with ``getModel``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from spotcheck import encoding
from spotcheck.chain import ModelParams, RegisteredModel, SpotcheckContracts
from spotcheck.errors import ChainError, ConfigError
from verifier import solidity
from verifier.artifacts import CircuitArtifacts, ModelArtifacts
from verifier.domain import InputDomain
from verifier.tolerance import default_domain

log = logging.getLogger(__name__)

RECORD_FILE = "registrations.json"


@dataclass(frozen=True)
class Registration:
    model_id: bytes
    verifier: str
    chain_id: int
    registry: str
    tau: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_id"] = "0x" + self.model_id.hex()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Registration:
        return cls(
            model_id=encoding.from_hex(data["model_id"]),
            verifier=str(data["verifier"]),
            chain_id=int(data["chain_id"]),
            registry=str(data["registry"]),
            tau=int(data["tau"]),
        )


def model_params(
    artifacts: CircuitArtifacts,
    tau: int,
    domain: InputDomain | None = None,
    min_fee: int = 0,
    **economics: int,
) -> ModelParams:
    """The registry parameters of ``artifacts``: ``tau``, the input domain ``[inLo, inHi]``
    (default: the value range of the circuit's calibration set, which the circuit covers; never
    the field-wide default of ``ModelParams``), ``min_fee`` and optional economics overrides."""
    domain = domain or default_domain(artifacts)
    if domain.scale != artifacts.input_scale:
        raise ConfigError(
            f"domain at scale 2**{domain.scale}; the circuit's input scale is "
            f"2**{artifacts.input_scale}"
        )
    return ModelParams(
        input_len=artifacts.input_len,
        output_len=artifacts.output_len,
        input_scale=artifacts.input_scale,
        output_scale=artifacts.output_scale,
        tau=tau,
        in_lo=domain.lo,
        in_hi=domain.hi,
        min_fee=min_fee,
        **economics,
    )


def _records(artifacts: ModelArtifacts) -> list[Registration]:
    path = artifacts.entry_dir / RECORD_FILE
    if not path.is_file():
        return []
    return [Registration.from_dict(d) for d in json.loads(path.read_text())]


def _save_record(artifacts: ModelArtifacts, reg: Registration) -> None:
    path: Path = artifacts.entry_dir / RECORD_FILE
    records = [r for r in _records(artifacts) if r.model_id != reg.model_id] + [reg]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([r.to_dict() for r in records], indent=2))
    tmp.replace(path)


def _matches_on_chain(
    reg: Registration, artifacts: ModelArtifacts, params: ModelParams, contracts: SpotcheckContracts
) -> bool:
    registry = contracts.model_registry
    # modelOfVerifier never reverts: a record from a reset chain or another deployment is
    # dismissed without a reverting getModel call (Ape prints a trace for each of those)
    if encoding.from_hex(registry.modelOfVerifier(reg.verifier)) != reg.model_id:
        return False
    try:
        model = registry.getModel(reg.model_id)
    except Exception:  # UnknownModel: the chain was reset or this is another deployment
        return False
    return bool(
        to_checksum_address(model.verifier) == to_checksum_address(reg.verifier)
        and bytes(model.onnxHash) == artifacts.onnx_hash
        and bytes(model.settingsHash) == artifacts.settings_hash
        and int(model.tau) == params.tau
        and int(model.challengeWindow) == params.challenge_window
        and int(model.proofWindow) == params.proof_window
        and int(model.challengerBond) == params.challenger_bond
        and int(model.slashAmount) == params.slash_amount
        and int(model.bountyBps) == params.bounty_bps
        and int(model.inLo) == params.in_lo
        and int(model.inHi) == params.in_hi
        and int(model.minFee) == params.min_fee
        and bool(model.active)
    )


def find_registration(
    artifacts: ModelArtifacts, params: ModelParams, contracts: SpotcheckContracts
) -> Registration | None:
    """An earlier registration of these artifacts and parameters that the chain confirms."""
    deployment = contracts.deployment
    for reg in _records(artifacts):
        if reg.chain_id != deployment.chain_id or reg.registry != deployment.model_registry:
            continue
        if _matches_on_chain(reg, artifacts, params, contracts):
            return reg
    return None


def register_model(
    artifacts: ModelArtifacts,
    params: ModelParams,
    contracts: SpotcheckContracts,
    sender: Any,
    verifier_address: str | None = None,
) -> Registration:
    """Deploy the verifier (unless ``verifier_address`` is given) and register the model."""
    if params.tau < 0:
        raise ChainError(f"tau must be >= 0, got {params.tau}")
    existing = find_registration(artifacts, params, contracts)
    if existing is not None:
        log.info("model already registered: 0x%s", existing.model_id.hex())
        return existing
    if verifier_address is None:
        compiled = artifacts.compiled_verifier()
        if len(compiled.runtime_bytecode) > solidity.MAX_RUNTIME_BYTES:
            raise ChainError(
                f"verifier runtime code is {len(compiled.runtime_bytecode)} bytes, above the "
                f"EIP-170 limit of {solidity.MAX_RUNTIME_BYTES}: this circuit cannot be deployed"
            )
        verifier = solidity.deploy_verifier(compiled, sender)
        verifier_address = str(verifier.address)
    registry = contracts.model_registry
    struct = params.as_struct(verifier_address, artifacts.onnx_hash, artifacts.settings_hash)
    try:
        registry.registerModel(struct, sender=sender)
    except Exception as err:  # Ape's ContractLogicError carries the custom error
        raise ChainError(f"registerModel failed: {err}") from err
    model_id = encoding.model_id(artifacts.onnx_hash, artifacts.settings_hash, verifier_address)
    reg = Registration(
        model_id=model_id,
        verifier=verifier_address,
        chain_id=contracts.deployment.chain_id,
        registry=contracts.deployment.model_registry,
        tau=params.tau,
    )
    if not _matches_on_chain(reg, artifacts, params, contracts):
        raise ChainError(f"model 0x{model_id.hex()} not found in the registry after registration")
    _save_record(artifacts, reg)
    return reg


@dataclass(frozen=True)
class OnboardResult:
    registration: Registration
    params: ModelParams
    cached: bool  # True when an earlier, chain-confirmed registration was reused


def onboard(
    artifacts: ModelArtifacts,
    tau: int,
    contracts: SpotcheckContracts,
    sender: Any,
    domain: InputDomain | None = None,
    min_fee: int = 0,
    **economics: int,
) -> OnboardResult:
    """Register ``artifacts`` with ``tau`` and its input domain (deploying its verifier)
    unless already registered. Before a new registration, the circuit must prove at the
    domain's corners (``coverage.check``: ModelError otherwise)."""
    from verifier import coverage

    params = model_params(artifacts, tau, domain, min_fee, **economics)
    existing = find_registration(artifacts, params, contracts)
    if existing is not None:
        return OnboardResult(existing, params, cached=True)
    coverage.check(artifacts, InputDomain(params.in_lo, params.in_hi, artifacts.input_scale))
    return OnboardResult(register_model(artifacts, params, contracts, sender), params, cached=False)


def registrar_problem(owner: str, address: str, balance_wei: int) -> str | None:
    """Why ``address`` cannot register a model (one line), or None: registration is owner-only
    (a verifier is code that ``defend`` trusts) and costs gas. Checked before any build, so a
    wrong account costs nothing."""
    if to_checksum_address(owner) != to_checksum_address(address):
        return (
            f"{address} is not the ModelRegistry owner ({to_checksum_address(owner)}): "
            "registration is owner-only; onboard with the owner's account (--dry-run builds "
            "and measures without registering)"
        )
    if balance_wei <= 0:
        return f"{address} holds no ETH on this chain: fund it with gas first"
    return None


def describe_model(m: RegisteredModel) -> str:
    """One line per registered model for ``spotcheck model list``."""
    from spotcheck.cli_options import format_tokens

    state = "active" if m.active else "inactive"
    return (
        f"0x{m.model_id.hex()}  {state}  in {m.input_len} (2**{m.input_scale})  "
        f"out {m.output_len} (2**{m.output_scale})  tau {m.tau}  domain [{m.in_lo}, {m.in_hi}]  "
        f"min fee {format_tokens(m.min_fee)}  windows {m.challenge_window}/{m.proof_window} s  "
        f"bond {format_tokens(m.challenger_bond)}  slash {format_tokens(m.slash_amount)}  "
        f"verifier {m.verifier}"
    )


def model_json(m: RegisteredModel) -> dict[str, Any]:
    """A registered model as JSON (hex for bytes, base units for amounts)."""
    data = asdict(m)
    for key in ("model_id", "onnx_hash", "settings_hash"):
        data[key] = "0x" + bytes(data[key]).hex()
    return data


def registered_models(contracts: SpotcheckContracts) -> list[RegisteredModel]:
    """Every model the deployment's registry registered, in registration order."""
    from ape import chain

    registry = contracts.model_registry
    start = contracts.deployment.deploy_block
    head = int(chain.blocks.head.number)
    seen: list[bytes] = []
    for event in registry.ModelRegistered.range(start, head + 1):
        model_id = encoding.from_hex(event.modelId)
        if model_id not in seen:
            seen.append(model_id)
    return [RegisteredModel.from_struct(mid, registry.getModel(mid)) for mid in seen]
