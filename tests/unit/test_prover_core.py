"""Offline core of the node: fast vectors, store transitions and crash recovery, batching."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from prover.batching import BatchCutter, JobServer
from prover.inference import FaultInjector, InferenceEngine, ModelRuntime, ModelSpec
from prover.receipts import KeySigner, Receipt, ReceiptDomain, verify_receipt
from prover.store import BatchState, DisputeState, JobState, Store
from prover.vectors import hash_array
from spotcheck.encoding import (
    hash_vector,
    leaf_hash,
    quantize,
    quantize_array,
    within_tolerance,
)
from spotcheck.errors import EncodingError, InputError, StateError
from spotcheck.merkle import verify
from tests.fixtures import models

MODEL_ID = bytes.fromhex("11" * 32)
KEY = "0x" + "42" * 32
DOMAIN = ReceiptDomain(31337, "0x" + "77" * 20)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "node.sqlite")
    yield s
    s.close()


@pytest.fixture(scope="module")
def tiny_mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build("tiny_mlp", tmp_path_factory.mktemp("models"))


def _spec(path: Path, tau: int = 8) -> ModelSpec:
    return ModelSpec(MODEL_ID, path, input_scale=7, output_scale=13, tau=tau)


# -- vectors ------------------------------------------------------------------------------


def test_quantize_array_roundsHalfAwayFromZero_asInt64() -> None:
    x = [0.5, -0.5, 1.5, -1.5, 0.0, -0.0, 2.25, -2.25]
    q0 = quantize_array(x, 0)
    assert q0.dtype == np.int64
    assert q0.tolist() == [1, -1, 2, -2, 0, 0, 2, -2]
    assert quantize_array(x, 1).tolist() == [1, -1, 3, -3, 0, 0, 5, -5]
    assert quantize(x, 1) == [1, -1, 3, -3, 0, 0, 5, -5]


def test_quantize_array_rejects_nan_and_inf() -> None:
    with pytest.raises(EncodingError):
        quantize_array([1.0, float("nan")], 7)
    with pytest.raises(EncodingError):
        quantize_array([float("inf")], 7)


def test_hash_array_equals_canonical_hash_vector() -> None:
    rng = np.random.default_rng(1)
    for q in (
        np.array([], dtype=np.int64),
        np.array([0, 1, -1, 2**52, -(2**52)], dtype=np.int64),
        rng.integers(-(2**40), 2**40, size=1000),
    ):
        assert hash_array(q) == hash_vector(q.tolist())


# -- store: on-chain jobs -----------------------------------------------------------------


def test_record_requested_isIdempotent_soReplayedLogsDoNotDuplicate(store: Store) -> None:
    assert store.record_requested(7, MODEL_ID, [1, 2], commit_deadline=100)
    assert not store.record_requested(7, MODEL_ID, [1, 2], commit_deadline=100)
    assert [j.job_id for j in store.onchain_jobs(JobState.REQUESTED)] == [7]


def test_commit_intent_pinsOutput_soARetryCannotCommitADifferentOne(store: Store) -> None:
    store.record_requested(1, MODEL_ID, [1, 2], commit_deadline=100)
    store.commit_intent(1, [5, -6], nonce=3)
    store.commit_intent(1, [5, -6], nonce=4)  # retry of the same intent: allowed
    with pytest.raises(StateError):
        store.commit_intent(1, [5, -7], nonce=5)
    job = store.onchain_job(1)
    assert job is not None
    assert job.status == JobState.COMMITTING and job.output_q == (5, -6) and job.nonce == 4


def test_job_transitions_areCompareAndSet(store: Store) -> None:
    store.record_requested(1, MODEL_ID, [1], commit_deadline=100)
    with pytest.raises(StateError):
        store.mark_committed(1, "0xabc", 200)  # no intent recorded
    store.commit_intent(1, [3], nonce=None)
    store.mark_committed(1, "0xabc", 200)
    with pytest.raises(StateError):
        store.commit_intent(1, [3], nonce=None)  # already committed: never again
    store.mark_job(1, JobState.FINAL)
    with pytest.raises(StateError):
        store.mark_job(1, JobState.DROPPED)


def test_store_survivesReopen_withIntentStatesIntact(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    s = Store(path)
    s.record_requested(1, MODEL_ID, [1], commit_deadline=100)
    s.commit_intent(1, [9], nonce=0)
    s.close()  # "crash" after recording the intent, before the receipt
    s2 = Store(path)
    [job] = s2.onchain_jobs(JobState.COMMITTING)
    assert job.output_q == (9,) and job.nonce == 0
    s2.close()


def test_record_requested_insideCallerTransaction_rollsBackWithIt(store: Store) -> None:
    from spotcheck.follower import open_db

    conn = open_db(store.path)
    conn.execute("BEGIN IMMEDIATE")
    store.record_requested(3, MODEL_ID, [1], commit_deadline=100, conn=conn)
    conn.execute("ROLLBACK")
    assert store.onchain_job(3) is None
    conn.close()


# -- store: disputes ----------------------------------------------------------------------


def test_dispute_transitions_keepProofAcrossRestart(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    did = bytes.fromhex("ab" * 32)
    s = Store(path)
    assert s.record_dispute(did, 1, ref=4, job_id=2, proof_deadline=500)
    assert not s.record_dispute(did, 1, ref=4, job_id=2, proof_deadline=500)
    with pytest.raises(StateError):
        s.defend_intent(did, nonce=1)  # no proof yet
    s.save_proof(did, b"\x01\x02", [10, 11], [11])
    s.defend_intent(did, nonce=1)
    s.close()
    s2 = Store(path)
    [d] = s2.disputes(DisputeState.DEFENDING)
    assert d.proof == b"\x01\x02" and d.instances == (10, 11) and d.committed_output == (11,)
    assert d.attempts == 1
    s2.mark_defended(did, "0xdef")
    with pytest.raises(StateError):
        s2.mark_dispute_lost(did, "too late")
    s2.close()


# -- serving and batching -----------------------------------------------------------------


def _server(store: Store, path: Path, rate: float = 0.0) -> JobServer:
    engine = InferenceEngine({MODEL_ID: ModelRuntime.load(_spec(path))}, FaultInjector(rate))
    return JobServer(engine, store, KeySigner(KEY, DOMAIN))


def test_serve_returnsSignedReceipt_forTheStoredLeaf(store: Store, tiny_mlp_path: Path) -> None:
    server = _server(store, tiny_mlp_path)
    rt = server.engine.runtime(MODEL_ID)
    q = rt.quantize_input([0.5, -0.25, 1.0, 0.0])
    served = server.serve(MODEL_ID, q)
    r = served.receipt
    assert r.input_hash == hash_vector(q.tolist())
    assert r.output_hash == hash_vector(served.result.output_q.tolist())
    assert verify_receipt(r, KeySigner(KEY, DOMAIN).address, DOMAIN)
    assert not verify_receipt(r, "0x" + "00" * 20)
    forged = Receipt(
        r.job_id,
        r.model_id,
        r.input_hash,
        hash_vector([0, 0]),
        r.node,
        r.signature,
        r.chain_id,
        r.job_manager,
    )
    assert not verify_receipt(forged, r.node)
    job = store.served_job(r.job_id)
    assert job is not None
    assert job.leaf == leaf_hash(r.job_id, MODEL_ID, r.input_hash, r.output_hash)
    assert job.input_q.tolist() == q.tolist()


def test_serve_runsModelOnQuantizedInput_withinTauOfFloatOutput(
    store: Store, tiny_mlp_path: Path
) -> None:
    server = _server(store, tiny_mlp_path)
    from verifier.onnx_runner import OnnxRunner

    x = np.array([0.3, -0.7, 0.1, 0.9])
    served = server.serve(MODEL_ID, server.engine.runtime(MODEL_ID).quantize_input(x))
    direct = quantize(OnnxRunner(tiny_mlp_path).run(x), 13)
    # input quantized at scale 7 moves the output a little, never wildly
    assert within_tolerance(served.result.output_q.tolist(), direct, 2**13 // 8)


@pytest.mark.parametrize(
    "bad",
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, float("nan"), 0.0, 0.0], [float("inf")] * 4],
)
def test_quantize_input_rejectsBadInput(tiny_mlp_path: Path, bad: list[float]) -> None:
    rt = ModelRuntime.load(_spec(tiny_mlp_path))
    with pytest.raises(InputError):
        rt.quantize_input(bad)


def test_check_input_q_rejectsOutOfRangeAndNonIntegers(tiny_mlp_path: Path) -> None:
    rt = ModelRuntime.load(_spec(tiny_mlp_path))
    with pytest.raises(InputError):
        rt.check_input_q([2**60, 0, 0, 0])
    with pytest.raises(InputError):
        rt.check_input_q([1.5, 0, 0, 0])  # type: ignore[list-item]


def test_faultInjection_corruptsBeyondTau(store: Store, tiny_mlp_path: Path) -> None:
    server = _server(store, tiny_mlp_path, rate=1.0)
    served = server.serve(MODEL_ID, np.array([1, 2, 3, 4], dtype=np.int64))
    res = served.result
    assert res.corrupted
    assert not within_tolerance(res.output_q.tolist(), res.honest_output_q.tolist(), 8)


def test_batchCutter_cutsBySize_andProofsVerifyAgainstRoot(
    store: Store, tiny_mlp_path: Path
) -> None:
    server = _server(store, tiny_mlp_path)
    receipts = [
        server.serve(MODEL_ID, np.array([i, -i, 2 * i, 1], dtype=np.int64)).receipt
        for i in range(7)
    ]
    cutter = BatchCutter(store, batch_size=3, interval_s=3600)
    batches = cutter.cut()
    assert [b.count for b in batches] == [3, 3]  # the last job waits for size or time
    for b in batches:
        jobs = store.batch_jobs(b.local_id)
        assert [j.leaf_index for j in jobs] == [0, 1, 2]
        for j in jobs:
            assert j.leaf_index is not None
            proof = store.leaf_proof(b.local_id, j.leaf_index)
            assert proof is not None
            assert verify(list(proof), b.root, j.leaf, j.leaf_index, b.count)
    assert {j.job_id for b in batches for j in store.batch_jobs(b.local_id)} == {
        r.job_id for r in receipts[:6]
    }
    assert store.pending_counts()[MODEL_ID][0] == 1


def test_batchCutter_cutsByAge(store: Store, tiny_mlp_path: Path) -> None:
    server = _server(store, tiny_mlp_path)
    server.serve(MODEL_ID, np.array([1, 2, 3, 4], dtype=np.int64))
    now = time.time()
    assert BatchCutter(store, 100, 60, clock=lambda: now).cut() == []
    [batch] = BatchCutter(store, 100, 60, clock=lambda: now + 61).cut()
    assert batch.count == 1 and batch.status == BatchState.SEALED


def test_batch_transitions_sealedToCommittingToCommitted(store: Store, tiny_mlp_path: Path) -> None:
    server = _server(store, tiny_mlp_path)
    server.serve(MODEL_ID, np.array([1, 2, 3, 4], dtype=np.int64))
    [b] = BatchCutter(store, 1, 60).cut()
    store.batch_intent(b.local_id, nonce=5)
    store.mark_batch_committed(b.local_id, batch_id=9, tx_hash="0x1", challenge_deadline=10)
    with pytest.raises(StateError):
        store.batch_intent(b.local_id, nonce=6)
    got = store.batch_by_chain_id(9)
    assert got is not None and got.local_id == b.local_id and got.status == BatchState.COMMITTED


def _witness_server(store: Store, path: Path, check: str, gap: int) -> JobServer:
    """A server whose "circuit" is onnxruntime's honest output plus ``gap`` on output 0."""
    spec = ModelSpec(MODEL_ID, path, input_scale=7, output_scale=13, tau=8, witness_check=check)
    engine = InferenceEngine({MODEL_ID: ModelRuntime.load(spec)})

    def circuit(model_id: bytes, input_q: list[int]) -> list[int]:
        out = [int(v) for v in engine.run(model_id, input_q).honest_output_q]
        out[0] += gap
        return out

    return JobServer(engine, store, KeySigner(KEY, DOMAIN), exact=circuit)


@pytest.mark.parametrize(
    ("check", "gap", "committed_is_circuit"),
    [("always", 9, True), ("always", 8, False), ("off", 9, False)],
)
def test_witnessCheck_servesAndCommitsCircuitOutput_onlyWhenOnnxIsBeyondTau(
    store: Store, tiny_mlp_path: Path, check: str, gap: int, committed_is_circuit: bool
) -> None:
    server = _witness_server(store, tiny_mlp_path, check, gap)
    q = np.array([10, -20, 30, 5], dtype=np.int64)
    onnx = server.engine.run(MODEL_ID, q.tolist()).output_q.tolist()
    served = server.serve(MODEL_ID, q)
    expected = [onnx[0] + gap, *onnx[1:]] if committed_is_circuit else onnx
    assert served.result.output_q.tolist() == expected
    assert served.receipt.output_hash == hash_vector(expected)
    job = store.served_job(served.receipt.job_id)
    assert job is not None and job.output_q.tolist() == expected
    server.close()


def test_defendableOutput_tauZeroTakesCircuit_tauPositiveOnlyBeyondTau(tiny_mlp_path: Path) -> None:
    from prover.batching import defendable_output

    exact = _spec(tiny_mlp_path, tau=0)
    assert defendable_output(exact, [1, 2], [1, 3], "t") == [1, 3]
    assert defendable_output(exact, [1, 2], [1, 2], "t") is None
    loose = _spec(tiny_mlp_path, tau=8)
    assert defendable_output(loose, [1, 2], [9, 2], "t") is None
    assert defendable_output(loose, [1, 2], [10, 2], "t") == [10, 2]
    with pytest.raises(ValueError):
        defendable_output(loose, [1, 2], [1], "t")


def test_batchId_correctedByRoot_freesTheStaleIdOfAnotherBatch(
    store: Store, tiny_mlp_path: Path
) -> None:
    server = _server(store, tiny_mlp_path)
    for i in range(2):
        server.serve(MODEL_ID, np.array([i, 2, 3, 4], dtype=np.int64))
    a, b = BatchCutter(store, 1, 60).cut(force=True)
    store.mark_batch_committed(a.local_id, 1, "0x1", 10, commit_block=5)
    store.mark_batch_committed(b.local_id, 2, "0x2", 10, commit_block=5, confirmed=True)
    assert not store.batch(a.local_id).confirmed  # type: ignore[union-attr]
    # A reorg: a's commit is now batch 2; b's is elsewhere (resolved again later).
    store.correct_batch_id(a.local_id, 2, 11, commit_block=6, confirmed=True)
    got_a, got_b = store.batch(a.local_id), store.batch(b.local_id)
    assert got_a is not None and got_b is not None
    assert (got_a.batch_id, got_a.challenge_deadline, got_a.commit_block) == (2, 11, 6)
    assert got_a.confirmed and got_b.batch_id is None and not got_b.confirmed
    assert store.batch_by_root(MODEL_ID, b.root) == got_b
    store.reopen_batch(b.local_id)
    assert store.batch(b.local_id).status == BatchState.COMMITTING  # type: ignore[union-attr]


def test_store_migratesVectorColumns_fromAnOlderStateFile(
    tmp_path: Path, tiny_mlp_path: Path
) -> None:
    """A state file from before ``served_vectors`` (vectors were columns of ``served_jobs``)
    opens with every served job and its batch intact."""
    path = tmp_path / "node.sqlite"
    s = Store(path)
    server = _server(s, tiny_mlp_path)
    served = [server.serve(MODEL_ID, np.array([i, -i, 3, 1], dtype=np.int64)) for i in range(3)]
    [batch] = BatchCutter(s, 2, 60).cut()
    before = [s.served_job(x.receipt.job_id) for x in served]
    proofs = [s.leaf_proof(batch.local_id, i) for i in range(batch.count)]
    s.close()
    with sqlite3.connect(path) as old:  # rewrite the file into the old layout
        old.executescript(
            "ALTER TABLE served_jobs ADD COLUMN input_q BLOB;"
            "ALTER TABLE served_jobs ADD COLUMN output_q BLOB;"
            "UPDATE served_jobs SET input_q = (SELECT input_q FROM served_vectors v"
            " WHERE v.job_id = served_jobs.job_id), output_q = (SELECT output_q FROM"
            " served_vectors v WHERE v.job_id = served_jobs.job_id);"
            "DROP TABLE served_vectors;"
        )
    s2 = Store(path)
    for old_job, x in zip(before, served, strict=True):
        job = s2.served_job(x.receipt.job_id)
        assert job is not None and old_job is not None
        assert np.array_equal(job.input_q, old_job.input_q)
        assert np.array_equal(job.output_q, old_job.output_q)
        assert (job.leaf, job.signature, job.leaf_index) == (
            old_job.leaf,
            old_job.signature,
            old_job.leaf_index,
        )
    assert [s2.leaf_proof(batch.local_id, i) for i in range(batch.count)] == proofs
    assert all(p is not None for p in proofs)
    assert [j.job_id for j in s2.batch_jobs(batch.local_id)] == [
        x.receipt.job_id for x in served[:2]
    ]
    columns = {r[1] for r in s2._conn.execute("PRAGMA table_info(served_jobs)")}
    assert "input_q" not in columns
    s2.close()


# -- storage form and config --------------------------------------------------------------


@pytest.mark.parametrize("bound", [100, 30_000, 2**31 - 1, 2**52])
def test_pack_roundTripsAtTheNarrowestWidth(bound: int) -> None:
    from prover.vectors import pack, unpack

    q = np.array([-bound, 0, bound, 7], dtype=np.int64)
    blob = pack(q)
    assert unpack(blob).tolist() == q.tolist()
    assert len(blob) == 1 + 4 * blob[0] and blob[0] in (1, 2, 4, 8)


def test_loadSettings_readsToml_resolvesPaths_andEnvironmentWins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prover.config import load_settings

    model_id = "0x" + "AB" * 32
    (tmp_path / "node.toml").write_text(
        f'batch_size = 8\n[http]\nport = 9100\n[models."{model_id}"]\n'
        'onnx_path = "m.onnx"\ninput_scale = 7\noutput_scale = 13\ntau = 4\n'
    )
    monkeypatch.setenv("SPOTCHECK_NODE_BATCH_SIZE", "16")
    settings = load_settings(tmp_path / "node.toml")
    assert settings.batch_size == 16 and settings.http.port == 9100
    model = settings.model(bytes.fromhex("ab" * 32))
    assert model.onnx_path == tmp_path / "m.onnx" and model.tau == 4


def test_loadSettings_rejectsBadModelIdAndRates(tmp_path: Path) -> None:
    from prover.config import load_settings
    from spotcheck.errors import ConfigError

    model = {"onnx_path": "m", "input_scale": 1, "output_scale": 1, "tau": 0}
    # Too short; and 64 characters that int() reads as hex but are not 32 bytes of it.
    for bad_id in ("0x12", "0x" + "ab" * 31 + "_1"):
        with pytest.raises(ConfigError):
            load_settings(None, models={bad_id: model})
    good = load_settings(None, models={"0x" + "AB" * 32: model})
    assert list(good.models) == ["0x" + "ab" * 32]
    with pytest.raises(ConfigError):
        load_settings(None, fault_injection={"corrupt_rate": 1.5})


def test_nodeCli_helpListsOperatorCommands_withoutImportingApe() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from prover.cli import node; "
        "r = CliRunner().invoke(node, ['--help']); print(r.output); "
        "print('ape' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in ("stake", "top-up", "unbond", "withdraw", "status", "claim", "run"):
        assert name in out.stdout
    assert out.stdout.strip().endswith("False")


def test_txJournal_keepsTheSignedBytes_andListsFromANonce_acrossAReopen(tmp_path: Path) -> None:
    from prover.transactions import MemoryJournal, SentTx

    txs = [
        SentTx("commitBatch:local:1", 7, "0x07a", 10, 1, 1.0, b"\x02signed-7a"),
        SentTx("commitBatch:local:1", 7, "0x07b", 13, 2, 2.0, b"\x02signed-7b"),
        SentTx("finalizeBatch:3", 8, "0x08", 10, 1, 3.0, None),  # journaled before raw was kept
        SentTx("commitResult:9", 6, "0x06", 10, 1, 0.5, b"\x02signed-6"),
    ]
    store = Store(tmp_path / "node.sqlite")
    memory = MemoryJournal()
    for tx in txs:
        store.tx_sent(tx)
        memory.tx_sent(tx)
    store.close()
    reopened = Store(tmp_path / "node.sqlite")
    for journal in (reopened, memory):
        assert journal.txs_from_nonce(7) == [txs[0], txs[1], txs[2]]
        assert journal.txs_from_nonce(9) == []
        assert journal.txs_for("commitResult:9") == [txs[3]]
    reopened.close()
