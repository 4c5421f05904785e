"""The BLS VRF (``spotcheck/vrf.py``): shared vectors, uniqueness, rejection of wrong inputs.

``tests/vectors/vrf.json`` is generated from ``spotcheck/vrf.py`` by
``python -m tests.unit.test_vrf`` and asserted on the Solidity side by
``tests/integration/test_vrf_contract.py`` (``contracts/test/BlsVrfHarness.sol``).
A pairing check takes ~0.8 s in pure Python, so the properties run few examples.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128 import b2, multiply, normalize

from spotcheck import vrf
from spotcheck.errors import EncodingError

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "vrf.json"
#: The registration context the vectors' proofs of possession are bound to.
POP_REGISTRANT = "0x" + "11" * 20
POP_POOL = "0x" + "22" * 20
POP_CHAIN_ID = 31337
POP_CONTEXT = (POP_REGISTRANT, POP_POOL, POP_CHAIN_ID)
#: Fixed secrets of the vector keys (1 and r - 1 are the edges).
SECRETS = [
    1,
    2,
    0x5EED,
    int.from_bytes(keccak(b"spotcheck.vrf.test-key"), "big") % vrf.R,
    vrf.R - 1,
]
SAMPLE_BPS = [0, 1, 100, 2500, 5000, 9999, 10_000]
scalars = st.integers(min_value=1, max_value=vrf.R - 1)
words = st.binary(min_size=32, max_size=32)


def tries(domain: bytes, message: bytes) -> int:
    """How many counters try-and-increment needs for ``message`` (1 = counter 0 works)."""
    for n in range(1, vrf.MAX_TRIES + 1):
        try:
            vrf.hash_to_g1(domain, message, max_tries=n)
            return n
        except EncodingError:
            continue
    raise AssertionError("no point in 256 tries")


def _pairs() -> list[tuple[bytes, bytes]]:
    return [
        (b"\x00" * 32, b"\x00" * 32),
        (b"\xff" * 32, b"\xff" * 32),
        (keccak(b"seed-1"), keccak(b"job-1")),
        (keccak(b"seed-1"), keccak(b"job-2")),
        (keccak(b"seed-2"), keccak(b"job-1")),
    ]


def first_failing_message() -> bytes:
    """The first ``vrf_message(keccak(i), 0)`` whose counter 0 gives no point."""
    for i in range(1000):
        message = vrf.vrf_message(keccak(i.to_bytes(32, "big")), b"\x00" * 32)
        if tries(vrf.DOMAIN, message) > 1:
            return message
    raise AssertionError("every message hashed at counter 0")


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def generate_vectors() -> dict[str, Any]:
    """Every vector, computed by ``spotcheck/vrf.py`` (decimal strings for words)."""
    messages = [vrf.vrf_message(s, j) for s, j in _pairs()]
    messages.append(first_failing_message())
    hashes = []
    for m in messages:
        point = vrf.hash_to_g1(vrf.DOMAIN, m)
        hashes.append(
            {
                "message": _hex(m),
                "tries": tries(vrf.DOMAIN, m),
                "point": [str(w) for w in point.words()],
            }
        )
    keys = []
    for secret in SECRETS:
        kp = vrf.keypair(secret)
        pop = vrf.prove_possession(secret, *POP_CONTEXT)
        proofs = []
        for seed, job_ref in _pairs():
            sig = vrf.prove(secret, seed, job_ref)
            proofs.append(
                {
                    "seed": _hex(seed),
                    "jobRef": _hex(job_ref),
                    "signature": [str(w) for w in sig.words()],
                    "output": _hex(vrf.output(sig)),
                    "sampled": {str(bps): vrf.sampled_bps(sig, bps) for bps in SAMPLE_BPS},
                }
            )
        keys.append(
            {
                "secret": str(secret),
                "publicKey": [str(w) for w in kp.public.words()],
                "pop": [str(w) for w in pop.words()],
                "proofs": proofs,
            }
        )
    return {
        "domain": vrf.DOMAIN.decode(),
        "popDomain": vrf.POP_DOMAIN.decode(),
        "popContext": {"registrant": POP_REGISTRANT, "pool": POP_POOL, "chainId": POP_CHAIN_ID},
        "hashToG1": hashes,
        "keys": keys,
    }


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
    return data


def g1(words: list[str]) -> vrf.G1Point:
    return vrf.G1Point(*(int(w) for w in words))


def g2(words: list[str]) -> vrf.G2Point:
    return vrf.G2Point(*(int(w) for w in words))


def test_vectorsFile_isReproducedByPython() -> None:
    assert load_vectors() == generate_vectors(), "regenerate: python -m tests.unit.test_vrf"


def test_vectors_coverRetriesAndBothSamplingOutcomes() -> None:
    vectors = load_vectors()
    assert any(h["tries"] > 1 for h in vectors["hashToG1"])
    decisions = {d for k in vectors["keys"] for p in k["proofs"] for d in p["sampled"].values()}
    assert decisions == {True, False}


def test_vectorProofs_verify_andPopsVerify() -> None:
    key = load_vectors()["keys"][2]
    pk = g2(key["publicKey"])
    assert vrf.verify_possession(pk, g1(key["pop"]), *POP_CONTEXT)
    proof = key["proofs"][2]
    seed, job_ref = (bytes.fromhex(proof[k][2:]) for k in ("seed", "jobRef"))
    assert vrf.verify(pk, seed, job_ref, g1(proof["signature"]))


def test_publicKeyOfOne_isTheEvmG2Generator() -> None:
    # EIP-197's generator, imaginary part first (the precompile's word order).
    assert vrf.public_key(1).words() == (
        11559732032986387107991004021392285783925812861821192530917403151452391805634,
        10857046999023057135944570762232829481370756359578518086990519993285655852781,
        4082367875863433681332203403145435568316851327593401208105741076214120093531,
        8495653923123431417604973247489272438418190587263600148770280649306958101930,
    )


def test_hashToG1_isOnCurve_smallerRoot_andRefusesBeyondMaxTries() -> None:
    message = first_failing_message()
    point = vrf.hash_to_g1(vrf.DOMAIN, message)
    point._jac()  # on the curve
    assert point.y <= (vrf.P - 1) // 2
    with pytest.raises(EncodingError, match="no point in 1 tries"):
        vrf.hash_to_g1(vrf.DOMAIN, message, max_tries=1)
    assert vrf.hash_to_g1(vrf.POP_DOMAIN, message) != point


@settings(max_examples=4, deadline=None)
@given(secret=scalars, other=scalars, seed=words, job_ref=words, other_word=words)
def test_vrf_isUnique_andRejectsWrongKeyMessageOrSeed(
    secret: int, other: int, seed: bytes, job_ref: bytes, other_word: bytes
) -> None:
    pk = vrf.public_key(secret)
    sig = vrf.prove(secret, seed, job_ref)
    assert vrf.prove(secret, seed, job_ref) == sig  # deterministic
    # the signature is sk * H(m) and nothing else: the only point that verifies
    h = vrf.hash_to_g1(vrf.DOMAIN, vrf.vrf_message(seed, job_ref))
    assert normalize(multiply(h._jac(), secret)) == normalize(sig._jac())
    assert vrf.verify(pk, seed, job_ref, sig)
    if other != secret:
        assert not vrf.verify(vrf.public_key(other), seed, job_ref, sig)
    if other_word != job_ref:
        assert not vrf.verify(pk, seed, other_word, sig)
    if other_word != seed:
        assert not vrf.verify(pk, other_word, job_ref, sig)


@settings(max_examples=3, deadline=None)
@given(secret=scalars, other=scalars)
def test_proofOfPossession_bindsTheKey_andIsNotAVrfProof(secret: int, other: int) -> None:
    pk = vrf.public_key(secret)
    pop = vrf.prove_possession(secret, *POP_CONTEXT)
    assert vrf.verify_possession(pk, pop, *POP_CONTEXT)
    if other != secret:
        assert not vrf.verify_possession(vrf.public_key(other), pop, *POP_CONTEXT)
        assert not vrf.verify_possession(
            pk, vrf.prove_possession(other, *POP_CONTEXT), *POP_CONTEXT
        )


def test_proofOfPossession_isBoundToRegistrantPoolAndChain() -> None:
    """A PoP copied from a pending registration does not register the key for anyone else,
    with another pool or on another chain (audit A4-3)."""
    pk = vrf.public_key(7)
    pop = vrf.prove_possession(7, *POP_CONTEXT)
    assert vrf.verify_possession(pk, pop, *POP_CONTEXT)
    squatter = "0x" + "33" * 20
    assert not vrf.verify_possession(pk, pop, squatter, POP_POOL, POP_CHAIN_ID)
    assert not vrf.verify_possession(pk, pop, POP_REGISTRANT, squatter, POP_CHAIN_ID)
    assert not vrf.verify_possession(pk, pop, POP_REGISTRANT, POP_POOL, 1)


@given(secret=st.one_of(st.integers(max_value=0), st.integers(min_value=vrf.R)))
def test_secret_outsideOneToR_isRefused(secret: int) -> None:
    with pytest.raises(EncodingError, match=r"\[1, r\)"):
        vrf.keypair(secret)
    with pytest.raises(EncodingError):
        vrf.prove(secret, b"\x00" * 32, b"\x00" * 32)


def test_badPoints_areRefused() -> None:
    pk = vrf.public_key(7)
    sig = vrf.prove(7, b"\x00" * 32, b"\x00" * 32)
    zero = b"\x00" * 32
    bad_sigs = [
        vrf.G1Point(0, 0),  # infinity
        vrf.G1Point(1, 3),  # off the curve
        vrf.G1Point(sig.x + vrf.P, sig.y),  # non-canonical coordinate
        vrf.G1Point(sig.x, -sig.y),
    ]
    for bad in bad_sigs:
        with pytest.raises(EncodingError):
            vrf.verify(pk, zero, zero, bad)
    x_im, x_re, y_im, y_re = pk.words()
    bad_keys = [
        vrf.G2Point(0, 0, 0, 0),  # infinity
        vrf.G2Point(x_im, x_re, y_im, (y_re + 1) % vrf.P),  # off the twist
        vrf.G2Point(x_re, x_im, y_re, y_im),  # real part first: the wrong word order
        vrf.G2Point(x_im + vrf.P, x_re, y_im, y_re),
    ]
    for bad_key in bad_keys:
        with pytest.raises(EncodingError):
            vrf.verify(bad_key, zero, zero, sig)
    with pytest.raises(EncodingError, match="not in the order-r subgroup"):
        vrf.verify(off_subgroup_g2(), zero, zero, sig)


def off_subgroup_g2() -> vrf.G2Point:
    """A point on the twist curve outside the order-r subgroup (the twist has a cofactor)."""
    p = vrf.P
    for x0 in range(1, 100):
        x = FQ2([x0, 0])
        rhs = x**3 + b2
        # square root in Fp2 for p ≡ 3 mod 4 (Algorithm 9 of eprint 2012/685)
        a1 = rhs ** ((p - 3) // 4)
        alpha = a1 * a1 * rhs
        x_a = a1 * rhs
        if alpha == FQ2([p - 1, 0]):
            y = FQ2([0, 1]) * x_a
        else:
            y = (FQ2.one() + alpha) ** ((p - 1) // 2) * x_a
        if y * y == rhs:
            re_x, im_x = (int(c) for c in x.coeffs)
            re_y, im_y = (int(c) for c in y.coeffs)
            return vrf.G2Point(im_x, re_x, im_y, re_y)
    raise AssertionError("no twist point found")


def test_sampling_isOutputBelowThreshold_atTheEdges() -> None:
    sig = vrf.prove(3, b"\x01" * 32, b"\x02" * 32)
    score = int.from_bytes(vrf.output(sig), "big")
    assert not vrf.sampled(sig, 0) and vrf.sampled(sig, 1)
    assert vrf.sampled(sig, Fraction(score + 1, 2**256))
    assert not vrf.sampled(sig, Fraction(score, 2**256))
    assert vrf.sampled_bps(sig, 2500) == vrf.sampled(sig, 0.25)
    for bad in (-1, 10_001):
        with pytest.raises(EncodingError):
            vrf.sampled_bps(sig, bad)
    with pytest.raises(EncodingError):
        vrf.sampled(sig, 1.5)


def test_messages_mustBe32ByteWords() -> None:
    with pytest.raises(EncodingError, match="seed must be 32 bytes"):
        vrf.prove(1, b"\x00" * 31, b"\x00" * 32)


if __name__ == "__main__":
    VECTORS_PATH.write_text(json.dumps(generate_vectors(), indent=2) + "\n")
    print(f"wrote {VECTORS_PATH}", file=sys.stderr)
