"""One look at a deployed Spotcheck system, read from the chain only (events and views).

:func:`gather_status` reads the deployment's events over a bounded block range (the last
``lookback_blocks`` blocks, in ``chunk_blocks`` pieces, one ``eth_getLogs`` per piece for all
event types at once) and the current state through the contracts' views:

- the deployment: addresses, chain id, head block, minimum stake, unbonding delay;
- models (``ModelRegistered``): tolerance, slash, bond, windows, active;
- nodes (``Staked``, or seen committing): stake, locked, free, unbonding, open disputes, liveness
  failures, the last commitment and its age; a node is *live* when it committed within
  ``live_window_s`` and is neither unbonding nor below the minimum stake;
- open disputes and open leaf requests (opened in the range, still open by the views);
- recent slashes (``Slashed``), newest first.

Events older than the range are not read: a node that staked before it and has not committed
since is not listed, and the status says from which block it read. ``spotcheck status`` prints
it (``--json`` for machines); ``spotcheck dashboard`` serves the same data as a page.

Imports only click and core at module level: Ape comes with the command's network context.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from spotcheck.ape_cli import ReadChainCommand
from spotcheck.chain import DisputeStatus, JobKind, LeafRequestStatus
from spotcheck.cli_options import deployment_option, format_tokens

#: How far back the status reads events by default (blocks), and in pieces of how many.
DEFAULT_LOOKBACK_BLOCKS = 50_000
DEFAULT_CHUNK_BLOCKS = 5_000
#: A node that committed within this many seconds (chain time) is live.
DEFAULT_LIVE_WINDOW_S = 3_600
#: How many recent slashes to show.
DEFAULT_RECENT = 20

#: (contract attribute of SpotcheckContracts, event names) read by the status
_EVENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model_registry", ("ModelRegistered", "ModelDeactivated")),
    ("stake_manager", ("Staked", "Slashed", "UnbondRequested")),
    ("job_manager", ("JobRequested", "ResultCommitted", "BatchCommitted")),
    ("dispute_manager", ("DisputeOpened", "LeafRequested")),
)


@dataclass(frozen=True)
class ModelStatus:
    model_id: str
    verifier: str
    active: bool
    input_len: int
    output_len: int
    tau: int
    slash: int  # base units
    challenger_bond: int  # base units
    bounty_bps: int
    challenge_window_s: int
    proof_window_s: int
    registered_block: int


@dataclass(frozen=True)
class NodeStatus:
    address: str
    stake: int  # base units
    locked: int
    free: int
    unbonding: bool
    open_disputes: int
    liveness_failures: int
    commitments: int  # in the range: on-chain results + batches
    last_commit_block: int | None
    last_commit_age_s: int | None
    live: bool
    why_not_live: str  # "" when live


@dataclass(frozen=True)
class OpenDispute:
    dispute_id: str
    kind: str  # "onchain" | "batch"
    job_id: int
    batch_id: int | None
    index: int | None
    node: str
    challenger: str
    bond: int
    proof_deadline: int  # unix seconds (chain time)
    seconds_left: int


@dataclass(frozen=True)
class OpenLeafRequest:
    request_id: str
    batch_id: int
    index: int
    node: str
    requester: str
    bond: int
    status: str  # "open" (reveal due) | "revealed" (disputable until dispute_deadline)
    reveal_deadline: int
    dispute_deadline: int


@dataclass(frozen=True)
class Slash:
    node: str
    requested: int
    slashed: int
    recipient: str
    block: int
    tx: str


@dataclass(frozen=True)
class SystemStatus:
    chain_id: int
    head_block: int
    head_time: int  # unix seconds of the head block
    from_block: int  # events read from this block (inclusive) to the head
    deploy_block: int
    contracts: dict[str, str | None]
    min_stake: int
    unbonding_delay_s: int
    models: list[ModelStatus] = field(default_factory=list)
    nodes: list[NodeStatus] = field(default_factory=list)
    open_disputes: list[OpenDispute] = field(default_factory=list)
    open_leaf_requests: list[OpenLeafRequest] = field(default_factory=list)
    recent_slashes: list[Slash] = field(default_factory=list)
    jobs_requested: int = 0  # in the range
    batches_committed: int = 0  # in the range
    gathered_at: float = 0.0  # unix seconds (wall clock)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _hex(value: Any) -> str:
    raw = bytes(value) if not isinstance(value, str) else bytes.fromhex(value.removeprefix("0x"))
    return "0x" + raw.hex()


def _read_events(
    contracts: Any, start: int, stop: int, chunk: int
) -> dict[str, list[dict[str, Any]]]:
    """Every event of :data:`_EVENTS` in blocks ``start..stop`` (inclusive), by name, in chain
    order; each as its arguments plus ``_block`` and ``_tx``."""
    from ape import chain
    from ape.types.events import LogFilter

    addresses: list[str] = []
    abis: list[Any] = []
    for attr, names in _EVENTS:
        contract = getattr(contracts, attr)
        addresses.append(str(contract.address))
        abis.extend(getattr(contract, name).abi for name in names)
    out: dict[str, list[dict[str, Any]]] = {n: [] for _, names in _EVENTS for n in names}
    lo = start
    while lo <= stop:
        hi = min(stop, lo + chunk - 1)
        flt = LogFilter(
            addresses=addresses,  # type: ignore[arg-type]  # checksummed by Ape
            events=abis,
            start_block=lo,
            stop_block=hi,
        )
        for entry in chain.provider.get_contract_logs(flt):
            args = dict(entry.event_arguments)
            args["_block"] = int(entry.block_number)
            args["_tx"] = _hex(entry.transaction_hash)
            out[entry.event_name].append(args)
        lo = hi + 1
    return out


def gather_status(
    contracts: Any,
    *,
    lookback_blocks: int = DEFAULT_LOOKBACK_BLOCKS,
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
    live_window_s: int = DEFAULT_LIVE_WINDOW_S,
    recent: int = DEFAULT_RECENT,
) -> SystemStatus:
    """The system's status from ``contracts`` (a ``SpotcheckContracts`` on the connected
    chain); see the module for what is read."""
    from ape import chain

    if lookback_blocks < 1 or chunk_blocks < 1:
        raise click.BadParameter("lookback and chunk must be at least one block")
    dep = contracts.deployment
    head = chain.blocks.head
    head_block, head_time = int(head.number), int(head.timestamp)
    start = max(int(dep.deploy_block), head_block - lookback_blocks + 1)
    ev = _read_events(contracts, start, head_block, chunk_blocks)
    sm, mr, jm, dm = (
        contracts.stake_manager,
        contracts.model_registry,
        contracts.job_manager,
        contracts.dispute_manager,
    )
    min_stake = int(sm.minStake())

    models = []
    for e in ev["ModelRegistered"]:
        mid = bytes(e["modelId"])
        m = mr.getModel(mid)
        models.append(
            ModelStatus(
                model_id=_hex(mid),
                verifier=str(m.verifier),
                active=bool(m.active),
                input_len=int(m.inputLen),
                output_len=int(m.outputLen),
                tau=int(m.tau),
                slash=int(m.slashAmount),
                challenger_bond=int(m.challengerBond),
                bounty_bps=int(m.bountyBps),
                challenge_window_s=int(m.challengeWindow),
                proof_window_s=int(m.proofWindow),
                registered_block=int(e["_block"]),
            )
        )

    commits: dict[str, list[int]] = {}
    for name in ("ResultCommitted", "BatchCommitted"):
        for e in ev[name]:
            commits.setdefault(str(e["node"]), []).append(int(e["_block"]))
    addresses = list(dict.fromkeys([str(e["node"]) for e in ev["Staked"]] + list(commits)))
    nodes = [
        _node_status(a, sm, jm, min_stake, commits.get(a, []), head_time, live_window_s)
        for a in addresses
    ]

    open_disputes = []
    for e in ev["DisputeOpened"]:
        did = bytes(e["disputeId"])
        d = dm.getDispute(did)
        if int(d.status) != DisputeStatus.OPEN:
            continue
        batch = int(d.kind) == JobKind.BATCH
        open_disputes.append(
            OpenDispute(
                dispute_id=_hex(did),
                kind="batch" if batch else "onchain",
                job_id=int(d.jobId),
                batch_id=int(d.ref) if batch else None,
                index=int(d.index) if batch else None,
                node=str(d.node),
                challenger=str(d.challenger),
                bond=int(d.bond),
                proof_deadline=int(d.proofDeadline),
                seconds_left=max(0, int(d.proofDeadline) - head_time),
            )
        )

    leaf_requests = []
    for e in ev["LeafRequested"]:
        rid = bytes(e["requestId"])
        r = dm.getLeafRequest(rid)
        status = int(r.status)
        revealed_open = status == LeafRequestStatus.REVEALED and int(r.disputeDeadline) > head_time
        if status != LeafRequestStatus.OPEN and not revealed_open:
            continue
        leaf_requests.append(
            OpenLeafRequest(
                request_id=_hex(rid),
                batch_id=int(r.batchId),
                index=int(r.index),
                node=str(r.node),
                requester=str(r.requester),
                bond=int(r.bond),
                status="open" if status == LeafRequestStatus.OPEN else "revealed",
                reveal_deadline=int(r.revealDeadline),
                dispute_deadline=int(r.disputeDeadline),
            )
        )

    slashes = [
        Slash(
            node=str(e["node"]),
            requested=int(e["requested"]),
            slashed=int(e["slashed"]),
            recipient=str(e["recipient"]),
            block=int(e["_block"]),
            tx=str(e["_tx"]),
        )
        for e in reversed(ev["Slashed"][-recent:] if recent > 0 else [])
    ]
    return SystemStatus(
        chain_id=int(dep.chain_id),
        head_block=head_block,
        head_time=head_time,
        from_block=start,
        deploy_block=int(dep.deploy_block),
        contracts={
            "token": dep.token,
            "stake_manager": dep.stake_manager,
            "model_registry": dep.model_registry,
            "job_manager": dep.job_manager,
            "dispute_manager": dep.dispute_manager,
            "example_consumer": dep.example_consumer,
        },
        min_stake=min_stake,
        unbonding_delay_s=int(sm.unbondingDelay()),
        models=models,
        nodes=nodes,
        open_disputes=open_disputes,
        open_leaf_requests=leaf_requests,
        recent_slashes=slashes,
        jobs_requested=len(ev["JobRequested"]),
        batches_committed=len(ev["BatchCommitted"]),
        gathered_at=time.time(),
    )


def _node_status(
    address: str,
    sm: Any,
    jm: Any,
    min_stake: int,
    commit_blocks: list[int],
    head_time: int,
    live_window_s: int,
) -> NodeStatus:
    from ape import chain

    s = sm.stakeOf(address)
    stake, locked = int(s.amount), int(s.locked)
    unbonding = int(s.unbondRequestedAt) != 0
    last_block = max(commit_blocks) if commit_blocks else None
    age = None if last_block is None else head_time - int(chain.blocks[last_block].timestamp)
    if unbonding:
        why = "unbonding"
    elif stake < min_stake:
        why = f"stake {format_tokens(stake)} below the minimum {format_tokens(min_stake)}"
    elif age is None:
        why = "no commitment in the range read"
    elif age > live_window_s:
        why = f"last commitment {age} s ago (live window {live_window_s} s)"
    else:
        why = ""
    return NodeStatus(
        address=address,
        stake=stake,
        locked=locked,
        free=int(sm.freeStake(address)),
        unbonding=unbonding,
        open_disputes=int(s.openDisputes),
        liveness_failures=int(jm.livenessFailures(address)),
        commitments=len(commit_blocks),
        last_commit_block=last_block,
        last_commit_age_s=age,
        live=not why,
        why_not_live=why,
    )


def _short(value: str) -> str:
    return value if len(value) <= 14 else f"{value[:10]}...{value[-4:]}"


def render_text(st: SystemStatus) -> str:
    """The status as the console shows it (amounts in tokens)."""
    tok = format_tokens
    out = [
        f"chain {st.chain_id}  head block {st.head_block}  events read from block "
        f"{st.from_block} (deployed at {st.deploy_block})",
        f"contracts  stake {st.contracts['stake_manager']}  registry "
        f"{st.contracts['model_registry']}  jobs {st.contracts['job_manager']}  disputes "
        f"{st.contracts['dispute_manager']}",
        f"minimum stake {tok(st.min_stake)}  unbonding delay {st.unbonding_delay_s} s  "
        f"jobs requested {st.jobs_requested}  batches committed {st.batches_committed} "
        "(in the range)",
        "",
        f"models ({len(st.models)})",
    ]
    for m in st.models:
        out.append(
            f"  {_short(m.model_id)}  {'active' if m.active else 'INACTIVE'}  in/out "
            f"{m.input_len}/{m.output_len}  tau {m.tau}  slash {tok(m.slash)}  bond "
            f"{tok(m.challenger_bond)}  bounty {m.bounty_bps / 100:g} %  windows "
            f"{m.challenge_window_s}/{m.proof_window_s} s"
        )
    out += ["", f"nodes ({len(st.nodes)})"]
    for n in st.nodes:
        seen = "never" if n.last_commit_age_s is None else f"{n.last_commit_age_s} s ago"
        out.append(
            f"  {n.address}  {'LIVE' if n.live else 'not live: ' + n.why_not_live}  stake "
            f"{tok(n.stake)} (locked {tok(n.locked)}, free {tok(n.free)})  open disputes "
            f"{n.open_disputes}  liveness failures {n.liveness_failures}  commitments "
            f"{n.commitments}, last {seen}"
        )
    out += ["", f"open disputes ({len(st.open_disputes)})"]
    for d in st.open_disputes:
        where = f"job {d.job_id}" + (
            f" (batch {d.batch_id} leaf {d.index})" if d.kind == "batch" else ""
        )
        out.append(
            f"  {_short(d.dispute_id)}  {where}  node {_short(d.node)}  challenger "
            f"{_short(d.challenger)}  bond {tok(d.bond)}  proof due in {d.seconds_left} s"
        )
    out += ["", f"open leaf requests ({len(st.open_leaf_requests)})"]
    for r in st.open_leaf_requests:
        due = r.reveal_deadline if r.status == "open" else r.dispute_deadline
        left = max(0, due - st.head_time)
        what = "reveal due" if r.status == "open" else "revealed, disputable"
        out.append(
            f"  {_short(r.request_id)}  batch {r.batch_id} leaf {r.index}  node "
            f"{_short(r.node)}  {what} for {left} s  bond {tok(r.bond)}"
        )
    out += ["", f"recent slashes ({len(st.recent_slashes)}, newest first)"]
    for s in st.recent_slashes:
        out.append(
            f"  block {s.block}  node {_short(s.node)}  slashed {tok(s.slashed)} of "
            f"{tok(s.requested)}  to {_short(s.recipient)}  tx {_short(s.tx)}"
        )
    return "\n".join(out)


def lookback_options(fn: Any) -> Any:
    """``--lookback`` and ``--live-window``, shared by ``status`` and ``dashboard``."""
    fn = click.option(
        "--live-window",
        type=click.IntRange(min=1),
        default=DEFAULT_LIVE_WINDOW_S,
        show_default=True,
        help="A node that committed within this many seconds is live.",
    )(fn)
    return click.option(
        "--lookback",
        type=click.IntRange(min=1),
        default=DEFAULT_LOOKBACK_BLOCKS,
        show_default=True,
        help="Read events of the last this many blocks.",
    )(fn)


@click.command("status", cls=ReadChainCommand)
@deployment_option
@lookback_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(deployment: Path | None, lookback: int, live_window: int, as_json: bool) -> None:
    """The deployment, models, nodes, open disputes and leaf requests, recent slashes."""
    from spotcheck.cli_options import connect_contracts
    from spotcheck.kit.quiet import ape_traces_to_debug

    ape_traces_to_debug()
    st = gather_status(
        connect_contracts(deployment), lookback_blocks=lookback, live_window_s=live_window
    )
    click.echo(st.to_json() if as_json else render_text(st))
