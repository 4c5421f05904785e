"""ezkl works offline end to end: its generated verifier compiles through the solc shim, deploys
with Ape on anvil and accepts a real proof in the form ``defend`` passes it, and rejects tampering.

How the verifier is compiled: ``verifier.solidity`` calls py-solc-x's ``compile_standard`` with
the shim (``~/.solcx/solc-v0.8.37``, ``--standard-json``), then Ape deploys a ``ContractType``
built in memory. Per-model verifiers all share the contract name ``Halo2Verifier``, which is why
they are not compiled as part of the Ape project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_utils import keccak

from spotcheck.encoding import BN254_R, from_field, quantize, to_field
from verifier import ezkl_backend, solidity
from verifier.prove import ProofBundle, proof_file_json, prove, verify_offchain

pytestmark = pytest.mark.chain

INPUT = [0.25, -0.5, 0.75, -1.0]


@pytest.fixture(scope="module")
def bundle(tiny_mlp_artifacts: Any) -> ProofBundle:
    return prove(tiny_mlp_artifacts, quantize(INPUT, tiny_mlp_artifacts.input_scale))


@pytest.fixture(scope="module")
def halo2_verifier(tiny_mlp_artifacts: Any, accounts: Any) -> Any:
    return solidity.deploy_verifier(tiny_mlp_artifacts.compiled_verifier(), accounts[0])


def test_proofInstances_areInputFeltsThenOutputFelts(
    tiny_mlp_artifacts: Any, bundle: ProofBundle
) -> None:
    q = quantize(INPUT, tiny_mlp_artifacts.input_scale)
    n_in = tiny_mlp_artifacts.input_len
    assert bundle.instances[:n_in] == [to_field(v) for v in q]
    assert [from_field(v) for v in bundle.instances[n_in:]] == bundle.output_q
    assert len(bundle.output_q) == tiny_mlp_artifacts.output_len


def test_verifierRuntimeCode_fitsEip170(tiny_mlp_artifacts: Any) -> None:
    compiled = tiny_mlp_artifacts.compiled_verifier()
    assert 0 < len(compiled.runtime_bytecode) <= solidity.MAX_RUNTIME_BYTES


def test_bundle_equalsArgumentsOfEzklCalldata(
    tiny_mlp_artifacts: Any, bundle: ProofBundle, tmp_path: Path
) -> None:
    # ezkl's own calldata for the same proof must carry exactly (bundle.proof, bundle.instances).
    # (ezkl appends 32 zero bytes after the ABI encoding, so compare decoded arguments.)
    proof_path = tmp_path / "proof.json"
    proof_path.write_text(json.dumps(proof_file_json(bundle)))
    calldata = ezkl_backend.encode_evm_calldata(proof_path, tmp_path / "calldata.bin")
    assert calldata[:4] == keccak(text="verifyProof(bytes,uint256[])")[:4]
    proof, instances = abi_decode(["bytes", "uint256[]"], calldata[4:])
    assert proof == bundle.proof
    assert list(instances) == bundle.instances


def test_validProof_verifiesOnChain(
    halo2_verifier: Any, bundle: ProofBundle, accounts: Any
) -> None:
    assert halo2_verifier.verifyProof.call(bundle.proof, bundle.instances) is True
    receipt = halo2_verifier.verifyProof(bundle.proof, bundle.instances, sender=accounts[0])
    assert not receipt.failed
    assert 100_000 < receipt.gas_used < 2_000_000


def test_tamperedOutputInstance_rejectedOnChain(halo2_verifier: Any, bundle: ProofBundle) -> None:
    tampered = [*bundle.instances[:-1], (bundle.instances[-1] + 1) % BN254_R]
    assert not _accepts(halo2_verifier, bundle.proof, tampered)


def test_tamperedProofBytes_rejectedOnChain(halo2_verifier: Any, bundle: ProofBundle) -> None:
    proof = bytearray(bundle.proof)
    proof[100] ^= 0x01
    assert not _accepts(halo2_verifier, bytes(proof), bundle.instances)


def test_tamperedBundle_rejectedOffChain(tiny_mlp_artifacts: Any, bundle: ProofBundle) -> None:
    assert verify_offchain(tiny_mlp_artifacts, bundle)
    tampered = ProofBundle(bundle.proof, [*bundle.instances[:-1], bundle.instances[-1] + 1], [])
    assert not verify_offchain(tiny_mlp_artifacts, tampered)


def _accepts(contract: Any, proof: bytes, instances: list[int]) -> bool:
    """The DisputeManager rule: a revert is a rejection, like a false return."""
    try:
        return bool(contract.verifyProof.call(proof, instances))
    except Exception:  # ContractLogicError / VirtualMachineError: the verifier reverted
        return False
