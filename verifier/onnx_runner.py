"""Float inference with onnxruntime: the only module that imports onnxruntime.

Nodes serve jobs with it and challengers re-run jobs with it. One ``InferenceSession`` is built
per model and reused; inputs are validated before they reach the runtime so that a wrong shape,
dtype, length, NaN or infinity is a one-line :class:`~spotcheck.errors.InputError`.

A file saved with an IR version newer than onnxruntime reads (the pinned ``onnx`` writes IR 14,
onnxruntime 1.31 reads at most 13) is loaded with its IR version lowered in memory when its
opsets allow it (the file and its hash are unchanged, so every node and challenger does the same);
otherwise the error says in one line what to do.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spotcheck.errors import InputError, ModelError

log = logging.getLogger(__name__)

#: ONNX tensor element types Spotcheck accepts as model inputs (float-valued, quantized later).
_FLOAT_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape (symbolic dims fixed to 1) and numpy dtype of a model tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: type[np.floating[Any]]

    @property
    def length(self) -> int:
        return math.prod(self.shape)


def _static_shape(name: str, dims: list[Any]) -> tuple[int, ...]:
    shape: list[int] = []
    for d in dims:
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif d is None or isinstance(d, str):
            shape.append(1)  # symbolic batch dimension: Spotcheck proves one sample per job
        else:
            raise ModelError(f"tensor {name!r} has unsupported dimension {d!r}")
    return tuple(shape)


class OnnxRunner:
    """A reusable onnxruntime session for a single-input model; outputs are flattened float64."""

    def __init__(self, onnx_path: Path | str, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise ModelError(f"ONNX file not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = _session(path, opts)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path.name} has {len(inputs)} inputs; Spotcheck needs exactly one")
        inp = inputs[0]
        if inp.type not in _FLOAT_TYPES:
            raise ModelError(
                f"input {inp.name!r} has type {inp.type}; only float inputs are supported"
            )
        self._symbolic = tuple(d for d in inp.shape if isinstance(d, str))
        self.input = TensorSpec(
            inp.name, _static_shape(inp.name, inp.shape), _FLOAT_TYPES[inp.type]
        )
        self.outputs = tuple(
            TensorSpec(o.name, _static_shape(o.name, o.shape), np.float64)
            for o in self._session.get_outputs()
        )
        self._output_names = [o.name for o in self.outputs]
        log.debug("loaded %s: input %s %s", path.name, self.input.name, self.input.shape)

    @property
    def symbolic_dims(self) -> tuple[str, ...]:
        """The names of the input's symbolic dimensions (each fixed to 1), in order."""
        return self._symbolic

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def input_dtype(self) -> type[np.floating[Any]]:
        return self.input.dtype

    @property
    def input_len(self) -> int:
        return self.input.length

    def validate(self, x: np.ndarray) -> np.ndarray:
        """Return ``x`` reshaped to the model's input shape and dtype, or raise InputError.

        Accepted: the exact shape, or any array with the same number of elements (a flat vector
        is reshaped row-major). Rejected: other lengths, non-numeric dtypes, NaN and infinity.
        """
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiu":
            raise InputError(f"input dtype {arr.dtype} is not numeric")
        if arr.size != self.input_len:
            raise InputError(
                f"input has {arr.size} elements (shape {arr.shape}); "
                f"model expects {self.input_len} (shape {self.input_shape})"
            )
        if arr.ndim > 1 and _squeezed(arr.shape) != _squeezed(self.input_shape):
            raise InputError(
                f"input shape {arr.shape} does not match model shape {self.input_shape}"
            )
        as_float = arr.astype(np.float64)
        if not np.all(np.isfinite(as_float)):
            bad = int(np.flatnonzero(~np.isfinite(as_float.ravel()))[0])
            raise InputError(f"input element {bad} is {as_float.ravel()[bad]} (NaN/infinity)")
        return as_float.reshape(self.input_shape).astype(self.input_dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run one inference; returns every output flattened and concatenated, as float64."""
        feed = {self.input.name: self.validate(x)}
        results = self._session.run(self._output_names, feed)
        return np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in results])

    def run_rows(self, rows: np.ndarray) -> np.ndarray:
        """Run many checked inputs (rows of a finite float matrix (n, input_len)); returns the
        flattened outputs as a float64 matrix (n, output_len). One session call per row, without
        per-row validation: never the rows as one batch, even where the first input dimension
        is symbolic, since a model may mix rows along it (Softmax over axis 0, attention over a
        sequence) while the challenger and the circuit compute each job alone; a requester's
        second row would move the first row's output and an honest node would be slashed."""
        n = rows.shape[0]
        x = np.ascontiguousarray(rows, dtype=self.input_dtype)
        shape, run, names, name = (
            self.input_shape,
            self._session.run,
            self._output_names,
            self.input.name,
        )
        outs = [run(names, {name: row.reshape(shape)}) for row in x]
        if len(names) == 1:
            return np.asarray([o[0] for o in outs], dtype=np.float64).reshape(n, -1)
        return np.asarray(
            [np.concatenate([np.ravel(r) for r in o]) for o in outs], dtype=np.float64
        ).reshape(n, -1)


#: onnxruntime's refusal of a newer IR version (its text since 1.x).
_IR_REFUSED = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")


def _session(path: Path, opts: Any) -> Any:
    """An InferenceSession for ``path``; a newer IR version is lowered in memory if possible."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # onnxruntime raises its own untyped exception classes
        refused = _IR_REFUSED.search(str(err))
        if refused is None:
            raise ModelError(f"onnxruntime cannot load {path.name}: {_first_line(err)}") from err
        have, most = int(refused.group(1)), int(refused.group(2))
    data = lower_ir_version(path, have, most, ort.__version__)
    try:
        return ort.InferenceSession(data, sess_options=opts, providers=providers)
    except Exception as err:
        raise ModelError(
            f"onnxruntime cannot load {path.name} even with its IR version lowered from {have} "
            f"to {most}: {_first_line(err)}"
        ) from err


def lower_ir_version(path: Path, have: int, most: int, runtime: str) -> bytes:
    """The model's bytes with ``ir_version = most``, or a one-line ModelError saying what to do
    when one of its opsets needs a newer IR version than ``most``."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(path))
    need = 0
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx"):
            need = max(need, helper.find_min_ir_version_for([opset], ignore_unknown=True))
    if need > most:
        raise ModelError(
            f"{path.name} is saved with ONNX IR version {have} and its opset needs IR {need}; "
            f"onnxruntime {runtime} reads at most IR {most}: convert it to an older opset "
            f"(onnx.version_converter.convert_version(model, 21)), set model.ir_version = "
            f"{most} and save it again"
        )
    log.info("%s: IR version %d lowered to %d in memory for onnxruntime", path.name, have, most)
    proto.ir_version = most
    return bytes(proto.SerializeToString())


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
