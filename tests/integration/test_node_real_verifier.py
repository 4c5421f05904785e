"""A disputed honest node proves with real ezkl and defends against the generated Halo2Verifier.

The tiny 4-8-2 MLP is registered with its real verifier (artifacts from tests/fixtures/zk.py,
dev SRS: tests only). The node serves the job with onnxruntime, the challenger disputes it,
and the node's own service loop proves the job (``EzklProofBackend``) and defends on-chain.

- one dispute, defended;
- ten disputes opened in one block against one honest node: each gets its own queued proof
  window, the defence worker proves them one after another in proof-deadline order while the
  chain loop keeps committing, and all ten are defended (time per proof and in total printed);
- exact mode (tau = 0): the node answers and commits the circuit's own output, over HTTP and
  on-chain, and defends both with real proofs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prover.config import ModelConfig
from prover.defence import EzklProofBackend
from prover.inference import ModelSpec
from prover.store import DisputeState
from spotcheck.chain import DisputeStatus, JobStatus
from spotcheck.encoding import hash_vector, onchain_job_key
from tests.fixtures.chain import NODE_STAKE
from tests.integration.test_node_service import Node, _dispute

pytestmark = pytest.mark.chain


def _register(artifacts: Any, spotcheck: Any, deployer: Any, tau: int) -> bytes:
    from verifier import registry

    params = registry.model_params(artifacts, tau, challenge_window=100, proof_window=600)
    return bytes(registry.register_model(artifacts, params, spotcheck.contracts, deployer).model_id)


@pytest.fixture(scope="module")
def real_model(tiny_mlp_artifacts: Any, spotcheck: Any, deployer: Any) -> Any:
    artifacts = tiny_mlp_artifacts
    # float vs circuit differences at this scale are a few units; be generous but finite
    tau = max(64, 2 ** max(artifacts.output_scale - 8, 0))
    return artifacts, _register(artifacts, spotcheck, deployer, tau), tau


def _node(
    tmp_path: Path, spotcheck: Any, node: Any, onnx: Path, artifacts: Any, model_id: bytes, tau: int
) -> Node:
    m = spotcheck.model_registry.getModel(model_id)
    spec = ModelSpec(
        model_id, onnx, artifacts.input_scale, artifacts.output_scale, tau, int(m.inLo), int(m.inHi)
    )
    cfg = ModelConfig(
        onnx_path=onnx,
        input_scale=artifacts.input_scale,
        output_scale=artifacts.output_scale,
        tau=tau,
    )
    return Node(
        tmp_path / "node.sqlite",
        spotcheck,
        node,
        onnx,
        spec=spec,
        backend=EzklProofBackend({model_id: cfg}),
        exact=tau == 0,
    )


def _inputs(spotcheck: Any, model_id: bytes, count: int, seed: int) -> list[list[int]]:
    """``count`` random inputs over the model's registered domain."""
    m = spotcheck.model_registry.getModel(model_id)
    rng = np.random.default_rng(seed)
    return [
        [int(v) for v in rng.integers(int(m.inLo), int(m.inHi) + 1, int(m.inputLen))]
        for _ in range(count)
    ]


def _request_job(spotcheck: Any, model_id: bytes, input_q: list[int], node: Any, req: Any) -> int:
    jm = spotcheck.job_manager
    receipt = jm.requestJob(model_id, input_q, node, 10**18, sender=req)
    [ev] = receipt.decode_logs(jm.JobRequested)
    return int(ev.event_arguments["jobId"])


def test_disputedHonestNode_provesWithEzkl_defendsOnchain_andKeepsStake(
    real_model: Any,
    tiny_mlp_onnx: Path,
    spotcheck: Any,
    node: Any,
    requester: Any,
    challenger: Any,
    tmp_path: Path,
) -> None:
    artifacts, model_id, tau = real_model
    n = _node(tmp_path, spotcheck, node, tiny_mlp_onnx, artifacts, model_id, tau)
    try:
        [input_q] = _inputs(spotcheck, model_id, 1, seed=3)
        job_id = _request_job(spotcheck, model_id, input_q, node, requester)
        n.service.step()
        assert n.chain.job(job_id).status == JobStatus.COMMITTED
        _dispute(spotcheck, job_id, challenger)

        n.service.step()  # proves (seconds) and defends

        did = onchain_job_key(job_id)
        assert n.chain.dispute(did).status == DisputeStatus.DEFENDED
        assert n.store.dispute(did).status == DisputeState.DEFENDED  # type: ignore[union-attr]
        assert n.chain.job(job_id).status == JobStatus.FINAL
        assert n.chain.stake().amount == NODE_STAKE
        assert "spotcheck_node_proving_seconds_count 1.0" in n.metrics.render().decode()
    finally:
        n.close()


def test_proving_runsOutsideTheNodeProcess_soItsThreadsKeepRunning(
    real_model: Any, tiny_mlp_onnx: Path, spotcheck: Any, node: Any, tmp_path: Path
) -> None:
    """ezkl holds the GIL for a whole proof: in a thread it stalled the rest of the process for
    the proof's duration (25 s measured). The backend proves in a process of its own."""
    artifacts, model_id, tau = real_model
    n = _node(tmp_path, spotcheck, node, tiny_mlp_onnx, artifacts, model_id, tau)
    try:
        [input_q] = _inputs(spotcheck, model_id, 1, seed=7)
        n.backend.prove(model_id, input_q)  # warm: the prover process loads its artifacts
        done = threading.Event()
        took: list[float] = []

        def prove() -> None:
            t = time.perf_counter()
            n.backend.prove(model_id, input_q)
            took.append(time.perf_counter() - t)
            done.set()

        threading.Thread(target=prove).start()
        gaps, last = [], time.perf_counter()
        while not done.is_set():
            time.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        print(f"\nproof {took[0]:.1f} s; longest stall of this process meanwhile {max(gaps):.3f} s")
        assert max(gaps) < 1.0
    finally:
        n.close()


def _open_disputes_in_one_block(spotcheck: Any, job_ids: list[int], challenger: Any) -> int:
    """Send one ``openDispute`` per job with automine off, then mine them in one block."""
    from ape import chain

    web3 = chain.provider.web3
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    base = challenger.nonce
    hashes = []
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        for i, job_id in enumerate(job_ids):
            out_hash = bytes(jm.getJob(job_id).outputHash)
            txn = dm.openDispute.as_transaction(
                job_id, out_hash, sender=challenger, nonce=base + i, gas_limit=1_500_000
            )
            signed = challenger.sign_transaction(txn)
            hashes.append(web3.eth.send_raw_transaction(signed.serialize_transaction()))
        chain.provider.make_request("evm_mine", [])
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    receipts = [web3.eth.get_transaction_receipt(h) for h in hashes]
    assert [r["status"] for r in receipts] == [1] * len(job_ids)
    blocks = {int(r["blockNumber"]) for r in receipts}
    assert len(blocks) == 1, blocks
    return blocks.pop()


def test_tenDisputesInOneBlock_areAllDefended_byTheDefenceWorker_whileCommitsGoOn(
    real_model: Any,
    tiny_mlp_onnx: Path,
    spotcheck: Any,
    node: Any,
    requester: Any,
    challenger: Any,
    tmp_path: Path,
) -> None:
    artifacts, model_id, tau = real_model
    n = _node(tmp_path, spotcheck, node, tiny_mlp_onnx, artifacts, model_id, tau)
    k = 10
    try:
        job_ids = [
            _request_job(spotcheck, model_id, x, node, requester)
            for x in _inputs(spotcheck, model_id, k, seed=10)
        ]
        n.service.step()
        assert all(n.chain.job(j).status == JobStatus.COMMITTED for j in job_ids)
        _open_disputes_in_one_block(spotcheck, job_ids, challenger)
        deadlines = [n.chain.dispute(onchain_job_key(j)).proof_deadline for j in job_ids]
        assert len(set(deadlines)) == k  # the per-node proof queue: one window each

        start = time.monotonic()
        runner = threading.Thread(target=n.service.run, kwargs={"poll_interval_s": 0.2})
        runner.start()
        try:
            # a new request is committed while the worker is still proving
            [late_input] = _inputs(spotcheck, model_id, 1, seed=99)
            late = _request_job(spotcheck, model_id, late_input, node, requester)
            committed_while_proving = False
            defended: set[int] = set()
            while len(defended) < k and time.monotonic() - start < 60 * k:
                if n.chain.job(late).status == JobStatus.COMMITTED and len(defended) < k - 1:
                    committed_while_proving = True
                defended = {
                    j
                    for j in job_ids
                    if n.chain.dispute(onchain_job_key(j)).status == DisputeStatus.DEFENDED
                }
                time.sleep(0.5)
            total = time.monotonic() - start
        finally:
            n.service.stop()
            runner.join(120)

        assert defended == set(job_ids)
        assert committed_while_proving
        sample = n.metrics.registry.get_sample_value
        proofs = sample("spotcheck_node_proving_seconds_count")
        proving = sample("spotcheck_node_proving_seconds_sum")
        assert proofs == k and proving is not None
        print(
            f"\n{k} disputes in one block: all defended in {total:.1f} s; "
            f"{proving / k:.1f} s per proof ({proving:.1f} s proving in total)"
        )
        assert n.chain.stake().amount == NODE_STAKE
    finally:
        n.close()


def test_exactMode_tauZero_commitsTheCircuitsOwnOutput_andDefendsIt(
    tiny_mlp_artifacts: Any,
    tiny_mlp_onnx: Path,
    spotcheck: Any,
    node: Any,
    requester: Any,
    challenger: Any,
    deployer: Any,
    tmp_path: Path,
) -> None:
    artifacts = tiny_mlp_artifacts
    model_id = _register(artifacts, spotcheck, deployer, tau=0)
    n = _node(tmp_path, spotcheck, node, tiny_mlp_onnx, artifacts, model_id, 0)
    try:
        [http_input, chain_input] = _inputs(spotcheck, model_id, 2, seed=5)
        witness = n.backend.witness_output(model_id, http_input)
        onnx_out = n.engine.run(model_id, http_input).output_q.tolist()
        answer = n.http.post(f"/v1/models/0x{model_id.hex()}/infer", json={"input_q": http_input})
        assert answer.status_code == 200, answer.text
        assert answer.json()["output_q"] == witness  # the circuit's, not onnxruntime's
        print(f"\nexact mode: onnxruntime {onnx_out}, circuit {witness}")

        job_id = _request_job(spotcheck, model_id, chain_input, node, requester)
        n.service.step()
        expected = n.backend.witness_output(model_id, chain_input)
        assert n.chain.job(job_id).output_hash == hash_vector(expected)

        _dispute(spotcheck, job_id, challenger)
        n.service.step()  # a real proof with tau 0: the instances equal the committed output
        assert n.chain.dispute(onchain_job_key(job_id)).status == DisputeStatus.DEFENDED
        assert n.chain.stake().amount == NODE_STAKE
    finally:
        n.close()
