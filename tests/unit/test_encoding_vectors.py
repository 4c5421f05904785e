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
    RECEIPT_TYPEHASH,
    batch_leaf_key,
    from_field,
    hash_vector,
    leaf_hash,
    onchain_job_key,
    parse_bytes32,
    receipt_digest,
    to_field,
)
from spotcheck.errors import EncodingError
from spotcheck.merkle import ZERO_HASHES, MerkleTree, root_from_proof, tree_depth, verify

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
        "batch_leaf_key": [
            {"batchId": str(b), "index": str(i), "key": "0x" + batch_leaf_key(b, i).hex()}
            for b, i in ((0, 0), (1, 1), (7, 1024), (2**256 - 1, 2**256 - 1))
        ],
        "merkle": [_tree_vector(count) for count in (1, 2, 3, 4, 5, 7, 8, 9)],
        "receipt_digest": [
            {
                "chainId": str(chain_id),
                "jobManager": job_manager,
                "leaf": "0x" + leaf.hex(),
                "digest": "0x" + receipt_digest(chain_id, job_manager, leaf).hex(),
            }
            for chain_id, job_manager, leaf in (
                (1, "0x" + "00" * 20, b"\x00" * 32),
                (31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3", keccak(b"leaf")),
                (2**64, "0x" + "ff" * 20, b"\xff" * 32),
            )
        ],
        "from_field": [{"element": str(f), "value": str(from_field(f))} for f in fields_in],
    }


def _vector_leaves(count: int) -> list[bytes]:
    """Deterministic leaves for the tree vectors (real leaves: job ids repeat on purpose)."""
    model = keccak(b"model")
    return [leaf_hash(i % 3, model, hash_vector([i]), hash_vector([i, -i])) for i in range(count)]


def _tree_vector(count: int) -> dict[str, Any]:
    leaves = _vector_leaves(count)
    tree = MerkleTree(leaves)
    return {
        "count": count,
        "depth": tree_depth(count),
        "leaves": ["0x" + leaf.hex() for leaf in leaves],
        "root": "0x" + tree.root.hex(),
        "proofs": [["0x" + s.hex() for s in tree.proof(i)] for i in range(count)],
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
    assert onchain_job_key(job_id) != batch_leaf_key(0, job_id)


def _naive_root(leaves: list[bytes]) -> bytes:
    """The spec read literally: pad with bytes32(0) to 2**d, hash ordered pairs up."""
    level = list(leaves) + [b"\x00" * 32] * (2 ** tree_depth(len(leaves)) - len(leaves))
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_treeDepth_isCeilLog2() -> None:
    assert [tree_depth(n) for n in (1, 2, 3, 4, 5, 8, 9, 1024, 1025)] == [
        0,
        1,
        2,
        2,
        3,
        3,
        4,
        10,
        11,
    ]
    with pytest.raises(EncodingError):
        tree_depth(0)


def test_singleLeafTree_rootIsTheLeaf_andProofIsEmpty() -> None:
    leaf = keccak(b"x")
    tree = MerkleTree([leaf])
    assert tree.root == leaf and tree.proof(0) == [] and len(tree) == 1
    assert verify([], leaf, leaf, 0, 1)


@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True), st.data()
)
def test_merkleTree_matchesLiteralPaddedTree_andEveryProofVerifiesOnlyAtItsIndex(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(leaves)
    assert tree.root == _naive_root(leaves)
    count = len(leaves)
    i = data.draw(st.integers(0, count - 1))
    proof = tree.proof(i)
    assert len(proof) == tree_depth(count)
    assert verify(proof, tree.root, leaves[i], i, count)
    # Another position, a count that changes the depth, or a truncated proof: never valid.
    for j in range(count):
        assert verify(proof, tree.root, leaves[i], j, count) == (j == i)
    assert not verify(proof, tree.root, leaves[i], i + 2 ** len(proof), count)
    assert not verify(proof, tree.root, leaves[i], count, count)
    if proof:
        assert not verify(proof[:-1], tree.root, leaves[i], i, count)
    assert not verify([*proof, ZERO_HASHES[len(proof)]], tree.root, leaves[i], i, count)


def test_paddingLeaf_isNeverProvable() -> None:
    """index >= count is refused even though the zero leaf rebuilds the root."""
    leaves = [keccak(bytes([i])) for i in range(3)]
    tree = MerkleTree(leaves)
    padding_proof = [leaves[2], tree.levels[1][0]]
    assert root_from_proof(b"\x00" * 32, 3, padding_proof) == tree.root
    assert not verify(padding_proof, tree.root, b"\x00" * 32, 3, 3)


def test_receiptDigest_isDomainSeparated() -> None:
    leaf = keccak(b"leaf")
    jm = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    base = receipt_digest(31337, jm, leaf)
    assert base == keccak(
        abi_encode(
            ["bytes32", "uint256", "address", "bytes32"], [RECEIPT_TYPEHASH, 31337, jm, leaf]
        )
    )
    assert base != receipt_digest(1, jm, leaf)
    assert base != receipt_digest(31337, "0x" + "11" * 20, leaf)


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
