"""Audit A4-1 through the challenger service on anvil, with a real ezkl proof against the
model's real on-chain verifier (the tiny 4-8-2 MLP, dev SRS: tests only).

A registered challenger samples a job the node answered correctly, re-runs it (the circuit's
witness) and claims it as a paid check. The node's second address disputes the job and the
node stays silent, hoping the claim is forfeited at the proof deadline. The challenger waits
for the node (until ``reserve_s`` before the deadline), then proves the job in its worker
process and sends ``defend`` itself; it is killed in the middle of that proof and restarted,
resumes the proof from its journal and defends exactly once. The job ends final, the claim is
paid and the challenger's bond is whole.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from challenger.chain_io import ApeChain
from challenger.claims import Claimer, ClaimOptions
from challenger.defence import (
    DefenceOptions,
    DefenceState,
    Defender,
    DefendMode,
    ModelFiles,
    ProcessProofWorker,
)
from challenger.metrics import Metrics
from challenger.reexec import ModelReexecutor
from challenger.runner import status_of
from challenger.service import Challenger
from challenger.store import ClaimState
from spotcheck.chain import DisputeStatus, JobStatus
from spotcheck.encoding import hash_vector, onchain_job_key
from tests.fixtures.chain import FUNDING, TEST_PARAMS, advance
from tests.integration.test_challenger_chain import SECRET, FakeNode, make_challenger

pytestmark = pytest.mark.chain

SHARE_BPS = 1_000
FEE = 10**18
PROOF_WINDOW = 600
#: The challenger starts its own proof this long before the deadline (the tiny MLP proves in
#: a few seconds; docs/validators.md has the measured times).
RESERVE_S = 120


@pytest.fixture(scope="module")
def real_model(tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any) -> tuple[Any, bytes]:
    """The tiny MLP registered with its generated Halo2Verifier (the parameters of
    test_node_real_verifier.py: the same registration when both run in one session)."""
    from verifier import registry

    artifacts = tiny_mlp_artifacts
    tau = max(64, 2 ** max(artifacts.output_scale - 8, 0))
    params = registry.model_params(artifacts, tau, challenge_window=100, proof_window=PROOF_WINDOW)
    reg = registry.register_model(artifacts, params, spotcheck.contracts, deployer)
    return artifacts, bytes(reg.model_id)


@pytest.fixture
def pool(spotcheck: Any, real_model: tuple[Any, bytes], deployer: Any, challenger: Any) -> Any:
    """Every job of the real model is in the pool's sample; the challenger registered."""
    p = spotcheck.contracts.check_pool
    p.setModelTerms(real_model[1], SHARE_BPS, 10_000, sender=deployer)
    port = ApeChain.from_contracts(spotcheck.contracts, challenger)
    if not port.pool_account().registered:
        spotcheck.token.mint(challenger, FUNDING, sender=deployer)
        port.pool_register_key(SECRET, TEST_PARAMS.check_min_bond)
    return p


def _challenger(
    db: Path, spotcheck: Any, account: Any, artifacts: Any, model_id: bytes, onnx: Path
) -> Challenger:
    reexec = ModelReexecutor(artifacts)
    ch = make_challenger(db, spotcheck, account, FakeNode(), rate=1.0)
    ch.reexecutor_for = lambda m: reexec if m.model_id == model_id else None
    port = ch.chain
    assert isinstance(port, ApeChain)
    ch.claimer = Claimer(ch.store, port, ClaimOptions(max_wait_s=0))
    ch.defender = Defender(
        ch.store,
        port,
        ProcessProofWorker({model_id: ModelFiles(onnx, None, None, None)}),
        DefenceOptions(mode=DefendMode.CLAIMED, reserve_s=RESERVE_S),
    )
    return ch


def _defence_state(ch: Challenger, dispute_id: bytes) -> DefenceState | None:
    assert ch.defender is not None
    row = ch.defender.defences.row(dispute_id)
    return None if row is None else row.state


def test_nodeSybilDisputesItsOwnCorrectClaimedJob_challengerDefendsWithARealProof(
    spotcheck: Any,
    real_model: tuple[Any, bytes],
    pool: Any,
    tiny_mlp_onnx: Path,
    node: Any,
    node2: Any,
    requester: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
    tmp_path: Path,
) -> None:
    from verifier.witness import witness_output

    artifacts, model_id = real_model
    m = spotcheck.model_registry.getModel(model_id)
    rng = np.random.default_rng(11)
    input_q = [int(v) for v in rng.integers(int(m.inLo), int(m.inHi) + 1, int(m.inputLen))]
    jm = spotcheck.job_manager
    job_id = int(jm.requestJob(model_id, input_q, node, FEE, sender=requester).return_value)
    honest = witness_output(artifacts, input_q)  # the circuit's own output: provably correct
    jm.commitResult(job_id, hash_vector(input_q), honest, sender=node)
    key = onchain_job_key(job_id)

    db = tmp_path / "c.sqlite"
    ch = _challenger(db, spotcheck, challenger, artifacts, model_id, tiny_mlp_onnx)
    for _ in range(2):  # sample, re-run, claim
        chain.mine(1)
        ch.tick()
    assert ch.claimer is not None
    claim = ch.claimer.claims.claim(key)
    assert claim is not None and claim.state is ClaimState.OPEN
    bond_before = int(pool.getChallenger(challenger).bond)

    # The node's second address disputes the node's own correct job; the node stays silent.
    dm = spotcheck.dispute_manager
    dm.openDispute(job_id, bytes(jm.getJob(job_id).outputHash), sender=node2)
    deadline = int(dm.getDispute(key).proofDeadline)
    chain.mine(1)
    ch.tick()
    assert _defence_state(ch, key) is DefenceState.WAITING  # the node gets first go
    assert DisputeStatus(int(dm.getDispute(key).status)) is DisputeStatus.OPEN

    # Our proof starts RESERVE_S before the deadline; killed mid-proof.
    now = chain.pending_timestamp
    advance(chain, deadline - RESERVE_S - now)
    ch.tick()
    assert _defence_state(ch, key) is DefenceState.PROVING
    ch.close()
    ch.store.conn.close()

    again = _challenger(db, spotcheck, challenger, artifacts, model_id, tiny_mlp_onnx)
    start = time.monotonic()
    sent = []
    try:
        while _defence_state(again, key) is not DefenceState.WON:
            assert time.monotonic() - start < 300, "no defence within 300 s"
            report = again.tick()
            sent.append(report.defences_sent)
            time.sleep(0.5)
        took = time.monotonic() - start
        row = again.defender.defences.row(key) if again.defender else None
        assert row is not None and row.proof_s is not None
        print(f"\nrestart to defence {took:.1f} s (the proof itself {row.proof_s:.1f} s)")
        assert sum(sent) == 1
        assert DisputeStatus(int(dm.getDispute(key).status)) is DisputeStatus.DEFENDED
        [ev] = list(dm.DisputeDefended.range(0, chain.blocks.height + 1))[-1:]
        assert str(ev.event_arguments["defender"]).lower() == str(challenger.address).lower()
        assert JobStatus(int(jm.getJob(job_id).status)) is JobStatus.FINAL

        # The claim is paid, the collateral free, the bond whole.
        balance = int(spotcheck.token.balanceOf(challenger))
        for _ in range(2):
            chain.mine(1)
            again.tick()
        paid = again.claimer.claims.claim(key) if again.claimer else None
        assert paid is not None and paid.state is ClaimState.COLLECTED
        assert int(spotcheck.token.balanceOf(challenger)) == balance + FEE * SHARE_BPS // 10_000
        assert int(pool.getChallenger(challenger).bond) == bond_before

        # Nothing is sent again; status and metrics say what happened.
        advance(chain, PROOF_WINDOW)
        assert again.tick().defences_sent == 0
        summary = status_of(again.store)["defences"]
        assert summary["sent"] == 1 and summary["won"] == 1 and summary["too_late"] == 0
        metrics = Metrics()
        metrics.update_from_store(again.store)
        assert "spotcheck_challenger_defences_won 1.0" in metrics.render().decode()
    finally:
        again.close()
