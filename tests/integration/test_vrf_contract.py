"""Solidity's BlsVrf (through BlsVrfHarness) agrees with ``spotcheck/vrf.py`` on every shared
vector (``tests/vectors/vrf.json``), rejects a wrong key, message or seed on-chain, and refuses
malformed points with its custom errors. Prints the gas of one verification."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotcheck import vrf
from tests.unit.test_vrf import (
    POP_CONTEXT,
    SAMPLE_BPS,
    first_failing_message,
    load_vectors,
    off_subgroup_g2,
)

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def harness(project: Any, accounts: Any) -> Any:
    return accounts[0].deploy(project.BlsVrfHarness)


def _b(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:])


def _words(values: list[str]) -> list[int]:
    return [int(v) for v in values]


def test_solidity_matchesEveryVrfVector(harness: Any) -> None:
    vectors = load_vectors()
    for h in vectors["hashToG1"]:
        message = _b(h["message"])
        got = harness.hashToG1(message[:32], message[32:], vrf.MAX_TRIES)
        assert list(got) == _words(h["point"])
    for key in vectors["keys"]:
        pk = _words(key["publicKey"])
        assert harness.verifyPossession(pk, _words(key["pop"]), *POP_CONTEXT)
        assert list(harness.hashToG1Pop(pk, *POP_CONTEXT)) == list(
            vrf.hash_to_g1(vrf.POP_DOMAIN, vrf.pop_message(vrf.G2Point(*pk), *POP_CONTEXT)).words()
        )
        # bound to the registrant, the pool and the chain (audit A4-3)
        squatter = "0x" + "33" * 20
        assert not harness.verifyPossession(pk, _words(key["pop"]), squatter, *POP_CONTEXT[1:])
        assert not harness.verifyPossession(
            pk, _words(key["pop"]), POP_CONTEXT[0], POP_CONTEXT[1], 1
        )
        for proof in key["proofs"]:
            sig = _words(proof["signature"])
            seed, job_ref = _b(proof["seed"]), _b(proof["jobRef"])
            assert harness.verify(pk, seed, job_ref, sig)
            assert harness.output(sig) == _b(proof["output"])
            for bps in SAMPLE_BPS:
                assert harness.isSampled(sig, bps) == proof["sampled"][str(bps)]


def test_solidity_rejectsAnotherKeysProof_andAProofOfAnotherMessage(harness: Any) -> None:
    keys = load_vectors()["keys"]
    for key, other in zip(keys, keys[1:] + keys[:1], strict=True):
        pk, other_pk = _words(key["publicKey"]), _words(other["publicKey"])
        proofs = key["proofs"]
        for proof, next_proof in zip(proofs, proofs[1:] + proofs[:1], strict=True):
            sig = _words(proof["signature"])
            seed, job_ref = _b(proof["seed"]), _b(proof["jobRef"])
            assert not harness.verify(other_pk, seed, job_ref, sig)
            assert not harness.verify(pk, seed, job_ref, _words(next_proof["signature"]))
        # a proof of possession is not a VRF proof, and another key's PoP does not verify
        assert not harness.verifyPossession(other_pk, _words(key["pop"]), *POP_CONTEXT)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    secret=st.integers(min_value=1, max_value=vrf.R - 1),
    other=st.integers(min_value=1, max_value=vrf.R - 1),
    seed=st.binary(min_size=32, max_size=32),
    job_ref=st.binary(min_size=32, max_size=32),
    other_word=st.binary(min_size=32, max_size=32),
)
def test_solidity_acceptsOnlyTheOneProof_onRandomKeys(
    harness: Any, secret: int, other: int, seed: bytes, job_ref: bytes, other_word: bytes
) -> None:
    pk = list(vrf.public_key(secret).words())
    sig = vrf.prove(secret, seed, job_ref)
    words = list(sig.words())
    assert harness.verify(pk, seed, job_ref, words)
    assert harness.output(words) == vrf.output(sig)
    assert harness.isSampled(words, 3000) == vrf.sampled_bps(sig, 3000)
    if other != secret:
        assert not harness.verify(list(vrf.public_key(other).words()), seed, job_ref, words)
    if other_word != job_ref:
        assert not harness.verify(pk, seed, other_word, words)
    if other_word != seed:
        assert not harness.verify(pk, other_word, job_ref, words)


def test_solidity_refusesMalformedPoints_withCustomErrors(harness: Any) -> None:
    zero = b"\x00" * 32
    pk = vrf.public_key(7)
    sig = vrf.prove(7, zero, zero)
    pkw, sigw = list(pk.words()), list(sig.words())
    assert harness.verify(pkw, zero, zero, sigw)
    for bad_sig in ([0, 0], [1, 3], [sig.x + vrf.P, sig.y], [sig.x, sig.y + vrf.P]):
        with ape.reverts(harness.InvalidSignature):
            harness.verify(pkw, zero, zero, bad_sig)
    x_im, x_re, y_im, y_re = pkw
    bad_keys = [
        [0, 0, 0, 0],
        [x_im, x_re, y_im, (y_re + 1) % vrf.P],
        [x_re, x_im, y_re, y_im],  # real part first: the wrong word order
        [x_im + vrf.P, x_re, y_im, y_re],
        list(off_subgroup_g2().words()),
    ]
    for bad_key in bad_keys:
        with ape.reverts(harness.InvalidPublicKey):
            harness.verify(bad_key, zero, zero, sigw)
        with ape.reverts(harness.InvalidPublicKey):
            harness.verifyPossession(bad_key, sigw, *POP_CONTEXT)


def test_solidity_hashToG1_refusesBeyondMaxTries_asPythonDoes(harness: Any) -> None:
    message = first_failing_message()
    seed, job_ref = message[:32], message[32:]
    with ape.reverts(harness.HashToG1Failed):
        harness.hashToG1(seed, job_ref, 1)
    assert list(harness.hashToG1(seed, job_ref, 2)) == list(
        vrf.hash_to_g1(vrf.DOMAIN, message, max_tries=2).words()
    )
    with ape.reverts(harness.HashToG1Failed):
        harness.hashToG1(seed, job_ref, vrf.MAX_TRIES + 1)


def test_solidity_isSampled_refusesARateAboveOne(harness: Any) -> None:
    sig = list(vrf.prove(3, b"\x01" * 32, b"\x02" * 32).words())
    assert harness.isSampled(sig, 10_000) and not harness.isSampled(sig, 0)
    with ape.reverts(harness.SamplingRateTooHigh):
        harness.isSampled(sig, 10_001)


def _batch(secret: int, n: int) -> tuple[list[int], list[bytes], list[bytes], list[vrf.G1Point]]:
    seeds = [bytes([i + 1]) * 32 for i in range(n)]
    refs = [bytes([0x80 + i]) * 32 for i in range(n)]
    sigs = [vrf.prove(secret, s, r) for s, r in zip(seeds, refs, strict=True)]
    return list(vrf.public_key(secret).words()), seeds, refs, sigs


def test_verifyBatch_acceptsHonestProofs_refusesOneWrongOrSwappedOrMismatched(harness: Any) -> None:
    pk, seeds, refs, sigs = _batch(11, 4)
    words = [list(s.words()) for s in sigs]
    assert harness.verifyBatch(pk, seeds, refs, words)
    wrong = [
        list(vrf.prove(12, seeds[2], refs[2]).words()) if i == 2 else w for i, w in enumerate(words)
    ]
    assert not harness.verifyBatch(pk, seeds, refs, wrong)
    assert not harness.verifyBatch(pk, seeds, refs, [words[1], words[0], *words[2:]])
    assert not harness.verifyBatch(pk, seeds[::-1], refs, words)
    with ape.reverts(harness.BatchLengthMismatch):
        harness.verifyBatch(pk, seeds[:3], refs, words)
    with ape.reverts(harness.BatchLengthMismatch):
        harness.verifyBatch(pk, [], [], [])
    with ape.reverts(harness.InvalidSignature):
        harness.verifyBatch(pk, seeds, refs, [[1, 3], *words[1:]])


def test_verifyBatch_refusesErrorsThatCancelInAPlainSum(harness: Any) -> None:
    """The attack a plain aggregate (c_i = 1) misses: sig_1 + E and sig_2 - E."""
    from py_ecc.optimized_bn128 import G1, add, multiply, neg, normalize

    pk, seeds, refs, sigs = _batch(13, 2)
    err = multiply(G1, 0xBAD)
    forged = [add(sigs[0]._jac(), err), add(sigs[1]._jac(), neg(err))]
    assert normalize(add(forged[0], forged[1])) == normalize(add(sigs[0]._jac(), sigs[1]._jac()))
    words = [[int(c) for c in normalize(p)] for p in forged]
    assert not harness.verifyBatch(pk, seeds, refs, words)


def test_verificationGas_isMeasured(harness: Any, accounts: Any) -> None:
    """Gas of one verification: the library call alone, and the whole call (eth_estimateGas)."""
    vectors = load_vectors()
    gas = []
    for h, key in ((h, vectors["keys"][2]) for h in (1, 2)):
        proof = next(p for p in key["proofs"] if _tries(p, vectors) == h)
        args = (
            _words(key["publicKey"]),
            _b(proof["seed"]),
            _b(proof["jobRef"]),
            _words(proof["signature"]),
        )
        valid, used = harness.verifyGas(*args)
        assert valid
        total = harness.verify.estimate_gas_cost(*args, sender=accounts[0])
        gas.append((h, int(used), int(total)))
    for tries, used, total in gas:
        print(f"BlsVrf.verify gas ({tries} hash tries): library {used}, whole call {total}")
    assert all(100_000 < used < 200_000 for _, used, _ in gas)


def _tries(proof: dict[str, Any], vectors: dict[str, Any]) -> int:
    message = proof["seed"] + proof["jobRef"][2:]
    return next(h["tries"] for h in vectors["hashToG1"] if h["message"] == message)
