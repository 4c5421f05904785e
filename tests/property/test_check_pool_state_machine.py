"""CheckPool (paid checks, issue 15) under random call sequences on anvil: a hypothesis
``RuleBasedStateMachine`` with three registered-or-not challengers (fixed VRF secrets), a node,
a requester and a disputer, and a Python model of every challenger, key, job and claim.

Every CheckPool call is predicted by the model: a legal one must succeed and move exactly what
the model says; an illegal one (not sampled, a replayed or another job's proof, another key's
proof, after the window, on a disputed or resolved job, unbacked, exiting, a reused key, a
copied proof of possession, an early withdrawal, ...) must revert with the custom error the
model names. After every step the whole on-chain state is compared with the model (so a revert
that changed anything fails), and these invariants are checked:

- solvency: ``token.balanceOf(pool) == sum of bonds + sum over funded jobs of (reward -
  collected) + sum over batches of (deposit - burned - collected - refunded)``;
- backed claims: ``openClaims * claimCollateral <= bond`` for every challenger;
- a claim's status matches its job's fate (Open only while the job is Committed or Disputed,
  Collected only on Final jobs, Forfeited only on Invalid jobs), and the collects of a job pay
  exactly its reward in total;
- forfeited collateral goes to the burn address, never to anyone's balance;
- a key is registered to at most one address, ever;
- batch leaves (the node's check deposit): a leaf claim is Open only while its batch is
  Committed or its leaf resolved (Final batch / invalid leaf), Collected only on a leaf of a
  Final batch never invalidated, Forfeited only on an invalid leaf; a leaf's collects pay
  exactly its deposit; an invalid leaf's deposit is burned, never refunded.

Each example runs in a chain snapshot restored afterwards. ``SPOTCHECK_STATEFUL_EXAMPLES`` /
``SPOTCHECK_STATEFUL_STEPS`` size it (defaults below); the run fails if no claim, claimBatch,
collect, forfeit or illegal claim happened.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import ape
import pytest
from ape.exceptions import ContractLogicError
from ape_ethereum.trace import Trace
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.chain import ClaimStatus, JobStatus
from spotcheck.encoding import batch_leaf_key, hash_vector, leaf_hash, onchain_job_key
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import BURN, FUNDING, TEST_PARAMS, TOKEN, advance
from tests.fixtures.chain import defence_instances as _instances
from tests.property.test_contract_state_machine import FastView, _fixed_constant_pool

pytestmark = pytest.mark.chain

SLOW = os.environ.get("SPOTCHECK_SLOW") == "1"
EXAMPLES = int(os.environ.get("SPOTCHECK_STATEFUL_EXAMPLES", "12" if SLOW else "10"))
STEPS = int(os.environ.get("SPOTCHECK_STATEFUL_STEPS", "50" if SLOW else "30"))
MIN_BOND = TEST_PARAMS.check_min_bond
COLLATERAL = TEST_PARAMS.check_claim_collateral
EXIT_DELAY = TEST_PARAMS.check_exit_delay
#: Claims close this long before the challenge deadline (CheckPool.claimMargin, A6-1).
MARGIN = TEST_PARAMS.check_claim_margin
BPS = 10_000
#: Fixed VRF keys: more keys than challengers, so an exited challenger can register anew.
KEYS = [vrf.keypair(0x5EED0 + i) for i in range(5)]
#: Time jumps (s): inside the windows, past the challenge/proof windows, past the exit delay.
JUMPS = [1, 30, 101, 250, EXIT_DELAY + 1]
CALLS: Counter[str] = Counter()
OPEN_CLAIM_STATUSES = {JobStatus.COMMITTED, JobStatus.DISPUTED, JobStatus.FINAL, JobStatus.INVALID}


def _true_output(inp: list[int]) -> list[int]:
    """What the (mock) model really computes: a correct node commits this, a wrong one not."""
    return [inp[0] + inp[1], inp[2] - inp[3]]


@dataclass
class World:
    sc: Any = None
    chain: Any = None
    pool: Any = None
    node: Any = None
    requester: Any = None
    disputer: Any = None
    outsider: Any = None
    owner: Any = None
    claimers: list[Any] = field(default_factory=list)
    r: Any = None  # FastViews: pool, token, job_manager, dispute_manager


W = World()
#: (key index, registrant address) -> proof-of-possession words.
POP_CACHE: dict[tuple[int, str], list[int]] = {}
#: (key index, seed, job id) -> VRF proof.
PROOF_CACHE: dict[tuple[int, bytes, int], vrf.G1Point] = {}
#: (key index, seed, batch id, index) -> VRF proof of a leaf.
LEAF_PROOF_CACHE: dict[tuple[int, bytes, int, int], vrf.G1Point] = {}
#: Leaf check fees the registrar sets (0: batches pay no deposit and cannot be claimed).
LEAF_FEES = [0, 1, TOKEN // 10 + 1]


def _pop(k: int, who: str) -> list[int]:
    if (k, who) not in POP_CACHE:
        POP_CACHE[(k, who)] = list(cp.possession(W.pool, KEYS[k], who).words())
    return POP_CACHE[(k, who)]


def _vrf(k: int, seed: bytes, job_id: int) -> vrf.G1Point:
    if (k, seed, job_id) not in PROOF_CACHE:
        PROOF_CACHE[(k, seed, job_id)] = vrf.prove(KEYS[k].secret, seed, onchain_job_key(job_id))
    return PROOF_CACHE[(k, seed, job_id)]


def _leaf_vrf(k: int, seed: bytes, batch_id: int, index: int) -> vrf.G1Point:
    if (k, seed, batch_id, index) not in LEAF_PROOF_CACHE:
        LEAF_PROOF_CACHE[(k, seed, batch_id, index)] = vrf.prove(
            KEYS[k].secret, seed, batch_leaf_key(batch_id, index)
        )
    return LEAF_PROOF_CACHE[(k, seed, batch_id, index)]


class CheckPoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.snapshot = W.chain.snapshot()
        self.addrs = [a.address for a in W.claimers]
        # challenger -> registered, bond, open, exit_at (0 = not exiting), key (index)
        self.ch: dict[str, dict[str, Any]] = {
            a: {"registered": False, "bond": 0, "open": 0, "exit_at": 0, "key": None}
            for a in self.addrs
        }
        self.key_owner: dict[int, str] = {}  # key index -> the one address that ever held it
        self.jobs: dict[int, dict[str, Any]] = {}
        self.share, self.sampling = 0, 0
        self.leaf_fee = 0
        self.batches: dict[int, dict[str, Any]] = {}
        self.node_balance = int(W.r.token.balanceOf(W.node.address))
        self.balances = {a: int(W.r.token.balanceOf(a)) for a in self.addrs}
        self.burned = int(W.r.token.balanceOf(BURN))
        assert int(W.r.token.balanceOf(W.pool.address)) == 0
        self._tick()

    def teardown(self) -> None:
        W.chain.restore(self.snapshot)

    # ------------------------------------------------------------ helpers

    def _tick(self) -> None:
        block = ape.chain.provider.web3.eth.get_block("latest")
        self.now, self.height = int(block["timestamp"]), int(block["number"])

    def _call(self, err: str | None, fn: Any, *args: Any, sender: Any) -> Any | None:
        """Send a call the model predicts: ``err`` None must succeed, else it must revert with
        that custom error (then the invariants check that nothing changed)."""
        name = str(fn.abis[0].name)
        if err is None:
            receipt = fn(*args, sender=sender)
            self._tick()
            CALLS["ok:" + name] += 1
            return receipt
        with ape.reverts(getattr(W.pool, err)):
            fn(*args, sender=sender)
        self._tick()
        CALLS["refused:" + err] += 1
        return None

    def _pick(self, items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    def _pick_job(self, i: int, prefer: set[JobStatus]) -> int | None:
        """Half the time a job in a state the rule can act on, else any job."""
        if not self.jobs:
            return None
        live = sorted(k for k, j in self.jobs.items() if j["status"] in prefer)
        if i % 2 == 0 and live:
            return int(self._pick(live, i // 2))
        return int(self._pick(sorted(self.jobs), i // 2))

    def _seed(self, job: dict[str, Any]) -> bytes:
        """The job's seed (mines the seed block if it is not there yet)."""
        if self.height < job["commitBlock"] + 1:
            W.chain.mine(1)
            self._tick()
        return bytes(W.chain.blocks[job["commitBlock"] + 1].hash)

    def _job_error(self, job_id: int, who: str, claimed: set[int]) -> str | None:
        """The error `_recordClaim` raises for ``who`` claiming ``job_id`` in the next block."""
        job = self.jobs[job_id]
        if job["status"] != JobStatus.COMMITTED:
            return "NotClaimable"
        if self.now + 1 > job["challengeDeadline"] - MARGIN:
            return "ClaimWindowClosed"
        if self.sampling == 0:
            return "ModelNotConfigured"
        if who in job["claims"] or job_id in claimed:
            return "AlreadyClaimed"
        if not job["seedRecorded"] and self.height + 1 - (job["commitBlock"] + 1) > 256:
            return "SeedUnavailable"
        return None

    def _active_error(self, who: str, n: int) -> str | None:
        c = self.ch[who]
        if not c["registered"]:
            return "NotRegistered"
        if c["exit_at"]:
            return "Exiting"
        if c["bond"] - c["open"] * COLLATERAL < n * COLLATERAL:
            return "InsufficientFreeBond"
        return None

    def _proof(self, who_i: int, job_id: int, kind: str) -> vrf.G1Point:
        """``own``: the claimant's key for this job; ``other_key``: another key's proof for it;
        ``other_job``: the claimant's proof for another job (a replay)."""
        who = self.addrs[who_i]
        k = self.ch[who]["key"]
        k = who_i if k is None else k
        job = self.jobs[job_id]
        if kind == "other_key":
            return _vrf((k + 1) % len(KEYS), self._seed(job), job_id)
        if kind == "other_job":
            others = [j for j in sorted(self.jobs) if j != job_id]
            if others:
                o = self.jobs[others[0]]
                return _vrf(k, self._seed(o), others[0])
            return _vrf(k, self._seed(job), job_id + 1000)
        return _vrf(k, self._seed(job), job_id)

    def _claimant(self, c: int, job_id: int) -> str:
        """Challenger ``c`` (0..2), or with ``c == 3`` the job's first open claimant if any."""
        open_ = [w for w, st_ in self.jobs[job_id]["claims"].items() if st_ == ClaimStatus.OPEN]
        return open_[0] if c == 3 and open_ else self.addrs[c % 3]

    def _pick_claimable(self, i: int) -> int | None:
        """Half the time a Committed job inside its claim window, else any job."""
        live = sorted(
            k
            for k, j in self.jobs.items()
            if j["status"] == JobStatus.COMMITTED
            and self.now + 1 <= j["challengeDeadline"] - MARGIN
        )
        if i % 2 == 0 and live:
            return int(self._pick(live, i // 2))
        return self._pick_job(i, {JobStatus.COMMITTED})

    def _claimer(self, c: int) -> str:
        """Challenger ``c`` (0..2), or with ``c == 3`` the first active one if any."""
        active = [w for w, m in self.ch.items() if m["registered"] and not m["exit_at"]]
        return active[0] if c == 3 and active else self.addrs[c % 3]

    def _record_claims(self, who: str, job_ids: list[int]) -> None:
        self.ch[who]["open"] += len(job_ids)
        for job_id in job_ids:
            job = self.jobs[job_id]
            if not job["claims"]:
                job["shareBps"] = self.share
            job["claims"][who] = ClaimStatus.OPEN
            job["seedRecorded"] = True

    def _resolve_final(self, job_id: int) -> None:
        job = self.jobs[job_id]
        job["status"] = JobStatus.FINAL
        if job["claims"]:
            job["funded"] = True
            job["reward"] = job["fee"] * job["shareBps"] // BPS

    # ------------------------------------------------------------ set-up

    @initialize()
    def seed_work(self) -> None:
        """Open work on every path, so that a short run reaches collects and forfeits
        (hypothesis disables a random subset of rules per example and draws each enabled rule
        only a few times): two challengers registered; two correct jobs and a wrong one, claimed
        singly and in a batch at sampling 100 %; the wrong job disputed; time past the windows,
        the second job finalized and the dispute settled (the wrong job invalid). Then sampling
        drops to 50 %, so that some proofs are not sampled; a third challenger registers,
        exits and withdraws (past the exit delay, which also ends every open window). One
        illegal claim of each kind is tried on the way (each must revert with its own error)."""
        self.set_terms(share=2000, sampling=10_000)
        self.register(c=0, k=0, bond=1, copied=False)
        self.register(c=1, k=1, bond=2, copied=False)
        for correct in (True, True, False):
            self.request_and_commit(x=len(self.jobs), fee=2, correct=correct)
        first, second, wrong = sorted(self.jobs)
        self.claim(c=0, j=0, kind="own", job_id=first)
        self.claim(c=0, j=0, kind="own", job_id=wrong)
        self.claim_batch(c=1, picks=[], job_ids=[first, second, wrong])
        # One illegal claim of each kind (the rules below draw more, at random).
        self.claim(c=0, j=0, kind="own", job_id=first)  # replayed: AlreadyClaimed
        self.claim(c=0, j=0, kind="other_key", job_id=second)  # InvalidProof
        self.claim(c=0, j=0, kind="other_job", job_id=second)  # InvalidProof
        self.claim_batch(c=0, picks=[], job_ids=[second], kinds=["other_key"])
        self.set_terms(share=2000, sampling=1)
        self.claim(c=0, j=0, kind="own", job_id=second)  # NotSampled (unless 1 in 10,000)
        self.open_dispute(j=0, job_id=wrong)
        self.claim(c=0, j=0, kind="own", job_id=wrong)  # disputed: NotClaimable
        self.advance_time(i=JUMPS.index(101))
        self.claim(c=0, j=0, kind="own", job_id=second)  # ClaimWindowClosed
        self.finalize(j=0, job_id=second)
        self.settle(j=0, job_id=wrong)
        # A full exit: the third challenger registers, exits and withdraws; its key stays burnt.
        self.register(c=2, k=2, bond=1, copied=False)
        self.request_exit(c=2)
        self.withdraw_bond(c=2)  # ExitDelayNotOver
        self.advance_time(i=JUMPS.index(EXIT_DELAY + 1))
        self.withdraw_bond(c=2)
        self.register(c=2, k=2, bond=1, copied=False)  # KeyAlreadyRegistered
        # Batch leaves: a funded batch; leaf 0 claimed by both challengers (one in a claim of
        # two leaves), leaf 2 claimed, then disputed and left undefended (invalid: its deposit
        # burned, its claim forfeited), leaf 1 unclaimed (its deposit back to the node).
        self.set_terms(share=2000, sampling=10_000)
        self.set_leaf_fee(f=2)
        self.commit_batch(count=3)
        [batch] = sorted(self.batches)
        self.claim_leaves(c=0, j=0, index=0, kind="own", batch_id=batch)
        self.claim_leaves(c=1, j=0, index=0, kind="own", batch_id=batch, second=2)
        self.claim_leaves(c=0, j=0, index=0, kind="own", batch_id=batch)  # LeafAlreadyClaimed
        self.claim_leaves(c=0, j=0, index=1, kind="other_key", batch_id=batch)  # InvalidLeafProof
        self.claim_leaves(c=0, j=0, index=3, kind="own", batch_id=batch)  # LeafIndexOutOfRange
        self.dispute_leaf(j=0, index=2, batch_id=batch)
        self.claim_leaves(c=0, j=0, index=2, kind="own", batch_id=batch)  # LeafNotClaimable
        self.advance_time(i=JUMPS.index(250))
        self.claim_leaves(c=0, j=0, index=1, kind="own", batch_id=batch)  # window closed
        self.collect_leaf(c=0, j=0, index=0, batch_id=batch)  # BatchNotFinal
        self.forfeit_leaf(c=1, j=0, index=0, batch_id=batch)  # LeafNotInvalid
        self.advance_time(i=JUMPS.index(250))
        self.settle_leaf(j=0, batch_id=batch)
        self.forfeit_leaf(c=1, j=0, index=2, batch_id=batch)
        self.finalize_batch(j=0, batch_id=batch)
        self.collect_leaf(c=0, j=0, index=0, batch_id=batch)
        self.collect_leaf(c=1, j=0, index=0, batch_id=batch)
        self.refund_deposit(j=0, batch_id=batch)
        self.refund_deposit(j=0, batch_id=batch)  # DepositAlreadyRefunded
        self.set_terms(share=2000, sampling=5000)

    # ------------------------------------------------------------ rules: registration

    @rule(
        c=st.integers(0, 2),
        k=st.integers(0, len(KEYS) - 1),
        bond=st.integers(0, 2),
        copied=st.booleans(),
    )
    def register(self, c: int, k: int, bond: int, copied: bool) -> None:
        """Register key ``k`` with a bond below, at or above the minimum; ``copied`` uses the
        proof of possession made for another address (a front-run copy)."""
        who, acct = self.addrs[c], W.claimers[c]
        amount = [MIN_BOND - 1, MIN_BOND, MIN_BOND + 3 * COLLATERAL][bond]
        pop = _pop(k, self.addrs[(c + 1) % 3] if copied else who)
        err: str | None = None
        if self.ch[who]["registered"]:
            err = "AlreadyRegistered"
        elif amount < MIN_BOND:
            err = "BondBelowMinimum"
        elif k in self.key_owner:
            err = "KeyAlreadyRegistered"
        elif copied:
            err = "InvalidPossession"
        pk = list(KEYS[k].public.words())
        if self._call(err, W.pool.register, pk, pop, amount, sender=acct) is not None:
            self.ch[who].update(registered=True, bond=amount, open=0, exit_at=0, key=k)
            self.key_owner[k] = who
            self.balances[who] -= amount

    @rule(c=st.integers(0, 2), amount=st.sampled_from([0, COLLATERAL, MIN_BOND]))
    def add_bond(self, c: int, amount: int) -> None:
        who = self.addrs[c]
        err = "ZeroAmount" if amount == 0 else self._active_error(who, 0)
        if self._call(err, W.pool.addBond, amount, sender=W.claimers[c]) is not None:
            self.ch[who]["bond"] += amount
            self.balances[who] -= amount

    @rule(c=st.integers(0, 2))
    def request_exit(self, c: int) -> None:
        who = self.addrs[c]
        err = self._active_error(who, 0)
        if self._call(err, W.pool.requestExit, sender=W.claimers[c]) is not None:
            self.ch[who]["exit_at"] = self.now

    @rule(c=st.integers(0, 2))
    def withdraw_bond(self, c: int) -> None:
        who, ch = self.addrs[c], self.ch[self.addrs[c]]
        err: str | None = None
        if not ch["registered"]:
            err = "NotRegistered"
        elif not ch["exit_at"]:
            err = "NotExiting"
        elif self.now + 1 < ch["exit_at"] + EXIT_DELAY:
            err = "ExitDelayNotOver"
        elif ch["open"]:
            err = "ClaimsOpen"
        if self._call(err, W.pool.withdrawBond, sender=W.claimers[c]) is not None:
            self.balances[who] += ch["bond"]
            # The key stays burnt in key_owner; the address may register anew.
            self.ch[who] = {"registered": False, "bond": 0, "open": 0, "exit_at": 0, "key": None}

    @rule(share=st.sampled_from([0, 2000, 5000]), sampling=st.sampled_from([0, 5000, 10_000]))
    def set_terms(self, share: int, sampling: int) -> None:
        """The registry owner changes the model's terms (a job keeps the share of its first
        claim; sampling 0 stops new claims)."""
        self._call(None, W.pool.setModelTerms, W.sc.model_id, share, sampling, sender=W.owner)
        self.share, self.sampling = share, sampling

    # ------------------------------------------------------------ rules: jobs

    @rule(
        x=st.integers(-1000, 1000),
        fee=st.integers(0, 2),
        correct=st.booleans(),
        claim_by=st.none() | st.integers(0, 3),
    )
    def request_and_commit(
        self, x: int, fee: int, correct: bool, claim_by: int | None = None
    ) -> None:
        """The requester asks the node, which commits the true output or a wrong one; with
        ``claim_by`` a challenger claims the job at once with its own proof (a blind claim on
        a wrong output is what a forfeit punishes)."""
        inp = [x, 3, -x, 7]
        amount = [1, TOKEN, 5 * TOKEN + 3][fee]
        jm = W.sc.job_manager
        r = self._call(None, jm.requestJob, W.sc.model_id, inp, W.node, amount, sender=W.requester)
        assert r is not None
        job_id = int(r.return_value)
        out = _true_output(inp) if correct else [_true_output(inp)[0] + 100, 0]
        self._call(None, jm.commitResult, job_id, hash_vector(inp), out, sender=W.node)
        onchain = W.r.job_manager.getJob(job_id)
        self.jobs[job_id] = {
            "status": JobStatus.COMMITTED,
            "fee": amount,
            "input": inp,
            "output": out,
            "correct": correct,
            "commitBlock": int(onchain.commitBlock),
            "challengeDeadline": int(onchain.challengeDeadline),
            "proofDeadline": 0,
            "seedRecorded": False,
            "claims": {},
            "shareBps": 0,
            "funded": False,
            "reward": 0,
            "collected": 0,
            "paid": 0,
        }
        if claim_by is not None:
            self.claim(c=claim_by, j=0, kind="own", job_id=job_id)

    @rule(j=st.integers(0, 10**6))
    def open_dispute(self, j: int, job_id: int | None = None) -> None:
        """The disputer disputes a job (legal only while Committed, inside its window)."""
        if job_id is None:
            job_id = self._pick_job(j, {JobStatus.COMMITTED})
        if job_id is None:
            return
        job = self.jobs[job_id]
        legal = job["status"] == JobStatus.COMMITTED and self.now + 1 <= job["challengeDeadline"]
        dm = W.sc.dispute_manager
        args = (job_id, hash_vector(job["output"]))
        if not legal:
            with pytest.raises(ContractLogicError):
                dm.openDispute(*args, sender=W.disputer)
            self._tick()
            return
        self._call(None, dm.openDispute, *args, sender=W.disputer)
        job["status"] = JobStatus.DISPUTED
        dispute = W.r.dispute_manager.getDispute(onchain_job_key(job_id))
        job["proofDeadline"] = int(dispute.proofDeadline)

    @rule(j=st.integers(0, 10**6))
    def defend(self, j: int) -> None:
        """The node defends with the true output (MockVerifier accepts): succeeds iff the job
        is disputed, its output correct and the proof deadline not passed."""
        job_id = self._pick_job(j, {JobStatus.DISPUTED})
        if job_id is None:
            return
        job = self.jobs[job_id]
        legal = (
            job["status"] == JobStatus.DISPUTED
            and job["correct"]
            and self.now + 1 <= job["proofDeadline"]
        )
        args = (
            onchain_job_key(job_id),
            b"proof",
            _instances(job["input"], _true_output(job["input"])),
            job["output"],
        )
        if not legal:
            with pytest.raises(ContractLogicError):
                W.sc.dispute_manager.defend(*args, sender=W.node)
            self._tick()
            return
        self._call(None, W.sc.dispute_manager.defend, *args, sender=W.node)
        self._resolve_final(job_id)

    @rule(j=st.integers(0, 10**6))
    def settle(self, j: int, job_id: int | None = None) -> None:
        if job_id is None:
            job_id = self._pick_job(j, {JobStatus.DISPUTED})
        if job_id is None:
            return
        job = self.jobs[job_id]
        if job["status"] != JobStatus.DISPUTED or self.now + 1 <= job["proofDeadline"]:
            return  # the dispute manager's own refusals are the other state machine's
        dm = W.sc.dispute_manager
        receipt = self._call(None, dm.settle, onchain_job_key(job_id), sender=W.outsider)
        assert receipt is not None
        job["status"] = JobStatus.INVALID
        # The slash's burned part also goes to the burn address (DisputeManager's, not ours).
        [event] = receipt.events.filter(dm.DisputeSettled)
        self.burned += int(event.burned)

    @rule(j=st.integers(0, 10**6))
    def finalize(self, j: int, job_id: int | None = None) -> None:
        if job_id is None:
            job_id = self._pick_job(j, {JobStatus.COMMITTED})
        if job_id is None:
            return
        job = self.jobs[job_id]
        if job["status"] != JobStatus.COMMITTED or self.now + 1 <= job["challengeDeadline"]:
            return
        self._call(None, W.sc.job_manager.finalize, job_id, sender=W.outsider)
        self._resolve_final(job_id)

    @rule(i=st.integers(0, len(JUMPS) - 1))
    def advance_time(self, i: int) -> None:
        advance(W.chain, JUMPS[i])
        self._tick()

    # ------------------------------------------------------------ rules: claims

    @rule(
        c=st.integers(0, 3),
        j=st.integers(0, 10**6),
        kind=st.sampled_from(["own", "own", "own", "other_key", "other_job"]),
    )
    def claim(self, c: int, j: int, kind: str, job_id: int | None = None) -> None:
        if job_id is None:
            job_id = self._pick_claimable(j)
        if job_id is None:
            return
        who = self._claimer(c)
        c = self.addrs.index(who)
        proof = self._proof(c, job_id, kind)
        err = self._active_error(who, 1) or self._job_error(job_id, who, set())
        if err is None and kind != "own":
            err = "InvalidProof"
        if err is None and not vrf.sampled_bps(proof, self.sampling):
            err = "NotSampled"
        words = list(proof.words())
        if self._call(err, W.pool.claim, job_id, words, sender=W.claimers[c]) is not None:
            self._record_claims(who, [job_id])

    @rule(
        c=st.integers(0, 3),
        picks=st.lists(
            st.tuples(st.integers(0, 10**6), st.sampled_from(["own", "own", "own", "other_key"])),
            min_size=0,
            max_size=3,
        ),
    )
    def claim_batch(
        self,
        c: int,
        picks: list[tuple[int, str]],
        job_ids: list[int] | None = None,
        kinds: list[str] | None = None,
    ) -> None:
        if not self.jobs:
            return
        who = self._claimer(c)
        c = self.addrs.index(who)
        if job_ids is None:
            job_ids = [int(self._pick_claimable(j) or 0) for j, _ in picks]
        else:
            picks = [(0, kind) for kind in kinds or ["own"] * len(job_ids)]
        proofs = [
            self._proof(c, job_id, kind) for job_id, (_, kind) in zip(job_ids, picks, strict=True)
        ]
        err = "EmptyBatch" if not picks else self._active_error(who, len(picks))
        claimed: set[int] = set()
        for job_id, proof in zip(job_ids, proofs, strict=True):
            if err is not None:
                break
            err = self._job_error(job_id, who, claimed)
            claimed.add(job_id)
            if err is None and not vrf.sampled_bps(proof, self.sampling):
                err = "NotSampled"
        if err is None and any(kind != "own" for _, kind in picks):
            err = "InvalidBatchProof"
        words = [list(p.words()) for p in proofs]
        if self._call(err, W.pool.claimBatch, job_ids, words, sender=W.claimers[c]) is not None:
            self._record_claims(who, job_ids)

    @rule(c=st.integers(0, 3), j=st.integers(0, 10**6))
    def collect(self, c: int, j: int) -> None:
        job_id = self._pick_job(j, {JobStatus.FINAL})
        if job_id is None:
            return
        who, job = self._claimant(c, job_id), self.jobs[job_id]
        err: str | None = None
        if job["status"] != JobStatus.FINAL:
            err = "JobNotFinal"
        elif job["claims"].get(who) != ClaimStatus.OPEN:
            err = "NoOpenClaim"
        sender = W.claimers[self.addrs.index(who)]
        if self._call(err, W.pool.collect, job_id, sender=sender) is None:
            return
        count = len(job["claims"])
        share = job["reward"] // count
        amount = (
            job["reward"] - share * job["collected"] if job["collected"] + 1 == count else share
        )
        job["claims"][who] = ClaimStatus.COLLECTED
        job["collected"] += 1
        job["paid"] += amount
        self.ch[who]["open"] -= 1
        self.balances[who] += amount
        # INVARIANT: the collects of a job pay exactly its reward in total.
        assert job["paid"] <= job["reward"]
        if job["collected"] == count:
            assert job["paid"] == job["reward"], (job_id, job["paid"], job["reward"])

    @rule(c=st.integers(0, 3), j=st.integers(0, 10**6))
    def forfeit(self, c: int, j: int) -> None:
        """Anyone (the outsider) forfeits a claimant's collateral on a job."""
        job_id = self._pick_job(j, {JobStatus.INVALID})
        if job_id is None:
            return
        who, job = self._claimant(c, job_id), self.jobs[job_id]
        err: str | None = None
        if job["status"] != JobStatus.INVALID:
            err = "JobNotInvalid"
        elif job["claims"].get(who) != ClaimStatus.OPEN:
            err = "NoOpenClaim"
        outsider_before = int(W.r.token.balanceOf(W.outsider.address))
        disputer_before = int(W.r.token.balanceOf(W.disputer.address))
        if self._call(err, W.pool.forfeit, job_id, who, sender=W.outsider) is None:
            return
        job["claims"][who] = ClaimStatus.FORFEITED
        self.ch[who]["open"] -= 1
        self.ch[who]["bond"] -= COLLATERAL
        self.burned += COLLATERAL
        # INVARIANT: forfeited collateral goes to the burn address, never to anyone's balance
        # (the claimants' balances and the burn balance are checked by the invariant).
        assert int(W.r.token.balanceOf(W.outsider.address)) == outsider_before
        assert int(W.r.token.balanceOf(W.disputer.address)) == disputer_before

    # ------------------------------------------------------------ rules: batch leaves

    def _pick_batch(self, j: int) -> int | None:
        if not self.batches:
            return None
        live = sorted(b for b, m in self.batches.items() if m["status"] == 1)
        if j % 2 == 0 and live:
            return int(self._pick(live, j // 2))
        return int(self._pick(sorted(self.batches), j // 2))

    @rule(f=st.integers(0, len(LEAF_FEES) - 1))
    def set_leaf_fee(self, f: int) -> None:
        """The registry owner sets the per-leaf check deposit (batches keep theirs)."""
        fee = LEAF_FEES[f]
        self._call(None, W.pool.setLeafCheckFee, W.sc.model_id, fee, sender=W.owner)
        self.leaf_fee = fee

    @rule(count=st.integers(1, 3))
    def commit_batch(self, count: int) -> None:
        """The node commits a batch: it pays ``count * leafCheckFee`` into the pool."""
        jm, model = W.sc.job_manager, W.sc.model_id
        n0 = len(self.batches)
        leaves = [(70_000 + 10 * n0 + i, [i, n0, 1, 2], [i, -n0]) for i in range(count)]
        tree = MerkleTree(
            [leaf_hash(j, model, hash_vector(a), hash_vector(b)) for j, a, b in leaves]
        )
        st_ = W.sc.stake_manager.stakeOf(W.node.address)
        if int(st_.amount) - int(st_.locked) < count * 100 * TOKEN:
            return  # the node's stake is used up: nothing to predict about the pool
        r = self._call(None, jm.commitBatch, model, tree.root, count, "u", sender=W.node)
        assert r is not None
        batch_id = int(r.return_value)
        b = W.r.job_manager.getBatch(batch_id)
        self.node_balance -= count * self.leaf_fee
        self.batches[batch_id] = {
            "status": 1,
            "count": count,
            "perLeaf": self.leaf_fee,
            "recorded": self.leaf_fee > 0,
            "sampling": self.sampling,  # snapshot at commit (A6-5)
            "commitBlock": int(b.commitBlock),
            "challengeDeadline": int(b.challengeDeadline),
            "seedRecorded": False,
            "tree": tree,
            "leaves": leaves,
            "claims": {i: {} for i in range(count)},
            "collected": dict.fromkeys(range(count), 0),
            "paid": dict.fromkeys(range(count), 0),
            "disputed": set(),
            "invalid": set(),
            "claimedLeaves": 0,
            "invalidUnclaimed": 0,
            "burned": 0,
            "refunded": False,
            "refund": 0,
        }

    def _batch_seed(self, b: dict[str, Any]) -> bytes:
        if self.height < b["commitBlock"] + 1:
            W.chain.mine(1)
            self._tick()
        return bytes(W.chain.blocks[b["commitBlock"] + 1].hash)

    def _leaf_error(self, batch_id: int, index: int, who: str, kind: str) -> str | None:
        b = self.batches[batch_id]
        if b["status"] != 1:
            return "BatchNotClaimable"
        if self.now + 1 > b["challengeDeadline"] - MARGIN:
            return "BatchClaimWindowClosed"
        if index >= b["count"]:
            return "LeafIndexOutOfRange"
        if index in b["invalid"]:
            return "LeafInvalid"
        if index in b["disputed"]:
            return "LeafNotClaimable"
        if not b["recorded"]:
            return "BatchNotFunded"
        if b["sampling"] == 0:
            return "ModelNotConfigured"
        if who in b["claims"][index]:
            return "LeafAlreadyClaimed"
        return None

    @rule(
        c=st.integers(0, 3),
        j=st.integers(0, 10**6),
        index=st.integers(0, 3),
        kind=st.sampled_from(["own", "own", "other_key"]),
        second=st.none() | st.integers(0, 3),
    )
    def claim_leaves(
        self,
        c: int,
        j: int,
        index: int,
        kind: str,
        second: int | None = None,
        batch_id: int | None = None,
    ) -> None:
        """A challenger claims one leaf, or two (``second``: another index of the same batch,
        one pairing product), with its own proofs or another key's proof."""
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        who = self._claimer(c)
        indices = [index] if second is None or second == index else [index, second]
        seed = self._batch_seed(b)
        k = self.ch[who]["key"]
        k = self.addrs.index(who) if k is None else k
        if kind == "other_key":
            k = (k + 1) % len(KEYS)
        proofs = [_leaf_vrf(k, seed, batch_id, i) for i in indices]
        err = self._active_error(who, len(indices))
        seen: set[int] = set()
        for i, proof in zip(indices, proofs, strict=True):
            if err is not None:
                break
            err = self._leaf_error(batch_id, i, who, kind)
            if err is None and not vrf.sampled_bps(proof, b["sampling"]):
                err = "LeafNotSampled"
            if (
                err is None
                and not b["seedRecorded"]
                and self.height + 1 - (b["commitBlock"] + 1) > 256
            ):
                err = "SeedUnavailable"
            seen.add(i)
        if err is None and kind == "other_key":
            err = "InvalidLeafProof" if len(indices) == 1 else "InvalidBatchProof"
        sender = W.claimers[self.addrs.index(who)]
        words = [list(p.words()) for p in proofs]
        if self._call(err, W.pool.claimLeaves, [batch_id] * len(indices), indices, words,
                      sender=sender) is None:  # fmt: skip
            return
        self.ch[who]["open"] += len(indices)
        b["seedRecorded"] = True
        for i in indices:
            if not b["claims"][i]:
                b["claimedLeaves"] += 1
            b["claims"][i][who] = ClaimStatus.OPEN

    @rule(j=st.integers(0, 10**6), index=st.integers(0, 2))
    def dispute_leaf(self, j: int, index: int, batch_id: int | None = None) -> None:
        """The disputer disputes a leaf (legal while the batch is open, once per leaf)."""
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        index %= b["count"]
        job_id, inp, out = b["leaves"][index]
        legal = (
            b["status"] == 1
            and self.now + 1 <= b["challengeDeadline"]
            and index not in b["disputed"]
        )
        args = (batch_id, index, job_id, hash_vector(inp), hash_vector(out), b["tree"].proof(index))
        dm = W.sc.dispute_manager
        if not legal:
            with pytest.raises(ContractLogicError):
                dm.openBatchDispute(*args, sender=W.disputer)
            self._tick()
            return
        dm.openBatchDispute(*args, sender=W.disputer)
        self._tick()
        CALLS["ok:openBatchDispute"] += 1
        b["disputed"].add(index)

    @rule(j=st.integers(0, 10**6))
    def settle_leaf(self, j: int, batch_id: int | None = None) -> None:
        """Anyone settles an undefended leaf dispute after its proof deadline: the leaf is
        invalid, its deposit burned (once), its claims forfeitable."""
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        open_ = sorted(i for i in b["disputed"] if i not in b["invalid"])
        if not open_:
            return
        index = open_[0]
        key = batch_leaf_key(batch_id, index)
        deadline = int(W.r.dispute_manager.getDispute(key).proofDeadline)
        if self.now + 1 <= deadline:
            return
        dm = W.sc.dispute_manager
        receipt = self._call(None, dm.settle, key, sender=W.outsider)
        assert receipt is not None
        b["invalid"].add(index)
        if b["recorded"]:
            if not b["claims"][index]:
                b["invalidUnclaimed"] += 1
            b["burned"] += b["perLeaf"]
            self.burned += b["perLeaf"]
            # INVARIANT: an invalid leaf's deposit is burned in the settle itself.
            [ev] = receipt.events.filter(W.pool.LeafDepositBurned)
            assert int(ev.amount) == b["perLeaf"]
        # The slash's burned part also goes to the burn address (DisputeManager's).
        [event] = receipt.events.filter(dm.DisputeSettled)
        self.burned += int(event.burned)

    @rule(j=st.integers(0, 10**6))
    def finalize_batch(self, j: int, batch_id: int | None = None) -> None:
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        pending = b["disputed"] - b["invalid"]
        legal = b["status"] == 1 and self.now + 1 > b["challengeDeadline"] and not pending
        jm = W.sc.job_manager
        if not legal:
            with pytest.raises(ContractLogicError):
                jm.finalizeBatch(batch_id, sender=W.outsider)
            self._tick()
            return
        self._call(None, jm.finalizeBatch, batch_id, sender=W.outsider)
        b["status"] = 2

    def _leaf_claimant(self, c: int, b: dict[str, Any], index: int) -> str:
        open_ = [w for w, s_ in b["claims"][index].items() if s_ == ClaimStatus.OPEN]
        return open_[0] if c == 3 and open_ else self.addrs[c % 3]

    @rule(c=st.integers(0, 3), j=st.integers(0, 10**6), index=st.integers(0, 2))
    def collect_leaf(self, c: int, j: int, index: int, batch_id: int | None = None) -> None:
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        index %= b["count"]
        who = self._leaf_claimant(c, b, index)
        err: str | None = None
        if b["status"] != 2:
            err = "BatchNotFinal"
        elif index in b["invalid"] and b["recorded"]:
            err = "LeafInvalid"
        elif b["claims"][index].get(who) != ClaimStatus.OPEN:
            err = "NoOpenLeafClaim"
        sender = W.claimers[self.addrs.index(who)]
        if self._call(err, W.pool.collectLeaf, batch_id, index, sender=sender) is None:
            return
        count = len(b["claims"][index])
        share = b["perLeaf"] // count
        done = b["collected"][index]
        amount = b["perLeaf"] - share * done if done + 1 == count else share
        b["claims"][index][who] = ClaimStatus.COLLECTED
        b["collected"][index] += 1
        b["paid"][index] += amount
        self.ch[who]["open"] -= 1
        self.balances[who] += amount
        # INVARIANT: a leaf's collects pay exactly its deposit.
        if b["collected"][index] == count:
            assert b["paid"][index] == b["perLeaf"], (batch_id, index)

    @rule(c=st.integers(0, 3), j=st.integers(0, 10**6), index=st.integers(0, 2))
    def forfeit_leaf(self, c: int, j: int, index: int, batch_id: int | None = None) -> None:
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        index %= b["count"]
        who = self._leaf_claimant(c, b, index)
        err: str | None = None
        if index not in b["invalid"]:
            err = "LeafNotInvalid"
        elif b["claims"][index].get(who) != ClaimStatus.OPEN:
            err = "NoOpenLeafClaim"
        if self._call(err, W.pool.forfeitLeaf, batch_id, index, who, sender=W.outsider) is None:
            return
        b["claims"][index][who] = ClaimStatus.FORFEITED
        self.ch[who]["open"] -= 1
        self.ch[who]["bond"] -= COLLATERAL
        self.burned += COLLATERAL

    @rule(j=st.integers(0, 10**6))
    def refund_deposit(self, j: int, batch_id: int | None = None) -> None:
        """Anyone returns a final batch's unclaimed, valid leaves' deposits to its node."""
        if batch_id is None:
            batch_id = self._pick_batch(j)
        if batch_id is None:
            return
        b = self.batches[batch_id]
        err: str | None = None
        if b["status"] != 2:
            err = "BatchNotFinal"
        elif not b["recorded"]:
            err = "BatchNotFunded"
        elif b["refunded"]:
            err = "DepositAlreadyRefunded"
        if self._call(err, W.pool.refundBatchDeposit, batch_id, sender=W.outsider) is None:
            return
        amount = b["perLeaf"] * (b["count"] - b["claimedLeaves"] - b["invalidUnclaimed"])
        b["refunded"], b["refund"] = True, amount
        self.node_balance += amount

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_matches_model(self) -> None:
        pool, token = W.r.pool, W.r.token
        owed = 0
        for who, m in self.ch.items():
            c = pool.getChallenger(who)
            got = (bool(c.registered), int(c.bond), int(c.openClaims), int(c.exitRequestedAt))
            assert got == (m["registered"], m["bond"], m["open"], m["exit_at"]), (who, got, m)
            words = list(KEYS[m["key"]].public.words()) if m["registered"] else [0, 0, 0, 0]
            assert [int(w) for w in c.publicKey] == words
            # INVARIANT (backed claims)
            assert int(c.openClaims) * COLLATERAL <= int(c.bond)
            owed += int(c.bond)
            assert int(token.balanceOf(who)) == self.balances[who], who
        # INVARIANT: a key is registered to at most one address, ever (withdrawn keys stay).
        for k, key in enumerate(KEYS):
            key_hash = _key_hash(key)
            assert str(pool.keyOwner(key_hash)).lower() == self.key_owner.get(k, ZERO).lower()
        for job_id, job in self.jobs.items():
            status = JobStatus(int(W.r.job_manager.getJob(job_id).status))
            assert status == job["status"], (job_id, status, job["status"])
            ref = onchain_job_key(job_id)
            jc = pool.getJobChecks(ref)
            checks = (
                int(jc.claimCount),
                int(jc.collected),
                int(jc.shareBps),
                bool(jc.funded),
                int(jc.reward),
            )
            want = (
                len(job["claims"]),
                job["collected"],
                job["shareBps"],
                job["funded"],
                job["reward"],
            )
            assert checks == want, (job_id, checks, want)
            if job["funded"]:
                owed += job["reward"] - job["paid"]
            for who in self.addrs:
                claim = ClaimStatus(int(pool.claimOf(ref, who)))
                assert claim == job["claims"].get(who, ClaimStatus.NONE), (job_id, who, claim)
                # INVARIANT: a claim's status matches its job's fate. A claim opens only on a
                # Committed job (the model predicts every claim); it stays Open on a Final or
                # Invalid job until collected or forfeited (pull), never on any other status.
                if claim == ClaimStatus.OPEN:
                    assert status in OPEN_CLAIM_STATUSES, (job_id, who, status)
                if claim == ClaimStatus.COLLECTED:
                    assert status == JobStatus.FINAL
                if claim == ClaimStatus.FORFEITED:
                    assert status == JobStatus.INVALID
            recorded = bytes(pool.seedOf(ref)) != b"\x00" * 32
            assert recorded == job["seedRecorded"], job_id
        for batch_id, b in self.batches.items():
            d = pool.getBatchDeposit(batch_id)
            got_d = (
                int(d.perLeaf) if b["recorded"] else 0,
                bool(d.recorded),
                int(d.claimedLeaves),
                int(d.invalidUnclaimed),
                bool(d.refunded),
            )
            want_d = (
                b["perLeaf"] if b["recorded"] else 0,
                b["recorded"],
                b["claimedLeaves"] if b["recorded"] else 0,
                b["invalidUnclaimed"],
                b["refunded"],
            )
            assert got_d == want_d, (batch_id, got_d, want_d)
            if b["recorded"]:
                owed += (
                    b["perLeaf"] * b["count"] - b["burned"] - sum(b["paid"].values()) - b["refund"]
                )
            for index in range(b["count"]):
                ref = batch_leaf_key(batch_id, index)
                for who in self.addrs:
                    claim = ClaimStatus(int(pool.claimOf(ref, who)))
                    assert claim == b["claims"][index].get(who, ClaimStatus.NONE)
                    # INVARIANT: a leaf claim's status matches the leaf's fate.
                    if claim == ClaimStatus.COLLECTED:
                        assert b["status"] == 2 and index not in b["invalid"]
                    if claim == ClaimStatus.FORFEITED:
                        assert index in b["invalid"]
        assert int(token.balanceOf(W.node.address)) == self.node_balance
        # INVARIANT (solvency, with the batches' check deposits)
        assert int(token.balanceOf(W.pool.address)) == owed
        assert int(token.balanceOf(BURN)) == self.burned


ZERO = "0x0000000000000000000000000000000000000000"


def _key_hash(key: vrf.KeyPair) -> bytes:
    from eth_abi import encode as abi_encode
    from eth_utils import keccak

    return keccak(abi_encode(["uint256[4]"], [list(key.public.words())]))


def test_checkPool_keepsInvariants_underRandomCallSequences(
    monkeypatch: pytest.MonkeyPatch,
    spotcheck: Any,
    chain: Any,
    accounts: Any,
    deployer: Any,
    node: Any,
    requester: Any,
    challenger: Any,
    outsider: Any,
) -> None:
    pool = spotcheck.contracts.check_pool
    W.sc, W.chain, W.pool, W.node, W.requester = spotcheck, chain, pool, node, requester
    W.disputer, W.outsider, W.owner = challenger, outsider, deployer
    W.claimers = [accounts[6], accounts[7], accounts[8]]
    for who in W.claimers:
        spotcheck.token.mint(who, FUNDING, sender=deployer)
        spotcheck.token.approve(pool, 2**256 - 1, sender=who)
    assert int(spotcheck.mock_verifier.mode()) == 0  # Accept: a correct output is defensible
    W.r = SimpleNamespace(
        pool=FastView(pool),
        token=FastView(spotcheck.token),
        job_manager=FastView(spotcheck.job_manager),
        dispute_manager=FastView(spotcheck.dispute_manager),
    )
    monkeypatch.setattr(Trace, "show", lambda self, *args, **kwargs: None)
    _fixed_constant_pool(monkeypatch)  # the run is a function of the seed alone
    chain.provider.make_request("anvil_setBlockTimestampInterval", [1])
    try:
        run_state_machine_as_test(
            CheckPoolMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=os.environ.get("SPOTCHECK_STATEFUL_RANDOM") != "1",
                database=None,
            ),
        )
    finally:
        chain.provider.make_request("anvil_removeBlockTimestampInterval", [])
    print(
        f"check pool stateful: {EXAMPLES} x {STEPS}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(CALLS.items()))
    )
    # A path the run never took leaves its invariants unchecked.
    for name in (
        "ok:claim",
        "ok:claimBatch",
        "ok:collect",
        "ok:forfeit",
        "ok:withdrawBond",
        "ok:claimLeaves",
        "ok:collectLeaf",
        "ok:forfeitLeaf",
        "ok:refundBatchDeposit",
    ):
        assert CALLS[name] > 0, (name, CALLS)
    # Illegal claims of each kind were refused with their own error.
    for names in (
        ("InvalidProof", "InvalidBatchProof"),  # another key's proof, or another job's
        ("NotSampled",),
        ("AlreadyClaimed",),  # replayed
        ("NotClaimable",),  # on a disputed or resolved job
        ("ClaimWindowClosed",),
        ("InvalidLeafProof", "InvalidBatchProof"),
        ("LeafAlreadyClaimed",),
        ("LeafIndexOutOfRange",),
        ("LeafNotClaimable", "LeafInvalid"),
        ("BatchClaimWindowClosed", "BatchNotClaimable"),
    ):
        assert sum(CALLS["refused:" + n] for n in names) > 0, (names, CALLS)
