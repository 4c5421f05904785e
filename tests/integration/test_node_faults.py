# ruff: noqa: F811 - the node fixtures are imported from test_node_service
"""Faults are not slashes (issue 10.4): RPC errors, bad records, removed models, restarts with a
transaction in flight and stuck transactions never stop an honest node from committing,
finalizing and defending.

The node is assembled as in ``test_node_service.py`` (MOCK_MODEL, the tiny MLP, a proof
backend whose instances are an honest proof's); faults are injected by wrapping the node's
chain methods or by switching anvil's automine off.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from prover.inference import ModelSpec
from prover.store import BatchState, DisputeState, JobState
from prover.transactions import FeePolicy
from spotcheck.chain import DisputeStatus, JobStatus
from spotcheck.encoding import onchain_job_key
from tests.fixtures.chain import MOCK_MODEL, NODE_STAKE, advance
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    SimulatedCrashError,
    _dispute,
    _events,
    _infer,
    _request,
    make_node,
    onnx_path,
)

pytestmark = pytest.mark.chain


def _rpc(method: str, *params: Any) -> Any:
    from ape import chain

    return chain.provider.make_request(method, list(params))


@pytest.fixture()
def manual_mining() -> Iterator[Callable[[], None]]:
    """Automine off for the test (yields ``mine()``); back on, pool mined, afterwards."""
    _rpc("evm_setAutomine", False)
    try:
        yield lambda: _rpc("evm_mine")
    finally:
        _rpc("evm_setAutomine", True)
        _rpc("evm_mine")


def _pool(address: str) -> list[dict[str, Any]]:
    """Pending transactions of ``address`` in anvil's pool."""
    content = _rpc("txpool_content")
    pending = content.get("pending", {})
    for sender, by_nonce in pending.items():
        if sender.lower() == address.lower():
            return list(by_nonce.values())
    return []


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value).lower()
    return text if text.startswith("0x") else "0x" + text


class Boom(Exception):  # noqa: N818 - what an untyped third-party failure looks like
    """Not a SpotcheckError: what web3, requests or a bug raise."""


# -- one phase's failure never stops the others --------------------------------------------


def test_step_survivesAnUntypedErrorInFinalize_andStillDefendsAndCommits(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
    chain: Any,
) -> None:
    n = make_node(batch_size=1)
    old_job = _request(spotcheck, requester, node, [1, 2, 3, 4])
    n.service.step()
    advance(chain, MOCK_MODEL.challenge_window + 1)  # old_job is due for finalization
    real_finalize = n.chain.finalize

    def broken_finalize(job_id: int) -> Any:
        raise Boom("connection reset by peer")

    n.chain.finalize = broken_finalize  # type: ignore[method-assign]
    disputed = _request(spotcheck, requester, node, [4, 3, 2, 1])
    n.service.step()  # must not raise
    _dispute(spotcheck, disputed, challenger)
    _infer(n, spotcheck, [0.1, 0.2, 0.3, 0.4])  # a batch of one, due at once
    n.service.step()  # must not raise

    assert n.chain.dispute(onchain_job_key(disputed)).status == DisputeStatus.DEFENDED
    assert len(_events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)) == 1
    assert n.chain.job(old_job).status == JobStatus.COMMITTED  # finalize failed ...
    n.chain.finalize = real_finalize  # type: ignore[method-assign]
    n.service.step()
    assert n.chain.job(old_job).status == JobStatus.FINAL  # ... and the next step did it


def test_run_survivesAnyException_ofAStep_andKeepsGoing(
    make_node: Callable[..., Node], spotcheck: Any, requester: Any, node: Any
) -> None:
    n = make_node()
    calls = {"n": 0}
    real_step = n.service.step

    def flaky_step() -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise Boom("RPC down")
        return real_step()

    n.service.step = flaky_step  # type: ignore[method-assign]
    job_id = _request(spotcheck, requester, node, [9, 8, 7, 6])
    runner = threading.Thread(target=n.service.run, kwargs={"poll_interval_s": 0.05})
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and n.chain.job(job_id).status != JobStatus.COMMITTED:
            time.sleep(0.1)
    finally:
        n.service.stop()
        runner.join(30)
    assert calls["n"] > 2
    assert n.chain.job(job_id).status == JobStatus.COMMITTED
    assert n.service.readiness.ready()  # failed twice (not ready), then steps succeeded


# -- one bad record never blocks the others -------------------------------------------------


def test_disputeOfABatchCommittedBeforeACrash_isDefended_andDoesNotBlockOthers(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
) -> None:
    """Crash between ``commitBatch`` mined and its record; a leaf of that batch and an on-chain
    job are disputed while the node is down; on restart both are defended."""

    def crash(at: str) -> None:
        if at == "batch:after-send":
            raise SimulatedCrashError(at)

    first = make_node(batch_size=2, crash_hook=crash)
    job_id = _request(spotcheck, requester, node, [5, 5, 5, 5])
    answers = [_infer(first, spotcheck, [0.5, -0.5, 0.25 * i, 1.0]) for i in range(2)]
    with pytest.raises(SimulatedCrashError):
        first.service.step()
    leaf = answers[0]["receipt"]
    served = first.store.served_job(leaf["jobId"])
    assert served is not None and served.batch_local_id is not None
    assert served.leaf_index is not None
    proof = first.store.leaf_proof(served.batch_local_id, served.leaf_index)
    assert proof is not None
    first.close()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=node.address)
    batch_id = int(ev.event_arguments["batchId"])
    spotcheck.dispute_manager.openBatchDispute(
        batch_id,
        served.leaf_index,
        leaf["jobId"],
        leaf["inputHash"],
        leaf["outputHash"],
        list(proof),
        sender=challenger,
    )
    _dispute(spotcheck, job_id, challenger)

    second = make_node(batch_size=2)
    second.service.step()
    second.service.step()

    defended = _events(spotcheck.dispute_manager.DisputeDefended)
    assert len(defended) == 2
    assert second.store.batch_by_chain_id(batch_id).status == BatchState.COMMITTED  # type: ignore[union-attr]
    assert second.chain.stake().amount == NODE_STAKE


def test_disputeWhoseModelIsGone_failsAlone_withItsIdsLogged(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
    register_model: Callable[..., bytes],
    project: Any,
    deployer: Any,
    onnx_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.fixtures.chain import MOCK_MODEL as M

    other = register_model(deployer.deploy(project.MockVerifier), M, tag=b"gone")
    extra = ModelSpec(other, onnx_path, M.input_scale, M.output_scale, M.tau)
    first = make_node(extra_specs=[extra])
    gone_job = int(
        spotcheck.job_manager.requestJob(
            other, [1, 1, 1, 1], node, 5 * 10**18, sender=requester
        ).return_value
    )
    kept_job = _request(spotcheck, requester, node, [2, 2, 2, 2])
    first.service.step()
    first.close()
    _dispute(spotcheck, gone_job, challenger)  # first in the queue
    _dispute(spotcheck, kept_job, challenger)

    second = make_node()  # the other model was removed from the config
    with caplog.at_level("ERROR"):
        second.service.step()

    assert second.chain.dispute(onchain_job_key(kept_job)).status == DisputeStatus.DEFENDED
    gone = second.store.dispute(onchain_job_key(gone_job))
    assert gone is not None and gone.status == DisputeState.OPEN and gone.last_error
    assert any(getattr(r, "job_id", None) == gone_job for r in caplog.records)  # a log field


# -- transactions in flight across a restart; stuck transactions ----------------------------


def test_commitBatchPendingAcrossARestart_isNeverSentUnderAFreshNonce(
    make_node: Callable[..., Node],
    spotcheck: Any,
    node: Any,
    manual_mining: Callable[[], None],
) -> None:
    policy = FeePolicy(stuck_after_s=60, timeout_s=1.0, poll_s=0.1)
    first = make_node(batch_size=1, policy=policy)
    _infer(first, spotcheck, [0.3, 0.3, 0.3, 0.3])
    nonce_before = node.nonce
    first.service.step()  # commitBatch broadcast, never mined: the step gives up waiting
    [batch] = first.store.batches(BatchState.COMMITTING)
    [sent] = first.store.txs_for(f"commitBatch:local:{batch.local_id}")
    assert sent.nonce == nonce_before
    first.close()

    second = make_node(batch_size=1, policy=policy)  # restart while it is still pending
    second.service.step()
    second.service.step()
    assert {t.nonce for t in second.store.txs_for(f"commitBatch:local:{batch.local_id}")} == {
        nonce_before
    }
    assert [int(t["nonce"], 16) for t in _pool(node.address)] == [nonce_before]

    manual_mining()
    second.service.step()

    assert len(_events(spotcheck.job_manager.BatchCommitted, node=node.address)) == 1
    assert second.store.batches(BatchState.COMMITTING, BatchState.SEALED) == []
    assert node.nonce == nonce_before + 1


def test_stuckTransaction_isReplacedWithTheSameNonce_andHigherFees(
    make_node: Callable[..., Node],
    spotcheck: Any,
    requester: Any,
    node: Any,
    manual_mining: Callable[[], None],
) -> None:
    policy = FeePolicy(stuck_after_s=0.5, bump=1.2, timeout_s=30, poll_s=0.1)
    n = make_node(policy=policy)
    _rpc("evm_setAutomine", True)
    job_id = _request(spotcheck, requester, node, [3, 1, 4, 1])
    _rpc("evm_setAutomine", False)
    intent = f"commitResult:{job_id}"

    def miner() -> None:  # the chain includes nothing until the node has replaced its tx twice
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and len(n.store.txs_for(intent)) < 3:
            time.sleep(0.05)
        manual_mining()

    t = threading.Thread(target=miner)
    t.start()
    n.service.step()
    t.join()

    sent = n.store.txs_for(intent)
    assert len(sent) >= 3
    assert len({s.nonce for s in sent}) == 1
    for before, after in itertools.pairwise(sent):
        assert after.max_fee >= before.max_fee * 1.125
        assert after.priority_fee >= before.priority_fee * 1.125
    [committed] = _events(spotcheck.job_manager.ResultCommitted, jobId=job_id)
    mined_hash = _hex(committed.transaction_hash)
    assert mined_hash == sent[-1].tx_hash.lower()  # the replacement, not the first
    assert n.store.onchain_job(job_id).status == JobState.COMMITTED  # type: ignore[union-attr]
