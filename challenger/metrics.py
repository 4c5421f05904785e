"""Prometheus metrics of the challenger (own registry, served at ``/metrics``).

Job and dispute numbers are gauges read from the persisted state after every tick, so they
survive restarts; process-lifetime events (ticks, RPC failures) are counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from challenger.defence import DefenceStore
from challenger.reveals import RevealStore
from challenger.store import ClaimStore, JobState, Store

_NS = "spotcheck_challenger"

#: metric name -> job states it counts (a job past a state still counts as having reached it).
_REACHED: dict[str, frozenset[JobState]] = {
    "jobs_sampled": frozenset(JobState) - {JobState.SEEN, JobState.SKIPPED},
    "jobs_matched": frozenset({JobState.MATCHED}),
    "jobs_mismatched": frozenset(
        {
            JobState.MISMATCHED,
            JobState.REPORTED,
            JobState.MISSED,
            JobState.PREEMPTED,
            JobState.DISPUTE_SENT,
            JobState.DISPUTE_OPEN,
            JobState.WON,
            JobState.LOST,
        }
    ),
    "jobs_disputed": frozenset(
        {JobState.DISPUTE_SENT, JobState.DISPUTE_OPEN, JobState.WON, JobState.LOST}
    ),
    "disputes_won": frozenset({JobState.WON}),
    "disputes_lost": frozenset({JobState.LOST}),
    "disputes_open": frozenset({JobState.DISPUTE_SENT, JobState.DISPUTE_OPEN}),
    "jobs_missed": frozenset({JobState.MISSED}),
    "jobs_reported_dry_run": frozenset({JobState.REPORTED}),
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.blocks_behind = Gauge(
            f"{_NS}_blocks_behind_head", "Head minus checkpoint.", registry=r
        )
        self.jobs_seen = Gauge(
            f"{_NS}_jobs_seen", "Committed jobs seen (leaves included).", registry=r
        )
        self.states = {
            name: Gauge(
                f"{_NS}_{name}", f"Jobs in states {sorted(s.value for s in states)}.", registry=r
            )
            for name, states in _REACHED.items()
        }
        self.batches = {
            name: Gauge(f"{_NS}_{name}", help_, registry=r)
            for name, help_ in (
                (
                    "batches_unavailable",
                    "Batches given up on: no complete listing by the last attempt (not an "
                    "accusation; their sampled leaves are requested on chain).",
                ),
                (
                    "listings_invalid",
                    "Batches given up on after the node answered with a listing that is not "
                    "the committed one (their sampled leaves are requested on chain).",
                ),
                (
                    "batches_withheld",
                    "Batches proven withheld: a leaf request on them ended unrevealed (slashed).",
                ),
                (
                    "batches_seen_late",
                    "Batches first seen too late to ask for their listing (not checked; "
                    "nothing said about their node).",
                ),
            )
        }
        self.leaf_requests = {
            name: Gauge(f"{_NS}_leaf_requests_{name}", help_, registry=r)
            for name, help_ in (
                ("opened", "Leaf requests we sent (bonded)."),
                ("revealed", "Requested leaves the node revealed on chain."),
                ("settled", "Leaf requests settled unrevealed (node slashed)."),
                ("pending", "Leaf requests planned, sent or open."),
                ("missed", "Leaf requests the window closed on before sending."),
                ("preempted", "Planned leaf requests on a leaf someone else disputed."),
            )
        }
        self.claims = {
            name: Gauge(f"{_NS}_claims_{name}", help_, registry=r)
            for name, help_ in (
                ("sent", "Paid-check claims that landed on chain (open, paid or forfeited)."),
                ("pending", "Claims planned or being sent."),
                ("paid", "Claims whose reward was collected."),
                ("forfeited", "Claims forfeited: the job ended invalid."),
                ("missed", "Claims not sent in time (window, seed, refused)."),
                ("payouts", "Check rewards collected (token base units)."),
                ("forfeits", "Collateral lost to forfeited claims (token base units)."),
            )
        }
        self.defences = {
            name: Gauge(f"{_NS}_defences_{name}", help_, registry=r)
            for name, help_ in (
                ("sent", "Defences we sent of disputed jobs we found correct (won or lost)."),
                ("won", "Our defences that landed: the dispute ended defended."),
                ("lost", "Our defences the contract refused (the proof or instances)."),
                ("too_late", "Disputes we meant to defend that closed before our defence."),
                ("node_defended", "Disputes we watched that the node (or another) defended."),
                ("pending", "Defences waiting for the node, proving or being sent."),
            )
        }
        self.reveals = {
            name: Gauge(f"{_NS}_leaf_reveals_{name}", help_, registry=r)
            for name, help_ in (
                ("sent", "Reveals we sent of requested leaves we found correct (won or lost)."),
                ("won", "Our leaf reveals that landed (or a reveal adopted after a restart)."),
                ("lost", "Our leaf reveals the contract refused (the data or Merkle path)."),
                ("too_late", "Leaf requests we meant to reveal that closed before our reveal."),
                ("node_revealed", "Leaf requests we watched that the node (or another) revealed."),
                ("pending", "Leaf reveals waiting for the node or being sent."),
            )
        }
        self.bond_at_risk = Gauge(
            f"{_NS}_bond_at_risk", "Bond locked in our open disputes.", registry=r
        )
        self.credits = Gauge(f"{_NS}_credits", "Credits waiting to be withdrawn.", registry=r)
        self.withdrawn = Gauge(f"{_NS}_withdrawn", "Credits withdrawn so far.", registry=r)
        self.ticks = Counter(f"{_NS}_ticks", "Work-loop iterations.", registry=r)
        self.rpc_failures = Counter(f"{_NS}_rpc_failures", "Ticks that failed on RPC.", registry=r)
        self.tick_seconds = Histogram(f"{_NS}_tick_seconds", "Duration of a tick.", registry=r)

    def update_from_store(self, store: Store) -> None:
        counts = store.state_counts()
        for name, states in _REACHED.items():
            self.states[name].set(sum(counts.get(s.value, 0) for s in states))
        counters = store.counters()
        self.jobs_seen.set(counters.get("jobs_seen", 0))
        for name, gauge in self.batches.items():
            gauge.set(counters.get(name, 0))
        self.withdrawn.set(store.withdrawn_total())
        summary = store.leaf_request_summary()
        for name, gauge in self.leaf_requests.items():
            gauge.set(summary.get(name, 0))
        claims = ClaimStore(store).summary()
        for name, gauge in self.claims.items():
            gauge.set(claims.get(name, 0))
        defences = DefenceStore(store).summary()
        for name, gauge in self.defences.items():
            gauge.set(defences.get(name, 0))
        reveals = RevealStore(store).summary()
        for name, gauge in self.reveals.items():
            gauge.set(reveals.get(name, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
