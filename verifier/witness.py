"""The circuit's own output for a quantized input (ezkl ``gen_witness``; milliseconds).

Challengers compare a committed output against it before disputing, and nodes audit their own
float outputs against it. The input is the QUANTIZED vector ``input_q`` at the model's input
scale; ezkl receives the floats ``q / 2**scale`` and re-quantizes them to exactly ``q`` (checked:
a mismatch raises ProofError instead of silently proving a different input).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotcheck.encoding import MAX_EXACT_FLOAT_INT, dequantize, from_field, to_field
from spotcheck.errors import InputError, ProofError
from verifier import ezkl_backend
from verifier.artifacts import CircuitArtifacts


@dataclass(frozen=True)
class Witness:
    """Field elements exactly as the verifier's instances take them, and the signed output."""

    input_felts: tuple[int, ...]
    output_felts: tuple[int, ...]
    output_q: tuple[int, ...]

    @property
    def instances(self) -> list[int]:
        return [*self.input_felts, *self.output_felts]


def check_input_q(artifacts: CircuitArtifacts, input_q: Sequence[int]) -> list[int]:
    """Validate a quantized input vector (length, integer type, float-exact magnitude)."""
    if len(input_q) != artifacts.input_len:
        raise InputError(f"input has {len(input_q)} elements; model expects {artifacts.input_len}")
    out: list[int] = []
    for i, v in enumerate(input_q):
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                iv = int(v)
            except (TypeError, ValueError) as err:
                raise InputError(f"input element {i} = {v!r} is not an integer") from err
            if iv != v:
                raise InputError(f"input element {i} = {v!r} is not an integer (quantize first)")
            v = iv
        if abs(v) >= MAX_EXACT_FLOAT_INT:
            raise InputError(f"input element {i} = {v} is too large (|q| must stay below 2**53)")
        out.append(v)
    return out


def _felts(nested: list[list[str]]) -> list[int]:
    return [ezkl_backend.felt_from_le_hex(h) for group in nested for h in group]


def write_input(folder: Path, artifacts: CircuitArtifacts, input_q: Sequence[int]) -> Path:
    floats = dequantize(list(input_q), artifacts.input_scale)
    path = folder / "input.json"
    path.write_text(json.dumps({"input_data": [[float(x) for x in floats]]}))
    return path


def parse_witness(raw: dict[str, Any], input_q: Sequence[int]) -> Witness:
    """Turn ezkl's witness dict into a :class:`Witness`, asserting the input round-tripped."""
    input_felts = _felts(raw["inputs"])
    output_felts = _felts(raw["outputs"])
    expected = [to_field(v) for v in input_q]
    if input_felts != expected:
        bad = next(i for i, (a, b) in enumerate(zip(input_felts, expected, strict=False)) if a != b)
        raise ProofError(
            f"ezkl quantized input element {bad} to {from_field(input_felts[bad])}, "
            f"expected {from_field(expected[bad])}"
        )
    return Witness(
        tuple(input_felts), tuple(output_felts), tuple(from_field(f) for f in output_felts)
    )


def generate(
    artifacts: CircuitArtifacts, input_q: Sequence[int], folder: Path
) -> tuple[Witness, Path]:
    """Write input and witness files into ``folder``; return the parsed witness and its path."""
    q = check_input_q(artifacts, input_q)
    data = write_input(folder, artifacts, q)
    witness_path = folder / "witness.json"
    raw = ezkl_backend.gen_witness(data, artifacts.compiled_path, witness_path)
    return parse_witness(raw, q), witness_path


def compute(artifacts: CircuitArtifacts, input_q: Sequence[int]) -> Witness:
    with tempfile.TemporaryDirectory(prefix="spotcheck-witness-") as tmp:
        witness, _ = generate(artifacts, input_q, Path(tmp))
    return witness


def witness_output(artifacts: CircuitArtifacts, input_q: Sequence[int]) -> list[int]:
    """The circuit's output (signed ints at the output scale) for quantized input ``input_q``."""
    return list(compute(artifacts, input_q).output_q)
