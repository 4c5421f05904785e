"""The node's start-up checks and its work gate on anvil (issue 13), each with the bad
configuration that was tried:

- another ONNX file served under a registered model id (a 30-element model under a 4-input id
  was served with ``/ready`` true): refused at start, one line;
- a model id the registry does not know: refused at once (not waited for as an RPC outage);
- zero stake, and a node that asked to unbond: refused at start;
- a node that unbonds while running: it stops taking work (503 with the reason), holds its
  sealed batch and drops on-chain jobs instead of retrying a reverting ``commitBatch`` (it was
  retried 23 times in 30 s with an undecoded ``0x51805901...``); the revert, when one is met,
  is decoded by name and logged once;
- ``node stake 5`` below the minimum, and an account without ETH: refused before sending.

The node is assembled as in tests/integration/test_node_service.py (its ``Node``), with the
gate :func:`prover.runner.build_node` adds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from fastapi.testclient import TestClient

import prover.cli
from prover.api import ApiContext, create_app
from prover.chain_io import NodeChain
from prover.inference import ModelSpec
from prover.runner import registered, uncommitted_jobs
from prover.startup import check_models, check_stake
from prover.store import BatchState, JobState
from prover.work_gate import WorkGate
from spotcheck.chain import TOKEN, DisputeStatus
from spotcheck.encoding import onchain_job_key
from spotcheck.errors import ChainError, ConfigError, RevertError, StartupError
from tests.fixtures import models
from tests.fixtures.chain import MOCK_MODEL
from tests.integration.test_node_service import FEE, Node, _dispute, _request

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_mlp", tmp_path_factory.mktemp("startup-model"))


@pytest.fixture(scope="module")
def other_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_conv", tmp_path_factory.mktemp("startup-other"))


@pytest.fixture()
def own_model(project: Any, deployer: Any, model_registry: Any, onnx_path: Path) -> bytes:
    """MOCK_MODEL registered with the tiny MLP's real ONNX hash (its own MockVerifier)."""
    verifier = deployer.deploy(project.MockVerifier)
    struct = MOCK_MODEL.as_struct(
        str(verifier.address), keccak(onnx_path.read_bytes()), keccak(b"startup-settings")
    )
    model_registry.registerModel(struct, sender=deployer)
    return bytes(
        model_registry.computeModelId(struct["onnxHash"], struct["settingsHash"], verifier.address)
    )


def _spec(model_id: bytes, path: Path) -> ModelSpec:
    return ModelSpec(
        model_id, path, MOCK_MODEL.input_scale, MOCK_MODEL.output_scale, MOCK_MODEL.tau
    )


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# -- start-up ----------------------------------------------------------------------------------


def test_startup_anotherOnnxUnderTheRegisteredId_isRefused(
    spotcheck: Any, node: Any, own_model: bytes, other_onnx: Path
) -> None:
    chain = NodeChain(spotcheck.contracts, node)
    with pytest.raises(StartupError) as err:
        check_models(chain, {own_model: _spec(own_model, other_onnx)})
    assert "is not the registered ONNX file" in _one_line(err)


def test_startup_theRegisteredOnnx_passes(
    spotcheck: Any, node: Any, own_model: bytes, onnx_path: Path
) -> None:
    chain = NodeChain(spotcheck.contracts, node)
    [m] = registered(chain, [_spec(own_model, onnx_path)])
    assert m.onnx_hash == keccak(onnx_path.read_bytes())
    assert m.slash_amount == MOCK_MODEL.slash_amount


def test_startup_unknownModelId_isRefusedAtOnce_notWaitedFor(
    spotcheck: Any, node: Any, onnx_path: Path
) -> None:
    chain = NodeChain(spotcheck.contracts, node)
    unknown = bytes.fromhex("ab" * 32)
    started = time.monotonic()
    with pytest.raises(StartupError) as err:
        registered(chain, [_spec(unknown, onnx_path)])  # patiently: retries RPC outages only
    assert time.monotonic() - started < 10
    text = _one_line(err)
    assert f"model 0x{unknown.hex()} is not registered (UnknownModel(" in text


def test_startup_zeroStake_isRefused(spotcheck: Any, outsider: Any) -> None:
    with pytest.raises(StartupError) as err:
        check_stake(NodeChain(spotcheck.contracts, outsider), {})
    assert "stakes 0 tokens, below the minimum 1000" in _one_line(err)


def test_startup_afterUnbond_isRefused(spotcheck: Any, node2: Any) -> None:
    spotcheck.stake_manager.requestUnbond(sender=node2)
    with pytest.raises(StartupError) as err:
        check_stake(NodeChain(spotcheck.contracts, node2), {})
    assert f"node {node2.address} is unbonding" in _one_line(err)


def test_startup_unbondingWithAnOpenDispute_windsDown_andStillDefends(
    tmp_path: Path,
    spotcheck: Any,
    node: Any,
    requester: Any,
    challenger: Any,
    onnx_path: Path,
) -> None:
    """Audit 4, A4-7: refusing to start here would leave the dispute undefended (a slash)."""
    n = Node(tmp_path / "node.sqlite", spotcheck, node, onnx_path)
    try:
        gate, http = _gated(n, spotcheck)
        job_id = _request(spotcheck, requester, node, [10, 20, -30, 40])
        n.service.step()  # committed
        spotcheck.stake_manager.requestUnbond(sender=node)
        _dispute(spotcheck, job_id, challenger)

        check_stake(n.chain, {})  # a restart now: the node starts, winding down
        gate.refresh()
        assert _infer(http, spotcheck, [0.1, 0.2, 0.3, 0.4]).status_code == 503  # no new work
        n.service.step()
        assert n.chain.dispute(onchain_job_key(job_id)).status == DisputeStatus.DEFENDED
    finally:
        n.close()


# -- while running ------------------------------------------------------------------------------


def _gated(n: Node, sc: Any) -> tuple[WorkGate, TestClient]:
    """The gate and API ``prover.runner.build_node`` wires up, on a test Node."""
    gate = WorkGate(
        n.chain.stake,
        {sc.model_id: MOCK_MODEL.slash_amount},
        lambda: uncommitted_jobs(n.store),
        node=n.chain.address,
    )
    n.service.work_gate = gate
    ctx = ApiContext(
        n.server,
        n.store,
        n.metrics,
        n.auditor,
        not_ready=gate.refuse_all,
        refuse_work=gate.admit,  # as prover/runner.py wires it
        work_stored=gate.stored,
        release_work=gate.release,
    )
    return gate, TestClient(create_app(ctx))


def _infer(http: TestClient, sc: Any, x: list[float]) -> Any:
    return http.post(f"/v1/models/0x{sc.model_id.hex()}/infer", json={"input": x})


def test_running_nodeUnbonds_stopsTakingWork_holdsItsBatch_andSendsNothing(
    tmp_path: Path,
    spotcheck: Any,
    node: Any,
    requester: Any,
    onnx_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    n = Node(tmp_path / "node.sqlite", spotcheck, node, onnx_path, batch_size=2)
    try:
        gate, http = _gated(n, spotcheck)
        assert _infer(http, spotcheck, [0.1, 0.2, 0.3, 0.4]).status_code == 200
        n.service.step()
        assert gate.refuse(spotcheck.model_id) is None

        spotcheck.stake_manager.requestUnbond(sender=node)
        jm = spotcheck.job_manager
        receipt = jm.requestJob(spotcheck.model_id, [1, 2, 3, 4], node, FEE, sender=requester)
        [ev] = receipt.decode_logs(jm.JobRequested)
        job_id = int(ev.event_arguments["jobId"])
        assert _infer(http, spotcheck, [0.5, 0.6, 0.7, 0.8]).status_code == 200  # before a step
        nonce = node.nonce
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                n.service.step()

        refused = _infer(http, spotcheck, [0.1, 0.1, 0.1, 0.1])
        assert refused.status_code == 503
        assert f"not accepting work: node {node.address} is unbonding" in refused.json()["detail"]
        ready = http.get("/ready")
        assert ready.status_code == 503 and "unbonding" in ready.json()["reason"]
        assert node.nonce == nonce  # nothing sent: no reverting commitBatch retried
        [batch] = n.store.batches(BatchState.SEALED)
        assert batch.count == 2  # held, committed if the node stakes again
        dropped = n.store.onchain_job(job_id)
        assert dropped is not None and dropped.status == JobState.DROPPED
        closed = [r for r in caplog.records if r.getMessage().startswith("not accepting work: ")]
        assert len(closed) == 1
        assert not [r for r in caplog.records if "will retry" in r.getMessage()]
    finally:
        n.close()


def test_commitBatch_revertingNodeUnbonding_isDecodedByName_loggedOnce_andNotRetried(
    tmp_path: Path, spotcheck: Any, node: Any, onnx_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = Node(tmp_path / "node.sqlite", spotcheck, node, onnx_path, batch_size=2)
    try:
        gate, http = _gated(n, spotcheck)
        n.service.step()  # the gate reads the stake: open
        for x in ([0.1, 0.2, 0.3, 0.4], [0.2, 0.2, 0.2, 0.2]):
            assert _infer(http, spotcheck, x).status_code == 200
        spotcheck.stake_manager.requestUnbond(sender=node)  # after the gate's last read
        nonce = node.nonce
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                n.service.commit_batches()  # the phase alone: the gate is not refreshed

        reason = gate.refuse(spotcheck.model_id) or ""
        assert reason.startswith(f"commitBatch reverts NodeUnbonding(node={node.address})")
        assert node.nonce == nonce  # the revert surfaced at the gas estimate: nothing spent
        named = [r for r in caplog.records if "NodeUnbonding(" in r.getMessage()]
        assert len(named) == 1, [r.getMessage() for r in caplog.records]
        assert not any("0x51805901" in r.getMessage() for r in caplog.records)
    finally:
        n.close()


def test_aRevert_fromTheChain_isNamedInTheError(spotcheck: Any, node2: Any) -> None:
    chain = NodeChain(spotcheck.contracts, node2)
    chain.request_unbond()
    with pytest.raises(RevertError) as err:
        chain.request_unbond()
    assert err.value.error == "NodeUnbonding"
    assert f"NodeUnbonding(node={node2.address})" in str(err.value)
    with pytest.raises(ChainError, match=r"requestUnbond failed: NodeUnbonding\(node="):
        NodeChain(spotcheck.contracts, node2, dry_run=True).request_unbond()


# -- checks before anything is spent ------------------------------------------------------------


def test_nodeStake_belowTheMinimum_isRefusedBeforeSending(
    spotcheck: Any, outsider: Any, deployer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spotcheck.token.mint(outsider, 10 * TOKEN, sender=deployer)
    monkeypatch.setattr(prover.cli, "connect_contracts", lambda _path: spotcheck.contracts)
    nonce = outsider.nonce
    with pytest.raises(ConfigError) as err:
        prover.cli._stake(outsider, None, "5", dry_run=False)
    assert "below the minimum stake 1000: stake at least 1000" in _one_line(err)
    assert outsider.nonce == nonce
    assert int(spotcheck.stake_manager.stakeOf(outsider.address).amount) == 0


def test_nodeStake_fromAnAccountWithoutEth_isToldSo(
    spotcheck: Any, accounts: Any, chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broke = accounts.generate_test_account()
    chain.set_balance(broke.address, 0)
    monkeypatch.setattr(prover.cli, "connect_contracts", lambda _path: spotcheck.contracts)
    with pytest.raises(ConfigError) as err:
        prover.cli._stake(broke, None, "1000", dry_run=False)
    assert f"account {broke.address} holds no ETH to pay for gas" in _one_line(err)
