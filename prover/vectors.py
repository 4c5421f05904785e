"""The vector hash and compact storage for the serving hot path.

``spotcheck.encoding`` is the one definition of quantization (``quantize_array`` works on numpy
arrays) and of the vector hash; its ``hash_vector`` works on Python ints, which costs ~0.5 s to
hash a 150k-element image. ``hash_array`` computes the same value on numpy ``int64`` arrays
(``|q| < 2**53`` always holds after quantization), and ``tests/unit/test_prover_core.py``
asserts it equals the canonical one.

The vector hash is the serving path's largest cost for big inputs: ``abi.encode(int256[])``
is 32 bytes per element (4.8 MB for a 224x224x3 image), so the encoding is built in one numpy
pass straight into big-endian words and hashed in place (no intermediate ``bytes`` copy), by a
keccak that releases the GIL, so hashing one job overlaps another job's inference.
"""

from __future__ import annotations

import numpy as np
from Crypto.Hash import keccak as _keccak

from spotcheck.errors import EncodingError


def _abi_words(q: np.ndarray) -> np.ndarray:
    """``abi.encode(int256[] q)`` as an ``(n + 2, 4)`` array of big-endian 64-bit words.

    Word 0 is the offset (0x20), word 1 the length, then one 32-byte two's complement value
    per element: three sign-extension words (0 or -1) and the ``int64`` value itself.
    """
    flat = np.ascontiguousarray(q, dtype=np.int64).ravel()
    n = flat.size
    words = np.empty((n + 2, 4), dtype=">i8")
    words[:2] = 0
    words[0, 3] = 0x20
    words[1, 3] = n
    sign = flat >> 63
    body = words[2:]
    body[:, 0] = sign
    body[:, 1] = sign
    body[:, 2] = sign
    body[:, 3] = flat
    return words


def abi_encode_int256_array(q: np.ndarray) -> bytes:
    """``abi.encode(int256[] q)`` for int64 values: offset, length, 32-byte two's complement."""
    return _abi_words(q).tobytes()


def hash_array(q: np.ndarray) -> bytes:
    """``keccak256(abi.encode(int256[] q))``: equals ``spotcheck.encoding.hash_vector``."""
    encoded = memoryview(_abi_words(q).data).cast("B")
    return bytes(_keccak.new(data=encoded, digest_bits=256).digest())


_WIDTHS = ((1, np.int8), (2, np.int16), (4, np.int32), (8, np.int64))


def pack(q: np.ndarray) -> bytes:
    """Compact storage form of an int vector: a width byte, then little-endian values of the
    narrowest integer type that holds them all (images at scale 7 fit in two bytes)."""
    flat = np.ascontiguousarray(q, dtype=np.int64).ravel()
    lo, hi = (int(flat.min()), int(flat.max())) if flat.size else (0, 0)
    for width, dtype in _WIDTHS:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return bytes([width]) + flat.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    raise EncodingError("vector does not fit int64")  # unreachable for int64 input


def unpack(blob: bytes) -> np.ndarray:
    width = blob[0]
    dtype = dict(_WIDTHS)[width]
    return np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"), offset=1).astype(np.int64)
