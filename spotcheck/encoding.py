"""The canonical encoding: fixed-point quantization, BN254 field elements, and the hashes.

This module is the only Python definition of every value that crosses the chain boundary.
The Solidity twin is ``contracts/libraries/SpotcheckHash.sol``; ``tests/vectors/encoding.json``
holds vectors that both sides assert.

- ``q = round_half_away(x * 2**scale)`` (ezkl rounds the same way), as a signed ``int256``.
- A signed value ``v`` is the field element ``v mod r``; field elements above ``r // 2`` are
  negative (``f - r``).
- ``inputHash  = sha256(abi.encode(int256[] inputQ))``, ``outputHash`` likewise (SHA-256, not
  keccak: ~4x faster off-chain on the node's hot path; see ``docs/architecture.md``).
- ``leaf = keccak256(bytes.concat(keccak256(abi.encode(uint256 jobId, bytes32 modelId,
  bytes32 inputHash, bytes32 outputHash))))`` (OpenZeppelin's double-hashed leaf).
- ``batchLeafKey = keccak256(abi.encode(uint8(1), batchId, index))`` (by position);
  ``receiptDigest`` binds a receipt to chain id and JobManager (docs/v2-protocol.md, 3 and 7).
  The positional tree lives in ``spotcheck/merkle.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from eth_abi import encode as abi_encode
from eth_utils import keccak

from spotcheck.errors import EncodingError

try:  # safe-pysha3 (pinned in requirements.lock): C keccak, ~1 us a call against ~20 us
    from sha3 import keccak_256 as _keccak_256  # type: ignore[import-not-found,unused-ignore]

    def keccak256(data: bytes) -> bytes:
        """``keccak256(data)`` (Ethereum's, not SHA3-256), on the fastest backend here."""
        return bytes(_keccak_256(data).digest())

except ImportError:  # pragma: no cover - eth-hash's own backend (pycryptodome), same bytes
    from eth_hash.auto import keccak as _eth_keccak

    def keccak256(data: bytes) -> bytes:
        """``keccak256(data)`` (Ethereum's, not SHA3-256), on the fastest backend here."""
        return bytes(_eth_keccak(data))


#: BN254 scalar field modulus (the field ezkl's circuits and the EVM verifier work in).
BN254_R = 21888242871839275222246405745257275088548364400416034343698204186575808495617
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1
#: Largest |q| that survives a float64 round trip exactly; inputs beyond it are rejected.
MAX_EXACT_FLOAT_INT = 2**53


def round_scaled(values: np.ndarray, scale: int) -> np.ndarray:
    """``sign(s) * floor(|s| + 0.5)`` for ``s = values * 2**scale``, as float64, in place:
    ``trunc(s + copysign(0.5, s))`` is the same number (float rounding is sign-symmetric), in
    three passes over the data instead of six. NaN and infinity stay as they are."""
    with np.errstate(over="ignore"):  # a value too large becomes infinity, refused after
        scaled = np.multiply(values, float(2**scale), dtype=np.float64)
    scaled += np.copysign(0.5, scaled)
    return np.trunc(scaled, out=scaled)


def all_exact(rounded: np.ndarray) -> bool:
    """Every value below 2**53 in magnitude (False on NaN or infinity)."""
    if rounded.size == 0:
        return True
    return bool(rounded.min() > -MAX_EXACT_FLOAT_INT and rounded.max() < MAX_EXACT_FLOAT_INT)


def quantize_array(values: np.ndarray | Sequence[float], scale: int) -> np.ndarray:
    """Fixed-point encode ``values`` (any shape, flattened row-major) at ``2**scale``, as int64."""
    if not 0 <= scale <= 64:
        raise EncodingError(f"scale {scale} outside 0..64")
    arr = np.asarray(values, dtype=np.float64).ravel()
    rounded = round_scaled(arr, scale)
    if all_exact(rounded):
        return rounded.astype(np.int64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise EncodingError(f"value at index {bad} is {arr[bad]} (NaN/infinity cannot be encoded)")
    raise EncodingError(f"value too large for scale {scale}: |q| must stay below 2**53")


def quantize(values: np.ndarray | Sequence[float], scale: int) -> list[int]:
    """:func:`quantize_array` as a list of Python ints (what crosses the chain boundary)."""
    return [int(v) for v in quantize_array(values, scale)]


def dequantize(q: np.ndarray | Sequence[int], scale: int) -> np.ndarray:
    """Inverse of :func:`quantize` (exact for |q| < 2**53)."""
    return np.asarray(q, dtype=np.float64) / float(2**scale)


def to_field(value: int) -> int:
    """Signed integer -> BN254 field element (negative values wrap to ``r - |v|``)."""
    if not -(BN254_R // 2) <= value <= BN254_R // 2:
        raise EncodingError(f"{value} does not fit the signed range of the BN254 field")
    return value % BN254_R


def from_field(element: int) -> int:
    """BN254 field element -> signed integer (elements above ``r // 2`` are negative)."""
    if not 0 <= element < BN254_R:
        raise EncodingError(f"{element} is not a BN254 field element")
    return element - BN254_R if element > BN254_R // 2 else element


def _check_int256(values: Iterable[int]) -> list[int]:
    out = [int(v) for v in values]
    for i, v in enumerate(out):
        if not INT256_MIN <= v <= INT256_MAX:
            raise EncodingError(f"element {i} = {v} does not fit int256")
    return out


def hash_vector(values: Iterable[int]) -> bytes:
    """``sha256(abi.encode(int256[] values))``: the input and output hash rule."""
    return hashlib.sha256(abi_encode(["int256[]"], [_check_int256(values)])).digest()


def input_hash(input_q: Iterable[int]) -> bytes:
    return hash_vector(input_q)


def output_hash(output_q: Iterable[int]) -> bytes:
    return hash_vector(output_q)


#: Rows of ``abi.encode(int256[])`` words built by numpy at once for :func:`hash_rows`.
_ROWS_BYTES = 1 << 20


def _abi_words(q: np.ndarray) -> np.ndarray:
    """``abi.encode(int256[] row)`` of every row of the int64 matrix ``q`` (n, L), as an
    ``(n, L + 2, 4)`` array of big-endian int64: the offset word (0x20), the length word, then
    each value sign-extended to 32 bytes (three words of 0 or -1, then the value)."""
    n, length = q.shape
    words = np.empty((n, length + 2, 4), dtype=">i8")
    words[:, :2, :3] = 0
    words[:, 0, 3] = 0x20
    words[:, 1, 3] = length
    sign = q >> 63
    words[:, 2:, 0] = sign
    words[:, 2:, 1] = sign
    words[:, 2:, 2] = sign
    words[:, 2:, 3] = q
    return words


def hash_rows(q: np.ndarray) -> list[bytes]:
    """:func:`hash_vector` of every row of an int64 matrix ``q`` of shape (n, L), with the ABI
    encoding built by numpy for many rows at once (``|q| < 2**63`` holds for int64)."""
    rows = np.ascontiguousarray(q, dtype=np.int64)
    if rows.ndim != 2:
        raise EncodingError(f"hash_rows takes a matrix (n, L), got shape {rows.shape}")
    per_row = (rows.shape[1] + 2) * 32
    step = max(1, _ROWS_BYTES // per_row)
    sha256 = hashlib.sha256
    out: list[bytes] = []
    for start in range(0, rows.shape[0], step):
        # slices of one buffer (no copy of it): cheaper than a numpy view per row
        data = _abi_words(rows[start : start + step]).data.cast("B")
        out.extend(sha256(data[a : a + per_row]).digest() for a in range(0, len(data), per_row))
    return out


def leaf_hashes(
    job_ids: Sequence[int], model_id: bytes, in_hashes: Sequence[bytes], out_hashes: Sequence[bytes]
) -> list[bytes]:
    """:func:`leaf_hash` of many jobs of one model: ``abi.encode(uint256, bytes32, bytes32,
    bytes32)`` is four 32-byte words, so the encoding is a concatenation (no ABI encoder)."""
    if len(model_id) != 32:
        raise EncodingError(f"modelId must be 32 bytes, got {len(model_id)}")
    if not len(job_ids) == len(in_hashes) == len(out_hashes):
        raise EncodingError("leaf_hashes: job ids and hashes differ in number")
    out: list[bytes] = []
    for job_id, ih, oh in zip(job_ids, in_hashes, out_hashes, strict=True):
        if len(ih) != 32 or len(oh) != 32:
            raise EncodingError("inputHash and outputHash must be 32 bytes")
        if not 0 <= job_id < 2**256:
            raise EncodingError(f"jobId {job_id} does not fit uint256")
        out.append(keccak256(keccak256(job_id.to_bytes(32, "big") + model_id + ih + oh)))
    return out


def leaf_hash(job_id: int, model_id: bytes, in_hash: bytes, out_hash: bytes) -> bytes:
    """Batch leaf: double keccak of ``abi.encode(uint256, bytes32, bytes32, bytes32)``."""
    for name, value in (("modelId", model_id), ("inputHash", in_hash), ("outputHash", out_hash)):
        if len(value) != 32:
            raise EncodingError(f"{name} must be 32 bytes, got {len(value)}")
    if not 0 <= job_id < 2**256:
        raise EncodingError(f"jobId {job_id} does not fit uint256")
    types = ["uint256", "bytes32", "bytes32", "bytes32"]
    inner = keccak(abi_encode(types, [job_id, model_id, in_hash, out_hash]))
    return keccak(inner)


def parse_bytes32(text: str) -> bytes:
    """32 bytes from hex text (``0x`` prefix optional): model ids, hashes, dispute ids."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise EncodingError(f"{text!r} is not a 32-byte hex value")
    return raw


def to_hex(value: Any) -> str:
    """``0x``-prefixed hex text of bytes; hex text is returned with the prefix added if missing."""
    if type(value) is bytes:  # the common case first (sealing a batch calls this per sibling)
        return "0x" + value.hex()
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


def from_hex(value: Any) -> bytes:
    """Bytes from hex text (``0x`` prefix optional); bytes are returned as they are."""
    if type(value) is str:
        return bytes.fromhex(value.removeprefix("0x"))
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def max_abs_diff(a: Sequence[int], b: Sequence[int]) -> int:
    """Largest element-wise |a - b| (vectors must have equal length)."""
    if len(a) != len(b):
        raise EncodingError(f"length mismatch: {len(a)} != {len(b)}")
    return max((abs(int(x) - int(y)) for x, y in zip(a, b, strict=True)), default=0)


def within_tolerance(committed: Sequence[int], reference: Sequence[int], tau: int) -> bool:
    """The protocol's correctness rule: every element within ``tau`` (inclusive)."""
    return max_abs_diff(committed, reference) <= tau


def onchain_job_key(job_id: int) -> bytes:
    """Dispute id of an on-chain job: ``keccak256(abi.encode(uint8(0), jobId))``."""
    return keccak(abi_encode(["uint8", "uint256"], [0, job_id]))


def batch_leaf_key(batch_id: int, index: int) -> bytes:
    """Key of leaf ``index`` of batch ``batchId``: ``keccak256(abi.encode(uint8(1), batchId,
    index))``. Dispute id, leaf-request id and verdict key; by position, never by job id."""
    return keccak(abi_encode(["uint8", "uint256", "uint256"], [1, batch_id, index]))


#: ``keccak256("spotcheck.receipt.v2")``: the receipt digest's domain tag.
RECEIPT_TYPEHASH = keccak(b"spotcheck.receipt.v2")


def receipt_digest(chain_id: int, job_manager: str, leaf: bytes) -> bytes:
    """What a node signs (EIP-191 ``personal_sign``) for a receipt:
    ``keccak256(abi.encode(keccak256("spotcheck.receipt.v2"), chainId, jobManager, leaf))``.
    Binds the receipt to one chain and one deployment."""
    if len(leaf) != 32:
        raise EncodingError(f"leaf must be 32 bytes, got {len(leaf)}")
    return keccak(
        abi_encode(
            ["bytes32", "uint256", "address", "bytes32"],
            [RECEIPT_TYPEHASH, chain_id, job_manager, leaf],
        )
    )


def model_id(onnx_hash: bytes, settings_hash: bytes, verifier: str) -> bytes:
    """``keccak256(abi.encode(onnxHash, settingsHash, verifier))``: ModelRegistry's model id."""
    return keccak(
        abi_encode(["bytes32", "bytes32", "address"], [onnx_hash, settings_hash, verifier])
    )
