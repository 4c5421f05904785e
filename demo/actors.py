"""The demo's actors, assembled in-process from the services' own building blocks.

Each long-running actor is a thread with a stop event and an error counter: the kit's run loop
in a thread (``demo.threads``); the HTTP API of a node is the kit's uvicorn thread
(``spotcheck.kit.serve``). Every actor is stopped by :meth:`Cast.stop` (the demo calls it from
a ``finally``, so Ctrl-C and failures stop them too). All threads share the one Ape connection
to the demo's anvil; every actor sends from its own account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.chain_setup import DemoChain
from demo.config import DemoConfig
from demo.paid_checks import Canary, LazyClaimant, PaidCheckTerms
from demo.prepare import PreparedModel
from demo.progress import Progress
from demo.threads import LoopThread
from spotcheck.chain import TOKEN
from spotcheck.kit.serve import HttpThread, free_port

log = logging.getLogger(__name__)


#: The paths a node serves batch listings on (what challengers fetch: ``GET /v1/batches/...``).
LISTING_PREFIX = "/v1/batches"


class WithholdListings:
    """ASGI wrapper: a node that serves users (inference, its own jobs with their proofs) but
    answers every batch listing request with 503, so challengers never see its batches.

    A real node can tell challengers apart just as easily (they fetch whole listings, users
    ask for one job); what it cannot escape is the on-chain leaf request that follows.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and str(scope.get("path", "")).startswith(LISTING_PREFIX):
            body = b'{"detail": "temporarily unavailable"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


@dataclass
class NodeActor:
    """One inference node: the chain loop (NodeService.step) and its HTTP API."""

    label: str
    account: Any
    node: Any  # prover.runner.Node
    http: HttpThread
    loop: LoopThread
    fault_rate: float
    #: Withholds listings from challengers and never reveals a requested leaf.
    withholding: bool = False

    @property
    def role(self) -> str:
        if self.withholding:
            return "withholding"
        return "dishonest" if self.fault_rate else "honest"

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def store(self) -> Any:
        return self.node.store

    @property
    def metrics(self) -> Any:
        return self.node.metrics

    def start(self) -> None:
        self.http.start(wait_s=15.0)
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        self.http.stop()
        self.node.engine.close()

    def counter(self, name: str, **labels: str) -> int:
        value = self.metrics.registry.get_sample_value(f"{name}_total", labels)
        return int(value or 0)

    def batching(self) -> bool:
        """True while served jobs wait for a batch or a batch waits to be committed."""
        return _batching(self.store.counts())

    def busy(self) -> bool:
        """True while the node has work in flight (uncommitted jobs or batches)."""
        counts = self.store.counts()
        jobs = counts["onchain_jobs"]
        return bool(jobs.get("requested", 0) or jobs.get("committing", 0)) or _batching(counts)


def _batching(counts: dict[str, dict[str, int]]) -> bool:
    batches = counts["batches"]
    return bool(
        counts["served_jobs"]["pending"] or batches.get("sealed", 0) or batches.get("committing", 0)
    )


def _model_entry(model_id: bytes, artifacts: Any, **extra: Any) -> dict[str, Any]:
    """A service's ``models`` setting for the demo's one model."""
    return {
        "0x" + model_id.hex(): {
            "onnx_path": str(artifacts.onnx_path),
            "calibration_path": str(artifacts.calibration_path),
            **extra,
        }
    }


def build_node(
    *,
    label: str,
    account: Any,
    contracts: Any,
    model_id: bytes,
    artifacts: Any,
    tau: int,
    workdir: Path,
    fault_rate: float,
    fault_seed: int,
    batch_size: int,
    batch_interval_s: float,
    self_audit_rate: float,
    poll_interval_s: float,
    withholding: bool = False,
) -> NodeActor:
    """A node assembled by ``prover.runner.build_node`` (what ``spotcheck node run`` runs).

    ``withholding``: its HTTP API withholds batch listings (:class:`WithholdListings`) and it
    never reveals a requested leaf (the demo's labelled fault, like the dishonest node's
    fault injection).
    """
    from prover.config import load_settings
    from prover.runner import build_node as assemble

    folder = workdir / label.lower().replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = load_settings(
        None,
        models=_model_entry(
            model_id,
            artifacts,
            input_scale=artifacts.input_scale,
            output_scale=artifacts.output_scale,
            tau=tau,
        ),
        db_path=str(folder / "node.sqlite"),
        batch_size=batch_size,
        batch_interval_s=batch_interval_s,
        http={"host": "127.0.0.1", "port": port},
        fault_injection=_faults(fault_rate, fault_seed, withholding),
        self_audit_rate=self_audit_rate,
        poll_interval_s=poll_interval_s,
        # anvil does not reorganise; a public chain wants the default depth
        confirmations=0,
    )
    node = assemble(settings, account, contracts)
    app = WithholdListings(node.app) if withholding else node.app
    http = HttpThread(app, "127.0.0.1", port, f"{label}-http")
    loop = LoopThread(f"{label}-loop", node.service.step, poll_interval_s)
    return NodeActor(label, account, node, http, loop, fault_rate, withholding)


def _faults(rate: float, seed: int, withholding: bool) -> dict[str, Any]:
    # WITHHOLDING MODE (``withhold_reveals``): leaf requests are recorded and never answered
    return {"corrupt_rate": rate, "seed": seed, "withhold_reveals": withholding}


@dataclass
class ChallengerActor:
    """The challenger: its state machine ticking in a thread."""

    account: Any
    challenger: Any  # challenger.service.Challenger
    db_path: Path
    loop: LoopThread

    @property
    def address(self) -> str:
        return str(self.account.address)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()


def build_challenger(
    *,
    account: Any,
    contracts: Any,
    model_id: bytes,
    artifacts: Any,
    sampling_rate: float,
    workdir: Path,
    max_bond_at_risk: int,
    poll_interval_s: float,
    leaf_request_margin_s: int,
) -> ChallengerActor:
    """A challenger assembled by ``challenger.runner`` (what ``spotcheck challenger run`` runs).

    It gets the model's files like any validator and checks them against the registry's
    hashes before judging (``challenger.runner.ModelCatalog``).
    """
    from challenger.config import load_settings
    from challenger.runner import build_challenger as assemble

    settings = load_settings(
        None,
        state_dir=str(workdir / "challenger"),
        models=_model_entry(model_id, artifacts),
        default_rate=sampling_rate,
        # anvil does not reorganise; a public chain wants the default depth
        confirmations=0,
        # the settings take tokens (as the TOML file); the cap is given here in base units
        max_bond_at_risk=f"{max_bond_at_risk}wei",
        poll_interval_s=poll_interval_s,
        # windows are seconds long here: ask for withheld leaves this long before they close
        leaf_request_margin_s=leaf_request_margin_s,
        batch_timeout_s=5.0,
        # paid checks: windows are seconds long, so claims go out as soon as they are planned
        claim_max_wait_s=0,
        claim_margin_s=leaf_request_margin_s,
    )
    ch = assemble(settings, account, contracts)
    loop = LoopThread("challenger-loop", ch.tick, poll_interval_s)
    return ChallengerActor(account, ch, settings.db_path, loop)


class Heartbeat:
    """Mines an empty block every ``interval`` seconds, so sampling seeds and time advance."""

    def __init__(self, interval: float = 1.0) -> None:
        from ape import chain

        def mine() -> None:
            chain.mine(1)

        self.loop = LoopThread("heartbeat", mine, interval)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()


def challenger_key_path(workdir: Path) -> Path:
    """Where :func:`build_challenger`'s service keeps its VRF key."""
    from challenger.config import load_settings

    return load_settings(None, state_dir=str(workdir / "challenger")).key_path


Actor = NodeActor | ChallengerActor | Heartbeat | Canary | LazyClaimant


@dataclass
class Cast:
    """The running actors: the nodes, the challenger and the heartbeat."""

    honest: NodeActor
    cheater: NodeActor
    challenger: ChallengerActor
    heartbeat: Heartbeat
    withholder: NodeActor | None = None
    canary: Canary | None = None
    lazy: LazyClaimant | None = None
    running: list[Actor] = field(default_factory=list)
    #: Failed rounds per service loop, noted when the actors stop.
    service_errors: dict[str, int] = field(default_factory=dict)

    @property
    def nodes(self) -> list[NodeActor]:
        return [self.honest, self.cheater] + ([self.withholder] if self.withholder else [])

    def node_at(self, address: str) -> NodeActor | None:
        return next((n for n in self.nodes if n.address == address), None)

    def start(self) -> None:
        actors: list[Actor] = [*self.nodes, self.challenger, self.heartbeat]
        actors += [a for a in (self.canary, self.lazy) if a is not None]
        for actor in actors:
            actor.start()
            self.running.append(actor)

    def stop(self) -> None:
        """Stop every started actor, last started first (idempotent)."""
        for actor in self.running:
            if actor.loop.errors:
                self.service_errors[actor.loop.name] = len(actor.loop.errors)
        for actor in reversed(self.running):
            try:
                actor.stop()
            except Exception as err:  # keep stopping the others
                log.error("stopping %s failed: %s", actor, err)
        self.running.clear()


def start_actors(
    cfg: DemoConfig,
    model: PreparedModel,
    chain: DemoChain,
    progress: Progress,
    terms: PaidCheckTerms | None = None,
) -> Cast:
    """Build and start the cast; on a failed start, what did start is stopped again."""
    with progress.stage("start nodes, challenger and heartbeat"):
        common = {
            "contracts": chain.contracts,
            "model_id": chain.model_id,
            "artifacts": model.artifacts,
            "tau": model.tau,
            "workdir": cfg.run_dir,
            "batch_size": cfg.batch_size,
            "batch_interval_s": cfg.batch_interval_s,
            "self_audit_rate": 0.05,
            "poll_interval_s": 0.5,
        }
        who = chain.accounts
        cast = Cast(
            honest=build_node(
                label="honest node", account=who.honest, fault_rate=0.0, fault_seed=1, **common
            ),
            cheater=build_node(
                label="DISHONEST node",
                account=who.cheater,
                fault_rate=cfg.fault_rate,
                fault_seed=cfg.seed,
                **common,
            ),
            challenger=build_challenger(
                account=who.challenger,
                contracts=chain.contracts,
                model_id=chain.model_id,
                artifacts=model.artifacts,
                sampling_rate=cfg.sampling,
                workdir=cfg.run_dir,
                max_bond_at_risk=400 * TOKEN,
                poll_interval_s=0.5,
                leaf_request_margin_s=cfg.leaf_request_margin_s,
            ),
            heartbeat=Heartbeat(1.0),
            withholder=(
                build_node(
                    label="WITHHOLDING node",
                    account=who.withholder,
                    fault_rate=0.0,
                    fault_seed=2,
                    withholding=True,
                    **common,
                )
                if cfg.withholding
                else None
            ),
            canary=None if terms is None else Canary(cfg, model, chain),
            lazy=None if terms is None else LazyClaimant(chain, terms.sampling_bps),
        )
        try:
            cast.start()
        except BaseException:
            cast.stop()
            raise
        for n in cast.nodes:
            fault = "OFF" if not n.fault_rate else f"{n.fault_rate:.0%} (DISHONEST MODE)"
            if n.withholding:
                fault = "withholds listings and leaf reveals (WITHHOLDING MODE)"
            progress.say(
                f"    {n.label:16} {n.address}  HTTP {n.http.url}  fault injection {fault}"
            )
        progress.say(f"    challenger      {cast.challenger.address}  p = {cfg.sampling:.0%}")
        if cast.canary is not None and cast.lazy is not None:
            progress.say(f"    canary node     {cast.canary.address}  (CANARY: wrong on schedule)")
            progress.say(f"    lazy claimant   {cast.lazy.address}  claims without re-running")
    return cast
