"""The challenger on anvil: honest nodes are never disputed, cheats are caught at rate p and
slashed with the bounty paid to the challenger, and a killed challenger ends in the same state.

The mock model (``MOCK_MODEL``: 4 inputs, 2 outputs, tau 2) stands for a circuit computing
``f(x) = [x0 + x1, x2 - x3]``; the challenger's onnxruntime screen is one unit off the circuit
on the first element, as float runs are. Batches are served by an in-process fake node
(``httpx.MockTransport``) speaking the node's batch API.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from challenger.batches import BatchClient, Fetcher, FetchLimits
from challenger.chain_io import ApeChain
from challenger.sampling import SamplingPolicy, is_sampled
from challenger.service import JOB_EVENTS, Challenger, Options, dispute_events
from challenger.store import BatchState, JobState, Store
from spotcheck.chain import TOKEN, DisputeStatus, JobStatus, LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, input_hash, leaf_hash, onchain_job_key, output_hash
from spotcheck.follower import LogFollower, open_db
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import MOCK_MODEL, advance

pytestmark = pytest.mark.chain
#: The shared chain fixtures (deployment, staked nodes, funded challenger, mock model).
TAU = MOCK_MODEL.tau
SECRET = b"\x2e" * 32  # a BN254 scalar below r (the VRF key)
NODE_URI = "http://node.test"


def circuit(x: Sequence[int]) -> list[int]:
    return [x[0] + x[1], x[2] - x[3]]


@dataclass
class FakeReexec:
    input_len: int = 4
    output_len: int = 2
    witness_calls: int = 0

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        out = circuit(input_q)
        return [out[0] + 1, out[1]]

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        self.witness_calls += 1
        return circuit(input_q)


@dataclass
class FakeNode:
    """Serves committed batches at ``NODE_URI`` the way the node's HTTP API does."""

    batches: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    withhold: set[int] = field(default_factory=set)
    requests: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        parts = request.url.path.strip("/").split("/")
        batch_id = int(parts[2])
        if batch_id in self.withhold or batch_id not in self.batches:
            return httpx.Response(404, json={"detail": "unknown batch"})
        return httpx.Response(200, json={"batchId": batch_id, "leaves": self.batches[batch_id]})


def commit_batch(
    spotcheck: Any, node: Any, fake: FakeNode, leaves: list[tuple[int, list[int], list[int]]]
) -> tuple[int, int]:
    """Commit ``(jobId, inputQ, outputQ)`` leaves; returns ``(batchId, commit block)``."""
    hashes = [leaf_hash(j, spotcheck.model_id, input_hash(x), output_hash(y)) for j, x, y in leaves]
    root = MerkleTree(hashes).root
    receipt = spotcheck.job_manager.commitBatch(
        spotcheck.model_id, root, len(leaves), NODE_URI, sender=node
    )
    batch_id = int(receipt.return_value)
    fake.batches[batch_id] = [{"jobId": j, "inputQ": x, "outputQ": y} for j, x, y in leaves]
    return batch_id, int(receipt.block_number)


def make_challenger(
    db: Path,
    spotcheck: Any,
    account: Any,
    fake: FakeNode,
    rate: float,
    reexec: Any = None,
    **opts: Any,
) -> Challenger:
    store = Store(open_db(db))
    follower = LogFollower(
        store.conn,
        "challenger",
        [
            (spotcheck.job_manager, JOB_EVENTS),
            (spotcheck.dispute_manager, dispute_events(spotcheck.dispute_manager)),
        ],
        confirmations=0,
        start_block=spotcheck.deployment.deploy_block,
    )
    return Challenger(
        store=store,
        chain=ApeChain.from_contracts(spotcheck.contracts, account),
        policy=SamplingPolicy(secret=SECRET, default_rate=rate),
        reexecutor_for=lambda _m: reexec or FakeReexec(),
        options=Options(max_bond_at_risk=opts.pop("cap", 10**6 * TOKEN), **opts),
        follower=follower,
        fetcher=Fetcher(
            BatchClient(
                limits=FetchLimits(deadline_s=2.0), transport=httpx.MockTransport(fake.handle)
            )
        ),
    )


def run(ch: Challenger, chain: Any, ticks: int = 2) -> None:
    for _ in range(ticks):
        chain.mine(1)  # the seed block of the newest commitment
        ch.tick()


def honest_output(x: list[int], k: int) -> list[int]:
    """Circuit output moved by up to tau, hitting both edges (-tau and +tau) often."""
    shift = (-TAU, TAU, 0, TAU - 1, -TAU)[k % 5]
    y = circuit(x)
    return [y[0] + shift, y[1] - shift]


def inputs(k: int) -> list[int]:
    return [k % 17 - 8, 3 * k % 11, -(k % 5), k % 13]


def test_honestNode_manyJobsAtToleranceEdge_isNeverDisputed(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    make_job: Callable[..., int],
    chain: Any,
    tmp_path: Path,
) -> None:
    fake = FakeNode()
    leaves = [(1000 + k, inputs(k), honest_output(inputs(k), k)) for k in range(90)]
    commit_batch(spotcheck, node, fake, leaves)
    for k in range(6):
        make_job(input=inputs(k), output=honest_output(inputs(k), k))
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger, fake, rate=1.0)
    run(ch, chain)
    assert ch.store.state_counts() == {"matched": 96}
    assert spotcheck.dispute_manager.bondAtRisk(challenger) == 0
    assert ch.store.counters()["jobs_seen"] == 96


def test_cheatingNode_detectionRateMatchesP_andOnlyCheatsAreDisputed(
    spotcheck: Any, node: Any, challenger: Any, chain: Any, tmp_path: Path
) -> None:
    """Half the leaves are cheats (one element tau + 1 off). With p = 0.3 the number caught is
    Binomial(n_cheats, p): the test asserts it within 4.5 sigma (false-alarm odds < 1e-5), and
    that the caught set is exactly the sampled cheats (never an honest leaf)."""
    p, n = 0.3, 96
    fake = FakeNode()
    leaves = []
    for k in range(n):
        x = inputs(k)
        y = circuit(x)
        if k % 2:
            y = [y[0] + TAU + 1 + k % 3, y[1]]
        leaves.append((5000 + k, x, y))
    batch_id, commit_block = commit_batch(spotcheck, node, fake, leaves)
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger, fake, rate=p)
    run(ch, chain)
    seed = bytes(chain.blocks[commit_block + 1].hash)
    cheats = [i for i in range(n) if i % 2]  # positions of the cheats
    expected = {
        batch_leaf_key(batch_id, i)
        for i in cheats
        if is_sampled(SECRET, seed, batch_leaf_key(batch_id, i), p)
    }
    disputed = {
        key
        for key in (batch_leaf_key(batch_id, i) for i in range(n))
        if spotcheck.dispute_manager.getDispute(key).status == DisputeStatus.OPEN
    }
    assert disputed == expected
    n_cheats = len(cheats)
    sigma = math.sqrt(n_cheats * p * (1 - p))
    assert abs(len(disputed) - n_cheats * p) <= 4.5 * sigma, (len(disputed), n_cheats * p)
    counts = ch.store.state_counts()
    assert counts["dispute_open"] == len(expected)
    assert "lost" not in counts and "preempted" not in counts


def test_disputeUndefended_endsInSlash_bountyPaidAndWithdrawn(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    make_job: Callable[..., int],
    chain: Any,
    stake_manager: Any,
    tmp_path: Path,
) -> None:
    x = inputs(3)
    bad = [circuit(x)[0] + TAU + 1, circuit(x)[1]]
    job_id = make_job(input=x, output=bad)
    erc20 = spotcheck.token
    balance_before = erc20.balanceOf(challenger)
    stake_before = stake_manager.stakeOf(node).amount
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger, FakeNode(), rate=1.0)
    run(ch, chain, ticks=1)
    key = onchain_job_key(job_id)
    assert ch.store.job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]
    assert spotcheck.dispute_manager.bondAtRisk(challenger) == MOCK_MODEL.challenger_bond
    advance(chain, MOCK_MODEL.proof_window + 1)
    run(ch, chain, ticks=1)
    assert ch.store.job(key).state is JobState.WON  # type: ignore[union-attr]
    assert spotcheck.dispute_manager.getDispute(key).status == DisputeStatus.SLASHED
    assert spotcheck.job_manager.getJob(job_id).status == JobStatus.INVALID
    bounty = MOCK_MODEL.slash_amount * MOCK_MODEL.bounty_bps // 10_000
    assert erc20.balanceOf(challenger) == balance_before + bounty
    assert stake_manager.stakeOf(node).amount == stake_before - MOCK_MODEL.slash_amount
    assert spotcheck.dispute_manager.credits(challenger) == 0
    assert ch.store.withdrawn_total() == MOCK_MODEL.challenger_bond + bounty


@dataclass
class WrongWitnessReexec(FakeReexec):
    """A challenger whose local circuit is wrong (bad model file, wrong scales): its screen and
    its witness both disagree with the real circuit by more than tau."""

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        return self.witness_output(input_q)

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        self.witness_calls += 1
        out = circuit(input_q)
        return [out[0] + TAU + 3, out[1]]


def test_disputeOfHonestOutput_isDefended_recordedLost_bondToNode_neverRetried(
    spotcheck: Any,
    node: Any,
    challenger: Any,
    make_job: Callable[..., int],
    chain: Any,
    tmp_path: Path,
) -> None:
    from challenger.metrics import Metrics
    from tests.fixtures.chain import defence_instances

    dm, erc20 = spotcheck.dispute_manager, spotcheck.token
    x = inputs(5)
    job_id = make_job(input=x, output=circuit(x))  # the node is honest
    key = onchain_job_key(job_id)
    before = erc20.balanceOf(challenger)
    ch = make_challenger(
        tmp_path / "c.sqlite", spotcheck, challenger, FakeNode(), 1.0, reexec=WrongWitnessReexec()
    )
    run(ch, chain, ticks=1)
    assert ch.store.job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]

    # The node proves its output (the circuit's own, MockVerifier accepting): a valid defence.
    dm.defend(key, b"proof", defence_instances(x, circuit(x)), circuit(x), sender=node)
    reports = [ch.tick() for _ in range(3)]  # and then some: nothing may be retried

    assert ch.store.job(key).state is JobState.LOST  # type: ignore[union-attr]
    assert sum(r.disputed for r in reports) == 0
    assert dm.getDispute(key).status == DisputeStatus.DEFENDED
    assert spotcheck.job_manager.isJobFinal(job_id)
    assert dm.credits(node) == MOCK_MODEL.challenger_bond  # the bond went to the node
    assert dm.bondAtRisk(challenger) == 0 and dm.credits(challenger) == 0
    assert erc20.balanceOf(challenger) == before - MOCK_MODEL.challenger_bond
    opened = list(dm.DisputeOpened.range(0, chain.blocks.height + 1))
    assert len(opened) == 1  # disputed once, never again
    metrics = Metrics()
    metrics.update_from_store(ch.store)
    sample = metrics.registry.get_sample_value
    assert sample("spotcheck_challenger_disputes_lost") == 1
    assert sample("spotcheck_challenger_disputes_won") == 0
    assert sample("spotcheck_challenger_disputes_open") == 0
    assert sample("spotcheck_challenger_jobs_disputed") == 1


def test_dryRun_reportsMismatchButSpendsNothing(
    spotcheck: Any, challenger: Any, make_job: Callable[..., int], chain: Any, tmp_path: Path
) -> None:
    x = inputs(4)
    make_job(input=x, output=[circuit(x)[0], circuit(x)[1] - TAU - 1])
    before = spotcheck.token.balanceOf(challenger)
    ch = make_challenger(
        tmp_path / "c.sqlite", spotcheck, challenger, FakeNode(), rate=1.0, dry_run=True
    )
    run(ch, chain)
    assert ch.store.state_counts() == {"reported": 1}
    assert spotcheck.token.balanceOf(challenger) == before
    assert spotcheck.dispute_manager.bondAtRisk(challenger) == 0


def test_unavailableBatch_retriedUntilTheLastAttempt_thenCountedOnce_leafRequested_noAccusation(
    spotcheck: Any, node: Any, challenger: Any, chain: Any, tmp_path: Path
) -> None:
    fake = FakeNode()
    batch_id, _ = commit_batch(spotcheck, node, fake, [(1, inputs(1), circuit(inputs(1)))])
    fake.withhold.add(batch_id)
    ch = make_challenger(tmp_path / "c.sqlite", spotcheck, challenger, fake, rate=1.0)
    run(ch, chain, ticks=3)
    assert "batches_unavailable" not in ch.store.counters()  # not before the last attempt
    deadline = int(spotcheck.job_manager.getBatch(batch_id).challengeDeadline)
    while chain.blocks.head.timestamp < deadline - 20:
        advance(chain, 5)
        ch.tick()
    # Given up on the listing: unavailable, not withheld (nothing is proven until a leaf
    # request passes its reveal deadline unrevealed).
    assert ch.store.counters().get("batches_unavailable") == 1
    assert "batches_withheld" not in ch.store.counters()
    assert fake.requests >= 3  # retried
    assert ch.store.batch(batch_id).state is BatchState.UNAVAILABLE  # type: ignore[union-attr]
    request = spotcheck.dispute_manager.getLeafRequest(batch_leaf_key(batch_id, 0))
    assert request.requester == challenger.address and request.status == LeafRequestStatus.OPEN
