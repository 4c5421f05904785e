"""Proofs in exactly the form ``DisputeManager.defend`` takes them; off-chain verification.

``defend(disputeId, proof, instances, committedOutput)``.

``instances`` are BN254 field elements: the input elements, then the output elements (public
inputs and public outputs). ``output_q`` is the circuit's output as signed ints; the node passes
its *committed* output as ``committedOutput``, which the contract checks within ``tau`` of it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotcheck.encoding import BN254_R, from_field, from_hex
from spotcheck.errors import ProofError
from verifier import ezkl_backend, witness
from verifier.artifacts import ModelArtifacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProofBundle:
    """``proof`` bytes and ``instances`` (input felts then output felts) for ``defend``."""

    proof: bytes
    instances: list[int]
    output_q: list[int]

    def input_felts(self, input_len: int) -> list[int]:
        return self.instances[:input_len]

    def to_json(self) -> str:
        return json.dumps(
            {
                "proof": "0x" + self.proof.hex(),
                "instances": [hex(v) for v in self.instances],
                "output_q": self.output_q,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ProofBundle:
        data = json.loads(text)
        return cls(
            proof=from_hex(data["proof"]),
            instances=[int(v, 16) for v in data["instances"]],
            output_q=[int(v) for v in data["output_q"]],
        )


def prove(artifacts: ModelArtifacts, input_q: Sequence[int]) -> ProofBundle:
    """Prove the circuit on quantized input ``input_q`` (seconds to minutes, by logrows)."""
    with tempfile.TemporaryDirectory(prefix="spotcheck-prove-") as tmp:
        folder = Path(tmp)
        wit, witness_path = witness.generate(artifacts, input_q, folder)
        proof_path = folder / "proof.json"
        start = time.perf_counter()
        raw = ezkl_backend.prove(
            witness_path, artifacts.compiled_path, artifacts.pk_path, proof_path, artifacts.srs_path
        )
        log.info("proved %s in %.2f s", artifacts.circuit_key[:12], time.perf_counter() - start)
    bundle = bundle_from_proof_json(raw, artifacts.input_len)
    if bundle.instances != wit.instances:
        raise ProofError("proof instances differ from the witness (ezkl changed the public values)")
    return bundle


def bundle_from_proof_json(raw: dict[str, Any], input_len: int) -> ProofBundle:
    """Read ezkl's proof JSON: ``proof`` (byte list), ``instances`` (LE-hex felts per tensor)."""
    proof = bytes(raw["proof"])
    instances = [ezkl_backend.felt_from_le_hex(h) for group in raw["instances"] for h in group]
    return ProofBundle(proof=proof, instances=instances, output_q=output_q_of(instances, input_len))


def proof_file_json(bundle: ProofBundle) -> dict[str, Any]:
    """The proof file ezkl reads back (verify, encode_evm_calldata) for ``bundle``."""
    return {
        "protocol": None,
        "instances": [[ezkl_backend.felt_to_le_hex(v) for v in bundle.instances]],
        "proof": list(bundle.proof),
        "hex_proof": "0x" + bundle.proof.hex(),
        "split": None,
        "pretty_public_inputs": None,
        "timestamp": None,
        "version": ezkl_backend.version(),
    }


def verify_offchain(artifacts: ModelArtifacts, bundle: ProofBundle) -> bool:
    """ezkl's verifier on ``bundle``: True iff the proof is valid for these instances."""
    if any(not 0 <= v < BN254_R for v in bundle.instances):
        return False
    with tempfile.TemporaryDirectory(prefix="spotcheck-verify-") as tmp:
        proof_path = Path(tmp) / "proof.json"
        proof_path.write_text(json.dumps(proof_file_json(bundle)))
        return ezkl_backend.verify(
            proof_path, artifacts.settings_path, artifacts.vk_path, artifacts.srs_path
        )


def output_q_of(instances: Sequence[int], input_len: int) -> list[int]:
    """The signed output values carried in ``instances`` (after the ``input_len`` inputs)."""
    return [from_field(v) for v in instances[input_len:]]
