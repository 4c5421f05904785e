"""Gather the report from the chain and the services' own state (never from what the demo
intended): contract events, receipts and views; the challenger's database; the nodes'
metrics; and the circuit's witness to decide which outputs were outside ``tau``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demo.actors import Cast, NodeActor
from demo.chain_setup import DemoChain
from demo.challenger_db import NOT_SAMPLED, ChallengerDb
from demo.config import DemoConfig
from demo.prepare import PreparedModel
from demo.progress import Progress
from demo.report import (
    ChallengerReport,
    DappReport,
    DemoReport,
    GasReport,
    Holdings,
    NodeReport,
)
from demo.watch import Watch
from spotcheck.chain import TOKEN
from spotcheck.economics import DEFAULTS, min_sampling_probability


@dataclass(frozen=True)
class ChainLog:
    """The protocol's events since the deployment, read once."""

    requested: list[Any]
    committed: list[Any]
    finalized: list[Any]
    batches: list[Any]
    batch_final: list[Any]
    opened: list[Any]
    defended: list[Any]
    settled: list[Any]
    slashed: list[Any]
    invalid_leaves: list[Any]
    leaf_requested: list[Any]
    leaf_revealed: list[Any]
    leaf_settled: list[Any]

    @classmethod
    def read(cls, chain: DemoChain) -> ChainLog:
        c = chain.contracts
        jm, dm, sm = c.job_manager, c.dispute_manager, c.stake_manager
        return cls(
            requested=chain.events(jm, "JobRequested"),
            committed=chain.events(jm, "ResultCommitted"),
            finalized=chain.events(jm, "JobFinalized"),
            batches=chain.events(jm, "BatchCommitted"),
            batch_final=chain.events(jm, "BatchFinalized"),
            opened=chain.events(dm, "DisputeOpened"),
            defended=chain.events(dm, "DisputeDefended"),
            settled=chain.events(dm, "DisputeSettled"),
            slashed=chain.events(sm, "Slashed"),
            invalid_leaves=chain.events(jm, "BatchLeafInvalidated"),
            leaf_requested=chain.events(dm, "LeafRequested"),
            leaf_revealed=chain.events(dm, "LeafRevealed"),
            leaf_settled=chain.events(dm, "LeafRequestSettled"),
        )


def _where(events: list[Any], key: str, address: str) -> list[Any]:
    """The events whose address argument ``key`` is ``address``."""
    return [e for e in events if str(e.event_arguments[key]) == address]


def _arg_sum(events: list[Any], key: str) -> int:
    return sum(int(e.event_arguments[key]) for e in events)


def gather_report(
    cfg: DemoConfig,
    model: PreparedModel,
    chain: DemoChain,
    cast: Cast,
    watch: Watch,
    dapp: DappReport,
    before: dict[str, Holdings],
    progress: Progress,
) -> DemoReport:
    with progress.stage("gather the report from chain and services"):
        events = ChainLog.read(chain)
        sampled_rows = ChallengerDb(cast.challenger.db_path).job_states_by_node()
        jm = chain.contracts.job_manager
        statuses = {r.job_id: int(jm.getJob(r.job_id).status) for r in watch.workload.onchain}
        nodes = [
            _node_report(actor, model, chain, watch, events, statuses, sampled_rows, before)
            for actor in cast.nodes
        ]
        challengers = _challenger_reports(cfg, chain, events, sampled_rows, before)
        mp = chain.model_params
        bound = min_sampling_probability(
            DEFAULTS.cost, DEFAULTS.reward, mp.slash_amount / TOKEN, DEFAULTS.collusion
        )
        report = DemoReport(
            model={
                "name": "tiny MLP 4-8-2",
                "model_id": "0x" + chain.model_id.hex(),
                "verifier": chain.verifier,
                "logrows": model.artifacts.logrows,
                "input_scale": model.artifacts.input_scale,
                "output_scale": model.artifacts.output_scale,
                "tau": model.tau,
                "slash": mp.slash_amount,
                "bond": mp.challenger_bond,
                "bounty_bps": mp.bounty_bps,
                "challenge_window": mp.challenge_window,
                "proof_window": mp.proof_window,
                "dev_srs": model.artifacts.dev_srs,
            },
            economics={
                "sampling": cfg.sampling,
                "bound": bound,
                "cost": DEFAULTS.cost,
                "reward": DEFAULTS.reward,
                "slash": mp.slash_amount / TOKEN,
                "collusion": DEFAULTS.collusion,
                "node_stake": chain.stake / TOKEN,
                "open_jobs_per_node": cfg.open_jobs_per_node,
            },
            nodes=nodes,
            challengers=challengers,
            gas=_gas_report(chain, events),
            dapp=dapp,
            stages=list(progress.stages),
            time_to_dispute_s=watch.first_dispute_at,
            time_to_slash_s=watch.first_slash_at,
            time_travel_s=watch.clock.jumped_s,
            time_to_leaf_request_s=watch.first_leaf_request_at,
            time_to_withholder_slash_s=watch.withholder_slashed_at,
            chain_catch=_chain_catch(chain, events),
            missing=[],
        )
        report.failures.extend(_failures(cfg, watch, nodes, challengers, dapp))
        return report


def _node_report(
    actor: NodeActor,
    model: PreparedModel,
    chain: DemoChain,
    watch: Watch,
    events: ChainLog,
    statuses: dict[int, int],
    sampled_rows: list[tuple[str, str, int]],
    before: dict[str, Holdings],
) -> NodeReport:
    from prover.store import BatchState
    from spotcheck.chain import JobStatus
    from spotcheck.encoding import max_abs_diff
    from verifier.witness import witness_output

    def outside_tau(output_q: list[int], input_q: list[int]) -> bool:
        """The contract's rule: more than ``tau`` from the circuit's witness."""
        return max_abs_diff(output_q, witness_output(model.artifacts, input_q)) > model.tau

    addr = actor.address
    nr = NodeReport(actor.label, addr, actor.fault_rate, role=actor.role)
    outputs = {int(e.event_arguments["jobId"]): e for e in events.committed}
    mine = [r for r in watch.workload.onchain if r.node == actor.label]
    nr.onchain_jobs = len(mine)
    nr.onchain_final = sum(statuses[r.job_id] == JobStatus.FINAL for r in mine)
    nr.onchain_invalid = sum(statuses[r.job_id] == JobStatus.INVALID for r in mine)
    for r in mine:
        ev = outputs.get(r.job_id)
        if ev is None:
            continue
        if outside_tau([int(v) for v in ev.event_arguments["output"]], r.input_q):
            nr.corrupted += 1
            nr.corrupted_final += statuses[r.job_id] == JobStatus.FINAL
    own_batches = {
        int(b.event_arguments["batchId"]): int(b.event_arguments["count"])
        for b in _where(events.batches, "node", addr)
    }
    nr.batches = len(own_batches)
    nr.batch_leaves_invalid = sum(
        int(e.event_arguments["batchId"]) in own_batches for e in events.invalid_leaves
    )
    invalid_keys = {
        (int(e.event_arguments["batchId"]), int(e.event_arguments["index"]))
        for e in events.invalid_leaves
    }
    nr.leaf_requests = len(_where(events.leaf_requested, "node", addr))
    nr.leaves_revealed = sum(
        int(e.event_arguments["batchId"]) in own_batches for e in events.leaf_revealed
    )
    nr.leaves_unrevealed_slashed = len(_where(events.leaf_settled, "node", addr))
    local_to_chain = {b.local_id: b.batch_id for b in actor.store.batches(*BatchState)}
    for job in watch.workload.http:
        if job.node != actor.label:
            continue
        nr.batch_jobs += 1
        if outside_tau(job.output_q, job.input_q):
            nr.corrupted += 1
            served = actor.store.served_job(int(job.receipt["jobId"]))
            batch_id = (
                local_to_chain.get(served.batch_local_id)
                if served is not None and served.batch_local_id is not None
                else None
            )
            if batch_id is not None and (batch_id, served.leaf_index) not in invalid_keys:
                nr.corrupted_final += 1
    nr.sampled = sum(
        n
        for node, state, n in sampled_rows
        if node.lower() == addr.lower() and state not in NOT_SAMPLED
    )
    nr.disputes = len(_where(events.opened, "node", addr))
    nr.defended = len(_where(events.defended, "node", addr))
    nr.proofs = actor.counter("spotcheck_node_proofs", result="ok")
    mine_slashed = _where(events.slashed, "node", addr)
    nr.slashes = len(mine_slashed)
    nr.slashed = _arg_sum(mine_slashed, "slashed")
    nr.fees_earned = _arg_sum(_where(events.finalized, "node", addr), "fee")
    nr.before = before[addr]
    nr.after = chain.holdings(addr)
    nr.reserved_after = int(chain.contracts.stake_manager.stakeOf(addr).locked)
    return nr


def _challenger_reports(
    cfg: DemoConfig,
    chain: DemoChain,
    events: ChainLog,
    sampled_rows: list[tuple[str, str, int]],
    before: dict[str, Holdings],
) -> list[ChallengerReport]:
    """The challenger, and the griefer if it disputed anything."""
    who = chain.accounts
    challengers: list[ChallengerReport] = []
    for label, acct, p in (
        ("challenger", who.challenger, cfg.sampling),
        ("griefer", who.griefer, 1.0),
    ):
        addr = str(acct.address)
        cr = ChallengerReport(label, addr, p)
        mine_opened = _where(events.opened, "challenger", addr)
        if label == "griefer" and not mine_opened:
            continue
        ids = {bytes(e.event_arguments["disputeId"]) for e in mine_opened}
        won = [e for e in events.settled if bytes(e.event_arguments["disputeId"]) in ids]
        lost = [e for e in events.defended if bytes(e.event_arguments["disputeId"]) in ids]
        cr.disputes = len(mine_opened)
        cr.won = len(won)
        cr.lost = len(lost)
        cr.bounties = _arg_sum(_where(events.settled, "challenger", addr), "bounty")
        cr.bounties += _arg_sum(_where(events.leaf_settled, "requester", addr), "bounty")
        cr.leaf_requests = len(_where(events.leaf_requested, "requester", addr))
        cr.leaf_requests_slashed = len(_where(events.leaf_settled, "requester", addr))
        cr.bonds_lost = _arg_sum(lost, "bondToDefender")
        if label == "challenger":
            counts: dict[str, int] = {}
            for _node, state, n in sampled_rows:
                counts[state] = counts.get(state, 0) + n
            cr.seen = sum(counts.values())
            cr.sampled = sum(v for k, v in counts.items() if k not in NOT_SAMPLED)
            cr.matched = counts.get("matched", 0)
        cr.before = before[addr]
        cr.after = chain.holdings(addr)
        challengers.append(cr)
    return challengers


def _gas_report(chain: DemoChain, events: ChainLog) -> GasReport:
    """Mean gas of the transactions that emitted each kind of event."""
    from ape import chain as ape_chain

    def mean_gas(emitted: list[Any], per_event: bool = False) -> float:
        """Mean gas per transaction that emitted ``emitted``, or per event (``per_event``: a
        ``requestLeaves`` transaction emits one ``LeafRequested`` per leaf it opens)."""
        hashes = {str(e.transaction_hash) for e in emitted}
        if not hashes:
            return 0.0
        receipt = ape_chain.provider.web3.eth.get_transaction_receipt
        total = sum(int(receipt(h)["gasUsed"]) for h in hashes)
        return total / (len(emitted) if per_event else len(hashes))

    consumer = str(chain.contracts.example_consumer.address)
    gas = GasReport()
    gas.request_job = mean_gas(_where(events.requested, "requester", consumer))
    gas.commit_result = mean_gas(events.committed)
    gas.finalize = mean_gas(events.finalized)
    gas.commit_batch = mean_gas(events.batches)
    gas.finalize_batch = mean_gas(events.batch_final)
    if events.batches:
        gas.jobs_per_batch = _arg_sum(events.batches, "count") / len(events.batches)
    opened = events.opened
    gas.open_dispute = mean_gas([e for e in opened if int(e.event_arguments["kind"]) == 0])
    gas.open_batch_dispute = mean_gas([e for e in opened if int(e.event_arguments["kind"]) == 1])
    gas.defend = mean_gas(events.defended)
    gas.settle = mean_gas(events.settled)
    gas.request_leaf = mean_gas(events.leaf_requested, per_event=True)
    gas.reveal_leaf = mean_gas(events.leaf_revealed)
    gas.settle_leaf_request = mean_gas(events.leaf_settled)
    return gas


def _chain_catch(chain: DemoChain, events: ChainLog) -> dict[str, int] | None:
    """On the chain clock: the first disputed commitment of the cheater, its dispute and the
    first slash (seconds after that commitment; time travel included)."""
    from ape import chain as ape_chain

    cheater = chain.accounts.cheater.address
    disputes = _where(events.opened, "node", cheater)
    slashes = _where(events.slashed, "node", cheater)
    if not disputes or not slashes:
        return None
    first = min(disputes, key=lambda e: e.block_number)
    args = first.event_arguments
    if int(args["kind"]) == 0:
        commits = [
            e for e in events.committed if int(e.event_arguments["jobId"]) == int(args["jobId"])
        ]
    else:
        commits = [
            e for e in events.batches if int(e.event_arguments["batchId"]) == int(args["ref"])
        ]
    if not commits:
        return None

    def ts(block: int) -> int:
        return int(ape_chain.blocks[block].timestamp)

    t0 = ts(commits[0].block_number)
    return {
        "dispute_blocks": first.block_number - commits[0].block_number,
        "dispute_s": ts(first.block_number) - t0,
        "slash_s": ts(min(e.block_number for e in slashes)) - t0,
        "proof_window_s": chain.model_params.proof_window,
    }


def _failures(
    cfg: DemoConfig,
    watch: Watch,
    nodes: list[NodeReport],
    challengers: list[ChallengerReport],
    dapp: DappReport,
) -> list[str]:
    """What makes the run fail (exit status 1)."""
    failures: list[str] = []
    by_role = {n.role: n for n in nodes}
    honest, cheater = by_role["honest"], by_role["dishonest"]
    withholder = by_role.get("withholding")
    if withholder is not None:
        if not withholder.leaf_requests:
            failures.append("the challenger never requested a leaf of the withholding node")
        elif not withholder.leaves_unrevealed_slashed:
            failures.append("the withholding node was never slashed for an unrevealed leaf")
        if withholder.corrupted:
            failures.append(
                f"the withholding node committed {withholder.corrupted} outputs outside tau"
            )
    if dapp.foreign_receipt_refused is False:
        failures.append("the dApp accepted a final job's receipt for another input and output")
    if honest.slashes:
        failures.append(f"the honest node was slashed {honest.slashes} time(s)")
    if not cheater.slashes:
        failures.append("the dishonest node was never caught and slashed")
    if honest.corrupted:
        failures.append(f"the honest node committed {honest.corrupted} outputs outside tau")
    if cfg.grief and watch.griefed_job is not None and not honest.defended:
        failures.append("the honest node did not defend the griefing dispute")
    if not (challengers and challengers[0].bounties > 0):
        failures.append("the challenger earned no bounty")
    if watch.timed_out:
        failures.append(f"timeout: not every job and dispute resolved within {cfg.timeout_s:.0f} s")
    if watch.workload.errors:
        failures.append(f"the dApp workload failed: {watch.workload.errors[0]}")
    return failures
