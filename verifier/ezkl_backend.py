"""ezkl 23 behind typed functions: the only module that imports ezkl.

Every call takes and returns paths (ezkl works on files). ezkl's failures (plain ``Exception``
or ``RuntimeError`` with a multi-line message) become one-line Spotcheck errors here. The calls
that ezkl exposes as awaitables (``create_evm_verifier``) run inside a private event loop.

Circuit settings are fixed by the protocol: public inputs, public outputs (the verifier's
instances are exactly the input then output field elements that ``defend`` checks) and fixed
parameters (the weights are baked into the circuit, so the verifier binds the model).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from spotcheck.errors import ModelError, ProofError, ToolchainError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ezkl calibration targets: "resources" minimises logrows, "accuracy" maximises scales.
CALIBRATION_TARGETS = ("resources", "accuracy")


@dataclass(frozen=True)
class CircuitParams:
    """The settings inputs Spotcheck fixes before calibration (part of the cache key)."""

    input_visibility: str = "public"
    output_visibility: str = "public"
    param_visibility: str = "fixed"
    calibration_target: str = "resources"
    lookup_safety_margin: int = 2
    max_logrows: int | None = None
    scales: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_visibility": self.input_visibility,
            "output_visibility": self.output_visibility,
            "param_visibility": self.param_visibility,
            "calibration_target": self.calibration_target,
            "lookup_safety_margin": self.lookup_safety_margin,
            "max_logrows": self.max_logrows,
            "scales": list(self.scales) if self.scales is not None else None,
        }


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("ezkl")


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def _call(what: str, error: type[Exception], fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    try:
        result = fn(*args, **kw)
    except Exception as err:  # ezkl raises untyped exceptions with the Rust error text
        raise error(f"ezkl {what} failed: {_one_line(err)}") from err
    if result is False:
        raise error(f"ezkl {what} returned failure")
    return result


def _run_async(what: str, make: Callable[[], Awaitable[T]]) -> T:
    loop = asyncio.new_event_loop()
    try:

        async def runner() -> T:
            return await make()

        return loop.run_until_complete(runner())
    except Exception as err:
        raise ToolchainError(f"ezkl {what} failed: {_one_line(err)}") from err
    finally:
        loop.close()


def gen_settings(onnx_path: Path, settings_path: Path, params: CircuitParams) -> None:
    """Write ezkl's settings for ``onnx_path``; unsupported ops surface here as ModelError."""
    import ezkl

    from verifier.onnx_runner import OnnxRunner

    run_args: Any = ezkl.PyRunArgs()
    # Every symbolic dimension is fixed to 1 (one sample per job), whatever its name: ezkl
    # resolves only the names listed here (default: batch_size).
    names = OnnxRunner(onnx_path).symbolic_dims
    run_args.variables = [(name, 1) for name in names] or [("batch_size", 1)]
    run_args.input_visibility = params.input_visibility
    run_args.output_visibility = params.output_visibility
    run_args.param_visibility = params.param_visibility
    _call(
        "gen_settings", ModelError, ezkl.gen_settings, str(onnx_path), str(settings_path), run_args
    )


def calibrate(data_path: Path, onnx_path: Path, settings_path: Path, params: CircuitParams) -> None:
    """Pick scales and logrows from calibration data (rewrites ``settings_path``)."""
    import ezkl

    if params.calibration_target not in CALIBRATION_TARGETS:
        raise ModelError(
            f"calibration target {params.calibration_target!r} not in {CALIBRATION_TARGETS}"
        )
    _call(
        "calibrate_settings",
        ModelError,
        ezkl.calibrate_settings,
        str(data_path),
        str(onnx_path),
        str(settings_path),
        params.calibration_target,
        lookup_safety_margin=params.lookup_safety_margin,
        scales=list(params.scales) if params.scales is not None else None,
        max_logrows=params.max_logrows,
    )


def compile_circuit(onnx_path: Path, compiled_path: Path, settings_path: Path) -> None:
    import ezkl

    _call(
        "compile_circuit",
        ModelError,
        ezkl.compile_circuit,
        str(onnx_path),
        str(compiled_path),
        str(settings_path),
    )


def gen_dev_srs(srs_path: Path, logrows: int) -> None:
    """Generate a local SRS. INSECURE: whoever generated it knows the toxic waste."""
    import ezkl

    _call("gen_srs", ToolchainError, ezkl.gen_srs, str(srs_path), logrows)


def setup(compiled_path: Path, vk_path: Path, pk_path: Path, srs_path: Path) -> None:
    import ezkl

    _call(
        "setup",
        ProofError,
        ezkl.setup,
        str(compiled_path),
        str(vk_path),
        str(pk_path),
        str(srs_path),
    )


def gen_witness(data_path: Path, compiled_path: Path, witness_path: Path) -> dict[str, Any]:
    """Run the circuit's forward pass; returns ezkl's witness dict (field elements as LE hex)."""
    import ezkl

    result = _call(
        "gen_witness",
        ProofError,
        ezkl.gen_witness,
        str(data_path),
        str(compiled_path),
        str(witness_path),
    )
    return dict(result)


def prove(
    witness_path: Path, compiled_path: Path, pk_path: Path, proof_path: Path, srs_path: Path
) -> dict[str, Any]:
    """Prove a witness; returns the proof JSON ezkl wrote."""
    import ezkl

    _call(
        "prove",
        ProofError,
        ezkl.prove,
        str(witness_path),
        str(compiled_path),
        str(pk_path),
        str(proof_path),
        str(srs_path),
    )
    loaded: dict[str, Any] = json.loads(proof_path.read_text())
    return loaded


def verify(proof_path: Path, settings_path: Path, vk_path: Path, srs_path: Path) -> bool:
    """Off-chain verification. A rejected proof is ``False``, not an exception."""
    import ezkl

    try:
        return bool(
            ezkl.verify(str(proof_path), str(settings_path), str(vk_path), str(srs_path), False)
        )
    except Exception as err:  # ezkl raises on a proof that fails verification
        log.info("ezkl verify rejected %s: %s", proof_path.name, _one_line(err))
        return False


def create_evm_verifier(
    vk_path: Path, settings_path: Path, sol_path: Path, abi_path: Path, srs_path: Path
) -> None:
    """Render the Solidity Halo2 verifier (ezkl compiles it with svm's solc 0.8.20)."""
    import ezkl

    ok = _run_async(
        "create_evm_verifier",
        lambda: ezkl.create_evm_verifier(
            str(vk_path), str(settings_path), str(sol_path), str(abi_path), str(srs_path), False
        ),
    )
    if ok is False or not sol_path.is_file():
        raise ToolchainError("ezkl create_evm_verifier produced no Solidity file")


def encode_evm_calldata(proof_path: Path, calldata_path: Path) -> bytes:
    """Calldata for ``verifyProof(bytes, uint256[])`` from an ezkl proof file."""
    import ezkl

    data = _call(
        "encode_evm_calldata",
        ProofError,
        ezkl.encode_evm_calldata,
        str(proof_path),
        str(calldata_path),
    )
    return bytes(data)


def felt_from_le_hex(text: str) -> int:
    """A field element as ezkl's JSON writes it (little-endian hex, no 0x) -> int."""
    return int.from_bytes(bytes.fromhex(text.removeprefix("0x")), "little")


def felt_to_le_hex(value: int) -> str:
    return value.to_bytes(32, "little").hex()


def mock(witness_path: Path, compiled_path: Path) -> None:
    """Check every constraint of the circuit on a witness (no keys); raises ProofError if one
    fails (a witness that exists but could never be proven, e.g. a range check)."""
    import ezkl

    _call("mock", ProofError, ezkl.mock, str(witness_path), str(compiled_path))
