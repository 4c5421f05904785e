"""Receipts (docs/v2-protocol.md, 7): domain-separated signatures, and a dApp's check that the
receipt answers its own question. No chain: JobManager is a small fake with the v2 views."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils import keccak
from hexbytes import HexBytes

from spotcheck.encoding import BN254_R, hash_vector, leaf_hash, receipt_digest
from spotcheck.errors import ChainError, EncodingError
from spotcheck.merkle import MerkleTree
from spotcheck.receipts import (
    KeySigner,
    Receipt,
    ReceiptDomain,
    check_receipt_onchain,
    parse_proof,
    recover_signer,
    verify_receipt,
)

NODE_KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
CHAIN_ID = 31337
JM = "0x" + "ab" * 20
OTHER_JM = "0x" + "cd" * 20
DOMAIN = ReceiptDomain(CHAIN_ID, JM)
MODEL = keccak(b"resnet")
CHEAP_MODEL = keccak(b"tiny")
VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "encoding.json"


#: The widest domain a model can register (``-r/2 <= inLo <= inHi <= r/2``).
WIDEST = (-(BN254_R // 2), BN254_R // 2)


@dataclass
class FakeRegistry:
    """``ModelRegistry.getModel``: each model's input domain (the widest unless set)."""

    domains: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    unknown: set[bytes] = field(default_factory=set)

    def getModel(self, model_id: bytes) -> Any:
        if model_id in self.unknown:
            raise RuntimeError(f"UnknownModel(0x{model_id.hex()})")
        lo, hi = self.domains.get(bytes(model_id), WIDEST)
        return SimpleNamespace(inLo=lo, inHi=hi, active=True)


@dataclass
class FakeJobManager:
    """The views a receipt check reads: ``getBatch``, ``isBatchLeafFinal`` and ``registry``."""

    address: str = JM
    batches: dict[int, Any] = field(default_factory=dict)
    final: set[tuple[int, int]] = field(default_factory=set)
    models: FakeRegistry = field(default_factory=FakeRegistry)

    def registry(self) -> FakeRegistry:
        return self.models

    def getBatch(self, batch_id: int) -> Any:
        if batch_id not in self.batches:
            raise RuntimeError(f"UnknownBatch({batch_id})")
        return self.batches[batch_id]

    def isBatchLeafFinal(self, batch_id: int, index: int) -> bool:
        return (batch_id, index) in self.final


def serve(
    signer: KeySigner, job_id: int, model: bytes, input_q: list[int], output_q: list[int]
) -> Receipt:
    """What a node returns for a served job (as ``prover.batching.JobServer`` builds it)."""
    in_h, out_h = hash_vector(input_q), hash_vector(output_q)
    sig = signer.sign_leaf(leaf_hash(job_id, model, in_h, out_h))
    return Receipt(
        job_id,
        model,
        in_h,
        out_h,
        signer.address,
        sig,
        signer.domain.chain_id,
        signer.domain.job_manager,
    )


def commit(jm: FakeJobManager, batch_id: int, node: str, model: bytes, receipts: list[Receipt]):
    """Commit ``receipts`` as one batch and finalize it; return the tree."""
    tree = MerkleTree([r.leaf for r in receipts])
    jm.batches[batch_id] = SimpleNamespace(
        node=node, modelId=model, root=tree.root, count=len(receipts), status=2
    )
    jm.final |= {(batch_id, i) for i in range(len(receipts))}
    return tree


@pytest.fixture
def node() -> KeySigner:
    return KeySigner(NODE_KEY, DOMAIN)


@pytest.fixture
def honest(node: KeySigner) -> dict[str, Any]:
    """An honest node served three jobs and committed them as batch 7 (final)."""
    jm = FakeJobManager()
    answers = [([1, 2, 3, 4], [10, -10]), ([5, 6, 7, 8], [3, 4]), ([0, 0, 0, 1], [9, 9])]
    receipts = [serve(node, i + 1, MODEL, x, y) for i, (x, y) in enumerate(answers)]
    tree = commit(jm, 7, node.address, MODEL, receipts)
    return {"jm": jm, "receipts": receipts, "tree": tree, "answers": answers}


def check(jm: FakeJobManager, receipt: Receipt, node: str, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "node": node,
        "model_id": MODEL,
        "batch_id": 7,
        "job_manager": jm,
        "chain_id": CHAIN_ID,
    }
    args.update(overrides)
    return check_receipt_onchain(receipt, **args)


# --- the digest -------------------------------------------------------------------------


def test_domainDigest_equalsEncodingReceiptDigest_andTheSharedVectors() -> None:
    leaf = keccak(b"leaf")
    assert DOMAIN.digest(leaf) == receipt_digest(CHAIN_ID, JM, leaf)
    vectors = json.loads(VECTORS.read_text())["receipt_digest"]
    assert vectors, "no receipt_digest vectors"
    for v in vectors:
        domain = ReceiptDomain(int(v["chainId"]), v["jobManager"])
        assert "0x" + domain.digest(bytes.fromhex(v["leaf"][2:])).hex() == v["digest"]


def test_signer_signsTheDomainDigest_notTheBareLeaf(node: KeySigner) -> None:
    leaf = keccak(b"leaf")
    sig = node.sign_leaf(leaf)
    assert recover_signer(DOMAIN.digest(leaf), sig) == node.address
    assert recover_signer(leaf, sig) != node.address


def test_receiptJson_roundTrips_withDomain(honest: dict[str, Any]) -> None:
    r = honest["receipts"][0]
    data = r.to_json()
    assert data["chainId"] == CHAIN_ID and data["jobManager"].lower() == JM
    assert Receipt.from_json(data) == r
    with pytest.raises(EncodingError, match="chainId"):
        Receipt.from_json({k: v for k, v in data.items() if k != "chainId"})


def test_receiptJson_fieldOrderAndHex_asServed(honest: dict[str, Any]) -> None:
    """The JSON dApps read (docs/dapp-developers.md): field names and order, 0x hex bytes."""
    r = honest["receipts"][0]
    data = r.to_json()
    assert list(data) == [
        "jobId", "modelId", "inputHash", "outputHash", "leaf", "node", "signature", "chainId",
        "jobManager",
    ]  # fmt: skip
    assert data["modelId"] == "0x" + r.model_id.hex() and data["leaf"] == "0x" + r.leaf.hex()
    assert data["signature"] == "0x" + r.signature.hex()
    assert r.to_model().model_dump_json() == json.dumps(data, separators=(",", ":"))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("modelId", "0x" + "ab" * 31, "must be 32 bytes"),
        ("inputHash", "0xzz" + "00" * 31, "not hex"),
        ("signature", 12, "signature"),
    ],
)
def test_receiptFromJson_malformedField_isAnEncodingError(
    honest: dict[str, Any], field: str, value: Any, match: str
) -> None:
    data = {**honest["receipts"][0].to_json(), field: value}
    with pytest.raises(EncodingError, match=match):
        Receipt.from_json(data)


# --- verify_receipt ---------------------------------------------------------------------


def test_verifyReceipt_requiresTheExpectedNode(node: KeySigner, honest: dict[str, Any]) -> None:
    r = honest["receipts"][0]
    assert verify_receipt(r, node.address)
    assert verify_receipt(r, node.address, DOMAIN)
    assert not verify_receipt(r, KeySigner(OTHER_KEY, DOMAIN).address)
    with pytest.raises(TypeError):
        verify_receipt(r)  # type: ignore[call-arg]  # no self-declared signer


def test_attack_selfDeclaredSigner_isRefused(node: KeySigner) -> None:
    """Anyone can sign a receipt and name themselves as its node: only the node the caller
    asked counts (v1's ``verify_receipt(receipt)`` accepted the receipt's own ``node``)."""
    forger = KeySigner(OTHER_KEY, DOMAIN)
    forged = serve(forger, 1, MODEL, [1, 2, 3, 4], [666, 666])
    assert not verify_receipt(forged, node.address)
    # Claiming to be the node does not help either: the signature is the forger's.
    assert not verify_receipt(replace(forged, node=node.address), node.address)


def test_verifyReceipt_alteredOutputHash_isRefused(node: KeySigner, honest: dict[str, Any]):
    r = replace(honest["receipts"][0], output_hash=hash_vector([0, 0]))
    assert not verify_receipt(r, node.address)


def test_attack_receiptReplayedOnAnotherDeployment_isRefusedOffchain(node: KeySigner) -> None:
    r = serve(node, 1, MODEL, [1, 2, 3, 4], [10, -10])
    assert not verify_receipt(r, node.address, ReceiptDomain(CHAIN_ID, OTHER_JM))
    assert not verify_receipt(r, node.address, ReceiptDomain(CHAIN_ID + 1, JM))
    # Rewriting the receipt's domain fields breaks its signature.
    assert not verify_receipt(replace(r, job_manager=OTHER_JM), node.address)
    assert not verify_receipt(replace(r, chain_id=1), node.address)


# --- check_receipt_onchain ----------------------------------------------------------------


def test_check_honestReceipt_isOk_atEveryIndex(node: KeySigner, honest: dict[str, Any]):
    jm, tree = honest["jm"], honest["tree"]
    for i, (r, (x, y)) in enumerate(zip(honest["receipts"], honest["answers"], strict=True)):
        result = check(jm, r, node.address, input_q=x, output_q=y, index=i, proof=tree.proof(i))
        assert result.ok, result.failures


def test_check_acceptsHexStringProofs_asTheNodeServesThem(
    node: KeySigner, honest: dict[str, Any]
) -> None:
    """Issue 13: the proof from ``GET /v1/jobs/{id}`` (hex strings) raised a TypeError."""
    jm, tree, r = honest["jm"], honest["tree"], honest["receipts"][1]
    x, y = honest["answers"][1]
    for proof in (
        ["0x" + s.hex() for s in tree.proof(1)],
        [s.hex() for s in tree.proof(1)],
        [HexBytes(s) for s in tree.proof(1)],
    ):
        result = check(jm, r, node.address, input_q=x, output_q=y, index=1, proof=proof)
        assert result.ok, result.failures
    # A receipt straight from the node's JSON, with the model id as a hex string.
    parsed = Receipt.from_json(json.loads(json.dumps(r.to_json())))
    result = check(
        jm, parsed, node.address, model_id="0x" + MODEL.hex(),
        input_q=x, output_q=y, index=1, proof=["0x" + s.hex() for s in tree.proof(1)],
    )  # fmt: skip
    assert result.ok


def test_attack_outputAnsweredWithAnotherCorrectPairsReceipt_isRefused(
    node: KeySigner,
) -> None:
    """Issue 11, 6: the node answers the dApp's input with output X (anything), hands it a
    receipt for another, correct pair that it commits honestly. Every part of that receipt is
    genuine and final; it does not answer the dApp's question."""
    jm = FakeJobManager()
    asked_input, served_output = [1, 2, 3, 4], [999, 999]  # X: covered by no hash
    other = serve(node, 1, MODEL, [5, 6, 7, 8], [3, 4])  # a correct pair, committed
    tree = commit(jm, 7, node.address, MODEL, [other])
    result = check(
        jm, other, node.address, input_q=asked_input, output_q=served_output,
        index=0, proof=tree.proof(0),
    )  # fmt: skip
    assert not result.ok
    assert not result.answers_question and not result.signed_by_node and not result.in_batch
    # Same input, the honest output of the committed pair would still not be the served X.
    same_input = serve(node, 2, MODEL, asked_input, [3, 4])
    tree = commit(jm, 8, node.address, MODEL, [same_input])
    result = check(
        jm, same_input, node.address, batch_id=8, input_q=asked_input,
        output_q=served_output, index=0, proof=tree.proof(0),
    )  # fmt: skip
    assert not result.ok and not result.in_batch


def test_attack_receiptForACheaperModel_isRefused(node: KeySigner) -> None:
    """The node runs a cheaper model on the dApp's input and commits that (correct) leaf in a
    batch of the cheaper model; the dApp asked for MODEL."""
    jm = FakeJobManager()
    x, y = [1, 2, 3, 4], [10, -10]
    cheap = serve(node, 1, CHEAP_MODEL, x, y)
    tree = commit(jm, 7, node.address, CHEAP_MODEL, [cheap])
    result = check(jm, cheap, node.address, input_q=x, output_q=y, index=0, proof=tree.proof(0))
    assert not result.ok
    assert not result.answers_question and not result.in_batch


def test_attack_receiptReplayedOnAnotherDeployment_isRefusedOnchain(node: KeySigner) -> None:
    """A receipt (and a batch) from deployment A, checked against deployment B: another
    JobManager address, or the same address on another chain."""
    x, y = [1, 2, 3, 4], [10, -10]
    r = serve(node, 1, MODEL, x, y)
    other_jm = FakeJobManager(address=OTHER_JM)
    tree = commit(other_jm, 7, node.address, MODEL, [r])  # the same leaf, also on B
    result = check(other_jm, r, node.address, input_q=x, output_q=y, index=0, proof=tree.proof(0))
    assert not result.ok
    assert not result.signed_by_node and not result.same_deployment
    same_jm = FakeJobManager()
    tree = commit(same_jm, 7, node.address, MODEL, [r])
    result = check(
        same_jm, r, node.address, chain_id=CHAIN_ID + 1,
        input_q=x, output_q=y, index=0, proof=tree.proof(0),
    )  # fmt: skip
    assert not result.ok and not result.signed_by_node


def test_check_wrongIndex_isRefused_evenWithAValidProofElsewhere(
    node: KeySigner, honest: dict[str, Any]
) -> None:
    jm, tree, r = honest["jm"], honest["tree"], honest["receipts"][0]
    x, y = honest["answers"][0]
    result = check(jm, r, node.address, input_q=x, output_q=y, index=1, proof=tree.proof(0))
    assert not result.ok and not result.in_batch


def test_check_batchOfAnotherNode_isRefused(node: KeySigner) -> None:
    jm = FakeJobManager()
    x, y = [1, 2, 3, 4], [10, -10]
    r = serve(node, 1, MODEL, x, y)
    tree = commit(jm, 7, KeySigner(OTHER_KEY, DOMAIN).address, MODEL, [r])
    result = check(jm, r, node.address, input_q=x, output_q=y, index=0, proof=tree.proof(0))
    assert not result.ok and not result.in_batch


def test_check_notFinal_isNotOk(node: KeySigner, honest: dict[str, Any]) -> None:
    jm, tree, r = honest["jm"], honest["tree"], honest["receipts"][2]
    x, y = honest["answers"][2]
    jm.final.discard((7, 2))
    result = check(jm, r, node.address, input_q=x, output_q=y, index=2, proof=tree.proof(2))
    assert result.signed_by_node and result.in_batch and result.answers_question
    assert not result.ok and result.failures == ["leaf_final"]


def test_check_malformedProof_isAVerdict_unknownBatch_raises(
    node: KeySigner, honest: dict[str, Any]
) -> None:
    jm, r = honest["jm"], honest["receipts"][0]
    x, y = honest["answers"][0]
    for proof in (["0xzz"], [b"\x01" * 31, b"\x02" * 32], []):
        result = check(jm, r, node.address, input_q=x, output_q=y, index=0, proof=proof)
        assert not result.ok and not result.in_batch
    with pytest.raises(ChainError, match="batch 99"):
        check(jm, r, node.address, batch_id=99, input_q=x, output_q=y, index=0, proof=[])


def test_parseProof_refusesOneString() -> None:
    with pytest.raises(EncodingError):
        parse_proof("0x" + "00" * 32)  # type: ignore[arg-type]
    assert parse_proof(["0x" + "01" * 32]) == [b"\x01" * 32]


# --- the input domain ---------------------------------------------------------------------


def test_check_inputOutsideTheModelsDomain_isNotOk_atEitherEdge(node: KeySigner) -> None:
    """Challengers never dispute a leaf whose input is outside ``[inLo, inHi]``: its output
    is at no risk however final, so the check refuses it (``in_domain``)."""
    jm = FakeJobManager()
    jm.models.domains[MODEL] = (0, 10)
    for x, inside in (([0, 10, 5, 5], True), ([-1, 0, 0, 0], False), ([0, 0, 0, 11], False)):
        r = serve(node, 1, MODEL, x, [1, 1])
        tree = commit(jm, 7, node.address, MODEL, [r])
        result = check(
            jm, r, node.address, input_q=x, output_q=[1, 1], index=0, proof=tree.proof(0)
        )
        assert result.in_domain is inside and result.ok is inside
        assert result.failures == ([] if inside else ["in_domain"])


def test_check_registryGiven_isRead_notTheJobManagersOwn(node: KeySigner, honest: dict[str, Any]):
    jm, tree, r = honest["jm"], honest["tree"], honest["receipts"][0]
    x, y = honest["answers"][0]  # [1, 2, 3, 4]
    narrow = FakeRegistry(domains={MODEL: (2, 4)})
    result = check(
        jm, r, node.address, input_q=x, output_q=y, index=0, proof=tree.proof(0), registry=narrow
    )
    assert not result.ok and result.failures == ["in_domain"]


def test_check_noRegistryReachable_isNotOk_unknownModel_raises(
    node: KeySigner, honest: dict[str, Any]
) -> None:
    jm, tree, r = honest["jm"], honest["tree"], honest["receipts"][0]
    x, y = honest["answers"][0]

    # A JobManager stand-in with the two batch views only.
    minimal = SimpleNamespace(
        address=JM, getBatch=jm.getBatch, isBatchLeafFinal=jm.isBatchLeafFinal
    )
    result = check(minimal, r, node.address, input_q=x, output_q=y, index=0, proof=tree.proof(0))
    assert not result.ok and result.failures == ["in_domain"]  # unknown domain: fail closed
    jm.models.unknown.add(MODEL)
    with pytest.raises(ChainError, match="ModelRegistry"):
        check(jm, r, node.address, input_q=x, output_q=y, index=0, proof=tree.proof(0))
