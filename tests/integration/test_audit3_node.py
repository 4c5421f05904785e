"""Audit 3: the node's cancel of a proof someone else settled (56d5913) and its reveals
between long phases (47cbc9b).

``_triage`` (chain loop) cancels a proof only if the defence worker is *already* inside
``backend.prove`` for that dispute, and it tries once: it also marks the dispute ``defended``,
so no later triage looks at it again. ``_defend`` (worker) reads the dispute's chain status
once, then runs the witness pre-check (``_defensible``: a witness of the model, seconds for a
real circuit) and only then enters ``prove`` -- without reading the status again. A third-party
defence landing in that gap is never cancelled: the node runs the whole proof (up to a proof
window) for a dispute that closed before the proof even started, past the in-flight bound the
contract assumed (``claimBusyUntil = min(deadline, close + window)`` counts from the close).

Fixed: a dispute cancelled before its proof starts is refused by ``DefenceWorker.proving`` (and
the ezkl backend stops a proof it has not submitted yet); the self-audit and every receipt wait
of the chain loop call ``_urgent`` (A3-N2, A3-N3).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from prover.defence import ProofCancelledError
from prover.inference import InferenceEngine
from spotcheck.encoding import onchain_job_key
from tests.fixtures.chain import defence_instances
from tests.integration.test_node_service import (  # noqa: F401 - fixtures
    Node,
    OwnRunBackend,
    _dispute,
    _request,
    make_node,
    onnx_path,
)
from verifier.prove import ProofBundle

pytestmark = pytest.mark.chain


class GapBackend(OwnRunBackend):
    """Witness pre-check that can be held (the gap before ``prove``); a proof that runs until
    cancelled or ``proof_s`` (a whole proof) has passed."""

    def __init__(self, engine: InferenceEngine, proof_s: float = 8.0) -> None:
        super().__init__(engine)
        self.proof_s = proof_s
        self.hold = threading.Event()  # armed: witness_output waits for release
        self.in_witness = threading.Event()
        self.release = threading.Event()
        self.prove_started = threading.Event()
        self.prove_done = threading.Event()
        self.cancelled = threading.Event()

    def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
        if self.hold.is_set():
            self.in_witness.set()
            assert self.release.wait(60), "witness never released"
        return super().witness_output(model_id, input_q)

    def prove(self, model_id: bytes, input_q: Sequence[int]) -> ProofBundle:
        self.prove_started.set()
        try:
            if self.cancelled.wait(self.proof_s):
                raise ProofCancelledError("cancelled")
            return super().prove(model_id, input_q)  # the whole proof ran
        finally:
            self.prove_done.set()

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


def test_audit3_thirdPartyDefence_duringWitnessPreCheck_proofStillRunsUncancelled(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    outsider: Any,
    node: Any,
) -> None:
    n = make_node()
    backend = GapBackend(n.engine)
    n.service.backend = backend
    input_q = [10, 20, -30, 40]
    job_id = _request(spotcheck, requester, node, input_q)
    n.service.step()  # committed
    _dispute(spotcheck, job_id, challenger)
    did = onchain_job_key(job_id)
    backend.hold.set()
    n.service.worker.start()
    try:
        n.service.step()  # queued; the worker reads OPEN, then the witness pre-check (held)
        assert backend.in_witness.wait(30)
        job = n.store.onchain_job(job_id)
        assert job is not None and job.output_q is not None
        honest = OwnRunBackend(n.engine).witness_output(spotcheck.model_id, input_q)
        spotcheck.dispute_manager.defend(
            did,
            b"anyone's proof",
            defence_instances(input_q, honest),
            list(job.output_q),
            sender=outsider,
        )
        n.service.step()  # triage: DEFENDED -> cancel (nothing proving yet) and recorded
        backend.release.set()
        # The chain loop keeps stepping while the worker goes on: any chance to stop it.
        end = time.monotonic() + backend.proof_s + 5
        while not backend.prove_done.is_set() and time.monotonic() < end:
            n.service.step()
            time.sleep(0.2)
        assert backend.prove_done.wait(5)
    finally:
        n.service.stop()
    # A dispute closed before its proof started must not be proved at all (or be cancelled).
    assert not backend.prove_started.is_set() or backend.cancelled.is_set(), (
        "a whole proof ran for a dispute someone else had already defended"
    )


# -- A3-N2: the self-audit phase has no `_urgent` -----------------------------------------------

from prover.inference import ModelSpec  # noqa: E402
from spotcheck.chain import JobStatus, LeafRequestStatus  # noqa: E402
from spotcheck.encoding import batch_leaf_key  # noqa: E402
from tests.fixtures.chain import MOCK_IN_HI, MOCK_IN_LO, MOCK_MODEL, advance  # noqa: E402
from tests.integration.test_node_service import _events  # noqa: E402

#: A 12 s proof (and reveal) window; 2 s blocks.
WINDOW = 12
A3_MODEL = dataclasses.replace(MOCK_MODEL, challenge_window=300, proof_window=WINDOW)
#: One witness of the self-audit (a real circuit's witness takes seconds).
WITNESS_S = 1.5


@pytest.fixture()
def a3_model(register_model: Callable[..., bytes], project: Any, deployer: Any) -> bytes:
    return register_model(deployer.deploy(project.MockVerifier), A3_MODEL, tag=b"a3-node")


def test_audit3_leafRequestDuringSelfAudit_waitsForTheWholeDrain_andIsSlashed(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    a3_model: bytes,
    onnx_path: Any,  # noqa: F811
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The chain loop drains up to 10 queued self-audit samples per step, one witness each,
    with no ``_urgent`` between them (47cbc9b added it to commits and finalizations only). A
    leaf request landing as the drain starts is read only after it: 10 x 1.5 s > 12 s."""
    spec = ModelSpec(a3_model, onnx_path, 7, 7, 2, MOCK_IN_LO, MOCK_IN_HI)
    n = make_node(spec=spec, batch_size=4)
    url = f"/v1/models/0x{a3_model.hex()}/infer"
    for i in range(4):
        assert n.http.post(url, json={"input_q": [i, 1, 2, 3]}).status_code == 200
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    root = bytes(ev.event_arguments["root"])
    dm = spotcheck.dispute_manager
    w3 = chain.provider.web3
    sent: list[bool] = []
    honest = OwnRunBackend(n.engine)

    class SlowWitness:
        def witness_output(self, model_id: bytes, input_q: Sequence[int]) -> list[int]:
            if not sent:  # the self-audit starts: the leaf request lands
                data = dm.requestLeaf.encode_input(batch_id, 0, root)
                w3.eth.send_transaction(
                    {"from": challenger.address, "to": dm.address, "data": data, "gas": 400_000}
                )
                sent.append(True)
            time.sleep(WITNESS_S)
            return honest.witness_output(model_id, input_q)

    n.auditor.backend = SlowWitness()  # type: ignore[assignment]
    for i in range(10):
        out = honest.witness_output(a3_model, [i, 1, 2, 3])
        n.auditor._queue.put_nowait((f"job{i}", a3_model, [i, 1, 2, 3], out))
    key = batch_leaf_key(batch_id, 0)
    stake_before = n.chain.stake().amount
    w3.provider.make_request("evm_setAutomine", [False])
    w3.provider.make_request("evm_setIntervalMining", [2])
    try:
        n.service.step()  # ... self-audit: 10 witnesses, the request lands at the first
        assert sent
        deadline = int(dm.getLeafRequest(key).revealDeadline)
        while chain.blocks.head.timestamp <= deadline:
            n.service.step()
            if dm.getLeafRequest(key).status != LeafRequestStatus.OPEN:
                break
    finally:
        w3.provider.make_request("evm_setIntervalMining", [0])
        w3.provider.make_request("evm_setAutomine", [True])
    advance(chain, 2)
    if dm.getLeafRequest(key).status == LeafRequestStatus.OPEN:
        dm.settleLeafRequest(key, sender=outsider)
    slashed = stake_before - n.chain.stake().amount
    assert dm.getLeafRequest(key).status == LeafRequestStatus.REVEALED, (
        f"honest leaf unrevealed: node slashed {slashed / 1e18:g} "
        f"(slash {MOCK_MODEL.slash_amount / 1e18:g})"
    )


# -- A3-N3: a receipt wait of the chain loop has no `_urgent` --------------------------------


def test_audit3_leafRequestDuringCommitReceiptWait_isRevealedBeforeTheReceipt(
    make_node: Callable[..., Node],  # noqa: F811
    spotcheck: Any,
    requester: Any,
    challenger: Any,
    node: Any,
) -> None:
    """``TxSender.send`` waits up to ``timeout_s`` for one receipt; the chain loop answers a
    leaf request landing meanwhile (``on_wait`` -> ``_urgent``), before that receipt shows."""
    from prover.transactions import FeePolicy, Mined, SentTx

    n = make_node(policy=FeePolicy(stuck_after_s=60, timeout_s=90))
    url = f"/v1/models/0x{spotcheck.model_id.hex()}/infer"
    for i in range(4):
        assert n.http.post(url, json={"input_q": [i, 1, 2, 3]}).status_code == 200
    n.service.step()
    [ev] = _events(spotcheck.job_manager.BatchCommitted, node=n.chain.address)
    batch_id = int(ev.event_arguments["batchId"])
    root = bytes(ev.event_arguments["root"])
    job_id = _request(spotcheck, requester, node, [10, 20, -30, 40])
    dm = spotcheck.dispute_manager
    key = batch_leaf_key(batch_id, 0)
    sender = n.chain.sender
    real_mined = sender._mined
    hold_s = 20.0
    seen: dict[str, Any] = {}

    def slow_receipt(txs: list[SentTx]) -> Mined | None:
        """The commit's receipt shows only once the leaf is revealed (or after ``hold_s``)."""
        if not txs or not txs[0].intent.startswith("commitResult:"):
            return real_mined(txs)
        if "requested_at" not in seen:  # the commit is waiting: the leaf request lands
            dm.requestLeaf(batch_id, 0, root, sender=challenger)
            seen["requested_at"] = time.monotonic()
        if dm.getLeafRequest(key).status == LeafRequestStatus.REVEALED:
            seen.setdefault("revealed_after", time.monotonic() - seen["requested_at"])
            return real_mined(txs)
        if time.monotonic() - seen["requested_at"] < hold_s:
            return None
        return real_mined(txs)

    sender._mined = slow_receipt  # type: ignore[method-assign]
    n.service.step()  # commit-jobs: commitResult waits for its receipt
    assert "requested_at" in seen
    assert n.chain.job(job_id).status == JobStatus.COMMITTED
    assert "revealed_after" in seen, "the leaf was revealed only after the commit's receipt"
    assert seen["revealed_after"] < 10
