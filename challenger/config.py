"""Challenger configuration: one pydantic-settings model, from a TOML file plus environment.

Environment variables override the file: ``SPOTCHECK_CHALLENGER_DEFAULT_RATE=0.1``,
``SPOTCHECK_CHALLENGER_DRY_RUN=true``, ``SPOTCHECK_CHALLENGER_HTTP__PORT=9200``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from spotcheck.settings import ServiceSettings, TokenAmount, load_service_settings


class ModelConfig(BaseModel):
    """A model this challenger can check: the same files the registrar built the circuit from.

    At start the ONNX and settings hashes are compared with the ModelRegistry's; a model
    whose files do not match is refused (re-running the wrong circuit would lose bonds).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    onnx_path: Path
    calibration_path: Path | None = None
    #: Sampling rate for this model (default: ``default_rate``), in whole basis points
    #: (0.05 = 500 bps): the unit the CheckPool checks a VRF proof against.
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    #: The SRS the registrar built the keys with, and its sha256 (None: the dev SRS, TESTS AND
    #: DEMOS ONLY): the proving keys for defending disputed jobs (``defend``) come from it.
    srs_path: Path | None = None
    srs_sha256: str | None = None


class HttpConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=9546, ge=0, le=65535)
    enabled: bool = True


class ChallengerSettings(ServiceSettings):
    """Everything ``spotcheck challenger run`` needs besides the account and network."""

    model_config = SettingsConfigDict(
        env_prefix="SPOTCHECK_CHALLENGER_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    #: Folder for the SQLite state (``challenger.sqlite``) and the VRF key (``vrf.key``).
    state_dir: Path = Path(".spotcheck/challenger")
    deployment_path: Path | None = None
    #: modelId (0x-prefixed bytes32) -> model files. Models not listed are never sampled.
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    #: Sampling rate p of listed models without their own ``rate``.
    default_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    #: Blocks a log must be buried under before it is handled (reorg safety).
    confirmations: int = Field(default=2, ge=0)
    #: Blocks between a commitment and the block whose hash seeds its sampling.
    seed_delay: int = Field(default=1, ge=1)
    #: Report what would be disputed; send no transaction.
    dry_run: bool = False
    #: Largest total bond locked in our open disputes: tokens in TOML and the environment
    #: (``max_bond_at_risk = 400`` or ``"2.5"``; ``"1500wei"`` for base units), held as base
    #: units (as the node's ``price``). Default 100 tokens.
    max_bond_at_risk: TokenAmount = Field(default=100, ge=0)  # tokens: validated as the file
    #: Use the onnxruntime screen before the witness (see challenger/verdict.py). Off by
    #: default: a screen match can be outside tau of the circuit (audit A4-9); jobs matched
    #: by the screen alone are never claimed as paid checks.
    screen: bool = False
    auto_withdraw: bool = True
    poll_interval_s: float = Field(default=2.0, gt=0)
    #: /ready tolerates this many blocks of lag beyond the confirmation depth.
    ready_slack: int = Field(default=3, ge=0)
    #: Total seconds one batch listing may take (connect to last byte; not per read).
    batch_timeout_s: float = Field(default=10.0, gt=0)
    #: Largest listing accepted (the per-batch cap from count and lengths is usually smaller).
    max_listing_bytes: int = Field(default=256 * 2**20, gt=0)
    #: Listing downloads running at once (threads; at most two per node).
    fetch_workers: int = Field(default=8, ge=1)
    #: Seconds before a batch's challenge deadline when the challenger stops trying its
    #: listing and requests its sampled leaves on chain.
    leaf_request_margin_s: int = Field(default=30, ge=2)
    #: Paid checks (issue 15): claim the on-chain jobs sampled and found correct when the
    #: deployment has a CheckPool (register first: `spotcheck challenger register`).
    claims: bool = True
    #: Claims per claimBatch transaction (1..32).
    claim_batch_size: int = Field(default=16, ge=1, le=32)
    #: Longest a claim waits for a fuller batch (chain seconds).
    claim_max_wait_s: int = Field(default=60, ge=0)
    #: Claims go out at the latest this many chain seconds before the job's deadline.
    claim_margin_s: int = Field(default=30, ge=0)
    #: Defend someone else's dispute on a job this challenger found correct (audit A4-1: a
    #: node's second address disputes its own correct job and the node stays silent, so every
    #: claim on it would be forfeited): ``"claimed"`` the jobs it claimed (or was about to
    #: claim) as paid checks, ``"checked"`` every job it re-ran and found correct (protects
    #: offline honest nodes too), ``"never"``. Needs the models' proving keys (built at start).
    defend: Literal["claimed", "checked", "never"] = "claimed"
    #: Chain seconds before a dispute's proof deadline at which the challenger starts its own
    #: proof if the node has not defended yet (the node gets first go until then). Must exceed
    #: the model's proof time plus a few blocks (docs/validators.md, "Defending your claims").
    defend_reserve_s: int = Field(default=300, ge=10)
    #: Chain seconds before a leaf request's reveal deadline at which the challenger reveals a
    #: leaf it would defend (``defend``) if the node has not revealed it yet (audit A6-4: an
    #: unrevealed leaf forfeits every claim on it). A reveal needs no proof: a few blocks.
    defend_reveal_reserve_s: int = Field(default=60, ge=5)
    http: HttpConfig = HttpConfig()

    @property
    def db_path(self) -> Path:
        return self.state_dir / "challenger.sqlite"

    @property
    def key_path(self) -> Path:
        """The VRF secret key (32 bytes, mode 0600; ``challenger.sampling``)."""
        return self.state_dir / "vrf.key"

    def rates(self) -> dict[bytes, float]:
        """Per-model rates; listed models without a rate get ``default_rate`` (each a whole
        number of basis points, or ``ConfigError``)."""
        from challenger.sampling import rate_bps

        for rate in (self.default_rate, *(m.rate for m in self.models.values())):
            if rate is not None:
                rate_bps(rate)
        return {
            bytes.fromhex(k[2:]): (m.rate if m.rate is not None else self.default_rate)
            for k, m in self.models.items()
        }


def load_settings(path: Path | None = None, **overrides: Any) -> ChallengerSettings:
    """Read ``path`` (TOML) if given, apply ``overrides``, then the environment."""
    return load_service_settings(
        ChallengerSettings, "challenger", path, ("state_dir", "deployment_path"), overrides
    )
