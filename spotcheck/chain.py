"""Chain bindings: the deployment file, typed access to the contracts, Solidity enum mirrors.

Everything here is thin. Ape is imported only inside the functions that touch a chain, so
importing this module (for the enums or the deployment file) stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spotcheck.economics import DEFAULTS
from spotcheck.errors import ChainError, ConfigError
from spotcheck.toolchain import PROJECT_ROOT

if TYPE_CHECKING:  # pragma: no cover
    from ape.contracts import ContractInstance

#: One token = 10**18 base units (TestToken has 18 decimals).
TOKEN = 10**18
DEPLOYMENTS_DIR = PROJECT_ROOT / ".spotcheck" / "deployments"


class JobStatus(IntEnum):
    """Mirror of ``IJobManager.JobStatus`` (order matters: it is the ABI value)."""

    NONE = 0
    REQUESTED = 1
    COMMITTED = 2
    DISPUTED = 3
    FINAL = 4
    INVALID = 5
    CANCELLED = 6


class BatchStatus(IntEnum):
    """Mirror of ``IJobManager.BatchStatus``."""

    NONE = 0
    COMMITTED = 1
    FINAL = 2


class DisputeStatus(IntEnum):
    """Mirror of ``IDisputeManager.DisputeStatus``."""

    NONE = 0
    OPEN = 1
    DEFENDED = 2
    SLASHED = 3


class JobKind(IntEnum):
    """Mirror of ``IDisputeManager.JobKind``."""

    ONCHAIN = 0
    BATCH = 1


class LeafRequestStatus(IntEnum):
    """Mirror of ``IDisputeManager.LeafRequestStatus`` (docs/v2-protocol.md, section 5)."""

    NONE = 0
    OPEN = 1
    REVEALED = 2
    SLASHED = 3


class ClaimStatus(IntEnum):
    """Mirror of ``ICheckPool.ClaimStatus`` (paid checks, issue 15)."""

    NONE = 0
    OPEN = 1
    COLLECTED = 2
    FORFEITED = 3


@dataclass(frozen=True)
class TxResult:
    """A mined transaction (or, in a node's dry run, its gas estimate with ``tx_hash`` None)."""

    tx_hash: str | None
    block_number: int = 0
    gas_used: int = 0
    fee_wei: int = 0
    receipt: Any = None

    @property
    def dry_run(self) -> bool:
        return self.tx_hash is None


#: Solidity enum name -> (interface file, Python mirror); the enum-order test reads these.
ENUM_MIRRORS: dict[str, tuple[str, type[IntEnum]]] = {
    "JobStatus": ("contracts/interfaces/IJobManager.sol", JobStatus),
    "BatchStatus": ("contracts/interfaces/IJobManager.sol", BatchStatus),
    "DisputeStatus": ("contracts/interfaces/IDisputeManager.sol", DisputeStatus),
    "JobKind": ("contracts/interfaces/IDisputeManager.sol", JobKind),
    "LeafRequestStatus": ("contracts/interfaces/IDisputeManager.sol", LeafRequestStatus),
    "ClaimStatus": ("contracts/interfaces/ICheckPool.sol", ClaimStatus),
}

#: ``ModelRegistry.MAX_TAU``: the largest tolerance a model may register.
MAX_TAU = 2**64
#: ``ModelRegistry.MAX_BOUNTY_BPS``: a cheater disputing itself recovers at most half its slash.
MAX_BOUNTY_BPS = 5000
#: ``BN254_R // 2``: the widest input domain (``-FIELD_HALF <= inLo <= inHi <= FIELD_HALF``).
FIELD_HALF = 21888242871839275222246405745257275088548364400416034343698204186575808495617 // 2
#: Leaves per batch the default node stake is sized for.
DEFAULT_BATCH_SIZE = 64


def stake_for(slash_amount: int, batch_size: int, open_batches: int) -> int:
    """Stake a node needs to hold ``open_batches`` unfinalized batches of ``batch_size`` leaves
    at once: every leaf reserves one slash (docs/v2-protocol.md, section 4)."""
    if slash_amount <= 0 or batch_size <= 0 or open_batches <= 0:
        raise ConfigError(
            f"slash, batch size and open batches must be > 0 "
            f"({slash_amount}, {batch_size}, {open_batches})"
        )
    return slash_amount * batch_size * open_batches


@dataclass(frozen=True)
class DeployParams:
    """Deployment parameters (token base units and seconds).

    Defaults follow the protocol economics (``spotcheck.economics.DEFAULTS``). Every open
    commitment is fully backed: a batch of ``n`` leaves reserves ``n`` slashes, so what a node
    must stake follows from its batch size, not from ``min_stake`` (the floor below which it may
    not commit at all). ``node_stake`` is the stake the deployment recommends (and the demo and
    tests post): four open batches of ``DEFAULT_BATCH_SIZE`` (64) leaves at the default slash
    (100 tokens) = 25,600 tokens. ``unbonding_delay`` (1 day) must exceed any model's challenge
    window + proof window; the registry enforces it per model.
    """

    min_stake: int = 1000 * TOKEN
    #: Recommended stake per node: ``stake_for(default slash, 64, 4)``.
    node_stake: int = 4 * DEFAULT_BATCH_SIZE * int(DEFAULTS.slash) * TOKEN
    unbonding_delay: int = 24 * 3600
    commit_timeout: int = 10 * 60
    #: CheckPool: the least bond a challenger registers with, the collateral each open claim
    #: locks out of it, and the delay between requestExit and withdrawBond (seconds).
    check_min_bond: int = 100 * TOKEN
    check_claim_collateral: int = 10 * TOKEN
    check_exit_delay: int = 24 * 3600
    #: CheckPool: claims close this many seconds before a job's or batch's challenge deadline,
    #: so a dispute (a canary's) can follow every accepted claim (audit A6-1). A few blocks'
    #: worth: 6 s suits the 1 s demo chain and windows down to 30 s; use ~36 s on 12 s blocks.
    #: Every model's challenge window must exceed it, or its jobs cannot be claimed.
    check_claim_margin: int = 6
    #: Use an existing ERC-20 instead of deploying TestToken (production networks).
    token: str | None = None
    deploy_example_consumer: bool = True
    #: Hand ExampleConsumer (owned by the deployer) to this address: the deployment starts the
    #: two-step transfer and the new owner must call ``acceptOwnership`` before it can request.
    example_consumer_owner: str | None = None

    def __post_init__(self) -> None:
        if self.min_stake <= 0:
            raise ConfigError(f"min_stake must be > 0, got {self.min_stake}")
        if self.node_stake < self.min_stake:
            raise ConfigError(f"node_stake {self.node_stake} is below min_stake {self.min_stake}")
        if not 0 < self.check_claim_collateral <= self.check_min_bond:
            raise ConfigError(
                f"check claim collateral {self.check_claim_collateral} must be in "
                f"1..check_min_bond ({self.check_min_bond})"
            )
        if self.check_exit_delay <= 0:
            raise ConfigError(f"check_exit_delay must be > 0, got {self.check_exit_delay}")
        if self.check_claim_margin <= 0:
            raise ConfigError(f"check_claim_margin must be > 0, got {self.check_claim_margin}")
        if self.unbonding_delay <= 0 or self.commit_timeout <= 0:
            raise ConfigError(
                f"delays must be > 0 (unbonding {self.unbonding_delay}, "
                f"commit timeout {self.commit_timeout})"
            )


@dataclass(frozen=True)
class ModelParams:
    """``IModelRegistry.ModelParams`` without the model binding (verifier and hashes).

    Defaults: slash 100, challenger bond 10, bounty 25 % (``DEFAULTS``), 10-minute challenge
    and proof windows (together well inside the default 1-day unbonding delay), no minimum fee,
    and the widest domain the field allows (``[-r/2, r/2]``). A registrar sets the real input
    domain ``[in_lo, in_hi]`` (quantized units, every element): the inputs the circuit covers.
    """

    input_len: int
    output_len: int
    input_scale: int
    output_scale: int
    tau: int
    challenge_window: int = 10 * 60
    proof_window: int = 10 * 60
    challenger_bond: int = int(DEFAULTS.challenger_bond) * TOKEN
    slash_amount: int = int(DEFAULTS.slash) * TOKEN
    bounty_bps: int = DEFAULTS.bounty_bps
    in_lo: int = -FIELD_HALF
    in_hi: int = FIELD_HALF
    min_fee: int = 0

    def __post_init__(self) -> None:
        if self.input_len <= 0 or self.output_len <= 0:
            raise ConfigError(f"lengths must be > 0 ({self.input_len}, {self.output_len})")
        if not 0 <= self.tau <= MAX_TAU:
            raise ConfigError(f"tau must be in 0..2**64, got {self.tau}")
        if not 0 <= self.bounty_bps <= MAX_BOUNTY_BPS:
            raise ConfigError(f"bounty_bps must be in 0..{MAX_BOUNTY_BPS}, got {self.bounty_bps}")
        if not -FIELD_HALF <= self.in_lo <= self.in_hi <= FIELD_HALF:
            raise ConfigError(
                f"input domain [{self.in_lo}, {self.in_hi}] must satisfy "
                "-r/2 <= in_lo <= in_hi <= r/2"
            )
        if self.min_fee < 0:
            raise ConfigError(f"min_fee must be >= 0, got {self.min_fee}")

    def first_out_of_domain(self, values: Sequence[int]) -> int | None:
        """Index of the first element outside ``[in_lo, in_hi]`` (None if all are inside):
        the check ``requestJob`` makes (``InputOutOfDomain``)."""
        for i, v in enumerate(values):
            if not self.in_lo <= int(v) <= self.in_hi:
                return i
        return None

    def as_struct(self, verifier: str, onnx_hash: bytes, settings_hash: bytes) -> dict[str, Any]:
        """The ``registerModel`` argument (Ape takes a dict for a struct)."""
        return {
            "verifier": verifier,
            "onnxHash": onnx_hash,
            "settingsHash": settings_hash,
            "inputLen": self.input_len,
            "outputLen": self.output_len,
            "inputScale": self.input_scale,
            "outputScale": self.output_scale,
            "tau": self.tau,
            "challengeWindow": self.challenge_window,
            "proofWindow": self.proof_window,
            "challengerBond": self.challenger_bond,
            "slashAmount": self.slash_amount,
            "bountyBps": self.bounty_bps,
            "inLo": self.in_lo,
            "inHi": self.in_hi,
            "minFee": self.min_fee,
        }


@dataclass(frozen=True, kw_only=True)
class RegisteredModel(ModelParams):
    """A model as ``ModelRegistry.getModel`` returns it: its parameters and its binding."""

    model_id: bytes
    onnx_hash: bytes = b""
    settings_hash: bytes = b""
    verifier: str = ""
    active: bool = True

    @classmethod
    def from_struct(cls, model_id: bytes, m: Any) -> RegisteredModel:
        """The ``getModel`` struct (a pre-v2 registry has no domain: the whole field)."""
        from spotcheck.encoding import from_hex  # numpy and eth_abi: keep this module cheap

        lo, hi = getattr(m, "inLo", None), getattr(m, "inHi", None)
        domain = {} if lo is None or hi is None else {"in_lo": int(lo), "in_hi": int(hi)}
        return cls(
            model_id=model_id,
            onnx_hash=from_hex(m.onnxHash),
            settings_hash=from_hex(m.settingsHash),
            verifier=str(m.verifier),
            active=bool(m.active),
            input_len=int(m.inputLen),
            output_len=int(m.outputLen),
            input_scale=int(m.inputScale),
            output_scale=int(m.outputScale),
            tau=int(m.tau),
            challenge_window=int(m.challengeWindow),
            proof_window=int(m.proofWindow),
            challenger_bond=int(m.challengerBond),
            slash_amount=int(m.slashAmount),
            bounty_bps=int(m.bountyBps),
            min_fee=int(getattr(m, "minFee", 0)),
            **domain,
        )


#: The deployment file's keys (camelCase, as the contracts name things). Hand-written, not a
#: pydantic model as the wire types are: `spotcheck --help` imports this module cold and must
#: not pay pydantic's import (tests/unit/test_cli.py).
_JSON_KEYS = {
    "chain_id": "chainId",
    "token": "token",
    "stake_manager": "stakeManager",
    "model_registry": "modelRegistry",
    "job_manager": "jobManager",
    "dispute_manager": "disputeManager",
    "example_consumer": "exampleConsumer",
    "deploy_block": "deployBlock",
    "check_pool": "checkPool",
}
#: Keys an older deployment file may lack (read as None): ExampleConsumer is optional, and
#: files written before issue 15 have no CheckPool.
_OPTIONAL_KEYS = ("exampleConsumer", "checkPool")


@dataclass(frozen=True)
class Deployment:
    """Where the Spotcheck contracts live on one chain."""

    chain_id: int
    token: str
    stake_manager: str
    model_registry: str
    job_manager: str
    dispute_manager: str
    example_consumer: str | None
    deploy_block: int
    #: None in a deployment made before issue 15 (no paid checks there).
    check_pool: str | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        data = {_JSON_KEYS[k]: v for k, v in asdict(self).items() if k in _JSON_KEYS}
        data["params"] = self.params
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        try:
            data = json.loads(text)
            kwargs = {
                py: data.get(js) if js in _OPTIONAL_KEYS else data[js]
                for py, js in _JSON_KEYS.items()
            }
            return cls(**kwargs, params=dict(data.get("params", {})))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"invalid deployment file: {err}") from err

    def save(self, path: Path | None = None) -> Path:
        target = path or default_deployment_path(self.chain_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_json())
        return target

    @classmethod
    def load(cls, chain_id: int | None = None, path: Path | None = None) -> Deployment:
        if path is None:
            if chain_id is None:
                raise ConfigError("give a chain id or a deployment file path")
            path = default_deployment_path(chain_id)
        if not path.is_file():
            raise ConfigError(f"no deployment file at {path} (run `spotcheck contracts deploy`)")
        return cls.from_json(path.read_text())


def default_deployment_path(chain_id: int, root: Path = PROJECT_ROOT) -> Path:
    """``.spotcheck/deployments/<chain_id>.json`` under the project root."""
    return root / ".spotcheck" / "deployments" / f"{chain_id}.json"


def compiled_instance(contract_name: str, address: str) -> ContractInstance:
    """The contract at ``address`` with the project's compiled type. The compiled type is the
    truth: Ape would merge it with the type it cached on disk for this address (a local chain
    reuses addresses), and an event changed since an older build then appears twice under one
    name (a ``ContractEventWrapper`` without ``.abi``: every service crashed at start)."""
    from ape import chain, project

    try:
        container = getattr(project, contract_name)
    except AttributeError as err:
        raise ChainError(f"contract type {contract_name} not compiled") from err
    return chain.contracts.instance_at(
        address,
        contract_type=container.contract_type,
        fetch_from_explorer=False,
        detect_proxy=False,
        replace=True,
    )


class SpotcheckContracts:
    """Typed access to the deployed contracts as Ape contract instances."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self._cache: dict[str, ContractInstance] = {}

    def _at(self, contract_name: str, address: str) -> ContractInstance:
        if address not in self._cache:
            self._cache[address] = compiled_instance(contract_name, address)
        return self._cache[address]

    @classmethod
    def connect(cls, chain_id: int | None = None, path: Path | None = None) -> SpotcheckContracts:
        """Load the deployment of the connected chain (or ``chain_id`` / ``path``)."""
        if chain_id is None and path is None:
            from ape import chain

            chain_id = chain.chain_id
        return cls(Deployment.load(chain_id=chain_id, path=path))

    @property
    def token(self) -> ContractInstance:
        # Only the ERC-20 ABI is used; TestToken's ABI is a superset of it.
        return self._at("TestToken", self.deployment.token)

    @property
    def stake_manager(self) -> ContractInstance:
        return self._at("StakeManager", self.deployment.stake_manager)

    @property
    def model_registry(self) -> ContractInstance:
        return self._at("ModelRegistry", self.deployment.model_registry)

    @property
    def job_manager(self) -> ContractInstance:
        return self._at("JobManager", self.deployment.job_manager)

    @property
    def dispute_manager(self) -> ContractInstance:
        return self._at("DisputeManager", self.deployment.dispute_manager)

    @property
    def example_consumer(self) -> ContractInstance:
        if self.deployment.example_consumer is None:
            raise ChainError("this deployment has no ExampleConsumer")
        return self._at("ExampleConsumer", self.deployment.example_consumer)

    @property
    def check_pool(self) -> ContractInstance:
        if self.deployment.check_pool is None:
            raise ChainError(
                "this deployment has no CheckPool (deployed before paid checks): redeploy with "
                "`spotcheck contracts deploy`"
            )
        return self._at("CheckPool", self.deployment.check_pool)

    def verifier(self, address: str) -> ContractInstance:
        """A model's verifier (ABI of ``IHalo2Verifier``)."""
        return self._at("IHalo2Verifier", address)
