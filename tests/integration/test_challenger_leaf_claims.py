"""Paid checks of batch leaves through the challenger service on anvil (issue 15).

The node commits a batch through its own chain wrapper (``NodeChain.commit_batch``: the check
deposit ``count * leafCheckFee`` is pulled into the CheckPool) and serves its listing
(``FakeNode``); registered challenger services fetch it, sample leaves by their VRF, re-run
them and claim the correct ones in ``claimLeaves``:

- diligent challengers claim exactly the leaves their VRF puts in the pool's sample (one
  ``claimLeaves`` each), collect ``deposit / claimants`` per leaf once the batch is final, and
  their status and metrics say so; the node takes back the unclaimed leaves' deposits;
- a restart between sending the leaf claims and recording the receipt never claims twice: the
  claims are journaled ``sending`` before the transaction and adopted from ``claimOf`` after;
- a cheating leaf is disputed by the diligent challenger, never claimed; a lazy challenger
  (re-running to whatever the node said) that claimed it records the claim ``forfeited`` once
  the dispute is settled, and still collects its valid leaves.

Two findings were pinned as strict xfails and are fixed: a ``collectLeaf`` whose receipt was
lost to a restart was adopted without its payout (status and metrics undercounted
``claims_payouts``; the claimer now reads the payout from the pool's collect event), and
nothing sent ``forfeitLeaf`` for a forfeited claim, so it stayed open on chain and blocked the
bond's exit (the claimer now closes it, ``claims.close_forfeit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from challenger.chain_io import ApeChain
from challenger.claims import Claimer, ClaimOptions
from challenger.metrics import Metrics
from challenger.runner import status_of
from challenger.sampling import BatchDecisions, SamplingPolicy, secret_scalar
from challenger.service import Challenger
from challenger.store import ClaimState, JobState, LeafClaimStore
from prover.chain_io import NodeChain
from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.chain import TOKEN, ClaimStatus, DisputeStatus
from spotcheck.encoding import batch_leaf_key, input_hash, leaf_hash, output_hash
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import FUNDING, MOCK_MODEL, TEST_PARAMS, advance
from tests.integration.test_challenger_chain import (
    NODE_URI,
    SECRET,
    TAU,
    FakeNode,
    circuit,
    honest_output,
    inputs,
    make_challenger,
    run,
)

pytestmark = pytest.mark.chain

LEAF_FEE = TOKEN // 10  # the node's check deposit per leaf (even: two claimants split it exactly)
SAMPLING_BPS = 5_000  # the pool pays for half the leaves: some claimed, some back to the node
COUNT = 16
SECRET_B = b"\x1b" * 32  # the second challenger's VRF key
COLLATERAL = TEST_PARAMS.check_claim_collateral
BOND = 2 * TEST_PARAMS.check_min_bond  # backs 20 open claims: a whole batch of COUNT leaves

Leaves = list[tuple[int, list[int], list[int]]]


class Killed(BaseException):
    """The process dies right after the claim transaction was sent (before its receipt)."""


class CountingChain(ApeChain):
    """The real chain; records every ``claimLeaves`` and can die right after sending one."""

    sends: list[list[tuple[int, int]]]
    collects: list[tuple[int, int]]
    die_after_send: bool = False
    die_after_collect: bool = False

    def pool_claim_leaves(self, claims: Sequence[tuple[int, int, vrf.G1Point]]) -> Any:
        self.sends.append([(b, i) for b, i, _ in claims])
        tx = super().pool_claim_leaves(claims)
        if self.die_after_send:
            raise Killed
        return tx

    def pool_collect_leaf(self, batch_id: int, index: int) -> tuple[Any, int]:
        self.collects.append((batch_id, index))
        paid = super().pool_collect_leaf(batch_id, index)
        if self.die_after_collect:
            raise Killed
        return paid


class Echo:
    """A lazy checker: "re-runs" a leaf to whatever the node listed for its input."""

    input_len, output_len = 4, 2

    def __init__(self, leaves: Leaves) -> None:
        self.outputs = {tuple(x): y for _, x, y in leaves}

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        return list(self.outputs[tuple(input_q)])

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        return list(self.outputs[tuple(input_q)])


@pytest.fixture
def pool(spotcheck: Any, deployer: Any, challenger: Any, accounts: Any) -> Any:
    """The CheckPool sampling SAMPLING_BPS of each model's leaves for a deposit of LEAF_FEE per
    leaf; ``challenger`` (key SECRET) and ``accounts[8]`` (key SECRET_B) registered."""
    p = spotcheck.contracts.check_pool
    cp.set_model_terms(p, spotcheck.model_id, 1_000, SAMPLING_BPS, sender=deployer)
    cp.set_leaf_check_fee(p, spotcheck.model_id, LEAF_FEE, sender=deployer)
    for who, secret in ((challenger, SECRET), (accounts[8], SECRET_B)):
        spotcheck.token.mint(who, FUNDING, sender=deployer)
        ApeChain.from_contracts(spotcheck.contracts, who).pool_register_key(secret, BOND)
    return p


@pytest.fixture
def second(accounts: Any, pool: Any) -> Any:
    """The second registered challenger (key SECRET_B)."""
    return accounts[8]


def _service(
    db: Path,
    spotcheck: Any,
    account: Any,
    fake: FakeNode,
    secret: bytes = SECRET,
    reexec: Any = None,
    *,
    die_after_send: bool = False,
    die_after_collect: bool = False,
) -> tuple[Challenger, CountingChain]:
    ch = make_challenger(db, spotcheck, account, fake, rate=1.0, reexec=reexec)
    ch.policy = SamplingPolicy(secret=secret, default_rate=1.0)
    ch.decisions = BatchDecisions(ch.policy)  # leaves are sampled through the policy's copy
    port = CountingChain.from_contracts(spotcheck.contracts, account)
    assert isinstance(port, CountingChain)
    port.sends = []
    port.collects = []
    port.die_after_send = die_after_send
    port.die_after_collect = die_after_collect
    ch.chain = port
    ch.claimer = Claimer(ch.store, port, ClaimOptions(max_wait_s=0))
    return ch, port


def _commit(spotcheck: Any, node: Any, fake: FakeNode, leaves: Leaves) -> tuple[int, int]:
    """The node commits ``leaves`` (paying the deposit) and serves them; (batchId, block)."""
    hashes = [leaf_hash(j, spotcheck.model_id, input_hash(x), output_hash(y)) for j, x, y in leaves]
    nc = NodeChain(spotcheck.contracts, node)
    _, batch_id, _ = nc.commit_batch(
        spotcheck.model_id, MerkleTree(hashes).root, len(leaves), NODE_URI
    )
    assert batch_id is not None
    fake.batches[batch_id] = [{"jobId": j, "inputQ": x, "outputQ": y} for j, x, y in leaves]
    return batch_id, int(spotcheck.job_manager.getBatch(batch_id).commitBlock)


def _honest_leaves(n: int = COUNT) -> Leaves:
    return [(7000 + k, inputs(k), honest_output(inputs(k), k)) for k in range(n)]


def _in_pool_sample(
    chain: Any, commit_block: int, secret: bytes, batch_id: int, bps: int = SAMPLING_BPS
) -> list[int]:
    """The leaves ``secret``'s VRF puts in the pool's sample (computed here, independently)."""
    seed = bytes(chain.blocks[commit_block + 1].hash)
    key = vrf.keypair(secret_scalar(secret))
    return [i for i in range(COUNT) if cp.make_leaf_claim(key, batch_id, i, seed, bps)]


def _leaf_claims(ch: Challenger) -> dict[int, ClaimState]:
    """The service's leaf claims by index (one batch per test)."""
    return {c.index: c.state for c in LeafClaimStore(ch.store).claims(*ClaimState)}


def _status(pool: Any, batch_id: int, index: int, who: Any) -> ClaimStatus:
    return cp.leaf_claim_status(pool, batch_id, index, who.address)


def test_diligentChallengers_claimTheirSampledLeaves_arePaidDepositPerClaimant_nodeTakesRest(
    spotcheck: Any, pool: Any, node: Any, challenger: Any, second: Any, chain: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    token = spotcheck.token
    fake = FakeNode()
    node_before, pool_before = token.balanceOf(node), token.balanceOf(pool)
    batch_id, commit_block = _commit(spotcheck, node, fake, _honest_leaves())
    assert token.balanceOf(node) == node_before - COUNT * LEAF_FEE  # the deposit was pulled
    a, port_a = _service(tmp_path / "a.sqlite", spotcheck, challenger, fake)
    b, port_b = _service(tmp_path / "b.sqlite", spotcheck, second, fake, SECRET_B)
    run(a, chain)
    run(b, chain)

    mine_a = _in_pool_sample(chain, commit_block, SECRET, batch_id)
    mine_b = _in_pool_sample(chain, commit_block, SECRET_B, batch_id)
    claimed = set(mine_a) | set(mine_b)
    assert 0 < len(claimed) < COUNT  # 2 ** -15 odds each way: the seed is a block hash
    assert a.store.state_counts() == {"matched": COUNT}  # all re-run, none disputed
    for ch, port, mine in ((a, port_a, mine_a), (b, port_b, mine_b)):
        assert port.sends == [[(batch_id, i) for i in mine]]  # one claimLeaves, ours only
        assert _leaf_claims(ch) == {
            i: ClaimState.OPEN if i in mine else ClaimState.UNCLAIMABLE for i in range(COUNT)
        }
    for i in range(COUNT):
        for who, mine in ((challenger, mine_a), (second, mine_b)):
            want = ClaimStatus.OPEN if i in mine else ClaimStatus.NONE
            assert _status(pool, batch_id, i, who) is want
    assert pool.freeBond(challenger) == BOND - len(mine_a) * COLLATERAL
    assert int(pool.getBatchDeposit(batch_id).claimedLeaves) == len(claimed)

    reports = [a.tick(), b.tick()]  # not final yet: nothing collected, nothing sent again
    assert sum(r.claims_paid for r in reports) == 0
    assert len(port_a.sends) == 1 and len(port_b.sends) == 1

    # The node finalizes after the window and takes back the unclaimed leaves' deposits.
    advance(chain, MOCK_MODEL.challenge_window + 1)
    node_mid = token.balanceOf(node)
    NodeChain(spotcheck.contracts, node).finalize_batch(batch_id)
    assert pool.getBatchDeposit(batch_id).refunded
    assert token.balanceOf(node) == node_mid + (COUNT - len(claimed)) * LEAF_FEE

    for ch, who, mine, other in ((a, challenger, mine_a, mine_b), (b, second, mine_b, mine_a)):
        reward = sum(LEAF_FEE // (2 if i in other else 1) for i in mine)
        before = token.balanceOf(who)
        report = ch.tick()
        assert report.claims_paid == len(mine) and report.payouts == reward
        assert token.balanceOf(who) == before + reward
        assert pool.freeBond(who) == BOND
        assert _leaf_claims(ch) == {
            i: ClaimState.COLLECTED if i in mine else ClaimState.UNCLAIMABLE for i in range(COUNT)
        }
        summary = status_of(ch.store)["claims"]
        assert summary["sent"] == len(mine) and summary["paid"] == len(mine)
        assert summary["payouts"] == reward and summary["unclaimable"] == COUNT - len(mine)
        assert summary["forfeited"] == 0 and summary["pending"] == 0 and summary["open"] == 0
        metrics = Metrics()
        metrics.update_from_store(ch.store)
        sample = metrics.registry.get_sample_value
        assert sample("spotcheck_challenger_claims_paid") == len(mine)
        assert sample("spotcheck_challenger_claims_payouts") == reward
        assert ch.tick().claims_paid == 0  # collected once
    # Solvency: every deposit went out (to claimants or back to the node); the bonds remain.
    assert token.balanceOf(pool) == pool_before
    assert token.balanceOf(node) == node_before - len(claimed) * LEAF_FEE


def test_restartBetweenLeafClaimSendAndReceipt_neverClaimsTwice(
    spotcheck: Any, pool: Any, node: Any, challenger: Any, chain: Any, tmp_path: Path
) -> None:
    fake = FakeNode()
    batch_id, commit_block = _commit(spotcheck, node, fake, _honest_leaves())
    db = tmp_path / "c.sqlite"
    ch, port = _service(db, spotcheck, challenger, fake, die_after_send=True)
    with pytest.raises(Killed):
        for _ in range(3):
            run(ch, chain, ticks=1)
    mine = _in_pool_sample(chain, commit_block, SECRET, batch_id)
    assert mine, "the VRF sampled none of 16 leaves at 50% (odds 2 ** -16)"
    assert port.sends == [[(batch_id, i) for i in mine]]
    assert {i: s for i, s in _leaf_claims(ch).items() if i in mine} == dict.fromkeys(
        mine, ClaimState.SENDING
    )  # journaled before sending
    ch.close()

    again, port2 = _service(db, spotcheck, challenger, fake)  # the restarted process
    run(again, chain, ticks=3)
    assert port2.sends == []  # adopted from claimOf, never sent again
    assert _leaf_claims(again) == {
        i: ClaimState.OPEN if i in mine else ClaimState.UNCLAIMABLE for i in range(COUNT)
    }
    assert int(pool.getBatchDeposit(batch_id).claimedLeaves) == len(mine)
    claimed = list(pool.LeafCheckClaimed.range(0, chain.blocks.height + 1))
    assert sorted(int(e.index) for e in claimed) == mine  # each leaf claimed once
    assert pool.freeBond(challenger) == BOND - len(mine) * COLLATERAL


def test_restartBetweenCollectAndReceipt_collectsOnce_andStillCountsThePayout(
    spotcheck: Any, pool: Any, node: Any, challenger: Any, chain: Any, tmp_path: Path
) -> None:
    fake = FakeNode()
    batch_id, commit_block = _commit(spotcheck, node, fake, _honest_leaves())
    db = tmp_path / "c.sqlite"
    ch, _ = _service(db, spotcheck, challenger, fake)
    run(ch, chain)
    mine = _in_pool_sample(chain, commit_block, SECRET, batch_id)
    assert mine, "the VRF sampled none of 16 leaves at 50% (odds 2 ** -16)"
    ch.close()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    before = spotcheck.token.balanceOf(challenger)
    dying, port = _service(db, spotcheck, challenger, fake, die_after_collect=True)
    with pytest.raises(Killed):
        dying.tick()
    assert port.collects == [(batch_id, mine[0])]  # paid on chain, receipt never recorded
    dying.close()

    again, port2 = _service(db, spotcheck, challenger, fake)  # the restarted process
    run(again, chain, ticks=2)
    assert (batch_id, mine[0]) not in port2.collects  # never collected twice
    assert spotcheck.token.balanceOf(challenger) == before + len(mine) * LEAF_FEE
    assert _leaf_claims(again) == {
        i: ClaimState.COLLECTED if i in mine else ClaimState.UNCLAIMABLE for i in range(COUNT)
    }
    summary = status_of(again.store)["claims"]
    assert summary["paid"] == len(mine)
    assert summary["payouts"] == len(mine) * LEAF_FEE  # what the chain paid, all of it


CHEAT = 5  # the position of the cheating leaf


def _cheat_batch(
    spotcheck: Any, pool: Any, node: Any, deployer: Any, challenger: Any, second: Any,
    chain: Any, tmp_path: Path,
) -> tuple[int, Challenger, Challenger, CountingChain]:  # fmt: skip
    """The pool samples every leaf here, so both challengers may claim all of them. Leaf
    CHEAT's output is tau + 1 off. The lazy challenger (``second``, Echo) claims every leaf;
    the diligent one (``challenger``) runs after it. Returns (batchId, lazy, diligent, the
    diligent's chain)."""
    cp.set_model_terms(pool, spotcheck.model_id, 1_000, 10_000, sender=deployer)
    leaves = _honest_leaves()
    job_id, x, _ = leaves[CHEAT]
    leaves[CHEAT] = (job_id, x, [circuit(x)[0] + TAU + 1, circuit(x)[1]])
    fake = FakeNode()
    batch_id, _ = _commit(spotcheck, node, fake, leaves)
    lazy, _ = _service(tmp_path / "lazy.sqlite", spotcheck, second, fake, SECRET_B, Echo(leaves))
    diligent, port = _service(tmp_path / "d.sqlite", spotcheck, challenger, fake)
    run(lazy, chain)  # the lazy claims land first: a leaf under dispute is not claimable
    run(diligent, chain)
    return batch_id, lazy, diligent, port


def test_cheatingLeaf_disputedNotClaimedByTheDiligent_lazyClaimOnItRecordedForfeited(
    spotcheck: Any, pool: Any, node: Any, challenger: Any, second: Any, deployer: Any,
    chain: Any, tmp_path: Path,
) -> None:  # fmt: skip
    """The diligent challenger disputes the cheat and never claims it; the node never proves:
    the leaf ends invalid and the lazy claim on it is recorded forfeited. Both are paid their
    share of every valid leaf."""
    cheat = CHEAT
    batch_id, lazy, diligent, port = _cheat_batch(
        spotcheck, pool, node, deployer, challenger, second, chain, tmp_path
    )
    honest = [i for i in range(COUNT) if i != cheat]
    key = batch_leaf_key(batch_id, cheat)
    assert diligent.store.job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]
    assert spotcheck.dispute_manager.getDispute(key).status == DisputeStatus.OPEN
    assert port.sends == [[(batch_id, i) for i in honest]]  # never the cheat
    assert _leaf_claims(diligent) == dict.fromkeys(honest, ClaimState.OPEN)
    assert _status(pool, batch_id, cheat, challenger) is ClaimStatus.NONE
    assert _leaf_claims(lazy) == dict.fromkeys(range(COUNT), ClaimState.OPEN)
    assert _status(pool, batch_id, cheat, second) is ClaimStatus.OPEN

    advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
    run(diligent, chain, ticks=1)  # settles its undefended dispute: the leaf is invalid
    assert diligent.store.job(key).state is JobState.WON  # type: ignore[union-attr]
    assert spotcheck.job_manager.batchLeafInvalid(key)
    report = lazy.tick()
    assert report.claims_forfeited == 1
    assert _leaf_claims(lazy)[cheat] is ClaimState.FORFEITED
    summary = status_of(lazy.store)["claims"]
    assert summary["forfeited"] == 1 and summary["forfeits"] == COLLATERAL

    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    for ch, who in ((diligent, challenger), (lazy, second)):
        before = spotcheck.token.balanceOf(who)
        report = ch.tick()
        assert report.claims_paid == len(honest)
        assert report.payouts == len(honest) * (LEAF_FEE // 2)  # two claimants on each
        assert spotcheck.token.balanceOf(who) == before + len(honest) * (LEAF_FEE // 2)
    assert _leaf_claims(lazy) == {
        i: ClaimState.FORFEITED if i == cheat else ClaimState.COLLECTED for i in range(COUNT)
    }
    assert status_of(diligent.store)["claims"]["forfeited"] == 0


def test_forfeitedLeafClaim_isSettledOnChain_soTheBondCanLeave(
    spotcheck: Any, pool: Any, node: Any, challenger: Any, second: Any, deployer: Any,
    chain: Any, tmp_path: Path,
) -> None:  # fmt: skip
    """Once the lazy service has recorded its claim on the invalid leaf forfeited and collected
    the others, no claim of it is left open on chain: its exit is not blocked by a claim whose
    loss it has already booked."""
    batch_id, lazy, diligent, _ = _cheat_batch(
        spotcheck, pool, node, deployer, challenger, second, chain, tmp_path
    )
    advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
    run(diligent, chain, ticks=1)  # settles the undefended dispute: the leaf is invalid
    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    run(lazy, chain, ticks=3)
    assert _leaf_claims(lazy)[CHEAT] is ClaimState.FORFEITED
    assert set(_leaf_claims(lazy).values()) == {ClaimState.COLLECTED, ClaimState.FORFEITED}
    assert _status(pool, batch_id, CHEAT, second) is ClaimStatus.FORFEITED
    assert int(pool.getChallenger(second).openClaims) == 0
    assert int(pool.getChallenger(second).bond) == BOND - COLLATERAL  # burned, as booked
