"""The demo's parameters: what a run depends on, and where it keeps its files."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from spotcheck.chain import TOKEN
from spotcheck.toolchain import PROJECT_ROOT

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
    challenge_window: int = 30
    proof_window: int = 60
    #: A third node that serves users but withholds its batch listings from challengers and
    #: never reveals a requested leaf: it is caught through a leaf request.
    withholding: bool = True
    withheld_batch_jobs: int = 12  # per run, over HTTP, to the withholding node
    #: The challenger asks for the leaves it sampled this long before a batch's challenge
    #: deadline when it still has no usable listing (``leaf_request_margin_s``).
    leaf_request_margin_s: int = 12
    timeout_s: float = 240.0  # from the first job to the end
    time_travel: bool = True
    grief: bool = True
    seed: int = 7
    pace_s: float = 0.05
    tolerance_samples: int = 100
    #: Paid checks (issue 15): the model's check share (CheckPool.setModelTerms; the pool's
    #: sampling rate is ``sampling``), and the bond each registered challenger posts.
    check_share_bps: int = 5000
    claim_bond: int = 300 * TOKEN
    #: The canary node's own on-chain jobs; job i is wrong iff i % canary_every != every - 1.
    canary_jobs: int = 12
    canary_every: int = 3

    def quick(self) -> DemoConfig:
        return replace(
            self, onchain_jobs=4, batch_jobs=16, batch_size=8, fault_rate=0.5, timeout_s=180.0
        )

    @property
    def open_jobs_per_node(self) -> int:
        """The most jobs one node may hold open at once in this run: every on-chain job and
        every batched job, in whole batches (the demo's windows outlast its workload)."""
        batched = max(self.batch_jobs, self.withheld_batch_jobs if self.withholding else 0)
        batches = -(-batched // self.batch_size)
        return self.onchain_jobs + batches * self.batch_size

    @property
    def run_dir(self) -> Path:
        """The services' state and logs (replaced by the next run)."""
        return self.workdir / "run"

    @property
    def log_path(self) -> Path:
        """Every service's log."""
        return self.run_dir / "services.log"

    @property
    def stdout_log_path(self) -> Path:
        """What the process prints while the services run (Ape's call traces)."""
        return self.run_dir / "stdout.log"
