"""The vectorised encodings of batched requests equal the canonical ones (issue 14)."""

from __future__ import annotations

import json

import numpy as np
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from prover.vectors import pack, pack_rows, unpack
from spotcheck.encoding import hash_rows, hash_vector, keccak256, leaf_hash, leaf_hashes
from spotcheck.merkle import MerkleTree

INT64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=300))
def test_keccak256_equalsEthUtils(data: bytes) -> None:
    assert keccak256(data) == keccak(data)


@settings(max_examples=60, deadline=None)
@given(q=hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9), elements=INT64))
def test_hashRows_equalsHashVector_everyRow(q: np.ndarray) -> None:
    assert hash_rows(q) == [hash_vector(row.tolist()) for row in q]


def test_hashRows_manyChunks_equalsHashVector() -> None:
    q = np.random.default_rng(3).integers(-(2**53), 2**53, size=(700, 3000))
    hashes = hash_rows(q)  # 700 rows of 96 KB: several encoding chunks
    assert [hashes[i] for i in (0, 10, 11, 699)] == [
        hash_vector(q[i].tolist()) for i in (0, 10, 11, 699)
    ]


@settings(max_examples=40, deadline=None)
@given(
    first=st.integers(0, 2**256 - 50),
    n=st.integers(1, 20),
    model=st.binary(min_size=32, max_size=32),
)
def test_leafHashes_equalLeafHash(first: int, n: int, model: bytes) -> None:
    ih = [keccak(bytes([i])) for i in range(n)]
    oh = [keccak(bytes([i, 1])) for i in range(n)]
    ids = list(range(first, first + n))
    assert leaf_hashes(ids, model, ih, oh) == [
        leaf_hash(j, model, a, b) for j, a, b in zip(ids, ih, oh, strict=True)
    ]


@settings(max_examples=60, deadline=None)
@given(q=hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9), elements=INT64))
def test_packRows_unpacksToEveryRow(q: np.ndarray) -> None:
    packed = pack_rows(q)
    assert [unpack(b).tolist() for b in packed] == q.tolist()
    assert all(unpack(pack(row)).tolist() == row.tolist() for row in q)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_proofsJson_equalsEveryProofAsJson(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tree = MerkleTree([rng.bytes(32) for _ in range(n)])
    assert tree.proofs_json() == [
        json.dumps(["0x" + s.hex() for s in tree.proof(i)]) for i in range(n)
    ]
