"""Node configuration: one pydantic-settings model, loaded from a TOML file plus environment.

Environment variables override the file: ``SPOTCHECK_NODE_BATCH_SIZE=64``,
``SPOTCHECK_NODE_HTTP__PORT=9000``, ``SPOTCHECK_NODE_FAULT_INJECTION__CORRUPT_RATE=0.5``.
Everything the operator may change lives here, under the name the docs use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from prover.access import KeyLimit
from spotcheck.errors import ConfigError
from spotcheck.settings import ServiceSettings, TokenAmount, load_service_settings


class ModelConfig(BaseModel):
    """One served model. Scales and tau must equal the ModelRegistry's (checked at start)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    onnx_path: Path
    #: Calibration inputs the registrar used (JSON ``{"input_data": [[...]]}``); None = default.
    calibration_path: Path | None = None
    #: The SRS file and its sha256; None = a locally generated dev SRS (TESTS AND DEMOS ONLY).
    srs_path: Path | None = None
    srs_sha256: str | None = None
    input_scale: int = Field(ge=0, le=64)
    output_scale: int = Field(ge=0, le=64)
    tau: int = Field(ge=0)
    #: This node's price for an on-chain job of this model, in tokens (``price = "2.5"``; base
    #: units with the ``wei`` suffix: ``"2500000000000000000wei"``); held in base units. The
    #: node posts it (``setPrice``) at start when the chain's differs, and ignores requests
    #: below it. None: accept what the chain accepts (the model's ``minFee``) and post nothing.
    price: TokenAmount | None = None
    #: Before committing an output of a ``tau > 0`` model: ``"always"`` compares onnxruntime's
    #: output with the circuit's witness (ezkl gen_witness) and commits the witness output when
    #: they differ by more than tau (an adversarial input against an empirical tau can otherwise
    #: get an undefendable output committed); ``"off"`` skips the check (only for a model whose
    #: tau is a sound bound: docs/node-operators.md, "Witness check").
    witness_check: Literal["always", "off"] = "always"


class HttpConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=9545, ge=0, le=65535)
    #: Requests with a larger body are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    #: Most inputs in one batched ``/infer`` request (``inputs``, ``inputs_q`` or ``.npy``).
    max_request_jobs: int = Field(default=1024, gt=0)
    #: Public base URL written into each batch commitment (``<public_url>/v1/batches/<id>``).
    #: Required (http(s), not a loopback or unspecified host) except on a local dev chain
    #: (chain id 31337), where it defaults to ``http://<host>:<port>``.
    public_url: str | None = None
    #: A batch listing streams from a read snapshot held at most this long (a reader slower
    #: than that is cut off: an open snapshot keeps SQLite from recycling its log).
    listing_max_s: float = Field(default=120.0, gt=0)


class AccessConfig(BaseModel):
    """Optional API keys for ``/infer`` (``prover.access``): none configured = open."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: API key -> its limit: ``[access.keys] "k1" = { rate = 5, burst = 10 }``.
    keys: dict[str, KeyLimit] = Field(default_factory=dict)
    #: A TOML file with a ``[keys]`` table of the same shape (kept out of the main config).
    keys_file: Path | None = None


class FaultInjection(BaseModel):
    """DISHONEST MODE, for tests and the demo only: commit corrupted outputs on purpose."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Share of outputs the node corrupts by more than tau before committing (0 = honest).
    corrupt_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0
    #: WITHHOLDING MODE: never answer a leaf request (the node is slashed for each one).
    withhold_reveals: bool = False


class TransactionsConfig(BaseModel):
    """How the node's transactions are priced and replaced when stuck (EIP-1559)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A transaction with no receipt after this long is replaced (same nonce, higher fees).
    stuck_after_s: float = Field(default=30.0, gt=0)
    #: Each replacement multiplies maxFeePerGas and maxPriorityFeePerGas by this (>= 1.125).
    fee_bump: float = Field(default=1.25, ge=1.125)
    #: Never bid a maxFeePerGas above this (wei); None: no cap.
    max_fee_cap_wei: int | None = Field(default=None, gt=0)
    #: One attempt waits this long for a receipt, then the loop moves on and resumes it later.
    timeout_s: float = Field(default=120.0, gt=0)
    #: Look this often for own transactions the chain node dropped (a reorg) and send them again.
    drop_check_s: float = Field(default=1.0, gt=0)

    def policy(self) -> Any:
        from prover.transactions import FeePolicy

        return FeePolicy(
            stuck_after_s=self.stuck_after_s,
            bump=self.fee_bump,
            max_fee_cap_wei=self.max_fee_cap_wei,
            timeout_s=self.timeout_s,
            drop_check_s=self.drop_check_s,
        )


class NodeSettings(ServiceSettings):
    """Everything ``spotcheck node run`` needs besides the account and network."""

    model_config = SettingsConfigDict(
        env_prefix="SPOTCHECK_NODE_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    #: modelId (0x-prefixed bytes32) -> how to serve it.
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    db_path: Path = Path("node.sqlite")
    #: Deployment file written by ``spotcheck contracts deploy``.
    deployment_path: Path | None = None
    #: Cut a batch every ``batch_size`` jobs of one model or ``batch_interval_s`` seconds.
    batch_size: int = Field(default=256, ge=1, le=2**32 - 1)
    batch_interval_s: float = Field(default=30.0, gt=0)
    http: HttpConfig = HttpConfig()
    access: AccessConfig = AccessConfig()
    #: Hours after a batch is final before its served vectors are deleted (its listing then
    #: answers 410). A final batch can no longer be disputed: the default week is a margin for
    #: readers and deep reorgs, not a protocol need.
    retention_hours: float = Field(default=168.0, gt=0)
    #: False: keep every batch's vectors forever (the database grows with every job).
    prune: bool = True
    #: At most this many vectors are deleted per step of the node's loop.
    prune_chunk: int = Field(default=2000, ge=1)
    transactions: TransactionsConfig = TransactionsConfig()
    fault_injection: FaultInjection = FaultInjection()
    #: Share of served outputs checked against the circuit witness (ezkl gen_witness).
    self_audit_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    #: Blocks a log must be buried under before the node acts on it (requests and disputes):
    #: a reorg shallower than this cannot change what the node answered.
    confirmations: int = Field(default=2, ge=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    #: Defend when at most this share of the proof window has elapsed; alert loudly past it.
    defend_alert_fraction: float = Field(default=0.5, gt=0.0, le=1.0)

    def model(self, model_id: bytes | str) -> ModelConfig:
        key = model_id if isinstance(model_id, str) else "0x" + model_id.hex()
        try:
            return self.models[key.lower()]
        except KeyError as err:
            raise ConfigError(f"model {key} is not served by this node") from err


def load_settings(path: Path | None = None, **overrides: Any) -> NodeSettings:
    """Read ``path`` (TOML) if given, apply ``overrides``, then the environment."""
    return load_service_settings(
        NodeSettings, "node", path, ("db_path", "deployment_path"), overrides
    )
