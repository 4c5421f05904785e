"""``spotcheck demo``: the whole protocol on a local anvil chain, end to end.

Stages: compile the contracts, build (or load from the cache) the model's circuit and keys,
measure ``tau``, start anvil through Ape's foundry provider, deploy, register the model with
its real ezkl verifier, fund and stake, then run in this process (one thread each): an honest
node, a DISHONEST node (fault injection corrupts a share of its outputs beyond ``tau``), a
challenger sampling ``p`` of all commitments, a block heartbeat, and a dApp that sends on-chain
jobs through ``ExampleConsumer`` and batched jobs over the nodes' HTTP API. Optionally a
griefing challenger disputes one CORRECT output, so the honest node must answer with a real
zk proof verified on-chain (and the griefer loses its bond).

The demo waits until every job is resolved and the cheater has been slashed, lets the dApp
read the final outputs (and only those), and prints a report built from the chain and the
services' own state (``spotcheck.demo_report``). Exit status 1 if the honest node was ever
slashed or the cheater was never caught before the timeout.

Windows are seconds long; when nothing is left to check until the next deadline, the demo
moves anvil's clock forward to it (``--no-time-travel`` waits in real time instead). Every
thread is stopped and anvil is shut down on exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click

from spotcheck.chain import TOKEN
from spotcheck.demo_report import (
    ChallengerReport,
    DappReport,
    DemoReport,
    GasReport,
    Holdings,
    NodeReport,
    tokens,
)
from spotcheck.economics import DEFAULTS, Verdict, check_sampling, min_sampling_probability
from spotcheck.toolchain import PROJECT_ROOT

log = logging.getLogger(__name__)

NETWORK = "ethereum:local:foundry"
DEFAULT_WORKDIR = PROJECT_ROOT / "demo-output"
#: Marks a run folder as the demo's own (only such a folder is replaced by the next run).
RUN_MARKER = ".spotcheck-demo-run"


@dataclass(frozen=True)
class DemoConfig:
    """Everything a demo run depends on (``--quick`` is a smaller, faster-failing variant)."""

    workdir: Path = DEFAULT_WORKDIR
    onchain_jobs: int = 8  # per node, requested through ExampleConsumer
    batch_jobs: int = 48  # per node, over HTTP, committed in Merkle batches
    batch_size: int = 16
    batch_interval_s: float = 3.0
    fault_rate: float = 0.25  # share of the dishonest node's outputs corrupted beyond tau
    sampling: float = 0.5  # the challenger's p (the bound is printed next to it)
    challenge_window: int = 20
    proof_window: int = 60
    timeout_s: float = 240.0  # from the first job to the end
    time_travel: bool = True
    grief: bool = True
    seed: int = 7
    pace_s: float = 0.05
    tolerance_samples: int = 100

    def quick(self) -> DemoConfig:
        return replace(
            self, onchain_jobs=4, batch_jobs=16, batch_size=8, fault_rate=0.5, timeout_s=180.0
        )


# -- progress --------------------------------------------------------------------------------


class Progress:
    """Prints stage timings (``[  12.3 s] stage ... done in 2.1 s``) and keeps them."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.stages: list[tuple[str, float]] = []
        #: Where progress goes (the console, also while fd 1 is redirected to the log).
        self.out: IO[str] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, message: str) -> None:
        click.echo(f"[{self.elapsed():7.1f} s] {message}", file=self.out)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.say(f"{name} ...")
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.stages.append((name, seconds))
        self.say(f"{name}: done in {seconds:.1f} s")


# -- the run ---------------------------------------------------------------------------------


@dataclass
class OnchainRequest:
    job_id: int
    node: str  # label
    input_q: list[int]
    request_tx: str


@dataclass
class HttpJob:
    node: str  # label
    input_q: list[int]
    output_q: list[int]
    receipt: dict[str, Any]


@dataclass
class Workload:
    """The dApp's submissions (filled by the workload thread)."""

    onchain: list[OnchainRequest] = field(default_factory=list)
    http: list[HttpJob] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    first_job_at: float | None = None


class Demo:
    """One demo run; :meth:`run` returns the report (and never leaves a thread running)."""

    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.progress = Progress()
        self.say = self.progress.say
        self.actors: list[Any] = []
        self.workload = Workload()
        self.time_travel_s = 0
        self.first_dispute_at: float | None = None
        self.first_slash_at: float | None = None
        self.griefed_job: int | None = None
        self.missing: list[str] = []
        self._undefendable: dict[bytes, bool] = {}
        self.service_errors: dict[str, int] = {}
        self._scan_from = 0
        self._last_status = 0.0
        self.watch_errors = 0
        self.timed_out = False
        self._announced = False
        self._last_log_block = 0
        self._stop = threading.Event()

    # -- preparation (no chain) -------------------------------------------------------------

    def prepare(self) -> None:
        from spotcheck.toolchain import ensure_anvil_on_path

        ensure_anvil_on_path()
        with self.progress.stage("compile contracts (Ape, cached)"):
            from ape import project

            for name in ("TestToken", "StakeManager", "JobManager", "ExampleConsumer"):
                getattr(project, name)
        with self.progress.stage("model circuit, keys and verifier (cached by content hash)"):
            self.artifacts = self._build_artifacts()
        with self.progress.stage("measure tolerance tau"):
            self.tau = self._measure_tau()

    def _build_artifacts(self) -> Any:
        from spotcheck.demo_model import write_tiny_mlp
        from verifier.artifacts import StageEvent, build_artifacts
        from verifier.srs import SrsSource

        onnx_path = write_tiny_mlp(self.cfg.workdir / "model")

        def show(event: StageEvent) -> None:
            what = "cached" if event.cached else f"{event.seconds:.1f} s"
            self.say(f"    {event.stage:10} {what}  {event.detail}")

        self.say(
            "    model: tiny MLP 4 -> 8 -> 2 (Gemm, ReLU, Gemm); SRS: locally generated DEV "
            "SRS (insecure, demo only)"
        )
        return build_artifacts(onnx_path, srs=SrsSource.dev(), progress=show)

    def _measure_tau(self) -> int:
        from verifier.tolerance import measure

        key = self.artifacts.circuit_key[:16]
        cache = self.cfg.workdir / "model" / f"tau-{key}-{self.cfg.tolerance_samples}.json"
        if cache.is_file():
            data = json.loads(cache.read_text())
            self.say(
                f"    tau {data['tau']} units (measured earlier: max deviation "
                f"{data['max_deviation']} over {data['samples']} inputs)"
            )
            return int(data["tau"])
        report = measure(self.artifacts, random_samples=self.cfg.tolerance_samples)
        for line in report.describe().splitlines():
            self.say("    " + line)
        cache.write_text(
            json.dumps(
                {
                    "tau": report.tau,
                    "max_deviation": report.max_deviation,
                    "samples": report.samples,
                }
            )
        )
        return int(report.tau)

    # -- chain set-up -----------------------------------------------------------------------

    def setup_chain(self) -> None:
        from ape import accounts

        from spotcheck.chain import DeployParams, SpotcheckContracts
        from spotcheck.deploy import deploy_all
        from verifier import registry

        acct = accounts.test_accounts
        self.deployer, self.honest, self.cheater = acct[0], acct[1], acct[2]
        self.challenger_acct, self.dapp, self.griefer = acct[3], acct[4], acct[5]
        with self.progress.stage("deploy contracts"):
            params = DeployParams(min_stake=1000 * TOKEN, unbonding_delay=3600, commit_timeout=120)
            self.deployment = deploy_all(self.deployer, params)
            self.contracts = SpotcheckContracts(self.deployment)
            self.say(
                f"    JobManager {self.deployment.job_manager}, DisputeManager "
                f"{self.deployment.dispute_manager}"
            )
        with self.progress.stage("register model with its ezkl verifier"):
            mp = registry.model_params(
                self.artifacts,
                self.tau,
                challenge_window=self.cfg.challenge_window,
                proof_window=self.cfg.proof_window,
            )
            self.model_params = mp
            reg = registry.register_model(self.artifacts, mp, self.contracts, self.deployer)
            self.model_id = reg.model_id
            self.verifier_address = reg.verifier
            self.say(f"    model 0x{self.model_id.hex()}  verifier {reg.verifier}  tau {self.tau}")
        with self.progress.stage("fund and stake"):
            self._fund()

    def _fund(self) -> None:
        c = self.contracts
        token, sm, dm = c.token, c.stake_manager, c.dispute_manager
        d = self.deployer
        self.node_stake = 4000 * TOKEN
        for node in (self.honest, self.cheater):
            token.mint(node, 5000 * TOKEN, sender=d)
            token.approve(sm, self.node_stake, sender=node)
            sm.stake(self.node_stake, sender=node)
        token.mint(self.challenger_acct, 1000 * TOKEN, sender=d)
        token.mint(self.griefer, 100 * TOKEN, sender=d)
        token.approve(dm, 2**256 - 1, sender=self.griefer)
        self.fee = int(DEFAULTS.reward * TOKEN)
        total_fees = self.fee * 2 * self.cfg.onchain_jobs
        token.mint(self.dapp, total_fees, sender=d)
        token.transfer(c.example_consumer, total_fees, sender=self.dapp)
        self.say(
            f"    nodes stake {tokens(self.node_stake)} each; challenger holds 1,000; "
            f"ExampleConsumer funded with {tokens(total_fees)} for fees "
            f"({tokens(self.fee)} per job)"
        )

    def holdings(self, address: str) -> Holdings:
        c = self.contracts
        return Holdings(
            wallet=int(c.token.balanceOf(address)),
            stake=int(c.stake_manager.stakeOf(address).amount),
            credits=int(c.job_manager.credits(address)) + int(c.dispute_manager.credits(address)),
        )

    # -- actors -----------------------------------------------------------------------------

    def start_actors(self) -> None:
        from spotcheck.demo_actors import (
            ChallengerActor,
            Heartbeat,
            NodeActor,
            build_challenger,
            build_node,
        )

        with self.progress.stage("start nodes, challenger and heartbeat"):
            common = {
                "contracts": self.contracts,
                "model_id": self.model_id,
                "artifacts": self.artifacts,
                "tau": self.tau,
                "workdir": self.cfg.workdir / "run",
                "batch_size": self.cfg.batch_size,
                "batch_interval_s": self.cfg.batch_interval_s,
                "self_audit_rate": 0.05,
                "poll_interval_s": 0.5,
            }
            self.honest_node = build_node(
                label="honest node", account=self.honest, fault_rate=0.0, fault_seed=1, **common
            )
            self.cheater_node = build_node(
                label="DISHONEST node",
                account=self.cheater,
                fault_rate=self.cfg.fault_rate,
                fault_seed=self.cfg.seed,
                **common,
            )
            self.challenger = build_challenger(
                account=self.challenger_acct,
                contracts=self.contracts,
                model_id=self.model_id,
                artifacts=self.artifacts,
                sampling_rate=self.cfg.sampling,
                workdir=self.cfg.workdir / "run",
                max_bond_at_risk=200 * TOKEN,
                poll_interval_s=0.5,
            )
            self.heartbeat = Heartbeat(1.0)
            self.nodes = [self.honest_node, self.cheater_node]
            actors: list[NodeActor | ChallengerActor | Heartbeat] = [
                *self.nodes,
                self.challenger,
                self.heartbeat,
            ]
            for actor in actors:
                actor.start()
                self.actors.append(actor)
            for n in self.nodes:
                self.say(
                    f"    {n.label:15} {n.address}  HTTP {n.http.url}  fault injection "
                    f"{'OFF' if not n.fault_rate else f'{n.fault_rate:.0%} (DISHONEST MODE)'}"
                )
            self.say(f"    challenger      {self.challenger.address}  p = {self.cfg.sampling:.0%}")

    def stop_actors(self) -> None:
        self._stop.set()
        for actor in self.actors:
            loop = getattr(actor, "loop", None)
            if loop is not None and loop.errors:
                self.service_errors[loop.name] = len(loop.errors)
        for actor in reversed(self.actors):
            try:
                actor.stop()
            except Exception as err:  # keep stopping the others
                log.error("stopping %s failed: %s", actor, err)
        self.actors.clear()

    # -- the dApp's workload ----------------------------------------------------------------

    def _workload(self) -> None:
        import httpx
        import numpy as np

        from spotcheck.encoding import quantize

        rng = np.random.default_rng(self.cfg.seed)
        consumer = self.contracts.example_consumer
        jm = self.contracts.job_manager
        nodes = self.nodes
        rounds = max(self.cfg.batch_jobs, self.cfg.onchain_jobs)
        every = max(1, rounds // max(1, self.cfg.onchain_jobs))
        sent_onchain = {n.label: 0 for n in nodes}
        client = httpx.Client(timeout=30.0)
        self.workload.first_job_at = time.perf_counter()
        try:
            for i in range(rounds):
                for node in nodes:
                    if self._stop.is_set():
                        return
                    q = quantize(
                        rng.uniform(-1, 1, self.artifacts.input_len), self.artifacts.input_scale
                    )
                    if i % every == 0 and sent_onchain[node.label] < self.cfg.onchain_jobs:
                        receipt = consumer.request(
                            self.model_id, q, node.address, self.fee, sender=self.dapp
                        )
                        logs = list(receipt.decode_logs(jm.JobRequested))
                        job_id = int(logs[0].event_arguments["jobId"])
                        self.workload.onchain.append(
                            OnchainRequest(job_id, node.label, q, str(receipt.txn_hash))
                        )
                        sent_onchain[node.label] += 1
                    if i < self.cfg.batch_jobs:
                        q = quantize(
                            rng.uniform(-1, 1, self.artifacts.input_len), self.artifacts.input_scale
                        )
                        url = f"{node.http.url}/v1/models/0x{self.model_id.hex()}/infer"
                        r = client.post(url, json={"input_q": q})
                        r.raise_for_status()
                        body = r.json()
                        self.workload.http.append(
                            HttpJob(node.label, q, list(body["output_q"]), body["receipt"])
                        )
                time.sleep(self.cfg.pace_s)
        except Exception as err:
            self.workload.errors.append(f"{type(err).__name__}: {err}")
            log.error("workload failed: %s", err)
        finally:
            client.close()
            self.workload.done.set()

    # -- watching ---------------------------------------------------------------------------

    def _events(self, contract: Any, name: str, **topics: Any) -> list[Any]:
        from ape import chain

        event = getattr(contract, name)
        head = int(chain.blocks.height)
        start = self.deployment.deploy_block
        if topics:
            return list(event.range(start, head + 1, search_topics=topics))
        return list(event.range(start, head + 1))

    def _challenger_db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.challenger.db_path}?mode=ro", uri=True, timeout=5)
        return conn

    def _challenger_busy(self) -> bool:
        """True while the challenger has commitments it has not decided on."""
        conn = self._challenger_db()
        try:
            busy = conn.execute(
                "SELECT COUNT(*) FROM ch_jobs WHERE state IN "
                "('seen', 'sampled', 'mismatched', 'dispute_sent')"
            ).fetchone()[0]
            batches = conn.execute(
                "SELECT COUNT(*) FROM ch_batches WHERE state = 'seen'"
            ).fetchone()[0]
            return bool(busy or batches)
        finally:
            conn.close()

    def _node_busy(self, node: Any) -> bool:
        """True while a node has work in flight (uncommitted jobs or batches)."""
        counts = node.store.counts()
        jobs, batches = counts["onchain_jobs"], counts["batches"]
        if jobs.get("requested", 0) or jobs.get("committing", 0):
            return True
        return bool(
            counts["served_jobs"]["pending"]
            or batches.get("sealed", 0)
            or batches.get("committing", 0)
        )

    def _defence_pending(self) -> bool:
        """True while some node has an open dispute it may still win.

        Read from the chain (every open ``DisputeOpened``), not from the nodes' followers, so
        a dispute a node has not seen yet still counts. A dispute blocks time travel unless
        the committed output is outside ``tau`` of the circuit's own output for the job's
        input: then no valid proof exists (the contract's rule), and skipping the rest of the
        proof window takes nothing from the node.
        """
        from spotcheck.chain import DisputeStatus, JobKind
        from spotcheck.encoding import max_abs_diff
        from verifier.witness import witness_output

        dm = self.contracts.dispute_manager
        for ev in self._events(dm, "DisputeOpened"):
            did = bytes(ev.event_arguments["disputeId"])
            if int(dm.getDispute(did).status) != DisputeStatus.OPEN:
                continue
            if did not in self._undefendable:
                pair = self._disputed_job(ev, JobKind)
                if pair is None:
                    return True
                diff = max_abs_diff(pair[1], witness_output(self.artifacts, pair[0]))
                self._undefendable[did] = diff > self.tau
                if diff > self.tau:
                    node = str(ev.event_arguments["node"])
                    label = next((n.label for n in self.nodes if n.address == node), node)
                    self.say(
                        f"    {label}: disputed output is {diff} units from the circuit "
                        f"(tau {self.tau}): no valid proof exists"
                    )
            if not self._undefendable[did]:
                return True
        return False

    def _disputed_job(self, ev: Any, kinds: Any) -> tuple[list[int], list[int]] | None:
        """(input_q, committed output) of a disputed job: chain events, or the node's leaf."""
        args = ev.event_arguments
        job_id = int(args["jobId"])
        if int(args["kind"]) == kinds.ONCHAIN:
            jm = self.contracts.job_manager
            req = self._events(jm, "JobRequested", jobId=job_id)
            com = self._events(jm, "ResultCommitted", jobId=job_id)
            if not req or not com:
                return None
            return (
                [int(v) for v in req[0].event_arguments["input"]],
                [int(v) for v in com[0].event_arguments["output"]],
            )
        node = next((n for n in self.nodes if n.address == str(args["node"])), None)
        served = None if node is None else node.store.served_job(job_id)
        if served is None:
            return None
        return served.input_q.tolist(), served.output_q.tolist()

    def _last_event_block(self, head: int) -> int:
        """The newest block up to ``head`` with a JobManager or DisputeManager event."""
        from ape import chain

        if head >= self._scan_from:
            logs = chain.provider.web3.eth.get_logs(
                {
                    "address": [self.deployment.job_manager, self.deployment.dispute_manager],
                    "fromBlock": self._scan_from,
                    "toBlock": head,
                }
            )
            for entry in logs:
                self._last_log_block = max(self._last_log_block, int(entry["blockNumber"]))
            self._scan_from = head + 1
        return self._last_log_block

    def _checkpoint(self, db_path: Path, name: str) -> int:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT block FROM follower_checkpoint WHERE name = ?", (name,)
            ).fetchone()
            return -1 if row is None else int(row[0])
        finally:
            conn.close()

    def _next_deadline(self, now: int) -> int | None:
        """The earliest future challenge deadline (nodes' commitments) or proof deadline."""
        from prover.store import BatchState, JobState
        from spotcheck.chain import DisputeStatus

        deadlines: list[int] = []
        for node in self.nodes:
            for job in node.store.onchain_jobs(JobState.COMMITTED, JobState.DISPUTED):
                if job.challenge_deadline is not None:
                    deadlines.append(job.challenge_deadline)
            for batch in node.store.batches(BatchState.COMMITTED):
                if batch.challenge_deadline is not None:
                    deadlines.append(batch.challenge_deadline)
        dm = self.contracts.dispute_manager
        for ev in self._events(dm, "DisputeOpened"):
            if int(dm.getDispute(ev.event_arguments["disputeId"]).status) == DisputeStatus.OPEN:
                deadlines.append(int(ev.event_arguments["proofDeadline"]))
        future = [t for t in deadlines if t >= now]
        return min(future) if future else None

    def _maybe_time_travel(self) -> None:
        """Move anvil's clock to the next deadline when nothing can happen before it.

        Order matters: the services' states are read first, then the newest block with a
        protocol event, which the challenger must have handled (so a commitment mined in
        between is already in its state), then the open disputes are judged from the chain.
        """
        from ape import chain

        if not self.cfg.time_travel or not self.workload.done.is_set():
            return
        if any(self._node_busy(n) for n in self.nodes) or self._challenger_busy():
            return
        last = self._last_event_block(int(chain.blocks.height))
        if self._checkpoint(self.challenger.db_path, "challenger") < last:
            return
        if self._challenger_busy() or self._defence_pending():
            return
        now = int(chain.blocks.head.timestamp)
        target = self._next_deadline(now)
        if target is None or target + 1 - now <= 2:
            return
        jump = target + 1 - now
        try:
            chain.mine(1, timestamp=target + 1)
        except Exception as err:  # a block with a later timestamp was mined meanwhile
            log.info("time travel skipped this round: %s", err)
            return
        self.time_travel_s += jump
        self.say(f"    anvil time travel +{jump} s: nothing can change before the next deadline")

    def _maybe_grief(self) -> None:
        """A griefing challenger disputes one CORRECT output of the honest node."""
        from ape import chain

        from spotcheck.chain import JobStatus

        if not self.cfg.grief or self.griefed_job is not None:
            return
        jm, dm = self.contracts.job_manager, self.contracts.dispute_manager
        now = int(chain.blocks.head.timestamp)
        for req in self.workload.onchain:
            if req.node != self.honest_node.label:
                continue
            job = jm.getJob(req.job_id)
            if int(job.status) == JobStatus.COMMITTED and int(job.challengeDeadline) > now + 3:
                self.griefed_job = req.job_id
                try:
                    dm.openDispute(req.job_id, sender=self.griefer)
                except Exception as err:
                    self.say(f"    griefing dispute on job {req.job_id} failed: {err}")
                    return
                self.say(
                    f"    GRIEFER disputes the honest node's CORRECT job {req.job_id}: the "
                    "node must prove it with ezkl"
                )
                return

    def _watch_disputes(self) -> tuple[int, int]:
        """Note when the cheater is first disputed and slashed; (slashes of honest, cheater)."""
        sm, dm = self.contracts.stake_manager, self.contracts.dispute_manager
        t0 = self.workload.first_job_at or self.progress.start
        if self.first_dispute_at is None and self._events(
            dm, "DisputeOpened", node=self.cheater.address
        ):
            self.first_dispute_at = time.perf_counter() - t0
            self.say("    the challenger DISPUTED a commitment of the dishonest node")
        slashes = self._events(sm, "Slashed")
        by_node = {self.honest.address: 0, self.cheater.address: 0}
        for s in slashes:
            node = str(s.event_arguments["node"])
            by_node[node] = by_node.get(node, 0) + 1
        if self.first_slash_at is None and by_node[self.cheater.address]:
            self.first_slash_at = time.perf_counter() - t0
            self.say("    the dishonest node was SLASHED")
        return by_node[self.honest.address], by_node[self.cheater.address]

    def _all_resolved(self) -> bool:
        from prover.store import BatchState
        from spotcheck.chain import BatchStatus, DisputeStatus, JobStatus

        if not self.workload.done.is_set():
            return False
        jm, dm = self.contracts.job_manager, self.contracts.dispute_manager
        for req in self.workload.onchain:
            if int(jm.getJob(req.job_id).status) not in (JobStatus.FINAL, JobStatus.INVALID):
                return False
        for node in self.nodes:
            counts = node.store.counts()
            if counts["served_jobs"]["pending"]:
                return False
            uncommitted = (BatchState.SEALED, BatchState.COMMITTING)
            if any(counts["batches"].get(state, 0) for state in uncommitted):
                return False
        for ev in self._events(jm, "BatchCommitted"):
            if int(jm.getBatch(ev.event_arguments["batchId"]).status) != BatchStatus.FINAL:
                return False
        for ev in self._events(dm, "DisputeOpened"):
            status = int(dm.getDispute(ev.event_arguments["disputeId"]).status)
            if status == DisputeStatus.OPEN:
                return False
        return True

    def _poll(self) -> bool:
        """One round of watching; True when the run is complete."""
        self._maybe_grief()
        _, cheater_slashes = self._watch_disputes()
        if self.workload.done.is_set() and not self._announced:
            self._announced = True
            self.say(
                f"    dApp submitted {len(self.workload.onchain)} on-chain and "
                f"{len(self.workload.http)} batched jobs"
                + (f" (errors: {self.workload.errors})" if self.workload.errors else "")
            )
        if cheater_slashes and self._all_resolved():
            return True
        if time.perf_counter() - self._last_status > 10:
            self._last_status = time.perf_counter()
            self._status_line()
        self._maybe_time_travel()
        return False

    def wait(self) -> None:
        self.say("dApp: submitting jobs (on-chain through ExampleConsumer, batched over HTTP)")
        worker = threading.Thread(target=self._workload, name="dapp-workload", daemon=True)
        worker.start()
        deadline = time.perf_counter() + self.cfg.timeout_s
        try:
            while time.perf_counter() < deadline:
                try:
                    if self._poll():
                        return
                except Exception as err:  # an RPC hiccup or a lost race: try again next round
                    self.watch_errors += 1
                    log.warning("demo watch round failed (retrying): %s", err)
                time.sleep(0.5)
            self.timed_out = True
            self.say(f"TIMEOUT after {self.cfg.timeout_s:.0f} s")
        finally:
            self._stop.set()
            worker.join(30)

    def _status_line(self) -> None:
        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n) or "-"

        conn = self._challenger_db()
        try:
            rows = dict(conn.execute("SELECT state, COUNT(*) FROM ch_jobs GROUP BY state"))
        finally:
            conn.close()
        for n in self.nodes:
            c = n.store.counts()
            self.say(
                f"    {n.label:15} jobs: {fmt(c['onchain_jobs'])}; batches: {fmt(c['batches'])}; "
                f"disputes: {fmt(c['disputes'])}"
            )
        self.say(f"    {'challenger':15} commitments: {fmt(rows)}")

    # -- the dApp reads final outputs -------------------------------------------------------

    def dapp_reads(self) -> DappReport:
        with self.progress.stage("dApp reads final outputs"):
            return self._dapp_reads()

    def _dapp_reads(self) -> DappReport:
        """The dApp uses an output only once it is final and verified.

        On-chain jobs: ``verifier.client.SpotcheckClient.verified_output`` (final on chain and
        the emitted output hashes to the stored hash), then ``ExampleConsumer.deliverOutput``,
        which checks the same on-chain. Batched jobs: the node's signed receipt, its Merkle
        proof against the committed root and ``isBatchJobFinal``
        (``prover.receipts.check_receipt_onchain``).
        """
        import httpx

        from prover.receipts import Receipt, check_receipt_onchain
        from verifier.client import JobInvalidError, JobNotFinalError, SpotcheckClient

        report = DappReport(
            client="verifier.client.SpotcheckClient + ExampleConsumer; batch receipts: "
            "prover.receipts.check_receipt_onchain"
        )
        client = SpotcheckClient(self.contracts)
        consumer = self.contracts.example_consumer
        for req in self.workload.onchain:
            try:
                verified = client.verified_output(req.job_id)
            except (JobInvalidError, JobNotFinalError) as err:
                report.onchain_refused += 1
                self.say(f"    job {req.job_id} ({req.node}): refused by the client: {err}")
                if report.consumer_reverted_on_invalid is None:
                    # The consumer contract must refuse it too, whoever delivers it.
                    try:
                        raw = client.committed_output(req.job_id)
                        consumer.deliverOutput(req.job_id, raw, sender=self.dapp)
                        report.consumer_reverted_on_invalid = False
                    except JobNotFinalError:
                        pass
                    except Exception:  # the expected OutputNotVerified revert
                        report.consumer_reverted_on_invalid = True
                continue
            consumer.deliverOutput(req.job_id, list(verified.output_q), sender=self.dapp)
            report.onchain_used += 1
        jm = self.contracts.job_manager
        by_label = {n.label: n for n in self.nodes}
        with httpx.Client(timeout=10.0) as http:
            for job in self.workload.http:
                node = by_label[job.node]
                receipt = Receipt.from_json(job.receipt)
                where = http.get(f"{node.http.url}/v1/jobs/{receipt.job_id}").json()
                if where.get("batchId") is None:
                    report.batch_refused += 1
                    continue
                proof = [bytes.fromhex(p.removeprefix("0x")) for p in where.get("proof", [])]
                check = check_receipt_onchain(receipt, int(where["batchId"]), proof, jm)
                if check.ok and check.leaf_final:
                    report.batch_used += 1
                else:
                    report.batch_refused += 1
        self.say(
            f"    on-chain outputs used {report.onchain_used}, refused "
            f"{report.onchain_refused}; batched outputs used {report.batch_used}, "
            f"refused {report.batch_refused}"
        )
        return report

    # -- the report -------------------------------------------------------------------------

    def build_report(self, dapp: DappReport, before: dict[str, Holdings]) -> DemoReport:
        with self.progress.stage("gather the report from chain and services"):
            return self._build_report(dapp, before)

    def _gas(self, tx_hash: Any) -> int:
        from ape import chain

        return int(chain.provider.web3.eth.get_transaction_receipt(tx_hash)["gasUsed"])

    def _mean_gas(self, events: list[Any]) -> float:
        hashes = {str(e.transaction_hash) for e in events}
        if not hashes:
            return 0.0
        return sum(self._gas(h) for h in hashes) / len(hashes)

    def _chain_catch(
        self, committed: list[Any], batches: list[Any], opened: list[Any], slashed: list[Any]
    ) -> dict[str, int] | None:
        """On the chain clock: the first disputed commitment of the cheater, its dispute and
        the first slash (seconds after that commitment; time travel included)."""
        from ape import chain

        cheater = self.cheater.address
        disputes = [e for e in opened if str(e.event_arguments["node"]) == cheater]
        slashes = [e for e in slashed if str(e.event_arguments["node"]) == cheater]
        if not disputes or not slashes:
            return None
        first = min(disputes, key=lambda e: e.block_number)
        args = first.event_arguments
        if int(args["kind"]) == 0:
            commits = [
                e for e in committed if int(e.event_arguments["jobId"]) == int(args["jobId"])
            ]
        else:
            commits = [e for e in batches if int(e.event_arguments["batchId"]) == int(args["ref"])]
        if not commits:
            return None

        def ts(block: int) -> int:
            return int(chain.blocks[block].timestamp)

        t0 = ts(commits[0].block_number)
        return {
            "dispute_blocks": first.block_number - commits[0].block_number,
            "dispute_s": ts(first.block_number) - t0,
            "slash_s": ts(min(e.block_number for e in slashes)) - t0,
            "proof_window_s": self.model_params.proof_window,
        }

    def _build_report(self, dapp: DappReport, before: dict[str, Holdings]) -> DemoReport:
        from prover.store import BatchState
        from spotcheck.chain import JobStatus
        from spotcheck.encoding import max_abs_diff
        from verifier.witness import witness_output

        c = self.contracts
        jm, dm, sm = c.job_manager, c.dispute_manager, c.stake_manager
        requested = self._events(jm, "JobRequested")
        committed = self._events(jm, "ResultCommitted")
        finalized = self._events(jm, "JobFinalized")
        batches = self._events(jm, "BatchCommitted")
        batch_final = self._events(jm, "BatchFinalized")
        opened = self._events(dm, "DisputeOpened")
        defended = self._events(dm, "DisputeDefended")
        settled = self._events(dm, "DisputeSettled")
        slashed = self._events(sm, "Slashed")
        invalid_leaves = self._events(jm, "BatchJobInvalidated")

        # Which committed outputs are outside tau of the circuit (the contract's rule)?
        statuses = {r.job_id: int(jm.getJob(r.job_id).status) for r in self.workload.onchain}
        outputs = {int(e.event_arguments["jobId"]): e for e in committed}
        conn = self._challenger_db()
        try:
            sampled_rows = conn.execute(
                "SELECT node, state, COUNT(*) FROM ch_jobs GROUP BY node, state"
            ).fetchall()
        finally:
            conn.close()

        nodes: list[NodeReport] = []
        for actor in self.nodes:
            addr = actor.address
            nr = NodeReport(actor.label, addr, actor.fault_rate)
            mine = [r for r in self.workload.onchain if r.node == actor.label]
            nr.onchain_jobs = len(mine)
            nr.onchain_final = sum(statuses[r.job_id] == JobStatus.FINAL for r in mine)
            nr.onchain_invalid = sum(statuses[r.job_id] == JobStatus.INVALID for r in mine)
            for r in mine:
                ev = outputs.get(r.job_id)
                if ev is None:
                    continue
                out = [int(v) for v in ev.event_arguments["output"]]
                if max_abs_diff(out, witness_output(self.artifacts, r.input_q)) > self.tau:
                    nr.corrupted += 1
                    nr.corrupted_final += statuses[r.job_id] == JobStatus.FINAL
            own_batches = {
                int(b.event_arguments["batchId"]): int(b.event_arguments["count"])
                for b in batches
                if str(b.event_arguments["node"]) == addr
            }
            nr.batches = len(own_batches)
            nr.batch_leaves_invalid = sum(
                int(e.event_arguments["batchId"]) in own_batches for e in invalid_leaves
            )
            invalid_keys = {
                (int(e.event_arguments["batchId"]), int(e.event_arguments["jobId"]))
                for e in invalid_leaves
            }
            local_to_chain = {b.local_id: b.batch_id for b in actor.store.batches(*BatchState)}
            for job in self.workload.http:
                if job.node != actor.label:
                    continue
                nr.batch_jobs += 1
                if max_abs_diff(job.output_q, witness_output(self.artifacts, job.input_q)) > (
                    self.tau
                ):
                    nr.corrupted += 1
                    served = actor.store.served_job(int(job.receipt["jobId"]))
                    batch_id = (
                        local_to_chain.get(served.batch_local_id)
                        if served is not None and served.batch_local_id is not None
                        else None
                    )
                    if batch_id is not None and (batch_id, served.job_id) not in invalid_keys:
                        nr.corrupted_final += 1
            nr.sampled = sum(
                int(n)
                for node, state, n in sampled_rows
                if str(node).lower() == addr.lower() and state not in ("seen", "skipped")
            )
            nr.disputes = sum(str(e.event_arguments["node"]) == addr for e in opened)
            nr.defended = sum(str(e.event_arguments["node"]) == addr for e in defended)
            nr.proofs = actor.counter("spotcheck_node_proofs", result="ok")

            mine_slashed = [s for s in slashed if str(s.event_arguments["node"]) == addr]
            nr.slashes = len(mine_slashed)
            nr.slashed = sum(int(s.event_arguments["slashed"]) for s in mine_slashed)
            nr.fees_earned = sum(
                int(e.event_arguments["fee"])
                for e in finalized
                if str(e.event_arguments["node"]) == addr
            )
            nr.before = before[addr]
            nr.after = self.holdings(addr)
            nodes.append(nr)

        challengers: list[ChallengerReport] = []
        for label, acct, p in (
            ("challenger", self.challenger_acct, self.cfg.sampling),
            ("griefer", self.griefer, 1.0),
        ):
            addr = str(acct.address)
            cr = ChallengerReport(label, addr, p)
            mine_opened = [e for e in opened if str(e.event_arguments["challenger"]) == addr]
            if label == "griefer" and not mine_opened:
                continue
            ids = {bytes(e.event_arguments["disputeId"]) for e in mine_opened}
            cr.disputes = len(mine_opened)
            cr.won = sum(bytes(e.event_arguments["disputeId"]) in ids for e in settled)
            cr.lost = sum(bytes(e.event_arguments["disputeId"]) in ids for e in defended)
            cr.bounties = sum(
                int(e.event_arguments["bounty"])
                for e in settled
                if str(e.event_arguments["challenger"]) == addr
            )
            cr.bonds_lost = sum(
                int(e.event_arguments["bondToNode"])
                for e in defended
                if bytes(e.event_arguments["disputeId"]) in ids
            )
            if label == "challenger":
                counts: dict[str, int] = {}
                for _node, state, n in sampled_rows:
                    counts[str(state)] = counts.get(str(state), 0) + int(n)
                cr.seen = sum(counts.values())
                cr.sampled = sum(v for k, v in counts.items() if k not in ("seen", "skipped"))
                cr.matched = counts.get("matched", 0)
            cr.before = before[addr]
            cr.after = self.holdings(addr)
            challengers.append(cr)

        gas = GasReport()
        dapp_requests = [
            e
            for e in requested
            if str(e.event_arguments["requester"]) == str(c.example_consumer.address)
        ]
        gas.request_job = self._mean_gas(dapp_requests)
        gas.commit_result = self._mean_gas(committed)
        gas.finalize = self._mean_gas(finalized)
        gas.commit_batch = self._mean_gas(batches)
        gas.finalize_batch = self._mean_gas(batch_final)
        if batches:
            gas.jobs_per_batch = sum(int(b.event_arguments["count"]) for b in batches) / len(
                batches
            )
        onchain_opened = [e for e in opened if int(e.event_arguments["kind"]) == 0]
        leaf_opened = [e for e in opened if int(e.event_arguments["kind"]) == 1]
        gas.open_dispute = self._mean_gas(onchain_opened)
        gas.open_batch_dispute = self._mean_gas(leaf_opened)
        gas.defend = self._mean_gas(defended)
        gas.settle = self._mean_gas(settled)

        bound = min_sampling_probability(
            DEFAULTS.cost,
            DEFAULTS.reward,
            self.model_params.slash_amount / TOKEN,
            DEFAULTS.collusion,
        )
        report = DemoReport(
            model={
                "name": "tiny MLP 4-8-2",
                "model_id": "0x" + self.model_id.hex(),
                "verifier": self.verifier_address,
                "logrows": self.artifacts.logrows,
                "input_scale": self.artifacts.input_scale,
                "output_scale": self.artifacts.output_scale,
                "tau": self.tau,
                "slash": self.model_params.slash_amount,
                "bond": self.model_params.challenger_bond,
                "bounty_bps": self.model_params.bounty_bps,
                "challenge_window": self.model_params.challenge_window,
                "proof_window": self.model_params.proof_window,
                "dev_srs": self.artifacts.dev_srs,
            },
            economics={
                "sampling": self.cfg.sampling,
                "bound": bound,
                "cost": DEFAULTS.cost,
                "reward": DEFAULTS.reward,
                "slash": self.model_params.slash_amount / TOKEN,
                "collusion": DEFAULTS.collusion,
            },
            nodes=nodes,
            challengers=challengers,
            gas=gas,
            dapp=dapp,
            stages=list(self.progress.stages),
            time_to_dispute_s=self.first_dispute_at,
            time_to_slash_s=self.first_slash_at,
            time_travel_s=self.time_travel_s,
            chain_catch=self._chain_catch(committed, batches, opened, slashed),
            missing=list(self.missing),
        )
        honest, cheater = nodes
        if honest.slashes:
            report.failures.append(f"the honest node was slashed {honest.slashes} time(s)")
        if not cheater.slashes:
            report.failures.append("the dishonest node was never caught and slashed")
        if honest.corrupted:
            report.failures.append(
                f"the honest node committed {honest.corrupted} outputs outside tau"
            )
        if self.cfg.grief and self.griefed_job is not None and not honest.defended:
            report.failures.append("the honest node did not defend the griefing dispute")
        if not (challengers and challengers[0].bounties > 0):
            report.failures.append("the challenger earned no bounty")
        if self.timed_out:
            report.failures.append(
                f"timeout: not every job and dispute resolved within {self.cfg.timeout_s:.0f} s"
            )
        if self.workload.errors:
            report.failures.append(f"the dApp workload failed: {self.workload.errors[0]}")
        return report

    # -- everything -------------------------------------------------------------------------

    def run(self) -> DemoReport:
        run_dir = self.cfg.workdir / "run"
        marker = run_dir / RUN_MARKER
        if run_dir.exists():
            # Only ever delete a folder an earlier demo run created.
            if not marker.is_file():
                raise click.ClickException(
                    f"{run_dir} exists and was not made by the demo; choose another --workdir"
                )
            import shutil

            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        marker.write_text("spotcheck demo run folder: replaced by the next run\n")
        with (
            service_logs(self.log_path),
            console_to_log(self.log_path.with_name("stdout.log"), self.progress),
        ):
            return self._run()

    @property
    def log_path(self) -> Path:
        return self.cfg.workdir / "run" / "services.log"

    def _run(self) -> DemoReport:
        from ape import networks

        p = self.cfg.sampling
        check = check_sampling(
            DEFAULTS.cost, DEFAULTS.reward, DEFAULTS.slash, DEFAULTS.collusion, p
        )
        bound = check.minimum
        self.say(
            f"Spotcheck demo: challenger samples p = {p:.0%}; cheating stops paying above "
            f"p > C/((1-r)(R+S)) = {bound:.2%} (C={DEFAULTS.cost:g}, R={DEFAULTS.reward:g}, "
            f"S={DEFAULTS.slash:g}, r={DEFAULTS.collusion:g}; spotcheck.economics). The "
            f"protocol default is {DEFAULTS.sampling:.0%}"
            + (
                "; the demo samples more to catch the cheater quickly."
                if p > DEFAULTS.sampling
                else "."
            )
        )
        if check.verdict is not Verdict.SAFE:
            self.say(
                f"WARNING: p = {p:.2%} is {check.verdict.value.upper()} ({check.margin:.2f}x the "
                "bound): at this rate cheating can pay (docs/economics.md)"
            )
        self.say(
            f"services log to {self.log_path} (Ape's call traces of reverted transactions to "
            f"{self.log_path.with_name('stdout.log')})"
        )
        self.prepare()
        with self.progress.stage("start anvil (ape-foundry)"):
            ctx = networks.parse_network_choice(NETWORK, disconnect_after=True)
            provider = ctx.__enter__()
            self.say(f"    anvil at {getattr(provider, 'uri', '?')}, chain id {provider.chain_id}")
        try:
            self.setup_chain()
            addresses = [
                self.honest.address,
                self.cheater.address,
                self.challenger_acct.address,
                self.griefer.address,
            ]
            before = {str(a): self.holdings(str(a)) for a in addresses}
            self.start_actors()
            try:
                with self.progress.stage("run until the cheater is caught and all jobs resolve"):
                    self.wait()
                dapp = self.dapp_reads()
            finally:
                self.stop_actors()
            report = self.build_report(dapp, before)
            report.service_errors = dict(self.service_errors)
            if self.watch_errors:
                report.service_errors["demo watch loop"] = self.watch_errors
            report.log_path = str(self.log_path)
            report.wall_s = self.progress.elapsed()
            return report
        finally:
            self.stop_actors()
            with self.progress.stage("stop anvil"):
                ctx.__exit__(None, None, None)


@contextmanager
def console_to_log(path: Path, progress: Progress) -> Iterator[None]:
    """Point file descriptor 1 at ``path`` while the services run; progress keeps the console.

    Ape prints a call trace to the process's stdout for every reverted transaction (the
    dishonest node's rejected defences make many); those belong in the log, not the console.
    Does nothing when stdout has no file descriptor (e.g. under click's test runner).
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    console = os.fdopen(os.dup(fd), "w", buffering=1)
    with path.open("a") as sink:
        os.dup2(sink.fileno(), fd)
        progress.out = console
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, fd)
            os.close(saved)
            progress.out = None
            console.close()


@contextmanager
def service_logs(path: Path) -> Iterator[None]:
    """Send the services' logs to ``path``; keep the console for the demo's own progress.

    With ``spotcheck -v demo`` the console keeps its handlers too.
    """
    from ape.logging import logger as ape_logger

    root = logging.getLogger()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s")
    )
    mute = root.level >= logging.WARNING or root.level == logging.NOTSET
    saved = [(h, h.level) for h in root.handlers]
    old_root, old_ape = root.level, ape_logger.level
    if mute:
        for h in root.handlers:
            h.setLevel(logging.CRITICAL + 1)
        ape_logger.set_level("ERROR")
    root.addHandler(handler)
    root.setLevel(min(logging.INFO, old_root) if old_root else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for h, level in saved:
            h.setLevel(level)
        root.setLevel(old_root)
        ape_logger.set_level(old_ape)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@click.command(name="demo")
@click.option("--quick", is_flag=True, help="Shorter run for CI: fewer jobs, higher fault rate.")
@click.option(
    "--onchain-jobs", type=click.IntRange(min=0), default=None, help="On-chain jobs per node."
)
@click.option(
    "--batch-jobs", type=click.IntRange(min=0), default=None, help="Batched (HTTP) jobs per node."
)
@click.option(
    "--fault-rate",
    type=float,
    default=None,
    help="Share of the dishonest node's outputs corrupted beyond tau.",
)
@click.option("--sampling", type=float, default=None, help="The challenger's sampling rate p.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Seconds from the first job until the demo gives up.",
)
@click.option(
    "--no-time-travel",
    is_flag=True,
    help="Wait out every window in real time instead of moving anvil's clock.",
)
@click.option(
    "--no-grief",
    is_flag=True,
    help="Skip the griefing dispute (no zk proof is then verified on-chain).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help=f"State folder (default {DEFAULT_WORKDIR}).",
)
@click.option(
    "--report-json",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report as JSON here.",
)
def demo(
    quick: bool,
    onchain_jobs: int | None,
    batch_jobs: int | None,
    fault_rate: float | None,
    sampling: float | None,
    timeout_s: float | None,
    no_time_travel: bool,
    no_grief: bool,
    workdir: Path | None,
    report_json: Path | None,
) -> None:
    """End-to-end demo on a local anvil chain: an honest and a dishonest node, a challenger,
    a dApp; runs until the cheater is slashed and prints a report (exit 1 on failure)."""
    cfg = DemoConfig()
    if quick:
        cfg = cfg.quick()
    overrides: dict[str, Any] = {
        "onchain_jobs": onchain_jobs,
        "batch_jobs": batch_jobs,
        "fault_rate": fault_rate,
        "sampling": sampling,
        "timeout_s": timeout_s,
        "workdir": workdir,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    cfg = replace(cfg, time_travel=not no_time_travel, grief=not no_grief)
    if not 0 < cfg.sampling <= 1 or not 0 < cfg.fault_rate <= 1:
        raise click.BadParameter("sampling and fault rate must be in (0, 1]")
    if cfg.onchain_jobs + cfg.batch_jobs == 0:
        raise click.BadParameter("the dApp needs at least one job per node")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = Demo(cfg).run()
    except (KeyboardInterrupt, click.ClickException):
        raise
    except Exception as err:  # one clear line; the services' log has the details
        raise click.ClickException(f"demo failed: {type(err).__name__}: {err}") from err
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(report.render())
    if report_json is not None:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        report_json.write_text(report.to_json())
    if not report.ok:
        raise SystemExit(1)
