"""Receipts: what a client gets for a served job, and how anyone checks one.

A receipt names ``(jobId, modelId, inputHash, outputHash)`` and carries the node's EIP-191
signature over the batch leaf built from them. Off-chain, :func:`verify_receipt` proves the
node vouched for this output. On-chain, :func:`check_receipt_onchain` proves the leaf is in
a batch root the node committed (so it can be disputed, and is usable once final).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account
from eth_account.messages import encode_defunct

from spotcheck.encoding import leaf_hash
from spotcheck.merkle import verify as merkle_verify


def ecdsa_backend() -> str:
    """eth-keys' ECDSA backend, which every signer here goes through.

    ``CoinCurveECCBackend`` (libsecp256k1, ~0.1 ms per receipt) whenever ``coincurve`` is
    installed, as it is by this package's pins; otherwise the pure-Python ``NativeECCBackend``
    (~4 ms per receipt, same signatures).
    """
    from eth_keys.backends import get_backend

    return type(get_backend()).__name__


class Signer(Protocol):
    """Signs batch leaves with the node's key (EIP-191 ``personal_sign``)."""

    @property
    def address(self) -> str: ...

    def sign_leaf(self, leaf: bytes) -> bytes: ...


class ApeSigner:
    """The node's Ape account as a leaf signer (a keyfile account needs autosign enabled)."""

    def __init__(self, account: Any) -> None:
        self._account = account

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_leaf(self, leaf: bytes) -> bytes:
        sig = self._account.sign_message(encode_defunct(primitive=leaf))
        if sig is None:
            raise PermissionError("the node account refused to sign (enable autosign)")
        return bytes(sig.encode_rsv())


class KeySigner:
    """A raw private key as a leaf signer (tests and benchmarks)."""

    def __init__(self, private_key: bytes | str) -> None:
        self._account = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_leaf(self, leaf: bytes) -> bytes:
        return bytes(self._account.sign_message(encode_defunct(primitive=leaf)).signature)


@dataclass(frozen=True)
class Receipt:
    job_id: int
    model_id: bytes
    input_hash: bytes
    output_hash: bytes
    node: str
    signature: bytes

    @property
    def leaf(self) -> bytes:
        return leaf_hash(self.job_id, self.model_id, self.input_hash, self.output_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "modelId": "0x" + self.model_id.hex(),
            "inputHash": "0x" + self.input_hash.hex(),
            "outputHash": "0x" + self.output_hash.hex(),
            "leaf": "0x" + self.leaf.hex(),
            "node": self.node,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        return cls(
            job_id=int(data["jobId"]),
            model_id=_b(data["modelId"]),
            input_hash=_b(data["inputHash"]),
            output_hash=_b(data["outputHash"]),
            node=str(data["node"]),
            signature=_b(data["signature"]),
        )


def _b(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def recover_signer(leaf: bytes, signature: bytes) -> str:
    return str(Account.recover_message(encode_defunct(primitive=leaf), signature=signature))


def verify_receipt(receipt: Receipt, node: str | None = None) -> bool:
    """True iff the receipt is signed by its node (and, if given, that node is ``node``)."""
    try:
        signer = recover_signer(receipt.leaf, receipt.signature)
    except Exception:  # malformed signature bytes: eth_account raises several types
        return False
    expected = node or receipt.node
    return signer.lower() == expected.lower() == receipt.node.lower()


@dataclass(frozen=True)
class OnchainReceiptCheck:
    """Verdict of checking a receipt against a committed batch."""

    signed_by_node: bool
    in_batch: bool
    batch_final: bool
    leaf_final: bool

    @property
    def ok(self) -> bool:
        return self.signed_by_node and self.in_batch


def check_receipt_onchain(
    receipt: Receipt, batch_id: int, proof: Sequence[bytes], job_manager: Any
) -> OnchainReceiptCheck:
    """Check ``receipt`` against batch ``batch_id`` on chain (``job_manager``: Ape contract).

    ``in_batch`` holds iff the batch was committed by the receipt's node, for its model, and
    ``proof`` proves the receipt's leaf in the batch root. ``leaf_final`` says whether the
    output may be used yet (``isBatchJobFinal``).
    """
    batch = job_manager.getBatch(batch_id)
    same_node = str(batch.node).lower() == receipt.node.lower()
    same_model = bytes(batch.modelId) == receipt.model_id
    in_root = merkle_verify(list(proof), bytes(batch.root), receipt.leaf)
    return OnchainReceiptCheck(
        signed_by_node=verify_receipt(receipt),
        in_batch=same_node and same_model and in_root,
        batch_final=int(batch.status) == 2,
        leaf_final=bool(job_manager.isBatchJobFinal(batch_id, receipt.job_id)),
    )
