"""The node's HTTP API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

- ``POST /v1/models/{modelId}/infer``: serve a job; answer output, ``output_q`` and a signed
  receipt. The job is durable before the answer is sent and is committed in a batch later.
  Batched: many inputs of the model in one request, as JSON (``inputs`` or ``inputs_q``: a list
  of inputs) or as a ``.npy`` body (``Content-Type: application/x-npy``; shape ``(n,
  *input_shape)`` or ``(n, input_len)``; an integer dtype is ``inputs_q``, a float dtype
  ``inputs``). One inference call, one SQLite transaction and one signature per request: the
  answer's ``results`` hold each job's output and receipt, whose ``subIndex``/``subProof``
  lead from the job's leaf to the signed sub-root (``spotcheck/receipts.py``). At most
  ``max_request_jobs`` inputs (413); the free stake must back all of them at once (503).
- ``GET /v1/batches/{batchId}``: a committed batch's leaves (for challengers and users),
  streamed from a read snapshot; 410 once the batch is final and its vectors were pruned.
- ``GET /v1/batches/{batchId}/jobs/{jobId}``: one leaf and its Merkle proof.
- ``GET /v1/jobs/{jobId}``: where a served job is (pending, or batch id and proof; 410 once
  pruned).
- ``/health`` (process alive), ``/ready`` (serving: the chain loop's last step succeeded
  recently, ``spotcheck.kit.ready``, and a model is not halted), ``/metrics`` (Prometheus).

With API keys configured (``prover.access``), ``/infer`` needs one: 401 for a missing or
unknown key, 429 with ``Retry-After`` over the key's rate limit.

Bad input is a 4xx with a one-line ``detail`` and never reaches the store: unknown model
(404), wrong length, NaN or infinity, non-integers in ``input_q`` (422), oversized body (413);
in a batch the first bad row is named (``row 3: ...``).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from prover.access import AccessControl
from prover.batching import JobServer, ServedRequest
from prover.defence import SelfAuditor
from prover.inference import UnknownModelError
from prover.metrics import NodeMetrics
from prover.store import Batch, BatchSnapshot, BatchState, ServedJob, Store
from spotcheck.encoding import parse_bytes32
from spotcheck.errors import EncodingError, InputError
from spotcheck.merkle import ZERO_HASHES
from spotcheck.wire import (
    BatchLeaf,
    BatchLeafProof,
    BatchListing,
    CommittedJob,
    JobAnswer,
    JobStatus,
    ReceiptModel,
)

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InferRequest(BaseModel):
    """Exactly one of ``input`` (floats, quantized by the node) or ``input_q`` (integers), or
    a batch: ``inputs`` (a list of float inputs) or ``inputs_q`` (a list of integer inputs)."""

    model_config = ConfigDict(extra="forbid")

    input: list[StrictFloat | StrictInt] | None = Field(
        default=None, description="Flat input (row-major), quantized at the model's input scale"
    )
    input_q: list[StrictInt] | None = Field(
        default=None, description="Flat quantized input (the canonical job input)"
    )
    inputs: list[list[StrictFloat | StrictInt]] | None = Field(
        default=None, description="A batch: flat inputs, each quantized by the node"
    )
    inputs_q: list[list[StrictInt]] | None = Field(
        default=None, description="A batch: flat quantized inputs"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> InferRequest:
        given = [self.input, self.input_q, self.inputs, self.inputs_q]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of `input`, `input_q`, `inputs` or `inputs_q`")
        return self


#: ``infer`` parses its body itself with pydantic's JSON parser (~7 ms for a 224x224x3 float
#: image, against ~30 ms through FastAPI's ``json.loads`` and validation); this puts the
#: request schema back into the OpenAPI document.
_INFER_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": InferRequest.model_json_schema()},
            # a batch as a .npy file: shape (n, *input_shape) or (n, input_len); integer
            # dtype = inputs_q, float dtype = inputs
            "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class InferResponse(BaseModel):
    output: list[float]
    output_q: list[int]
    receipt: ReceiptModel


class BatchInferResponse(BaseModel):
    """A batched request's answer: one result per input, in request order."""

    results: list[InferResponse]


#: Content types of a ``.npy`` body.
NPY_TYPES = frozenset({"application/x-npy", "application/npy", "application/vnd.numpy"})


@dataclass(frozen=True)
class ApiContext:
    server: JobServer
    store: Store
    metrics: NodeMetrics
    auditor: SelfAuditor
    max_body_bytes: int = 8 * 1024 * 1024
    #: Why the node is not ready (None: it is): its chain loop's ``Readiness.reason``.
    not_ready: Callable[[], str | None] = lambda: None
    #: The node's batch committed under a chain batch id, checked against the chain and found
    #: by its root when a reorg moved it (``NodeService.resolve_batch``); None: the store only.
    resolve_batch: Callable[..., Batch | None] | None = None
    #: Why new jobs of a model are refused now (None: accepted): ``prover.work_gate.WorkGate``
    #: (unbonding, stake below the minimum, or too little free stake for the next commitment).
    #: Asked after the request's input is validated, before serving: ``WorkGate.admit``
    #: counts the job's slash at once (an admission the two calls below settle).
    #: Called ``(model_id)`` for one job, ``(model_id, n)`` for a batched request of n jobs
    #: (admitted all at once or refused), likewise the two below.
    refuse_work: Callable[..., str | None] = lambda model_id, n=1: None
    #: The admitted job is stored (``WorkGate.stored``): counted until the next stake read.
    work_stored: Callable[..., None] = lambda model_id, n=1: None
    #: The admitted job was not served (``WorkGate.release``): its slash is free again.
    release_work: Callable[..., None] = lambda model_id, n=1: None
    #: Most inputs in one batched request (more: 413).
    max_request_jobs: int = 1024
    #: A listing's read snapshot is held at most this long (a slow reader is cut off).
    listing_max_s: float = 120.0
    #: API keys and their rate limits for ``/infer`` (``prover.access``; none: open).
    access: AccessControl = field(default_factory=lambda: AccessControl({}))


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, by header and while streaming."""

    def __init__(self, app: ASGIApp, limit: int, on_reject: Callable[[], None]) -> None:
        self.app = app
        self.limit = limit
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._reject(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLargeError:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        self.on_reject()
        response = JSONResponse(
            {"detail": f"request body larger than {self.limit} bytes"}, status_code=413
        )
        await response({"type": "http"}, _empty_receive, send)


class _TooLargeError(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b""}


def _one_line(err: ValidationError) -> str:
    """The first problem of a bad request body, without echoing the body back."""
    first = err.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _parse_model_id(text: str) -> bytes:
    try:
        return parse_bytes32(text)
    except EncodingError as err:
        raise HTTPException(404, f"unknown model {text!r} (model ids are 32-byte hex)") from err


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _batch_json(served: ServedRequest) -> bytes:
    """The answer to a batched request, as JSON bytes (``BatchInferResponse``), built without
    pydantic from the node's own values (known types): every tree node is written as hex once,
    and the fields shared by all receipts once. Outputs are finite (``quantize_outputs``
    refuses NaN and infinity); msgspec writes each vector (the shortest text that reads back
    as the same double, 0.5 µs for 18 floats against 7 µs through ``repr``)."""
    levels = [[f'"0x{node.hex()}"' for node in level] for level in served.tree.levels]
    count = len(served.job_ids)
    # every leaf's sibling at each height, one height at a time (no per-job loop over heights)
    columns = []
    for h in range(served.tree.depth):
        level, padding = levels[h], f'"0x{ZERO_HASHES[h].hex()}"'
        width = len(level)
        columns.append(
            [level[s] if s < width else padding for s in ((i >> h) ^ 1 for i in range(count))]
        )
    paths = [",".join(path) for path in zip(*columns, strict=True)] if columns else [""] * count
    shared = (
        f',"node":{json.dumps(served.node)},"signature":"0x{served.signature.hex()}",'
        f'"chainId":{served.chain_id},"jobManager":{json.dumps(served.job_manager)}'
    )
    model = f'"0x{served.model_id.hex()}"'
    encode = msgspec.json.encode
    outputs = [encode(row).decode() for row in served.outputs.tolist()]
    outputs_q = [encode(row).decode() for row in served.outputs_q.tolist()]
    hashes = zip(served.job_ids, served.input_hashes, served.output_hashes, strict=True)
    parts = [
        f'{{"output":{outputs[i]},"output_q":{outputs_q[i]},'
        f'"receipt":{{"jobId":{job_id},"modelId":{model},'
        f'"inputHash":"0x{ih.hex()}","outputHash":"0x{oh.hex()}","leaf":{levels[0][i]}{shared},'
        f'"subIndex":{i},"subProof":[{paths[i]}]}}}}'
        for i, (job_id, ih, oh) in enumerate(hashes)
    ]
    return ('{"results":[' + ",".join(parts) + "]}").encode()


def _leaf(job: ServedJob) -> dict[str, Any]:
    """The fields of ``job``'s :class:`spotcheck.wire.BatchLeaf`. The node's own values:
    models holding them are built with ``model_construct`` (validating a listing's vectors
    would double the time to serve it; their types are the store's, int64 and bytes)."""
    return {
        "jobId": job.job_id,
        "index": job.leaf_index,
        "inputQ": job.input_q.tolist(),
        "outputQ": job.output_q.tolist(),
        "inputHash": job.input_hash,
        "outputHash": job.output_hash,
        "leaf": job.leaf,
        "signature": job.signature,
    }


def _pruned(batch_id: int) -> str:
    return f"batch {batch_id} is final and its vectors were pruned after this node's retention"


def _json(content: Any) -> bytes:
    """JSON as FastAPI's ``JSONResponse`` renders it (the listing's bytes stay the same)."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


_LEAVES = TypeAdapter(list[BatchLeaf])


class ListingTooSlowError(TimeoutError):
    """A listing's reader took longer than the node keeps a read snapshot open."""


def listing_bytes(
    header: BatchListing,
    snapshot: BatchSnapshot,
    chunk: int = 256,
    *,
    max_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """``header`` (a listing without leaves) with the snapshot's leaves, as the JSON that
    ``BatchListing`` renders to, ``chunk`` leaves per piece; closes the snapshot.

    An open snapshot keeps SQLite from recycling its write-ahead log: past ``max_s`` seconds
    (a reader that drains slowly on purpose) the stream is cut with ListingTooSlowError, so
    the response ends without its last chunk and the reader sees a broken transfer, never a
    short listing."""
    deadline = None if max_s is None else clock() + max_s
    try:
        head = _json(header.model_dump(mode="json"))
        empty = b'"leaves":[]'
        at = head.rindex(empty) + len(empty) - 1
        yield head[:at]
        jobs = snapshot.leaves(chunk)
        first = True
        while part := list(itertools.islice(jobs, chunk)):
            if deadline is not None and clock() > deadline:
                raise ListingTooSlowError(f"listing not read within {max_s:g} s: cut")
            leaves = [BatchLeaf.model_construct(**_leaf(job)) for job in part]
            body = _json(_LEAVES.dump_python(leaves, mode="json"))[1:-1]  # without [ ]
            yield body if first else b"," + body
            first = False
        yield head[at:]
    finally:
        snapshot.close()


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Spotcheck inference node",
        version="1",
        description="Verifiable ONNX inference: outputs with receipts committed in Merkle batches.",
    )
    metrics = ctx.metrics

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError) -> JSONResponse:
        if isinstance(err, UnknownModelError):
            metrics.rejected.labels("unknown_model").inc()
            return JSONResponse({"detail": str(err)}, status_code=404)
        metrics.rejected.labels("bad_input").inc()
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.post(
        "/v1/models/{model_id}/infer",
        response_model=InferResponse | BatchInferResponse,
        openapi_extra=_INFER_BODY_SCHEMA,
    )
    async def infer(model_id: str, request: Request) -> InferResponse | Response:
        """Run the model, persist the job(s), and return the output(s) with signed receipts."""
        admit(request)
        raw = await request.body()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in NPY_TYPES:
            return await run_in_threadpool(serve_npy, model_id, raw)
        return await run_in_threadpool(serve_one, model_id, raw)

    def admit(request: Request) -> None:
        """The API key and its rate limit (401, 429 with Retry-After), before the body."""
        decision = ctx.access.check(request.headers)
        if decision.allowed:
            return
        if decision.status == 429:
            metrics.rejected.labels("rate_limited").inc()
            retry = str(decision.retry_after_s or 1)
            raise HTTPException(429, decision.reason, headers={"Retry-After": retry})
        metrics.rejected.labels("unauthorized").inc()
        raise HTTPException(decision.status, decision.reason)

    def bad_input(detail: str) -> HTTPException:
        metrics.rejected.labels("bad_input").inc()
        return HTTPException(422, detail)

    def model_for(model_id: str) -> bytes:
        mid = _parse_model_id(model_id)
        halted = ctx.auditor.halted_reason_for(mid)
        if halted is not None:
            metrics.rejected.labels("model_halted").inc()
            raise HTTPException(503, f"model 0x{mid.hex()} halted: {halted}")
        ctx.server.engine.runtime(mid)  # UnknownModelError: 404
        return mid

    def check_count(n: int) -> None:
        if n > ctx.max_request_jobs:
            metrics.rejected.labels("too_large").inc()
            raise HTTPException(
                413, f"request has {n} inputs; at most {ctx.max_request_jobs} per request"
            )

    def serve_npy(model_id: str, raw: bytes) -> Response:
        mid = model_for(model_id)
        try:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as err:  # not a .npy file: numpy raises several types
            raise bad_input(f"body is not a .npy array: {_first_line(err)}") from err
        if not isinstance(arr, np.ndarray) or arr.ndim < 1 or arr.shape[0] < 1:
            raise bad_input("a .npy batch has shape (n, *input_shape) with n >= 1")
        check_count(int(arr.shape[0]))
        rows = arr.reshape(arr.shape[0], -1)
        runtime = ctx.server.engine.runtime(mid)
        if arr.dtype.kind in "iu":
            inputs_q = runtime.check_inputs_q(rows)
        elif arr.dtype.kind == "f":
            inputs_q = runtime.quantize_inputs(rows)
        else:
            raise bad_input(f".npy dtype {arr.dtype} is neither integer nor float")
        return serve_many(mid, inputs_q)

    def rows_of(values: list[list[Any]], what: str) -> np.ndarray:
        """A JSON batch as a matrix: every row of the model's length (the first that is not
        is named), then one conversion."""
        if not values:
            raise bad_input(f"{what}: a batch holds at least one input")
        check_count(len(values))
        length = len(values[0])
        for i, row in enumerate(values):
            if len(row) != length:
                raise bad_input(f"row {i}: input has {len(row)} elements; row 0 has {length}")
        dtype = np.int64 if what == "inputs_q" else np.float64
        try:
            return np.asarray(values, dtype=dtype)
        except OverflowError as err:  # an integer beyond int64 / float range: name its row
            for i, row in enumerate(values):
                try:
                    np.asarray(row, dtype=dtype)
                except OverflowError:
                    raise bad_input(f"row {i}: an input value is out of range") from err
            raise bad_input(f"{what}: a value is out of range") from err

    def serve_many(mid: bytes, inputs_q: np.ndarray) -> Response:
        n = int(inputs_q.shape[0])
        refused = ctx.refuse_work(mid, n)
        if refused is not None:
            metrics.rejected.labels("not_accepting").inc()
            raise HTTPException(503, f"not accepting work: {refused}")
        try:
            served = ctx.server.serve_many(mid, inputs_q)
        except InputError:
            ctx.release_work(mid, n)  # refused by the engine before anything was stored
            raise
        except BaseException:
            ctx.work_stored(mid, n)  # it may be stored: counted until the next read decides
            raise
        ctx.work_stored(mid, n)
        metrics.jobs_served.labels("batch").inc(n)
        return Response(_batch_json(served), media_type="application/json")

    def serve_one(model_id: str, raw: bytes) -> InferResponse | Response:
        try:
            body = InferRequest.model_validate_json(raw)
        except ValidationError as err:
            metrics.rejected.labels("bad_input").inc()
            raise HTTPException(422, _one_line(err)) from err
        mid = model_for(model_id)
        runtime = ctx.server.engine.runtime(mid)
        if body.inputs_q is not None:
            return serve_many(mid, runtime.check_inputs_q(rows_of(body.inputs_q, "inputs_q")))
        if body.inputs is not None:
            return serve_many(mid, runtime.quantize_inputs(rows_of(body.inputs, "inputs")))
        # Validated before admission: a malformed request (422) reserves no free stake.
        if body.input_q is not None:
            input_q = runtime.check_input_q(body.input_q)
        else:
            assert body.input is not None
            input_q = runtime.quantize_input(body.input)
        refused = ctx.refuse_work(mid)
        if refused is not None:
            metrics.rejected.labels("not_accepting").inc()
            raise HTTPException(503, f"not accepting work: {refused}")
        try:
            served = ctx.server.serve(mid, input_q)
        except InputError:
            ctx.release_work(mid)  # refused by the engine before anything was stored
            raise
        except BaseException:
            ctx.work_stored(mid)  # it may be stored: counted until the next read decides
            raise
        ctx.work_stored(mid)
        metrics.jobs_served.labels("batch").inc()
        return InferResponse(
            output=served.result.output.tolist(),
            output_q=served.result.output_q.tolist(),
            receipt=served.receipt.to_model(),
        )

    def find_batch(batch_id: int) -> Batch | None:
        if ctx.resolve_batch is None:
            return ctx.store.batch_by_chain_id(batch_id)
        try:
            return ctx.resolve_batch(batch_id, listing=True)
        except Exception as err:  # the chain is unreachable: serve what the store says
            log.warning(
                "batch: cannot check against the chain: %s", err, extra={"batch_id": batch_id}
            )
            return ctx.store.batch_by_chain_id(batch_id)

    @app.get("/v1/batches/{batch_id}", response_model=BatchListing)
    def batch(batch_id: int) -> Response:
        """A committed batch and all its leaves (streamed from a read snapshot: neither the
        serving lock nor memory grows with the batch; 410 once its vectors were pruned)."""
        b = find_batch(batch_id)
        if b is None:
            raise HTTPException(404, f"batch {batch_id} was not committed by this node")
        snapshot = ctx.store.batch_snapshot(b.local_id)
        if snapshot.pruned or not snapshot.exists:
            snapshot.close()
            raise HTTPException(410, _pruned(batch_id))
        header = BatchListing.model_construct(
            batchId=batch_id,
            modelId=b.model_id,
            root=b.root,
            count=b.count,
            final=b.status == BatchState.FINAL,
            node=ctx.server.signer.address,
            leaves=[],
        )
        body = listing_bytes(header, snapshot, max_s=ctx.listing_max_s)
        return StreamingResponse(body, media_type="application/json")

    @app.get("/v1/batches/{batch_id}/jobs/{job_id}", response_model=BatchLeafProof)
    def batch_job(batch_id: int, job_id: int) -> BatchLeafProof:
        """One leaf of a committed batch with its Merkle proof (OpenZeppelin, sorted pairs)."""
        b = find_batch(batch_id)
        if b is not None and b.pruned:
            raise HTTPException(410, _pruned(batch_id))
        job = ctx.store.served_job(job_id)
        if b is None or job is None or job.batch_local_id != b.local_id:
            raise HTTPException(404, f"job {job_id} is not in batch {batch_id}")
        proof = ctx.store.leaf_proof(b.local_id, job.leaf_index or 0)
        return BatchLeafProof.model_construct(
            batchId=batch_id, root=b.root, proof=list(proof or ()), **_leaf(job)
        )

    @app.get("/v1/jobs/{job_id}", response_model=JobAnswer)
    def job_status(job_id: int) -> JobStatus:
        """Where a served job is: pending, sealed, or committed in a batch (with its proof)."""
        job = ctx.store.served_job(job_id)
        if job is None:
            if ctx.store.served_pruned(job_id):
                raise HTTPException(410, f"job {job_id} is final and its vectors were pruned")
            raise HTTPException(404, f"job {job_id} unknown")
        if job.batch_local_id is None:
            return JobStatus(jobId=job_id, status="pending", batchId=None)
        b = ctx.store.batch(job.batch_local_id)
        assert b is not None
        if b.batch_id is None:
            return JobStatus(jobId=job_id, status=str(b.status), batchId=None)
        proof = ctx.store.leaf_proof(b.local_id, job.leaf_index or 0)
        return CommittedJob.model_construct(
            status=str(b.status),
            batchId=b.batch_id,
            root=b.root,
            proof=list(proof or ()),
            **_leaf(job),
        )

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        why = ctx.not_ready()
        if why is not None:
            return JSONResponse({"ready": False, "reason": why}, 503)
        halted = {"0x" + m.hex(): why for m, why in ctx.auditor.halted_models().items()}
        served = ctx.server.engine.model_ids
        if served and len(halted) >= len(served):
            reason = f"every model halted: {ctx.auditor.halted_reason}"
            return JSONResponse({"ready": False, "reason": reason, "halted": halted}, 503)
        if halted:  # serving the others; the body says which model stopped and why
            return JSONResponse({"ready": True, "halted": halted})
        return JSONResponse({"ready": True})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app.add_middleware(
        BodyLimit,  # type: ignore[arg-type]
        limit=ctx.max_body_bytes,
        on_reject=lambda: metrics.rejected.labels("too_large").inc(),
    )
    return app
