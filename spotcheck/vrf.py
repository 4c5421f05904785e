"""A BLS VRF on BN254: private sampling that becomes provable once shown (issue 15).

The Solidity twin is ``contracts/libraries/BlsVrf.sol``; ``tests/vectors/vrf.json`` holds
vectors that both sides assert. Every rule here is mirrored there exactly.

- **Keys.** The secret is a scalar ``sk`` in ``[1, r)`` (``r`` the BN254 group order); the
  public key is ``pk = sk * G2``. A G2 point crosses the chain boundary as four words in the
  EVM's (EIP-197) order: ``(x_im, x_re, y_im, y_re)``, each Fp2 element imaginary part first.
- **Message.** ``abi.encode(bytes32 seed, bytes32 jobRef)`` (64 bytes).
- **Hash to G1** (try-and-increment): for ``counter = 0, 1, ..., 255`` take
  ``x = uint256(keccak256(domain ‖ message ‖ uint8(counter))) mod p``; the first ``x`` for
  which ``x^3 + 3`` is a square gives the point ``(x, y)`` with ``y`` the smaller of its two
  square roots (``y <= (p - 1) / 2``). ``p ≡ 3 mod 4``, so the root is ``rhs^((p + 1) / 4)``.
  256 failures in a row (probability 2**-256) is an error on both sides, never a loop.
  The domain is the raw ASCII tag: ``spotcheck.vrf.v1`` for VRF inputs (16 bytes, so every
  VRF preimage is 81 bytes) and ``spotcheck.vrf.pop.v1`` for proofs of possession (20 bytes
  plus a 128-byte key: 149 bytes), so the two can never hash the same preimage.
  Try-and-increment is not constant-time: the number of tries leaks a little about the
  message. VRF inputs (block-hash seeds, job refs) are public, so nothing secret leaks; the
  secret key only enters the scalar multiplication. ``keccak256 mod p`` is slightly biased
  (``2**256`` is not a multiple of ``p``); the map stays deterministic and public, which is
  all that uniqueness needs, and the VRF output is ``keccak256`` of the signature anyway.
- **Proof** (the VRF proof is the BLS signature): ``sig = sk * H(message)`` in G1; it is
  unique for a valid ``pk`` (G1 and G2 have prime order ``r``), so the output cannot be
  ground. **Verify**: ``e(sig, G2) == e(H(message), pk)``, one pairing product.
- **Output** ``keccak256(abi.encode(sig.x, sig.y))``; **sampled** iff
  ``uint256(output) < floor(p * 2**256)``; on-chain ``p`` is given in basis points.
- **Proof of possession**: the signature of ``abi.encode(uint256[4] pk)`` under the PoP
  domain, so a registered key is known to have a secret (no rogue keys once keys are summed).

Points given to :func:`verify` are checked: on the curve, coordinates below ``p``, G2 in the
order-``r`` subgroup, neither at infinity (a bad point raises ``EncodingError``; a valid point
that is the wrong signature returns ``False``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from fractions import Fraction

from eth_abi import encode as abi_encode
from eth_utils import keccak
from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128 import (
    G2,
    b,
    b2,
    curve_order,
    field_modulus,
    is_inf,
    is_on_curve,
    multiply,
    neg,
    normalize,
)
from py_ecc.optimized_bn128.optimized_pairing import final_exponentiate, pairing

from spotcheck.errors import EncodingError

#: BN254 base field modulus (coordinates) and group order (scalars).
P = field_modulus
R = curve_order
#: Domain tags (raw ASCII, prefixed to the hashed preimage).
DOMAIN = b"spotcheck.vrf.v1"
POP_DOMAIN = b"spotcheck.vrf.pop.v1"
#: Try-and-increment gives up after this many counters (uint8 counter: 0..255).
MAX_TRIES = 256
#: ``p ≡ 3 mod 4``: ``rhs^SQRT_EXP`` is a square root of ``rhs`` when one exists.
SQRT_EXP = (P + 1) // 4
BPS = 10_000
_SPACE = 2**256

_G1Jac = tuple[FQ, FQ, FQ]
_G2Jac = tuple[FQ2, FQ2, FQ2]


@dataclass(frozen=True)
class G1Point:
    """An affine G1 point (a signature or a hashed message), as the EVM encodes it."""

    x: int
    y: int

    def words(self) -> tuple[int, int]:
        return (self.x, self.y)

    def _jac(self) -> _G1Jac:
        for name, v in (("x", self.x), ("y", self.y)):
            if not 0 <= v < P:
                raise EncodingError(f"G1 point: {name} = {v} is not below the field modulus")
        point = (FQ(self.x), FQ(self.y), FQ.one())
        if (self.x, self.y) == (0, 0) or not is_on_curve(point, b):
            raise EncodingError(f"G1 point ({self.x}, {self.y}) is not on the curve")
        return point


@dataclass(frozen=True)
class G2Point:
    """An affine G2 point (a public key), in the EVM's word order (imaginary part first)."""

    x_im: int
    x_re: int
    y_im: int
    y_re: int

    def words(self) -> tuple[int, int, int, int]:
        return (self.x_im, self.x_re, self.y_im, self.y_re)

    def _jac(self) -> _G2Jac:
        for i, v in enumerate(self.words()):
            if not 0 <= v < P:
                raise EncodingError(f"G2 point: word {i} = {v} is not below the field modulus")
        if not any(self.words()):
            raise EncodingError("G2 point is the point at infinity")
        point = (FQ2([self.x_re, self.x_im]), FQ2([self.y_re, self.y_im]), FQ2.one())
        if not is_on_curve(point, b2):
            raise EncodingError(f"G2 point {self.words()} is not on the twist curve")
        if not is_inf(multiply(point, R)):
            raise EncodingError(f"G2 point {self.words()} is not in the order-r subgroup")
        return point


@dataclass(frozen=True)
class KeyPair:
    """A challenger's VRF key: secret scalar in ``[1, r)`` and ``pk = secret * G2``."""

    secret: int = field(repr=False)
    public: G2Point


def _check_secret(secret: int) -> int:
    if not 0 < secret < R:
        raise EncodingError("VRF secret must be a scalar in [1, r)")
    return secret


def _to_g1(point: _G1Jac) -> G1Point:
    x, y = normalize(point)
    return G1Point(int(x), int(y))


def public_key(secret: int) -> G2Point:
    """``secret * G2`` in EVM word order."""
    x, y = normalize(multiply(G2, _check_secret(secret)))
    x_re, x_im = (int(c) for c in x.coeffs)
    y_re, y_im = (int(c) for c in y.coeffs)
    return G2Point(x_im, x_re, y_im, y_re)


def keypair(secret: int | None = None) -> KeyPair:
    """The key pair of ``secret``, or of a fresh random secret."""
    sk = secrets.randbelow(R - 1) + 1 if secret is None else _check_secret(secret)
    return KeyPair(sk, public_key(sk))


def _bytes32(name: str, value: bytes) -> bytes:
    if len(value) != 32:
        raise EncodingError(f"{name} must be 32 bytes, got {len(value)}")
    return value


def vrf_message(seed: bytes, job_ref: bytes) -> bytes:
    """``abi.encode(bytes32 seed, bytes32 jobRef)``."""
    return _bytes32("seed", seed) + _bytes32("jobRef", job_ref)


def pop_message(pk: G2Point, registrant: str, pool: str, chain_id: int) -> bytes:
    """``abi.encode(uint256[4] pk, address registrant, address pool, uint256 chainId)``: a
    proof of possession is bound to the address that registers the key, the pool it registers
    with and the chain, so a copy taken from a pending ``register`` cannot register the key for
    another address first (and burn it for its owner), nor on another pool or chain."""
    return abi_encode(
        ["uint256[4]", "address", "address", "uint256"],
        [list(pk.words()), registrant, pool, chain_id],
    )


def hash_to_g1(domain: bytes, message: bytes, max_tries: int = MAX_TRIES) -> G1Point:
    """Try-and-increment (module docstring); ``max_tries`` below 256 only for tests."""
    if not 0 < max_tries <= MAX_TRIES:
        raise EncodingError(f"max_tries must be in [1, {MAX_TRIES}]")
    for counter in range(max_tries):
        x = int.from_bytes(keccak(domain + message + bytes([counter])), "big") % P
        rhs = (x * x * x + 3) % P
        y = pow(rhs, SQRT_EXP, P)
        if y * y % P == rhs:
            return G1Point(x, min(y, P - y))
    raise EncodingError(f"hash to G1 found no point in {max_tries} tries")


def _sign(secret: int, domain: bytes, message: bytes) -> G1Point:
    h = hash_to_g1(domain, message)._jac()
    return _to_g1(multiply(h, _check_secret(secret)))


def _pairing_check(pk: G2Point, domain: bytes, message: bytes, sig: G1Point) -> bool:
    """``e(sig, G2) * e(-H(message), pk) == 1`` (what the EVM's ecPairing computes)."""
    pk_jac, sig_jac = pk._jac(), sig._jac()
    h = hash_to_g1(domain, message)._jac()
    product = pairing(G2, sig_jac, final_exponentiate=False) * pairing(
        pk_jac, neg(h), final_exponentiate=False
    )
    result: FQ12 = final_exponentiate(product)
    return bool(result == FQ12.one())


def prove(secret: int, seed: bytes, job_ref: bytes) -> G1Point:
    """The VRF proof of ``(seed, jobRef)``: the BLS signature ``secret * H(message)``."""
    return _sign(secret, DOMAIN, vrf_message(seed, job_ref))


def verify(pk: G2Point, seed: bytes, job_ref: bytes, sig: G1Point) -> bool:
    """True iff ``sig`` is ``pk``'s proof of ``(seed, jobRef)``; a malformed point raises."""
    return _pairing_check(pk, DOMAIN, vrf_message(seed, job_ref), sig)


def prove_possession(secret: int, registrant: str, pool: str, chain_id: int) -> G1Point:
    """Proof of possession: the signature of :func:`pop_message` under ``POP_DOMAIN``."""
    return _sign(secret, POP_DOMAIN, pop_message(public_key(secret), registrant, pool, chain_id))


def verify_possession(pk: G2Point, pop: G1Point, registrant: str, pool: str, chain_id: int) -> bool:
    return _pairing_check(pk, POP_DOMAIN, pop_message(pk, registrant, pool, chain_id), pop)


def output(sig: G1Point) -> bytes:
    """The VRF output ``keccak256(abi.encode(sig.x, sig.y))``."""
    return keccak(abi_encode(["uint256", "uint256"], [sig.x, sig.y]))


def threshold(p: Fraction | float) -> int:
    """``floor(p * 2**256)`` exactly; ``p`` in ``[0, 1]`` (``Fraction(bps, 10_000)`` on-chain)."""
    rate = Fraction(p)
    if not 0 <= rate <= 1:
        raise EncodingError(f"sampling rate {p} outside [0, 1]")
    return int(rate * _SPACE)


def sampled(sig: G1Point, p: Fraction | float) -> bool:
    """The sampling decision: ``uint256(output(sig)) < floor(p * 2**256)``."""
    return int.from_bytes(output(sig), "big") < threshold(p)


def sampled_bps(sig: G1Point, p_bps: int) -> bool:
    """:func:`sampled` with the rate in basis points, as ``BlsVrf.isSampled`` takes it."""
    if not 0 <= p_bps <= BPS:
        raise EncodingError(f"sampling rate {p_bps} bps outside [0, {BPS}]")
    return sampled(sig, Fraction(p_bps, BPS))
