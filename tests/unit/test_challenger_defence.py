"""The defence state machine (``challenger.defence``, audit A4-1) against an in-memory
DisputeManager and a controllable proof worker: which disputes are defended, when (the node
first), exactly once across restarts, and how each ending is recorded. The same machine on
anvil with a real ezkl proof: ``tests/integration/test_challenger_defence.py``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from challenger.chain_io import DisputeView
from challenger.defence import (
    ACTIVE,
    DefenceOptions,
    DefenceState,
    DefenceStore,
    Defender,
    DefendMode,
)
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options
from challenger.store import ClaimState, ClaimStore, JobState, Store
from spotcheck.chain import DisputeStatus, TxResult
from spotcheck.encoding import onchain_job_key, output_hash
from spotcheck.errors import ChainError, RevertError
from spotcheck.follower import ChainEvent, open_db
from verifier.prove import ProofBundle

MODEL = b"\x42" * 32
ME = "0x" + "cc" * 20
NODE = "0x" + "aa" * 20
SYBIL = "0x" + "bb" * 20
INPUT = [1, 2]
COMMITTED = [3]
OPENED_AT = 1000
WINDOW = 600
DEADLINE = OPENED_AT + WINDOW
RESERVE = 100


@dataclass
class FakeDisputes:
    """DisputeManager reads and ``defend`` as the defender sees them."""

    me: str = ME
    now: int = OPENED_AT
    height: int = 100
    disputes: dict[bytes, DisputeView] = field(default_factory=dict)
    sends: list[tuple[bytes, bytes, list[int], list[int]]] = field(default_factory=list)
    fail_with: BaseException | None = None
    #: the transaction lands, then the process dies before it sees the receipt
    die_after_send: bool = False

    def head(self) -> int:
        return self.height

    def timestamp(self) -> int:
        return self.now

    def dispute(self, dispute_id: bytes) -> DisputeView:
        return self.disputes.get(
            dispute_id, DisputeView(DisputeStatus.NONE, "0x" + "00" * 20, 0, 0)
        )

    def open(self, dispute_id: bytes) -> None:
        self.disputes[dispute_id] = DisputeView(DisputeStatus.OPEN, SYBIL, 10, DEADLINE)

    def close(self, dispute_id: bytes, status: DisputeStatus) -> None:
        self.disputes[dispute_id] = DisputeView(status, SYBIL, 10, DEADLINE)

    def defend(
        self, dispute_id: bytes, proof: bytes, instances: Sequence[int], committed: Sequence[int]
    ) -> TxResult:
        self.sends.append((dispute_id, proof, list(instances), list(committed)))
        if self.fail_with is not None:
            raise self.fail_with
        assert self.dispute(dispute_id).status is DisputeStatus.OPEN, "defended twice"
        assert self.now <= DEADLINE, "defended after the deadline"
        self.close(dispute_id, DisputeStatus.DEFENDED)
        if self.die_after_send:
            raise Killed
        return TxResult("0x" + "dd" * 32, self.height)


class Killed(BaseException):
    """The process dies right after its defend transaction was sent."""


@dataclass
class FakeWorker:
    """Proofs the test finishes (``finish``) or that finish at once (``instant``)."""

    instant: bool = True
    submitted: list[tuple[bytes, list[int]]] = field(default_factory=list)
    futures: list[Future[ProofBundle]] = field(default_factory=list)

    def submit(self, model_id: bytes, input_q: Sequence[int]) -> Future[ProofBundle]:
        self.submitted.append((model_id, list(input_q)))
        f: Future[ProofBundle] = Future()
        self.futures.append(f)
        if self.instant:
            f.set_result(bundle())
        return f

    def finish(self) -> None:
        self.futures[-1].set_result(bundle())

    def close(self) -> None:
        pass


def bundle() -> ProofBundle:
    return ProofBundle(proof=b"\x99" * 8, instances=[1, 2, 3], output_q=COMMITTED)


def _job(store: Store, job_id: int, state: JobState = JobState.MATCHED) -> bytes:
    key = onchain_job_key(job_id)
    Store.record_request(store.conn, job_id, MODEL, INPUT)
    Store.record_onchain_commit(
        store.conn, job_key=key, job_id=job_id, node=NODE, output_q=COMMITTED,
        output_hash=output_hash(COMMITTED), challenge_deadline=900, commit_block=90,
    )  # fmt: skip
    if state is JobState.SEEN:
        return key
    store.transition(key, JobState.SAMPLED, vrf_proof="0x1,0x2")
    if state is JobState.MATCHED:
        store.transition(key, JobState.MATCHED, witness_diff=0)
    elif state is JobState.MISMATCHED:
        store.transition(key, JobState.MISMATCHED, witness_diff=50)
    return key


def _claim(store: Store, key: bytes, state: ClaimState = ClaimState.PLANNED) -> None:
    job = store.job(key)
    assert job is not None
    ClaimStore(store).plan(job, state, 0, None)


def _dispute(store: Store, chain: FakeDisputes, key: bytes) -> None:
    """Someone else's dispute, recorded as the log follower does."""
    chain.open(key)
    DefenceStore.opened(
        store.conn, dispute_id=key, node=NODE, disputer=SYBIL, proof_deadline=DEADLINE, block=95
    )


def _defender(
    db: Path,
    chain: FakeDisputes,
    worker: FakeWorker | None = None,
    mode: DefendMode = DefendMode.CLAIMED,
    clock: Callable[[], float] = time.monotonic,
) -> Defender:
    store = Store(open_db(db))
    return Defender(
        store,
        chain,
        worker or FakeWorker(),
        DefenceOptions(mode=mode, reserve_s=RESERVE, resend_after_blocks=3),
        clock=clock,
    )


def _state(d: Defender, key: bytes) -> DefenceState:
    row = d.defences.row(key)
    assert row is not None
    return row.state


def test_claimedCorrectJob_nodeSilent_defendedOnceAfterTheGrace(tmp_path: Path) -> None:
    chain, worker = FakeDisputes(), FakeWorker()
    d = _defender(tmp_path / "c.sqlite", chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key)
    _dispute(d.store, chain, key)

    d.step()  # decided: ours; the node gets first go until DEADLINE - RESERVE
    assert _state(d, key) is DefenceState.WAITING and worker.submitted == []
    chain.now = DEADLINE - RESERVE - 1
    d.step()
    assert worker.submitted == [] and chain.sends == []

    chain.now = DEADLINE - RESERVE
    report = d.step()  # proof starts (and, instant here, is sent in the same step)
    assert worker.submitted == [(MODEL, INPUT)]
    assert chain.sends == [(key, b"\x99" * 8, [1, 2, 3], COMMITTED)]  # the committed output
    assert report.sent == 1 and report.won == 1
    assert _state(d, key) is DefenceState.WON

    chain.now += 10
    d.step()  # nothing more to do, nothing sent again
    assert len(chain.sends) == 1
    summary = d.defences.summary()
    assert summary["sent"] == 1 and summary["won"] == 1 and summary["pending"] == 0


def test_shortWindow_proofStartsAtOnce(tmp_path: Path) -> None:
    chain, worker = FakeDisputes(now=DEADLINE - RESERVE // 2), FakeWorker()
    d = _defender(tmp_path / "c.sqlite", chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key)
    _dispute(d.store, chain, key)
    d.step()
    assert worker.submitted and _state(d, key) is DefenceState.WON


def test_nodeDefendsFirst_weNeitherProveNorSend(tmp_path: Path) -> None:
    chain, worker = FakeDisputes(), FakeWorker()
    d = _defender(tmp_path / "c.sqlite", chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    d.step()
    chain.close(key, DisputeStatus.DEFENDED)
    DefenceStore.defended(d.store.conn, key, NODE)
    chain.now = DEADLINE - 1
    report = d.step()
    assert report.node_defended == 1
    assert worker.submitted == [] and chain.sends == []
    assert _state(d, key) is DefenceState.NODE_DEFENDED


def test_nodeDefendsWhileWeProve_theProofIsDropped(tmp_path: Path) -> None:
    chain, worker = FakeDisputes(now=DEADLINE - RESERVE), FakeWorker(instant=False)
    d = _defender(tmp_path / "c.sqlite", chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is DefenceState.PROVING
    chain.close(key, DisputeStatus.DEFENDED)
    worker.finish()
    d.step()
    assert chain.sends == [] and _state(d, key) is DefenceState.NODE_DEFENDED


@pytest.mark.parametrize(
    ("mode", "claim", "expected"),
    [
        (DefendMode.CLAIMED, None, DefenceState.NOT_OURS),
        (DefendMode.CLAIMED, ClaimState.UNCLAIMABLE, DefenceState.NOT_OURS),
        (DefendMode.CLAIMED, ClaimState.OPEN, DefenceState.WAITING),
        (DefendMode.CLAIMED, ClaimState.MISSED, DefenceState.WAITING),  # was about to claim
        (DefendMode.CHECKED, None, DefenceState.WAITING),
        (DefendMode.CHECKED, ClaimState.UNCLAIMABLE, DefenceState.WAITING),
    ],
)
def test_whichCorrectJobsAreOurs_byMode(
    tmp_path: Path, mode: DefendMode, claim: ClaimState | None, expected: DefenceState
) -> None:
    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain, mode=mode)
    key = _job(d.store, 1)
    if claim is not None:
        _claim(d.store, key, claim)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is expected


@pytest.mark.parametrize("mode", [DefendMode.CLAIMED, DefendMode.CHECKED])
def test_aJobWeFoundWrong_isNeverDefended(tmp_path: Path, mode: DefendMode) -> None:
    chain, worker = FakeDisputes(now=DEADLINE - 1), FakeWorker()
    d = _defender(tmp_path / "c.sqlite", chain, worker, mode=mode)
    key = _job(d.store, 1, JobState.MISMATCHED)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is DefenceState.NOT_OURS and worker.submitted == []


def test_screenOnlyMatch_isNotOurs(tmp_path: Path) -> None:
    """A match by the onnxruntime screen alone (no witness) can be outside tau of the circuit."""
    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain, mode=DefendMode.CHECKED)
    key = _job(d.store, 1, JobState.SAMPLED)
    d.store.transition(key, JobState.MATCHED, screen_diff=0)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is DefenceState.NOT_OURS


def test_disputeBeforeOurCheck_waitsForTheVerdict(tmp_path: Path) -> None:
    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain, mode=DefendMode.CHECKED)
    key = _job(d.store, 1, JobState.SAMPLED)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is DefenceState.WATCHING
    d.store.transition(key, JobState.MATCHED, witness_diff=1)
    d.step()
    assert _state(d, key) is DefenceState.WAITING


def test_unknownOrSkippedJob_isNotRecorded(tmp_path: Path) -> None:
    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain)
    key = _job(d.store, 1, JobState.SEEN)
    d.store.transition(key, JobState.SKIPPED)
    assert not DefenceStore.opened(
        d.store.conn, dispute_id=key, node=NODE, disputer=SYBIL, proof_deadline=DEADLINE, block=1
    )
    assert not DefenceStore.opened(
        d.store.conn, dispute_id=b"\x01" * 32, node=NODE, disputer=SYBIL, proof_deadline=1, block=1
    )
    assert d.defences.rows(*DefenceState) == []


def test_restartWhileProving_provesAgain_sendsOnce(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain, worker = FakeDisputes(now=DEADLINE - RESERVE), FakeWorker(instant=False)
    d = _defender(db, chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is DefenceState.PROVING and len(worker.submitted) == 1
    d.store.conn.close()  # killed mid-proof: the proof is lost with the process

    worker2 = FakeWorker()
    again = _defender(db, chain, worker2)
    again.step()  # the journaled proof is started again (and sent)
    again.step()
    assert len(worker2.submitted) == 1 and len(chain.sends) == 1
    row = again.defences.row(key)
    assert row is not None and row.state is DefenceState.WON and row.attempts == 2


def test_restartAfterTheDefenceLanded_neverSendsAgain(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeDisputes(now=DEADLINE - RESERVE, die_after_send=True)
    d = _defender(db, chain)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    with pytest.raises(Killed):
        d.step()
    assert _state(d, key) is DefenceState.SENDING  # journaled before the transaction
    d.store.conn.close()

    chain.die_after_send = False
    again = _defender(db, chain)
    again.step()  # defended on chain, whose defence not known yet: waits for the event
    assert _state(again, key) is DefenceState.SENDING
    DefenceStore.defended(again.store.conn, key, ME.upper().replace("0X", "0x"))
    again.step()
    assert _state(again, key) is DefenceState.WON and len(chain.sends) == 1


def test_sendJournaledButLost_isResentOnceAfterTheGrace(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeDisputes(now=DEADLINE - RESERVE)
    d = _defender(db, chain)
    key = _job(d.store, 1)
    _claim(d.store, key)
    _dispute(d.store, chain, key)
    chain.fail_with = Killed()
    with pytest.raises(Killed):  # killed before the transaction left
        d.step()
    chain.sends.clear()
    chain.fail_with = None
    d.store.conn.close()

    again = _defender(db, chain)
    again.step()
    assert chain.sends == [] and _state(again, key) is DefenceState.SENDING
    chain.height += 3
    again.step()  # grace over: sent again, once
    again.step()
    assert len(chain.sends) == 1 and _state(again, key) is DefenceState.WON


def test_proofTooSlow_deadlinePasses_tooLate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain, worker = FakeDisputes(now=DEADLINE - RESERVE), FakeWorker(instant=False)
    d = _defender(tmp_path / "c.sqlite", chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    d.step()
    chain.now = DEADLINE + 1
    with caplog.at_level(logging.ERROR):
        report = d.step()
    assert report.too_late == 1 and chain.sends == []
    assert _state(d, key) is DefenceState.TOO_LATE
    assert "DEFENCE TOO LATE" in caplog.text
    assert d.defences.summary()["too_late"] == 1


def test_disputeSettledBeforeWeActed_tooLate(tmp_path: Path) -> None:
    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    d.step()
    chain.close(key, DisputeStatus.SLASHED)
    d.step()
    assert _state(d, key) is DefenceState.TOO_LATE


def test_unjudgedJobWhenTheDisputeCloses_isNotOurs(tmp_path: Path) -> None:
    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain)
    key = _job(d.store, 1, JobState.SAMPLED)
    _dispute(d.store, chain, key)
    d.step()
    chain.now = DEADLINE + 1
    d.step()
    assert _state(d, key) is DefenceState.NOT_OURS
    assert d.defences.summary()["too_late"] == 0


def test_defenceRefused_isLost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    chain = FakeDisputes(now=DEADLINE - RESERVE)
    chain.fail_with = RevertError("defend failed: ProofRejected(...)", error="ProofRejected")
    d = _defender(tmp_path / "c.sqlite", chain)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    with caplog.at_level(logging.ERROR):
        report = d.step()
    assert report.lost == 1 and _state(d, key) is DefenceState.LOST
    assert "OUR DEFENCE WAS REFUSED" in caplog.text
    d.step()
    assert len(chain.sends) == 1  # never retried


def test_rpcFailureOnSend_retriedNextTick(tmp_path: Path) -> None:
    chain = FakeDisputes(now=DEADLINE - RESERVE)
    chain.fail_with = ChainError("connection refused")
    d = _defender(tmp_path / "c.sqlite", chain)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    d.step()
    assert _state(d, key) is DefenceState.PROVEN
    chain.fail_with = None
    d.step()
    assert _state(d, key) is DefenceState.WON and len(chain.sends) == 2


def test_failedProof_isTriedAgain_afterABackoffThatDoubles(tmp_path: Path) -> None:
    chain, worker = FakeDisputes(now=DEADLINE - RESERVE), FakeWorker(instant=False)
    t = [1000.0]
    d = _defender(tmp_path / "c.sqlite", chain, worker, clock=lambda: t[0])
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    d.step()
    worker.futures[-1].set_exception(RuntimeError("ezkl crashed"))
    d.step()  # the failure is seen: backing off (2 s), not proving again every tick
    d.step()
    assert len(worker.submitted) == 1
    t[0] += 2.5
    d.step()
    assert len(worker.submitted) == 2
    worker.futures[-1].set_exception(RuntimeError("ezkl crashed again"))
    d.step()  # second failure: 4 s
    t[0] += 2.5
    d.step()
    assert len(worker.submitted) == 2
    t[0] += 2.0
    d.step()
    assert len(worker.submitted) == 3
    worker.finish()
    d.step()
    assert _state(d, key) is DefenceState.WON


def test_neverMode_buildsNoDefender(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never"):
        _defender(tmp_path / "c.sqlite", FakeDisputes(), mode=DefendMode.NEVER)


# -- the service records what the defender works on -------------------------------------------


def _event(name: str, key: bytes, **args: object) -> ChainEvent:
    return ChainEvent(
        name, "0xdm", 95, 0, "0x" + "ab" * 32, {"disputeId": "0x" + key.hex(), **args}
    )


def _service(db: Path, defender: bool) -> Challenger:
    from tests.unit.test_challenger_service import FakeChain, FakeReexec

    store = Store(open_db(db))
    return Challenger(
        store=store,
        chain=FakeChain(),  # type: ignore[arg-type]
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(),
        defender=Defender(store, FakeDisputes(), FakeWorker(), DefenceOptions())
        if defender
        else None,
    )


def test_service_recordsForeignDisputesOnKnownJobs_andWhoDefended(tmp_path: Path) -> None:
    ch = _service(tmp_path / "c.sqlite", defender=True)
    assert ch.defender is not None
    foreign, ours = _job(ch.store, 1), _job(ch.store, 2)
    opened = {"node": NODE, "proofDeadline": DEADLINE}
    with ch.store.transaction() as conn:
        ch.handle_events(
            [
                _event("DisputeOpened", foreign, challenger=SYBIL, **opened),
                _event("DisputeOpened", ours, challenger=ch.chain.me, **opened),
            ],
            conn,
        )
    row = ch.defender.defences.row(foreign)
    assert row is not None and row.state is DefenceState.WATCHING
    assert row.disputer == SYBIL and row.proof_deadline == DEADLINE
    assert ch.defender.defences.row(ours) is None  # our own dispute: resolve() follows it
    with ch.store.transaction() as conn:
        ch.handle_events([_event("DisputeDefended", foreign, defender=NODE, node=NODE)], conn)
    row = ch.defender.defences.row(foreign)
    assert row is not None and row.defended_by == NODE


def test_service_withoutDefender_recordsNothing(tmp_path: Path) -> None:
    ch = _service(tmp_path / "c.sqlite", defender=False)
    key = _job(ch.store, 1)
    with ch.store.transaction() as conn:
        ch.handle_events(
            [_event("DisputeOpened", key, challenger=SYBIL, node=NODE, proofDeadline=DEADLINE)],
            conn,
        )
    have = ch.store.conn.execute(
        "SELECT name FROM sqlite_master WHERE name = 'ch_defences'"
    ).fetchall()
    assert have == []


def test_service_reorg_forgetsUndecidedDefences(tmp_path: Path) -> None:
    ch = _service(tmp_path / "c.sqlite", defender=True)
    assert ch.defender is not None
    key = _job(ch.store, 1)
    with ch.store.transaction() as conn:
        ch.handle_events(
            [_event("DisputeOpened", key, challenger=SYBIL, node=NODE, proofDeadline=DEADLINE)],
            conn,
        )
        ch.rollback(conn, 94)  # the dispute's block (95) was replaced
    assert ch.defender.defences.row(key) is None


# -- property: any interleaving of time, node, proofs and restarts -----------------------------

ACTIONS = st.sampled_from(
    ["tick", "tick", "time", "node_defends", "finish", "fail", "restart", "die_on_send"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTIONS, max_size=40), steps=st.lists(st.integers(0, 250), max_size=40))
def test_property_anyInterleaving_atMostOneDefence_neverLate_endsInTheRightState(
    tmp_path_factory: pytest.TempPathFactory, actions: list[str], steps: list[int]
) -> None:
    db = tmp_path_factory.mktemp("prop") / "c.sqlite"
    chain = FakeDisputes()
    worker = FakeWorker(instant=False)
    d = _defender(db, chain, worker)
    key = _job(d.store, 1)
    _claim(d.store, key, ClaimState.OPEN)
    _dispute(d.store, chain, key)
    landed: list[str] = []  # who defended, as the DisputeDefended event says

    def tick() -> None:
        chain.height += 1
        before = chain.dispute(key).status
        with suppress(Killed):  # the process dies right after its defence landed
            d.step()
        if before is DisputeStatus.OPEN and chain.dispute(key).status is DisputeStatus.DEFENDED:
            landed.append(ME)
            DefenceStore.defended(d.store.conn, key, ME)  # the follower records the event

    for i, action in enumerate(actions):
        pending = [f for f in worker.futures if not f.done()]
        if action == "tick":
            tick()
        elif action == "time":
            chain.now += steps[i] if i < len(steps) else 50
        elif action == "node_defends":
            if chain.dispute(key).status is DisputeStatus.OPEN and chain.now <= DEADLINE:
                chain.close(key, DisputeStatus.DEFENDED)
                landed.append(NODE)
                DefenceStore.defended(d.store.conn, key, NODE)
        elif action == "finish" and pending:
            pending[-1].set_result(bundle())
        elif action == "fail" and pending:
            pending[-1].set_exception(RuntimeError("ezkl failed"))
        elif action == "restart":
            d.store.conn.close()
            worker = FakeWorker(instant=False)
            d = _defender(db, chain, worker)
        chain.die_after_send = action == "die_on_send"  # the next action only

    # The window ends: settle if nobody defended, and let the defender see it.
    chain.now = max(chain.now, DEADLINE + 1)
    if chain.dispute(key).status is DisputeStatus.OPEN:
        chain.close(key, DisputeStatus.SLASHED)
    for _ in range(2):
        tick()
    assert len(chain.sends) <= 1  # never a second defence (the fake also refuses one)
    assert len(landed) <= 1
    state = _state(d, key)
    assert state not in ACTIVE
    if landed == [ME]:
        assert state is DefenceState.WON
    elif landed == [NODE]:
        assert state is DefenceState.NODE_DEFENDED
    else:
        assert state is DefenceState.TOO_LATE


def test_claimedLeaf_isDefended_inClaimedMode(tmp_path: Path) -> None:
    """A batch leaf we claimed (a leaf claim, ``ch_leaf_claims``) is ours to defend too."""
    from challenger.store import Leaf
    from spotcheck.encoding import batch_leaf_key

    chain = FakeDisputes()
    d = _defender(tmp_path / "c.sqlite", chain)
    Store.record_batch(
        d.store.conn, batch_id=4, model_id=MODEL, node=NODE, root=b"\x01" * 32, count=1,
        uri="http://n", challenge_deadline=900, commit_block=90,
    )  # fmt: skip
    batch = d.store.batch(4)
    assert batch is not None
    leaf = Leaf(0, 10, INPUT, COMMITTED, b"\x0a" * 32, b"\x0b" * 32, [])
    assert d.store.fetched_batch(batch, [(leaf, True)], {0: "0x1,0x2"})
    key = batch_leaf_key(4, 0)
    d.store.transition(key, JobState.MATCHED, witness_diff=0)
    d.store.conn.execute(
        "INSERT INTO ch_leaf_claims(leaf_key, batch_id, leaf_index, model_id, vrf_proof, "
        "challenge_deadline, commit_block, state, planned_at, updated_at) "
        "VALUES (?, '4', 0, ?, '0x1,0x2', 900, 90, ?, 0, 0)",
        (key, MODEL, ClaimState.OPEN.value),
    )
    _dispute(d.store, chain, key)
    chain.now = DEADLINE - RESERVE
    d.step()
    assert _state(d, key) is DefenceState.WON
    assert chain.sends[0][3] == COMMITTED and chain.sends[0][0] == key
