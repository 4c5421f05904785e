"""Sampling by the VRF: the observed rate matches p, decisions are reproducible, provable with
the challenger's public key, and private to its key (issue 15)."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from challenger.sampling import (
    BatchDecisions,
    SamplingPolicy,
    is_sampled,
    load_or_create_secret,
    parse_proof,
    proof_text,
    rate_bps,
    secret_scalar,
)
from challenger.vrf_fast import Prover
from spotcheck import vrf
from spotcheck.encoding import batch_leaf_key, onchain_job_key
from spotcheck.errors import ConfigError

b32 = st.binary(min_size=32, max_size=32)
#: A VRF secret: 32 big-endian bytes of a scalar in [1, r).
keys = st.integers(min_value=1, max_value=vrf.R - 1).map(lambda k: k.to_bytes(32, "big"))
bps = st.integers(min_value=0, max_value=10_000)


def _binomial_ok(hits: int, n: int, p: float, z: float = 5.0) -> bool:
    """|hits - n p| within z standard deviations (z = 5: false-alarm odds below 1e-6)."""
    sigma = math.sqrt(n * p * (1 - p))
    return abs(hits - n * p) <= z * sigma + 1


@settings(max_examples=3, deadline=None)
@given(secret=keys, seed=b32, p_bps=st.integers(min_value=500, max_value=9_500))
def test_observedRate_isWithinBinomialBoundOfP(secret: bytes, seed: bytes, p_bps: int) -> None:
    n, p = 400, p_bps / 10_000
    hits = sum(is_sampled(secret, seed, onchain_job_key(j), p) for j in range(n))
    assert _binomial_ok(hits, n, p), (hits, n * p)


@settings(max_examples=20, deadline=None)
@given(secret=keys, seed=b32, ref=b32, p_bps=bps)
def test_decision_isTheVrfRuleTheContractChecks(
    secret: bytes, seed: bytes, ref: bytes, p_bps: int
) -> None:
    """sampled iff vrf.sampled_bps(prove(sk, seed, jobRef), p_bps): the same p, in bps."""
    model = b"\x01" * 32
    policy = SamplingPolicy(secret=secret, default_rate=p_bps / 10_000)
    proof = policy.sample(model, seed, ref)
    sk = int.from_bytes(secret, "big")
    expected = p_bps > 0 and vrf.sampled_bps(vrf.prove(sk, seed, ref), p_bps)
    assert (proof is not None) == expected
    if proof is not None:
        assert proof == vrf.prove(sk, seed, ref)
        assert parse_proof(proof_text(proof)) == proof


@settings(max_examples=2, deadline=None)
@given(secret=keys, seed=b32, ref=b32)
def test_sampledProof_verifiesUnderThePublicKey_andNotAnotherJob(
    secret: bytes, seed: bytes, ref: bytes
) -> None:
    policy = SamplingPolicy(secret=secret, default_rate=1.0)
    proof = policy.sample(b"\x01" * 32, seed, ref)
    assert proof is not None
    pk = policy.public_key()
    assert vrf.verify(pk, seed, ref, proof)
    other = bytes([ref[0] ^ 1]) + ref[1:]
    assert not vrf.verify(pk, seed, other, proof)


@settings(max_examples=10, deadline=None)
@given(secret=keys, seed=b32, ref=b32)
def test_rateZeroNeverSamples_rateOneAlwaysSamples(secret: bytes, seed: bytes, ref: bytes) -> None:
    assert not is_sampled(secret, seed, ref, 0.0)
    assert is_sampled(secret, seed, ref, 1.0)


@settings(max_examples=20, deadline=None)
@given(secret=keys, seed=b32, ref=b32, p=bps, q=bps)
def test_decision_isMonotoneInRate(secret: bytes, seed: bytes, ref: bytes, p: int, q: int) -> None:
    """Sampling above the contract's p keeps every job the contract would call sampled."""
    lo, hi = sorted((p / 10_000, q / 10_000))
    assert not is_sampled(secret, seed, ref, lo) or is_sampled(secret, seed, ref, hi)


@settings(max_examples=2, deadline=None)
@given(secret=keys, other=keys, seed=b32)
def test_anotherKey_predictsNoBetterThanChance(secret: bytes, other: bytes, seed: bytes) -> None:
    """Someone without the key (guessing with another one) agrees only at chance level."""
    assume(secret != other)
    p, n = 0.5, 300
    agree = sum(
        is_sampled(secret, seed, batch_leaf_key(7, j), p)
        == is_sampled(other, seed, batch_leaf_key(7, j), p)
        for j in range(n)
    )
    assert _binomial_ok(agree, n, 0.5)


@settings(max_examples=2, deadline=None)
@given(secret=keys, seed_a=b32, seed_b=b32)
def test_seedChange_reshufflesTheSample(secret: bytes, seed_a: bytes, seed_b: bytes) -> None:
    """The node cannot carry a known sample over: a new seed gives independent decisions."""
    assume(seed_a != seed_b)
    p, n = 0.5, 300
    agree = sum(
        is_sampled(secret, seed_a, onchain_job_key(j), p)
        == is_sampled(secret, seed_b, onchain_job_key(j), p)
        for j in range(n)
    )
    assert _binomial_ok(agree, n, 0.5)


@settings(max_examples=30, deadline=None)
@given(secret=keys, seed=b32, ref=b32)
def test_fastProver_givesExactlyTheSignatureOfVrfProve(
    secret: bytes, seed: bytes, ref: bytes
) -> None:
    """challenger.vrf_fast (plain-int Jacobian, width-4 NAF) is only faster, never different."""
    sk = int.from_bytes(secret, "big")
    assert Prover(sk).prove(seed, ref) == vrf.prove(sk, seed, ref)


@pytest.mark.parametrize("sk", [1, 2, 3, 7, 8, 15, 16, 2**128 + 1, vrf.R - 2, vrf.R - 1])
def test_fastProver_edgeScalars_matchVrfProve(sk: int) -> None:
    assert Prover(sk).prove(b"\x01" * 32, b"\x02" * 32) == vrf.prove(sk, b"\x01" * 32, b"\x02" * 32)


def test_rateBps_takesWholeBasisPointsOnly() -> None:
    assert rate_bps(0.05) == 500
    assert rate_bps(1.0) == 10_000
    assert rate_bps(0.0) == 0
    assert rate_bps(0.0001) == 1
    with pytest.raises(ConfigError, match="basis points"):
        rate_bps(0.00005)
    with pytest.raises(ConfigError, match="outside"):
        rate_bps(1.5)


def test_secret_outsideTheScalarRange_isRefused() -> None:
    with pytest.raises(ConfigError, match="scalar"):
        secret_scalar(b"\x00" * 32)
    with pytest.raises(ConfigError, match="scalar"):
        secret_scalar(vrf.R.to_bytes(32, "big"))
    with pytest.raises(ConfigError, match="32 bytes"):
        secret_scalar(b"\x01" * 31)


def test_policy_usesPerModelRateElseDefault() -> None:
    model_a, model_b = b"\xaa" * 32, b"\xbb" * 32
    policy = SamplingPolicy(secret=b"\x05" * 32, default_rate=0.0, rates={model_a: 1.0})
    assert policy.decide(model_a, b"\x00" * 32, onchain_job_key(1))
    assert not policy.decide(model_b, b"\x00" * 32, onchain_job_key(1))


def test_batchDecisions_equalOneByOneDecisions() -> None:
    policy = SamplingPolicy(secret=b"\x05" * 32, default_rate=0.5)
    model, seed = b"\xaa" * 32, b"\x09" * 32
    decisions = BatchDecisions(policy)
    try:
        decisions.start(3, model, seed, 24)
        got = decisions.get(3, model, seed, 24)
    finally:
        decisions.close()
    expected = {i for i in range(24) if policy.decide(model, seed, batch_leaf_key(3, i))}
    assert set(got) == expected
    assert 0 < len(expected) < 24  # both outcomes occur, so the comparison means something
    for i, proof in got.items():
        assert proof == vrf.prove(policy.sk, seed, batch_leaf_key(3, i))


def test_key_isCreatedOnceWithMode0600AndReused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "vrf.key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert 0 < int.from_bytes(first, "big") < vrf.R
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_key_readableByOthers_isRefused(tmp_path: Path) -> None:
    path = tmp_path / "vrf.key"
    load_or_create_secret(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_or_create_secret(path)


def test_key_notAScalar_isRefused(tmp_path: Path) -> None:
    """An old random 32-byte secret above r is not silently reduced: it is refused."""
    path = tmp_path / "vrf.key"
    path.write_bytes(b"\xff" * 32)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="scalar"):
        load_or_create_secret(path)
