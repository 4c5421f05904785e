"""Serving inference: one reused onnxruntime session per model, fixed-point in and out.

The canonical input of a job is its quantized vector ``input_q`` (that is what is hashed and
what the circuit proves), so the node always runs the model on ``dequantize(input_q)``, also
when a client sent floats. The output is quantized at the model's output scale.

Fault injection (DISHONEST MODE) is for tests and the demo: it corrupts a share of outputs by
more than ``tau`` so that challengers have something to catch. It is off unless configured.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spotcheck.encoding import (
    MAX_EXACT_FLOAT_INT,
    all_exact,
    dequantize,
    quantize_array,
    round_scaled,
)
from spotcheck.errors import ConfigError, EncodingError, InputError

if TYPE_CHECKING:
    from verifier.onnx_runner import OnnxRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """What the node needs to serve one registered model."""

    model_id: bytes
    onnx_path: Path
    input_scale: int
    output_scale: int
    tau: int
    #: The registered input domain ``[in_lo, in_hi]`` (quantized, every element); None: none.
    in_lo: int | None = None
    in_hi: int | None = None
    #: ``"always"`` (default): before committing an output of a ``tau > 0`` model, compare it
    #: with the circuit's witness output and commit the witness output when they differ by more
    #: than tau (only that output is defendable). ``"off"``: commit onnxruntime's output
    #: unchecked (for a model whose tau is a sound bound; see docs/node-operators.md).
    witness_check: str = "always"


@dataclass(frozen=True, eq=False)
class InferenceResult:
    """One inference; vectors are ``int64`` / ``float64`` numpy arrays."""

    model_id: bytes
    input_q: np.ndarray
    output: np.ndarray
    #: What the node commits (corrupted in DISHONEST MODE).
    output_q: np.ndarray
    #: What honest inference produced (equal to ``output_q`` unless corrupted).
    honest_output_q: np.ndarray

    @property
    def corrupted(self) -> bool:
        return not np.array_equal(self.output_q, self.honest_output_q)


class FaultInjector:
    """DISHONEST MODE: corrupt a share ``rate`` of outputs by ``tau + 1 + 2**output_scale``."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"fault injection rate {rate} outside 0..1")
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        if rate > 0:
            log.warning(
                "DISHONEST MODE: fault injection corrupts %.1f%% of outputs beyond tau. "
                "This node WILL be slashed. Use only for tests and demos.",
                100 * rate,
            )

    def maybe_corrupt(self, spec: ModelSpec, output_q: np.ndarray) -> np.ndarray:
        if self.rate <= 0 or output_q.size == 0:
            return output_q
        with self._lock:
            hit = self._rng.random() < self.rate
        if not hit:
            return output_q
        corrupted = output_q.copy()
        corrupted[0] += spec.tau + 1 + 2**spec.output_scale
        log.warning("DISHONEST MODE: corrupting output of model 0x%s", spec.model_id.hex()[:12])
        return corrupted

    def corrupt_rows(self, spec: ModelSpec, outputs_q: np.ndarray) -> np.ndarray:
        """:meth:`maybe_corrupt` of every row of ``outputs_q`` (n, output_len)."""
        if self.rate <= 0:
            return outputs_q
        return np.stack([self.maybe_corrupt(spec, row) for row in outputs_q])


class ModelRuntime:
    """One served model: its reused onnxruntime session, scales and input checks.

    Every inference of a model runs on one dedicated worker thread, so onnxruntime gets
    exactly the cores its session is configured for, while callers quantize, hash and
    persist other jobs concurrently (a pipeline, not more inference threads).
    """

    def __init__(self, spec: ModelSpec, runner: OnnxRunner) -> None:
        self.spec = spec
        self.runner = runner
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{spec.model_id.hex()[:8]}")

    @classmethod
    def load(cls, spec: ModelSpec, intra_op_threads: int = 1) -> ModelRuntime:
        from verifier.onnx_runner import OnnxRunner

        return cls(spec, OnnxRunner(spec.onnx_path, intra_op_threads=intra_op_threads))

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    @property
    def input_len(self) -> int:
        return int(self.runner.input_len)

    def quantize_input(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Floats -> canonical ``input_q`` (checks length, NaN, infinity, range)."""
        try:
            arr = np.asarray(values, dtype=np.float64)
        except OverflowError as err:  # a JSON integer beyond float range
            raise InputError(f"input value out of range: {err}") from err
        self._check_length(arr.size)
        try:
            q = quantize_array(arr, self.spec.input_scale)
        except EncodingError as err:
            raise InputError(str(err)) from err
        self._check_domain(q)
        return q

    def check_input_q(self, input_q: Sequence[int] | np.ndarray) -> np.ndarray:
        """Integers -> canonical ``input_q`` (checks length and ``|q| < 2**53``)."""
        if isinstance(input_q, np.ndarray) and input_q.dtype == np.int64:
            arr = input_q.ravel()
        else:
            values = list(input_q)
            # One C-level pass over the element types instead of a Python loop per element.
            kinds = set(map(type, values))
            if bool in kinds or not all(issubclass(k, int | np.integer) for k in kinds):
                raise InputError("input_q must hold integers only")
            try:
                arr = np.asarray(values, dtype=np.int64).ravel()
            except OverflowError as err:  # some |v| >= 2**63: name the first one
                first = next(i for i, v in enumerate(values) if abs(int(v)) >= MAX_EXACT_FLOAT_INT)
                raise InputError(f"input_q element {first} is out of range (|q| < 2**53)") from err
        self._check_length(arr.size)
        if arr.size:
            out = np.flatnonzero((arr >= MAX_EXACT_FLOAT_INT) | (arr <= -MAX_EXACT_FLOAT_INT))
            if out.size:
                raise InputError(f"input_q element {int(out[0])} is out of range (|q| < 2**53)")
        self._check_domain(arr)
        return arr

    def _check_domain(self, q: np.ndarray) -> None:
        """Refuse inputs outside the registered domain: the circuit (and tau) cover only the
        domain, so an honest output outside it may be unprovable (issue 10.1). Same rule as
        ``verifier.domain.in_domain`` and ``JobManager.requestJob``, vectorised."""
        lo, hi = self.spec.in_lo, self.spec.in_hi
        if lo is None or hi is None or q.size == 0:
            return
        # |q| < 2**53 here: bounds beyond int64 clamp without changing the answer.
        lo_c, hi_c = max(lo, -(2**62)), min(hi, 2**62)
        bad = np.flatnonzero((q < lo_c) | (q > hi_c))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"input element {i} = {int(q[i])} is outside the model's domain [{lo}, {hi}]"
            )

    def _check_length(self, n: int) -> None:
        if n != self.input_len:
            raise InputError(f"input has {n} elements; model expects {self.input_len}")

    def check_inputs_q(self, rows: np.ndarray) -> np.ndarray:
        """An int64 matrix (n, input_len) of quantized inputs -> the canonical inputs, checked
        at once (range and domain); the first bad row is named."""
        arr = np.asarray(rows)
        if arr.dtype.kind not in "iu":
            raise InputError("inputs_q must hold integers only")
        self._check_rows(arr)
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) >= MAX_EXACT_FLOAT_INT:
            raise InputError(
                _row_error(arr >= MAX_EXACT_FLOAT_INT, arr, "is out of range (|q| < 2**53)")
            )
        q = arr.astype(np.int64, copy=False)
        if q.size:
            bad = (q >= MAX_EXACT_FLOAT_INT) | (q <= -MAX_EXACT_FLOAT_INT)
            if bad.any():
                raise InputError(_row_error(bad, q, "is out of range (|q| < 2**53)"))
        self._check_rows_domain(q)
        return q

    def quantize_inputs(self, rows: np.ndarray) -> np.ndarray:
        """A float matrix (n, input_len) -> the canonical inputs (n, input_len), quantized at
        once (checks NaN, infinity, range and domain; the first bad row is named)."""
        arr = np.asarray(rows)
        if arr.dtype.kind not in "fiu":
            raise InputError(f"inputs must be numbers, got dtype {arr.dtype}")
        self._check_rows(arr)
        rounded = round_scaled(arr, self.spec.input_scale)
        if not all_exact(rounded):
            x = arr.astype(np.float64, copy=False)
            finite = np.isfinite(x)
            if not finite.all():
                raise InputError(_row_error(~finite, x, "is NaN or infinite"))
            big = ~(np.abs(rounded) < MAX_EXACT_FLOAT_INT)
            raise InputError(_row_error(big, x, "is too large for the input scale (|q| < 2**53)"))
        q = rounded.astype(np.int64)
        self._check_rows_domain(q)
        return q

    def _check_rows(self, arr: np.ndarray) -> None:
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise InputError(f"a batch is a non-empty list of inputs, got shape {arr.shape}")
        if arr.shape[1] != self.input_len:
            raise InputError(
                f"inputs have {arr.shape[1]} elements each; model expects {self.input_len}"
            )

    def _check_rows_domain(self, q: np.ndarray) -> None:
        lo, hi = self.spec.in_lo, self.spec.in_hi
        if lo is None or hi is None or q.size == 0:
            return
        lo_c, hi_c = max(lo, -(2**62)), min(hi, 2**62)
        bad = (q < lo_c) | (q > hi_c)
        if bad.any():
            raise InputError(_row_error(bad, q, f"is outside the model's domain [{lo}, {hi}]"))

    def submit_rows(self, inputs_q: np.ndarray) -> Future[np.ndarray]:
        """Queue inference of checked canonical inputs (n, input_len) on the model's worker
        thread: one session call per row, never the rows as one batch (``OnnxRunner.run_rows``)."""
        x = inputs_q.astype(np.float64) / float(2**self.spec.input_scale)
        return self._worker.submit(self.runner.run_rows, x)

    def quantize_outputs(self, y: np.ndarray) -> np.ndarray:
        """Float outputs (n, output_len) -> quantized (n, output_len)."""
        try:
            return quantize_array(y, self.spec.output_scale).reshape(y.shape)
        except EncodingError as err:  # a model that outputs NaN/inf for a valid input
            raise InputError(f"model output cannot be encoded: {err}") from err

    def submit(self, input_q: np.ndarray) -> Future[np.ndarray]:
        """Queue inference of a canonical (checked) input on the model's worker thread."""
        x = dequantize(input_q, self.spec.input_scale)
        return self._worker.submit(self.runner.run, x)

    def quantize_output(self, y: np.ndarray) -> np.ndarray:
        try:
            return quantize_array(y, self.spec.output_scale)
        except EncodingError as err:  # a model that outputs NaN/inf for a valid input
            raise InputError(f"model output cannot be encoded: {err}") from err

    def run_q(self, input_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float output and quantized output for a canonical (checked) input."""
        y = self.submit(input_q).result()
        return y, self.quantize_output(y)


def _row_error(bad: np.ndarray, values: np.ndarray, what: str) -> str:
    """One line naming the first bad element of a batch: ``row r element i = v <what>``."""
    row, col = (int(v) for v in np.argwhere(bad)[0])
    return f"row {row}: input element {col} = {values[row, col]} {what}"


class PendingInference:
    """An inference running on its model's worker; :meth:`result` waits for it."""

    def __init__(self, engine: InferenceEngine, runtime: ModelRuntime, input_q: np.ndarray) -> None:
        self.input_q = input_q
        self._engine = engine
        self._runtime = runtime
        self._future = runtime.submit(input_q)

    def result(self) -> InferenceResult:
        y = self._future.result()
        honest = self._runtime.quantize_output(y)
        committed = self._engine.faults.maybe_corrupt(self._runtime.spec, honest)
        return InferenceResult(self._runtime.spec.model_id, self.input_q, y, committed, honest)


class InferenceEngine:
    """All models a node serves, plus the (normally disabled) fault injector."""

    def __init__(
        self, runtimes: Mapping[bytes, ModelRuntime], faults: FaultInjector | None = None
    ) -> None:
        self._runtimes = dict(runtimes)
        self.faults = faults or FaultInjector(0.0)

    @classmethod
    def load(
        cls, specs: Sequence[ModelSpec], faults: FaultInjector | None = None, threads: int = 1
    ) -> InferenceEngine:
        return cls({s.model_id: ModelRuntime.load(s, threads) for s in specs}, faults)

    @property
    def model_ids(self) -> list[bytes]:
        return list(self._runtimes)

    def runtime(self, model_id: bytes) -> ModelRuntime:
        try:
            return self._runtimes[model_id]
        except KeyError as err:
            raise UnknownModelError(model_id) from err

    def close(self) -> None:
        for rt in self._runtimes.values():
            rt.close()

    def submit(self, model_id: bytes, input_q: Sequence[int] | np.ndarray) -> PendingInference:
        """Check the canonical input and start inference (the output may be corrupted on
        purpose in DISHONEST MODE)."""
        rt = self.runtime(model_id)
        return PendingInference(self, rt, rt.check_input_q(input_q))

    def run(self, model_id: bytes, input_q: Sequence[int] | np.ndarray) -> InferenceResult:
        return self.submit(model_id, input_q).result()


class UnknownModelError(InputError):
    """The node does not serve this model."""

    def __init__(self, model_id: bytes) -> None:
        self.model_id = model_id
        super().__init__(f"model 0x{model_id.hex()} is not served by this node")
