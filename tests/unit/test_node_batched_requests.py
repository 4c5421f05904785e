"""Batched ``/infer`` requests (issue 14): many inputs of one model in one request, as JSON or
``.npy``; one signature per request and a receipt per job that checks on its own; one-line
errors naming the bad row; the work gate admits a whole request or answers 503."""

from __future__ import annotations

import copy
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from prover.access import AccessControl, KeyLimit
from prover.api import ApiContext, BatchInferResponse, create_app
from prover.batching import BatchCutter, JobServer
from prover.defence import SelfAuditor
from prover.inference import InferenceEngine, ModelRuntime, ModelSpec
from prover.metrics import NodeMetrics
from prover.receipts import KeySigner, Receipt, ReceiptDomain, verify_receipt
from prover.store import Store
from prover.work_gate import WorkGate
from spotcheck.chain import TOKEN
from spotcheck.encoding import hash_vector, leaf_hash
from spotcheck.errors import InputError
from spotcheck.kit.serve import HttpThread
from spotcheck.merkle import verify as merkle_verify
from tests.fixtures import models
from tests.unit.test_prover_work_gate import _view
from verifier.client_cli import serve_in_batches
from verifier.datafiles import load_inputs_q
from verifier.node_client import NodeClient, NodeRefusedError, ReceiptError, check_answers
from verifier.onnx_runner import OnnxRunner

MODEL = bytes.fromhex("5c" * 32)
DOMAIN = ReceiptDomain(31337, "0x" + "11" * 20)
URL = f"/v1/models/0x{MODEL.hex()}/infer"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    spec = ModelSpec(MODEL, models.build("tiny_mlp", tmp_path), 7, 13, 64, in_lo=-512, in_hi=512)
    runtime = ModelRuntime.load(spec)
    store = Store(tmp_path / "node.sqlite")
    server = JobServer(
        InferenceEngine({MODEL: runtime}), store, KeySigner("0x" + "42" * 32, DOMAIN)
    )
    # free stake 100 tokens, 10 per job: 10 jobs fit, an 11th does not
    gate = WorkGate(lambda: _view(1100, locked=1000, minimum=1), {MODEL: 10 * TOKEN})
    gate.refresh()
    ctx = ApiContext(
        server,
        store,
        NodeMetrics(),
        SelfAuditor(None, 0.0, {MODEL: 64}),  # type: ignore[arg-type]
        max_body_bytes=64 * 1024,
        refuse_work=gate.admit,
        work_stored=gate.stored,
        release_work=gate.release,
        max_request_jobs=8,
    )
    yield {"http": TestClient(create_app(ctx)), "server": server, "store": store, "gate": gate}
    server.close()
    runtime.close()
    store.close()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


INPUTS_Q = [[i, -i, 3 * i, 100 - i] for i in range(5)]


def test_jsonBatch_eachJobHasItsOwnCheckableReceipt_andIsStored(node: dict[str, Any]) -> None:
    answer = node["http"].post(URL, json={"inputs_q": INPUTS_Q})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 5
    BatchInferResponse.model_validate_json(answer.content)  # the documented schema
    signer = node["server"].signer
    signatures = {r["receipt"]["signature"] for r in results}
    assert len(signatures) == 1  # one signature per request
    for i, res in enumerate(results):
        receipt = Receipt.from_json(res["receipt"])
        assert receipt.sub_index == i and len(receipt.sub_proof) == 3
        # the dApp rebuilds the leaf from its own input and the output it got
        assert receipt.input_hash == hash_vector(INPUTS_Q[i])
        assert receipt.output_hash == hash_vector(res["output_q"])
        assert verify_receipt(receipt, signer.address, DOMAIN)
        job = node["store"].served_job(receipt.job_id)
        assert job is not None and job.input_q.tolist() == INPUTS_Q[i]
        assert job.output_q.tolist() == res["output_q"] and job.leaf == receipt.leaf
    # the same outputs as five single requests
    single = node["http"].post(URL, json={"input_q": INPUTS_Q[3]}).json()
    assert single["output_q"] == results[3]["output_q"]
    assert "subProof" not in single["receipt"]
    assert verify_receipt(Receipt.from_json(single["receipt"]), signer.address, DOMAIN)


def test_batchedJobs_areSealedIntoTheNodesBatch_atTheirLeaves(node: dict[str, Any]) -> None:
    results = node["http"].post(URL, json={"inputs_q": INPUTS_Q[:3]}).json()["results"]
    (batch,) = BatchCutter(node["store"], 256, 1e9).cut(force=True)
    for res in results:
        receipt = Receipt.from_json(res["receipt"])
        job = node["store"].served_job(receipt.job_id)
        leaf = leaf_hash(receipt.job_id, MODEL, hash_vector(INPUTS_Q[job.leaf_index]),
                         hash_vector(res["output_q"]))  # fmt: skip
        proof = node["store"].leaf_proof(batch.local_id, job.leaf_index)
        assert merkle_verify(proof, batch.root, leaf, job.leaf_index, batch.count)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_npyIntegerBatch_equalsTheJsonBatch(node: dict[str, Any], dtype: Any) -> None:
    body = _npy(np.asarray(INPUTS_Q, dtype=dtype).reshape(5, 1, 4))  # (n, *input_shape)
    answer = node["http"].post(URL, content=body, headers={"content-type": "application/x-npy"})
    assert answer.status_code == 200, answer.text
    by_json = node["http"].post(URL, json={"inputs_q": INPUTS_Q}).json()["results"]
    assert [r["output_q"] for r in answer.json()["results"]] == [r["output_q"] for r in by_json]


def test_npyFloatBatch_isQuantizedByTheNode(node: dict[str, Any]) -> None:
    floats = np.asarray(INPUTS_Q, dtype=np.float32) / 128
    answer = node["http"].post(
        URL, content=_npy(floats), headers={"content-type": "application/x-npy"}
    )
    assert answer.status_code == 200, answer.text
    receipts = [Receipt.from_json(r["receipt"]) for r in answer.json()["results"]]
    assert [r.input_hash for r in receipts] == [hash_vector(x) for x in INPUTS_Q]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"inputs_q": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3]]}, 422, "row 2: input has 3"),
        ({"inputs_q": [[1, 2, 3, 4], [1, 2, 3, 600]]}, 422, "row 1: input element 3 = 600"),
        ({"inputs_q": [[1, 2, 3, 4], [2**60, 0, 0, 0]]}, 422, "row 1: input element 0"),
        ({"inputs_q": [[1, 2, 3, 4], [1, 2, 3, 2**70]]}, 422, "row 1: an input value is out"),
        ({"inputs_q": [[1, 2, 3]] * 2}, 422, "inputs have 3 elements each; model expects 4"),
        ({"inputs": [[0.1, 0.2, 0.3, 0.4], [0.1, 1e300, 0.3, 0.4]]}, 422, "row 1: input element 1"),
        ({"inputs_q": []}, 422, "at least one input"),
        ({"inputs_q": [[1, 2, 3, 4]] * 9}, 413, "request has 9 inputs; at most 8"),
        ({"inputs_q": [[1, 2, 3, 4]], "input_q": [1, 2, 3, 4]}, 422, "exactly one of"),
    ],
)
def test_badBatch_isOneLine4xx_namingTheRow_andNothingIsStored(
    node: dict[str, Any], body: dict[str, Any], status: int, detail: str
) -> None:
    answer = node["http"].post(URL, json=body)
    assert answer.status_code == status, answer.text
    assert detail in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    assert node["store"].pending_counts() == {}
    assert node["gate"]._in_flight.get(MODEL, 0) == 0  # nothing reserved


@pytest.mark.parametrize(
    ("array", "detail"),
    [
        (np.asarray([[0.1, 0.2, 0.3, 0.4], [0.1, np.nan, 0.3, 0.4]]), "row 1: input element 1"),
        (np.zeros((2, 5), dtype=np.int64), "inputs have 5 elements each"),
        (np.asarray(["a", "b"]), "neither integer nor float"),
        (np.zeros((9, 4), dtype=np.int64), "at most 8"),
    ],
)
def test_badNpy_isOneLine4xx(node: dict[str, Any], array: np.ndarray, detail: str) -> None:
    answer = node["http"].post(
        URL, content=_npy(array), headers={"content-type": "application/x-npy"}
    )
    assert 400 <= answer.status_code < 500 and detail in answer.json()["detail"], answer.text
    garbage = node["http"].post(URL, content=b"xx", headers={"content-type": "application/x-npy"})
    assert garbage.status_code == 422 and "not a .npy array" in garbage.json()["detail"]


def test_npyOverTheBodyLimit_is413(node: dict[str, Any]) -> None:
    body = _npy(np.zeros((4000, 4), dtype=np.int64))  # 128 KB > 64 KB
    answer = node["http"].post(URL, content=body, headers={"content-type": "application/x-npy"})
    assert answer.status_code == 413


def test_workGate_admitsAWholeRequestAgainstTheFreeStake_orAnswers503(
    node: dict[str, Any],
) -> None:
    http, gate = node["http"], node["gate"]
    assert http.post(URL, json={"inputs_q": [[1, 2, 3, 4]] * 8}).status_code == 200
    assert gate._in_flight[MODEL] == 0 and gate._stored[MODEL] == 8
    refused = http.post(URL, json={"inputs_q": [[1, 2, 3, 4]] * 3})  # 80 + 30 > 100 free
    assert refused.status_code == 503
    assert "3 jobs of this request" in refused.json()["detail"]
    assert node["store"].pending_counts()[MODEL][0] == 8  # nothing of it stored
    assert http.post(URL, json={"inputs_q": [[1, 2, 3, 4]] * 2}).status_code == 200
    assert http.post(URL, json={"input_q": [1, 2, 3, 4]}).status_code == 503  # all 100 backed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dappClient_sendsABatch_overHttp_andChecksEveryReceipt(node: dict[str, Any]) -> None:
    http = HttpThread(node["http"].app, "127.0.0.1", _free_port()).start(wait_s=15)
    try:
        signer = node["server"].signer
        client = NodeClient(http.url, signer.address, DOMAIN)
        served = client.infer(MODEL, INPUTS_Q)
        assert [s.input_q for s in served] == INPUTS_Q
        assert [s.receipt.sub_index for s in served] == list(range(5))
        stranger = NodeClient(http.url, "0x" + "99" * 20, DOMAIN)
        with pytest.raises(ReceiptError, match="result 0: the receipt is not signed by"):
            stranger.infer(MODEL, INPUTS_Q[:1])
        elsewhere = NodeClient(http.url, signer.address, ReceiptDomain(1, DOMAIN.job_manager))
        with pytest.raises(ReceiptError, match="for this deployment"):
            elsewhere.infer(MODEL, INPUTS_Q[:2])
        with pytest.raises(NodeRefusedError, match="422: row 1: input element 3 = 600"):
            client.infer(MODEL, [[1, 2, 3, 4], [1, 2, 3, 600]])
    finally:
        http.stop()


def test_dappCheck_refusesAnswersWithSwappedPathsOrOutputs(node: dict[str, Any]) -> None:
    signer = node["server"].signer
    answer = node["http"].post(URL, json={"inputs_q": INPUTS_Q}).json()
    rows = np.asarray(INPUTS_Q)
    assert len(check_answers(answer, MODEL, rows, signer.address, DOMAIN)) == 5
    other = node["http"].post(URL, json={"inputs_q": INPUTS_Q[::-1]}).json()

    swapped = copy.deepcopy(answer)
    swapped["results"][1]["receipt"]["subProof"] = other["results"][1]["receipt"]["subProof"]
    with pytest.raises(ReceiptError, match="result 1: the receipt is not signed"):
        check_answers(swapped, MODEL, rows, signer.address, DOMAIN)
    moved = copy.deepcopy(answer)
    moved["results"][2]["receipt"]["subIndex"] = 3
    with pytest.raises(ReceiptError, match="result 2: the receipt is not signed"):
        check_answers(moved, MODEL, rows, signer.address, DOMAIN)
    crossed = copy.deepcopy(answer)
    crossed["results"][0], crossed["results"][4] = crossed["results"][4], crossed["results"][0]
    with pytest.raises(ReceiptError, match="result 0: the receipt names another input"):
        check_answers(crossed, MODEL, rows, signer.address, DOMAIN)
    lied = copy.deepcopy(answer)
    lied["results"][3]["output_q"][0] += 1
    with pytest.raises(ReceiptError, match="result 3: the receipt names another output"):
        check_answers(lied, MODEL, rows, signer.address, DOMAIN)


def test_jobInferCli_loadsBatchFiles_andServesThemInRequestsOfBatch(
    node: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"inputs_q": INPUTS_Q[:3]}))
    (tmp_path / "b.json").write_text(json.dumps({"input": [0.5, 0.25, 0, -1]}))
    np.save(tmp_path / "c.npy", np.asarray(INPUTS_Q[3:], dtype=np.int64))
    files = [tmp_path / n for n in ("a.json", "b.json", "c.npy")]
    inputs = [row for f in files for row in load_inputs_q(f, 7)]
    assert inputs == [*INPUTS_Q[:3], [64, 32, 0, -128], *INPUTS_Q[3:]]
    http = HttpThread(node["http"].app, "127.0.0.1", _free_port()).start(wait_s=15)
    try:
        client = NodeClient(http.url, node["server"].signer.address, DOMAIN)
        answers = serve_in_batches(client, MODEL, inputs, batch=4)
    finally:
        http.stop()
    assert [a["input_q"] for a in answers] == inputs
    # two requests (4 + 2): positions restart in the second, signatures differ
    assert [a["receipt"].get("subIndex", 0) for a in answers] == [0, 1, 2, 3, 0, 1]
    assert answers[0]["receipt"]["signature"] != answers[4]["receipt"]["signature"]
    with pytest.raises(InputError, match="inputs_q must be a list of lists"):
        (tmp_path / "bad.json").write_text(json.dumps({"inputs_q": [[1, True]]}))
        load_inputs_q(tmp_path / "bad.json", 7)


def test_bulkInsert_isOneTransaction_aFailedSignatureStoresNothing(node: dict[str, Any]) -> None:
    store: Store = node["store"]
    q = np.asarray(INPUTS_Q, dtype=np.int64)
    hashes = [hash_vector(row) for row in INPUTS_Q]

    def fails(job_ids: list[int]) -> tuple[list[bytes], bytes]:
        raise PermissionError("the node account refused to sign")

    with pytest.raises(PermissionError):
        store.record_served_many(MODEL, q, q[:, :2], hashes, hashes, fails)
    assert store.pending_counts() == {}
    ids, _ = store.record_served_many(
        MODEL, q, q[:, :2], hashes, hashes, lambda ids: ([bytes(32)] * len(ids), b"\x01" * 65)
    )
    assert store.pending_counts()[MODEL][0] == 5 and ids == list(range(ids[0], ids[0] + 5))


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=30),
    free=st.integers(0, 60),
)
def test_property_gateNeverAdmitsMoreThanTheFreeStakeBacks(
    steps: list[tuple[int, bool]], free: int
) -> None:
    """Whole requests of any size, each stored or released: the slash of every job admitted
    and not released never exceeds the free stake; a refused request reserves nothing."""
    gate = WorkGate(lambda: _view(1000 + free, locked=1000, minimum=1), {MODEL: TOKEN})
    gate.refresh()
    backed = 0
    for n, keep in steps:
        if gate.admit(MODEL, n) is None:
            assert backed + n <= free
            if keep:
                gate.stored(MODEL, n)
                backed += n
            else:
                gate.release(MODEL, n)
        else:
            assert backed + n > free
        assert gate._in_flight.get(MODEL, 0) == 0


def _symbolic_batch_mlp(path: Path) -> Path:
    """``tiny_mlp`` with a symbolic first dimension (``N``): a batch runs as one call."""
    model = onnx.load(models.build("tiny_mlp", path.parent))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, path)
    return path


def test_runRows_symbolicBatch_runsEachRowAlone_equalToRowByRow(tmp_path: Path) -> None:
    """A request's rows never run as one session call: the challenger and the circuit compute
    each job alone (symbolic dimensions fixed to 1), so each row's output must not depend on
    the other rows of its request."""
    batched = OnnxRunner(_symbolic_batch_mlp(tmp_path / "n.onnx"))
    static = OnnxRunner(models.build("tiny_mlp", tmp_path))
    rows = np.random.default_rng(5).uniform(-1, 1, size=(7, 4))
    calls: list[Any] = []
    session = batched._session
    batched._session = SimpleNamespace(run=lambda *a: calls.append(a) or session.run(*a))
    out = batched.run_rows(rows)
    assert len(calls) == 7 and out.shape == (7, 2)
    expected = np.stack([static.run(row) for row in rows])
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(static.run_rows(rows), expected)


def test_attack_requesterPairsAJobWithARowThatMovesIt_eachRowStillComputedAlone(
    tmp_path: Path,
) -> None:
    """Final audit, High: the first dimension is symbolic, but the model mixes rows (Softmax
    over axis 0). Run as one call, a requester's second row moved the first row's output; the
    honest node committed it, no proof of the job alone could match, and a dispute slashed it."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=0)],
        "mix",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    path = tmp_path / "mix.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    runner = OnnxRunner(path)
    rows = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    alone = np.stack([runner.run(row) for row in rows])
    np.testing.assert_array_equal(runner.run_rows(rows), alone)


def test_apiKeys_gateBatchedRequests_asSingleOnes(node: dict[str, Any]) -> None:
    """With API keys configured, a batched request (JSON or .npy) needs a key like a single
    one: 401 before its body is read, and nothing stored."""
    ctx = ApiContext(
        node["server"],
        node["store"],
        NodeMetrics(),
        SelfAuditor(None, 0.0, {MODEL: 64}),  # type: ignore[arg-type]
        access=AccessControl({"k-secret": KeyLimit(rate=100, burst=100)}),
    )
    http = TestClient(create_app(ctx))
    npy = {"content-type": "application/x-npy"}
    body = _npy(np.asarray(INPUTS_Q, dtype=np.int64))
    assert http.post(URL, json={"inputs_q": INPUTS_Q}).status_code == 401
    assert http.post(URL, content=body, headers=npy).status_code == 401
    assert node["store"].pending_counts() == {}
    keyed = http.post(URL, content=body, headers={**npy, "X-API-Key": "k-secret"})
    assert keyed.status_code == 200 and len(keyed.json()["results"]) == 5
