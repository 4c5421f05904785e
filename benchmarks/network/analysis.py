"""What happened, computed from the run's records: the generator's receipts, the chain's
events, the services' journals and the sampler's rows. No verdict is assumed: each is a
comparison of measured numbers with its stated threshold."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from network.chain import KIND_BATCH, Chain, Event
from network.load import JobRecord
from network.sampler import Sample, tick_means

#: RSS after warm-up may move this much (issue 14's soak criterion).
RSS_FLAT = 0.10
#: A challenger's mean tick time late in the run may exceed its early mean by this much.
STEP_FLAT = 0.25
#: The share of each incarnation's samples treated as warm-up.
WARMUP = 0.25


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    phat = successes / n
    denom = 1 + z * z / n
    center = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    # it holds phat; rounding can put an end a hair inside it (1.0 - 1e-16 at phat = 1)
    return (min(phat, max(0.0, center - half)), max(phat, min(1.0, center + half)))


def expected_detection(p: float, challengers: int) -> float:
    """A corrupted leaf is disputed when at least one of the independent challengers
    samples it (each at rate ``p``)."""
    return 1 - (1 - p) ** challengers


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str
    address: str
    corrupt_rate: float
    killed: bool


class Timestamps:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._cache: dict[int, int] = {}

    def __call__(self, block: int) -> int:
        if block not in self._cache:
            self._cache[block] = self.chain.timestamp(block)
        return self._cache[block]


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def gas(
    chain: Chain, events: dict[str, list[Event]], committed: int, start: int, end: int
) -> dict[str, Any]:
    """Gas of the commitments, the finalizations and the challengers' transactions, and all
    gas the chain used during the run, per committed job."""

    def total(names: Iterable[str]) -> tuple[int, int]:
        txs = {e.tx for n in names for e in events[n]}
        return sum(chain.gas_used(t) for t in txs), len(txs)

    commit, commit_txs = total(["BatchCommitted"])
    finalize, finalize_txs = total(["BatchFinalized"])
    disputes, dispute_txs = total(["DisputeOpened", "LeafRequested"])
    all_gas = sum(int(chain.block(b)["gasUsed"], 16) for b in range(start, end + 1))
    per = (lambda g: g / committed) if committed else (lambda g: float("nan"))
    return {
        "commit_gas": commit,
        "commit_txs": commit_txs,
        "commit_gas_per_job": per(commit),
        "finalize_gas": finalize,
        "finalize_txs": finalize_txs,
        "finalize_gas_per_job": per(finalize),
        "dispute_and_request_gas": disputes,
        "dispute_and_request_txs": dispute_txs,
        "chain_gas_during_run": all_gas,
        "chain_gas_per_job": per(all_gas),
    }


def detection(
    records: list[JobRecord],
    nodes: list[NodeInfo],
    batch_of: dict[tuple[int, int], int | None],
    events: dict[str, list[Event]],
    closed_before: int,
    p: float,
    challengers: int,
) -> dict[str, Any]:
    """Per cheating node and overall: corrupted jobs whose challenge window closed, how many
    at least one challenger disputed, the rate with its Wilson interval, against
    ``1-(1-p)^challengers``."""
    deadline = {e.args["batchId"]: e.args["challengeDeadline"] for e in events["BatchCommitted"]}
    disputed = {
        (e.args["node"], e.args["jobId"])
        for e in events["DisputeOpened"]
        if e.args["kind"] == KIND_BATCH
    }
    out: dict[str, Any] = {
        "p": p,
        "challengers": challengers,
        "expected": expected_detection(p, challengers),
        "nodes": {},
    }
    total_n = total_x = 0
    for k, info in enumerate(nodes):
        if info.role != "cheater":
            continue
        n = x = uncommitted = 0
        for r in records:
            if r.node != k or not r.corrupted:
                continue
            batch = batch_of.get((k, r.job_id))
            if batch is None or batch not in deadline:
                uncommitted += 1
                continue
            if deadline[batch] > closed_before:
                continue
            n += 1
            x += (info.address, r.job_id) in disputed
        lo, hi = wilson(x, n)
        out["nodes"][info.name] = {
            "corrupt_rate": info.corrupt_rate,
            "corrupted_closed": n,
            "disputed": x,
            "rate": x / n if n else float("nan"),
            "wilson95": [lo, hi],
            "corrupted_not_committed": uncommitted,
        }
        total_n += n
        total_x += x
    lo, hi = wilson(total_x, total_n)
    out.update(
        corrupted_closed=total_n,
        disputed=total_x,
        rate=total_x / total_n if total_n else float("nan"),
        wilson95=[lo, hi],
        expected_inside_interval=lo <= out["expected"] <= hi,
    )
    return out


def slashing(
    events: dict[str, list[Event]],
    nodes: list[NodeInfo],
    ts: Callable[[int], int],
    cheated: set[str],
) -> dict[str, Any]:
    """Slashed amount per node, and the time from each slashed batch's commitment to its
    slash (disputes and unanswered leaf requests). ``cheated``: the cheating nodes that served
    at least one corrupted answer (a node at 2 % may serve none in a short run)."""
    slashed: dict[str, int] = defaultdict(int)
    for e in events["Slashed"]:
        slashed[e.args["node"]] += int(e.args["slashed"])
    commit_block = {e.args["batchId"]: e.block for e in events["BatchCommitted"]}
    opened = {e.args["disputeId"]: e for e in events["DisputeOpened"]}
    requested = {e.args["requestId"]: e for e in events["LeafRequested"]}
    delays: list[float] = []
    for e in events["DisputeSettled"]:
        o = opened.get(e.args["disputeId"])
        if e.args["slashed"] and o is not None and o.args["kind"] == KIND_BATCH:
            delays.append(ts(e.block) - ts(commit_block[o.args["ref"]]))
    leaf_delays: list[float] = []
    for e in events["LeafRequestSettled"]:
        q = requested.get(e.args["requestId"])
        if e.args["slashed"] and q is not None:
            leaf_delays.append(ts(e.block) - ts(commit_block[q.args["batchId"]]))
    per_node = {
        n.name: {"role": n.role, "address": n.address, "slashed_wei": slashed.get(n.address, 0)}
        for n in nodes
    }
    honest_slashed = [n.name for n in nodes if n.role == "honest" and slashed.get(n.address)]
    bad = [n for n in nodes if n.role == "withholding" or n.name in cheated]
    cheaters_slashed = [n.name for n in bad if slashed.get(n.address)]

    def summary(values: list[float]) -> dict[str, float | int]:
        return {
            "count": len(values),
            "median_s": statistics.median(values) if values else float("nan"),
            "max_s": max(values) if values else float("nan"),
        }

    return {
        "per_node": per_node,
        "honest_nodes_slashed": honest_slashed,
        "cheaters": [n.name for n in bad],
        "cheaters_without_corrupted_answers": [
            n.name for n in nodes if n.role == "cheater" and n.name not in cheated
        ],
        "cheaters_slashed": cheaters_slashed,
        "every_cheater_slashed": len(cheaters_slashed) == len(bad),
        "commit_to_slash_dispute": summary(delays),
        "commit_to_slash_leaf_request": summary(leaf_delays),
    }


def node_accounting(
    records: list[JobRecord],
    nodes: list[NodeInfo],
    batch_of: dict[tuple[int, int], int | None],
    events: dict[str, list[Event]],
) -> dict[str, Any]:
    """Per node: receipts the dApp holds, leaves committed on chain, receipts whose job is in
    no committed batch (missed), and leaves beyond the receipts (duplicates)."""
    receipts = Counter(r.node for r in records)
    leaves: dict[str, int] = defaultdict(int)
    for e in events["BatchCommitted"]:
        leaves[e.args["node"]] += int(e.args["count"])
    batch_ids = {e.args["batchId"] for e in events["BatchCommitted"]}
    out: dict[str, Any] = {}
    for k, n in enumerate(nodes):
        checked = [r for r in records if r.node == k and (k, r.job_id) in batch_of]
        missed = [r.job_id for r in checked if batch_of[(k, r.job_id)] not in batch_ids]
        out[n.name] = {
            "receipts": receipts.get(k, 0),
            "leaves_committed": leaves.get(n.address, 0),
            "receipts_checked": len(checked),
            "missed": len(missed),
            "missed_job_ids": missed[:20],
            "duplicates": max(0, leaves.get(n.address, 0) - receipts.get(k, 0)),
        }
    return out


def challenger_actions(
    events: dict[str, list[Event]], challengers: list[tuple[str, str]]
) -> dict[str, Any]:
    """Per challenger: disputes and leaf requests on chain, and how many named a leaf it had
    already disputed or requested (duplicates)."""
    out: dict[str, Any] = {}
    for name, address in challengers:
        disputes = Counter(
            (e.args["kind"], e.args["ref"], e.args["index"])
            for e in events["DisputeOpened"]
            if e.args["challenger"] == address
        )
        requests = Counter(
            (e.args["batchId"], e.args["index"])
            for e in events["LeafRequested"]
            if e.args["requester"] == address
        )
        out[name] = {
            "disputes": sum(disputes.values()),
            "leaf_requests": sum(requests.values()),
            "duplicate_disputes": sum(c - 1 for c in disputes.values() if c > 1),
            "duplicate_leaf_requests": sum(c - 1 for c in requests.values() if c > 1),
        }
    return out


def _windows(values: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Mean of the first post-warm-up fifth and of the last fifth of ``(t, value)``."""
    values = [v for v in values if v[1] is not None and not math.isnan(v[1])]
    if len(values) < 10:
        return None
    body = values[int(WARMUP * len(values)) :]
    k = max(1, len(body) // 5)
    early = statistics.fmean(v for _, v in body[:k])
    late = statistics.fmean(v for _, v in body[-k:])
    return early, late


def flatness(samples: list[Sample]) -> dict[str, Any]:
    """Per process (its last incarnation): RSS and, for challengers, tick time, early against
    late after warm-up."""
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_name[s.name].append(s)
    out: dict[str, Any] = {}
    for name, rows in by_name.items():
        last = max(r.incarnation for r in rows)
        rows = [r for r in rows if r.incarnation == last]
        entry: dict[str, Any] = {"samples": len(rows)}
        rss = _windows([(r.t, float(r.rss)) for r in rows if r.rss is not None])
        if rss is not None:
            growth = rss[1] / rss[0] - 1
            entry.update(
                rss_early_mb=rss[0] / 2**20,
                rss_late_mb=rss[1] / 2**20,
                rss_growth=growth,
                rss_flat=abs(growth) <= RSS_FLAT,
            )
        db = [r.db_bytes for r in rows]
        if db:
            entry.update(db_first_mb=db[0] / 2**20, db_last_mb=db[-1] / 2**20)
        ticks = tick_means(rows)
        step = _windows(ticks)
        if step is not None:
            growth = step[1] / step[0] - 1 if step[0] else float("nan")
            entry.update(
                tick_early_s=step[0],
                tick_late_s=step[1],
                tick_growth=growth,
                tick_flat=growth <= STEP_FLAT,
            )
        lags = [r.lag_blocks for r in rows if r.lag_blocks is not None]
        if lags:
            entry.update(
                lag_median=_quantile(lags, 0.5), lag_p95=_quantile(lags, 0.95), lag_max=max(lags)
            )
        out[name] = entry
    return out


#: The challenger's ``missed`` reason for a job it first recorded at or after its deadline
#: (``challenger.store.MISSED_SEEN_LATE``; the benchmark does not import the service).
SEEN_LATE = "seen after window closed"
#: After a restart a challenger's follower replays what it missed while down: a deadline that
#: passes this long after the restart still counts as "while down" (catching up, not slow).
STARTUP_GRACE_S = 60
#: Journal states of a job the challenger has not finished with: read after the drain (every
#: challenge window closed), ``sampled`` (never re-executed) and ``mismatched`` (never disputed)
#: are misses not yet marked. ``dispute_sent`` is not: the dispute may have landed already and
#: the challenger not yet ticked over it (the on-chain disputes are counted elsewhere).
UNFINISHED = ("sampled", "mismatched")
_MISSED_TOTALS = (
    "missed",
    "seen_late",
    "could_act",
    "seen_late_down",
    "seen_late_up",
    "pending_at_end",
    "dispute_sent_at_end",
    "leaf_requests_missed",
    "failing",
)


def down_windows(chaos: list[dict[str, Any]], offset: float) -> dict[str, list[tuple[int, int]]]:
    """Per service, the chain-time intervals it was down: from each ``kill -9`` to its
    ``restart`` (wall times in the chaos log, moved to chain time by ``offset`` = chain time -
    wall time; anvil's 1 s blocks keep it within a second or two). A kill never restarted is
    down to the end."""
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    killed: dict[str, float] = {}
    for c in chaos:
        target = str(c.get("target", ""))
        if c["action"] == "kill -9":
            killed[target] = float(c["t"])
        elif c["action"] == "restart" and target in killed:
            start = killed.pop(target)
            out[target].append((int(start + offset), int(float(c["t"]) + offset) + 1))
    for target, start in killed.items():
        out[target].append((int(start + offset), 2**63))
    return dict(out)


def missed_jobs(
    journals: dict[str, Any],
    corrupted: set[tuple[str, int]],
    down: dict[str, list[tuple[int, int]]],
    ts: Callable[[int], int],
    names: dict[str, str],
    grace_s: int = STARTUP_GRACE_S,
) -> dict[str, Any]:
    """Every job a challenger's journal marks ``missed`` (``status --json``'s ``missed_jobs``),
    with why: its reason, kind, node, commit block and time, deadline, when the challenger first
    recorded it (chain time) against the deadline, whether a cheater corrupted it (``corrupted``:
    (node address, job id)), and whether its deadline fell while that challenger was down (from
    a kill to ``grace_s`` after its restart: ``deadline_while_down``).

    Per challenger and in all: ``could_act``, misses of jobs seen before their deadline;
    ``seen_late``, those first recorded after it, split into ``seen_late_down`` (the deadline
    fell while that challenger was down: excused) and ``seen_late_up`` (it was up: too slow,
    not excused; a seen-late miss beyond the journal's listed rows counts here);
    ``pending_at_end``, jobs still ``sampled``/``mismatched`` when the journals are read (after
    every window closed: misses not yet marked); ``dispute_sent_at_end`` (reported only);
    ``leaf_requests_missed``, leaf requests not sent in time. ``failing`` = could_act +
    seen_late_up + pending_at_end: the jobs the verdict fails on."""
    out: dict[str, Any] = {"challengers": {}}
    totals = Counter[str]()
    for name, journal in journals.items():
        rows: list[dict[str, Any]] = []
        for j in journal.get("missed_jobs", []):
            deadline, seen = int(j["challenge_deadline"]), j.get("seen_at")
            rows.append(
                {
                    **j,
                    "node_name": names.get(str(j["node"]).lower(), j["node"]),
                    "commit_time": ts(int(j["commit_block"])),
                    "seen_minus_deadline_s": None if seen is None else int(seen) - deadline,
                    "corrupted": (str(j["node"]).lower(), int(j["job_id"])) in corrupted,
                    "deadline_while_down": any(
                        a <= deadline <= b + grace_s for a, b in down.get(name, [])
                    ),
                }
            )
        states = journal.get("states", {})
        total = states.get("missed", 0)
        late = journal.get("missed_by_reason", {}).get(SEEN_LATE, 0)
        late_down = sum(1 for r in rows if r["reason"] == SEEN_LATE and r["deadline_while_down"])
        pending = sum(states.get(s, 0) for s in UNFINISHED)
        entry = {
            "missed": total,
            "seen_late": late,
            "could_act": total - late,
            "seen_late_down": late_down,
            "seen_late_up": late - late_down,
            "pending_at_end": pending,
            "dispute_sent_at_end": states.get("dispute_sent", 0),
            "leaf_requests_missed": int(journal.get("leaf_requests", {}).get("missed", 0)),
            "failing": total - late_down + pending,
            "by_reason": journal.get("missed_by_reason", {}),
            "corrupted": sum(r["corrupted"] for r in rows),
            "deadline_while_down": sum(r["deadline_while_down"] for r in rows),
            "jobs": rows,
        }
        out["challengers"][name] = entry
        totals.update({k: entry[k] for k in _MISSED_TOTALS})
    out.update({k: totals.get(k, 0) for k in _MISSED_TOTALS})
    return out
