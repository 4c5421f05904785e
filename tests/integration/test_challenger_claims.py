"""Paid checks through the challenger service on anvil (issue 15).

- a diligent challenger (registered, samples every job at the pool's rate, finds them
  correct) claims them in one ``claimBatch``, and collects each reward once the jobs are
  final; its status and metrics say so;
- a restart between sending the claims and recording the receipt never claims twice: the
  claims are journaled ``sending`` before the transaction, adopted from ``claimOf`` after;
- a claim journaled ``sending`` whose transaction never went out is sent again only after
  the resend grace, and then once;
- a claim on a job that ends invalid is recorded ``forfeited`` (the lazy challenger's loss).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from challenger.chain_io import ApeChain
from challenger.claims import Claimer, ClaimOptions
from challenger.metrics import Metrics
from challenger.runner import status_of
from challenger.service import Challenger
from challenger.store import ClaimState
from spotcheck import vrf
from spotcheck.chain import TOKEN, ClaimStatus, TxResult
from spotcheck.encoding import onchain_job_key
from tests.fixtures.chain import FUNDING, JOB_FEE, MOCK_MODEL, TEST_PARAMS, advance
from tests.integration.test_challenger_chain import (
    SECRET,
    FakeNode,
    circuit,
    inputs,
    make_challenger,
    run,
)

pytestmark = pytest.mark.chain
SHARE_BPS = 1_000
REWARD = JOB_FEE * SHARE_BPS // 10_000


class Killed(BaseException):
    """The process dies right after the claim transaction was sent (before its receipt)."""


class CountingChain(ApeChain):
    """The real chain; counts claimBatch calls and can die after sending one."""

    sends: list[list[int]]
    die_after_send: bool = False

    def pool_claim_batch(self, claims: Sequence[tuple[int, vrf.G1Point]]) -> TxResult:
        self.sends.append([job_id for job_id, _ in claims])
        tx = super().pool_claim_batch(claims)
        if self.die_after_send:
            raise Killed
        return tx


@pytest.fixture
def pool(spotcheck: Any, deployer: Any, challenger: Any) -> Any:
    """The CheckPool paying SHARE_BPS of each fee, sampling every job; the challenger account
    funded, its VRF key (SECRET) registered with the minimum bond."""
    p = spotcheck.contracts.check_pool
    p.setModelTerms(spotcheck.model_id, SHARE_BPS, 10_000, sender=deployer)
    spotcheck.token.mint(challenger, FUNDING, sender=deployer)
    ApeChain.from_contracts(spotcheck.contracts, challenger).pool_register_key(
        SECRET, TEST_PARAMS.check_min_bond
    )
    return p


def _challenger(
    db: Path, spotcheck: Any, account: Any, *, die_after_send: bool = False, **claim_opts: Any
) -> tuple[Challenger, CountingChain]:
    ch = make_challenger(db, spotcheck, account, FakeNode(), rate=1.0)
    port = CountingChain.from_contracts(spotcheck.contracts, account)
    assert isinstance(port, CountingChain)
    port.sends = []
    port.die_after_send = die_after_send
    ch.chain = port
    ch.claimer = Claimer(ch.store, port, ClaimOptions(max_wait_s=0, **claim_opts))
    return ch, port


def _honest_jobs(make_job: Callable[..., int], n: int) -> list[int]:
    return [make_job(input=inputs(k), output=circuit(inputs(k))) for k in range(n)]


def _claims(ch: Challenger) -> dict[int, ClaimState]:
    assert ch.claimer is not None
    return {c.job_id: c.state for c in ch.claimer.claims.claims(*ClaimState)}


def test_diligentChallenger_claimsInOneBatch_andIsPaidOnceFinal(
    spotcheck: Any, pool: Any, challenger: Any, outsider: Any, make_job: Callable[..., int],
    chain: Any, tmp_path: Path,
) -> None:  # fmt: skip
    jobs = _honest_jobs(make_job, 3)
    ch, port = _challenger(tmp_path / "c.sqlite", spotcheck, challenger)
    run(ch, chain)
    assert port.sends == [jobs]  # one claimBatch with the three jobs
    assert _claims(ch) == dict.fromkeys(jobs, ClaimState.OPEN)
    for j in jobs:
        assert ClaimStatus(int(pool.claimOf(onchain_job_key(j), challenger))) is ClaimStatus.OPEN
    collateral = TEST_PARAMS.check_claim_collateral
    assert pool.freeBond(challenger) == TEST_PARAMS.check_min_bond - 3 * collateral

    run(ch, chain)  # not final yet: nothing collected, nothing sent again
    assert port.sends == [jobs] and set(_claims(ch).values()) == {ClaimState.OPEN}

    advance(chain, MOCK_MODEL.challenge_window + 1)
    for j in jobs:
        spotcheck.job_manager.finalize(j, sender=outsider)
    before = spotcheck.token.balanceOf(challenger)
    report = ch.tick()
    assert report.claims_paid == 3 and report.payouts == 3 * REWARD
    assert spotcheck.token.balanceOf(challenger) == before + 3 * REWARD
    assert pool.freeBond(challenger) == TEST_PARAMS.check_min_bond
    assert _claims(ch) == dict.fromkeys(jobs, ClaimState.COLLECTED)

    summary = status_of(ch.store)["claims"]
    assert summary["sent"] == 3 and summary["paid"] == 3 and summary["payouts"] == 3 * REWARD
    assert summary["forfeited"] == 0 and summary["pending"] == 0
    metrics = Metrics()
    metrics.update_from_store(ch.store)
    text = metrics.render().decode()
    assert "spotcheck_challenger_claims_paid 3.0" in text
    assert f"spotcheck_challenger_claims_payouts {float(3 * REWARD)}" in text


def test_restartBetweenSendAndReceipt_neverClaimsTwice(
    spotcheck: Any, pool: Any, challenger: Any, make_job: Callable[..., int], chain: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    jobs = _honest_jobs(make_job, 2)
    db = tmp_path / "c.sqlite"
    ch, port = _challenger(db, spotcheck, challenger, die_after_send=True)
    chain.mine(1)
    with pytest.raises(Killed):
        ch.tick()
    assert port.sends == [jobs]
    assert _claims(ch) == dict.fromkeys(jobs, ClaimState.SENDING)  # journaled before sending
    ch.close()

    again, port2 = _challenger(db, spotcheck, challenger)  # the restarted process
    run(again, chain, ticks=3)
    assert port2.sends == []  # adopted from claimOf, never sent again
    assert _claims(again) == dict.fromkeys(jobs, ClaimState.OPEN)
    for j in jobs:
        checks = pool.getJobChecks(onchain_job_key(j))
        assert int(checks.claimCount) == 1


def test_journaledClaimNeverSent_isSentOnceAfterTheResendGrace(
    spotcheck: Any, pool: Any, challenger: Any, make_job: Callable[..., int], chain: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Killed after journaling ``sending`` but before the transaction left: nothing on chain.
    The claim waits ``resend_after_blocks`` (a transaction may still be in a mempool), then
    goes out once."""
    [job] = _honest_jobs(make_job, 1)
    db = tmp_path / "c.sqlite"
    ch, _ = _challenger(db, spotcheck, challenger, resend_after_blocks=5)
    ch.claimer = None  # sample and check only
    run(ch, chain)
    claimer = Claimer(ch.store, ch.chain, ClaimOptions(max_wait_s=0))  # type: ignore[arg-type]
    claimer.plan(claimer.claims.unplanned(), chain.blocks.head.timestamp, _report())
    row = claimer.claims.claim(onchain_job_key(job))
    assert row is not None and row.state is ClaimState.PLANNED
    claimer.claims.transition(row.job_key, ClaimState.SENDING, sent_block=chain.blocks.height)
    ch.close()

    again, port = _challenger(db, spotcheck, challenger, resend_after_blocks=5)
    again.tick()
    assert port.sends == [] and _claims(again) == {job: ClaimState.SENDING}
    chain.mine(5)
    again.tick()  # grace over: planned again, and sent
    again.tick()
    assert port.sends == [[job]]
    assert _claims(again) == {job: ClaimState.OPEN}


def _report() -> Any:
    from challenger.claims import ClaimReport

    return ClaimReport()


def test_claimOnAJobThatEndsInvalid_isRecordedForfeited(
    spotcheck: Any, pool: Any, challenger: Any, accounts: Any, deployer: Any,
    make_job: Callable[..., int], chain: Any, tmp_path: Path,
) -> None:  # fmt: skip
    """A lazy (or wrong) challenger claims a cheat as correct; an honest one disputes it and
    the node never proves: the job ends invalid and the claim is forfeited."""
    x = inputs(3)
    cheat = make_job(input=x, output=[v + 1000 for v in circuit(x)])

    class Agreeable:  # re-executes to whatever the node said: a checker that is wrong
        input_len, output_len = 4, 2

        def screen_output(self, input_q: Sequence[int]) -> list[int]:
            return [v + 1000 for v in circuit(input_q)]

        def witness_output(self, input_q: Sequence[int]) -> list[int]:
            return [v + 1000 for v in circuit(input_q)]

    ch, _ = _challenger(tmp_path / "c.sqlite", spotcheck, challenger)
    ch.reexecutor_for = lambda _m: Agreeable()
    run(ch, chain)
    assert _claims(ch) == {cheat: ClaimState.OPEN}

    honest = accounts[8]
    spotcheck.token.mint(honest, FUNDING, sender=deployer)
    dm = spotcheck.dispute_manager
    spotcheck.token.approve(dm, 2**256 - 1, sender=honest)
    out_hash = spotcheck.job_manager.getJob(cheat).outputHash
    dm.openDispute(cheat, out_hash, sender=honest)
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(onchain_job_key(cheat), sender=honest)
    report = ch.tick()
    assert report.claims_forfeited == 1
    assert _claims(ch) == {cheat: ClaimState.FORFEITED}
    summary = status_of(ch.store)["claims"]
    assert summary["forfeited"] == 1
    assert summary["forfeits"] == TEST_PARAMS.check_claim_collateral
    assert TOKEN > 0  # amounts in base units throughout


def test_registerCommand_registersTheKeyFileWithItsPop_andRefusesTwice(
    spotcheck: Any, deployer: Any, accounts: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import click

    from challenger.cli import _register_impl
    from challenger.sampling import load_or_create_secret

    who = accounts[9]
    spotcheck.token.mint(who, FUNDING, sender=deployer)
    deployment = Path(spotcheck.deployment.save(tmp_path / "deployment.json"))
    state = tmp_path / "state"
    bond = TEST_PARAMS.check_min_bond
    _register_impl(who, deployment, None, state, bond, True)  # dry run: nothing sent
    pool = spotcheck.contracts.check_pool
    assert not pool.getChallenger(who).registered
    _register_impl(who, deployment, None, state, bond, False)
    assert f"registered {who.address}" in capsys.readouterr().out
    c = pool.getChallenger(who)
    assert c.registered and int(c.bond) == bond
    sk = int.from_bytes(load_or_create_secret(state / "vrf.key"), "big")
    assert [int(w) for w in c.publicKey] == list(vrf.public_key(sk).words())
    with pytest.raises(click.ClickException, match="registered already"):
        _register_impl(who, deployment, None, state, bond, False)
    with pytest.raises(click.ClickException, match="below the CheckPool minimum"):
        _register_impl(accounts[5], deployment, None, tmp_path / "s2", bond - 1, False)
