"""Prometheus metrics of one node (own registry, so several nodes can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_served = Counter(
            "spotcheck_node_jobs_served", "Jobs served", ["kind"], registry=r
        )
        self.rejected = Counter(
            "spotcheck_node_requests_rejected", "Inputs rejected with 4xx", ["reason"], registry=r
        )
        self.commits = Counter("spotcheck_node_commits", "Commitments mined", ["kind"], registry=r)
        self.gas_used = Counter(
            "spotcheck_node_gas_used", "Gas used by node transactions", ["action"], registry=r
        )
        self.fees_wei = Counter(
            "spotcheck_node_fees_wei", "Transaction fees paid (wei)", ["action"], registry=r
        )
        self.finalized = Counter(
            "spotcheck_node_finalized", "Jobs and batches finalized", ["kind"], registry=r
        )
        # A counter although the store holds these outcomes (the metrics rule makes such facts
        # gauges, docs/architecture.md): renaming a published metric breaks dashboards.
        self.disputes = Counter(
            "spotcheck_node_disputes", "Disputes against this node", ["event"], registry=r
        )
        self.proofs = Counter("spotcheck_node_proofs", "Proofs generated", ["result"], registry=r)
        self.proving_seconds = Histogram(
            "spotcheck_node_proving_seconds",
            "Time to prove one disputed job",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.self_audits = Counter(
            "spotcheck_node_self_audits", "Self-audits against the circuit", ["result"], registry=r
        )
        self.stake = Gauge("spotcheck_node_stake", "Total stake (token base units)", registry=r)
        self.stake_locked = Gauge(
            "spotcheck_node_stake_locked", "Stake locked by open commitments", registry=r
        )
        self.open_disputes = Gauge(
            "spotcheck_node_open_disputes", "Disputes not yet resolved", registry=r
        )
        self.pending_jobs = Gauge(
            "spotcheck_node_pending_batch_jobs", "Served jobs not yet in a batch", registry=r
        )
        self.dishonest_mode = Gauge(
            "spotcheck_node_dishonest_mode", "1 when fault injection is on", registry=r
        )
        self.halted = Gauge(
            "spotcheck_node_halted",
            "1 when a self-audit halted at least one model (see model_halted)",
            registry=r,
        )
        self.model_halted = Gauge(
            "spotcheck_node_model_halted",
            "1 when the self-audit halted this model (no new jobs or commitments for it)",
            ["model"],
            registry=r,
        )

    def record_tx(self, action: str, gas_used: int, fee_wei: int) -> None:
        self.gas_used.labels(action).inc(gas_used)
        self.fees_wei.labels(action).inc(fee_wei)

    def render(self) -> bytes:
        return generate_latest(self.registry)
