"""``spotcheck.status.gather_status`` on anvil: a deployed system with jobs, an open dispute, a
settled (slashing) dispute, a batch with an open leaf request; what the status shows is what
the contracts' views say, read over bounded block ranges."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spotcheck.encoding import hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree
from spotcheck.status import SystemStatus, gather_status, render_text
from tests.fixtures.chain import JOB_OUTPUT, MOCK_MODEL, NODE_STAKE, TEST_PARAMS, advance

pytestmark = pytest.mark.chain
OUT_HASH = hash_vector(JOB_OUTPUT)


def _batch(spotcheck: Any, node: Any, n: int = 4) -> tuple[int, Any]:
    jobs = [(900 + i, [i, 1, 0, 1], [i, 2]) for i in range(n)]
    tree = MerkleTree(
        [leaf_hash(j, spotcheck.model_id, hash_vector(a), hash_vector(b)) for j, a, b in jobs]
    )
    receipt = spotcheck.job_manager.commitBatch(spotcheck.model_id, tree.root, n, "", sender=node)
    return int(receipt.return_value), tree


@pytest.fixture
def busy(
    spotcheck: Any, make_job: Any, node: Any, node2: Any, challenger: Any, chain: Any
) -> dict[str, Any]:
    """node: a slashed job (dispute settled undefended) and an open dispute; node2: a batch
    with an open leaf request."""
    dm = spotcheck.dispute_manager
    slashed_job = make_job()
    slashed_id = bytes(dm.openDispute(slashed_job, OUT_HASH, sender=challenger).return_value)
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(slashed_id, sender=challenger)
    open_job = make_job(input=[5, 6, 7, 8])
    open_id = bytes(dm.openDispute(open_job, OUT_HASH, sender=challenger).return_value)
    batch_id, tree = _batch(spotcheck, node2)
    request_id = bytes(dm.requestLeaf(batch_id, 2, tree.root, sender=challenger).return_value)
    return {
        "slashed_id": slashed_id,
        "open_job": open_job,
        "open_id": open_id,
        "batch_id": batch_id,
        "request_id": request_id,
    }


def test_gatherStatus_busySystem_showsWhatTheViewsSay(
    spotcheck: Any, busy: dict[str, Any], node: Any, node2: Any, challenger: Any
) -> None:
    st = gather_status(spotcheck.contracts)
    assert st.chain_id == spotcheck.deployment.chain_id
    assert st.from_block == spotcheck.deployment.deploy_block
    assert st.min_stake == TEST_PARAMS.min_stake
    assert st.contracts["job_manager"] == spotcheck.deployment.job_manager

    [model] = [m for m in st.models if m.model_id == "0x" + spotcheck.model_id.hex()]
    assert model.active and model.tau == MOCK_MODEL.tau
    assert model.slash == MOCK_MODEL.slash_amount and model.input_len == 4

    by_addr = {n.address: n for n in st.nodes}
    n1, n2 = by_addr[str(node.address)], by_addr[str(node2.address)]
    assert n1.stake == NODE_STAKE - MOCK_MODEL.slash_amount
    assert n1.open_disputes == 1 and n1.commitments == 2 and n1.live
    assert n2.commitments == 1 and n2.locked > 0 and n2.live
    assert n1.last_commit_age_s is not None and n1.last_commit_age_s >= 0

    # only the dispute still open; the settled one is gone
    [d] = st.open_disputes
    assert d.dispute_id == "0x" + busy["open_id"].hex() and d.kind == "onchain"
    assert d.job_id == busy["open_job"] and d.node == str(node.address)
    assert d.challenger == str(challenger.address) and d.bond == MOCK_MODEL.challenger_bond
    assert 0 < d.seconds_left <= MOCK_MODEL.proof_window

    [r] = st.open_leaf_requests
    assert r.request_id == "0x" + busy["request_id"].hex()
    assert (r.batch_id, r.index, r.status) == (busy["batch_id"], 2, "open")
    assert r.node == str(node2.address)

    [s] = st.recent_slashes
    assert s.node == str(node.address) and s.slashed == MOCK_MODEL.slash_amount
    assert st.jobs_requested == 2 and st.batches_committed == 1

    text = render_text(st)
    assert "open disputes (1)" in text and "open leaf requests (1)" in text
    assert "recent slashes (1, newest first)" in text and str(node.address) in text


def test_gatherStatus_afterTheProofWindow_openDisputeStillOpenUntilSettled(
    spotcheck: Any, busy: dict[str, Any], chain: Any, challenger: Any
) -> None:
    advance(chain, MOCK_MODEL.proof_window + 1)
    [d] = gather_status(spotcheck.contracts).open_disputes
    assert d.seconds_left == 0
    spotcheck.dispute_manager.settle(busy["open_id"], sender=challenger)
    st = gather_status(spotcheck.contracts)
    assert st.open_disputes == [] and len(st.recent_slashes) == 2
    assert st.recent_slashes[0].block > st.recent_slashes[1].block  # newest first


def test_gatherStatus_idleLongerThanTheLiveWindow_nodeNotLive(
    spotcheck: Any, busy: dict[str, Any], chain: Any, node: Any
) -> None:
    advance(chain, 120)
    st = gather_status(spotcheck.contracts, live_window_s=60)
    n1 = next(n for n in st.nodes if n.address == str(node.address))
    assert not n1.live and "last commitment" in n1.why_not_live


def test_gatherStatus_unbondingNode_notLive(
    spotcheck: Any, busy: dict[str, Any], node2: Any
) -> None:
    spotcheck.stake_manager.requestUnbond(sender=node2)
    st = gather_status(spotcheck.contracts)
    n2 = next(n for n in st.nodes if n.address == str(node2.address))
    assert n2.unbonding and not n2.live and n2.why_not_live == "unbonding"


def _same(a: SystemStatus, b: SystemStatus) -> bool:
    return replace(a, gathered_at=0.0) == replace(b, gathered_at=0.0)


def test_gatherStatus_oneBlockChunks_sameAnswer(spotcheck: Any, busy: dict[str, Any]) -> None:
    whole = gather_status(spotcheck.contracts)
    pieces = gather_status(spotcheck.contracts, chunk_blocks=1)
    assert _same(whole, pieces)


def test_gatherStatus_shortLookback_readsOnlyThoseBlocks(
    spotcheck: Any, busy: dict[str, Any]
) -> None:
    st = gather_status(spotcheck.contracts, lookback_blocks=1)
    assert st.from_block == st.head_block
    # the last block holds the leaf request only: no model registration, no slash in range
    assert st.models == [] and st.recent_slashes == [] and st.open_disputes == []
    assert [r.batch_id for r in st.open_leaf_requests] == [busy["batch_id"]]


def test_apeTracesToDebug_revertingCall_printsNoTraceAndStillRaises(
    spotcheck: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """Ape prints a call trace to stdout for a revert before the error a command reports in
    one line; the status commands route it to DEBUG."""
    from spotcheck.kit.quiet import ape_traces_to_debug

    ape_traces_to_debug()
    capfd.readouterr()
    with pytest.raises(Exception):  # noqa: B017 - Ape does not decode this custom error
        spotcheck.contracts.model_registry.getModel(b"\x07" * 32)
    out = capfd.readouterr().out
    assert "reverted" not in out and "getModel" not in out
