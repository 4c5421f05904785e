"""Receipts of batched requests (issue 14): one signature over the request's sub-root, and a
path per job, so that each job is still checked on its own; attacks on the path are refused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotcheck.encoding import hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree, path_root
from spotcheck.receipts import KeySigner, Receipt, ReceiptDomain, verify_receipt
from tests.unit.test_receipts import (
    CHAIN_ID,
    JM,
    MODEL,
    NODE_KEY,
    OTHER_JM,
    FakeJobManager,
    check,
    commit,
)


def serve_request(
    signer: KeySigner, first_id: int, answers: list[tuple[list[int], list[int]]]
) -> list[Receipt]:
    """What a node returns for one batched request (as ``JobServer.serve_many`` builds it):
    consecutive job ids, one signature over the positional root of the request's leaves."""
    hashes = [(hash_vector(x), hash_vector(y)) for x, y in answers]
    leaves = [leaf_hash(first_id + i, MODEL, ih, oh) for i, (ih, oh) in enumerate(hashes)]
    tree = MerkleTree(leaves)
    sig = signer.sign_leaf(tree.root)
    d = signer.domain
    return [
        Receipt(
            first_id + i,
            MODEL,
            ih,
            oh,
            signer.address,
            sig,
            d.chain_id,
            d.job_manager,
            i,
            tuple(tree.proof(i)),
        )
        for i, (ih, oh) in enumerate(hashes)
    ]


ANSWERS = [([i, i + 1, 3, 4], [10 * i, -i]) for i in range(5)]
OTHER_ANSWERS = [([i, 7, 7, 7], [i, i]) for i in range(5)]


@pytest.fixture
def node() -> KeySigner:
    return KeySigner(NODE_KEY, ReceiptDomain(CHAIN_ID, JM))


@pytest.fixture
def committed(node: KeySigner) -> dict[str, Any]:
    """Two batched requests of five jobs each, committed as batch 7 (final)."""
    jm = FakeJobManager()
    first = serve_request(node, 1, ANSWERS)
    second = serve_request(node, 6, OTHER_ANSWERS)
    tree = commit(jm, 7, node.address, MODEL, first + second)
    return {"jm": jm, "first": first, "second": second, "tree": tree}


def dapp_check(c: dict[str, Any], receipt: Receipt, node: str, index: int, answer: Any) -> Any:
    x, y = answer
    return check(
        c["jm"], receipt, node, input_q=x, output_q=y, index=index, proof=c["tree"].proof(index)
    )


def test_batchedReceipts_eachVerifiesOnItsOwn_offchainAndOnchain(
    node: KeySigner, committed: dict[str, Any]
) -> None:
    for i, r in enumerate(committed["first"]):
        assert verify_receipt(r, node.address, node.domain)
        assert dapp_check(committed, r, node.address, i, ANSWERS[i]).ok
    for i, r in enumerate(committed["second"]):
        assert dapp_check(committed, r, node.address, 5 + i, OTHER_ANSWERS[i]).ok


def test_oneJobRequest_subRootIsTheLeaf_sameSignatureAsASingleReceipt(node: KeySigner) -> None:
    (r,) = serve_request(node, 9, ANSWERS[:1])
    assert r.sub_index == 0 and r.sub_proof == ()
    assert r.signature == node.sign_leaf(r.leaf)  # what a single job's receipt signs
    assert "subIndex" not in r.to_json() and "subProof" not in r.to_json()
    assert Receipt.from_json(r.to_json()) == r


def test_batchedReceiptJson_roundTrips_withItsPath(committed: dict[str, Any]) -> None:
    r = committed["first"][3]
    data = r.to_json()
    assert data["subIndex"] == 3 and len(data["subProof"]) == 3
    assert Receipt.from_json(data) == r


def test_attack_pathFromAnotherRequest_isRefused(
    node: KeySigner, committed: dict[str, Any]
) -> None:
    mine, theirs = committed["first"][2], committed["second"][2]
    forged = replace(mine, sub_proof=theirs.sub_proof, signature=theirs.signature)
    assert not verify_receipt(forged, node.address, node.domain)
    verdict = dapp_check(committed, forged, node.address, 2, ANSWERS[2])
    assert not verdict.signed_by_node and not verdict.ok
    # the path of the other request with this request's signature: refused too
    assert not verify_receipt(replace(mine, sub_proof=theirs.sub_proof), node.address)


@pytest.mark.parametrize("moved_to", [0, 1, 3, 4, 5, 7, 8])
def test_attack_leafMovedToAnotherPosition_isRefused(
    node: KeySigner, committed: dict[str, Any], moved_to: int
) -> None:
    r = committed["first"][2]
    moved = replace(r, sub_index=moved_to)
    assert not verify_receipt(moved, node.address, node.domain)
    assert not dapp_check(committed, moved, node.address, 2, ANSWERS[2]).ok


def test_attack_subRootSignedForAnotherDeployment_isRefused(committed: dict[str, Any]) -> None:
    elsewhere = KeySigner(NODE_KEY, ReceiptDomain(CHAIN_ID, OTHER_JM))
    replayed = serve_request(elsewhere, 1, ANSWERS)[1]
    assert verify_receipt(replayed, elsewhere.address)  # valid where it was issued
    assert not verify_receipt(replayed, elsewhere.address, ReceiptDomain(CHAIN_ID, JM))
    relabelled = replace(replayed, job_manager=JM)
    assert not verify_receipt(relabelled, elsewhere.address, ReceiptDomain(CHAIN_ID, JM))
    verdict = dapp_check(committed, replayed, elsewhere.address, 1, ANSWERS[1])
    assert not verdict.same_deployment and not verdict.signed_by_node and not verdict.ok
    other_chain = KeySigner(NODE_KEY, ReceiptDomain(CHAIN_ID + 1, JM))
    r = replace(serve_request(other_chain, 1, ANSWERS)[1], chain_id=CHAIN_ID)
    assert not dapp_check(committed, r, other_chain.address, 1, ANSWERS[1]).signed_by_node


def test_attack_subRootPresentedAsALeaf_orAnInnerNodeAsTheLeaf_isRefused(
    node: KeySigner, committed: dict[str, Any]
) -> None:
    r = committed["first"][0]
    # the sub-root's signature with the path cut short: the leaf alone is not what was signed
    assert not verify_receipt(replace(r, sub_proof=r.sub_proof[:-1]), node.address)
    assert not verify_receipt(replace(r, sub_proof=(), sub_index=0), node.address)


def test_attack_malformedPath_isAVerdict_neverAnError(
    node: KeySigner, committed: dict[str, Any]
) -> None:
    r = committed["first"][1]
    for bad in (
        replace(r, sub_index=1 << len(r.sub_proof)),  # index beyond the path's tree
        replace(r, sub_proof=(b"\x01" * 31, *r.sub_proof[1:])),
        replace(r, sub_proof=tuple(r.sub_proof) * 20),  # longer than any request
    ):
        assert not verify_receipt(bad, node.address)
        assert not dapp_check(committed, bad, node.address, 1, ANSWERS[1]).ok


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_property_everyPositionsPath_rebuildsTheRoot_onlyAtItsOwnIndex(
    n: int, data: st.DataObject
) -> None:
    leaves = [leaf_hash(j, MODEL, bytes([j % 256]) * 32, bytes(32)) for j in range(n)]
    tree = MerkleTree(leaves)
    i = data.draw(st.integers(0, n - 1))
    other = data.draw(st.integers(0, (1 << tree.depth) - 1))
    assert path_root(leaves[i], i, tree.proof(i)) == tree.root
    if other != i:
        assert path_root(leaves[i], other, tree.proof(i)) != tree.root
