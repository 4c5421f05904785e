"""Serving batched jobs and cutting them into Merkle batches.

:class:`JobServer` is the hot path of the HTTP API: canonical input -> inference -> output
hash -> leaf -> signature -> durable record, then the receipt. Inference runs on the model's
worker thread; everything else (hashing, signing, storing) runs on the server's own small pool,
one thread per core that inference leaves free, however many requests arrive at once. So the
extra work overlaps inference (hashing and SQLite release the GIL) without ever crowding the
inference thread off its core: inference is the bottleneck resource.

:class:`BatchCutter` decides when the pending jobs of a model become a sealed batch: every
``batch_size`` jobs or when the oldest pending job is ``interval_s`` old, whichever first.
Sealing (the batch row with its root, every job's leaf index; no proofs: a leaf's proof is rebuilt
from the batch's leaves when asked) is one SQLite transaction in
:meth:`prover.store.Store.seal_batch`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from prover.inference import InferenceEngine, InferenceResult, ModelSpec
from prover.receipts import Receipt, Signer
from prover.store import Batch, Store
from prover.vectors import hash_array
from spotcheck.encoding import dequantize, hash_rows, leaf_hash, leaf_hashes, max_abs_diff
from spotcheck.merkle import MerkleTree

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Served:
    """The answer to one served job."""

    result: InferenceResult
    receipt: Receipt


@dataclass(frozen=True, eq=False)
class ServedRequest:
    """The answer to one batched request: row ``i`` is job ``job_ids[i]``. One signature over
    the sub-root of the request's leaves; :meth:`receipt` gives each job its own receipt."""

    model_id: bytes
    #: float outputs (n, output_len) and the committed quantized outputs (n, output_len)
    outputs: np.ndarray
    outputs_q: np.ndarray
    job_ids: list[int]
    input_hashes: list[bytes]
    output_hashes: list[bytes]
    tree: MerkleTree
    signature: bytes
    node: str
    chain_id: int
    job_manager: str

    def __len__(self) -> int:
        return len(self.job_ids)

    def receipt(self, i: int) -> Receipt:
        return Receipt(
            self.job_ids[i],
            self.model_id,
            self.input_hashes[i],
            self.output_hashes[i],
            self.node,
            self.signature,
            self.chain_id,
            self.job_manager,
            i,
            tuple(self.tree.proof(i)),
        )


#: GIL switch interval (s) while a node serves: see :class:`JobServer`.
SWITCH_INTERVAL_S = 0.0005


class JobServer:
    """Serve one job: infer, hash, sign, persist. Thread-safe (the store serialises writes).

    ``aux_threads`` threads do the per-job work besides inference; the default leaves one core
    to inference (the node runs one intra-op thread per model) and uses the others.

    Creating one lowers the process's GIL switch interval to :data:`SWITCH_INTERVAL_S`: when
    a model's worker thread returns from onnxruntime while a request thread runs Python code,
    it waits for the GIL up to the interval (5 ms by default), and that wait is idle time on
    the inference core. Measured on light_resnet50 (``benchmarks/bench_node_throughput.py``):
    0.942 -> 0.963 of plain onnxruntime throughput.
    """

    def __init__(
        self,
        engine: InferenceEngine,
        store: Store,
        signer: Signer,
        on_served: Callable[[InferenceResult, int], None] | None = None,
        *,
        aux_threads: int | None = None,
        exact: Callable[[bytes, list[int]], list[int]] | None = None,
    ) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.engine = engine
        self.store = store
        self.signer = signer
        self._on_served = on_served
        #: The circuit's own output for an input (ezkl witness): the answer for tau = 0 models,
        #: the check of onnxruntime's output for the others (``witness_check``).
        self._exact = exact
        self.aux_threads = aux_threads or max(1, (os.cpu_count() or 2) - 1)
        self._aux = ThreadPoolExecutor(self.aux_threads, thread_name_prefix="serve-aux")
        #: The circuit's witness output (``witness_check``), beside inference and the aux work.
        self._witness = ThreadPoolExecutor(self.aux_threads, thread_name_prefix="serve-witness")

    def close(self) -> None:
        self._aux.shutdown(wait=True)
        self._witness.shutdown(wait=True)

    def serve(self, model_id: bytes, input_q: np.ndarray) -> Served:
        # The input hash, and the circuit's witness output when the model needs one, are
        # computed while the model's worker thread runs the inference.
        pending = self.engine.submit(model_id, input_q)
        in_hash = self._aux.submit(hash_array, pending.input_q)
        witness: Future[list[int] | None] | None = None
        if self._exact is not None and needs_witness(self.engine.runtime(model_id).spec):
            witness = self._witness.submit(self._witness_or_none, model_id, pending.input_q)
        result = pending.result()
        circuit = None if witness is None else witness.result()
        return self._aux.submit(self._finish, result, in_hash.result(), circuit).result()

    def serve_many(self, model_id: bytes, inputs_q: np.ndarray) -> ServedRequest:
        """Serve the jobs of one request (checked canonical inputs, one per row): one
        inference call (batched where the model allows it), hashes by numpy, one signature
        over the request's sub-root, one SQLite transaction."""
        runtime = self.engine.runtime(model_id)
        spec = runtime.spec
        running = runtime.submit_rows(inputs_q)
        in_hashes = self._aux.submit(hash_rows, inputs_q)
        witnesses: list[Future[list[int] | None]] | None = None
        if self._exact is not None and needs_witness(spec):
            witnesses = [
                self._witness.submit(self._witness_or_none, model_id, row) for row in inputs_q
            ]
        outputs = running.result()
        honest = runtime.quantize_outputs(outputs)
        committed = self.engine.faults.corrupt_rows(spec, honest)
        if witnesses is not None:
            outputs, committed, honest = outputs.copy(), committed.copy(), honest.copy()
            for i, witness in enumerate(witnesses):
                row = InferenceResult(model_id, inputs_q[i], outputs[i], committed[i], honest[i])
                chosen = self._defendable(row, witness.result())
                outputs[i], committed[i], honest[i] = (
                    chosen.output,
                    chosen.output_q,
                    chosen.honest_output_q,
                )
        out_hashes = hash_rows(committed)
        ins = in_hashes.result()
        signed: list[tuple[MerkleTree, bytes]] = []

        def sign(job_ids: list[int]) -> tuple[list[bytes], bytes]:
            leaves = leaf_hashes(job_ids, model_id, ins, out_hashes)
            tree = MerkleTree(leaves)
            signed.append((tree, self.signer.sign_leaf(tree.root)))
            return leaves, signed[0][1]

        job_ids, _ = self.store.record_served_many(
            model_id, inputs_q, committed, ins, out_hashes, sign
        )
        if self._on_served is not None:
            for i, job_id in enumerate(job_ids):
                result = InferenceResult(model_id, inputs_q[i], outputs[i], committed[i], honest[i])
                self._on_served(result, job_id)
        domain = self.signer.domain
        return ServedRequest(
            model_id,
            outputs,
            committed,
            job_ids,
            ins,
            out_hashes,
            signed[0][0],
            signed[0][1],
            self.signer.address,
            domain.chain_id,
            domain.job_manager,
        )

    def _witness_or_none(self, model_id: bytes, input_q: np.ndarray) -> list[int] | None:
        assert self._exact is not None
        try:
            return [int(v) for v in self._exact(model_id, input_q.tolist())]
        except Exception as err:  # never fail a request for the check; tau = 0 raises below
            log.error("witness output failed: %s", err, extra={"model_id": "0x" + model_id.hex()})
            return None

    def _finish(
        self, result: InferenceResult, in_hash: bytes, circuit: list[int] | None = None
    ) -> Served:
        model_id = result.model_id
        result = self._defendable(result, circuit)
        out_hash = hash_array(result.output_q)

        def leaf_for(job_id: int) -> tuple[bytes, bytes]:
            leaf = leaf_hash(job_id, model_id, in_hash, out_hash)
            return leaf, self.signer.sign_leaf(leaf)

        job = self.store.record_served(
            model_id, result.input_q, result.output_q, in_hash, out_hash, leaf_for
        )
        if self._on_served is not None:
            self._on_served(result, job.job_id)
        domain = self.signer.domain
        receipt = Receipt(
            job.job_id,
            model_id,
            in_hash,
            out_hash,
            self.signer.address,
            job.signature,
            domain.chain_id,
            domain.job_manager,
        )
        return Served(result, receipt)

    def _defendable(self, result: InferenceResult, circuit: list[int] | None) -> InferenceResult:
        """What the node answers and commits: for a tau = 0 model the circuit's own output (only
        that output can be proven within tau 0); for a tau > 0 model with ``witness_check =
        "always"``, onnxruntime's output unless it is more than tau from the circuit's, then the
        circuit's (see :func:`defendable_output`). DISHONEST MODE corruptions are kept."""
        spec = self.engine.runtime(result.model_id).spec
        if self._exact is None or result.corrupted or not needs_witness(spec):
            return result
        if circuit is None:
            if spec.tau != 0:
                return result  # the check failed (logged); onnxruntime's output is served
            circuit = [int(v) for v in self._exact(result.model_id, result.input_q.tolist())]
        chosen = defendable_output(spec, result.output_q.tolist(), circuit, "served job")
        if chosen is None:
            return result
        exact = np.asarray(chosen, dtype=np.int64)
        return replace(
            result,
            output=dequantize(exact, spec.output_scale),
            output_q=exact,
            honest_output_q=exact,
        )


def needs_witness(spec: ModelSpec) -> bool:
    """True if an output of this model is checked against the circuit before it is committed:
    always for tau = 0 (the circuit's output is the answer), else per ``witness_check``."""
    return spec.tau == 0 or spec.witness_check != "off"


def defendable_output(
    spec: ModelSpec, output_q: Sequence[int], circuit: Sequence[int], what: str
) -> list[int] | None:
    """The output to commit instead of onnxruntime's ``output_q``, or None to keep it.

    tau = 0: the circuit's output whenever it differs. tau > 0: the circuit's output when
    ``max|onnx - circuit| > tau`` (a proof can only show outputs within tau of the circuit's, so
    onnxruntime's output would be undefendable: an adversarial input against an empirical tau),
    logged as a calibration gap. Within tau, onnxruntime's output is kept.
    """
    circuit = [int(v) for v in circuit]
    if len(circuit) != len(output_q):
        raise ValueError(f"witness output has {len(circuit)} values, expected {len(output_q)}")
    diff = max_abs_diff([int(v) for v in output_q], circuit)
    if spec.tau == 0:
        return circuit if diff else None
    if diff <= spec.tau:
        return None
    log.warning(
        "%s: onnxruntime output is %d from the circuit's (tau %d); committing the circuit's "
        "output (the registrar's tau is not a sound bound for this input: %s)",
        what,
        diff,
        spec.tau,
        [int(v) for v in output_q][:8],
        extra={"model_id": "0x" + spec.model_id.hex()},
    )
    return circuit


class BatchCutter:
    """Seals pending served jobs into batches by size or age."""

    def __init__(
        self,
        store: Store,
        batch_size: int,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._clock = clock

    def _is_due(self, count: int, oldest: float, now: float) -> bool:
        return count >= self.batch_size or (count > 0 and now - oldest >= self.interval_s)

    def due(self) -> list[bytes]:
        """Models with a full batch pending, or whose oldest pending job is too old."""
        now = self._clock()
        return [
            model_id
            for model_id, (count, oldest) in self.store.pending_counts().items()
            if self._is_due(count, oldest, now)
        ]

    def cut(self, *, force: bool = False) -> list[Batch]:
        """Seal every due batch (all pending jobs if ``force``, e.g. on shutdown)."""
        sealed: list[Batch] = []
        for model_id in list(self.store.pending_counts()):
            while True:
                count, oldest = self.store.pending_counts().get(model_id, (0, 0.0))
                if count == 0 or not (force or self._is_due(count, oldest, self._clock())):
                    break
                batch = self.store.seal_batch(model_id, self.batch_size)
                if batch is None:
                    break
                log.info(
                    "batch sealed",
                    extra={
                        "batch": batch.local_id,
                        "model_id": "0x" + model_id.hex(),
                        "count": batch.count,
                        "root": "0x" + batch.root.hex(),
                    },
                )
                sealed.append(batch)
        return sealed
