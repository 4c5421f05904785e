"""The real `spotcheck node run` process, SIGKILLed at random moments under load and restarted.

Issue 4: "a node killed at random points and restarted finishes its work with no duplicate and
no missing commitment". The in-process tests stop the service at named crash points; this one
kills the whole process (HTTP server, chain loop, SQLite writer) wherever it happens to be.

Set-up as an operator does it (subprocesses of ``.venv/bin/spotcheck`` against an anvil on a
free port): ``contracts deploy``, ``contracts mint``, ``model onboard`` of the tiny MLP (artifacts
cached in ``.spotcheck-cache/``; a 5 s challenge window so that finalizations happen too), and
``node stake``. Anvil mines every transaction at once and a block every second
(``--mixed-mining``), so commits are quick and time still moves.

While a requester sends ``requestJob`` transactions and an HTTP client posts jobs to
``/v1/models/{id}/infer`` without pause, the node (``batch_size`` 3, 1 s interval) is killed
with SIGKILL ``KILLS`` times and restarted with the same config and database. Each kill is
either after a random delay (seeded) or as soon as the node's database shows a commitment
*intent* (``committing``: recorded, transaction maybe sent, outcome not recorded). After the
last restart the load stops and the node runs until all work is committed. Then, from the
chain's events and the node's database:

- every requested on-chain job has exactly one ``ResultCommitted`` (and nothing else does);
- every HTTP job answered 200 is a leaf of exactly one committed batch; its receipt is signed by
  the node and checks on-chain (``check_receipt_onchain``: node, model, Merkle proof);
- every committed batch's leaves (as served by ``/v1/batches/{id}``) rebuild its on-chain root
  and count, and no two ``BatchCommitted`` have the same root;
- every transaction the node sent committed or finalized something (none reverted or repeated);
- no row of the node's SQLite is left in an intermediate state.

``SPOTCHECK_KILL_SEED`` changes the kill schedule (the seed is printed on failure).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from web3 import HTTPProvider, Web3

from prover.receipts import Receipt, check_receipt_onchain, verify_receipt
from spotcheck.encoding import quantize
from spotcheck.merkle import MerkleTree
from spotcheck.toolchain import PROJECT_ROOT
from tests.fixtures.processes import (
    Env,
    free_port,
    onboard_tiny_mlp,
    running_anvil,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.chain

SEED = int(os.environ.get("SPOTCHECK_KILL_SEED", "20240604"))
KILLS = 4
#: How each kill picks its moment, in turn: after a seeded random delay, or as soon as the
#: database shows an on-chain job's / a batch's commit intent.
KILL_MODES = ("random", "job-intent", "random", "batch-intent")
#: Ape's TEST::1 is anvil's account #1; anvil's accounts are unlocked, #2 requests jobs.
NODE_ADDRESS = Web3.to_checksum_address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
REQUESTER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
#: Node states that must not survive the end of the run.
UNFINISHED = {
    "onchain_jobs": {"requested", "committing", "dropped"},
    "batches": {"sealed", "committing"},
}


@dataclass
class Workload:
    """Requests on-chain jobs and posts HTTP jobs until stopped (two threads)."""

    rpc: str
    node_url: str
    model_id: str
    jm_address: str
    jm_abi: list[dict[str, Any]]
    input_scale: int
    seed: int
    onchain: list[int] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    http_failures: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._request_jobs, self._post_jobs):
            t = threading.Thread(target=self._guard, args=(target,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        assert not self.errors, self.errors

    def halt(self) -> None:
        """Stop without waiting or checking (clean-up after a failure)."""
        self._stop.set()

    def _guard(self, target: Any) -> None:
        try:
            target()
        except Exception as err:  # surfaced by stop()
            self.errors.append(f"{target.__name__}: {err!r}")

    def _request_jobs(self) -> None:
        rng = random.Random(self.seed)
        w3 = Web3(HTTPProvider(self.rpc))
        jm = w3.eth.contract(address=Web3.to_checksum_address(self.jm_address), abi=self.jm_abi)
        event = jm.events.JobRequested()
        while not self._stop.is_set():
            x = quantize([rng.uniform(-0.9, 0.9) for _ in range(4)], self.input_scale)
            tx = jm.functions.requestJob(bytes.fromhex(self.model_id[2:]), x, NODE_ADDRESS, 0)
            receipt = w3.eth.wait_for_transaction_receipt(tx.transact({"from": REQUESTER}))
            assert receipt["status"] == 1, receipt
            (log,) = event.process_receipt(receipt)
            self.onchain.append(int(log["args"]["jobId"]))
            self._stop.wait(rng.uniform(0.2, 0.8))

    def _post_jobs(self) -> None:
        rng = random.Random(self.seed + 1)
        url = f"{self.node_url}/v1/models/{self.model_id}/infer"
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                x = quantize([rng.uniform(-0.9, 0.9) for _ in range(4)], self.input_scale)
                try:
                    answer = client.post(url, json={"input_q": x})
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    data = answer.json()
                    self.receipts.append(
                        {**data["receipt"], "_input_q": x, "_output_q": data["output_q"]}
                    )
                    self._stop.wait(rng.uniform(0.0, 0.15))
                else:  # the node is down or starting: an honest client retries a bit later
                    self.http_failures += 1
                    self._stop.wait(0.2)


def _db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.is_file():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(conn.execute(sql).fetchall())
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        conn.close()


def _db_states(db: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for table in ("onchain_jobs", "batches", "disputes"):
        rows = _db_rows(db, f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
        out[table] = {str(s): int(n) for s, n in rows}
    rows = _db_rows(db, "SELECT COUNT(*) FROM served_jobs WHERE batch_local_id IS NULL")
    out["served_jobs"] = {"unbatched": int(rows[0][0]) if rows else 0}
    return out


def _in_flight(states: dict[str, dict[str, int]]) -> bool:
    """Work recorded but not finished: a commitment intent, a sealed batch, unbatched jobs."""
    return (
        any(states["onchain_jobs"].get(s, 0) for s in ("requested", "committing"))
        or any(states["batches"].get(s, 0) for s in ("sealed", "committing"))
        or states["served_jobs"]["unbatched"] > 0
    )


def _struct(contract: Any, fn: str, *args: Any) -> SimpleNamespace:
    """Call a view returning one struct; fields by their ABI names."""
    (abi,) = [e for e in contract.abi if e.get("name") == fn]
    names = [c["name"] for c in abi["outputs"][0]["components"]]
    return SimpleNamespace(
        **dict(zip(names, getattr(contract.functions, fn)(*args).call(), strict=True))
    )


class JobManagerView:
    """The two calls ``check_receipt_onchain`` makes, on a web3 contract."""

    def __init__(self, contract: Any) -> None:
        self._c = contract

    def getBatch(self, batch_id: int) -> SimpleNamespace:
        return _struct(self._c, "getBatch", batch_id)

    def isBatchLeafFinal(self, batch_id: int, index: int) -> bool:
        return bool(self._c.functions.isBatchLeafFinal(batch_id, index).call())

    @property
    def address(self) -> str:
        return str(self._c.address)


@pytest.fixture
def anvil_env(tmp_path: Path) -> Iterator[Env]:
    with running_anvil(tmp_path, "--block-time", "1", "--mixed-mining") as rpc:
        yield Env(rpc, tmp_path, {**os.environ, "PYTHONUNBUFFERED": "1"})


def test_nodeProcess_sigkilledUnderLoadAndRestarted_commitsEveryJobExactlyOnce(
    anvil_env: Env,
) -> None:
    e, work = anvil_env, anvil_env.work
    started = time.monotonic()
    net = ("--network", e.rpc)
    deployment = work / "deployment.json"
    dep = ("--deployment", str(deployment))

    # -- operator set-up, as in the guides -------------------------------------------------
    e.run(
        "contracts", "deploy", *net, "--account", "TEST::0", "--unbonding-delay", "1000",
        "--commit-timeout", "600", "--out", str(deployment),
    )  # fmt: skip
    e.run("contracts", "mint", "10000", *net, "--account", "TEST::1", *dep)
    model = onboard_tiny_mlp(
        e, "--challenge-window", "5", "--proof-window", "30", "--slash", "1",
        *net, "--account", "TEST::0", *dep,
    )  # fmt: skip
    model_id, in_scale = model.model_id, model.input_scale
    e.run("node", "stake", "2000", *net, "--account", "TEST::1", *dep)

    http_port = free_port()
    config = work / "node.toml"
    config.write_text(
        f'db_path = "node.sqlite"\ndeployment_path = "deployment.json"\n'
        f"batch_size = 3\nbatch_interval_s = 1\npoll_interval_s = 0.2\nself_audit_rate = 0\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n' + model.node_toml()
    )
    db = work / "node.sqlite"
    node_url = f"http://127.0.0.1:{http_port}"
    setup_s = time.monotonic() - started

    jm_abi = json.loads((PROJECT_ROOT / ".build" / "__local__.json").read_text())["contractTypes"][
        "JobManager"
    ]["abi"]
    deploy_data = json.loads(deployment.read_text())
    w3 = Web3(HTTPProvider(e.rpc))
    jm = w3.eth.contract(address=Web3.to_checksum_address(deploy_data["jobManager"]), abi=jm_abi)
    nonce_before = w3.eth.get_transaction_count(NODE_ADDRESS)
    work_load = Workload(
        e.rpc, node_url, model_id, deploy_data["jobManager"], jm_abi, in_scale, SEED
    )

    def start_node() -> subprocess.Popen[bytes]:
        proc = e.start("node", "node", "run", "--config", str(config), *net, "--account", "TEST::1")

        def ready() -> bool:
            assert proc.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            try:
                return httpx.get(f"{node_url}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "the node's /ready", interval=0.1)
        return proc

    rng = random.Random(SEED)
    kills: list[tuple[str, float, dict[str, dict[str, int]]]] = []
    node = start_node()
    try:
        work_load.start()
        for k in range(KILLS):
            mode = KILL_MODES[k % len(KILL_MODES)]
            t0 = time.monotonic()
            if mode == "random":
                time.sleep(rng.uniform(0.3, 4.0))
            else:  # as soon as a commitment intent is recorded (or give up after 15 s)
                table = "onchain_jobs" if mode == "job-intent" else "batches"
                query = f"SELECT 1 FROM {table} WHERE status = 'committing'"
                end = t0 + 15
                while time.monotonic() < end and not _db_rows(db, query):
                    time.sleep(0.005)
            node.send_signal(signal.SIGKILL)
            node.wait()
            kills.append((mode, round(time.monotonic() - t0, 2), _db_states(db)))
            node = start_node()
        time.sleep(2)  # the restarted node serves a little load too
        work_load.stop()
        requested = set(work_load.onchain)
        kill_report = "\n".join(
            f"kill {i}: {m} after {s} s, db {st}" for i, (m, s, st) in enumerate(kills)
        )
        context = f"seed {SEED}\n{kill_report}"

        def committed_ids() -> Counter[int]:
            logs = jm.events.ResultCommitted().get_logs(from_block=deploy_data["deployBlock"])
            return Counter(int(ev["args"]["jobId"]) for ev in logs)

        def all_done() -> bool:
            assert node.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            states = _db_states(db)
            return not _in_flight(states) and requested <= set(committed_ids())

        wait_for(all_done, 90, f"the node to finish its work ({context})", interval=0.5)

        # -- batches: on-chain events, and the leaves the node serves for them --------------
        batch_logs = jm.events.BatchCommitted().get_logs(from_block=deploy_data["deployBlock"])
        assert batch_logs, context
        roots = Counter(bytes(ev["args"]["root"]) for ev in batch_logs)
        assert max(roots.values()) == 1, f"a root was committed twice: {roots} ({context})"
        leaf_batches: dict[bytes, list[int]] = {}
        for ev in batch_logs:
            args = ev["args"]
            assert args["node"].lower() == NODE_ADDRESS.lower()
            batch_id = int(args["batchId"])
            served = httpx.get(f"{node_url}/v1/batches/{batch_id}", timeout=10).json()
            leaves = [bytes.fromhex(leaf["leaf"][2:]) for leaf in served["leaves"]]
            assert len(leaves) == int(args["count"]), (batch_id, context)
            assert MerkleTree(leaves).root == bytes(args["root"]), (batch_id, context)
            for leaf in leaves:
                leaf_batches.setdefault(leaf, []).append(batch_id)
        assert all(len(ids) == 1 for ids in leaf_batches.values()), context

        # -- every receipt: signed, in exactly one batch, checks on-chain ---------------------
        view = JobManagerView(jm)
        for answer in work_load.receipts:
            receipt = Receipt.from_json(answer)
            assert verify_receipt(receipt, NODE_ADDRESS), answer
            assert len(leaf_batches.get(receipt.leaf, [])) == 1, (answer, context)
            where = httpx.get(f"{node_url}/v1/jobs/{receipt.job_id}", timeout=10).json()
            assert where["batchId"] == leaf_batches[receipt.leaf][0], (where, context)
            check = check_receipt_onchain(
                receipt,
                node=NODE_ADDRESS,
                model_id=model_id,
                input_q=answer["_input_q"],
                output_q=answer["_output_q"],
                batch_id=where["batchId"],
                index=where["index"],
                proof=where["proof"],
                job_manager=view,
                chain_id=w3.eth.chain_id,
            )
            assert check.answers_question and check.signed_by_node and check.in_batch, (
                answer,
                check,
                context,
            )
        assert len({r["jobId"] for r in work_load.receipts}) == len(work_load.receipts), context

        assert stop_process(node) == 0, e.log("node")[-5000:]
    finally:
        work_load.halt()
        stop_process(node)

    # -- on-chain jobs: exactly one ResultCommitted each, and none for anything else ---------
    counts = committed_ids()
    assert set(counts) == requested, context
    assert all(n == 1 for n in counts.values()), f"duplicate commits: {counts} ({context})"

    # -- no wasted transaction either: every one the node sent did one useful thing ---------
    start = deploy_data["deployBlock"]
    finals = len(jm.events.JobFinalized().get_logs(from_block=start)) + len(
        jm.events.BatchFinalized().get_logs(from_block=start)
    )
    sent = w3.eth.get_transaction_count(NODE_ADDRESS) - nonce_before
    assert sent == len(counts) + len(batch_logs) + finals, (sent, finals, context)

    # -- the node's database: nothing left half-done --------------------------------------
    states = _db_states(db)
    for table, bad in UNFINISHED.items():
        assert not bad & set(states[table]), (states, context)
    assert states["served_jobs"]["unbatched"] == 0, states
    assert states["disputes"] == {}, states
    assert sum(states["onchain_jobs"].values()) == len(requested), states

    print(
        f"\nseed {SEED}: {len(requested)} on-chain jobs, {len(work_load.receipts)} HTTP receipts"
        f" ({work_load.http_failures} refused while down), {len(batch_logs)} batches;"
        f" set-up {setup_s:.0f} s, total {time.monotonic() - started:.0f} s\n{kill_report}"
    )
    # Kills under load: at least one found recorded-but-unfinished work in the database.
    assert any(_in_flight(st) for _, _, st in kills), context
