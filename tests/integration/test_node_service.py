"""The inference node on anvil: on-chain and batched jobs, crash recovery, disputes, bad input.

Uses the shared chain fixtures (``MOCK_MODEL``: 4 inputs, 2 outputs, scales 7/7, tau 2, windows
100 s, registered with a MockVerifier) served by the tiny 4-8-2 MLP. The proof backend here
returns the instances a real proof of an honest output carries (input field elements, then the
circuit output), so the contract's instance and tolerance checks run for real; the verifier
itself is the mock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from prover.api import ApiContext, create_app
from prover.batching import BatchCutter, JobServer
from prover.chain_io import NodeChain
from prover.defence import ProofCancelledError, SelfAuditor
from prover.inference import FaultInjector, InferenceEngine, ModelRuntime, ModelSpec
from prover.metrics import NodeMetrics
from prover.receipts import ApeSigner, Receipt, ReceiptDomain, check_receipt_onchain
from prover.service import NodeService
from prover.store import BatchState, DisputeState, JobState, Store
from prover.transactions import FeePolicy, TxSender
from spotcheck.chain import DisputeStatus, JobStatus
from spotcheck.encoding import hash_vector, onchain_job_key, to_field
from tests.fixtures import models
from tests.fixtures.chain import MOCK_MODEL, NODE_STAKE, advance, defence_instances
from verifier.prove import ProofBundle

pytestmark = pytest.mark.chain

FEE = 5 * 10**18


class SimulatedCrashError(BaseException):
    """Raised by the crash hook: a BaseException, so nothing in the node swallows it."""


class OwnRunBackend:
    """Instances of an honest proof: input felts, then the model's output for that input."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self.proved: list[list[int]] = []

    def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
        return [int(v) for v in self.engine.run(model_id, list(input_q)).honest_output_q]

    def prove(self, model_id: bytes, input_q: Sequence[int]) -> ProofBundle:
        self.proved.append(list(input_q))
        out = self.witness_output(model_id, input_q)
        return ProofBundle(b"mock-proof", [to_field(v) for v in [*input_q, *out]], out)


class Node:
    """A node assembled the way ``spotcheck node run`` assembles it, on a given database."""

    def __init__(
        self,
        db: Path,
        sc: Any,
        account: Any,
        onnx: Path,
        *,
        batch_size: int = 4,
        fault_rate: float = 0.0,
        crash_hook: Callable[[str], None] | None = None,
        spec: ModelSpec | None = None,
        prices: dict[bytes, int] | None = None,
        exact: bool = False,
        backend: Any = None,
        policy: FeePolicy | None = None,
        extra_specs: Sequence[ModelSpec] = (),
    ) -> None:
        spec = spec or ModelSpec(
            sc.model_id,
            onnx,
            MOCK_MODEL.input_scale,
            MOCK_MODEL.output_scale,
            MOCK_MODEL.tau,
            MOCK_MODEL.in_lo,
            MOCK_MODEL.in_hi,
        )
        self.store = Store(db)
        specs = [spec, *extra_specs]
        self.engine = InferenceEngine(
            {s.model_id: ModelRuntime.load(s) for s in specs}, FaultInjector(fault_rate, seed=1)
        )
        self.backend = backend or OwnRunBackend(self.engine)
        self.metrics = NodeMetrics()
        self.auditor = SelfAuditor(self.backend, 0.0, {s.model_id: s.tau for s in specs})
        sender = TxSender(
            account,
            self.store,
            policy or FeePolicy(stuck_after_s=5, timeout_s=30),
            crash_hook=crash_hook or (lambda point: None),
        )
        self.chain = NodeChain(sc.contracts, account, sender=sender)
        self.server = JobServer(
            self.engine,
            self.store,
            ApeSigner(account, ReceiptDomain.of(sc.job_manager)),
            exact=self.backend.witness_output if exact else None,
        )
        kwargs: dict[str, Any] = {} if crash_hook is None else {"crash_hook": crash_hook}
        self.service = NodeService(
            self.chain,
            self.store,
            self.engine,
            BatchCutter(self.store, batch_size, interval_s=3600),
            backend=self.backend,
            auditor=self.auditor,
            metrics=self.metrics,
            start_block=sc.deployment.deploy_block,
            prices=prices,
            **kwargs,
        )
        ctx = ApiContext(
            self.server,
            self.store,
            self.metrics,
            self.auditor,
            max_body_bytes=4096,
            resolve_batch=self.service.resolve_batch,
        )
        self.http = TestClient(create_app(ctx))

    def close(self) -> None:
        close_backend = getattr(self.backend, "close", None)
        if close_backend is not None:
            close_backend()  # the prover process of an EzklProofBackend
        self.engine.close()
        self.store.close()


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_mlp", tmp_path_factory.mktemp("node-model"))


@pytest.fixture()
def make_node(
    tmp_path: Path, spotcheck: Any, node: Any, onnx_path: Path
) -> Iterator[Callable[..., Node]]:
    made: list[Node] = []

    def _make(**kwargs: Any) -> Node:
        n = Node(tmp_path / "node.sqlite", spotcheck, node, onnx_path, **kwargs)
        made.append(n)
        return n

    yield _make
    for n in made:
        n.close()


def _request(sc: Any, requester: Any, node: Any, input_q: list[int]) -> int:
    receipt = sc.job_manager.requestJob(sc.model_id, input_q, node, FEE, sender=requester)
    [ev] = receipt.decode_logs(sc.job_manager.JobRequested)
    return int(ev.event_arguments["jobId"])


def _dispute(sc: Any, job_id: int, challenger: Any) -> bytes:
    """``openDispute(jobId, outputHash)`` with the job's committed output hash."""
    output_hash = bytes(sc.job_manager.getJob(job_id).outputHash)
    sc.dispute_manager.openDispute(job_id, output_hash, sender=challenger)
    return onchain_job_key(job_id)


def _events(contract_event: Any, **topics: Any) -> list[Any]:
    from ape import chain

    return list(contract_event.range(0, chain.blocks.height + 1, search_topics=topics or None))


def serve_one_batch(n: Node, spotcheck: Any, model_id: bytes, count: int) -> Any:
    """Serve ``count`` jobs of ``model_id`` (inputs ``[i, 1, 2, 3]``) through ``n``'s HTTP API
    and commit them in one step (``batch_size=count``); the ``BatchCommitted`` arguments."""
    url = f"/v1/models/0x{model_id.hex()}/infer"
    for i in range(count):
        assert n.http.post(url, json={"input_q": [i, 1, 2, 3]}).status_code == 200
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    return ev.event_arguments


def _infer(n: Node, sc: Any, x: list[float]) -> dict[str, Any]:
    resp = n.http.post(f"/v1/models/0x{sc.model_id.hex()}/infer", json={"input": x})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


# -- on-chain jobs ------------------------------------------------------------------------


def test_onchainJob_isCommittedThenFinalized_andFeeCredited(
    make_node: Callable[..., Node], spotcheck: Any, requester: Any, node: Any, chain: Any
) -> None:
    n = make_node()
    input_q = [64, -32, 128, 0]
    job_id = _request(spotcheck, requester, node, input_q)

    n.service.step()

    view = n.chain.job(job_id)
    expected = n.engine.run(spotcheck.model_id, input_q).output_q.tolist()
    assert view.status == JobStatus.COMMITTED
    assert view.output_hash == hash_vector(expected)
    assert n.store.onchain_job(job_id).status == JobState.COMMITTED  # type: ignore[union-attr]

    n.service.step()  # inside the challenge window: nothing to finalize
    assert n.chain.job(job_id).status == JobStatus.COMMITTED
    advance(chain, MOCK_MODEL.challenge_window + 1)
    n.service.step()

    assert n.chain.job(job_id).status == JobStatus.FINAL
    assert n.chain.credits()[0] == FEE
    assert n.store.onchain_job(job_id).status == JobState.FINAL  # type: ignore[union-attr]


def test_onchainJob_finalizedByTheDappFirst_isMarkedFinal_withoutAFailureLine(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    node: Any,
    chain: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anyone may finalize. The race: the node reads COMMITTED, the dApp's finalize is mined,
    the node's finalize reverts BadJobStatus (a real revert from anvil, decoded by name)."""
    import dataclasses
    import logging

    n = make_node()
    job_id = _request(spotcheck, requester, node, [64, -32, 128, 0])
    n.service.step()
    assert n.chain.job(job_id).status == JobStatus.COMMITTED
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=requester)  # the dApp is first

    real_job = n.chain.job
    stale = {"left": 1}

    def job(jid: int) -> Any:  # the node's read from just before the dApp's finalize
        view = real_job(jid)
        if jid == job_id and stale["left"]:
            stale["left"] -= 1
            return dataclasses.replace(view, status=JobStatus.COMMITTED)
        return view

    monkeypatch.setattr(n.chain, "job", job)
    with caplog.at_level(logging.DEBUG, logger="prover.service"):
        assert n.service.finalize_due() == 0
    assert stale["left"] == 0  # the stale read happened: the node did send its finalize
    said = [r.getMessage() for r in caplog.records if r.name == "prover.service"]
    assert "finalized by someone else first" in said
    assert not [m for m in said if "finalize failed" in m], said
    assert n.store.onchain_job(job_id).status == JobState.FINAL  # type: ignore[union-attr]
    assert n.chain.credits()[0] == FEE  # the fee is the node's, whoever finalized


# -- batched jobs -------------------------------------------------------------------------


def test_batchedJobs_areServedCommittedAndProvable_andReceiptsCheckOnChain(
    make_node: Callable[..., Node], spotcheck: Any, chain: Any
) -> None:
    n = make_node(batch_size=4)
    answers = [_infer(n, spotcheck, [0.1 * i, -0.2, 0.3, 0.5 * i]) for i in range(4)]

    n.service.step()

    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    contents = n.http.get(f"/v1/batches/{batch_id}").json()
    assert [leaf["jobId"] for leaf in contents["leaves"]] == [
        a["receipt"]["jobId"] for a in answers
    ]
    assert contents["root"] == "0x" + bytes(ev.event_arguments["root"]).hex()
    inputs = [
        n.engine.runtime(spotcheck.model_id).quantize_input([0.1 * i, -0.2, 0.3, 0.5 * i]).tolist()
        for i in range(4)
    ]

    def check(answer: dict[str, Any], input_q: list[int], output_q: list[int]) -> Any:
        receipt = Receipt.from_json(answer["receipt"])
        leaf = n.http.get(f"/v1/batches/{batch_id}/jobs/{receipt.job_id}").json()
        return check_receipt_onchain(
            receipt,
            node=n.chain.address,
            model_id=spotcheck.model_id,
            input_q=input_q,
            output_q=output_q,
            batch_id=batch_id,
            index=leaf["index"],
            proof=leaf["proof"],
            job_manager=spotcheck.job_manager,
        )

    for i, answer in enumerate(answers):
        receipt = Receipt.from_json(answer["receipt"])
        assert receipt.output_hash == hash_vector(answer["output_q"])
        result = check(answer, inputs[i], answer["output_q"])
        assert result.in_batch and result.signed_by_node and not result.leaf_final
    # an output changed after signing fails the checks
    bad = check(answers[0], inputs[0], [v + 1 for v in answers[0]["output_q"]])
    assert not bad.signed_by_node and not bad.in_batch

    advance(chain, MOCK_MODEL.challenge_window + 1)
    n.service.step()
    assert n.store.batch_by_chain_id(batch_id).status == BatchState.FINAL  # type: ignore[union-attr]
    assert spotcheck.job_manager.isBatchLeafFinal(batch_id, 0)
    assert check(answers[0], inputs[0], answers[0]["output_q"]).ok


def test_batchedRequest_oneSignature_committedAndEachReceiptChecksOnChain_onItsOwn(
    make_node: Callable[..., Node], spotcheck: Any, chain: Any
) -> None:
    """Issue 14: a request of three inputs and a single request fill a batch of four; each
    job's receipt (sub-root path, one signature per request) passes the dApp's on-chain check,
    and a receipt with another request's path does not."""
    n = make_node(batch_size=4)
    runtime = n.engine.runtime(spotcheck.model_id)
    floats = [[0.1 * i, -0.2, 0.3, 0.5 * i] for i in range(4)]
    inputs = [runtime.quantize_input(x).tolist() for x in floats]
    url = f"/v1/models/0x{spotcheck.model_id.hex()}/infer"
    batched = n.http.post(url, json={"inputs_q": inputs[:3]})
    assert batched.status_code == 200, batched.text
    answers = [*batched.json()["results"], _infer(n, spotcheck, floats[3])]
    assert len({a["receipt"]["signature"] for a in answers[:3]}) == 1

    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])

    def check(receipt: Receipt, i: int) -> Any:
        leaf = n.http.get(f"/v1/batches/{batch_id}/jobs/{receipt.job_id}").json()
        return check_receipt_onchain(
            receipt,
            node=n.chain.address,
            model_id=spotcheck.model_id,
            input_q=inputs[i],
            output_q=answers[i]["output_q"],
            batch_id=batch_id,
            index=leaf["index"],
            proof=leaf["proof"],
            job_manager=spotcheck.job_manager,
        )

    advance(chain, MOCK_MODEL.challenge_window + 1)
    n.service.step()
    receipts = [Receipt.from_json(a["receipt"]) for a in answers]
    for i, receipt in enumerate(receipts):
        assert check(receipt, i).ok, check(receipt, i).failures
    assert receipts[3].sub_proof == ()  # a single request's receipt: as before
    foreign = replace(receipts[1], sub_proof=receipts[0].sub_proof[:1] + receipts[2].sub_proof[1:])
    assert not check(foreign, 1).signed_by_node
    assert not check(replace(receipts[1], sub_index=0), 1).ok


# -- crash recovery -----------------------------------------------------------------------

CRASH_POINTS = [
    "job:after-intent",
    "tx:before-broadcast",
    "tx:after-broadcast",
    "job:after-send",
    "batch:after-intent",
    "batch:after-send",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_nodeKilledAtPoint_andRestarted_commitsEverythingExactlyOnce(
    point: str,
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    node: Any,
) -> None:
    def crash(at: str) -> None:
        if at == point:
            raise SimulatedCrashError(at)

    first = make_node(batch_size=2, crash_hook=crash)
    job_ids = [_request(spotcheck, requester, node, [i, i + 1, -i, 3]) for i in range(2)]
    served = [_infer(first, spotcheck, [0.25 * i, 0.5, -0.5, 1.0]) for i in range(4)]

    with pytest.raises(SimulatedCrashError):
        for _ in range(6):
            first.service.step()
    first.close()  # the process dies: nothing in memory survives

    second = make_node(batch_size=2)
    for _ in range(3):
        second.service.step()

    for job_id in job_ids:
        assert len(_events(spotcheck.job_manager.ResultCommitted, jobId=job_id)) == 1
        assert second.chain.job(job_id).status == JobStatus.COMMITTED
        assert second.store.onchain_job(job_id).status == JobState.COMMITTED  # type: ignore[union-attr]
    assert second.store.batches(BatchState.SEALED, BatchState.COMMITTING) == []
    batches = _events(spotcheck.job_manager.BatchCommitted, node=second.chain.address)
    roots = [bytes(e.event_arguments["root"]) for e in batches]
    assert len(roots) == len(set(roots)) == 2
    committed_jobs = {
        leaf["jobId"]
        for e in batches
        for leaf in second.http.get(f"/v1/batches/{e.event_arguments['batchId']}").json()["leaves"]
    }
    assert committed_jobs == {s["receipt"]["jobId"] for s in served}


# -- disputes -----------------------------------------------------------------------------


def test_disputedHonestNode_defendsOnchainJob_andKeepsStake(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
) -> None:
    n = make_node()
    job_id = _request(spotcheck, requester, node, [10, 20, -30, 40])
    n.service.step()
    _dispute(spotcheck, job_id, challenger)
    did = onchain_job_key(job_id)

    n.service.step()

    assert n.chain.dispute(did).status == DisputeStatus.DEFENDED
    assert n.store.dispute(did).status == DisputeState.DEFENDED  # type: ignore[union-attr]
    assert n.backend.proved == [[10, 20, -30, 40]]
    assert n.chain.stake().amount == NODE_STAKE
    assert n.chain.credits()[1] == MOCK_MODEL.challenger_bond
    assert n.chain.job(job_id).status == JobStatus.FINAL  # proven
    n.service.step()  # nothing left to do, nothing sent twice
    assert len(_events(spotcheck.dispute_manager.DisputeDefended)) == 1


class BlockingProofBackend(OwnRunBackend):
    """A proof that runs until cancelled (the ezkl backend kills its prover process)."""

    def __init__(self, engine: InferenceEngine) -> None:
        super().__init__(engine)
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def prove(self, model_id: bytes, input_q: Sequence[int]) -> ProofBundle:
        self.started.set()
        if not self.cancelled.wait(60):
            raise AssertionError("the proof was never cancelled")
        raise ProofCancelledError("cancelled")

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


def test_disputeDefendedBySomeoneElse_whileTheNodeProves_stopsTheProof_andSendsNothing(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    outsider: Any,
    node: Any,
) -> None:
    n = make_node()
    backend = BlockingProofBackend(n.engine)
    n.service.backend = backend
    input_q = [10, 20, -30, 40]
    job_id = _request(spotcheck, requester, node, input_q)
    n.service.step()
    _dispute(spotcheck, job_id, challenger)
    did = onchain_job_key(job_id)
    n.service.worker.start()
    try:
        n.service.step()  # queued: the worker proves (until cancelled)
        assert backend.started.wait(30)
        job = n.store.onchain_job(job_id)
        assert job is not None and job.output_q is not None
        honest = backend.witness_output(spotcheck.model_id, input_q)
        spotcheck.dispute_manager.defend(
            did,
            b"anyone's proof",
            defence_instances(input_q, honest),
            list(job.output_q),
            sender=outsider,
        )
        n.service.step()  # sees the dispute defended: the proof is stopped
        assert backend.cancelled.is_set()
        deadline = time.monotonic() + 10
        while n.service.worker.busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert n.service.worker.busy() == 0  # free for the next dispute
    finally:
        n.service.stop()
    assert n.store.dispute(did).status == DisputeState.DEFENDED  # type: ignore[union-attr]
    assert n.store.txs_for(f"defend:0x{did.hex()}") == []  # the node sent nothing
    assert len(_events(spotcheck.dispute_manager.DisputeDefended)) == 1  # the outsider's
    assert (
        n.metrics.registry.get_sample_value("spotcheck_node_proofs_total", {"result": "cancelled"})
        == 1
    )


def test_disputedHonestNode_defendsBatchLeaf_andKeepsStake(
    make_node: Callable[..., Node], spotcheck: Any, challenger: Any
) -> None:
    n = make_node(batch_size=2)
    answers = [_infer(n, spotcheck, [0.5, -0.5, 0.25 * i, 1.0]) for i in range(2)]
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    job_id = answers[1]["receipt"]["jobId"]
    leaf = n.http.get(f"/v1/batches/{batch_id}/jobs/{job_id}").json()
    spotcheck.dispute_manager.openBatchDispute(
        batch_id,
        leaf["index"],
        job_id,
        leaf["inputHash"],
        leaf["outputHash"],
        leaf["proof"],
        sender=challenger,
    )

    n.service.step()

    [defended] = _events(spotcheck.dispute_manager.DisputeDefended)
    assert n.chain.dispute(bytes(defended.event_arguments["disputeId"])).status == (
        DisputeStatus.DEFENDED
    )
    assert n.chain.stake().amount == NODE_STAKE
    assert spotcheck.job_manager.isBatchLeafFinal(batch_id, leaf["index"])


def test_dishonestNode_cannotDefend_skipsProving_alertsOnce_andIsSlashed(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
    chain: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    n = make_node(fault_rate=1.0)  # DISHONEST MODE: every output corrupted beyond tau
    job_id = _request(spotcheck, requester, node, [1, 2, 3, 4])
    n.service.step()
    _dispute(spotcheck, job_id, challenger)
    did = onchain_job_key(job_id)

    with caplog.at_level("CRITICAL", logger="prover.service"):
        n.service.step()  # the witness is outside tau of the corrupted commitment: give up
        n.service.step()  # ... once: no second alert, no proving
    alerts = [r for r in caplog.records if "cannot defend" in r.getMessage()]
    assert len(alerts) == 1 and alerts[0].levelname == "CRITICAL"
    assert n.store.dispute(did).status == DisputeState.UNDEFENDABLE  # type: ignore[union-attr]
    assert n.backend.proved == []
    sample = n.metrics.registry.get_sample_value
    assert (sample("spotcheck_node_proofs_total", {"result": "ok"}) or 0) == 0
    assert (sample("spotcheck_node_proofs_total", {"result": "failed"}) or 0) == 0
    assert sample("spotcheck_node_proving_seconds_count") == 0
    assert sample("spotcheck_node_disputes_total", {"event": "undefendable"}) == 1
    assert n.chain.dispute(did).status == DisputeStatus.OPEN  # no defence was even sent

    advance(chain, MOCK_MODEL.proof_window + 1)
    spotcheck.dispute_manager.settle(did, sender=challenger)
    n.service.step()

    assert n.store.dispute(did).status == DisputeState.LOST  # type: ignore[union-attr]
    assert n.chain.stake().amount == NODE_STAKE - MOCK_MODEL.slash_amount
    assert sample("spotcheck_node_disputes_total", {"event": "lost"}) == 1


def test_honestNode_witnessPreCheckPasses_andItProves(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
) -> None:
    """The pre-check does not stop an honest defence (the mirror of the dishonest test)."""
    n = make_node()
    job_id = _request(spotcheck, requester, node, [4, 3, 2, 1])
    n.service.step()
    _dispute(spotcheck, job_id, challenger)
    n.service.step()
    assert len(n.backend.proved) == 1
    sample = n.metrics.registry.get_sample_value
    assert sample("spotcheck_node_proofs_total", {"result": "ok"}) == 1
    assert n.chain.dispute(onchain_job_key(job_id)).status == DisputeStatus.DEFENDED


# -- bad input ----------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, int]] = [
    ("too short", {"input": [1.0, 2.0, 3.0]}, 422),
    ("too long", {"input": [1.0] * 5}, 422),
    ("nan", '{"input": [1.0, NaN, 0.0, 0.0]}', 422),
    ("infinity", '{"input": [1.0, Infinity, 0.0, 0.0]}', 422),
    ("string", {"input": ["1", 2.0, 3.0, 4.0]}, 422),
    ("float in input_q", {"input_q": [1.5, 2, 3, 4]}, 422),
    ("huge input_q", {"input_q": [2**60, 2, 3, 4]}, 422),
    ("both inputs", {"input": [1.0] * 4, "input_q": [1] * 4}, 422),
    ("neither input", {}, 422),
    ("not json", "{input: [", 422),
    ("oversized", {"input": [0.123456789] * 1000}, 413),
]


def test_badInputs_get4xx_andLeaveNoTraceOnChain(
    make_node: Callable[..., Node], spotcheck: Any
) -> None:
    n = make_node(batch_size=1)
    url = f"/v1/models/0x{spotcheck.model_id.hex()}/infer"
    for name, body, status in BAD_BODIES:
        if isinstance(body, str):
            resp = n.http.post(url, content=body, headers={"content-type": "application/json"})
        else:
            resp = n.http.post(url, json=body)
        assert resp.status_code == status, (name, resp.text)
        assert resp.json()["detail"], name
        print(f"{name}: {resp.json()['detail']}")
    # The endpoint parses its own body: the schema is still in the OpenAPI document.
    infer_doc = n.http.get("/openapi.json").json()["paths"]["/v1/models/{model_id}/infer"]
    body_schema = infer_doc["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body_schema["properties"]) == {"input", "input_q", "inputs", "inputs_q"}
    unknown = n.http.post(f"/v1/models/0x{'ab' * 32}/infer", json={"input": [1.0] * 4})
    assert unknown.status_code == 404 and "not served" in unknown.json()["detail"]
    assert n.http.post("/v1/models/nothex/infer", json={"input": [1.0] * 4}).status_code == 404

    n.service.step()

    assert n.store.counts()["served_jobs"]["pending"] == 0
    assert n.store.batches(BatchState.SEALED, BatchState.COMMITTING, BatchState.COMMITTED) == []
    assert _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address) == []


def test_health_ready_metrics_andOpenapi(make_node: Callable[..., Node], spotcheck: Any) -> None:
    n = make_node()
    _infer(n, spotcheck, [0.0, 0.0, 0.0, 0.0])
    n.service.step()
    assert n.http.get("/health").json() == {"status": "ok"}
    assert n.http.get("/ready").status_code == 200
    text = n.http.get("/metrics").text
    assert 'spotcheck_node_jobs_served_total{kind="batch"} 1.0' in text
    assert f"spotcheck_node_stake {float(NODE_STAKE)}" in text
    assert "/v1/models/{model_id}/infer" in n.http.get("/openapi.json").json()["paths"]


def test_onchainJob_withModelOutputCorrupted_stillCommitsOnce_inDishonestMode(
    make_node: Callable[..., Node], spotcheck: Any, requester: Any, node: Any
) -> None:
    n = make_node(fault_rate=1.0)
    input_q = [5, 6, 7, 8]
    job_id = _request(spotcheck, requester, node, input_q)
    n.service.step()
    honest = n.engine.run(spotcheck.model_id, input_q).honest_output_q.tolist()
    committed = n.store.onchain_job(job_id).output_q  # type: ignore[union-attr]
    assert committed is not None and np.max(np.abs(np.array(committed) - honest)) > MOCK_MODEL.tau
    assert n.chain.job(job_id).output_hash == hash_vector(list(committed))
