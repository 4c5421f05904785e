"""Assemble a running node from its settings and account: store, models, service, HTTP server.

``spotcheck node run`` calls :func:`run_node`; tests and the demo can call :func:`build_node`
and drive the pieces themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from prover.access import AccessControl, load_keys
from prover.api import ApiContext, create_app
from prover.batching import BatchCutter, JobServer
from prover.chain_io import NodeChain
from prover.config import NodeSettings
from prover.defence import EzklProofBackend, SelfAuditor
from prover.inference import FaultInjector, InferenceEngine, ModelSpec
from prover.metrics import NodeMetrics
from prover.receipts import ApeSigner, ReceiptDomain, ecdsa_backend
from prover.retention import Retention
from prover.service import NodeService
from prover.startup import check_models, check_port, check_public_url, check_stake
from prover.store import BatchState, Store
from prover.transactions import TxSender
from prover.work_gate import WorkGate
from spotcheck.chain import RegisteredModel, SpotcheckContracts
from spotcheck.errors import ChainError, RevertError, StartupError
from spotcheck.kit.serve import HttpThread, free_port

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Node:
    settings: NodeSettings
    store: Store
    engine: InferenceEngine
    service: NodeService
    metrics: NodeMetrics
    app: Any

    def close(self) -> None:
        self.service.worker.stop(timeout=5)
        close_backend = getattr(self.service.backend, "close", None)
        if close_backend is not None:
            close_backend()  # the prover process
        self.engine.close()
        self.store.close()


def model_specs(settings: NodeSettings) -> list[ModelSpec]:
    return [
        ModelSpec(
            bytes.fromhex(mid[2:]),
            m.onnx_path,
            m.input_scale,
            m.output_scale,
            m.tau,
            witness_check=m.witness_check,
        )
        for mid, m in settings.models.items()
    ]


def listen_url(settings: NodeSettings) -> str:
    return f"http://{settings.http.host}:{settings.http.port}"


def base_url(settings: NodeSettings, chain_id: int | None = None) -> str:
    """The URL committed with each batch: checked (:func:`prover.startup.check_public_url`)
    when ``chain_id`` is given; the configured one, or the listening address, otherwise."""
    if chain_id is None:
        return settings.http.public_url or listen_url(settings)
    return check_public_url(settings.http.public_url, listen_url(settings), chain_id)


def patiently(what: str, call: Callable[[], T], stop: threading.Event | None = None) -> T:
    """``call()``, waiting out an unreachable RPC (ChainError) with backoff and a log line per
    attempt: a node started while its RPC is down waits, it does not exit and crash-loop.
    Any other error (a StartupError: a model that does not match the registry; a revert, which
    no retry fixes) ends at once."""
    delay = 1.0
    while True:
        try:
            return call()
        except RevertError:
            raise
        except ChainError as err:
            log.error("%s: chain unreachable (retrying in %.0f s): %s", what, delay, err)
        if stop is not None and stop.wait(delay):
            raise ChainError(f"{what}: stopped while waiting for the chain")
        if stop is None:
            time.sleep(delay)
        delay = min(delay * 2, 30.0)


def registered(
    chain: NodeChain, specs: list[ModelSpec], stop: threading.Event | None = None
) -> list[RegisteredModel]:
    """The start-up model checks (:func:`prover.startup.check_models`: registered, same ONNX
    bytes, same scales and tau), waiting out an RPC outage; the registered models in order."""

    def check() -> list[RegisteredModel]:
        found = check_models(chain, {s.model_id: s for s in specs})
        return [found[s.model_id] for s in specs]

    return patiently("checking the models against the registry", check, stop)


def with_domain(spec: ModelSpec, model: Any) -> ModelSpec:
    """``spec`` with the model's registered input domain (what the node accepts)."""
    return replace(spec, in_lo=int(model.in_lo), in_hi=int(model.in_hi))


def post_prices(chain: NodeChain, settings: NodeSettings) -> dict[bytes, int]:
    """Post each configured price that differs from the chain's (``setPrice``); returns the
    prices the node commits at (model id -> lowest fee), None-priced models at their minFee."""
    prices: dict[bytes, int] = {}
    for mid, cfg in settings.models.items():
        model_id = bytes.fromhex(mid[2:])
        if cfg.price is None:
            prices[model_id] = chain.price_of(model_id)
            continue
        prices[model_id] = cfg.price
        if chain.posted_price(model_id) != cfg.price:
            tx = chain.set_price(model_id, cfg.price)
            log.warning(
                "price posted", extra={"model_id": mid, "price": cfg.price, "tx": tx.tx_hash}
            )
    return prices


def build_node(settings: NodeSettings, account: Any, contracts: SpotcheckContracts) -> Node:
    url = base_url(settings, contracts.deployment.chain_id)  # before anything is opened
    access = AccessControl(load_keys(settings.access.keys, settings.access.keys_file))
    store = Store(settings.db_path)
    sender = TxSender(account, store, settings.transactions.policy())
    chain = NodeChain(contracts, account, sender=sender)
    specs = model_specs(settings)
    models = registered(chain, specs)
    specs = [with_domain(s, m) for s, m in zip(specs, models, strict=True)]
    slash_amounts = {m.model_id: m.slash_amount for m in models}
    patiently("checking the stake", lambda: check_stake(chain, {m.model_id: m for m in models}))
    prices = patiently("posting prices", lambda: post_prices(chain, settings))
    metrics = NodeMetrics()
    faults = FaultInjector(settings.fault_injection.corrupt_rate, settings.fault_injection.seed)
    dishonest = faults.rate > 0 or settings.fault_injection.withhold_reveals
    metrics.dishonest_mode.set(1 if dishonest else 0)
    engine = InferenceEngine.load(specs, faults)
    backend = EzklProofBackend({s.model_id: settings.model(s.model_id) for s in specs})
    auditor = SelfAuditor(backend, settings.self_audit_rate, {s.model_id: s.tau for s in specs})
    auditor.on_result = lambda result: metrics.self_audits.labels(result).inc()

    def on_served(result: Any, job_id: int) -> None:
        auditor.maybe_sample(
            f"served job {job_id}", result.model_id, result.input_q, result.honest_output_q
        )

    if ecdsa_backend() != "CoinCurveECCBackend":
        log.warning("coincurve is not installed: receipts are signed in pure Python (~4 ms each)")
    domain = ReceiptDomain.of(contracts.job_manager)
    server = JobServer(
        engine,
        store,
        ApeSigner(account, domain),
        on_served=on_served,
        exact=backend.witness_output,
    )
    gate = WorkGate(chain.stake, slash_amounts, lambda: uncommitted_jobs(store), node=chain.address)
    # Closed from the start for a node winding down (unbonding, below the minimum): the HTTP
    # API must not take a job before the chain loop's first step reads the stake.
    patiently("reading the stake", gate.refresh)
    service = NodeService(
        chain,
        store,
        engine,
        BatchCutter(store, settings.batch_size, settings.batch_interval_s),
        backend=backend,
        auditor=auditor,
        metrics=metrics,
        batch_uri=lambda _local_id: url,
        confirmations=settings.confirmations,
        start_block=contracts.deployment.deploy_block,
        defend_alert_fraction=settings.defend_alert_fraction,
        ready_max_age_s=settings.ready_max_age_s,
        prices=prices,
        withhold_reveals=settings.fault_injection.withhold_reveals,
        work_gate=gate,
        prune=Retention(store, settings.retention_hours * 3600, settings.prune_chunk).step
        if settings.prune
        else None,
    )
    app = create_app(
        ApiContext(
            server,
            store,
            metrics,
            auditor,
            settings.http.max_body_bytes,
            lambda: service.readiness.reason() or gate.refuse_all(),
            resolve_batch=service.resolve_batch,
            refuse_work=gate.admit,
            work_stored=gate.stored,
            release_work=gate.release,
            listing_max_s=settings.http.listing_max_s,
            access=access,
        )
    )
    return Node(settings, store, engine, service, metrics, app)


def uncommitted_jobs(store: Store) -> dict[bytes, int]:
    """Per model: jobs served and not yet committed (unbatched, or in a batch not yet sent)."""
    counts = {model_id: n for model_id, (n, _) in store.pending_counts().items()}
    for batch in store.batches(BatchState.SEALED, BatchState.COMMITTING):
        counts[batch.model_id] = counts.get(batch.model_id, 0) + batch.count
    return counts


def start_http(app: Any, host: str, port: int, wait_s: float = 15.0) -> HttpThread:
    """Serve ``app`` and wait until the socket listens (StartupError, one line, if not)."""
    http = HttpThread(app, host, port, name="node-http")
    try:
        return http.start(wait_s=wait_s)
    except RuntimeError as err:
        http.stop()
        why = "the HTTP server did not start"
        raise StartupError(f"cannot listen on {host}:{port}: {why}") from err


def run_node(settings: NodeSettings, account: Any, contracts: SpotcheckContracts) -> None:
    """Serve HTTP in a thread and run the chain loop in this one until SIGINT or SIGTERM
    (systemd, docker, kill, Ctrl-C: the step in progress finishes, then everything closes).
    Start-up checks first (:mod:`prover.startup`): a failed one raises StartupError."""
    if settings.http.port == 0:  # "any free port": choose it here, so it can be printed
        port = free_port(settings.http.host)
        settings = settings.model_copy(
            update={"http": settings.http.model_copy(update={"port": port})}
        )
    check_port(settings.http.host, settings.http.port)
    node = build_node(settings, account, contracts)
    try:
        http = start_http(node.app, settings.http.host, settings.http.port)
    except StartupError:
        node.close()
        raise
    log.warning(
        "node serving %d model(s) on http://%s:%d (public URL %s)",
        len(settings.models),
        settings.http.host,
        settings.http.port,
        base_url(settings, contracts.deployment.chain_id),
        extra={"node": account.address},
    )
    try:
        node.service.run(settings.poll_interval_s)
    except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the step
        log.warning("interrupted: stopping (pending jobs are batched on the next start)")
    finally:
        node.service.stop()
        http.stop()
        node.close()
