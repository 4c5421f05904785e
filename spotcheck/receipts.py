"""Receipts: what a client gets for a served job, and how a dApp checks one (v2 protocol, 7).

A receipt names ``(jobId, modelId, inputHash, outputHash)`` and the deployment it was issued
for (``chainId``, ``jobManager``). The node signs, EIP-191 ``personal_sign``, the receipt
digest ``keccak256(abi.encode(keccak256("spotcheck.receipt.v2"), chainId, jobManager, leaf))``
(:func:`spotcheck.encoding.receipt_digest`), so a receipt never replays on another chain or
another deployment.

Batched requests: the node signs once per request. ``leaf`` in the digest is then the
request's *sub-root*, the positional Merkle root (same rules as :mod:`spotcheck.merkle`:
ordered pairs, zero padding, depth ``ceil(log2(n))``) of the request's leaves in request order.
Each receipt carries its position ``subIndex`` and the ``subProof`` siblings, bottom up, so it
is checked on its own: the reader rebuilds the leaf from its own data, rebuilds the sub-root
from the leaf, ``subIndex`` and ``subProof``, and checks the signature over that sub-root. A
one-job request's sub-root is its leaf (index 0, empty path): exactly the receipts of before.
Nothing else changes: a path from another request, another position, or a sub-root signed for
another deployment rebuilds a digest the node never signed.

A receipt proves nothing by itself about the dApp's own question. :func:`check_receipt_onchain`
takes what the dApp holds (the node it asked, the model id it asked for, the input it sent and
the output it got), rebuilds the leaf from them, and checks the node's signature over that leaf
for this deployment, the leaf at its position in a batch the node committed for that model,
and that the leaf is final. A node that answers with another job's receipt (another input, a
cheaper model, or a correct pair while it served something else) fails the check. So does an
input outside the model's registered domain ``[inLo, inHi]`` (``ModelRegistry.getModel``):
challengers never dispute such a leaf (no proof can exist for it), so its output is at no risk
however final it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from pydantic import ValidationError

from spotcheck.encoding import (
    RECEIPT_TYPEHASH,
    input_hash,
    keccak256,
    leaf_hash,
    output_hash,
    receipt_digest,
)
from spotcheck.errors import ChainError, EncodingError
from spotcheck.merkle import path_root
from spotcheck.merkle import verify as merkle_verify
from spotcheck.wire import ReceiptModel, as_bytes32

log = logging.getLogger(__name__)


def ecdsa_backend() -> str:
    """eth-keys' ECDSA backend, which every signer here goes through.

    ``CoinCurveECCBackend`` (libsecp256k1, ~0.1 ms per receipt) whenever ``coincurve`` is
    installed, as it is by this package's pins; otherwise the pure-Python ``NativeECCBackend``
    (~4 ms per receipt, same signatures).
    """
    from eth_keys.backends import get_backend

    return type(get_backend()).__name__


@dataclass(frozen=True)
class ReceiptDomain:
    """The deployment a receipt is valid for: one chain id, one JobManager address."""

    chain_id: int
    job_manager: str

    def __post_init__(self) -> None:
        if not 0 <= self.chain_id < 2**256:
            raise EncodingError(f"chainId {self.chain_id} does not fit uint256")
        try:
            address = to_checksum_address(self.job_manager)
        except ValueError as err:
            raise EncodingError(f"jobManager {self.job_manager!r} is not an address") from err
        object.__setattr__(self, "job_manager", address)
        # abi.encode(bytes32, uint256, address, bytes32) is four words: the first three are
        # fixed per deployment, so the node's hot path hashes one concatenation per receipt.
        prefix = (
            RECEIPT_TYPEHASH
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(address[2:])
        )
        object.__setattr__(self, "_prefix", prefix)

    def digest(self, leaf: bytes) -> bytes:
        """:func:`spotcheck.encoding.receipt_digest` for this deployment (same bytes)."""
        if len(leaf) != 32:
            raise EncodingError(f"leaf must be 32 bytes, got {len(leaf)}")
        return keccak256(self._prefix + bytes(leaf))  # type: ignore[attr-defined]

    @classmethod
    def of(cls, job_manager: Any, chain_id: int | None = None) -> ReceiptDomain:
        """The domain of a deployed JobManager (Ape contract instance or address).

        ``chain_id`` defaults to the connected chain's.
        """
        if chain_id is None:
            from ape import chain

            chain_id = int(chain.chain_id)
        return cls(int(chain_id), str(getattr(job_manager, "address", job_manager)))


class Signer(Protocol):
    """Signs batch leaves, or a request's sub-root, with the node's key for one deployment
    (EIP-191 ``personal_sign`` over the receipt digest)."""

    @property
    def address(self) -> str: ...

    @property
    def domain(self) -> ReceiptDomain: ...

    def sign_leaf(self, leaf: bytes) -> bytes: ...


class ApeSigner:
    """The node's Ape account as a leaf signer (a keyfile account needs autosign enabled)."""

    def __init__(self, account: Any, domain: ReceiptDomain) -> None:
        self._account = account
        self._domain = domain

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def domain(self) -> ReceiptDomain:
        return self._domain

    def sign_leaf(self, leaf: bytes) -> bytes:
        sig = self._account.sign_message(encode_defunct(primitive=self._domain.digest(leaf)))
        if sig is None:
            raise PermissionError("the node account refused to sign (enable autosign)")
        return bytes(sig.encode_rsv())


class KeySigner:
    """A raw private key as a leaf signer (tests and benchmarks)."""

    def __init__(self, private_key: bytes | str, domain: ReceiptDomain) -> None:
        self._account = Account.from_key(private_key)
        self._domain = domain

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def domain(self) -> ReceiptDomain:
        return self._domain

    def sign_leaf(self, leaf: bytes) -> bytes:
        message = encode_defunct(primitive=self._domain.digest(leaf))
        return bytes(self._account.sign_message(message).signature)


@dataclass(frozen=True)
class Receipt:
    """A node's signed statement that it served ``outputHash`` for ``(modelId, inputHash)``
    as its job ``jobId``, on the deployment ``(chainId, jobManager)``."""

    job_id: int
    model_id: bytes
    input_hash: bytes
    output_hash: bytes
    node: str
    signature: bytes
    chain_id: int
    job_manager: str
    #: Position of the job's leaf in its request, and the siblings up to the signed sub-root.
    sub_index: int = 0
    sub_proof: tuple[bytes, ...] = ()

    @property
    def leaf(self) -> bytes:
        return leaf_hash(self.job_id, self.model_id, self.input_hash, self.output_hash)

    def signed_root(self, leaf: bytes) -> bytes | None:
        """The sub-root this receipt's path rebuilds from ``leaf`` (None: a malformed path)."""
        return path_root(leaf, self.sub_index, self.sub_proof)

    @property
    def domain(self) -> ReceiptDomain:
        return ReceiptDomain(self.chain_id, self.job_manager)

    def to_model(self) -> ReceiptModel:
        """The receipt as served (:class:`spotcheck.wire.ReceiptModel`)."""
        return ReceiptModel(
            jobId=self.job_id,
            modelId=self.model_id,
            inputHash=self.input_hash,
            outputHash=self.output_hash,
            leaf=self.leaf,
            node=self.node,
            signature=self.signature,
            chainId=self.chain_id,
            jobManager=self.job_manager,
            subIndex=self.sub_index,
            subProof=list(self.sub_proof),
        )

    def to_json(self) -> dict[str, Any]:
        return self.to_model().model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        """Parse a receipt as a node serves it (``leaf`` is recomputed, never trusted)."""
        try:
            m = ReceiptModel.model_validate(data)
        except ValidationError as err:
            first = err.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            if first["type"] == "missing":
                raise EncodingError(f"receipt has no {where!r} field") from err
            raise EncodingError(f"receipt {where}: {first['msg']}") from err
        return cls(
            m.jobId,
            m.modelId,
            m.inputHash,
            m.outputHash,
            m.node,
            m.signature,
            m.chainId,
            m.jobManager,
            m.subIndex,
            tuple(m.subProof),
        )


def parse_proof(proof: Sequence[Any]) -> list[bytes]:
    """A Merkle proof as a list of 32-byte siblings; each may be bytes or a hex string (the
    node's ``GET /v1/jobs/{id}`` serves hex strings)."""
    if isinstance(proof, str | bytes):
        raise EncodingError("a proof is a list of 32-byte siblings, not one string")
    return [as_bytes32(sibling, f"proof[{i}]") for i, sibling in enumerate(proof)]


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The address whose EIP-191 ``personal_sign`` of ``digest`` is ``signature``."""
    return str(Account.recover_message(encode_defunct(primitive=digest), signature=signature))


def _signed_by(digest: bytes, signature: bytes, node: str) -> bool:
    try:
        signer = recover_signer(digest, signature)
    except Exception:  # malformed signature bytes: eth_account raises several types
        return False
    return signer.lower() == node.lower()


def verify_receipt(receipt: Receipt, node: str, domain: ReceiptDomain | None = None) -> bool:
    """True iff ``node`` (the node the caller asked; never the receipt's own ``node`` field)
    signed the receipt's leaf for the receipt's deployment, which must be ``domain`` if given.
    """
    if not node or receipt.node.lower() != node.lower():
        return False
    try:
        own = receipt.domain
    except EncodingError:
        return False
    if domain is not None and own != domain:
        return False
    try:
        root = receipt.signed_root(receipt.leaf)
    except EncodingError:
        return False
    return root is not None and _signed_by(own.digest(root), receipt.signature, node)


@dataclass(frozen=True)
class OnchainReceiptCheck:
    """Verdict of checking a receipt against what the dApp holds and a committed batch.

    ``ok`` is the only field a dApp should act on: every check below holds.
    """

    #: The receipt names the model the dApp asked for, and the hashes of the input it sent
    #: and the output it got.
    answers_question: bool
    #: The receipt was issued for this deployment (chain id and JobManager address).
    same_deployment: bool
    #: The node the dApp asked signed the sub-root rebuilt from the leaf of the dApp's own
    #: data and the receipt's path (the leaf itself for a one-job request).
    signed_by_node: bool
    #: That leaf is leaf ``index`` of batch ``batchId``, committed by that node for that model.
    in_batch: bool
    #: ``isBatchLeafFinal(batchId, index)``: not invalid, and proven or its batch final (read
    #: only when ``in_batch`` holds: the finality of some other leaf says nothing here).
    leaf_final: bool
    #: Every element of the dApp's input is inside the model's domain ``[inLo, inHi]``
    #: (``ModelRegistry.getModel(modelId)``). Challengers never dispute a leaf outside it (no
    #: proof can exist for it), so such an output is unchecked however final. False too when
    #: the domain could not be read (no registry reachable from the JobManager given).
    in_domain: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.answers_question
            and self.same_deployment
            and self.signed_by_node
            and self.in_batch
            and self.leaf_final
            and self.in_domain
        )

    @property
    def failures(self) -> list[str]:
        """Names of the checks that failed (empty iff ``ok``)."""
        names = ("answers_question", "same_deployment", "signed_by_node", "in_batch")
        return [n for n in (*names, "leaf_final", "in_domain") if not getattr(self, n)]


def model_registry_of(job_manager: Any) -> Any | None:
    """The ModelRegistry a JobManager reads (``JobManager.registry()``), or None if the
    object given has no such view (a minimal stand-in). Raises ChainError if the call fails."""
    view = getattr(job_manager, "registry", None)
    if view is None:
        return None
    try:
        registry = view() if callable(view) else view
    except Exception as err:  # RPC failure: cannot decide
        raise ChainError(f"cannot read JobManager.registry(): {err}") from err
    if hasattr(registry, "getModel"):
        return registry
    from spotcheck.chain import compiled_instance

    try:
        return compiled_instance("ModelRegistry", str(getattr(registry, "address", registry)))
    except Exception as err:
        raise ChainError(f"cannot load the ModelRegistry at {registry}: {err}") from err


def input_in_domain(model: Any, input_q: Sequence[int]) -> bool:
    """True iff every element of ``input_q`` is in ``[model.inLo, model.inHi]``."""
    lo, hi = int(model.inLo), int(model.inHi)
    return all(lo <= int(v) <= hi for v in input_q)


def check_receipt_onchain(
    receipt: Receipt,
    *,
    node: str,
    model_id: bytes | str,
    input_q: Sequence[int],
    output_q: Sequence[int],
    batch_id: int,
    index: int,
    proof: Sequence[bytes | str],
    job_manager: Any,
    chain_id: int | None = None,
    registry: Any | None = None,
) -> OnchainReceiptCheck:
    """Check a served output against the chain, from what the dApp holds.

    ``node``: the node the dApp asked; ``model_id``: the model it asked for; ``input_q``: the
    quantized input it sent; ``output_q``: the quantized output it got (the floats the node
    also returns are covered by no hash: use ``output_q``). ``batch_id``, ``index`` and
    ``proof`` (bytes or hex strings, as ``GET /v1/jobs/{jobId}`` serves them) locate the leaf;
    ``job_manager`` is the deployment's JobManager (Ape contract instance); ``chain_id``
    defaults to the connected chain's; ``registry`` is its ModelRegistry (by default the one
    ``job_manager.registry()`` names), read for the model's input domain.

    The leaf is rebuilt from the receipt's job id and the dApp's own model id, input hash and
    output hash; nothing else in the receipt is trusted. Raises :class:`ChainError` only when
    the chain cannot answer (an unknown batch or model, an RPC failure); every other failure
    is a verdict in the result.
    """
    domain = ReceiptDomain.of(job_manager, chain_id)
    asked_model = as_bytes32(model_id, "model_id")
    in_hash = input_hash(input_q)
    out_hash = output_hash(output_q)
    answers_question = (
        receipt.model_id == asked_model
        and receipt.input_hash == in_hash
        and receipt.output_hash == out_hash
    )
    try:
        same_deployment = receipt.domain == domain
    except EncodingError:
        same_deployment = False
    leaf = leaf_hash(receipt.job_id, asked_model, in_hash, out_hash)
    root = receipt.signed_root(leaf)
    signed = root is not None and _signed_by(domain.digest(root), receipt.signature, node)

    try:
        batch = job_manager.getBatch(batch_id)
    except Exception as err:  # UnknownBatch revert or RPC failure: cannot decide
        raise ChainError(f"batch {batch_id}: cannot read it from JobManager: {err}") from err
    try:
        siblings = parse_proof(proof)
    except EncodingError as err:
        log.info("batch %d index %d: malformed proof: %s", batch_id, index, err)
        siblings = None
    in_root = siblings is not None and merkle_verify(
        siblings, bytes(batch.root), leaf, index, int(batch.count)
    )
    in_batch = (
        str(batch.node).lower() == node.lower() and bytes(batch.modelId) == asked_model and in_root
    )
    leaf_final = in_batch and bool(job_manager.isBatchLeafFinal(batch_id, index))
    if registry is None:
        registry = model_registry_of(job_manager)
    if registry is None:
        log.warning("no ModelRegistry to read the input domain from: in_domain is False")
        in_domain = False
    else:
        try:
            model = registry.getModel(asked_model)
        except Exception as err:  # UnknownModel revert or RPC failure: cannot decide
            raise ChainError(
                f"model 0x{asked_model.hex()}: cannot read it from ModelRegistry: {err}"
            ) from err
        in_domain = input_in_domain(model, input_q)
    return OnchainReceiptCheck(
        answers_question=answers_question,
        same_deployment=same_deployment,
        signed_by_node=signed,
        in_batch=in_batch,
        leaf_final=leaf_final,
        in_domain=in_domain,
    )


__all__ = [
    "ApeSigner",
    "KeySigner",
    "OnchainReceiptCheck",
    "Receipt",
    "ReceiptDomain",
    "Signer",
    "as_bytes32",
    "check_receipt_onchain",
    "ecdsa_backend",
    "input_in_domain",
    "model_registry_of",
    "parse_proof",
    "receipt_digest",
    "recover_signer",
    "verify_receipt",
]
