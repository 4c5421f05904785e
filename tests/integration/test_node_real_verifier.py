"""A disputed honest node proves with real ezkl and defends against the generated Halo2Verifier.

The tiny 4-8-2 MLP is registered with its real verifier (artifacts from tests/fixtures/zk.py,
dev SRS: tests only). The node serves the job with onnxruntime, the challenger disputes it,
and the node's own service loop proves the job (``EzklProofBackend``) and defends on-chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prover.config import ModelConfig
from prover.defence import EzklProofBackend
from prover.inference import ModelSpec
from prover.store import DisputeState
from spotcheck.chain import DisputeStatus, JobStatus
from spotcheck.encoding import onchain_job_key, quantize
from tests.fixtures.chain import NODE_STAKE
from tests.integration.test_node_service import Node

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def real_model(tiny_mlp_artifacts: Any, tiny_mlp_onnx: Path, spotcheck: Any, deployer: Any) -> Any:
    from verifier import registry

    artifacts = tiny_mlp_artifacts
    # float vs circuit differences at this scale are a few units; be generous but finite
    tau = max(64, 2 ** max(artifacts.output_scale - 8, 0))
    params = registry.model_params(artifacts, tau, challenge_window=100, proof_window=600)
    reg = registry.register_model(artifacts, params, spotcheck.contracts, deployer)
    return artifacts, bytes(reg.model_id), tau


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
    spec = ModelSpec(model_id, tiny_mlp_onnx, artifacts.input_scale, artifacts.output_scale, tau)
    cfg = ModelConfig(
        onnx_path=tiny_mlp_onnx,
        input_scale=artifacts.input_scale,
        output_scale=artifacts.output_scale,
        tau=tau,
    )
    n = Node(
        tmp_path / "node.sqlite",
        spotcheck,
        node,
        tiny_mlp_onnx,
        spec=spec,
        backend=EzklProofBackend({model_id: cfg}),
    )
    try:
        x = np.random.default_rng(3).uniform(-1, 1, artifacts.input_len)
        input_q = quantize(x, artifacts.input_scale)
        jm = spotcheck.job_manager
        receipt = jm.requestJob(model_id, input_q, node, 10**18, sender=requester)
        [ev] = receipt.decode_logs(jm.JobRequested)
        job_id = int(ev.event_arguments["jobId"])
        n.service.step()
        assert n.chain.job(job_id).status == JobStatus.COMMITTED
        spotcheck.dispute_manager.openDispute(job_id, sender=challenger)

        n.service.step()  # proves (seconds) and defends

        did = onchain_job_key(job_id)
        assert n.chain.dispute(did).status == DisputeStatus.DEFENDED
        assert n.store.dispute(did).status == DisputeState.DEFENDED  # type: ignore[union-attr]
        assert n.chain.job(job_id).status == JobStatus.FINAL
        assert n.chain.stake().amount == NODE_STAKE
        assert "spotcheck_node_proving_seconds_count 1.0" in n.metrics.render().decode()
    finally:
        n.close()
