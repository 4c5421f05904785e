"""Models through the whole pipeline on anvil: onboard (build, tau, deploy verifier, register),
prove, verify off-chain, verify on-chain, and a real ezkl proof through ``DisputeManager.defend``.

The default run covers the fast models; ``SPOTCHECK_SLOW=1`` adds the rest (``slow`` marker).
Artifacts come from the content-addressed cache, so only a machine's first run pays for setup.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spotcheck.chain import DisputeStatus, JobStatus, ModelParams
from spotcheck.encoding import input_hash, output_hash, quantize, within_tolerance
from tests.fixtures import models
from verifier import registry, tolerance
from verifier.onnx_runner import OnnxRunner
from verifier.prove import ProofBundle, prove, verify_offchain

pytestmark = pytest.mark.chain

#: (name, slow): built in tests/fixtures/models.py, or from onnx's pytorch-converted set.
MODELS = [
    ("tiny_mlp", False),
    ("linear_sigmoid", False),
    ("tiny_conv", False),
    ("avgpool", False),
    ("test_AvgPool2d", True),
    ("test_Conv2d", True),
    ("test_Conv1d", True),
    ("test_BatchNorm1d_3d_input_eval", True),
    ("test_LeakyReLU", True),
    ("test_Sigmoid", True),
    ("test_ReLU", True),
    ("test_MaxPool1d", True),
]
WINDOWS = {"challenge_window": 100, "proof_window": 100}
#: Circuits whose generated verifier exceeds EIP-170 (24,576 bytes): refused before deploying.
OVERSIZED = ["test_Linear"]


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=[pytest.mark.slow] if slow else []) for n, slow in MODELS],
)
def onboarded(
    request: pytest.FixtureRequest,
    zk_model_dir: Path,
    zk_artifacts_for: Callable[..., Any],
    spotcheck: Any,
    deployer: Any,
) -> tuple[Any, registry.Registration, int]:
    artifacts = zk_artifacts_for(models.model_file(request.param, zk_model_dir))
    tau = tolerance.measure(artifacts, random_samples=20).tau
    params = registry.model_params(artifacts, tau, **WINDOWS)
    reg = registry.register_model(artifacts, params, spotcheck.contracts, deployer)
    return artifacts, reg, tau


def _random_input_q(artifacts: Any, seed: int) -> list[int]:
    x = np.random.default_rng(seed).uniform(-1, 1, artifacts.input_len)
    return quantize(x, artifacts.input_scale)


def test_onboardedModel_isRegisteredWithItsCircuitParameters(
    onboarded: Any, spotcheck: Any
) -> None:
    artifacts, reg, tau = onboarded
    m = spotcheck.model_registry.getModel(reg.model_id)
    assert bytes(m.onnxHash) == artifacts.onnx_hash
    assert bytes(m.settingsHash) == artifacts.settings_hash
    assert (m.inputLen, m.outputLen) == (artifacts.input_len, artifacts.output_len)
    scale = artifacts.input_scale
    assert (m.inLo, m.inHi) == (-(2**scale), 2**scale)  # the default domain [-1, 1], covered
    assert (m.inputScale, m.outputScale, m.tau) == (
        artifacts.input_scale,
        artifacts.output_scale,
        tau,
    )
    assert reg.model_id == bytes(
        spotcheck.model_registry.computeModelId(
            artifacts.onnx_hash, artifacts.settings_hash, reg.verifier
        )
    )


def test_proof_verifiesOffChainAndOnChain(onboarded: Any, spotcheck: Any) -> None:
    artifacts, reg, _ = onboarded
    bundle = prove(artifacts, _random_input_q(artifacts, seed=5))
    assert verify_offchain(artifacts, bundle)
    onchain = spotcheck.contracts.verifier(reg.verifier)
    assert onchain.verifyProof.call(bundle.proof, bundle.instances) is True


def test_registerAgain_reusesConfirmedRegistration(
    onboarded: Any, spotcheck: Any, deployer: Any
) -> None:
    artifacts, reg, tau = onboarded
    params = registry.model_params(artifacts, tau, **WINDOWS)
    assert registry.register_model(artifacts, params, spotcheck.contracts, deployer) == reg


@pytest.fixture(scope="module")
def mlp_model(
    tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any
) -> tuple[Any, registry.Registration, ModelParams]:
    tau = tolerance.measure(tiny_mlp_artifacts, random_samples=50).tau
    params = registry.model_params(tiny_mlp_artifacts, tau, **WINDOWS)
    return (
        tiny_mlp_artifacts,
        registry.register_model(tiny_mlp_artifacts, params, spotcheck.contracts, deployer),
        params,
    )


def _disputed_job(
    spotcheck: Any, model_id: bytes, input_q: list[int], output_q: list[int], actors: Any
) -> bytes:
    node, requester, challenger = actors
    jm, dm = spotcheck.job_manager, spotcheck.dispute_manager
    job_id = int(jm.requestJob(model_id, input_q, node, 10**18, sender=requester).return_value)
    jm.commitResult(job_id, input_hash(input_q), output_q, sender=node)
    return bytes(dm.openDispute(job_id, output_hash(output_q), sender=challenger).return_value)


def test_defend_withRealProof_ofHonestFloatOutput_provesJob(
    mlp_model: Any, spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    artifacts, reg, params = mlp_model
    input_q = _random_input_q(artifacts, seed=11)
    honest = tolerance.honest_output_q(OnnxRunner(artifacts.onnx_path), artifacts, input_q)
    dispute_id = _disputed_job(
        spotcheck, reg.model_id, input_q, honest, (node, requester, challenger)
    )
    bundle = prove(artifacts, input_q)
    assert within_tolerance(honest, bundle.output_q, params.tau)
    spotcheck.dispute_manager.defend(
        dispute_id, bundle.proof, bundle.instances, honest, sender=node
    )
    d = spotcheck.dispute_manager.getDispute(dispute_id)
    assert d.status == DisputeStatus.DEFENDED
    assert d.outputHash == output_hash(honest)
    assert spotcheck.job_manager.getJob(d.jobId).status == JobStatus.FINAL


def test_defend_adversarialInDomainInputs_honestOutputsAreDefendedWithRealProofs(
    mlp_model: Any, spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    """Attack (issue 10): the worst in-domain input the tolerance search finds, and the
    all-inHi corner, sent as jobs; the honest node's float outputs are disputed and defended."""
    artifacts, reg, params = mlp_model
    report = tolerance.measure(artifacts, random_samples=50, seed=3)
    domain = report.domain
    assert domain is not None and (params.in_lo, params.in_hi) == (domain.lo, domain.hi)
    runner = OnnxRunner(artifacts.onnx_path)
    for input_q in (list(report.worst_input_q), [domain.hi] * artifacts.input_len):
        honest = tolerance.honest_output_q(runner, artifacts, input_q)
        dispute_id = _disputed_job(
            spotcheck, reg.model_id, input_q, honest, (node, requester, challenger)
        )
        bundle = prove(artifacts, input_q)
        spotcheck.dispute_manager.defend(
            dispute_id, bundle.proof, bundle.instances, honest, sender=node
        )
        assert spotcheck.dispute_manager.getDispute(dispute_id).status == DisputeStatus.DEFENDED


def test_defend_outputShiftedBeyondTau_cannotBeDefended(
    mlp_model: Any, spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    import ape

    artifacts, reg, params = mlp_model
    input_q = _random_input_q(artifacts, seed=12)
    bundle = prove(artifacts, input_q)
    cheat = [bundle.output_q[0] + params.tau + 1, *bundle.output_q[1:]]
    dispute_id = _disputed_job(
        spotcheck, reg.model_id, input_q, cheat, (node, requester, challenger)
    )
    with pytest.raises(ape.exceptions.ContractLogicError):
        spotcheck.dispute_manager.defend(
            dispute_id, bundle.proof, bundle.instances, cheat, sender=node
        )
    assert spotcheck.dispute_manager.getDispute(dispute_id).status == DisputeStatus.OPEN


def test_defend_tamperedProof_isRejected(
    mlp_model: Any, spotcheck: Any, node: Any, requester: Any, challenger: Any
) -> None:
    import ape

    artifacts, reg, _ = mlp_model
    input_q = _random_input_q(artifacts, seed=13)
    bundle = prove(artifacts, input_q)
    dispute_id = _disputed_job(
        spotcheck, reg.model_id, input_q, bundle.output_q, (node, requester, challenger)
    )
    bad = ProofBundle(
        bytes([bundle.proof[0] ^ 1]) + bundle.proof[1:], bundle.instances, bundle.output_q
    )
    with pytest.raises(ape.exceptions.ContractLogicError):
        spotcheck.dispute_manager.defend(
            dispute_id, bad.proof, bad.instances, bad.output_q, sender=node
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", OVERSIZED)
def test_oversizedVerifier_isRefusedBeforeDeploy(
    name: str,
    zk_model_dir: Path,
    zk_artifacts_for: Callable[..., Any],
    spotcheck: Any,
    deployer: Any,
) -> None:
    from spotcheck.errors import ChainError

    artifacts = zk_artifacts_for(models.model_file(name, zk_model_dir))
    assert len(artifacts.compiled_verifier().runtime_bytecode) > 24_576
    params = registry.model_params(artifacts, 10, **WINDOWS)
    with pytest.raises(ChainError, match="EIP-170"):
        registry.register_model(artifacts, params, spotcheck.contracts, deployer)
