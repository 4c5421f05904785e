"""Sampling: the observed rate matches p, decisions are reproducible and private to the secret."""

from __future__ import annotations

import math
import os
import stat

import pytest
from eth_utils import keccak
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from challenger.sampling import (
    SamplingPolicy,
    is_sampled,
    load_or_create_secret,
    sample_score,
    threshold,
)
from spotcheck.encoding import batch_leaf_key, onchain_job_key
from spotcheck.errors import ConfigError

b32 = st.binary(min_size=32, max_size=32)
rates = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def _binomial_ok(hits: int, n: int, p: float, z: float = 5.0) -> bool:
    """|hits - n p| within z standard deviations (z = 5: false-alarm odds below 1e-6)."""
    sigma = math.sqrt(n * p * (1 - p))
    return abs(hits - n * p) <= z * sigma + 1


@settings(max_examples=25, deadline=None)
@given(secret=b32, seed=b32, p=st.floats(min_value=0.005, max_value=0.995))
def test_observedRate_isWithinBinomialBoundOfP(secret: bytes, seed: bytes, p: float) -> None:
    n = 4000
    hits = sum(is_sampled(secret, seed, onchain_job_key(j), p) for j in range(n))
    assert _binomial_ok(hits, n, p), (hits, n * p)


@given(secret=b32, seed=b32, ref=b32, p=rates)
def test_decision_isDeterministicForSameSecretSeedAndJob(
    secret: bytes, seed: bytes, ref: bytes, p: float
) -> None:
    assert is_sampled(secret, seed, ref, p) == is_sampled(secret, seed, ref, p)


@given(secret=b32, seed=b32, ref=b32)
def test_rateZeroNeverSamples_rateOneAlwaysSamples(secret: bytes, seed: bytes, ref: bytes) -> None:
    assert not is_sampled(secret, seed, ref, 0.0)
    assert is_sampled(secret, seed, ref, 1.0)


@given(secret=b32, seed=b32, ref=b32, p=rates, q=rates)
def test_decision_isMonotoneInRate(
    secret: bytes, seed: bytes, ref: bytes, p: float, q: float
) -> None:
    lo, hi = sorted((p, q))
    assert not is_sampled(secret, seed, ref, lo) or is_sampled(secret, seed, ref, hi)


@settings(max_examples=20, deadline=None)
@given(secret=b32, other=b32, seed=b32)
def test_anotherSecret_predictsNoBetterThanChance(secret: bytes, other: bytes, seed: bytes) -> None:
    """Someone without the secret (guessing with another one) agrees only at chance level."""
    assume(secret != other)
    p, n = 0.5, 2000
    agree = sum(
        is_sampled(secret, seed, batch_leaf_key(7, j), p)
        == is_sampled(other, seed, batch_leaf_key(7, j), p)
        for j in range(n)
    )
    assert _binomial_ok(agree, n, 0.5)


@settings(max_examples=20, deadline=None)
@given(secret=b32, seed_a=b32, seed_b=b32)
def test_seedChange_reshufflesTheSample(secret: bytes, seed_a: bytes, seed_b: bytes) -> None:
    """The node cannot carry a known sample over: a new seed gives independent decisions."""
    assume(seed_a != seed_b)
    p, n = 0.5, 2000
    agree = sum(
        is_sampled(secret, seed_a, onchain_job_key(j), p)
        == is_sampled(secret, seed_b, onchain_job_key(j), p)
        for j in range(n)
    )
    assert _binomial_ok(agree, n, 0.5)


def test_score_isKeccakOfSecretSeedJobRef() -> None:
    secret, seed, ref = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    assert sample_score(secret, seed, ref) == int.from_bytes(keccak(secret + seed + ref), "big")


def test_threshold_isExactFloorOfPTimes2Pow256() -> None:
    assert threshold(0.5) == 2**255
    assert threshold(1.0) == 2**256
    assert threshold(0.0) == 0
    with pytest.raises(ConfigError):
        threshold(1.5)


def test_policy_usesPerModelRateElseDefault() -> None:
    model_a, model_b = b"\xaa" * 32, b"\xbb" * 32
    policy = SamplingPolicy(secret=b"\x05" * 32, default_rate=0.0, rates={model_a: 1.0})
    assert policy.decide(model_a, b"\x00" * 32, onchain_job_key(1))
    assert not policy.decide(model_b, b"\x00" * 32, onchain_job_key(1))


def test_secret_isCreatedOnceWithMode0600AndReused(tmp_path) -> None:
    path = tmp_path / "state" / "secret"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_secret_readableByOthers_isRefused(tmp_path) -> None:
    path = tmp_path / "secret"
    load_or_create_secret(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_or_create_secret(path)
