"""Solidity's SpotcheckHash (through HashHarness) agrees with Python on every shared vector,
and on random inputs (hypothesis); the Python enum mirrors match the Solidity enums' order."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotcheck.chain import ENUM_MIRRORS
from spotcheck.encoding import BN254_R, INT256_MAX, INT256_MIN, from_field, hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree, verify
from spotcheck.toolchain import PROJECT_ROOT
from tests.unit.test_encoding_vectors import load_vectors

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def harness(project: Any, accounts: Any) -> Any:
    return accounts[0].deploy(project.HashHarness)


def _b(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:])


def test_solidity_matchesEveryVector(harness: Any) -> None:
    vectors = load_vectors()
    for v in vectors["hash_vector"]:
        assert harness.hashVector([int(x) for x in v["values"]]) == _b(v["hash"])
    for v in vectors["leaf"]:
        got = harness.leaf(
            int(v["jobId"]), _b(v["modelId"]), _b(v["inputHash"]), _b(v["outputHash"])
        )
        assert got == _b(v["leaf"])
    for v in vectors["onchain_job_key"]:
        assert harness.onchainJobKey(int(v["jobId"])) == _b(v["key"])
    for v in vectors["batch_leaf_key"]:
        assert harness.batchLeafKey(int(v["batchId"]), int(v["index"])) == _b(v["key"])
    for v in vectors["receipt_digest"]:
        got = harness.receiptDigest(int(v["chainId"]), v["jobManager"], _b(v["leaf"]))
        assert got == _b(v["digest"])
    for t in vectors["merkle"]:
        count, root = t["count"], _b(t["root"])
        assert harness.treeDepth(count) == t["depth"]
        for i, (leaf, proof) in enumerate(zip(t["leaves"], t["proofs"], strict=True)):
            siblings = [_b(s) for s in proof]
            assert harness.merkleRoot(_b(leaf), i, siblings) == root
            assert harness.verify(siblings, root, _b(leaf), i, count)
            # The same proof at another index, or with a count of another depth: refused.
            assert not harness.verify(siblings, root, _b(leaf), (i + 1) % max(count, 2), count)
            assert not harness.verify(siblings, root, _b(leaf), i, 2 * count + 1)
    for v in vectors["from_field"]:
        assert harness.fromField(int(v["element"])) == int(v["value"])
    assert len(vectors["from_field"]) >= 10


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.integers(min_value=INT256_MIN, max_value=INT256_MAX), max_size=8),
    element=st.integers(min_value=0, max_value=BN254_R - 1),
    job_id=st.integers(min_value=0, max_value=2**256 - 1),
    model=st.binary(min_size=32, max_size=32),
)
def test_solidity_matchesPython_onRandomInputs(
    harness: Any, values: list[int], element: int, job_id: int, model: bytes
) -> None:
    assert harness.hashVector(values) == hash_vector(values)
    assert harness.fromField(element) == from_field(element)
    h = hash_vector(values)
    assert harness.leaf(job_id, model, h, h) == leaf_hash(job_id, model, h, h)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True),
    data=st.data(),
)
def test_solidityMerkle_matchesPython_onRandomTrees(
    harness: Any, leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(leaves)
    count = len(leaves)
    i = data.draw(st.integers(0, count - 1))
    proof = tree.proof(i)
    assert harness.merkleRoot(leaves[i], i, proof) == tree.root
    assert harness.verify(proof, tree.root, leaves[i], i, count)
    j = data.draw(st.integers(0, 2 * count))
    assert harness.verify(proof, tree.root, leaves[i], j, count) == verify(
        proof, tree.root, leaves[i], j, count
    )


@pytest.mark.parametrize("name", sorted(ENUM_MIRRORS))
def test_pythonEnumMirror_matchesSolidityOrder(name: str) -> None:
    path, mirror = ENUM_MIRRORS[name]
    source = (PROJECT_ROOT / path).read_text()
    match = re.search(rf"enum {name}\s*{{([^}}]*)}}", source)
    assert match, f"enum {name} not found in {path}"
    solidity = [m.strip() for m in match.group(1).split(",") if m.strip()]
    python = [member.name for member in sorted(mirror, key=int)]
    assert [s.upper() for s in solidity] == python
