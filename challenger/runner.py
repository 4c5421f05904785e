"""Assemble a challenger from its settings and run it until stopped.

The loop (the kit's, ``spotcheck.kit.loop``, as the node's) ticks every ``poll_interval_s``. A
tick that fails on the chain (RPC down, node restarting) is logged and retried with exponential
backoff up to 60 s; nothing is lost, because every step restarts from the persisted state and
the follower's checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from challenger.api import Health, create_app
from challenger.batches import BatchClient, Fetcher, FetchLimits
from challenger.chain_io import ApeChain, ChainPort
from challenger.claims import Claimer, ClaimOptions
from challenger.config import ChallengerSettings
from challenger.defence import (
    DefenceOptions,
    DefenceStore,
    Defender,
    DefendMode,
    ModelFiles,
    ProcessProofWorker,
)
from challenger.metrics import Metrics
from challenger.reveals import Revealer, RevealOptions, RevealStore
from challenger.sampling import SamplingPolicy, load_or_create_secret
from challenger.service import JOB_EVENTS, Challenger, Options, StepReport, dispute_events
from challenger.store import ClaimStore, LeafRequestState, Store
from challenger.verdict import Reexecutor
from spotcheck.chain import RegisteredModel
from spotcheck.errors import ChainError, ConfigError, SpotcheckError
from spotcheck.follower import LogFollower, open_db
from spotcheck.kit.loop import run_loop as kit_run_loop
from spotcheck.kit.serve import HttpThread

log = logging.getLogger(__name__)


def status_of(store: Store) -> dict[str, Any]:
    """The local picture: job states, counters, open disputes, credits withdrawn."""
    open_disputes = [
        {
            "dispute_id": "0x" + j.job_key.hex(),
            "kind": j.kind.name.lower(),
            "ref": j.ref,
            "job_id": j.job_id,
            "node": j.node,
            "state": j.state.value,
            "proof_deadline": j.proof_deadline,
        }
        for j in store.jobs(*_open_states())
    ]
    pending = (
        LeafRequestState.PLANNED,
        LeafRequestState.SENT,
        LeafRequestState.OPEN,
        LeafRequestState.FOREIGN,
    )
    open_requests = [
        {
            "request_id": "0x" + r.request_id.hex(),
            "batch_id": r.batch_id,
            "index": r.index,
            "node": r.node,
            "state": r.state.value,
            "reveal_deadline": r.reveal_deadline,
        }
        for r in store.leaf_requests(*pending)
    ]
    return {
        "states": store.state_counts(),
        # Every missed job with why (reason, when first seen against its deadline): a benchmark
        # or an operator tells "seen after window closed" from a miss it could have avoided.
        "missed_by_reason": store.missed_by_reason(),
        "missed_jobs": store.missed_jobs(),
        "counters": store.counters(),
        "open_disputes": open_disputes,
        "leaf_requests": store.leaf_request_summary(),
        "open_leaf_requests": open_requests,
        "withdrawn": store.withdrawn_total(),
        "claims": ClaimStore(store).summary(),
        "defences": DefenceStore(store).summary(),
        "leaf_reveals": RevealStore(store).summary(),
    }


def _open_states() -> tuple[Any, ...]:
    from challenger.store import JobState

    return (JobState.MISMATCHED, JobState.DISPUTE_SENT, JobState.DISPUTE_OPEN)


class ModelCatalog:
    """modelId -> re-executor, built on first use from the configured files, hash-checked."""

    def __init__(self, settings: ChallengerSettings) -> None:
        self.settings = settings
        self._cache: dict[bytes, Reexecutor | None] = {}

    def __call__(self, model: RegisteredModel) -> Reexecutor | None:
        if model.model_id not in self._cache:
            self._cache[model.model_id] = self._build(model)
        return self._cache[model.model_id]

    def _build(self, model: RegisteredModel) -> Reexecutor | None:
        from challenger.reexec import ModelReexecutor
        from verifier.artifacts import build_circuit_from_files

        cfg = self.settings.models.get("0x" + model.model_id.hex())
        if cfg is None:
            return None
        # The circuit only: re-execution and witnesses need no SRS and no keys.
        artifacts = build_circuit_from_files(cfg.onnx_path, cfg.calibration_path)
        if (artifacts.onnx_hash, artifacts.settings_hash) != (model.onnx_hash, model.settings_hash):
            raise ConfigError(
                f"model 0x{model.model_id.hex()}: local ONNX/settings hashes differ from the "
                "registry's; refusing to judge it with another circuit"
            )
        return ModelReexecutor(artifacts)


def build_challenger(
    settings: ChallengerSettings, account: Any, contracts: Any, chain: ChainPort | None = None
) -> Challenger:
    store = Store(open_db(settings.db_path))
    follower = LogFollower(
        store.conn,
        "challenger",
        [
            (contracts.job_manager, JOB_EVENTS),
            (contracts.dispute_manager, dispute_events(contracts.dispute_manager)),
        ],
        confirmations=settings.confirmations,
        start_block=int(contracts.deployment.deploy_block),
    )
    policy = SamplingPolicy(
        secret=load_or_create_secret(settings.key_path),
        default_rate=0.0,  # a model without files cannot be checked: never sampled
        rates=settings.rates(),
        seed_delay=settings.seed_delay,
    )
    options = Options(
        dry_run=settings.dry_run,
        max_bond_at_risk=settings.max_bond_at_risk,
        screen=settings.screen,
        auto_withdraw=settings.auto_withdraw,
        leaf_request_margin_s=settings.leaf_request_margin_s,
    )
    port = chain or ApeChain.from_contracts(contracts, account)
    claimer = None
    if settings.claims and settings.seed_delay != 1:
        # The CheckPool seeds with blockhash(commitBlock + 1): other seeds cannot be claimed.
        log.warning("paid-check claims off: seed_delay %d is not the pool's 1", settings.seed_delay)
    elif (
        settings.claims
        and not settings.dry_run
        and isinstance(port, ApeChain)
        and port.pool is not None
    ):
        claimer = Claimer(
            store,
            port,
            ClaimOptions(
                batch_size=settings.claim_batch_size,
                max_wait_s=settings.claim_max_wait_s,
                margin_s=settings.claim_margin_s,
            ),
        )
    return Challenger(
        store=store,
        chain=port,
        claimer=claimer,
        defender=build_defender(settings, store, port),
        revealer=build_revealer(settings, store, port),
        policy=policy,
        reexecutor_for=ModelCatalog(settings),
        options=options,
        follower=follower,
        fetcher=Fetcher(
            BatchClient(
                limits=FetchLimits(
                    deadline_s=settings.batch_timeout_s, max_bytes=settings.max_listing_bytes
                )
            ),
            workers=settings.fetch_workers,
        ),
    )


def model_files(settings: ChallengerSettings) -> dict[bytes, ModelFiles]:
    """modelId -> the files its proving keys are built from."""
    return {
        bytes.fromhex(k[2:]): ModelFiles(m.onnx_path, m.calibration_path, m.srs_path, m.srs_sha256)
        for k, m in settings.models.items()
    }


def build_defender(settings: ChallengerSettings, store: Store, port: Any) -> Defender | None:
    """The defender of disputed jobs we found correct (None: ``defend = never`` or dry run)."""
    mode = DefendMode(settings.defend)
    if mode is DefendMode.NEVER or settings.dry_run or not hasattr(port, "defend"):
        return None
    if mode is DefendMode.CLAIMED and (not settings.claims or getattr(port, "pool", None) is None):
        return None  # it claims nothing, so it has no collateral to defend (no keys built)
    return Defender(
        store,
        port,
        ProcessProofWorker(model_files(settings)),
        DefenceOptions(mode=mode, reserve_s=settings.defend_reserve_s),
    )


def build_revealer(settings: ChallengerSettings, store: Store, port: Any) -> Revealer | None:
    """The revealer of requested leaves we found correct (None when no defender would be
    built: ``defend = never``, dry run, or nothing claimed with ``defend = claimed``)."""
    mode = DefendMode(settings.defend)
    if mode is DefendMode.NEVER or settings.dry_run or not hasattr(port, "reveal_leaf"):
        return None
    if mode is DefendMode.CLAIMED and (not settings.claims or getattr(port, "pool", None) is None):
        return None  # it claims nothing, so it has no collateral to keep
    return Revealer(
        store, port, RevealOptions(mode=mode, reserve_s=settings.defend_reveal_reserve_s)
    )


def serve_http(settings: ChallengerSettings, app: Any) -> HttpThread:
    """Serve ``app`` and wait until it listens (``StartupError``, one line, if it cannot)."""
    from challenger.startup import serve_checked

    return serve_checked(app, settings.http.host, settings.http.port)


def run_loop(
    challenger: Challenger,
    settings: ChallengerSettings,
    *,
    metrics: Metrics,
    health: Health,
    stop: threading.Event,
    max_ticks: int | None = None,
    on_tick: Callable[[Any], None] | None = None,
) -> None:
    """Tick until ``stop`` is set, SIGINT or SIGTERM (or ``max_ticks``): the kit's run loop,
    backing off on chain failures (``spotcheck.kit.loop``)."""

    def tick() -> tuple[StepReport, int, float]:
        start = time.perf_counter()
        report = challenger.tick()
        lag = challenger.follower.lag() if challenger.follower else 0
        return report, lag, time.perf_counter() - start

    def ticked(result: tuple[StepReport, int, float]) -> None:
        report, lag, seconds = result
        metrics.ticks.inc()
        metrics.tick_seconds.observe(seconds)
        metrics.blocks_behind.set(lag)
        metrics.update_from_store(challenger.store)
        try:
            metrics.bond_at_risk.set(challenger.chain.bond_at_risk())
            metrics.credits.set(challenger.chain.credits())
        except ChainError as err:
            log.warning("metrics read failed: %s", err)
        health.lag = lag
        if on_tick is not None:
            on_tick(report)

    kit_run_loop(
        tick,
        stop=stop,
        interval_s=settings.poll_interval_s,
        name="tick",
        readiness=health,
        on_step=ticked,
        on_error=lambda err: metrics.rpc_failures.inc(),
        max_steps=max_ticks,
        retry_on=(SpotcheckError, OSError),  # anything else is a bug: the process ends
    )


def read_status(db_path: Path) -> dict[str, Any]:
    """:func:`status_of` on a fresh connection (safe from any thread, WAL readers don't block)."""
    conn = open_db(db_path)
    try:
        return status_of(Store(conn))
    finally:
        conn.close()


def make_health(settings: ChallengerSettings) -> Health:
    """The loop's readiness for ``/ready``, with the settings' lag slack and maximum age."""
    return Health(settings.confirmations, settings.ready_slack, settings.ready_max_age_s)


def make_app(settings: ChallengerSettings, metrics: Metrics, health: Health) -> Any:
    return create_app(health, metrics, lambda: read_status(settings.db_path))
