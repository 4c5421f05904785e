"""Random sequences of every external call by several actors, on anvil, with the protocol's
invariants checked after every step (hypothesis ``RuleBasedStateMachine``).

Invariants:
- solvency: each contract's token balance equals what it owes (stakes; escrowed fees + credits;
  open bonds + credits), and minted == held by actors + contracts + burned;
- every lock is backed: a node's ``locked`` equals the slash of its open commitments;
- no job or leaf resolves twice, and a terminal status never changes;
- no stake withdrawal succeeds while a dispute against the node is open;
- a slashed job or leaf is never final.

Each example runs in a chain snapshot that is restored afterwards. Step counts are modest for
CI; ``SPOTCHECK_STATEFUL_EXAMPLES`` / ``SPOTCHECK_STATEFUL_STEPS`` raise them.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from ape.exceptions import ContractLogicError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from spotcheck.chain import BatchStatus, DisputeStatus, JobStatus
from spotcheck.encoding import hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import MOCK_MODEL, TOKEN, advance, defence_instances

pytestmark = pytest.mark.chain

EXAMPLES = int(os.environ.get("SPOTCHECK_STATEFUL_EXAMPLES", "8"))
STEPS = int(os.environ.get("SPOTCHECK_STATEFUL_STEPS", "30"))
BURN = "0x000000000000000000000000000000000000dEaD"
SLASH = MOCK_MODEL.slash_amount
LIVE_JOB = {JobStatus.REQUESTED, JobStatus.COMMITTED, JobStatus.DISPUTED}
TERMINAL_JOB = {JobStatus.FINAL, JobStatus.INVALID, JobStatus.CANCELLED}
RESOLUTION_EVENTS = ("JobFinalized", "JobInvalidated", "JobCancelled")


@dataclass
class World:
    """The session's contracts and actors (set by the test before the machine runs)."""

    sc: Any = None
    chain: Any = None
    nodes: list[Any] = field(default_factory=list)
    users: list[Any] = field(default_factory=list)  # requesters and challengers
    minted: int = 0


WORLD = World()
#: Transactions sent and reverted over the whole run (reported; recorded in docs/contracts.md).
TOTAL: Counter[str] = Counter()


class SpotcheckMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w = WORLD
        self.snapshot = self.w.chain.snapshot()
        self.jobs: dict[int, dict[str, Any]] = {}  # jobId -> fee, node, input, output, status
        self.batches: dict[int, dict[str, Any]] = {}  # batchId -> node, leaves, tree, status
        self.disputes: dict[bytes, dict[str, Any]] = {}  # id -> kind, ref, index, node, status
        self.resolutions: Counter[tuple[str, int, int]] = Counter()
        self.slashed: set[tuple[str, int, int]] = set()

    def teardown(self) -> None:
        self.w.chain.restore(self.snapshot)

    # ------------------------------------------------------------ helpers

    def _send(self, fn: Any, *args: Any, **kw: Any) -> Any | None:
        """Send a transaction; a revert is a legal outcome of a random call (returns None)."""
        TOTAL["steps"] += 1
        try:
            receipt = fn(*args, **kw)
        except ContractLogicError:
            TOTAL["reverted"] += 1
            return None
        self._count_resolutions(receipt)
        return receipt

    def _count_resolutions(self, receipt: Any) -> None:
        jm = self.w.sc.job_manager
        for name in RESOLUTION_EVENTS:
            for ev in receipt.events.filter(getattr(jm, name)):
                self.resolutions[("job", 0, int(ev.jobId))] += 1
        for name in ("BatchJobProven", "BatchJobInvalidated"):
            for ev in receipt.events.filter(getattr(jm, name)):
                self.resolutions[("leaf", int(ev.batchId), int(ev.jobId))] += 1

    def _refresh_job(self, job_id: int) -> None:
        status = JobStatus(self.w.sc.job_manager.getJob(job_id).status)
        old = self.jobs[job_id]["status"]
        # INVARIANT: a terminal status never changes.
        assert old not in TERMINAL_JOB or status == old, (job_id, old, status)
        self.jobs[job_id]["status"] = status

    def _pick(self, keys: list[Any], i: int) -> Any:
        return keys[i % len(keys)]

    # ------------------------------------------------------------ rules: jobs

    @rule(
        n=st.integers(0, 1),
        u=st.integers(0, 1),
        fee=st.sampled_from([0, 1, 5 * TOKEN]),
        x=st.integers(-1000, 1000),
    )
    def request_job(self, n: int, u: int, fee: int, x: int) -> None:
        inp = [x, 1, -x, 2]
        node = self.w.nodes[n]
        r = self._send(
            self.w.sc.job_manager.requestJob,
            self.w.sc.model_id,
            inp,
            node,
            fee,
            sender=self.w.users[u],
        )
        if r is not None:
            job_id = int(r.return_value)
            self.jobs[job_id] = {
                "fee": fee,
                "node": node,
                "input": inp,
                "output": None,
                "status": JobStatus.REQUESTED,
                "requester": self.w.users[u],
            }

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 10**6), y=st.integers(-50, 50))
    def commit(self, i: int, y: int) -> None:
        job_id = self._pick(sorted(self.jobs), i)
        job = self.jobs[job_id]
        r = self._send(self.w.sc.job_manager.commitResult, job_id, [y, -y], sender=job["node"])
        if r is not None:
            job["output"] = [y, -y]
        self._refresh_job(job_id)

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 10**6), u=st.integers(0, 1))
    def finalize(self, i: int, u: int) -> None:
        job_id = self._pick(sorted(self.jobs), i)
        self._send(self.w.sc.job_manager.finalize, job_id, sender=self.w.users[u])
        self._refresh_job(job_id)

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 10**6), u=st.integers(0, 1))
    def cancel(self, i: int, u: int) -> None:
        job_id = self._pick(sorted(self.jobs), i)
        self._send(self.w.sc.job_manager.cancelJob, job_id, sender=self.w.users[u])
        self._refresh_job(job_id)

    # ------------------------------------------------------------ rules: batches

    @rule(n=st.integers(0, 1), seed=st.integers(0, 1000))
    def commit_batch(self, n: int, seed: int) -> None:
        node = self.w.nodes[n]
        leaves = [(seed * 10 + k, [k, seed, 0, -k], [seed + k, k]) for k in range(3)]
        hashed = [
            leaf_hash(j, self.w.sc.model_id, hash_vector(a), hash_vector(b)) for j, a, b in leaves
        ]
        tree = MerkleTree(hashed)
        r = self._send(
            self.w.sc.job_manager.commitBatch,
            self.w.sc.model_id,
            tree.root,
            3,
            "mem://",
            sender=node,
        )
        if r is not None:
            self.batches[int(r.return_value)] = {
                "node": node,
                "leaves": leaves,
                "tree": tree,
                "status": BatchStatus.COMMITTED,
            }

    @precondition(lambda self: self.batches)
    @rule(i=st.integers(0, 10**6), u=st.integers(0, 1))
    def finalize_batch(self, i: int, u: int) -> None:
        batch_id = self._pick(sorted(self.batches), i)
        self._send(self.w.sc.job_manager.finalizeBatch, batch_id, sender=self.w.users[u])
        self.batches[batch_id]["status"] = BatchStatus(
            self.w.sc.job_manager.getBatch(batch_id).status
        )

    # ------------------------------------------------------------ rules: disputes

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 10**6), u=st.integers(0, 1))
    def open_dispute(self, i: int, u: int) -> None:
        job_id = self._pick(sorted(self.jobs), i)
        r = self._send(self.w.sc.dispute_manager.openDispute, job_id, sender=self.w.users[u])
        if r is not None:
            self.disputes[bytes(r.return_value)] = {
                "kind": "job",
                "ref": 0,
                "jobId": job_id,
                "node": self.jobs[job_id]["node"],
            }
        self._refresh_job(job_id)

    @precondition(lambda self: self.batches)
    @rule(i=st.integers(0, 10**6), k=st.integers(0, 2), u=st.integers(0, 1))
    def open_batch_dispute(self, i: int, k: int, u: int) -> None:
        batch_id = self._pick(sorted(self.batches), i)
        b = self.batches[batch_id]
        job_id, a, out = b["leaves"][k]
        r = self._send(
            self.w.sc.dispute_manager.openBatchDispute,
            batch_id,
            job_id,
            hash_vector(a),
            hash_vector(out),
            b["tree"].proof(k),
            sender=self.w.users[u],
        )
        if r is not None:
            self.disputes[bytes(r.return_value)] = {
                "kind": "leaf",
                "ref": batch_id,
                "jobId": job_id,
                "node": b["node"],
                "k": k,
            }

    @precondition(lambda self: self.disputes)
    @rule(i=st.integers(0, 10**6), honest=st.booleans())
    def defend(self, i: int, honest: bool) -> None:
        dispute_id = self._pick(sorted(self.disputes), i)
        d = self.disputes[dispute_id]
        if d["kind"] == "job":
            job = self.jobs[d["jobId"]]
            inp, out = job["input"], job["output"] or [0, 0]
        else:
            _, inp, out = self.batches[d["ref"]]["leaves"][d["k"]]
        proven = list(out) if honest else [out[0] + MOCK_MODEL.tau + 1, out[1]]
        self._send(
            self.w.sc.dispute_manager.defend,
            dispute_id,
            b"p",
            defence_instances(inp, proven),
            out,
            sender=d["node"],
        )
        if d["kind"] == "job":
            self._refresh_job(d["jobId"])

    @precondition(lambda self: self.disputes)
    @rule(i=st.integers(0, 10**6), u=st.integers(0, 1))
    def settle(self, i: int, u: int) -> None:
        dispute_id = self._pick(sorted(self.disputes), i)
        d = self.disputes[dispute_id]
        r = self._send(self.w.sc.dispute_manager.settle, dispute_id, sender=self.w.users[u])
        if r is not None:
            self.slashed.add((d["kind"], d["ref"], d["jobId"]))
        if d["kind"] == "job":
            self._refresh_job(d["jobId"])

    @rule(mode=st.sampled_from([0, 0, 2]))
    def set_verifier_mode(self, mode: int) -> None:
        self._send(self.w.sc.mock_verifier.setMode, mode, sender=self.w.users[0])

    # ------------------------------------------------------------ rules: stake and credits

    @rule(n=st.integers(0, 1), amount=st.sampled_from([1, 100 * TOKEN]))
    def stake(self, n: int, amount: int) -> None:
        self._send(self.w.sc.stake_manager.stake, amount, sender=self.w.nodes[n])

    @rule(n=st.integers(0, 1))
    def request_unbond(self, n: int) -> None:
        self._send(self.w.sc.stake_manager.requestUnbond, sender=self.w.nodes[n])

    @rule(n=st.integers(0, 1))
    def withdraw_stake(self, n: int) -> None:
        node = self.w.nodes[n]
        open_disputes = self.w.sc.stake_manager.stakeOf(node).openDisputes
        r = self._send(self.w.sc.stake_manager.withdrawStake, sender=node)
        # INVARIANT: no withdrawal while a dispute against the node is open.
        assert r is None or open_disputes == 0

    @rule(a=st.integers(0, 3), which=st.booleans())
    def withdraw_credits(self, a: int, which: bool) -> None:
        actor = (self.w.nodes + self.w.users)[a]
        target = self.w.sc.job_manager if which else self.w.sc.dispute_manager
        self._send(target.withdrawCredits, sender=actor)

    @rule(seconds=st.sampled_from([1, 30, 101, 250, 1001]))
    def advance_time(self, seconds: int) -> None:
        advance(self.w.chain, seconds)

    # ------------------------------------------------------------ invariants

    @invariant()
    def solvency(self) -> None:
        sc, token = self.w.sc, self.w.sc.token
        actors = self.w.nodes + self.w.users
        stakes = sum(sc.stake_manager.stakeOf(n).amount for n in self.w.nodes)
        assert token.balanceOf(sc.stake_manager) == stakes
        escrow = sum(j["fee"] for j in self.jobs.values() if j["status"] in LIVE_JOB)
        jm_credits = sum(sc.job_manager.credits(a) for a in actors)
        assert token.balanceOf(sc.job_manager) == escrow + jm_credits
        bonds = sum(sc.dispute_manager.bondAtRisk(a) for a in actors)
        dm_credits = sum(sc.dispute_manager.credits(a) for a in actors)
        assert token.balanceOf(sc.dispute_manager) == bonds + dm_credits
        held = sum(token.balanceOf(a) for a in actors)
        assert (
            held + stakes + escrow + jm_credits + bonds + dm_credits + token.balanceOf(BURN)
            == self.w.minted
        )

    @invariant()
    def locks_match_open_commitments(self) -> None:
        for node in self.w.nodes:
            open_jobs = sum(
                1
                for j in self.jobs.values()
                if j["node"] == node and j["status"] in (JobStatus.COMMITTED, JobStatus.DISPUTED)
            )
            open_batches = sum(
                1
                for b in self.batches.values()
                if b["node"] == node and b["status"] == BatchStatus.COMMITTED
            )
            assert self.w.sc.stake_manager.stakeOf(node).locked == SLASH * (
                open_jobs + open_batches
            )

    @invariant()
    def resolves_at_most_once(self) -> None:
        assert all(count == 1 for count in self.resolutions.values()), self.resolutions

    @invariant()
    def slashed_is_never_final(self) -> None:
        jm = self.w.sc.job_manager
        for kind, ref, job_id in self.slashed:
            if kind == "job":
                assert not jm.isJobFinal(job_id)
                assert self.jobs[job_id]["status"] == JobStatus.INVALID
            else:
                assert not jm.isBatchJobFinal(ref, job_id)
        for dispute_id in self.slashed_ids():
            assert self.w.sc.dispute_manager.getDispute(dispute_id).status == DisputeStatus.SLASHED

    def slashed_ids(self) -> list[bytes]:
        keys = {(d["kind"], d["ref"], d["jobId"]): k for k, d in self.disputes.items()}
        return [keys[s] for s in self.slashed]


def test_contracts_keepInvariants_underRandomCallSequences(
    spotcheck: Any, chain: Any, node: Any, node2: Any, challenger: Any, requester: Any
) -> None:
    from tests.fixtures.chain import FUNDING

    WORLD.sc, WORLD.chain = spotcheck, chain
    WORLD.nodes, WORLD.users = [node, node2], [challenger, requester]
    WORLD.minted = spotcheck.token.totalSupply()
    assert WORLD.minted == 4 * FUNDING
    run_state_machine_as_test(
        SpotcheckMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=os.environ.get("SPOTCHECK_STATEFUL_RANDOM") != "1",
            database=None,
        ),
    )
    print(
        f"stateful: {EXAMPLES} examples x {STEPS} steps, {TOTAL['steps']} transactions, "
        f"{TOTAL['reverted']} reverted"
    )
