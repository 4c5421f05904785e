"""Reading calibration sets and job inputs from JSON files (the CLI's file formats).

Calibration: ``{"input_data": [[...]]}`` (ezkl's format: one flat list of samples back to
back), ``{"inputs": [[...], ...]}`` or a bare list of samples. Input: ``{"input": [...]}``
(floats, quantized at the model's input scale) or ``{"input_q": [...]}`` (already quantized).
A batch of inputs (``spotcheck job infer``): ``{"inputs": [[...], ...]}``,
``{"inputs_q": [[...], ...]}``, a single input as above, or a ``.npy`` file of shape ``(n, ...)``
(an integer dtype is quantized already, a float dtype is quantized at the input scale).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spotcheck.encoding import quantize
from spotcheck.errors import EncodingError, InputError


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from err


def load_calibration(path: Path) -> np.ndarray:
    """Calibration samples as a float64 array (any shape; checked against the model later)."""
    data = _load(path)
    if isinstance(data, dict):
        data = data.get("input_data", data.get("inputs"))
        if data is None:
            raise InputError(f"{path}: expected key 'input_data' or 'inputs'")
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: calibration must be numbers: {err}") from err
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: calibration contains NaN or infinity")
    return arr


def load_input_q(path: Path, input_scale: int) -> list[int]:
    """A job input file as the quantized vector the protocol uses."""
    data = _load(path)
    if isinstance(data, dict) and "input_q" in data:
        values = data["input_q"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InputError(f"{path}: input_q must be integers")
        return [int(v) for v in values]
    raw = data.get("input") if isinstance(data, dict) else data
    if raw is None:
        raise InputError(f"{path}: expected key 'input' (floats) or 'input_q' (integers)")
    try:
        return quantize(np.asarray(raw, dtype=np.float64), input_scale)
    except (TypeError, ValueError, EncodingError) as err:
        raise InputError(f"{path}: {err}") from err


def load_inputs_q(path: Path, input_scale: int) -> list[list[int]]:
    """A file of one or many job inputs as quantized vectors (one per input)."""
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read {path}: {err}") from err
        if arr.ndim < 1 or arr.shape[0] < 1 or arr.dtype.kind not in "iuf":
            raise InputError(f"{path}: expected numbers of shape (n, ...), n >= 1")
        rows = arr.reshape(arr.shape[0], -1)
        if arr.dtype.kind == "f":
            try:
                return [quantize(row, input_scale) for row in rows]
            except EncodingError as err:
                raise InputError(f"{path}: {err}") from err
        return [[int(v) for v in row] for row in rows]
    data = _load(path)
    if not isinstance(data, dict) or not ({"inputs", "inputs_q"} & set(data)):
        return [load_input_q(path, input_scale)]
    if "inputs_q" in data:
        rows_q = data["inputs_q"]
        if not isinstance(rows_q, list) or not all(
            isinstance(row, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in row)
            for row in rows_q
        ):
            raise InputError(f"{path}: inputs_q must be a list of lists of integers")
        return [[int(v) for v in row] for row in rows_q]
    out: list[list[int]] = []
    for i, row in enumerate(data["inputs"]):
        try:
            out.append(quantize(np.asarray(row, dtype=np.float64), input_scale))
        except (TypeError, ValueError, EncodingError) as err:
            raise InputError(f"{path}: inputs[{i}]: {err}") from err
    return out
