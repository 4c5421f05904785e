"""The shared encoding vectors: Python reproduces every one; properties of the same rules.

``tests/vectors/encoding.json`` is generated from ``spotcheck/encoding.py`` by
``python -m tests.unit.test_encoding_vectors`` and asserted on the Solidity side by
``tests/integration/test_contract_hash_vectors.py`` (``contracts/test/HashHarness.sol``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from spotcheck.encoding import (
    BN254_R,
    INT256_MAX,
    INT256_MIN,
    batch_job_key,
    from_field,
    hash_vector,
    leaf_hash,
    onchain_job_key,
    parse_bytes32,
    to_field,
)
from spotcheck.errors import EncodingError

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "encoding.json"
HALF = BN254_R // 2


def generate_vectors() -> dict[str, Any]:
    """Every vector, computed by ``spotcheck/encoding.py`` (hex strings for bytes)."""
    vectors_in = [
        [],
        [0],
        [1, -1],
        [INT256_MAX, INT256_MIN],
        [HALF, -HALF, 2**53 - 1, -(2**53)],
        list(range(-8, 9)),
        [123456789] * 16,
    ]
    leaves_in = [
        (0, b"\x00" * 32, b"\x00" * 32, b"\x00" * 32),
        (1, keccak(b"model"), hash_vector([1, 2, 3]), hash_vector([-4])),
        (2**256 - 1, b"\xff" * 32, hash_vector([]), hash_vector([0])),
    ]
    fields_in = [
        0,
        1,
        2,
        HALF - 1,
        HALF,
        HALF + 1,
        BN254_R - 2,
        BN254_R - 1,
        2**128,
        BN254_R - 2**128,
    ]
    return {
        "bn254_r": str(BN254_R),
        "hash_vector": [
            {"values": [str(v) for v in vals], "hash": "0x" + hash_vector(vals).hex()}
            for vals in vectors_in
        ],
        "leaf": [
            {
                "jobId": str(job_id),
                "modelId": "0x" + model.hex(),
                "inputHash": "0x" + ih.hex(),
                "outputHash": "0x" + oh.hex(),
                "leaf": "0x" + leaf_hash(job_id, model, ih, oh).hex(),
            }
            for job_id, model, ih, oh in leaves_in
        ],
        "onchain_job_key": [
            {"jobId": str(j), "key": "0x" + onchain_job_key(j).hex()}
            for j in (0, 1, 42, 2**256 - 1)
        ],
        "batch_job_key": [
            {"batchId": str(b), "jobId": str(j), "key": "0x" + batch_job_key(b, j).hex()}
            for b, j in ((0, 0), (1, 1), (7, 1024), (2**256 - 1, 2**256 - 1))
        ],
        "from_field": [{"element": str(f), "value": str(from_field(f))} for f in fields_in],
    }


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
    return data


def test_vectorsFile_isReproducedByPython() -> None:
    assert load_vectors() == generate_vectors(), (
        "regenerate: python -m tests.unit.test_encoding_vectors"
    )


def test_vectors_coverNegativesAndFieldEdges() -> None:
    values = [int(v["value"]) for v in load_vectors()["from_field"]]
    assert min(values) == -HALF and max(values) == HALF and 0 in values


@given(st.integers(min_value=-HALF, max_value=HALF))
def test_fieldRoundTrip_isIdentity(value: int) -> None:
    assert from_field(to_field(value)) == value


@given(st.lists(st.integers(min_value=INT256_MIN, max_value=INT256_MAX), max_size=20))
def test_hashVector_isSha256OfAbiEncodedInt256Array(values: list[int]) -> None:
    assert hash_vector(values) == hashlib.sha256(abi_encode(["int256[]"], [values])).digest()


@given(st.integers(min_value=0, max_value=2**256 - 1), st.binary(min_size=32, max_size=32))
def test_leaf_isDoubleKeccak_andKeysAreDomainSeparated(job_id: int, model: bytes) -> None:
    inner = keccak(
        abi_encode(["uint256", "bytes32", "bytes32", "bytes32"], [job_id, model, model, model])
    )
    assert leaf_hash(job_id, model, model, model) == keccak(inner)
    assert onchain_job_key(job_id) != batch_job_key(0, job_id)


if __name__ == "__main__":
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(json.dumps(generate_vectors(), indent=2) + "\n")
    sys.stdout.write(f"wrote {VECTORS_PATH}\n")


def test_parseBytes32_acceptsHexWithOrWithoutPrefix_rejectsAnythingElse() -> None:
    assert parse_bytes32("0x" + "ab" * 32) == b"\xab" * 32
    assert parse_bytes32("cd" * 32) == b"\xcd" * 32
    for bad in ("0x" + "ab" * 31, "0x" + "ab" * 33, "0x" + "zz" * 32, "", "0x"):
        with pytest.raises(EncodingError):
            parse_bytes32(bad)
