"""The real ``spotcheck node run`` process through an RPC outage (issue 10.4).

Set-up as an operator does it (subprocesses of ``.venv/bin/spotcheck``, as in
``test_node_process.py``). Anvil runs with ``--dump-state``; it is stopped for
``SPOTCHECK_OUTAGE_S`` seconds (default 60) and restarted on the same port with
``--load-state``, so the chain comes back with everything it had. During the outage the node
keeps serving HTTP jobs (receipts need no chain) and its loop keeps failing and retrying
without exiting. After it, the node catches up: the jobs served during the outage are committed
in batches, a new on-chain job is committed, and a dispute opened after the outage is defended
with a real ezkl proof.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import HTTPProvider, Web3

from spotcheck.encoding import quantize
from spotcheck.toolchain import PROJECT_ROOT, ensure_anvil_on_path
from tests.fixtures.processes import (
    Env,
    free_port,
    onboard_tiny_mlp,
    rpc_up,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.chain

OUTAGE_S = float(os.environ.get("SPOTCHECK_OUTAGE_S", "60"))
NODE_ADDRESS = Web3.to_checksum_address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
REQUESTER = Web3.to_checksum_address("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")
CHALLENGER = Web3.to_checksum_address("0x90F79bf6EB2c4f870365E785982E1f101E93b906")


class Anvil:
    """One anvil on a fixed port whose state survives a stop (``--dump-state``)."""

    def __init__(self, work: Path) -> None:
        ensure_anvil_on_path()
        self.port = free_port()
        self.rpc = f"http://127.0.0.1:{self.port}"
        self.state = work / "anvil-state.json"
        self.log = work / "anvil.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, load: bool = False) -> None:
        args = ["anvil", "--port", str(self.port), "--block-time", "1", "--mixed-mining"]
        args += ["--silent", "--dump-state", str(self.state)]
        if load:
            args += ["--load-state", str(self.state)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: rpc_up(self.rpc), 30, "anvil")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)  # SIGTERM: anvil dumps its state on the way out
            self.proc = None


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    a = Anvil(tmp_path)
    a.start()
    try:
        yield a
    finally:
        a.stop()


def _abi(name: str) -> list[dict[str, Any]]:
    build = json.loads((PROJECT_ROOT / ".build" / "__local__.json").read_text())
    abi: list[dict[str, Any]] = build["contractTypes"][name]["abi"]
    return abi


def _field_index(abi: list[dict[str, Any]], function: str, field: str) -> int:
    """Where ``field`` sits in the struct ``function`` returns (the struct grows over time)."""
    [entry] = [e for e in abi if e.get("type") == "function" and e.get("name") == function]
    names = [c["name"] for c in entry["outputs"][0]["components"]]
    return names.index(field)


def test_nodeProcess_rpcDownThenBack_keepsServing_catchesUp_commitsAndDefends(
    anvil: Anvil, tmp_path: Path
) -> None:
    e = Env(anvil.rpc, tmp_path, {**os.environ, "PYTHONUNBUFFERED": "1"})
    net = ("--network", anvil.rpc)
    deployment = tmp_path / "deployment.json"
    dep = ("--deployment", str(deployment))
    e.run(
        "contracts", "deploy", *net, "--account", "TEST::0", "--unbonding-delay", "5000",
        "--commit-timeout", "900", "--out", str(deployment),
    )  # fmt: skip
    e.run("contracts", "mint", "10000", *net, "--account", "TEST::1", *dep)
    e.run("contracts", "mint", "10000", *net, "--account", "TEST::3", *dep)
    model = onboard_tiny_mlp(
        e, "--challenge-window", "900", "--proof-window", "300", "--slash", "1",
        *net, "--account", "TEST::0", *dep,
    )  # fmt: skip
    e.run("node", "stake", "2000", *net, "--account", "TEST::1", *dep)

    http_port = free_port()
    config = tmp_path / "node.toml"
    config.write_text(
        'db_path = "node.sqlite"\ndeployment_path = "deployment.json"\n'
        "batch_size = 2\nbatch_interval_s = 1\npoll_interval_s = 0.3\nself_audit_rate = 0\n"
        "confirmations = 0\n"
        "[transactions]\nstuck_after_s = 5\ntimeout_s = 10\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n' + model.node_toml()
    )
    node_url = f"http://127.0.0.1:{http_port}"
    infer_url = f"{node_url}/v1/models/{model.model_id}/infer"
    w3 = Web3(HTTPProvider(anvil.rpc))
    addresses = json.loads(deployment.read_text())
    jm = w3.eth.contract(address=addresses["jobManager"], abi=_abi("JobManager"))
    dm = w3.eth.contract(address=addresses["disputeManager"], abi=_abi("DisputeManager"))
    token = w3.eth.contract(address=addresses["token"], abi=_abi("TestToken"))
    model_bytes = bytes.fromhex(model.model_id[2:])
    job_status_at = _field_index(_abi("JobManager"), "getJob", "status")

    def request(x: list[float]) -> int:
        q = quantize(x, model.input_scale)
        tx = jm.functions.requestJob(model_bytes, q, NODE_ADDRESS, 0).transact({"from": REQUESTER})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        (log,) = jm.events.JobRequested().process_receipt(receipt)
        return int(log["args"]["jobId"])

    def job_status(job_id: int) -> int:
        return int(jm.functions.getJob(job_id).call()[job_status_at])

    def serve(x: list[float]) -> dict[str, Any]:
        answer = httpx.post(infer_url, json={"input": x}, timeout=30)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    node = e.start("node", "node", "run", "--config", str(config), *net, "--account", "TEST::1")
    try:

        def ready() -> bool:
            assert node.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            try:
                return httpx.get(f"{node_url}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 90, "the node's /ready", interval=0.2)
        before = request([0.1, 0.2, 0.3, 0.4])
        wait_for(lambda: job_status(before) == 2, 60, "the first commit")  # Committed

        # -- the outage: the RPC is gone, the node keeps serving --------------------------
        anvil.stop()
        down_at = time.monotonic()
        served = [serve([0.05 * i, -0.1, 0.2, 0.3]) for i in range(4)]
        while time.monotonic() - down_at < OUTAGE_S:
            assert node.poll() is None, f"node exited during the outage:\n{e.log('node')[-5000:]}"
            time.sleep(1)
        served.append(serve([0.5, 0.5, -0.5, -0.5]))
        anvil.start(load=True)
        back_at = time.monotonic()

        # -- catching up ------------------------------------------------------------------
        def batched() -> bool:
            assert node.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            for answer in served:
                where = httpx.get(f"{node_url}/v1/jobs/{answer['receipt']['jobId']}").json()
                if where.get("batchId") is None:
                    return False
            return True

        wait_for(batched, 120, "the jobs served during the outage to be committed", 1)
        caught_up_s = time.monotonic() - back_at
        after = request([0.3, -0.3, 0.3, -0.3])
        wait_for(lambda: job_status(after) == 2, 60, "a commit after the outage")

        # -- a dispute after the outage is defended with a real proof ---------------------
        token.functions.approve(addresses["disputeManager"], 2**255).transact({"from": CHALLENGER})
        out_hash = jm.functions.getJob(before).call()[5]
        tx = dm.functions.openDispute(before, out_hash).transact({"from": CHALLENGER})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1

        def defended() -> bool:
            assert node.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            return bool(dm.events.DisputeDefended().get_logs(from_block=0))

        wait_for(defended, 240, "the defence", interval=1)
        print(
            f"\nRPC down {OUTAGE_S:.0f} s: node served {len(served)} jobs meanwhile, committed "
            f"them {caught_up_s:.1f} s after the RPC came back, then committed and defended"
        )
        # -- the operator raises the node's price: requests below it no longer exist ------
        e.run("node", "price", model.model_id, "2.5", *net, "--account", "TEST::1", *dep)
        price = jm.functions.priceOf(NODE_ADDRESS, model_bytes).call()
        assert price == 25 * 10**17
        with pytest.raises(Exception):  # noqa: B017 - web3 raises its own revert type
            request([0.1, 0.1, 0.1, 0.1])  # fee 0 < price: FeeBelowPrice
        assert stop_process(node) == 0, e.log("node")[-5000:]
    finally:
        stop_process(node)
