"""Disputes answered by real ezkl proofs, verified on-chain by the generated Halo2Verifier of the
tiny 4-8-2 MLP (artifacts cached by tests/fixtures/zk.py; dev SRS, tests only).

Two proofs per module run (a few seconds each once the keys are cached)."""

from __future__ import annotations

from typing import Any

import ape
import numpy as np
import pytest

from spotcheck.chain import DisputeStatus, JobStatus, ModelParams
from spotcheck.encoding import hash_vector, quantize, to_field
from tests.fixtures.chain import advance

pytestmark = pytest.mark.chain
TAU = 4
PARAMS_WINDOWS = {"challenge_window": 100, "proof_window": 100}


@pytest.fixture(scope="module")
def real(tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any) -> dict[str, Any]:
    """The tiny MLP registered with its real verifier, and proofs for two inputs."""
    from verifier import registry
    from verifier.prove import prove

    artifacts = tiny_mlp_artifacts
    params: ModelParams = registry.model_params(artifacts, TAU, **PARAMS_WINDOWS)
    reg = registry.register_model(artifacts, params, spotcheck.contracts, deployer)
    rng = np.random.default_rng(7)
    inputs = [
        quantize(rng.uniform(-1, 1, artifacts.input_len), artifacts.input_scale) for _ in range(2)
    ]
    return {
        "artifacts": artifacts,
        "model_id": reg.model_id,
        "verifier": reg.verifier,
        "inputs": inputs,
        "proofs": [prove(artifacts, x) for x in inputs],
    }


def _dispute(
    spotcheck: Any,
    real: dict[str, Any],
    input_q: list[int],
    committed: list[int],
    node: Any,
    requester: Any,
    challenger: Any,
) -> tuple[int, bytes]:
    jm, dm = spotcheck.job_manager, spotcheck.dispute_manager
    job_id = int(
        jm.requestJob(real["model_id"], input_q, node, 10**18, sender=requester).return_value
    )
    jm.commitResult(job_id, hash_vector(input_q), committed, sender=node)
    out_hash = hash_vector(committed)
    return job_id, bytes(dm.openDispute(job_id, out_hash, sender=challenger).return_value)


def test_realVerifier_acceptsProof_directly(
    real: dict[str, Any], spotcheck: Any, outsider: Any
) -> None:
    verifier = spotcheck.contracts.verifier(real["verifier"])
    bundle = real["proofs"][0]
    assert verifier.verifyProof.call(bundle.proof, bundle.instances) is True
    gas = verifier.verifyProof.estimate_gas_cost(bundle.proof, bundle.instances, sender=outsider)
    print(f"\nHalo2Verifier.verifyProof gas (estimate): {gas:,}")
    assert 100_000 < gas < 2_000_000


def test_defend_realProof_outputWithinTau_provesJob_andMeasuresGas(
    real: dict[str, Any], spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    bundle = real["proofs"][0]
    committed = [v + TAU if i == 0 else v - TAU for i, v in enumerate(bundle.output_q)]
    job_id, dispute_id = _dispute(
        spotcheck, real, real["inputs"][0], committed, node, requester, challenger
    )
    receipt = spotcheck.dispute_manager.defend(
        dispute_id, bundle.proof, bundle.instances, committed, sender=node
    )
    print(f"\ndefend with the real verifier: {receipt.gas_used:,} gas")
    assert spotcheck.dispute_manager.getDispute(dispute_id).status == DisputeStatus.DEFENDED
    assert spotcheck.job_manager.getJob(job_id).status == JobStatus.FINAL
    assert receipt.gas_used < 2_000_000


def test_defend_tamperedProof_isRejected_thenSettleSlashes(
    real: dict[str, Any],
    spotcheck: Any,
    node: Any,
    requester: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    bundle = real["proofs"][0]
    job_id, dispute_id = _dispute(
        spotcheck, real, real["inputs"][0], bundle.output_q, node, requester, challenger
    )
    dm = spotcheck.dispute_manager
    tampered = bundle.proof[:100] + bytes([bundle.proof[100] ^ 0x01]) + bundle.proof[101:]
    with ape.reverts(dm.ProofRejected, disputeId=dispute_id):
        dm.defend(dispute_id, tampered, bundle.instances, bundle.output_q, sender=node)
    advance(chain, PARAMS_WINDOWS["proof_window"] + 1)
    dm.settle(dispute_id, sender=outsider)
    assert dm.getDispute(dispute_id).status == DisputeStatus.SLASHED
    assert spotcheck.job_manager.getJob(job_id).status == JobStatus.INVALID


def test_defend_proofForAnotherInput_isRejected(
    real: dict[str, Any], spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    """Proof B against job A: with B's instances the input check fails; with A's input swapped
    into B's instances the contract's checks pass but the verifier rejects the proof."""
    a_out = real["proofs"][0].output_q
    b = real["proofs"][1]
    _, dispute_id = _dispute(spotcheck, real, real["inputs"][0], a_out, node, requester, challenger)
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.InputMismatch, disputeId=dispute_id):
        dm.defend(dispute_id, b.proof, b.instances, a_out, sender=node)
    spliced = [to_field(v) for v in real["inputs"][0]] + [to_field(v) for v in a_out]
    with ape.reverts(dm.ProofRejected, disputeId=dispute_id):
        dm.defend(dispute_id, b.proof, spliced, a_out, sender=node)


def test_defend_outputsBeyondTau_cannotBeDefended(
    real: dict[str, Any], spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    bundle = real["proofs"][0]
    cheat = [bundle.output_q[0] - TAU - 1, *bundle.output_q[1:]]
    _, dispute_id = _dispute(spotcheck, real, real["inputs"][0], cheat, node, requester, challenger)
    dm = spotcheck.dispute_manager
    with ape.reverts(
        dm.OutputOutsideTolerance, index=0, proven=bundle.output_q[0], committed=cheat[0], tau=TAU
    ):
        dm.defend(dispute_id, bundle.proof, bundle.instances, cheat, sender=node)
    # Moving the public outputs to the cheat makes the tolerance check pass; the proof then fails.
    forged = bundle.instances[: len(real["inputs"][0])] + [to_field(v) for v in cheat]
    with ape.reverts(dm.ProofRejected, disputeId=dispute_id):
        dm.defend(dispute_id, bundle.proof, forged, cheat, sender=node)
    assert dm.getDispute(dispute_id).status == DisputeStatus.OPEN
