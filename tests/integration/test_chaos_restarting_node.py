"""An honest node SIGKILLed and restarted again and again through its batches' challenge windows,
watched by a real challenger (issue 11, "done when": the restarting node).

Real processes against an anvil (``--block-time 1 --mixed-mining``), set up as an operator does
it: ``contracts deploy``, ``contracts mint`` (node and challenger), ``model onboard`` of the tiny
MLP (a short challenge window), ``node stake``. Then:

- ``spotcheck node run`` (honest, ``batch_size`` 3, 1 s interval) and ``spotcheck challenger run``
  (sampling rate 1: every leaf of every batch is sampled; ``batch_timeout_s`` 2,
  ``leaf_request_margin_s`` 8) start;
- an HTTP client posts jobs to the node (``FIRST_JOBS`` before the first kill, then for
  ``POST_S`` seconds), retrying while it is down;
- meanwhile the node is killed with SIGKILL and restarted, again and again (at least ``KILLS``
  times), until the challenge window of every batch committed so far has closed: each kill is
  either 1-3 s (seeded) after the node is ready again, or as soon as its database records a new
  batch commitment, so that the challenger's first attempt at that listing lands in the restart
  gap;
- then the node runs undisturbed until every batch is final.

Asserted at the end, from the chain, the challenger's database (``challenger.store``), its
``status`` command, its ``/metrics`` and its log:

- every committed batch was checked: its listing fetched and every leaf re-run and ``matched``,
  or (if every listing attempt landed in a restart gap) every sampled leaf requested on chain,
  revealed by the node (``revealLeaf``) and then re-run and ``matched``;
- no dispute was opened, no leaf request was settled unrevealed, nothing was slashed: the node's
  stake is intact;
- the challenger never reported the node as withholding (no ``WITHHOLDS`` in its log,
  ``batches_withheld`` 0 in its status and ``/metrics``), not even for a batch checked through
  leaf requests: giving up on a listing is a warning ("batch N listing unavailable after K
  attempts; requesting M sampled leaves on chain"), counted ``batches_unavailable``, exactly for
  those batches; withholding is reported only when a leaf request lapses unrevealed
  (``docs/validators.md``, "Withheld");
- no listing was counted invalid (``listings_invalid``): the honest node never served one;
- every batch is final on chain.

``SPOTCHECK_KILL_SEED`` changes the kill schedule (the seed is printed on failure).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import HTTPProvider, Web3

from challenger.store import BatchState, JobState, LeafRequestState, Store
from spotcheck.chain import BatchStatus, LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, quantize
from spotcheck.follower import open_db
from spotcheck.toolchain import PROJECT_ROOT
from tests.fixtures.processes import (
    Env,
    free_port,
    onboard_tiny_mlp,
    running_anvil,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

SEED = int(os.environ.get("SPOTCHECK_KILL_SEED", "20250611"))
#: At least this many SIGKILLs (more if the windows are still open).
KILLS = 4
#: Seconds of HTTP jobs after the chaos starts.
POST_S = 15
#: Jobs posted before the first kill (two full batches).
FIRST_JOBS = 6
#: The model's challenge and proof windows (seconds).
CHALLENGE_WINDOW_S = 30
PROOF_WINDOW_S = 60
STAKE = 2000
#: anvil's accounts #1 (the node, TEST::1) and #3 (the challenger, TEST::3).
NODE_ADDRESS = Web3.to_checksum_address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
CHALLENGER_ADDRESS = Web3.to_checksum_address("0x90F79bf6EB2c4f870365E785982E1f101E93b906")


@pytest.fixture
def anvil_env(tmp_path: Path) -> Iterator[Env]:
    with running_anvil(tmp_path, "--block-time", "1", "--mixed-mining") as rpc:
        yield Env(rpc, tmp_path, {**os.environ, "PYTHONUNBUFFERED": "1"})


class JobPoster:
    """Posts HTTP jobs to the node until stopped; an honest client retries while it is down."""

    def __init__(self, url: str, input_scale: int, seed: int) -> None:
        self.url = url
        self.input_scale = input_scale
        self.rng = random.Random(seed)
        self.answered = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                x = quantize([self.rng.uniform(-0.9, 0.9) for _ in range(4)], self.input_scale)
                try:
                    ok = client.post(self.url, json={"input_q": x}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.answered += 1
                    self._stop.wait(self.rng.uniform(0.05, 0.4))
                else:
                    self.refused += 1
                    self._stop.wait(0.2)


def _node_committed(db: Path) -> set[int]:
    """Batch ids the node's database records as committed (or final)."""
    if not db.is_file():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT batch_id FROM batches WHERE batch_id IS NOT NULL").fetchall()
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()
    return {int(r[0]) for r in rows}


def _contract(w3: Web3, abis: dict[str, Any], name: str, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abis[name]["abi"])


def test_nodeKilledAndRestartedThroughItsWindows_everyBatchChecked_neverReportedWithholding(
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
    for account in ("TEST::1", "TEST::3"):  # the node, the challenger (bonds)
        e.run("contracts", "mint", "10000", *net, "--account", account, *dep)
    model = onboard_tiny_mlp(
        e, "--challenge-window", str(CHALLENGE_WINDOW_S), "--proof-window", str(PROOF_WINDOW_S),
        "--slash", "1", *net, "--account", "TEST::0", *dep,
    )  # fmt: skip
    e.run("node", "stake", str(STAKE), *net, "--account", "TEST::1", *dep)

    node_port = free_port()
    node_config = work / "node.toml"
    node_config.write_text(
        f'db_path = "node.sqlite"\ndeployment_path = "deployment.json"\n'
        f"batch_size = 3\nbatch_interval_s = 1\npoll_interval_s = 0.2\nself_audit_rate = 0\n"
        f'[http]\nhost = "127.0.0.1"\nport = {node_port}\n' + model.node_toml()
    )
    node_db = work / "node.sqlite"
    node_url = f"http://127.0.0.1:{node_port}"
    ch_port = free_port()
    ch_config = work / "challenger.toml"
    ch_config.write_text(
        'state_dir = "challenger-state"\ndefault_rate = 1.0\nconfirmations = 0\n'
        "poll_interval_s = 0.5\nbatch_timeout_s = 2\nleaf_request_margin_s = 8\n"
        + model.files_toml()
        + f"[http]\nport = {ch_port}\n"
    )
    ch_db = work / "challenger-state" / "challenger.sqlite"
    setup_s = time.monotonic() - started

    abis = json.loads((PROJECT_ROOT / ".build" / "__local__.json").read_text())["contractTypes"]
    addresses = json.loads(deployment.read_text())
    from_block = int(addresses["deployBlock"])
    w3 = Web3(HTTPProvider(e.rpc))
    jm = _contract(w3, abis, "JobManager", addresses["jobManager"])
    dm = _contract(w3, abis, "DisputeManager", addresses["disputeManager"])
    sm = _contract(w3, abis, "StakeManager", addresses["stakeManager"])
    stake_before = _struct(sm, "stakeOf", NODE_ADDRESS)["amount"]

    def events(contract: Any, name: str) -> list[Any]:
        return list(getattr(contract.events, name)().get_logs(from_block=from_block))

    def chain_now() -> int:
        return int(w3.eth.get_block("latest")["timestamp"])

    def start_node() -> subprocess.Popen[bytes]:
        proc = e.start("node", "node", "run", "--config", str(node_config), *net,
                       "--account", "TEST::1")  # fmt: skip

        def ready() -> bool:
            assert proc.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            try:
                return httpx.get(f"{node_url}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "the node's /ready", interval=0.1)
        return proc

    rng = random.Random(SEED)
    kills: list[str] = []
    poster = JobPoster(f"{node_url}/v1/models/{model.model_id}/infer", model.input_scale, SEED)
    node = start_node()
    challenger = e.start(
        "challenger", "challenger", "run", "--config", str(ch_config), *net,
        "--account", "TEST::3", *dep,
    )  # fmt: skip
    context = f"seed {SEED}"
    try:
        # -- chaos: jobs for POST_S seconds, kills until every window so far has closed --------
        poster.start()
        wait_for(lambda: poster.answered >= FIRST_JOBS, 30, "the first jobs", interval=0.05)
        chaos_start = time.monotonic()
        chaos_chain_start = chain_now()
        mode_cycle = ("after-commit", "random", "random", "after-commit")
        while True:
            posting = time.monotonic() - chaos_start < POST_S
            if not posting:
                poster.stop()  # idempotent
            if len(kills) >= KILLS and not posting:
                deadlines = [int(ev["args"]["challengeDeadline"]) for ev in
                             events(jm, "BatchCommitted")]  # fmt: skip
                if deadlines and chain_now() > max(deadlines):
                    break
            assert time.monotonic() - chaos_start < 150, f"chaos never ended ({context})"
            mode = mode_cycle[len(kills) % len(mode_cycle)] if posting else "random"
            t0 = time.monotonic()
            if mode == "random":
                time.sleep(rng.uniform(1.0, 3.0))
            else:  # as soon as the node records a new commitment (or 8 s)
                known = _node_committed(node_db)
                while time.monotonic() - t0 < 8 and _node_committed(node_db) <= known:
                    time.sleep(0.02)
            node.send_signal(signal.SIGKILL)
            node.wait()
            kills.append(f"{mode} after {time.monotonic() - t0:.1f} s")
            node = start_node()
        poster.stop()
        chaos_s = time.monotonic() - chaos_start
        chaos_chain_end = chain_now()
        kill_report = "; ".join(kills)
        context = f"seed {SEED}; {len(kills)} kills: {kill_report}"

        # -- the undisturbed node finalizes everything; the challenger resolves everything -----
        def challenger_store() -> Store:
            return Store(open_db(ch_db))

        def everything_done() -> bool:
            assert node.poll() is None, f"node exited:\n{e.log('node')[-5000:]}"
            assert challenger.poll() is None, f"challenger exited:\n{e.log('challenger')[-5000:]}"
            batches = events(jm, "BatchCommitted")
            if not batches:
                return False
            if any(
                _struct(jm, "getBatch", int(ev["args"]["batchId"]))["status"] != BatchStatus.FINAL
                for ev in batches
            ):
                return False
            store = challenger_store()
            try:
                open_jobs = store.jobs(JobState.SEEN, JobState.SAMPLED)
                pending = store.leaf_request_summary()["pending"]
                unseen = [b for b in store.batches(BatchState.SEEN)]
                return not open_jobs and not pending and not unseen
            finally:
                store.conn.close()

        wait_for(everything_done, 120, f"every batch final and checked ({context})", interval=1)

        # -- chain: batches, leaf requests, no dispute, no slash ----------------------------------
        committed = {int(ev["args"]["batchId"]): ev["args"] for ev in events(jm, "BatchCommitted")}
        assert all(a["node"] == NODE_ADDRESS for a in committed.values())
        assert not events(dm, "DisputeOpened"), context
        assert not events(dm, "LeafRequestSettled"), context
        assert not events(sm, "Slashed"), context
        requested = {bytes(ev["args"]["requestId"]) for ev in events(dm, "LeafRequested")}
        revealed = {bytes(ev["args"]["requestId"]) for ev in events(dm, "LeafRevealed")}
        assert requested == revealed, f"unrevealed leaf requests ({context})"
        for rid in requested:
            status = _struct(dm, "getLeafRequest", rid)["status"]
            assert status == LeafRequestStatus.REVEALED, context
        assert _struct(sm, "stakeOf", NODE_ADDRESS)["amount"] == stake_before == STAKE * 10**18

        # -- the challenger's store: every leaf of every batch checked, and how -------------------
        store = challenger_store()
        fetched, via_requests, fetch_failures = [], [], 0
        try:
            for batch_id, args in sorted(committed.items()):
                row = store.batch(batch_id)
                assert row is not None, (batch_id, context)
                fetch_failures += row.attempts
                for index in range(int(args["count"])):
                    job = store.job(batch_leaf_key(batch_id, index))
                    assert job is not None and job.state is JobState.MATCHED, (
                        batch_id,
                        index,
                        job,
                        context,
                    )
                if row.state is BatchState.FETCHED:
                    fetched.append(batch_id)
                    continue
                # Every listing attempt landed in a restart gap: checked through the leaf
                # requests the node answered.
                assert row.state is BatchState.UNAVAILABLE, (batch_id, row, context)
                via_requests.append(batch_id)
                for index in range(int(args["count"])):
                    req = store.leaf_request(batch_leaf_key(batch_id, index))
                    assert req is not None and req.state is LeafRequestState.REVEALED, (
                        batch_id,
                        index,
                        req,
                        context,
                    )
            states = store.state_counts()
            counters = store.counters()
            summary = store.leaf_request_summary()
        finally:
            store.conn.close()
        assert set(states) == {"matched"}, (states, context)
        assert summary["settled"] == 0 and summary["missed"] == 0, (summary, context)

        # -- what the challenger reports: status, metrics, log ------------------------------------
        status = json.loads(e.run("challenger", "status", "--config", str(ch_config), "--json"))
        metrics = httpx.get(f"http://127.0.0.1:{ch_port}/metrics", timeout=5).text
        ch_log = e.log("challenger")
        withheld_lines = [line for line in ch_log.splitlines() if "WITHHOLDS" in line]
        unavailable_lines = [
            line
            for line in ch_log.splitlines()
            if re.search(r"batch \d+ listing unavailable", line)
        ]
        report = (
            f"{len(committed)} batches ({len(fetched)} fetched, {len(via_requests)} through leaf "
            f"requests: {via_requests}), {fetch_failures} failed listing attempts, "
            f"{poster.answered} jobs answered ({poster.refused} refused while down); set-up "
            f"{setup_s:.0f} s, chaos {chaos_s:.0f} s, total {time.monotonic() - started:.0f} s; "
            f"{context}"
        )
        print("\n" + report)
        assert "LEAF NEVER REVEALED" not in ch_log and "dispute WON" not in ch_log, report
        assert status["states"] == states and not status["open_disputes"], (status, report)
        assert status["counters"] == counters, (status, report)
        # Never reported as withholding: not for a batch whose listing was fetched after
        # failed attempts, nor for one checked through leaf requests (every leaf revealed).
        assert not withheld_lines, (withheld_lines, report)
        assert counters.get("batches_withheld", 0) == 0, (counters, report)
        assert status["counters"].get("batches_withheld", 0) == 0, (status, report)
        assert re.search(r"^spotcheck_challenger_batches_withheld 0\.0$", metrics, re.MULTILINE), (
            report
        )
        # Giving up on a listing is one warning and one count per batch, exactly for the
        # batches checked through leaf requests; the honest node never served a bad listing.
        given_up = sorted(
            int(m.group(1))
            for line in unavailable_lines
            if (m := re.search(r"batch (\d+) listing unavailable after \d+ attempts", line))
        )
        assert given_up == via_requests, (unavailable_lines, report)
        assert all(" WARNING " in line for line in unavailable_lines), unavailable_lines
        assert counters.get("batches_unavailable", 0) == len(via_requests), (counters, report)
        gauge = rf"^spotcheck_challenger_batches_unavailable {len(via_requests)}\.0$"
        assert re.search(gauge, metrics, re.MULTILINE), report
        assert counters.get("listings_invalid", 0) == 0, (counters, report)

        # The chaos did what it is for: listing attempts landed in restart gaps, and the kills
        # went on through at least one batch's whole challenge window.
        assert fetch_failures >= 1, report
        assert len(kills) >= KILLS, report
        assert any(
            chaos_chain_start <= int(a["challengeDeadline"]) - CHALLENGE_WINDOW_S
            and int(a["challengeDeadline"]) < chaos_chain_end
            for a in committed.values()
        ), report

        assert stop_process(challenger) == 0, e.log("challenger")[-5000:]
        assert stop_process(node) == 0, e.log("node")[-5000:]
    finally:
        poster.stop()
        stop_process(challenger)
        stop_process(node)


def _struct(contract: Any, fn: str, *args: Any) -> dict[str, Any]:
    """A view returning one struct, as a dict by the ABI's field names."""
    (abi,) = [x for x in contract.abi if x.get("name") == fn]
    names = [c["name"] for c in abi["outputs"][0]["components"]]
    return dict(zip(names, getattr(contract.functions, fn)(*args).call(), strict=True))
