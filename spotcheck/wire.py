"""The wire formats: what the node serves over HTTP and its clients read, defined once.

Pydantic models used by both ends: the node (``prover/api.py``) answers with them as FastAPI
``response_model``s, the challenger (``challenger/batches.py``) validates listings with them,
and :class:`spotcheck.receipts.Receipt` reads and writes its JSON through
:class:`ReceiptModel`. Field names follow the contracts (camelCase); bytes travel as ``0x``
hex, vector elements as JSON integers (an ``int256`` may also come as a decimal or ``0x`` hex
string). Field order is the order served.

- :class:`ReceiptModel`: a signed receipt (``POST /v1/models/{modelId}/infer``).
- :class:`BatchListing` of :class:`BatchLeaf`: a committed batch (``GET /v1/batches/{id}``).
- :class:`BatchLeafProof`: one leaf with its Merkle proof (``GET /v1/batches/{id}/jobs/{job}``).
- :class:`JobStatus` / :class:`CommittedJob`: where a served job is (``GET /v1/jobs/{job}``).

A client needs only what it cannot recompute: a listing's leaves (``jobId``, ``inputQ``,
``outputQ``); the hashes, leaf and signature the node adds are optional when read, and a
challenger rebuilds them from the vectors, never trusting them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    StrictInt,
    WithJsonSchema,
)

from spotcheck.encoding import INT256_MAX, INT256_MIN
from spotcheck.errors import EncodingError

UINT256_MAX = 2**256 - 1


def hex_bytes(value: Any, what: str) -> bytes:
    """``value`` (bytes, HexBytes, or a hex string with or without ``0x``) as bytes."""
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x").removeprefix("0X"))
        except ValueError as err:
            raise EncodingError(f"{what} {value!r} is not hex") from err
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise EncodingError(f"{what} must be bytes or a hex string, got {type(value).__name__}")


def as_bytes32(value: Any, what: str = "value") -> bytes:
    """``value`` (bytes, HexBytes, or a hex string with or without ``0x``) as 32 bytes."""
    out = hex_bytes(value, what)
    if len(out) != 32:
        raise EncodingError(f"{what} must be 32 bytes, got {len(out)}")
    return out


def _to_hex(value: bytes) -> str:
    return "0x" + value.hex()


#: 32 bytes (ids, hashes, roots, proof siblings): read from hex (``0x`` optional) or bytes,
#: served as ``0x`` and 64 hex digits.
Bytes32 = Annotated[
    bytes,
    BeforeValidator(as_bytes32),
    PlainSerializer(_to_hex, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}),
]
#: Bytes of any length (signatures), read and served like :data:`Bytes32`.
HexData = Annotated[
    bytes,
    BeforeValidator(lambda v: hex_bytes(v, "value")),
    PlainSerializer(_to_hex, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$"}),
]


def _int_text(lo: int, hi: int, what: str) -> AfterValidator:
    def parse(text: str) -> int:
        value = int(text, 0)
        if not lo <= value <= hi:
            raise ValueError(f"{value} does not fit {what}")
        return value

    return AfterValidator(parse)


def _fits_int256(values: list[Any]) -> list[Any]:
    if values and not (min(values) >= INT256_MIN and max(values) <= INT256_MAX):
        i, v = next((i, v) for i, v in enumerate(values) if not INT256_MIN <= v <= INT256_MAX)
        raise ValueError(f"[{i}] = {v} does not fit int256")
    return values


#: A ``uint256``: a JSON integer, or a decimal or ``0x`` hex string (never a bool or a float).
Uint256 = (
    Annotated[StrictInt, Field(ge=0, le=UINT256_MAX)]
    | Annotated[str, _int_text(0, UINT256_MAX, "uint256")]
)
#: A vector of ``int256``, each read like :data:`Uint256`. All JSON integers (what a node
#: serves) take the fast branch; the range is checked once per vector (pydantic's own bounds
#: check on big integers costs four times the validation of the vector).
Int256s = Annotated[
    list[StrictInt] | list[StrictInt | Annotated[str, _int_text(INT256_MIN, INT256_MAX, "int256")]],
    Field(union_mode="left_to_right"),
    AfterValidator(_fits_int256),
]


class ReceiptModel(BaseModel):
    """A receipt as served: :class:`spotcheck.receipts.Receipt` on the wire. ``leaf`` is
    served for reference and never trusted when read (the reader recomputes it).

    ``signature`` signs the sub-root of the request the job was served in: the positional
    Merkle root (``spotcheck.merkle``) of the request's leaves, which ``subProof`` rebuilds
    from the leaf at position ``subIndex``. A one-job request's sub-root is its leaf
    (``subIndex`` 0, ``subProof`` empty; both may be left out): the receipts of before."""

    jobId: int  # noqa: N815 - JSON field names follow the contracts
    modelId: Bytes32  # noqa: N815
    inputHash: Bytes32  # noqa: N815
    outputHash: Bytes32  # noqa: N815
    leaf: Bytes32 | None = None
    node: str
    signature: HexData
    chainId: int  # noqa: N815
    jobManager: str  # noqa: N815
    #: Served only for a job of a batched request (a one-job receipt is served as before).
    subIndex: Annotated[StrictInt, Field(ge=0, exclude_if=lambda v: v == 0)] = 0  # noqa: N815
    subProof: list[Bytes32] = Field(default_factory=list, exclude_if=lambda v: not v)  # noqa: N815


class BatchLeaf(BaseModel):
    """One leaf of a committed batch, in leaf order: the job and its quantized vectors."""

    jobId: Uint256  # noqa: N815
    #: The leaf's position; when given, it must be its place in the listing.
    index: Uint256 | None = None
    inputQ: Int256s  # noqa: N815
    outputQ: Int256s  # noqa: N815
    inputHash: Bytes32 | None = None  # noqa: N815
    outputHash: Bytes32 | None = None  # noqa: N815
    leaf: Bytes32 | None = None
    #: The node's signature over the sub-root of the request that served the job (the leaf
    #: itself for a one-job request); the path to it is in the receipt the client got.
    signature: HexData | None = None


class LeafProof(BatchLeaf):
    """A leaf with its Merkle proof (siblings, leaf to root)."""

    proof: list[Bytes32]


class _BatchRef(BaseModel):
    batchId: int  # noqa: N815
    root: Bytes32


class BatchLeafProof(LeafProof, _BatchRef):
    """``GET /v1/batches/{batchId}/jobs/{jobId}``: the batch id and root, then the leaf and its
    proof (fields in that order: pydantic orders them by the bases, last base first)."""


class BatchListing(BaseModel):
    """``GET /v1/batches/{batchId}``: a committed batch and all its leaves, in leaf order.

    Only ``leaves`` is needed by a reader: the rest restates what the chain holds."""

    batchId: int | None = None  # noqa: N815
    modelId: Bytes32 | None = None  # noqa: N815
    root: Bytes32 | None = None
    count: int | None = None
    final: bool | None = None
    node: str | None = None
    leaves: list[BatchLeaf]


class JobStatus(BaseModel):
    """``GET /v1/jobs/{jobId}`` for a job not yet in a committed batch (``batchId`` null)."""

    jobId: Uint256  # noqa: N815
    status: str
    batchId: int | None  # noqa: N815


class CommittedJob(BatchLeafProof, JobStatus):  # type: ignore[misc]  # batchId: int here
    """``GET /v1/jobs/{jobId}`` for a job in a committed batch: the status, then the root, the
    leaf and its proof."""


#: What ``GET /v1/jobs/{jobId}`` answers: a committed job if it validates as one.
JobAnswer = Annotated[CommittedJob | JobStatus, Field(union_mode="left_to_right")]

__all__ = [
    "BatchLeaf",
    "BatchLeafProof",
    "BatchListing",
    "Bytes32",
    "CommittedJob",
    "HexData",
    "Int256s",
    "JobAnswer",
    "JobStatus",
    "LeafProof",
    "ReceiptModel",
    "Uint256",
    "as_bytes32",
    "hex_bytes",
]
