"""Proving disputed jobs and auditing our own outputs against the circuit.

:class:`ProofBackend` is the seam: :class:`EzklProofBackend` builds (or loads from the
content-addressed cache) each model's ezkl artifacts once and proves with ``verifier.prove``;
tests against a MockVerifier pass a backend that returns well-formed instances.

:class:`SelfAuditor` re-checks a small random share of served outputs against the circuit's
witness (the exact rule the contract applies in a dispute). An honest node whose hardware
drifts outside ``tau`` would lose every dispute of that model, so it halts that model loudly
(no new HTTP jobs, no new commitments for it) and keeps serving, committing and defending the
others: one model's trouble, whoever provoked it, never stops the node.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from spotcheck.encoding import max_abs_diff
from spotcheck.errors import ConfigError, ProofError
from verifier.prove import ProofBundle

if TYPE_CHECKING:
    from prover.config import ModelConfig

log = logging.getLogger(__name__)


class ProofBackend(Protocol):
    """A backend may also have ``cancel() -> bool`` (see :meth:`EzklProofBackend.cancel`) and
    ``cancel_next() -> None`` (the proof about to start is cancelled: its dispute was settled
    before it started; see :meth:`EzklProofBackend.cancel_next`)."""

    def prove(self, model_id: bytes, input_q: Sequence[int]) -> ProofBundle: ...

    def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]: ...


class ProofCancelledError(ProofError):
    """The proof in progress was cancelled (its dispute was settled by someone else)."""


#: Artifacts loaded in the prover process, by the files they come from.
_CHILD_ARTIFACTS: dict[tuple[Any, ...], Any] = {}


def _load_artifacts(key: tuple[Any, ...]) -> Any:
    from verifier.artifacts import build_artifacts_from_files

    onnx_path, calibration_path, srs_path, srs_sha256 = key
    return build_artifacts_from_files(onnx_path, calibration_path, srs_path, srs_sha256)


def _prove_in_child(key: tuple[Any, ...], input_q: list[int]) -> tuple[bytes, list[int], list[int]]:
    """Runs in the prover process: ezkl holds the GIL for a whole proof (measured: a thread of
    the calling process got no time for 25 s), so proofs run in a process of their own."""
    from verifier.prove import prove

    if key not in _CHILD_ARTIFACTS:
        _CHILD_ARTIFACTS[key] = _load_artifacts(key)
    bundle = prove(_CHILD_ARTIFACTS[key], input_q)
    return bundle.proof, list(bundle.instances), list(bundle.output_q)


def _witness_in_child(artifacts: Any, input_q: list[int]) -> list[int]:
    """Runs in a witness process: ezkl's gen_witness holds the GIL (~7 ms for the tiny MLP),
    which in a thread would stall the HTTP event loop and inference for as long."""
    from verifier.witness import witness_output

    return witness_output(artifacts, input_q)


class EzklProofBackend:
    """ezkl through ``verifier``: artifacts per model, built once per process (cached on disk).

    Proofs run in a separate process (one, kept warm with the artifacts it loaded): ezkl's
    ``prove`` holds Python's GIL for its whole run, so in a thread it would stall HTTP serving
    and the chain loop for the seconds to minutes a proof takes. Witnesses (milliseconds) run
    in a process of their own too (the witness check computes one per served output of a
    ``tau > 0`` model, and ezkl holds the GIL for it). ``in_process=True`` proves and computes
    witnesses in the calling thread (tools, tests).
    """

    def __init__(self, models: dict[bytes, ModelConfig], *, in_process: bool = False) -> None:
        self._models = models
        self._artifacts: dict[bytes, Any] = {}
        self._lock = threading.Lock()
        self._in_process = in_process
        self._pool: Any = None
        self._witness_pool: Any = None
        #: what runs in the prover process (a seam for tests)
        self._child_prove: Any = _prove_in_child
        self._running: Any = None  # the future of the proof in progress
        self._cancelled: Any = None  # ... and of the one cancel() killed
        #: prove() runs but has not submitted its proof yet (loading the artifacts) ...
        self._starting = False
        #: ... and cancel() came then: prove() stops before submitting
        self._cancel_pending = False

    def artifacts(self, model_id: bytes) -> Any:
        with self._lock:
            if model_id not in self._artifacts:
                self._artifacts[model_id] = self._build(model_id)
            return self._artifacts[model_id]

    def _config(self, model_id: bytes) -> ModelConfig:
        cfg = self._models.get(model_id)
        if cfg is None:
            raise ConfigError(f"model 0x{model_id.hex()} is not served by this node")
        return cfg

    @staticmethod
    def _key(cfg: ModelConfig) -> tuple[Any, ...]:
        return (cfg.onnx_path, cfg.calibration_path, cfg.srs_path, cfg.srs_sha256)

    def _build(self, model_id: bytes) -> Any:
        cfg = self._config(model_id)
        if cfg.srs_path is None:
            log.warning("model 0x%s: using a DEV SRS (tests and demos only)", model_id.hex()[:12])
        artifacts = _load_artifacts(self._key(cfg))
        if (artifacts.input_scale, artifacts.output_scale) != (cfg.input_scale, cfg.output_scale):
            raise ConfigError(
                f"model 0x{model_id.hex()}: circuit scales "
                f"{artifacts.input_scale}/{artifacts.output_scale} differ from the configured "
                f"{cfg.input_scale}/{cfg.output_scale}"
            )
        return artifacts

    def prove(self, model_id: bytes, input_q: Sequence[int]) -> ProofBundle:
        values = [int(v) for v in input_q]
        if self._in_process:
            from verifier.prove import prove

            return prove(self.artifacts(model_id), values)
        with self._lock:
            self._starting = True
        try:
            self.artifacts(model_id)  # checks the files and scales here, with a clear error
            key = self._key(self._config(model_id))
            with self._lock:
                if self._cancel_pending:
                    raise ProofCancelledError("proof cancelled before it started")
                pool = self._prover_locked()
                future = self._running = pool.submit(self._child_prove, key, values)
        finally:
            with self._lock:
                self._starting = self._cancel_pending = False
        try:
            proof, instances, output = future.result()
        except BrokenProcessPool as err:  # the prover process died (memory, a crash): restart
            with self._lock:
                if self._pool is pool:
                    self._pool = None
                cancelled = self._cancelled is future
            if cancelled:
                raise ProofCancelledError("proof cancelled: prover process stopped") from err
            raise ProofError(f"the prover process died: {err}") from err
        except CancelledError as err:  # cancel() came before the process took the proof
            raise ProofCancelledError("proof cancelled before it started") from err
        finally:
            with self._lock:
                if self._running is future:
                    self._running = None
        return ProofBundle(proof, instances, output)

    def cancel(self) -> bool:
        """Stop the proof in progress (its dispute was settled by someone else): the prover
        process is killed, :meth:`prove` raises :class:`ProofCancelledError`, and the next proof
        starts a new process (which loads the keys again). True if a proof was running.
        ``in_process`` proofs cannot be stopped (False). A call while :meth:`prove` has not
        submitted its proof yet (loading the artifacts) makes it stop before (True)."""
        if self._in_process:
            return False
        with self._lock:
            future, pool = self._running, self._pool
            if future is None and self._starting:
                self._cancel_pending = True
                return True
            if future is None or future.done() or pool is None:
                return False
            self._cancelled = future
            self._pool = None
            # ProcessPoolExecutor has no public way to stop a running task (3.14 adds
            # terminate_workers); killing its process breaks the pool and fails the future.
            processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        return bool(processes)

    def cancel_next(self) -> None:
        """The next :meth:`prove` (about to be called) stops before submitting its proof."""
        with self._lock:
            self._cancel_pending = True

    def _prover_locked(self) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        with self._lock:
            for pool in (self._pool, self._witness_pool):
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._witness_pool = None

    def _witnesses(self) -> Any:
        with self._lock:
            if self._witness_pool is None:
                self._witness_pool = ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn")
                )
            return self._witness_pool

    def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
        artifacts = self.artifacts(model_id)
        values = [int(v) for v in input_q]
        if not self._in_process:
            try:
                out = self._witnesses().submit(_witness_in_child, artifacts, values).result()
                return [int(v) for v in out]
            except BrokenProcessPool as err:  # the witness process died: restart it next time
                with self._lock:
                    self._witness_pool = None
                log.error("the witness process died (%s); computing this witness here", err)
        return _witness_in_child(artifacts, values)


@dataclass(frozen=True)
class AuditFinding:
    job_ref: str
    model_id: bytes
    max_diff: int
    tau: int

    @property
    def ok(self) -> bool:
        return self.max_diff <= self.tau


class SelfAuditor:
    """Samples served outputs (cheap, on the hot path) and checks them later (off it)."""

    def __init__(
        self, backend: ProofBackend | None, rate: float, taus: dict[bytes, int], seed: int = 0
    ) -> None:
        self.backend = backend
        self.rate = rate if backend is not None else 0.0
        self._taus = taus
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, bytes, list[int], list[int]]] = queue.Queue(1000)
        #: model id -> why its self-audit halted it
        self._halted: dict[bytes, str] = {}
        self.on_result: Any = None  # callable(result: str) for metrics

    def is_halted(self, model_id: bytes) -> bool:
        return model_id in self._halted

    def halted_models(self) -> dict[bytes, str]:
        with self._lock:
            return dict(self._halted)

    def halted_reason_for(self, model_id: bytes) -> str | None:
        return self._halted.get(model_id)

    @property
    def halted_reason(self) -> str | None:
        """Every halted model and why, in one line (None when none is halted)."""
        halted = self.halted_models()
        if not halted:
            return None
        return "; ".join(f"model 0x{m.hex()}: {why}" for m, why in halted.items())

    def maybe_sample(
        self, job_ref: str, model_id: bytes, input_q: Sequence[int], honest_output_q: Sequence[int]
    ) -> None:
        """Queue the honest output (not a deliberately corrupted one) for checking."""
        if self.rate <= 0 or model_id in self._halted:
            return
        with self._lock:
            if self._rng.random() >= self.rate:
                return
        try:
            self._queue.put_nowait(
                (job_ref, model_id, [int(v) for v in input_q], [int(v) for v in honest_output_q])
            )
        except queue.Full:
            log.debug("self-audit queue full; skipping %s", job_ref)

    def drain(
        self, limit: int = 10, before_each: Callable[[], None] | None = None
    ) -> list[AuditFinding]:
        """Check up to ``limit`` queued samples; a miss halts that model only. A sample that
        cannot be checked (the witness fails) is logged and counted, never raised.
        ``before_each`` runs before each sample's witness (the node answers leaf requests
        between them: ``NodeService._urgent``)."""
        findings: list[AuditFinding] = []
        if self.backend is None:
            return findings
        for _ in range(limit):
            if before_each is not None and not self._queue.empty():
                before_each()
            try:
                job_ref, model_id, input_q, output_q = self._queue.get_nowait()
            except queue.Empty:
                break
            if model_id in self._halted:
                continue
            try:
                reference = self.backend.witness_output(model_id, input_q)
                finding = AuditFinding(
                    job_ref, model_id, max_abs_diff(output_q, reference), self._taus[model_id]
                )
            except Exception as err:
                log.error(
                    "self-audit failed: %s",
                    err,
                    extra={"job": job_ref, "model_id": "0x" + model_id.hex()},
                )
                self._count("error")
                continue
            findings.append(finding)
            self._count("ok" if finding.ok else "miss")
            if not finding.ok:
                reason = (
                    f"self-audit of {job_ref}: output differs from the circuit by "
                    f"{finding.max_diff} > tau {finding.tau}"
                )
                with self._lock:
                    self._halted[model_id] = reason
                log.critical(
                    "MODEL HALTED: %s. No new jobs or commitments for this model (the others "
                    "go on). Check the hardware and the model files, then restart.",
                    reason,
                    extra={"model_id": "0x" + model_id.hex()},
                )
        return findings

    def _count(self, result: str) -> None:
        if self.on_result is not None:
            self.on_result(result)
