"""The node's serving hot path computes exactly what the protocol defines, only faster."""

from __future__ import annotations

import numpy as np
import pytest
from eth_abi import encode as abi_encode

from prover.inference import ModelRuntime, ModelSpec
from prover.receipts import KeySigner, ReceiptDomain, ecdsa_backend, recover_signer
from prover.vectors import abi_encode_int256_array, hash_array
from spotcheck.encoding import hash_vector
from spotcheck.errors import InputError
from tests.fixtures import models

KEY = "0x" + "42" * 32
DOMAIN = ReceiptDomain(31337, "0x" + "77" * 20)

_EDGES = np.array([0, 1, -1, 2**31, -(2**31), 2**52, -(2**52), 2**63 - 1, -(2**63)], dtype=np.int64)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    path = models.build("tiny_mlp", tmp_path_factory.mktemp("models"))
    rt = ModelRuntime.load(ModelSpec(bytes(32), path, input_scale=7, output_scale=13, tau=8))
    yield rt
    rt.close()


@pytest.mark.parametrize(
    "q",
    [
        np.array([], dtype=np.int64),
        _EDGES,
        np.random.default_rng(2).integers(-(2**62), 2**62, size=3000),
        np.random.default_rng(3).integers(-300, 300, size=(3, 5, 7)),  # row-major flattening
        # around the 8192-element encoding chunk
        *(np.random.default_rng(n).integers(-(2**53), 2**53, size=n) for n in (8191, 8192, 8193)),
    ],
)
def test_abi_encode_int256_array_equalsEthAbi_forEdgesSignsAndShapes(q: np.ndarray) -> None:
    flat = q.ravel().tolist()
    assert abi_encode_int256_array(q) == abi_encode(["int256[]"], [flat])
    assert hash_array(q) == hash_vector(flat)


def test_hash_array_imageSizedInput_equalsCanonicalHash() -> None:
    q = np.random.default_rng(4).integers(-128, 129, size=224 * 224 * 3)
    assert hash_array(q) == hash_vector(q.tolist())


def test_receipt_signing_usesLibsecp256k1_withTheSameSignaturesAsPurePython(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ecdsa_backend() == "CoinCurveECCBackend"
    leaf = bytes(range(32))
    fast = KeySigner(KEY, DOMAIN)
    monkeypatch.setenv("ECC_BACKEND_CLASS", "eth_keys.backends.NativeECCBackend")
    assert ecdsa_backend() == "NativeECCBackend"
    slow = KeySigner(KEY, DOMAIN)
    assert fast.sign_leaf(leaf) == slow.sign_leaf(leaf)  # RFC 6979: deterministic
    assert recover_signer(DOMAIN.digest(leaf), fast.sign_leaf(leaf)) == fast.address


def test_check_input_q_rejectsMostNegativeInt64_whichAbsWouldWrap(runtime: ModelRuntime) -> None:
    q = np.zeros(runtime.input_len, dtype=np.int64)
    q[1] = -(2**63)
    with pytest.raises(InputError, match="element 1"):
        runtime.check_input_q(q)


def test_check_input_q_list_rejectsBoolsFloatsAndHugeInts(runtime: ModelRuntime) -> None:
    n = runtime.input_len
    with pytest.raises(InputError, match="integers only"):
        runtime.check_input_q([True] + [0] * (n - 1))
    with pytest.raises(InputError, match="integers only"):
        runtime.check_input_q([np.float64(1.0)] + [0] * (n - 1))  # type: ignore[list-item]
    with pytest.raises(InputError, match="element 2"):
        runtime.check_input_q([0, 0, 2**70] + [0] * (n - 3))
    with pytest.raises(InputError, match="element 0"):
        runtime.check_input_q([-(2**53)] + [0] * (n - 1))


def test_check_input_q_list_acceptsPythonAndNumpyInts(runtime: ModelRuntime) -> None:
    n = runtime.input_len
    values = [np.int32(-5), 2**53 - 1] + [7] * (n - 2)
    out = runtime.check_input_q(values)
    assert out.dtype == np.int64
    assert out.tolist() == [-5, 2**53 - 1] + [7] * (n - 2)


def test_quantize_input_integerBeyondFloatRange_isInputError(runtime: ModelRuntime) -> None:
    with pytest.raises(InputError, match="out of range"):
        runtime.quantize_input([10**400] + [0.0] * (runtime.input_len - 1))
